/**
 * Scheduler internals the oracle cannot reach: the hsiphash arithmetic against a BigInt
 * SipHash-1-3, the lblc/lblcr caches (reuse, their own "overloaded" rule, replication, ageing),
 * twos with a fixed random source, and the locality table against a Map.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { SchedBench } from "./helpers.ts";
import { hsiphash1u32 } from "../../../src/sched/hsiphash.ts";
import { DEFAULT_EXPIRATION_TICKS, LOCALITY_MAX_ENTRIES, LOCALITY_SOFT_MAX, LocalityTable } from "../../../src/sched/locality.ts";
import { TICKS_PER_SEC } from "../../../src/conn/table.ts";

const M64 = (1n << 64n) - 1n;
const rol = (x: bigint, n: bigint) => ((x << n) | (x >> (64n - n))) & M64;
/** SipHash-1-3 of one u32 with u64 keys, truncated to u32: lib/siphash.c's 64-bit hsiphash, in BigInt. */
function refHsiphash(v: number, k0: bigint, k1: bigint): number {
  let v0 = 0x736f6d6570736575n ^ k0,
    v1 = 0x646f72616e646f6dn ^ k1,
    v2 = 0x6c7967656e657261n ^ k0,
    v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & M64;
    v1 = rol(v1, 13n);
    v1 ^= v0;
    v0 = rol(v0, 32n);
    v2 = (v2 + v3) & M64;
    v3 = rol(v3, 16n);
    v3 ^= v2;
    v0 = (v0 + v3) & M64;
    v3 = rol(v3, 21n);
    v3 ^= v0;
    v2 = (v2 + v1) & M64;
    v1 = rol(v1, 17n);
    v1 ^= v2;
    v2 = rol(v2, 32n);
  };
  const b = (4n << 56n) | BigInt(v >>> 0);
  v3 ^= b;
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round();
  round();
  round();
  return Number((v0 ^ v1 ^ v2 ^ v3) & 0xffffffffn);
}

describe("hsiphash", () => {
  test("matches a BigInt SipHash-1-3 for any value and key", () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), (v, a, b, c, d) => {
        const k0 = (BigInt(a) << 32n) | BigInt(b),
          k1 = (BigInt(c) << 32n) | BigInt(d);
        expect(hsiphash1u32(v, a | 0, b | 0, c | 0, d | 0)).toBe(refHsiphash(v, k0, k1));
      }),
      { numRuns: 500 },
    );
  });
});

describe("lblc", () => {
  test("keeps a destination address on its dest, and moves it only when that dest is 'overloaded' (active > weight while another has active*2 < weight)", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "lblc" });
    const a = b.dest(80, "198.18.17.2", { weight: 2 }),
      c = b.dest(80, "198.18.18.2", { weight: 2 });
    b.apply();
    const first = b.pick(s, "198.18.1.2", 1, "198.18.2.7");
    expect(first).toBe(c); // wlc: both idle, the first in list order
    b.view.active[c] = 5; // more than its weight ... but A has 0 * 2 < 2
    expect(b.pick(s, "198.18.1.2", 2, "198.18.2.7")).toBe(a);
    b.view.active[a] = 3;
    b.view.active[c] = 0; // the entry now names A; A is busy but C is idle
    expect(b.pick(s, "198.18.1.2", 3, "198.18.2.7")).toBe(c);
    // the OVERLOAD flag is not lblc's test for a cached dest
    b.view.active[c] = 0;
    b.view.overload[c] = 1;
    expect(b.pick(s, "198.18.1.2", 4, "198.18.2.7")).toBe(c);
  });

  test("forgets an entry unused for lblc_expiration (24 h) at the next full check (every 30th 60-s check)", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "lblc" });
    const a = b.dest(80, "198.18.17.2"),
      c = b.dest(80, "198.18.18.2");
    b.apply();
    const MIN = 60 * TICKS_PER_SEC;
    expect(b.pick(s, "198.18.1.2", 1, "198.18.2.7")).toBe(c); // both cached at t = 0
    expect(b.pick(s, "198.18.1.2", 2, "198.18.2.8")).toBe(c);
    b.view.active[c] = 1; // from now on wlc would pick A
    // checks every minute; the counter makes minutes 30, 60, ..., 1410, 1440 full checks
    b.view.now = 1439 * MIN;
    expect(b.pick(s, "198.18.1.2", 3, "198.18.2.7")).toBe(c); // idle 1410 min at the last full check: kept
    b.view.now = 1441 * MIN;
    expect(b.pick(s, "198.18.1.2", 4, "198.18.2.8")).toBe(a); // idle 24 h at minute 1440: gone, wlc again
    expect(b.pick(s, "198.18.1.2", 5, "198.18.2.7")).toBe(c); // used at 1439: still there
  });
});

describe("lblcr", () => {
  test("adds a second dest to an address's set when the first is overloaded, then serves the set's least loaded", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "lblcr" });
    const a = b.dest(80, "198.18.17.2", { weight: 1 }),
      c = b.dest(80, "198.18.18.2", { weight: 1 });
    b.apply();
    const D = "198.18.2.9";
    expect(b.pick(s, "198.18.1.2", 1, D)).toBe(c);
    b.view.active[c] = 2; // > weight, and A is idle: overloaded in lblc's sense
    expect(b.pick(s, "198.18.1.2", 2, D)).toBe(a); // wlc's pick joins the set
    b.view.active[a] = 1;
    b.view.active[c] = 1;
    // both in the set now; equal load per weight: the newest member (A) wins the tie
    expect(b.pick(s, "198.18.1.2", 3, D)).toBe(a);
    b.view.active[a] = 3;
    expect(b.pick(s, "198.18.1.2", 4, D)).toBe(c);
  });

  test("drops the most loaded member of a set unchanged for lblcr_expiration", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "lblcr" });
    const a = b.dest(80, "198.18.17.2", { weight: 1 }),
      c = b.dest(80, "198.18.18.2", { weight: 1 });
    b.apply();
    const D = "198.18.2.9",
      MIN = 60 * TICKS_PER_SEC;
    b.pick(s, "198.18.1.2", 1, D); // {C}
    b.view.active[c] = 2;
    expect(b.pick(s, "198.18.1.2", 2, D)).toBe(a); // {A, C}, changed at t = 0
    // with both members the idle one serves: C
    b.view.active[a] = 1;
    b.view.active[c] = 0;
    expect(b.pick(s, "198.18.1.2", 3, D)).toBe(c);
    // used every 10 minutes (so never aged out), unchanged: just after 24 h the most loaded member goes
    for (let t = 1; t <= 145; t++) {
      b.view.now = t * 10 * MIN;
      b.view.active[a] = 0;
      b.view.active[c] = t === 145 ? 1 : 0; // at the 24h10m pick C is the more loaded
      b.pick(s, "198.18.1.2", 100 + t, D);
    }
    // {A} only: A (1 active, not overloaded: 1 <= weight) serves although C is idle
    b.view.active[a] = 1;
    b.view.active[c] = 0;
    expect(b.pick(s, "198.18.1.2", 999, D)).toBe(a);
  });
});

describe("twos", () => {
  test("draws two dests by weight and keeps the less loaded per weight", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "twos" });
    const a = b.dest(80, "198.18.17.2", { weight: 1 }),
      c = b.dest(80, "198.18.18.2", { weight: 3 });
    b.apply();
    // list order C(3), A(1); total 4 + 1 = 5: r = 0..3 -> C, r = 4 -> A
    b.randoms.push(0, 4);
    expect(b.pick(s)).toBe(c); // both idle: w2 * 0 > w1 * 0 is false, the first draw stays
    b.view.active[c] = 1;
    b.randoms.push(0, 4);
    expect(b.pick(s)).toBe(a); // 1 * 256 > 3 * 0
    b.randoms.push(4, 4);
    expect(b.pick(s)).toBe(a);
    b.view.overload[a] = 1;
    b.randoms.push(3, 3);
    expect(b.pick(s)).toBe(c);
    b.view.overload[c] = 1;
    expect(b.pick(s)).toBe(-1);
  });
});

describe("locality table", () => {
  test("behaves as a map under inserts and removals (backward-shift deletion)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(300)), { maxLength: 600 }), (ops) => {
        const t = new LocalityTable(1, 0),
          m = new Map<number, number>();
        for (const [ins, k] of ops) {
          const slot = t.find(k, 0, 0, 0);
          if (ins) {
            if (slot < 0) {
              const s = t.insert(k, 0, 0, 0, 0);
              t.data[s] = k * 7;
              m.set(k, k * 7);
            }
          } else if (slot >= 0) {
            t.remove(slot);
            m.delete(k);
          }
        }
        expect(t.count).toBe(m.size);
        for (let k = 0; k <= 300; k++) {
          const slot = t.find(k, 0, 0, 0);
          expect(slot >= 0 ? t.data[slot] : undefined).toBe(m.get(k));
        }
      }),
      { numRuns: 100 },
    );
  });

  test("is bounded: past LOCALITY_MAX_ENTRIES nothing more is cached; the 60-s check evicts entries idle 6 minutes above the soft maximum", () => {
    const t = new LocalityTable(1, 0);
    for (let i = 0; i < LOCALITY_MAX_ENTRIES; i++) expect(t.insert(i + 1, 0, 0, 0, 0)).toBeGreaterThanOrEqual(0);
    expect(t.insert(0x7fffffff, 0, 0, 0, 0)).toBe(-1);
    t.age(7 * 60 * TICKS_PER_SEC, DEFAULT_EXPIRATION_TICKS);
    expect(t.count).toBeLessThan(LOCALITY_MAX_ENTRIES);
    expect(t.count).toBeGreaterThanOrEqual(LOCALITY_SOFT_MAX - LOCALITY_SOFT_MAX / 2);
  });
});
