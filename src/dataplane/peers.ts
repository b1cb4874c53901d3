/**
 * Workers that share connections (conn/peers.ts): the message that tells each worker the other
 * workers' tables, and its application between rounds. The dataplane posts it to every worker
 * once all have started (and again whenever the set of workers changes); a worker alone gets
 * none and keeps the single-queue path (no peer lookups, no sequence word bumps).
 */
import { ConnPeers } from "../conn/peers.ts";
import type { ConnTableBuffers } from "../conn/table.ts";
import type { FastPath } from "./fastpath.ts";
import { PathMtu } from "./icmp.ts";

export interface PeersMessage {
  type: "peers";
  /** This worker's index in `conns`. */
  self: number;
  /** Every worker's connection table, in worker order. */
  conns: ConnTableBuffers[];
  /** Path MTUs learned from ICMP errors, shared by every worker (PathMtu.allocate). */
  pmtu: SharedArrayBuffer;
}

/** The peers messages for workers whose tables are `conns` (worker order). */
export function peersMessages(conns: ConnTableBuffers[], pmtu: SharedArrayBuffer = PathMtu.allocate()): PeersMessage[] {
  return conns.map((_, self) => ({ type: "peers", self, conns, pmtu }));
}

/** Worker side: look up the other workers' tables on a miss from the next burst on. */
export function applyPeersMessage(fp: FastPath, m: PeersMessage): void {
  fp.pmtu.share(m.pmtu);
  // a posted SharedArrayBuffer arrives as a new object over the same memory: this worker's own
  // entry must be the buffers its table already holds (ConnPeers checks identity)
  const all = m.conns.map((c, k) => (k === m.self ? fp.home.buffers : c));
  fp.setPeers(m.conns.length > 1 ? new ConnPeers(fp.home, all, m.self) : null);
}
