/**
 * SYN flood defence: what happens when a new TCP connection needs a record while the connection
 * table is (nearly) full. A flood of SYNs from spoofed sources creates one half-open connection
 * per SYN (SYN_RECV, 60 s); the sources never answer the real server's SYN+ACK, so without a
 * defence the table fills with them and every new connection is refused (DropTableFull) until
 * they time out. Established connections are never at risk here: records are preallocated and
 * nothing ever evicts an established connection, so memory stays flat whatever the rate.
 *
 * Modes (XVS_SYN_DEFENCE in the daemon's environment; the pressure point is when fewer than
 * `reserve` = capacity/16 records (at least 64) are free, the analogue of IPVS's amemthresh):
 *
 * - `oldest` (default): under pressure each new SYN first evicts the oldest half-open connections
 *   (NONE, SYN_RECV, SYNACK) it finds, from a ring of connections in creation order (skipping the
 *   ones that completed their handshake or are gone). A legitimate handshake survives as long as
 *   it is not among the oldest half-open ones the ring remembers (the last capacity/4 TCP
 *   connections created): about capacity / 4 / flood rate, e.g. 1 M records at 1 Mpps = 250 ms,
 *   far more than a round trip. Cost: 2 bytes per record of the table (a ring of capacity/4
 *   entries of 8 bytes), O(1) amortised per SYN; a legitimate half-open connection older than
 *   that is lost (the client's SYN retransmission starts it again).
 * - `drop_entry`: as IPVS's drop_entry (ip_vs_random_dropentry), random eviction: each new SYN
 *   under pressure probes 16 random records and evicts up to 2 half-open ones. Unlike the kernel,
 *   never an established connection (the kernel also drops established ones with few packets).
 *   Cost: random memory reads; every half-open connection, legitimate or not, has the same
 *   chance of going, so legitimate handshakes are lost in proportion to the flood.
 * - `drop_packet`: as IPVS's drop_packet (ip_vs_todrop): under pressure, drop 1 in `rate` new
 *   SYNs (DropSynFlood), rate = reserve / (reserve - free + 1), so all of them when the table is
 *   full. Cost: no extra memory; legitimate SYNs are dropped at the same rate as spoofed ones,
 *   and once full the table stays full until the half-open records time out.
 * - `off`: IPVS's default: a full table refuses new connections (DropTableFull).
 *
 * IPVS's secure_tcp (stricter state table, tcp_states_dos) is not offered: it would change the
 * shared TCP state machine (conn/state.ts) and only shortens how long spoofed entries live, which
 * `oldest` makes irrelevant. SYN cookies are not offered either: without a full TCP proxy (own
 * SYN+ACK, sequence translation for the whole connection) a NAT balancer cannot answer for the
 * real server; the real servers' own kernels use them (net.ipv4.tcp_syncookies).
 */
import { CF_TEMPLATE, CF_USED, CONN_CPORT_VPORT, CONN_FLAGS, CONN_WORDS, connProto, connState, type ConnTable } from "../conn/table.ts";
import { S_NONE, S_SYN_RECV, S_SYNACK } from "../conn/state.ts";
import { PROTO_TCP } from "../wire/fields.ts";
import { FLOW_PORTS } from "../wire/flow.ts";
import type { FastPathState } from "./contract.ts";
import { Stat } from "./verdict.ts";

/** What of the fast path the defence uses (contract.ts). */
export type SynGuardState = Pick<FastPathState, "conns" | "flows" | "counters" | "release">;

export const SYN_DEFENCE_OFF = 0;
export const SYN_DEFENCE_OLDEST = 1;
export const SYN_DEFENCE_DROP_ENTRY = 2;
export const SYN_DEFENCE_DROP_PACKET = 3;
export const SYN_DEFENCE_NAMES = ["off", "oldest", "drop_entry", "drop_packet"];

/** Returned by SynGuard.alloc when the defence refuses the SYN (count DropSynFlood). */
export const SYN_REFUSED = -2;
/** Ring entries examined per SYN at most (bounded work per packet). */
const SCAN_BUDGET = 64;
/** Smallest ring of recent TCP connections (oldest mode). */
const RING_MIN = 1024;
/** Half-open connections evicted per SYN at most. */
const EVICT_PER_SYN = 2;
/** Random records probed per SYN by drop_entry. */
const PROBES = 16;

/** Parse a mode name; unknown names throw (slow path, at start). */
export function synDefenceMode(name: string | undefined): number {
  const m = SYN_DEFENCE_NAMES.indexOf(name ?? "oldest");
  if (m < 0) throw new Error(`XVS_SYN_DEFENCE: '${name}' is not one of ${SYN_DEFENCE_NAMES.join(", ")}`);
  return m;
}

function halfOpen(rec: Int32Array, o: number): boolean {
  if ((rec[o + CONN_FLAGS] & (CF_USED | CF_TEMPLATE)) !== CF_USED) return false;
  if (connProto(rec, o) !== PROTO_TCP) return false;
  const s = connState(rec, o);
  return s === S_NONE || s === S_SYN_RECV || s === S_SYNACK;
}

/** The SYN flood defence of one fast path. Per-packet methods do not allocate. */
export class SynGuard {
  readonly mode: number;
  /** Free records below which the defence acts. */
  readonly reserve: number;
  /** Ring of recent TCP connections in creation order: id, ports word (cport << 16 | vport). */
  private readonly ring: Int32Array;
  private readonly cap: number;
  private head = 0;
  private count = 0;
  private dropCounter = 0;
  private rnd = 0x2545f491;

  constructor(capacity: number, mode = synDefenceMode(process.env.XVS_SYN_DEFENCE)) {
    this.mode = mode;
    this.reserve = Math.max(64, capacity >> 4);
    // a quarter of the table: under a flood the oldest half-open connections are among the last
    // capacity/4 created; 8 bytes per slot is 2 bytes per connection of the table
    this.cap = mode === SYN_DEFENCE_OLDEST ? Math.max(RING_MIN, capacity >> 2) : 0;
    this.ring = new Int32Array(this.cap * 2);
  }

  /** Bytes of memory the defence keeps (its ring). */
  get bytes(): number {
    return this.ring.byteLength;
  }

  /**
   * Take a record for a new TCP connection from the flow at `row`: the id, -1 when the table is
   * full, or SYN_REFUSED (drop_packet).
   */
  alloc(fp: SynGuardState, row: number): number {
    const conns = fp.conns;
    const free = conns.capacity - conns.size;
    if (free <= this.reserve && this.mode !== SYN_DEFENCE_OFF) {
      if (this.mode === SYN_DEFENCE_OLDEST) this.evictOldest(fp);
      else if (this.mode === SYN_DEFENCE_DROP_ENTRY) this.evictRandom(fp);
      else {
        const rate = (this.reserve / (this.reserve - free + 1)) | 0;
        if (++this.dropCounter >= rate) {
          this.dropCounter = 0;
          return SYN_REFUSED;
        }
      }
    }
    const id = conns.alloc();
    if (id >= 0 && this.cap > 0) this.remember(id, fp.flows[row + FLOW_PORTS]);
    return id;
  }

  private remember(id: number, ports: number): void {
    if (this.count === this.cap) {
      this.head = (this.head + 1) % this.cap;
      this.count--;
    }
    const at = ((this.head + this.count) % this.cap) * 2;
    this.ring[at] = id;
    this.ring[at + 1] = ports;
    this.count++;
  }

  private evictOldest(fp: SynGuardState): void {
    const rec = fp.conns.rec;
    let evicted = 0;
    for (let k = 0; k < SCAN_BUDGET && this.count > 0 && evicted < EVICT_PER_SYN; k++) {
      const at = this.head * 2;
      const id = this.ring[at],
        o = id * CONN_WORDS;
      this.head = (this.head + 1) % this.cap;
      this.count--;
      // still the same connection (ids are reused: the ports tell, nearly always) and still half-open?
      if (rec[o + CONN_CPORT_VPORT] !== this.ring[at + 1] || !halfOpen(rec, o)) continue;
      this.evict(fp, id);
      evicted++;
    }
  }

  private evictRandom(fp: SynGuardState, conns: ConnTable = fp.conns): void {
    const rec = conns.rec;
    let evicted = 0;
    for (let k = 0; k < PROBES && evicted < EVICT_PER_SYN; k++) {
      let x = this.rnd;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.rnd = x;
      const id = (x >>> 0) % conns.capacity;
      if (!halfOpen(rec, id * CONN_WORDS)) continue;
      this.evict(fp, id);
      evicted++;
    }
  }

  private evict(fp: SynGuardState, id: number): void {
    fp.release(id);
    fp.counters.verdicts[Stat.HalfOpenEvicted] += 1;
  }
}
