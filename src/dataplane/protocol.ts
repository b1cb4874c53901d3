/**
 * Messages between the control thread and a dataplane worker, and the words of the control
 * block they share. Configuration arrives as whole `Tables` generations, in order; the worker
 * acknowledges each by storing its number in CTL_APPLIED_GEN.
 */
import type { FlowCacheInit } from "./flowcache-control.ts";
import type { ConnTableBuffers } from "../conn/table.ts";
import type { PortGeometry } from "../ffi/xsk.ts";
import type { Tables } from "../service/tables.ts";
import type { CounterBuffers } from "../stats/counters.ts";
import type { SyncWorkerMessage } from "./sync-feed.ts";
import type { PeersMessage } from "./peers.ts";

/** Control block words (Int32Array over a SharedArrayBuffer). */
export const CTL_STOP = 0;
/** Highest generation posted by the control thread. */
export const CTL_POSTED_GEN = 1;
/** Generation the worker runs. */
export const CTL_APPLIED_GEN = 2;
/** Bumped by the worker every loop round: a stalled worker stops bumping it. */
export const CTL_HEARTBEAT = 3;
/** Table clock epoch, ms (Float64 view over words 4..5). */
export const CTL_EPOCH_F64 = 2;
export const CTL_WORDS = 8;

export interface WorkerIface {
  name: string;
  queue: number;
  /** XSKMAP slot of this (interface, queue). */
  slot: number;
}

export interface InitMessage {
  type: "init";
  /** The worker's index (log lines). */
  worker: number;
  /** One socket each: every rx queue this worker owns, of every interface (queues.ts). */
  ifaces: WorkerIface[];
  xskmapFd: number;
  bindFlags: number;
  geometry: PortGeometry;
  /** poll() timeout when idle, ms (0: spin). */
  idleMs: number;
  ctl: SharedArrayBuffer;
  conns: ConnTableBuffers;
  counters: CounterBuffers;
  nexthops: SharedArrayBuffer;
  resolveRing: SharedArrayBuffer;
  tables: Tables;
  /** Connections a restart adopted (dataplane/restart.ts), installed before the first burst. */
  adopt?: Int32Array;
  /** The XDP flow cache's map to fill (flowcache.ts); absent with --flow-cache off. */
  flowCache?: FlowCacheInit;
  /** Path MTUs learned from ICMP errors (icmp.ts PathMtu.allocate): shared by every worker, mirrored to XDP (flow-pmtu.ts). */
  pmtu?: SharedArrayBuffer;
}

export interface TablesMessage {
  type: "tables";
  tables: Tables;
}

/** Queues that appeared after the start (`ethtool -L`): open a socket on each between rounds. */
export interface AddQueuesMessage {
  type: "addQueues";
  ifaces: WorkerIface[];
}

export type ToWorker = InitMessage | TablesMessage | SyncWorkerMessage | AddQueuesMessage | PeersMessage;

export type FromWorker =
  | { type: "ready"; zeroCopy: boolean[] }
  | { type: "error"; message: string }
  | { type: "stopped" }
  | { type: "queuesAdded"; added: WorkerIface[]; errors: string[] };

/** Return the table clock (10 ms ticks since `epochMs`), shared by workers and listings. */
export function ticksSince(epochMs: number, nowMs = Date.now()): number {
  return ((nowMs - epochMs) / 10) | 0;
}
