/**
 * One scheduler state per service over all workers (dataplane/shared-sched.ts): several fast
 * paths (one per worker in the daemon) sharing one set of connection counts and scheduler words,
 * driven on this thread in turn, must schedule exactly as one fast path would: an exact rr
 * split, the same wrr cycle, a threshold (-x) held over all of them, one init per new service
 * and generation, and PersistConn counted once.
 */
import { describe, expect, test } from "bun:test";
import { SYN, PacketBuilder } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS } from "../../util/harness.ts";
import { CF_TEMPLATE, CF_USED, CONN_DEST, CONN_FLAGS, CONN_WORDS, HDR_HIGH } from "../../../src/conn/table.ts";
import { Counters } from "../../../src/stats/counters.ts";
import type { ServiceSpecT } from "../../../src/config/spec.ts";

const VIP = "198.18.0.100";
const RS = ["198.18.17.2", "198.18.18.2", "198.18.19.2"];
const key = { protocol: "tcp" as const, address: VIP, port: 80 };

function syn(sport: number, src = "198.18.1.2"): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags: SYN }).build();
}
/** `n` fast paths over one shared set of counts, each with the same model (built by `setup`). */
function workers(n: number, setup: (h: Harness) => void): Harness[] {
  const shared = Counters.allocateShared();
  const hs: Harness[] = [];
  for (let i = 0; i < n; i++) {
    const h = new Harness({ shared, seed: 1000 + i });
    setup(h);
    h.apply();
    hs.push(h);
  }
  return hs;
}

function service(h: Harness, scheduler: ServiceSpecT["scheduler"], extra: Partial<ServiceSpecT> = {}): void {
  h.model.addService({ ...key, scheduler, onePacket: false, schedFlags: [], ...extra });
}
function dest(h: Harness, addr: string, weight = 1, upperThreshold = 0): number {
  return h.model.addDest(key, { address: addr, forward: "route", weight, upperThreshold, lowerThreshold: 0 }).id;
}

/** The dest of the connection the last SYN made on `h` (the newest record). */
function lastDest(h: Harness): number {
  const r = h.conns.rec;
  let best = -1;
  for (let id = 0; id < h.conns.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS;
    if ((r[o + CONN_FLAGS] & CF_USED) !== 0 && (r[o + CONN_FLAGS] & CF_TEMPLATE) === 0) best = r[o + CONN_DEST];
  }
  return best;
}

/** Live non-template connections per dest id on `h`. */
function perDest(h: Harness): Map<number, number> {
  const r = h.conns.rec,
    m = new Map<number, number>();
  for (let id = 0; id < h.conns.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS;
    if ((r[o + CONN_FLAGS] & CF_USED) === 0 || (r[o + CONN_FLAGS] & CF_TEMPLATE) !== 0) continue;
    m.set(r[o + CONN_DEST], (m.get(r[o + CONN_DEST]) ?? 0) + 1);
  }
  return m;
}

/** Each client port's SYN goes to worker `pick(i)`; returns the dest sequence. */
function spread(hs: Harness[], count: number, pick: (i: number) => number, base = 20000): number[] {
  const seq: number[] = [];
  for (let i = 0; i < count; i++) {
    const h = hs[pick(i)];
    const out = h.one(syn(base + i));
    expect(out.port).toBe(1);
    seq.push(lastDest(h));
  }
  return seq;
}

/** A fixed, uneven spread over workers (as RSS would give): never a simple rotation. */
function rssLike(n: number): (i: number) => number {
  return (i) => (Math.imul(i + 7, 0x9e3779b1) >>> 28) % n;
}

describe("one scheduler state per service over several fast paths", () => {
  test("rr: 300 connections over 4 workers split exactly 100/100/100, in the one-worker order", () => {
    const hs = workers(4, (h) => {
      service(h, "rr");
      for (const a of RS) dest(h, a);
    });
    const seq = spread(hs, 300, rssLike(4));
    const alone = workers(1, (h) => {
      service(h, "rr");
      for (const a of RS) dest(h, a);
    });
    expect(seq).toEqual(spread(alone, 300, () => 0));
    // each worker served some; the totals over workers are exact
    const total = new Map<number, number>();
    for (const h of hs) {
      const m = perDest(h);
      expect([...m.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      for (const [d, c] of m) total.set(d, (total.get(d) ?? 0) + c);
    }
    expect([...total.values()].sort()).toEqual([100, 100, 100]);
    // ActiveConn+InActConn is one count, the same seen from every worker
    for (const d of total.keys()) {
      for (const h of hs) expect(h.counters.active[d] + h.counters.inactive[d]).toBe(100);
    }
  });

  test("wrr 3:2:1: two workers taking turns unevenly follow the one-worker cycle exactly", () => {
    const setup = (h: Harness) => {
      service(h, "wrr");
      dest(h, RS[0], 3);
      dest(h, RS[1], 2);
      dest(h, RS[2], 1);
    };
    const two = spread(workers(2, setup), 120, rssLike(2));
    const one = spread(workers(1, setup), 120, () => 0);
    expect(two).toEqual(one);
    const c = new Map<number, number>();
    for (const d of two) c.set(d, (c.get(d) ?? 0) + 1);
    expect([...c.values()].sort()).toEqual([20, 40, 60]);
  });

  test("-x 10: a real server never holds more than 10 connections over all workers, and takes new ones once the others' expiries cleared OVERLOAD", () => {
    let capped = -1;
    const hs = workers(3, (h) => {
      service(h, "rr");
      capped = dest(h, RS[0], 1, 10);
      dest(h, RS[1], 1);
    });
    const seq = spread(hs, 60, rssLike(3));
    expect(seq.filter((d) => d === capped).length).toBe(10);
    expect(hs[0].counters.overload[capped]).toBe(1);
    const onCapped = hs.map((h) => perDest(h).get(capped) ?? 0);
    expect(onCapped.reduce((a, b) => a + b, 0)).toBe(10);
    // each worker's connections expire on its own timers (SYN_RECV, 60 s): the counts fall to 0
    // from three threads' worth of decrements, and the last one clears OVERLOAD
    hs[0].advance(61_000);
    const left = 10 - onCapped[0];
    expect(hs[1].counters.active[capped] + hs[1].counters.inactive[capped]).toBe(left);
    // cleared below the lower mark (10 - 10/4 = 8), kept from 8 up
    expect(hs[1].counters.overload[capped]).toBe(left < 8 ? 0 : 1);
    hs[1].advance(61_000);
    hs[2].advance(61_000);
    expect(hs[0].counters.active[capped] + hs[0].counters.inactive[capped]).toBe(0);
    expect(hs[1].counters.overload[capped]).toBe(0);
    // new connections: the capped dest fills up to 10 again, never more
    const more = spread(hs, 60, rssLike(3), 30000);
    expect(more.filter((d) => d === capped).length).toBe(10);
    expect(hs[2].counters.active[capped] + hs[2].counters.inactive[capped]).toBe(10);
    expect(hs[2].counters.overload[capped]).toBe(1);
  });

  test("a new service is started once: a worker switching late to its generation does not restart its rr position", () => {
    const hs = workers(2, (h) => {
      service(h, "rr", { port: 81 });
    });
    for (const h of hs) {
      service(h, "rr");
      for (const a of RS) dest(h, a);
    }
    hs[0].apply();
    const first = spread([hs[0]], 2, () => 0);
    hs[1].apply(); // the same generation, later: must not run init again
    const next = spread([hs[1]], 1, () => 0, 21000);
    const alone = workers(1, (h) => {
      service(h, "rr", { port: 81 });
      service(h, "rr");
      for (const a of RS) dest(h, a);
    });
    expect([...first, ...next]).toEqual(spread(alone, 3, () => 0));
  });

  for (const scheduler of ["lblc", "lblcr"] as const) {
    test(`${scheduler}: one address cache over all workers: the VIP's entry made on one worker sends every worker's connections to its dest`, () => {
      const setup = (h: Harness) => {
        service(h, scheduler);
        dest(h, RS[0], 100);
        dest(h, RS[1], 100);
      };
      // with a cache per worker, the second worker's first connection would miss it and go to the
      // least loaded dest, the other one
      const seq = spread(workers(2, setup), 20, (i) => i % 2);
      expect(new Set(seq).size).toBe(1);
      expect(seq).toEqual(spread(workers(1, setup), 20, () => 0));
    });
  }

  test("persistence: templates count in one PersistConn over workers", () => {
    const hs = workers(2, (h) => {
      service(h, "rr", { persistence: { timeout: 300 } });
      for (const a of RS) dest(h, a);
    });
    // four client addresses, each on its own worker: four templates
    for (let i = 0; i < 4; i++) hs[i % 2].one(syn(40000 + i, `198.18.1.${10 + i}`));
    const persist = RS.map((_, d) => hs[0].counters.persist[d]);
    expect(persist.reduce((a, b) => a + b, 0)).toBe(4);
    expect(RS.map((_, d) => hs[1].counters.persist[d])).toEqual(persist);
  });
});
