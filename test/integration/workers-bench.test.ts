/**
 * bench/workers.bench.ts keeps working (issue 13's 1-vs-2-workers bench): one short round, as a
 * user runs it. The numbers are not judged, only that each contender ran with the workers it was
 * given, that the traffic reached both rx queues and was forwarded, and that the report says the
 * ratio.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireRoot } from "./helpers.ts";

interface Win {
  value: number;
  workerBusy: number[];
  c0PerSec: Record<string, number>;
  passNoSocket: number;
}
let dir: string;
let code: number;
let stderr: string;
let summary: { ratio: { udp64: number; tcp: number }; results: Record<string, { udp64: Win[]; tcp: Win[]; errors: string[] }> };

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), "xvs-workers-bench-"));
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "../../bench/workers.bench.ts"), "--quick", "--out", dir, "--name", "t"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  [, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  summary = JSON.parse(readFileSync(join(dir, "t.json"), "utf8"));
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("1 and 2 workers both forward 64-byte UDP and TCP over both rx queues, and the report gives the ratio", () => {
  expect(code, stderr.slice(-2000)).toBe(0);
  for (const [id, workers] of [
    ["w1", 1],
    ["w2", 2],
  ] as const) {
    const r = summary.results[id];
    expect(r.errors).toEqual([]);
    const u = r.udp64[0];
    expect(u.value).toBeGreaterThan(0);
    expect(u.workerBusy.length).toBe(workers);
    // each generator's CPU is one queue: both queues got frames and passed some to a socket
    expect(u.c0PerSec.q0_xdp_redirect).toBeGreaterThan(0);
    expect(u.c0PerSec.q1_xdp_redirect).toBeGreaterThan(0);
    expect(u.passNoSocket).toBe(0);
    expect(r.tcp[0].value).toBeGreaterThan(0);
  }
  expect(summary.ratio.udp64).toBeGreaterThan(0);
  const md = readFileSync(join(dir, "t.md"), "utf8");
  expect(md).toContain("Ratio w2/w1 of medians");
  expect(md).toContain("bun bench/workers.bench.ts --quick");
});
