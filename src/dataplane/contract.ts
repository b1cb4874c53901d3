/**
 * The fast path's contract with its helpers: what `FastPath` (fastpath.ts, which owns the burst)
 * lends to schedule.ts, synflood.ts, frag.ts and icmp.ts. Each helper names the part it uses
 * (a `Pick` of this interface), so what one of them may touch is written down, not found by
 * reading it.
 *
 * Verdicts travel back as return values: every step that finishes a frame returns its out port,
 * the port to send the frame on or OUT_DROP, after counting the frame's one verdict. Only
 * `processBurst` writes it into the descriptor. A helper may move the descriptor's address and
 * length (a reply built in place, tunnel headers in the headroom), never its out port.
 */
import type { ConnTable } from "../conn/table.ts";
import type { ConnPeers } from "../conn/peers.ts";
import type { SchedView } from "../sched/scheduler.ts";
import type { Tables } from "../service/tables.ts";
import type { Counters } from "../stats/counters.ts";
import type { FlowCache } from "./flowcache.ts";
import type { PathMtu } from "./icmp.ts";
import type { NextHopView } from "./route.ts";
import type { SynGuard } from "./synflood.ts";
import type { Stat } from "./verdict.ts";

export interface FastPathState {
  /** The configuration generation in force (between bursts it may change, never within one). */
  readonly tables: Tables;
  /** The table whose records the current packet uses: `home`, or another worker's view (borrow). */
  readonly conns: ConnTable;
  /** This worker's own table. */
  readonly home: ConnTable;
  /** The other workers' tables (conn/peers.ts), looked up when `home` misses; null with one worker. */
  readonly peers: ConnPeers | null;
  readonly counters: Counters;
  /** The schedulers' view (tables, per-dest counts, their own state). */
  readonly sched: SchedView;
  /** Next hops and the resolve ring. */
  readonly nh: NextHopView;
  /** The burst's flow rows (wire/flow.ts), filled by classify(). */
  readonly flows: Int32Array;
  /** Per packet of the burst: the IP packet's length (header + payload, no Ethernet padding). */
  readonly l3Len: Int32Array;
  /** The frame buffer (UMEM) as bytes and as a big-endian DataView. */
  readonly u8: Uint8Array;
  readonly dv: DataView;
  /** Current time in ticks, set per burst. */
  readonly now: number;
  /** Path MTUs learned from ICMP errors about our tunnel packets. */
  readonly pmtu: PathMtu;
  /** The XDP flow cache's worker side (flowcache.ts): a new NAT connection takes over a cached reply tuple. */
  readonly flowCache: FlowCache;
  readonly synGuard: SynGuard;

  /** Use table `t`'s records for the current packet (a peer's view from `peers`); borrow(home) when done. */
  borrow(t: ConnTable): void;
  /** Count the drop `reason`; returns OUT_DROP. */
  drop(reason: Stat): number;
  /** Client -> real server on existing connection `id`: state, timer, then transmitIn. */
  forward(descs: Uint32Array, d: number, row: number, pkt: number, id: number): number;
  /** Count and send a client packet to real server `dest` by forwarding method `fwd`. */
  transmitIn(descs: Uint32Array, d: number, row: number, pkt: number, svc: number, dest: number, dport: number, fwd: number, v6: number, id: number): number;
  /** Encapsulate for TUN real server `dest`: the out port, or ~out when the frame was dropped or answered instead. */
  tunnelOut(
    descs: Uint32Array,
    d: number,
    row: number,
    pkt: number,
    l3: number,
    l3len: number,
    innerV6: number,
    dest: number,
    nh: number,
    hash: number,
    icmp: boolean,
  ): number;
  /** Replace the frame with an ICMP error to its sender: its in port, or OUT_DROP when rate-limited. */
  sendIcmp(descs: Uint32Array, d: number, row: number, pkt: number, v6: number, type: number, code: number, rest: number): number;
  /** Replace the TCP segment with the RST the director's stack would send: its in port. */
  sendReset(descs: Uint32Array, d: number, row: number, pkt: number, v6: number): number;
  /** Address the frame to connection `id`'s client: the port, or -1 after counting the drop. */
  clientHop(descs: Uint32Array, d: number, id: number): number;
  /** Record where NAT replies to this client go. */
  setReplyHop(rec: Int32Array, o: number, inPort: number, frame: number, row: number, v6: number): void;
  /** ip_vs_in_stats / ip_vs_out_stats. */
  countIn(svc: number, dest: number, bytes: number): void;
  countOut(svc: number, dest: number, bytes: number): void;
  /** TTL / hop limit minus one (IPv4: and its header checksum). */
  decTtl(l3: number, v6: number): void;
  /** Free connection `id` with everything that counts it. */
  release(id: number): void;
}
