/**
 * Unpacking the embedded shim and its libraries (src/ffi/shim-files.ts): the compiled binary's
 * path is covered end to end by test/integration/binary.test.ts; here the directory rules.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { unpack } from "../../../src/ffi/shim-files.ts";

let parent: string;
const files = (tag: string): [string, Uint8Array][] => [
  ["libxvs.so", new TextEncoder().encode(`shim ${tag}`)],
  ["libxdp.so.1", new TextEncoder().encode(`xdp ${tag}`)],
];

beforeEach(() => {
  parent = mkdtempSync(join(tmpdir(), "xvs-unpack-"));
});
afterEach(() => {
  rmSync(parent, { recursive: true, force: true });
});

describe("unpacking the shim", () => {
  test("writes every file under its own name into a 0700 directory named by the content", () => {
    const dir = unpack(parent, files("a"));
    expect(basename(dir)).toMatch(/^xvs-lib-\d+-[0-9a-f]{16}$/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, "libxvs.so"), "utf8")).toBe("shim a");
    expect(readFileSync(join(dir, "libxdp.so.1"), "utf8")).toBe("xdp a");
    expect(statSync(join(dir, "libxvs.so")).mode & 0o777).toBe(0o500);
  });

  test("a second start reuses the files; other content gets another directory", () => {
    const dir = unpack(parent, files("a"));
    const ino = statSync(join(dir, "libxvs.so")).ino;
    expect(unpack(parent, files("a"))).toBe(dir);
    expect(statSync(join(dir, "libxvs.so")).ino).toBe(ino);
    expect(unpack(parent, files("b"))).not.toBe(dir);
  });

  test("a damaged file in the directory is replaced", () => {
    const dir = unpack(parent, files("a"));
    chmodSync(join(dir, "libxdp.so.1"), 0o600);
    writeFileSync(join(dir, "libxdp.so.1"), "truncat");
    unpack(parent, files("a"));
    expect(readFileSync(join(dir, "libxdp.so.1"), "utf8")).toBe("xdp a");
  });

  test("a directory open to others, or a symlink in its place, is refused", () => {
    const dir = unpack(parent, files("a"));
    chmodSync(dir, 0o755);
    expect(() => unpack(parent, files("a"))).toThrow(/is not a private directory/);
    rmSync(dir, { recursive: true });
    const elsewhere = join(parent, "elsewhere");
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, dir);
    expect(() => unpack(parent, files("a"))).toThrow(/is not a private directory/);
  });
});
