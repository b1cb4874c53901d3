// The README's Quick start is what a new user types on a fresh Debian 12 machine as root, and
// what CI runs (.ci/run): two commands, no sudo (a fresh Debian has none), the test one the same
// in both places.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
const read = (p: string) => readFileSync(join(root, p), "utf8");

/** The commands of the first ```sh block after "## Quick start", comments stripped. */
function quickStart(): string[] {
  const section = read("README.md").split("## Quick start")[1] ?? "";
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  return block
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter(Boolean);
}

test("the Quick start is two commands, demo then test, without sudo", () => {
  expect(quickStart()).toEqual(["bash .ci/setup.sh demo", "bash .ci/setup.sh test"]);
});

test(".ci/run runs the Quick start's test command", () => {
  const runs = read(".ci/run")
    .split("\n")
    .filter((l) => !l.trim().startsWith("#"))
    .join("\n");
  expect(runs).toContain(`${quickStart()[1]} 2>&1 | tee "$log"`);
});

test("no instructions use sudo: they are written for root", () => {
  const docs = [
    "README.md",
    "bench/README.md",
    ...readdirSync(join(root, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const hits = docs
    .flatMap((f) =>
      read(f)
        .split("\n")
        .map((l, i) => [f, i + 1, l] as const),
    )
    .filter(([, , l]) => /\bsudo\s+\S/.test(l));
  expect(hits.map(([f, n, l]) => `${f}:${n}: ${l.trim()}`)).toEqual([]);
});
