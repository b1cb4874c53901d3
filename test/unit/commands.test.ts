// Every command the code spawns is in .ci/commands.txt, the list .ci/setup.sh installs from: a
// command missing there passes on a developer's machine and fails on a fresh one (socat, sysctl).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readList, scanProject, shellCommands, tsCommands } from "../util/commands.ts";

const root = join(import.meta.dir, "../..");
const listed = readList(readFileSync(join(root, ".ci/commands.txt"), "utf8"));
const commands = new Set(listed.filter((l) => !l.what.startsWith("/")).map((l) => l.what));

/** Spawned commands that are not listed, as "command (file:line)". */
function unlisted(found: { command: string; where: string }[]): string[] {
  return found.filter((f) => !commands.has(f.command)).map((f) => `${f.command} (${f.where})`);
}

describe(".ci/commands.txt", () => {
  test("every command the code, tests, demo, bench and scripts spawn is listed", () => {
    const found = scanProject(root);
    // the scan reads the project's many spawn sites, not a handful
    expect(found.length).toBeGreaterThan(150);
    expect(unlisted(found)).toEqual([]);
  });

  test("every listed command is spawned somewhere (the list installs nothing stale)", () => {
    const spawned = new Set(scanProject(root).map((f) => f.command));
    // node runs npm
    const indirect = new Set(["node"]);
    expect([...commands].filter((c) => !spawned.has(c) && !indirect.has(c))).toEqual([]);
  });

  test("each entry names one Debian package; headers are absolute paths", () => {
    for (const l of listed) expect(l.pkg).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
    expect(listed.filter((l) => l.what.startsWith("/")).map((l) => l.pkg)).toEqual(["libxdp-dev", "libbpf-dev", "linux-libc-dev"]);
    expect(new Set(listed.map((l) => l.what)).size).toBe(listed.length);
  });
});

describe("the scanner", () => {
  const spawn = "Bun" + ".spawn"; // (this file is left out of the project scan all the same)

  test("finds an unlisted command at argv[0] of each spawn helper", () => {
    const src = [
      `${spawn}(["frobnicate", "-x"], { stdout: "pipe" });`,
      `await sh(["ip", "netns", "exec", ns, "frobnicate2"]);`,
      `await lab.exec(host, ["env", \`XVS_STATE_DIR=\${dir}\`, "frobnicate3"], true);`,
      `await L.lab.exec(L.reals[0], ["bash", "-c", \`cd \${d} && frobnicate4 -q | wc -l; x=$(frobnicate5)\`]);`,
      `const p = bl.lab.spawn("dir", ["perf", "record", "--", "frobnicate6"]);`,
      `${spawn}Sync([someVariable, "x"]);`,
      `await lab.exec(h, [...selfCommand(), "adm", "-Ln"]);`,
    ].join("\n");
    const found = tsCommands(src, "snippet.ts");
    expect(unlisted(found).sort()).toEqual([
      "<not a literal: someVariable> (snippet.ts:6)",
      "frobnicate (snippet.ts:1)",
      "frobnicate2 (snippet.ts:2)",
      "frobnicate3 (snippet.ts:3)",
      "frobnicate4 (snippet.ts:4)",
      "frobnicate5 (snippet.ts:4)",
      "frobnicate6 (snippet.ts:5)",
    ]);
  });

  test("reads a shell script's commands, not its builtins, functions, quotes or case arms", () => {
    const script = [
      "#!/bin/bash",
      "say() { printf '%s' \"$*\"; }   # a function: frobnicate in a comment",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, in a shell script
      "x=${1:-} && [ -n \"$x\" ] || say 'frobnicate in quotes'",
      'case "$x" in',
      "demo) exec ./dist/xvs demo ;;",
      '*) frobnicate7 2>&1 | tee "$(mktemp)" ;;',
      "esac",
    ].join("\n");
    expect(shellCommands(script).sort()).toEqual(["frobnicate7", "mktemp", "tee"]);
  });
});
