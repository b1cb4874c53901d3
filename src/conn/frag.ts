/**
 * IPv4 fragment tracking: which connection the non-first fragments of a datagram belong to.
 *
 * The kernel reassembles before IPVS sees a packet (ip_local_deliver -> ip_defrag); xvs does
 * not reassemble. Like Cilium (bpf/lib/ipv4.h ipv4_handle_fragmentation), it remembers, from
 * the first fragment (the one with the L4 header), the datagram key (src, dst, IP id, proto)
 * and the connection that fragment went to; later fragments of that datagram (no ports) follow
 * it. A fragment whose first fragment was not seen cannot be placed and is the caller's orphan.
 *
 * Bounded state, no Map and no allocation after construction: `capacity` records in a ring, in
 * creation order, and an open-addressing index over them (linear probing, backward-shift
 * deletion, load <= 0.5). Every record lives FRAG_TIMEOUT_SEC from its first fragment (the
 * kernel's ipq timer is also armed once, at creation: inet_frag_find / ipfrag_time), so the ring
 * head always holds the earliest deadline: expired records are reclaimed from the head, a few per
 * call, and a full ring of live records means the table is full (the caller counts it).
 *
 * The connection may be another worker's (a NAT reply's first fragment on another queue than
 * its request, conn/peers.ts): `table` says whose.
 *
 * Memory: capacity * 37 bytes of records + an index of 2 * capacity Int32 (capacity 16384: ~600 KiB).
 */
import { hashTuple } from "../wire/flow.ts";
import { TICKS_PER_SEC } from "./table.ts";

/** Lifetime of a tracked datagram, seconds (net.ipv4.ipfrag_time default). */
export const FRAG_TIMEOUT_SEC = 30;
/** Default number of datagrams tracked at once per worker. */
export const FRAG_CAPACITY = 16384;
/** Expired records reclaimed from the ring head per call (bounded work per packet). */
const RECLAIM_PER_CALL = 4;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The fragment table of one worker. Per-packet methods do not allocate. */
export class FragTable {
  readonly capacity: number;
  /** Datagram key: source, destination, IP id << 8 | protocol. */
  readonly src: Int32Array;
  readonly dst: Int32Array;
  readonly idProto: Int32Array;
  /** The first fragment's ports word (sport << 16 | dport), to check the connection is still the same one. */
  readonly ports: Int32Array;
  /** Connection: id << 1 | direction (conn/table.ts DIR_IN / DIR_OUT). */
  readonly conn: Int32Array;
  /** The connection's real server (dest id) when the first fragment went through. */
  readonly dest: Int32Array;
  /** Whose table holds the connection: 0 this worker's, k + 1 another worker's (conn/peers.ts views[k]). */
  readonly table: Int32Array;
  /** Deadline, ticks (wrapping int32). */
  readonly expires: Int32Array;
  private readonly hash: Int32Array;
  private readonly live: Uint8Array;
  private readonly index: Int32Array;
  private readonly mask: number;
  private readonly seed: number;
  private readonly timeoutTicks: number;
  /** Ring: oldest record and number of records (live or dead) in the ring. */
  private head = 0;
  private count = 0;

  constructor(capacity = FRAG_CAPACITY, seed = (Math.random() * 0x7fffffff) | 0, timeoutSec = FRAG_TIMEOUT_SEC) {
    if (!(capacity >= 1 && capacity <= 1 << 22)) throw new RangeError("fragment table capacity must be 1..4194304");
    this.capacity = capacity;
    this.src = new Int32Array(capacity);
    this.dst = new Int32Array(capacity);
    this.idProto = new Int32Array(capacity);
    this.ports = new Int32Array(capacity);
    this.conn = new Int32Array(capacity);
    this.dest = new Int32Array(capacity);
    this.table = new Int32Array(capacity);
    this.expires = new Int32Array(capacity);
    this.hash = new Int32Array(capacity);
    this.live = new Uint8Array(capacity);
    this.index = new Int32Array(nextPow2(capacity * 2));
    this.mask = this.index.length - 1;
    this.seed = seed | 0;
    this.timeoutTicks = timeoutSec * TICKS_PER_SEC;
  }

  /** Return the number of live (not yet reclaimed) records. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += this.live[(this.head + i) % this.capacity];
    return n;
  }

  private keyHash(src: number, dst: number, idProto: number): number {
    return hashTuple(this.seed, src, 0, 0, 0, dst, 0, 0, 0, idProto, idProto & 0xff);
  }

  /** Return the record of a datagram, live or expired, or -1. */
  private probe(h: number, src: number, dst: number, idProto: number): number {
    const idx = this.index,
      mask = this.mask;
    let i = h & mask;
    for (;;) {
      const e = idx[i];
      if (e === 0) return -1;
      const r = e - 1;
      if (this.hash[r] === h && this.idProto[r] === idProto && this.src[r] === src && this.dst[r] === dst) return r;
      i = (i + 1) & mask;
    }
  }

  /** Return the live, unexpired record of a datagram, or -1. */
  find(src: number, dst: number, idProto: number, now: number): number {
    this.reclaim(now, RECLAIM_PER_CALL);
    const r = this.probe(this.keyHash(src, dst, idProto), src, dst, idProto);
    if (r < 0 || ((this.expires[r] - now) | 0) <= 0) return -1;
    return r;
  }

  /**
   * Return true when a new datagram can be recorded now (an existing live record of the same
   * key counts as room: it is kept). Reclaims expired records first.
   */
  room(src: number, dst: number, idProto: number, now: number): boolean {
    this.reclaim(now, RECLAIM_PER_CALL);
    if (this.count < this.capacity) return true;
    // full of live records: only an existing datagram (a repeated first fragment) fits
    return this.find(src, dst, idProto, now) >= 0;
  }

  /**
   * Record the first fragment of a datagram. A live record of the same key is kept as it is
   * (first one wins: a second "first fragment" with other ports cannot re-route the datagram);
   * an expired one is replaced. Returns the record, or -1 when the table is full.
   */
  insert(src: number, dst: number, idProto: number, ports: number, conn: number, dest: number, now: number, table = 0): number {
    this.reclaim(now, RECLAIM_PER_CALL);
    const h = this.keyHash(src, dst, idProto);
    const old = this.probe(h, src, dst, idProto);
    if (old >= 0) {
      if (((this.expires[old] - now) | 0) > 0) return old;
      this.unindex(old);
      this.live[old] = 0;
    }
    if (this.count === this.capacity) return -1;
    const r = (this.head + this.count) % this.capacity;
    this.count++;
    this.src[r] = src;
    this.dst[r] = dst;
    this.idProto[r] = idProto;
    this.ports[r] = ports;
    this.conn[r] = conn;
    this.dest[r] = dest;
    this.table[r] = table;
    this.expires[r] = (now + this.timeoutTicks) | 0;
    this.hash[r] = h;
    this.live[r] = 1;
    let i = h & this.mask;
    while (this.index[i] !== 0) i = (i + 1) & this.mask;
    this.index[i] = r + 1;
    return r;
  }

  /** Free up to `budget` expired records from the ring head; returns how many were freed. */
  reclaim(now: number, budget: number): number {
    let n = 0;
    while (n < budget && this.count > 0) {
      const r = this.head;
      if (this.live[r] !== 0) {
        if (((this.expires[r] - now) | 0) > 0) break;
        this.unindex(r);
        this.live[r] = 0;
      }
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      n++;
    }
    return n;
  }

  private unindex(r: number): void {
    const idx = this.index,
      mask = this.mask;
    let i = this.hash[r] & mask;
    for (;;) {
      const e = idx[i];
      if (e === 0) return;
      if (e === r + 1) break;
      i = (i + 1) & mask;
    }
    // backward-shift deletion (as conn/table.ts): no tombstones, probe lengths never degrade
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = idx[j];
      if (e === 0) break;
      const home = this.hash[e - 1] & mask;
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        idx[hole] = e;
        hole = j;
      }
    }
    idx[hole] = 0;
  }
}
