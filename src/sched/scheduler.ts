/**
 * The scheduler interface: every IPVS scheduler is one file exporting one `Scheduler`, found by
 * name or id in registry.ts. Schedulers run on the dataplane worker for the first packet of a
 * connection; their per-service state lives in `SchedView.state` (SCHED_STATE_WORDS int32 per
 * service), or, for the caches of lblc/lblcr, in typed arrays allocated once by `init` and
 * kept in `SchedView.aux`, so that no scheduler allocates per packet.
 *
 * Dest ids, list order and weights come from the compiled `Tables`; connection counts and the
 * OVERLOAD flag are the live counters. On the dataplane `state`, the counts and the flags are one
 * per service over all workers (dataplane/shared-sched.ts), and `schedule` runs under the
 * service's lock, so a scheduler reads and writes `state` as if it ran alone. A scheduler that needs a precomputed table (sh,
 * dh and mh buckets, wrr's log of weight changes) builds it on the control thread with
 * `buildTable`, and config/compile.ts stores it in `Tables.buckets`.
 *
 * List order is the kernel's: a new dest is inserted at the head of its service's list
 * (list_add_rcu in __ip_vs_update_dest), so every walk below visits the newest dest first and
 * every tie goes to the more recently added dest.
 */
import {
  DEST_FLAGS,
  DEST_WEIGHT,
  DEST_WORDS,
  DESTF_AVAILABLE,
  SVC_DEST_N,
  SVC_DEST_OFF,
  SVC_TABLE_OFF,
  SVC_WORDS,
  type Tables,
  SVCF_SCHED2,
  SVCF_V6,
} from "../service/tables.ts";
import { FLOW_PORTS, FLOW_SRC } from "../wire/flow.ts";
import { SCHED_STATE_WORDS } from "../stats/counters.ts";
import type { LocalityPool } from "./locality.ts";

/** int32 words of per-service scheduler state (sized where the shared buffers are allocated). */
export { SCHED_STATE_WORDS };

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
  /** Uniform random non-negative int32 source (twos); replaceable in tests. */
  random: () => number;
  /** Table clock in ticks (service/clock.ts TICKS_PER_SEC), set before each schedule call (lblc/lblcr ages). */
  now?: number;
  /** Per service id: a scheduler's own preallocated structure (lblc/lblcr caches), made by `init`. */
  aux?: unknown[];
  /** The dataplane's locality pool: lblc/lblcr caches shared by all workers (locality.ts); absent: per view. */
  locality?: LocalityPool;
}

/**
 * What `tableSize`/`buildTable` read of a service on the control thread: a part of
 * config/model.ts `Service`, named here so that the schedulers do not depend on the model
 * (the model's compiler calls them).
 */
export interface TableInput {
  family: 4 | 6;
  /** Dests in kernel list order (newest first). */
  dests: readonly {
    id: number;
    port: number;
    addr: { readonly words: readonly number[] };
    /** Last non-zero weight (the kernel's last_weight). */
    lastWeight: number;
    spec: { readonly weight: number };
  }[];
  /** Weight summaries since the scheduler was bound, DEST_CHANGE_WORDS numbers each (tables.ts). */
  destChanges: readonly number[];
}

/** An IPVS scheduling algorithm. */
export interface Scheduler {
  /** ipvsadm's name (`-s NAME`). */
  readonly name: string;
  /**
   * Control side: size of the service's precomputed table (sh, dh, mh buckets; wrr's change
   * log), filled into `out` from `off` by `buildTable`. Absent for schedulers without one.
   */
  tableSize?(svc: TableInput): number;
  buildTable?(svc: TableInput, out: Int32Array, off: number): void;
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

/** ip_vs_dest_conn_overhead: an active connection weighs 256 inactive ones. */
export function connOverhead(v: SchedView, d: number): number {
  return v.active[d] * 256 + v.inactive[d];
}

/** Return the offset of a service's dest list in `t.destList`. */
export function listOff(t: Tables, svc: number): number {
  return t.svc[svc * SVC_WORDS + SVC_DEST_OFF];
}

/** Return the number of dests of a service. */
export function listLen(t: Tables, svc: number): number {
  return t.svc[svc * SVC_WORDS + SVC_DEST_N];
}

/** Return the offset of a service's precomputed table in `t.buckets`. */
export function tableOff(t: Tables, svc: number): number {
  return t.svc[svc * SVC_WORDS + SVC_TABLE_OFF];
}

/** Return a dest's weight. */
export function weightOf(t: Tables, d: number): number {
  return t.dest[d * DEST_WORDS + DEST_WEIGHT];
}

/** Return true when a dest is not in the trash (IP_VS_DEST_F_AVAILABLE). */
export function available(t: Tables, d: number): boolean {
  return (t.dest[d * DEST_WORDS + DEST_FLAGS] & DESTF_AVAILABLE) !== 0;
}

/** Greatest common divisor of two positive integers. */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

/**
 * Return true when `x1 * y1 > x2 * y2` exactly, for non-negative integers x < 2^36 (overheads)
 * and y < 2^32 (weights): the kernel compares such products as 64-bit integers (`(__s64)loh *
 * weight > (__s64)doh * lweight`). Doubles are exact below 2^53, which covers every realistic
 * case; above it each product is split at 2^17 into two exact parts and compared part by part.
 */
export function productGreater(x1: number, y1: number, x2: number, y2: number): boolean {
  const a = x1 * y1,
    b = x2 * y2;
  if (a < 9007199254740992 && b < 9007199254740992) return a > b;
  const h1 = Math.floor(x1 / 131072) * y1,
    l1 = (x1 % 131072) * y1;
  const h2 = Math.floor(x2 / 131072) * y2,
    l2 = (x2 % 131072) * y2;
  const H1 = h1 + Math.floor(l1 / 131072),
    L1 = l1 % 131072;
  const H2 = h2 + Math.floor(l2 / 131072),
    L2 = l2 % 131072;
  return H1 > H2 || (H1 === H2 && L1 > L2);
}

/**
 * The client key sh and mh hash (ip_vs_sh_hashkey / ip_vs_mh_hashkey): the source address, IPv6
 * folded by XOR of its four words.
 */
export function sourceFold(flags: number, flow: Int32Array, row: number): number {
  return (flags & SVCF_V6) !== 0 ? flow[row + FLOW_SRC] ^ flow[row + FLOW_SRC + 1] ^ flow[row + FLOW_SRC + 2] ^ flow[row + FLOW_SRC + 3] : flow[row + FLOW_SRC];
}

/** The client's source port when the service hashes ports too (sh-port / mh-port), else 0. */
export function sourcePort(flags: number, flow: Int32Array, row: number): number {
  return (flags & SVCF_SCHED2) !== 0 ? flow[row + FLOW_PORTS] >>> 16 : 0;
}
