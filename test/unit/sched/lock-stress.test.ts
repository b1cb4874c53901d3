/**
 * The per-service lock under real parallelism: four Bun Workers (threads) schedule on one set of
 * shared counts at once (lock-worker.ts). No count may be lost (every bind and unbind lands), a
 * word bumped without atomics under the lock must count every hold (mutual exclusion), the rr
 * split over all workers is exact, a dest with `-x 5` never holds more than 5, and lblc's one
 * shared address cache ends with each address once, on the same dest for every thread.
 */
import { expect, test } from "bun:test";
import { Counters } from "../../../src/stats/counters.ts";
import { LocalityTable } from "../../../src/sched/locality.ts";
import { SL_LOC_OFF, SL_WORDS } from "../../../src/stats/counters.ts";
import { buildModel, LBLC_ADDRS } from "./lock-model.ts";
import type { StressJob, StressResult } from "./lock-worker.ts";

const WORKERS = 4;
const ITERATIONS = 30000;

test("4 threads hammering one service's lock: exact rr split, no lost count, threshold held, one lblc cache", async () => {
  const shared = Counters.allocateShared();
  const plain = new SharedArrayBuffer(16);
  new Int32Array(plain)[2] = WORKERS;
  const results = await Promise.all(
    Array.from({ length: WORKERS }, (_, i) => {
      const w = new Worker(new URL("./lock-worker.ts", import.meta.url).href);
      return new Promise<StressResult>((resolve, reject) => {
        w.onmessage = (e: MessageEvent<StressResult>) => {
          resolve(e.data);
          w.terminate();
        };
        w.onerror = (e) => reject(e);
        const job: StressJob = { shared, plain, iterations: ITERATIONS, seed: 0x9e3779b1 * (i + 1) };
        w.postMessage(job);
      });
    }),
  );
  const c = new Counters(Counters.allocate(shared));
  // mutual exclusion: the plain (non-atomic) increments under the lock all landed
  expect(new Int32Array(plain)[0]).toBe(WORKERS * ITERATIONS);
  // rr over three dests, 120000 picks from four threads: exactly 40000 each
  const picks = new Map<number, number>();
  for (const r of results) for (const [d, n] of Object.entries(r.splitPicks)) picks.set(Number(d), (picks.get(Number(d)) ?? 0) + n);
  expect([...picks.values()]).toEqual([40000, 40000, 40000]);
  // the split service's connections were never given back: each dest holds its picks
  for (const [d, n] of picks) {
    expect(c.inactive[d]).toBe(n);
    expect(c.total[d]).toBe(n);
  }
  // the capped dest: really contended (every thread bound it), never above 5, and all given back
  expect(results.every((r) => r.cappedBinds > 0)).toBe(true);
  expect(results.map((r) => r.violations)).toEqual([0, 0, 0, 0]);
  expect(Math.max(...results.map((r) => r.maxCapped))).toBe(5);
  // every capped-service connection was unbound: its dests are back to 0 and OVERLOAD is clear
  const { cappedDest, sibling, lblcSvc } = buildModel();
  expect([c.active[cappedDest], c.active[sibling], c.total[cappedDest], c.total[sibling], c.overload[cappedDest]]).toEqual([0, 0, 0, 0, 0]);
  // lblc: every thread saw the same dest for an address, all along (one cache), and the cache holds
  // each address exactly once (concurrent inserts would have duplicated some)
  const perAddr = results[0].lblcDest;
  expect(perAddr.every((d) => d >= 0)).toBe(true);
  for (const r of results) expect(r.lblcDest).toEqual(perAddr);
  const off = c.svcLock[lblcSvc * SL_WORDS + SL_LOC_OFF] - 1;
  expect(off).toBeGreaterThan(0);
  const tb = new LocalityTable(1, 0, shared.locality, off);
  expect(tb.count).toBe(LBLC_ADDRS);
  expect(tb.used.reduce((a, b) => a + b, 0)).toBe(LBLC_ADDRS);
  for (let k = 0; k < LBLC_ADDRS; k++) expect(tb.data[tb.find(0x0a000000 | k, 0, 0, 0)]).toBe(perAddr[k]);
}, 60000);
