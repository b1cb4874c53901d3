/**
 * A Bun Worker for lock-stress.test.ts: one "dataplane worker" scheduling new connections on
 * shared counts exactly as dataplane/schedule.ts does (the service's lock around schedule +
 * bindDest, unbindDest outside it), as fast as it can, while its siblings do the same.
 */
import { bindDestHeld, unbindDest } from "../../../src/conn/accounting.ts";
import { CF_INACTIVE } from "../../../src/conn/table.ts";
import { compile, emptyRoutes } from "../../../src/config/compile.ts";
import { applyTables, sharedSchedView, startServices } from "../../../src/dataplane/shared-sched.ts";
import { lblc } from "../../../src/sched/lblc.ts";
import { rr } from "../../../src/sched/rr.ts";
import { Counters, type SharedCountBuffers } from "../../../src/stats/counters.ts";
import { lockService, unlockService } from "../../../src/stats/svc-lock.ts";
import { FLOW_DST, FLOW_WORDS } from "../../../src/wire/flow.ts";
import { buildModel, LBLC_ADDRS } from "./lock-model.ts";

export interface StressJob {
  shared: SharedCountBuffers;
  /** Words: [0] bumped without atomics under the lock (mutual exclusion check), [1] start gate. */
  plain: SharedArrayBuffer;
  iterations: number;
  seed: number;
}

export interface StressResult {
  /** Picks per dest id of the split service. */
  splitPicks: Record<number, number>;
  /** Binds on the capped dest. */
  cappedBinds: number;
  /** Times a bind found the capped dest above its threshold. */
  violations: number;
  /** The largest count seen on the capped dest right after a bind. */
  maxCapped: number;
  /** lblc: the dest chosen per destination address (index), -2 when it changed between picks. */
  lblcDest: number[];
}

declare const self: Worker;

self.onmessage = (e: MessageEvent<StressJob>) => {
  const job = e.data;
  const { model, split, capped, cappedDest, threshold, lblcSvc } = buildModel();
  const t0 = compile(model, emptyRoutes(), 1);
  const c = new Counters(Counters.allocate(job.shared));
  const v = sharedSchedView(t0, c);
  startServices(v, c, t0);
  // a second generation, the same for every worker: its transitions run once over all of them
  const t = compile(model, emptyRoutes(), 2);
  applyTables(v, c, t0, t);
  const plain = new Int32Array(job.plain);
  const flow = new Int32Array(FLOW_WORDS);
  const lock = c.svcLock;
  const res: StressResult = { splitPicks: {}, cappedBinds: 0, violations: 0, maxCapped: 0, lblcDest: new Array(LBLC_ADDRS).fill(-1) };
  const held: number[] = [];
  let x = job.seed | 1;
  // everyone starts together
  Atomics.add(plain, 1, 1);
  for (let n = Atomics.load(plain, 1); n < Atomics.load(plain, 2); n = Atomics.load(plain, 1)) Atomics.wait(plain, 1, n, 1);
  for (let i = 0; i < job.iterations; i++) {
    // the split service: plain rr over three dests
    lockService(lock, split);
    const d = rr.schedule(v, split, flow, 0);
    if (d >= 0) bindDestHeld(c, t, d, CF_INACTIVE);
    plain[0] = plain[0] + 1;
    unlockService(lock, split);
    res.splitPicks[d] = (res.splitPicks[d] ?? 0) + 1;
    // the capped service: take a connection if the scheduler gives one, let go of some at random
    lockService(lock, capped);
    const e = rr.schedule(v, capped, flow, 0);
    if (e >= 0) {
      bindDestHeld(c, t, e, 0);
      if (e === cappedDest) {
        const n = Atomics.load(c.total, e);
        if (n > threshold) res.violations++;
        if (n > res.maxCapped) res.maxCapped = n;
        res.cappedBinds++;
      }
    }
    unlockService(lock, capped);
    if (e >= 0) held.push(e);
    // the lblc service: one of LBLC_ADDRS destination addresses, through the one shared cache
    const k = (i * 7 + job.seed) & (LBLC_ADDRS - 1);
    flow[FLOW_DST] = 0x0a000000 | k;
    lockService(lock, lblcSvc);
    const l = lblc.schedule(v, lblcSvc, flow, 0);
    unlockService(lock, lblcSvc);
    flow[FLOW_DST] = 0;
    if (res.lblcDest[k] === -1) res.lblcDest[k] = l;
    else if (res.lblcDest[k] !== l) res.lblcDest[k] = -2;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // hold about three at a time: the capped dest keeps crossing its marks
    if (held.length > 3 || (held.length > 0 && (x & 1) !== 0)) {
      const k = (x >>> 8) % held.length;
      unbindDest(c, t, held[k], 0);
      held[k] = held[held.length - 1];
      held.pop();
    }
  }
  for (const e of held) unbindDest(c, t, e, 0);
  postMessage(res);
};
