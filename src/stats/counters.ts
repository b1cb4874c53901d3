/**
 * Shared counters of one worker: verdicts (dataplane/verdict.ts Stat), per-service and per-dest
 * traffic, written by the worker alone and summed over workers by the control thread for
 * listings and the rate estimator.
 *
 * One per service, not per worker (as IPVS, whose counts are per dest whatever CPU a packet
 * arrived on): the per-dest connection counts (ActiveConn, InActConn, PersistConn, the
 * OVERLOAD flag) and the schedulers' state and lock words (dataplane/shared-sched.ts, stats/svc-lock.ts)
 * live in `SharedCountBuffers`, allocated once by the dataplane and given to every worker's
 * `Counters`; the control thread reads them once, from any worker, never sums them.
 */
import { MAX_DESTS, MAX_SERVICES } from "../service/tables.ts";

/** Verdict counter slots (dataplane/verdict.ts's Stat must fit). */
export const VERDICT_SLOTS = 64;

/** Traffic words per service / per dest (IPVS ip_vs_stats order). */
export const TS_CONNS = 0;
export const TS_INPKTS = 1;
export const TS_OUTPKTS = 2;
export const TS_INBYTES = 3;
export const TS_OUTBYTES = 4;
export const TS_WORDS = 5;

/**
 * Words of `loop`, the worker's own time (nanoseconds since its loop started, written once per
 * round of bursts): time spent on bursts that carried frames, and the loop's whole time. Their
 * ratio is the worker's busy share (docs/metrics.md: xvs_worker_busy_seconds_total).
 */
export const WL_BUSY_NS = 0;
export const WL_LOOP_NS = 1;
export const WL_WORDS = 2;

/** Offset of a dest's traffic words in `traffic` (services come first). */
export const DEST_TRAFFIC_BASE = MAX_SERVICES * TS_WORDS;

/** int32 words of per-service scheduler state (sched/scheduler.ts SchedView.state). */
export const SCHED_STATE_WORDS = 8;
/**
 * int32 words per service in `svcLock`: one cache line each, so that two services' locks never
 * share a line. Word SL_LOCK is the service's lock (stats/svc-lock.ts), word SL_APPLIED the
 * Tables generation + 1 whose scheduler transition (init/update) was last applied (0: never).
 */
export const SL_WORDS = 16;
export const SL_LOCK = 0;
export const SL_APPLIED = 1;
/** Byte offset + 1 of the service's lblc/lblcr table in the locality pool (0: none), and its width. */
export const SL_LOC_OFF = 2;
export const SL_LOC_WIDTH = 3;

/**
 * The locality pool (sched/locality.ts): a growable SharedArrayBuffer holding the lblc/lblcr
 * caches of all services, carved out as schedulers start (about 0.8 MiB per lblc service,
 * 2 MiB per lblcr one). Its first line is the pool's header: a lock word and the bytes in use.
 */
export const LOCALITY_POOL_MAX = 256 * 1024 * 1024;
export const LOCALITY_POOL_HEADER = 64;
export const LP_LOCK = 0;
export const LP_BUMP = 1;
/** The buffers every worker shares (one per dataplane). */
export interface SharedCountBuffers {
  total: SharedArrayBuffer;
  active: SharedArrayBuffer;
  inactive: SharedArrayBuffer;
  persist: SharedArrayBuffer;
  overload: SharedArrayBuffer;
  schedState: SharedArrayBuffer;
  svcLock: SharedArrayBuffer;
  /** Growable, up to LOCALITY_POOL_MAX. */
  locality: SharedArrayBuffer;
}

export interface CounterBuffers extends SharedCountBuffers {
  verdicts: SharedArrayBuffer;
  traffic: SharedArrayBuffer;
  svcRefs: SharedArrayBuffer;
  loop: SharedArrayBuffer;
}

/** Typed views over one worker's counters (and the shared ones). */
export class Counters {
  readonly verdicts: Float64Array;
  readonly traffic: Float64Array;
  /**
   * Shared by all workers: per dest id, changed with Atomics (conn/accounting.ts). `total` is
   * active + inactive (ip_vs_dest_totalconns) kept in its own word, so that a connection moving
   * between active and inactive never shows OVERLOAD a total one off.
   */
  readonly total: Int32Array;
  readonly active: Int32Array;
  readonly inactive: Int32Array;
  readonly persist: Int32Array;
  /** Shared: 1 when OVERLOAD is set; written only under the dest's service lock. */
  readonly overload: Uint8Array;
  /** Shared: SCHED_STATE_WORDS per service, read and written under the service's lock. */
  readonly schedState: Int32Array;
  /** Shared: SL_WORDS per service (lock, applied generation). */
  readonly svcLock: Int32Array;
  /** Connections (and templates) naming each service id. */
  readonly svcRefs: Int32Array;
  /** The worker's busy and loop nanoseconds (WL_*). */
  readonly loop: Float64Array;

  constructor(readonly buffers: CounterBuffers = Counters.allocate()) {
    this.verdicts = new Float64Array(buffers.verdicts);
    this.traffic = new Float64Array(buffers.traffic);
    this.total = new Int32Array(buffers.total);
    this.active = new Int32Array(buffers.active);
    this.inactive = new Int32Array(buffers.inactive);
    this.persist = new Int32Array(buffers.persist);
    this.overload = new Uint8Array(buffers.overload);
    this.schedState = new Int32Array(buffers.schedState);
    this.svcLock = new Int32Array(buffers.svcLock);
    this.svcRefs = new Int32Array(buffers.svcRefs);
    this.loop = new Float64Array(buffers.loop);
  }

  /** One worker's buffers; `shared` is the dataplane's one set (a fresh one for a lone fast path). */
  static allocate(shared: SharedCountBuffers = Counters.allocateShared()): CounterBuffers {
    return {
      ...shared,
      verdicts: new SharedArrayBuffer(VERDICT_SLOTS * 8),
      traffic: new SharedArrayBuffer((MAX_SERVICES + MAX_DESTS) * TS_WORDS * 8),
      svcRefs: new SharedArrayBuffer(MAX_SERVICES * 4),
      loop: new SharedArrayBuffer(WL_WORDS * 8),
    };
  }

  /** The buffers all workers of a dataplane share, allocated once. */
  static allocateShared(): SharedCountBuffers {
    return {
      total: new SharedArrayBuffer(MAX_DESTS * 4),
      active: new SharedArrayBuffer(MAX_DESTS * 4),
      inactive: new SharedArrayBuffer(MAX_DESTS * 4),
      persist: new SharedArrayBuffer(MAX_DESTS * 4),
      overload: new SharedArrayBuffer(MAX_DESTS),
      schedState: new SharedArrayBuffer(MAX_SERVICES * SCHED_STATE_WORDS * 4),
      svcLock: new SharedArrayBuffer(MAX_SERVICES * SL_WORDS * 4),
      locality: new SharedArrayBuffer(LOCALITY_POOL_HEADER, { maxByteLength: LOCALITY_POOL_MAX }),
    };
  }

  /** The shared part of these buffers (to build another worker's Counters over the same counts). */
  shared(): SharedCountBuffers {
    const b = this.buffers;
    return {
      total: b.total,
      active: b.active,
      inactive: b.inactive,
      persist: b.persist,
      overload: b.overload,
      schedState: b.schedState,
      svcLock: b.svcLock,
      locality: b.locality,
    };
  }
}
