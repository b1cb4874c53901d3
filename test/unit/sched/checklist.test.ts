/**
 * ipvs-behaviour.md §10, the scheduler items (19-32), each test naming its number. Where the
 * reference's derivation was wrong the test asserts what the 6.1 guest did (the same sequence
 * is replayed from the recording in oracle.test.ts) and says so.
 */
import { describe, expect, test } from "bun:test";
import { SchedBench } from "./helpers.ts";
import { client } from "../../kernel/oracle/scenarios.ts";
import { MH_TAB_SIZE } from "../../../src/sched/mh.ts";
import { SH_TAB_SIZE, shHashkey } from "../../../src/sched/sh.ts";
import { SVC_TABLE_N, SVC_TABLE_OFF, SVC_WORDS } from "../../../src/service/tables.ts";

const A = "198.18.17.2",
  B = "198.18.18.2",
  C = "198.18.19.2";

/** Names of `n` picks of service `svc` (new client port each time). */
function seq(b: SchedBench, svc: number, n: number, names: Record<number, string>): string {
  let out = "";
  for (let i = 0; i < n; i++) {
    const d = b.pick(svc, "198.18.1.2", 10000 + i);
    out += d < 0 ? "-" : names[d];
  }
  return out;
}

describe("§10 schedulers", () => {
  test("19: rr with A, B, C added in that order schedules C, B, A, C, B, A", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "rr" });
    const ids = { [b.dest(80, A)]: "A", [b.dest(80, B)]: "B", [b.dest(80, C)]: "C" };
    b.apply();
    expect(seq(b, s, 6, ids)).toBe("CBACBA");
  });

  test("20: wrr A(4), B(3), C(2) added in that order starts at cw = 1 (guest: C B A A B A C B A), not as the reference derived", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "wrr" });
    const ids: Record<number, string> = {};
    // one generation per ipvsadm command, as the daemon compiles them
    b.apply();
    ids[b.dest(80, A, { weight: 4 })] = "A";
    b.apply();
    ids[b.dest(80, B, { weight: 3 })] = "B";
    b.apply();
    ids[b.dest(80, C, { weight: 2 })] = "C";
    b.apply();
    // the first add leaves mw = 4 - (4 - 1) = 1, so cw = 1; later adds keep it (di = 1)
    expect(seq(b, s, 18, ids)).toBe("CBAABACBA".repeat(2));
  });

  test("20: wrr with list order A(4), B(3), C(2) from a fresh start (scheduler bound with -E) yields A A B A B C A B C", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "rr" });
    const ids = { [b.dest(80, C, { weight: 2 })]: "C", [b.dest(80, B, { weight: 3 })]: "B", [b.dest(80, A, { weight: 4 })]: "A" };
    b.apply();
    b.model.editService({ ...b.model.services[0].spec, scheduler: "wrr" });
    b.apply();
    expect(seq(b, s, 9, ids)).toBe("AABABCABC");
  });

  test("20: the same adds in one generation (a restore batch) give the same sequence as one by one", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "wrr" });
    const ids = { [b.dest(80, A, { weight: 4 })]: "A", [b.dest(80, B, { weight: 3 })]: "B", [b.dest(80, C, { weight: 2 })]: "C" };
    b.apply();
    expect(seq(b, s, 9, ids)).toBe("CBAABACBA");
  });

  test("21: wrr weights 2 and 4 (gcd 2) give 1:2 with period 3 (guest, A(2) then B(4) added: B A B, B A B, ...)", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "wrr" });
    b.apply();
    const a = b.dest(80, A, { weight: 2 });
    b.apply();
    const bb = b.dest(80, B, { weight: 4 });
    b.apply();
    const out = seq(b, s, 12, { [a]: "A", [bb]: "B" });
    expect(out).toBe("BAB".repeat(4));
    expect(out.split("").filter((x) => x === "B").length).toBe(2 * out.split("").filter((x) => x === "A").length);
  });

  test("22: all weights 0 -> rr, wrr and wlc return no dest", () => {
    for (const scheduler of ["rr", "wrr", "wlc"] as const) {
      const b = new SchedBench();
      const s = b.service({ scheduler });
      b.dest(80, A, { weight: 0 });
      b.dest(80, B, { weight: 0 });
      b.apply();
      expect(b.pick(s), scheduler).toBe(-1);
    }
  });

  test("23: wlc picks B (w2, 1 active) over A (w1, 1 active): 256 * 2 > 256 * 1", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "wlc" });
    const a = b.dest(80, A, { weight: 1 }),
      bb = b.dest(80, B, { weight: 2 });
    b.apply();
    b.view.active[a] = 1;
    b.view.active[bb] = 1;
    expect(b.pick(s)).toBe(bb);
    // and the tie goes to the earlier dest in list order (B was added last: it is first)
    b.view.active[bb] = 2;
    expect(b.pick(s)).toBe(bb);
  });

  test("24: lc ignores weight: A (w100, active 1) loses to B (w1, 10 inactive) because 256 > 10", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "lc" });
    const a = b.dest(80, A, { weight: 100 }),
      bb = b.dest(80, B, { weight: 1 });
    b.apply();
    b.view.active[a] = 1;
    b.view.inactive[bb] = 10;
    expect(b.pick(s)).toBe(bb);
    b.view.inactive[bb] = 256;
    expect(b.pick(s)).toBe(bb); // tie: B is first in list order
    b.view.inactive[bb] = 257;
    expect(b.pick(s)).toBe(a);
  });

  test("25: sed with A (w1) and B (w3) idle picks B whatever the list order", () => {
    for (const order of [
      [A, B],
      [B, A],
    ]) {
      const b = new SchedBench();
      const s = b.service({ scheduler: "sed" });
      const ids: Record<string, number> = {};
      for (const addr of order) ids[addr] = b.dest(80, addr, { weight: addr === A ? 1 : 3 });
      b.apply();
      b.view.inactive[ids[A]] = 0;
      b.view.inactive[ids[B]] = 1000; // sed ignores inactive connections
      expect(b.pick(s)).toBe(ids[B]);
    }
  });

  test("26: nq picks the first idle dest in list order even if its weight is low", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "nq" });
    const big = b.dest(80, A, { weight: 100 }),
      small = b.dest(80, B, { weight: 1 });
    b.apply();
    expect(b.pick(s)).toBe(small); // B added last: first in list, idle
    b.view.active[small] = 1;
    expect(b.pick(s)).toBe(big); // A idle
    b.view.active[big] = 1;
    expect(b.pick(s)).toBe(big); // both busy: sed's rule, (1 + 1) / 100 beats (1 + 1) / 1
  });

  test("27: fo sends everything to the highest weight; a tie goes to the most recently added dest", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "fo" });
    b.dest(80, A, { weight: 3 });
    const b5 = b.dest(80, B, { weight: 5 }),
      c5 = b.dest(80, C, { weight: 5 });
    b.apply();
    for (let i = 0; i < 5; i++) expect(b.pick(s, "198.18.1.2", 1000 + i)).toBe(c5);
    b.view.overload[c5] = 1;
    expect(b.pick(s)).toBe(b5);
  });

  test("28: ovf keeps A (w2) eligible at 2 active connections and moves on at 3", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "ovf" });
    const a = b.dest(80, A, { weight: 2 }),
      bb = b.dest(80, B, { weight: 1 });
    b.apply();
    b.view.active[a] = 2;
    expect(b.pick(s)).toBe(a);
    b.view.active[a] = 3;
    expect(b.pick(s)).toBe(bb);
    b.view.active[bb] = 2;
    expect(b.pick(s)).toBe(-1);
  });

  test("30: sh without sh-fallback refuses a client whose bucket holds a weight-0 dest; with it, the next usable dest by rehashing", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "sh" });
    const s2 = b.service({ scheduler: "sh", schedFlags: ["sh-fallback"] }, 81);
    b.dest(80, A, { weight: 1 });
    const z = b.dest(80, B, { weight: 0 });
    const a2 = b.dest(81, A, { weight: 1 });
    b.dest(81, B, { weight: 0 });
    b.apply();
    // find a client whose bucket is the weight-0 dest's single bucket
    let client = "";
    for (let i = 0; i < 65536 && !client; i++) {
      const addr = `198.18.${64 + (i >> 8)}.${i & 255}`;
      const words = addr.split(".").map(Number);
      const fold = (words[0] << 24) | (words[1] << 16) | (words[2] << 8) | words[3] | 0;
      const bucket = b.t.buckets[b.t.svc[s * SVC_WORDS + SVC_TABLE_OFF] + shHashkey(fold, 0, 0)];
      if (bucket === z) client = addr;
    }
    expect(client).not.toBe("");
    expect(b.pick(s, client)).toBe(-1);
    // the same table with sh-fallback: the only usable dest
    expect(b.pick(s2, client, 40000, "198.18.0.100", 81)).toBe(a2);
  });

  test("31: sh buckets for A(w1) then B(w3): B,B,B,A repeated; client 10.0.0.1 (port ignored) is bucket 39", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "sh" });
    const a = b.dest(80, A, { weight: 1 }),
      bb = b.dest(80, B, { weight: 3 });
    b.apply();
    const off = b.t.svc[s * SVC_WORDS + SVC_TABLE_OFF];
    expect(b.t.svc[s * SVC_WORDS + SVC_TABLE_N]).toBe(SH_TAB_SIZE);
    const table = Array.from(b.t.buckets.subarray(off, off + SH_TAB_SIZE));
    expect(table.slice(0, 8)).toEqual([bb, bb, bb, a, bb, bb, bb, a]);
    expect(table.filter((x) => x === bb).length).toBe(192);
    expect(shHashkey(0x0a000001, 0, 0)).toBe(39);
    expect(b.pick(s, "10.0.0.1", 1)).toBe(table[39]);
    expect(b.pick(s, "10.0.0.1", 65000)).toBe(table[39]);
  });

  test("32: mh has 4093 slots; a dest set to weight 0 keeps its slots, so no client of another dest moves", () => {
    const b = new SchedBench();
    const s = b.service({ scheduler: "mh" });
    const ids = [b.dest(80, A, { weight: 2 }), b.dest(80, B, { weight: 3 }), b.dest(80, C, { weight: 5 })];
    b.apply();
    expect(b.t.svc[s * SVC_WORDS + SVC_TABLE_N]).toBe(MH_TAB_SIZE);
    const clients = Array.from({ length: 500 }, (_, i) => client(i));
    const before = clients.map((c) => b.pick(s, c));
    b.edit(80, B, { weight: 0 });
    b.apply();
    const after = clients.map((c) => b.pick(s, c));
    for (let i = 0; i < clients.length; i++) {
      if (before[i] === ids[1]) expect(after[i]).toBe(-1);
      else expect(after[i]).toBe(before[i]);
    }
    expect(before.filter((d) => d === ids[1]).length).toBeGreaterThan(0);
  });
});

describe("§10 thresholds", () => {
  test("29: u=2 sets OVERLOAD when the 2nd connection binds; with l=0 it clears at total <= 1 (total * 4 < 6)", async () => {
    const { Counters } = await import("../../../src/stats/counters.ts");
    const { bindDest, unbindDest } = await import("../../../src/conn/accounting.ts");
    const { CF_INACTIVE } = await import("../../../src/conn/table.ts");
    const b = new SchedBench();
    b.service({ scheduler: "rr" });
    const a = b.dest(80, A, { upperThreshold: 2 });
    b.apply();
    const c = new Counters();
    bindDest(c, b.t, a, 0);
    expect(c.overload[a]).toBe(0);
    bindDest(c, b.t, a, CF_INACTIVE);
    expect(c.overload[a]).toBe(1);
    bindDest(c, b.t, a, 0);
    unbindDest(c, b.t, a, 0);
    expect(c.overload[a]).toBe(1); // total 2: 8 < 6 is false
    unbindDest(c, b.t, a, CF_INACTIVE);
    expect(c.overload[a]).toBe(0); // total 1: 4 < 6
  });
});
