/**
 * `--conn-max N` is the daemon's connection table size over all workers (dataplane/queues.ts
 * connShares): split so that the shares add up to N, as the listing's `(size=N)` shows, and said
 * so by `xvs run --help`.
 */
import { describe, expect, test } from "bun:test";
import { connShares } from "../../../src/dataplane/queues.ts";

describe("connShares", () => {
  test("one worker holds it all; several split it evenly, the remainder on the first", () => {
    expect(connShares(1048576, 1)).toEqual({ shares: [1048576], adjustments: [] });
    expect(connShares(1048576, 2)).toEqual({ shares: [524288, 524288], adjustments: [] });
    expect(connShares(1000, 3)).toEqual({ shares: [334, 333, 333], adjustments: [] });
    for (const [n, w] of [
      [16384, 4],
      [(1 << 24) - 2, 64],
      [7, 7],
    ]) {
      const s = connShares(n, w).shares;
      expect(s.length).toBe(w);
      expect(s.reduce((a, b) => a + b, 0)).toBe(n);
      expect(Math.max(...s) - Math.min(...s)).toBeLessThanOrEqual(1);
    }
  });

  test("fewer than one per worker: one each, and a line that says so", () => {
    const r = connShares(2, 4);
    expect(r.shares).toEqual([1, 1, 1, 1]);
    expect(r.adjustments).toEqual(["--conn-max 2 is less than one connection per worker (4 workers): each worker's table holds 1"]);
  });

  test("xvs run --help says the size is the daemon's, split over the workers", async () => {
    const p = Bun.spawn([process.execPath, "src/main.ts", "run", "--help"], { cwd: `${import.meta.dir}/../../..`, stdout: "pipe" });
    const help = (await new Response(p.stdout).text()).replace(/\s+/g, " ");
    expect(await p.exited).toBe(0);
    expect(help).toContain("--conn-max N connection table size of the daemon, split evenly over the workers");
  });
});
