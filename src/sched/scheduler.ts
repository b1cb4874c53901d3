/**
 * The scheduler interface: every IPVS scheduler is one file exporting one `Scheduler`, found by
 * name or id in registry.ts. Schedulers run on the dataplane worker for the first packet of a
 * connection; their per-service state lives in `SchedView.state` (SCHED_STATE_WORDS int32 per
 * service) so that no scheduler allocates per packet.
 *
 * Dest ids, list order and weights come from the compiled `Tables`; connection counts and the
 * OVERLOAD flag are the worker's live counters. A scheduler that needs a precomputed bucket
 * table (sh, dh, mh) builds it on the control thread with `buildTable`, and compile.ts stores it
 * in `Tables.buckets`.
 */
import type { Tables } from "../service/tables.ts";
import type { Service } from "../service/model.ts";

/** int32 words of per-service scheduler state. */
export const SCHED_STATE_WORDS = 8;

/** What a scheduler sees on the worker. */
export interface SchedView {
  t: Tables;
  /** Per dest id: ActiveConn. */
  active: Int32Array;
  /** Per dest id: InActConn. */
  inactive: Int32Array;
  /** Per dest id: PersistConn (templates). */
  persist: Int32Array;
  /** Per dest id: 1 when IP_VS_DEST_F_OVERLOAD is set (upper threshold reached). */
  overload: Uint8Array;
  /** Per service: SCHED_STATE_WORDS words of scheduler state. */
  state: Int32Array;
  /** Uniform random int32 source (twos); replaceable in tests. */
  random: () => number;
}

/** An IPVS scheduling algorithm. */
export interface Scheduler {
  /** ipvsadm's name (`-s NAME`). */
  readonly name: string;
  /**
   * Control side: bucket table for a service (sh, dh, mh), filled into `out` from `off`;
   * returns its length. Absent for schedulers without one.
   */
  tableSize?(svc: Service): number;
  buildTable?(svc: Service, out: Int32Array, off: number): void;
  /** Worker side: (re)start the service's state (new service, or a scheduler change: -E). */
  init(v: SchedView, svc: number): void;
  /**
   * Worker side: the service's dests or weights changed (add_dest/del_dest/upd_dest);
   * `prev` is the generation the worker used before.
   */
  update(v: SchedView, svc: number, prev: Tables): void;
  /** Pick a dest id for the first packet of a connection (flow row as in wire/flow.ts), or -1. */
  schedule(v: SchedView, svc: number, flow: Int32Array, row: number): number;
}

/** ip_vs_dest_conn_overhead: active connections weigh 256 times an inactive one. */
export function connOverhead(v: SchedView, d: number): number {
  return v.active[d] * 256 + v.inactive[d];
}
