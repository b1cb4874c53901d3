/**
 * Dataplane worker: `--workers` of them, each owning a set of rx queues (dataplane/queues.ts), a
 * Bun Worker so that its poll loop never starves the control API on the main thread. It opens its
 * own AF_XDP port (one socket per interface and owned queue, over one UMEM), then loops: one
 * shim call sends the previous burst and receives the next (from all its sockets), the fast
 * path decides every frame, and the connection timers advance. Between rounds it yields to its
 * event loop so that configuration generations (postMessage) are taken, in order.
 *
 * With XVS_PROFILE=1 in the environment (used by `xvs bench`), the same loop also times its
 * phases (the shim's ring work and kicks, the fast path, the timers) and writes them as one
 * JSON log line when it stops; without it, the plain loop runs and times only its busy share.
 *
 * Busy share (always on, GET /metrics' xvs_worker_busy_seconds_total / _loop_seconds_total): a
 * burst that returned frames counts as busy from the start of its shim call to the start of the
 * next call (ring work, fast path, timers), unless the shim slept in poll() during that call
 * (its poll counter moved): then only from the call's return, so that waiting for a frame is
 * never counted as work. One clock read per burst (two after a poll), none per packet; the
 * totals reach shared memory (Counters.loop) once per round.
 */
import { ConnTable } from "../conn/table.ts";
import { XskPort } from "../ffi/xsk.ts";
import * as abi from "../ffi/abi.ts";
import { Counters, WL_BUSY_NS, WL_LOOP_NS } from "../stats/counters.ts";
import { FlowCache, flowMapIo } from "./flowcache.ts";
import { FastPath } from "./fastpath.ts";
import {
  CTL_APPLIED_GEN,
  CTL_EPOCH_F64,
  CTL_HEARTBEAT,
  CTL_POSTED_GEN,
  CTL_STOP,
  ticksSince,
  type FromWorker,
  type AddQueuesMessage,
  type InitMessage,
  type ToWorker,
  type WorkerIface,
} from "./protocol.ts";
import { NextHopView } from "./route.ts";
import { installAdopted } from "./restart.ts";
import { applySyncMessage } from "./sync-feed.ts";
import { applyPeersMessage } from "./peers.ts";
import type { Tables } from "../service/tables.ts";
import { log } from "../log.ts";

declare const self: Worker;

/** Bursts per round between two yields to the event loop. */
const BURSTS_PER_ROUND = 64;

let fp: FastPath | null = null;
let port: XskPort | null = null;
let counters: Counters;
let ctl: Int32Array;
const pending: Tables[] = [];

function post(m: FromWorker): void {
  self.postMessage(m);
}

function applyPending(): void {
  while (pending.length > 0) {
    const t = pending.shift()!;
    fp!.setTables(t);
    Atomics.store(ctl, CTL_APPLIED_GEN, t.generation);
  }
}

/** Per interface number of the port (what addIface returns): filled as sockets open. */
const zeroCopyOf: boolean[] = [];
let bindFlags = 0;
let xskmapFd = -1;

/**
 * Open sockets on queues that appeared after the start. Runs from onmessage, so between rounds
 * (the loop awaits there): the shim's socket array never changes under a burst.
 */
function addQueues(m: AddQueuesMessage): void {
  const added: WorkerIface[] = [];
  const errors: string[] = [];
  for (const i of m.ifaces) {
    try {
      port!.addIface(i.name, i.queue, bindFlags, xskmapFd, i.slot);
      added.push(i);
    } catch (e) {
      errors.push(`${i.name} queue ${i.queue}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  post({ type: "queuesAdded", added, errors });
}

function start(m: InitMessage): void {
  ctl = new Int32Array(m.ctl);
  const epochMs = new Float64Array(m.ctl)[CTL_EPOCH_F64];
  try {
    port = new XskPort(m.geometry);
    bindFlags = m.bindFlags;
    xskmapFd = m.xskmapFd;
    for (const i of m.ifaces) zeroCopyOf[port.addIface(i.name, i.queue, m.bindFlags, m.xskmapFd, i.slot)] = false;
  } catch (e) {
    port?.destroy();
    post({ type: "error", message: e instanceof Error ? e.message : String(e) });
    return;
  }
  const conns = new ConnTable(m.conns.capacity, undefined, m.conns);
  counters = new Counters(m.counters);
  fp = new FastPath(port.umem, m.tables, conns, counters, new NextHopView(m.nexthops, m.resolveRing));
  // learned path MTUs in the memory the control thread mirrors to the XDP flow cache (flow-pmtu.ts)
  if (m.pmtu) fp.pmtu.share(m.pmtu);
  // the XDP flow cache: which of this worker's connections the steering program forwards itself
  if (m.flowCache) fp.flowCache = FlowCache.create({ io: flowMapIo(m.flowCache.fd), worker: m.worker, maxEntries: m.flowCache.entries }, conns);
  // the connections a restart kept (dataplane/restart.ts), before the first burst
  if (m.adopt) installAdopted(conns, counters, m.tables, new NextHopView(m.nexthops, m.resolveRing), m.adopt, ticksSince(epochMs));
  Atomics.store(ctl, CTL_APPLIED_GEN, m.tables.generation);
  post({ type: "ready", zeroCopy: zeroCopyOf.map((_, i) => port!.zeroCopy(i)) });
  if (process.env.XVS_PROFILE === "1") void loopProfiled(epochMs, m.idleMs, m.worker);
  else void loop(epochMs, m.idleMs);
}

/** The low 32 bits of the shim's poll counter (little-endian u64): moves when a burst call slept. */
function pollCounter(p: XskPort): Uint32Array {
  return new Uint32Array(p.stats.buffer, p.stats.byteOffset + abi.XVS_SHIM_POLLS * 8, 1);
}

async function loop(epochMs: number, idleMs: number): Promise<void> {
  const p = port!,
    f = fp!,
    descs = p.descs;
  const clock = Bun.nanoseconds,
    polls = pollCounter(p),
    times = counters.loop;
  const loopStart = clock();
  let busyNs = 0;
  let nDone = 0;
  while (Atomics.load(ctl, CTL_STOP) === 0) {
    applyPending();
    const gen = Atomics.load(ctl, CTL_APPLIED_GEN);
    let busyFrom = -1; // start of the open busy interval, -1 when the last burst was empty
    for (let k = 0; k < BURSTS_PER_ROUND; k++) {
      const t0 = clock();
      if (busyFrom >= 0) busyNs += t0 - busyFrom;
      f.now = ticksSince(epochMs);
      const slept = polls[0];
      const n = p.burst(nDone, abi.XVS_MAX_BURST, idleMs);
      busyFrom = n <= 0 ? -1 : polls[0] === slept ? t0 : clock();
      if (n > 0) f.processBurst(descs, n);
      nDone = n > 0 ? n : 0;
      f.expire();
      if (Atomics.load(ctl, CTL_POSTED_GEN) !== gen || Atomics.load(ctl, CTL_STOP) !== 0) break;
    }
    const roundEnd = clock();
    if (busyFrom >= 0) busyNs += roundEnd - busyFrom;
    times[WL_BUSY_NS] = busyNs;
    times[WL_LOOP_NS] = roundEnd - loopStart;
    Atomics.add(ctl, CTL_HEARTBEAT, 1);
    await new Promise<void>((r) => setImmediate(r));
  }
  // hand back the last burst's frames, then close the sockets
  p.burst(nDone, 0, 0);
  p.destroy();
  port = null;
  post({ type: "stopped" });
}

/**
 * The loop of `loop`, timing each phase (one clock read per phase per burst). On stop it logs
 * `{"msg":"xvs profile", ...}`: nanoseconds spent in the shim call as a whole and, inside it,
 * tx ring work, kicks, completion/fill work, rx ring work and idle polls (shim counters); the
 * fast path; timer expiry; the rest of the loop (event-loop turns, generations); frames and
 * bursts. Totals over the worker's life, and the same per 250 ms slice (`slices`, each with its
 * end time in ms since the epoch), so that a benchmark can take exactly its measurement window.
 * Also the sockets' XDP_STATISTICS and the shim counters at the end.
 */
const PROFILE_SLICE_NS = 250e6;
/** Local accumulators: burst call, fast path, expire, frames, bursts, non-empty bursts. */
const P_BURST = 0,
  P_FAST = 1,
  P_EXPIRE = 2,
  P_FRAMES = 3,
  P_BURSTS = 4,
  P_BUSY = 5,
  P_WORDS = 6;
const SHIM_PHASES = [abi.XVS_PROF_TX_NS, abi.XVS_PROF_KICK_NS, abi.XVS_PROF_RECLAIM_NS, abi.XVS_PROF_RX_NS, abi.XVS_PROF_IDLE_NS];

function profileRecord(totalNs: number, acc: Float64Array, shim: number[]): Record<string, unknown> {
  const shimNs = shim.reduce((a, b) => a + b, 0);
  return {
    totalNs,
    bursts: acc[P_BURSTS],
    busyBursts: acc[P_BUSY],
    frames: acc[P_FRAMES],
    ns: {
      shimTx: shim[0],
      shimKick: shim[1],
      shimReclaimFill: shim[2],
      shimRx: shim[3],
      shimIdlePoll: shim[4],
      ffiAndClock: Math.max(0, acc[P_BURST] - shimNs),
      fastPath: acc[P_FAST],
      expire: acc[P_EXPIRE],
      loopOther: Math.max(0, totalNs - acc[P_BURST] - acc[P_FAST] - acc[P_EXPIRE]),
    },
  };
}

async function loopProfiled(epochMs: number, idleMs: number, worker: number): Promise<void> {
  const p = port!,
    f = fp!,
    descs = p.descs;
  const shim = p.profile(true);
  const clock = Bun.nanoseconds;
  const acc = new Float64Array(P_WORDS);
  const sliceAcc = new Float64Array(P_WORDS);
  let sliceShim = SHIM_PHASES.map((i) => Number(shim[i]));
  const slices: Record<string, unknown>[] = [];
  const polls = pollCounter(p),
    times = counters.loop;
  let busyNs = 0;
  let nDone = 0;
  const start = clock();
  let sliceStart = start;
  while (Atomics.load(ctl, CTL_STOP) === 0) {
    applyPending();
    const gen = Atomics.load(ctl, CTL_APPLIED_GEN);
    for (let k = 0; k < BURSTS_PER_ROUND; k++) {
      f.now = ticksSince(epochMs);
      const t0 = clock();
      const slept = polls[0];
      const n = p.burst(nDone, abi.XVS_MAX_BURST, idleMs);
      const t1 = clock();
      if (n > 0) f.processBurst(descs, n);
      const t2 = clock();
      nDone = n > 0 ? n : 0;
      f.expire();
      const t3 = clock();
      if (n > 0) busyNs += polls[0] === slept ? t3 - t0 : t3 - t1;
      sliceAcc[P_BURST] += t1 - t0;
      sliceAcc[P_FAST] += t2 - t1;
      sliceAcc[P_EXPIRE] += t3 - t2;
      sliceAcc[P_BURSTS]++;
      if (n > 0) {
        sliceAcc[P_BUSY]++;
        sliceAcc[P_FRAMES] += n;
      }
      if (Atomics.load(ctl, CTL_POSTED_GEN) !== gen || Atomics.load(ctl, CTL_STOP) !== 0) break;
    }
    times[WL_BUSY_NS] = busyNs;
    times[WL_LOOP_NS] = clock() - start;
    Atomics.add(ctl, CTL_HEARTBEAT, 1);
    await new Promise<void>((r) => setImmediate(r));
    const now = clock();
    if (now - sliceStart >= PROFILE_SLICE_NS) {
      const sh = SHIM_PHASES.map((i) => Number(shim[i]));
      slices.push({
        endMs: Date.now(),
        ...profileRecord(
          now - sliceStart,
          sliceAcc,
          sh.map((v, i) => v - sliceShim[i]),
        ),
      });
      for (let i = 0; i < P_WORDS; i++) {
        acc[i] += sliceAcc[i];
        sliceAcc[i] = 0;
      }
      sliceShim = sh;
      sliceStart = now;
    }
  }
  for (let i = 0; i < P_WORDS; i++) acc[i] += sliceAcc[i];
  const totalNs = clock() - start;
  p.profile(false); // stops timing, reads the sockets' XDP_STATISTICS
  const n = (i: number) => Number(shim[i]);
  log("info", "xvs profile", {
    worker,
    ...profileRecord(totalNs, acc, SHIM_PHASES.map(n)),
    slices,
    xsk: {
      rxDropped: n(abi.XVS_PROF_XSK_RX_DROPPED),
      rxRingFull: n(abi.XVS_PROF_XSK_RX_RING_FULL),
      fillRingEmpty: n(abi.XVS_PROF_XSK_FILL_EMPTY),
      txRingEmpty: n(abi.XVS_PROF_XSK_TX_RING_EMPTY),
      invalidDescs: n(abi.XVS_PROF_XSK_INVALID),
    },
    shimStats: Object.fromEntries(["rx", "tx", "txRingFull", "dropped", "kicks", "kickErrors", "fillEmpty", "polls"].map((k, i) => [k, Number(p.stats[i])])),
  });
  p.burst(nDone, 0, 0);
  p.destroy();
  port = null;
  post({ type: "stopped" });
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "init") start(m);
  else if (m.type === "tables") pending.push(m.tables);
  else if (m.type === "addQueues" && port !== null) addQueues(m);
  else if (m.type === "sync" && fp !== null)
    applySyncMessage(fp, m); // between rounds: the loop awaits here
  else if (m.type === "peers" && fp !== null) applyPeersMessage(fp, m); // the other workers' tables (conn/peers.ts)
};
