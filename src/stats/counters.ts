/**
 * Shared counters of one worker: verdicts (dataplane/verdict.ts Stat), per-service and per-dest traffic, and the
 * per-dest connection counts the schedulers use. The worker writes; the control thread sums
 * over workers for listings and the rate estimator.
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

export interface CounterBuffers {
  verdicts: SharedArrayBuffer;
  traffic: SharedArrayBuffer;
  active: SharedArrayBuffer;
  inactive: SharedArrayBuffer;
  persist: SharedArrayBuffer;
  overload: SharedArrayBuffer;
  svcRefs: SharedArrayBuffer;
  loop: SharedArrayBuffer;
}

/** Typed views over one worker's counters. */
export class Counters {
  readonly verdicts: Float64Array;
  readonly traffic: Float64Array;
  readonly active: Int32Array;
  readonly inactive: Int32Array;
  readonly persist: Int32Array;
  readonly overload: Uint8Array;
  /** Connections (and templates) naming each service id. */
  readonly svcRefs: Int32Array;
  /** The worker's busy and loop nanoseconds (WL_*). */
  readonly loop: Float64Array;

  constructor(readonly buffers: CounterBuffers = Counters.allocate()) {
    this.verdicts = new Float64Array(buffers.verdicts);
    this.traffic = new Float64Array(buffers.traffic);
    this.active = new Int32Array(buffers.active);
    this.inactive = new Int32Array(buffers.inactive);
    this.persist = new Int32Array(buffers.persist);
    this.overload = new Uint8Array(buffers.overload);
    this.svcRefs = new Int32Array(buffers.svcRefs);
    this.loop = new Float64Array(buffers.loop);
  }

  static allocate(): CounterBuffers {
    return {
      verdicts: new SharedArrayBuffer(VERDICT_SLOTS * 8),
      traffic: new SharedArrayBuffer((MAX_SERVICES + MAX_DESTS) * TS_WORDS * 8),
      active: new SharedArrayBuffer(MAX_DESTS * 4),
      inactive: new SharedArrayBuffer(MAX_DESTS * 4),
      persist: new SharedArrayBuffer(MAX_DESTS * 4),
      overload: new SharedArrayBuffer(MAX_DESTS),
      svcRefs: new SharedArrayBuffer(MAX_SERVICES * 4),
      loop: new SharedArrayBuffer(WL_WORDS * 8),
    };
  }
}
