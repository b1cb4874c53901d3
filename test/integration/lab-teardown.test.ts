/**
 * Lab.teardown() removes the xvs run directory (/run/xvs/net-<netns inode>, here under a
 * temporary XVS_RUN_DIR) of each namespace the lab made, where a daemon stopped with
 * connections leaves conns.bin (dataplane/restart.ts), and no other directory. The table is
 * written by a process inside the namespace through restart.ts's own runDir(), as the daemon does.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab, labRunDir } from "../../src/tools/lab/netns.ts";
import { requireRoot } from "./helpers.ts";

const base = mkdtempSync(join(tmpdir(), "xvs-run-"));
const saved = process.env.XVS_RUN_DIR;

afterAll(() => {
  if (saved === undefined) delete process.env.XVS_RUN_DIR;
  else process.env.XVS_RUN_DIR = saved;
  rmSync(base, { recursive: true, force: true });
});

test("teardown removes the run directory of the lab's namespaces, and only theirs", async () => {
  requireRoot();
  process.env.XVS_RUN_DIR = base;
  const lab = new Lab("rundir");
  let other = "";
  try {
    await lab.addNs("a");
    await lab.addNs("b");
    // what a stopping daemon does inside its namespace (restart.ts saveTables' path)
    const restart = join(import.meta.dir, "../../src/dataplane/restart.ts");
    const write = `process.env.XVS_RUN_DIR = ${JSON.stringify(base)}; const { tablePath } = await import(${JSON.stringify(restart)}); const fs = require("node:fs"); const p = tablePath(); fs.mkdirSync(require("node:path").dirname(p), { recursive: true }); fs.writeFileSync(p, "x"); console.log(p);`;
    const a = (await lab.exec("a", [process.execPath, "-e", write], false)).stdout.trim();
    const dirA = labRunDir(lab.ns("a"))!;
    expect(a).toBe(join(dirA, "conns.bin"));
    expect(existsSync(a)).toBe(true);
    // namespace b made no directory; another namespace's directory (not the lab's) stays
    other = join(base, "net-1");
    mkdirSync(other);
    writeFileSync(join(other, "conns.bin"), "y");
    // the directory is the namespace's inode, as the daemon inside it sees it
    const ino = (await lab.exec("a", [process.execPath, "-e", `console.log(require("node:fs").readlinkSync("/proc/self/ns/net"))`])).stdout.trim();
    expect(ino).toBe(`net:[${dirA.split("net-").pop()}]`);
  } finally {
    await lab.teardown();
  }
  expect(existsSync(labRunDir(lab.ns("a")) ?? join(base, "gone"))).toBe(false);
  expect(existsSync(join(base))).toBe(true);
  expect(existsSync(join(other, "conns.bin"))).toBe(true);
  // nothing of namespace a's is left anywhere under the run directory
  const left = new Bun.Glob("net-*/conns.bin").scanSync({ cwd: base });
  expect(Array.from(left)).toEqual(["net-1/conns.bin"]);
}, 60_000);
