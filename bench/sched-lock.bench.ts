/**
 * What one scheduler state per service (dataplane/shared-sched.ts) costs per new connection: the
 * service's lock around schedule + bindDest, and the atomic counts, against the same work on
 * per-worker plain counts (what xvs did before: no lock, `+= 1`).
 *
 *   bun run bench/sched-lock.bench.ts [--ops N] [--rounds R]
 *
 * Rows (ns per new connection, median of R rounds; each op = schedule with rr over 3 dests,
 * count the connection, later uncount it, as a connection's life does):
 * - "plain, per worker": rr.schedule + plain `+= 1` / `-= 1` on counts only this thread uses.
 * - "shared, 1 thread": lockService + rr.schedule + bindDest (atomics) + unlockService, then
 *   unbindDest: the fast path's new-connection bookkeeping today, uncontended.
 * - "shared, 2 threads, one service": two Bun Workers doing the previous row at once on the same
 *   service (both cores, the lock's line bouncing between them); ns per op per thread.
 * - "shared, 2 threads, two services": the same two workers, each on its own service: the
 *   counts' lines are still shared (different dests), the locks are not.
 * Prints a table, then one JSON object.
 */
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { bindDestHeld, unbindDest } from "../src/conn/accounting.ts";
import { CF_INACTIVE } from "../src/conn/table.ts";
import { compile, emptyRoutes } from "../src/config/compile.ts";
import { Model } from "../src/config/model.ts";
import { sharedSchedView, startServices } from "../src/dataplane/shared-sched.ts";
import { rr } from "../src/sched/rr.ts";
import type { Tables } from "../src/service/tables.ts";
import { Counters, type SharedCountBuffers } from "../src/stats/counters.ts";
import { lockService, unlockService } from "../src/stats/svc-lock.ts";
import { FLOW_WORDS } from "../src/wire/flow.ts";

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
}

/** Two rr services of three real servers each (ids 0 and 1). */
function tables(): Tables {
  const m = new Model();
  const base = { protocol: "tcp" as const, address: "198.18.0.100", onePacket: false, schedFlags: [] };
  for (const port of [80, 81]) {
    m.addService({ ...base, port, scheduler: "rr" });
    for (const a of ["198.18.17.2", "198.18.18.2", "198.18.19.2"])
      m.addDest({ ...base, port }, { address: a, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  }
  return compile(m, emptyRoutes(), 1);
}

/** The shared path: `ops` connections scheduled on `svc` under its lock and later uncounted; ns/op. */
function sharedLoop(shared: SharedCountBuffers, svc: number, ops: number): number {
  const t = tables();
  const c = new Counters(Counters.allocate(shared));
  const v = sharedSchedView(t, c);
  startServices(v, c, t);
  const flow = new Int32Array(FLOW_WORDS);
  const lock = c.svcLock;
  // a ring of live connections: each op counts one and uncounts the one 64 ops older
  const ring = new Int32Array(64).fill(-1);
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) {
    lockService(lock, svc);
    const d = rr.schedule(v, svc, flow, 0);
    bindDestHeld(c, t, d, CF_INACTIVE);
    unlockService(lock, svc);
    const k = i & 63;
    if (ring[k] >= 0) unbindDest(c, t, ring[k], CF_INACTIVE);
    ring[k] = d;
  }
  const ns = (Bun.nanoseconds() - t0) / ops;
  for (const d of ring) if (d >= 0) unbindDest(c, t, d, CF_INACTIVE);
  return ns;
}

/** The old path: per-worker plain counts, no lock; ns/op. */
function plainLoop(ops: number): number {
  const t = tables();
  const c = new Counters();
  const v = sharedSchedView(t, c);
  v.state = new Int32Array(c.schedState.length);
  rr.init(v, 0);
  const flow = new Int32Array(FLOW_WORDS);
  const inactive = new Int32Array(c.inactive.length);
  v.inactive = inactive;
  const ring = new Int32Array(64).fill(-1);
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) {
    const d = rr.schedule(v, 0, flow, 0);
    inactive[d] += 1;
    if (c.overload[d] !== 0) c.overload[d] = 0;
    const k = i & 63;
    if (ring[k] >= 0) inactive[ring[k]] -= 1;
    ring[k] = d;
  }
  return (Bun.nanoseconds() - t0) / ops;
}

interface Job {
  shared: SharedCountBuffers;
  svc: number;
  ops: number;
  /** [ready count, go] */
  gate: SharedArrayBuffer;
}

if (!isMainThread) {
  parentPort!.on("message", (j: Job) => {
    const gate = new Int32Array(j.gate);
    sharedLoop(j.shared, j.svc, j.ops >> 3); // warm up
    Atomics.add(gate, 0, 1);
    while (Atomics.load(gate, 1) === 0) {}
    parentPort!.postMessage(sharedLoop(j.shared, j.svc, j.ops));
  });
} else {
  const OPS = arg("--ops", 2_000_000);
  const ROUNDS = arg("--rounds", 5);

  async function twoThreads(svcs: [number, number]): Promise<number> {
    const shared = Counters.allocateShared();
    const gate = new SharedArrayBuffer(8);
    const g = new Int32Array(gate);
    const ws = svcs.map(() => new Worker(new URL(import.meta.url)));
    const done = ws.map((w, i) => {
      const p = new Promise<number>((res) => w.once("message", res));
      w.postMessage({ shared, svc: svcs[i], ops: OPS, gate } satisfies Job);
      return p;
    });
    while (Atomics.load(g, 0) < ws.length) await Bun.sleep(1);
    Atomics.store(g, 1, 1);
    const ns = await Promise.all(done);
    for (const w of ws) await w.terminate();
    // exactness check on the way: every count given back
    const c = new Counters(Counters.allocate(shared));
    if (c.inactive.some((x) => x !== 0)) throw new Error("lost counts");
    return (ns[0] + ns[1]) / 2;
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows: Record<string, number[]> = {
    "plain, per worker": [],
    "shared, 1 thread": [],
    "shared, 2 threads, one service": [],
    "shared, 2 threads, two services": [],
  };
  plainLoop(OPS >> 3);
  sharedLoop(Counters.allocateShared(), 0, OPS >> 3);
  for (let r = 0; r < ROUNDS; r++) {
    rows["plain, per worker"].push(plainLoop(OPS));
    rows["shared, 1 thread"].push(sharedLoop(Counters.allocateShared(), 0, OPS));
    rows["shared, 2 threads, one service"].push(await twoThreads([0, 0]));
    rows["shared, 2 threads, two services"].push(await twoThreads([0, 1]));
  }
  const out: Record<string, { medianNs: number; minNs: number; maxNs: number }> = {};
  console.log(`ns per new connection (rr over 3, schedule + count + uncount), ${OPS} ops x ${ROUNDS} rounds`);
  for (const [k, xs] of Object.entries(rows)) {
    out[k] = { medianNs: +median(xs).toFixed(1), minNs: +Math.min(...xs).toFixed(1), maxNs: +Math.max(...xs).toFixed(1) };
    console.log(`${k.padEnd(34)} ${out[k].medianNs.toFixed(1).padStart(7)}  (${out[k].minNs.toFixed(1)}..${out[k].maxNs.toFixed(1)})`);
  }
  console.log(JSON.stringify({ ops: OPS, rounds: ROUNDS, rows: out }));
}
