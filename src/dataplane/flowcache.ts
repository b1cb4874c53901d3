/**
 * The flow cache, TypeScript side (issue 17; the XDP side is native/bpf/xvs_flow.h): per worker,
 * decides which connections the steering program may forward by itself, writes and removes their
 * entries in batches, folds the entries' packet and byte counters into the service and real-server
 * counters, and lets connection expiry see the packets XDP forwarded.
 *
 * The fast path stays the authority (docs/flow-cache.md): it sees every connection's first
 * packets and every TCP SYN/FIN/RST (the XDP program passes those), so state changes still go
 * through conn/state.ts. A direction is cached when
 * - TCP: the fast path moved the connection to ESTABLISHED (the handshake it saw): both
 *   directions of a NAT connection, the client's of DR/TUN;
 * - UDP: DR/TUN after the first packet; NAT at the first reply (until then the client's packets
 *   stay here, as IPVS keeps a UDP NAT connection unreplied);
 * - never: one-packet scheduling, templates, other protocols, a real server that is not available,
 *   NAT replies with no route to the client (flow-entry.ts flowRefusal);
 * - per packet the XDP program leaves to us whatever it cannot do exactly as the fast path would
 *   (SCTP or over-long partial checksums, TTL <= 1, over-MTU, options, fragments, a real server since removed or
 *   set unavailable, an unresolved next hop): those packets are handled and counted here as before.
 * A cached TCP connection that leaves ESTABLISHED (a FIN or RST the fast path saw) loses its
 * entries at once, so every later packet of it passes through the state machine again.
 *
 * Batching: the per-packet hook (`seen`) only queues into preallocated FlowBatches; `flush`,
 * called once after every burst (FastPath.expire), writes them with one FFI call per kind of work
 * that has anything queued (read back counters of entries to remove or to check, write new
 * entries, delete old ones). A full map refuses an entry (E2BIG): that connection stays on the
 * AF_XDP path, counted in Stat.FlowCacheFull.
 *
 * Counters: XDP adds packets and IP bytes to the entry (as ip_vs_in_stats/ip_vs_out_stats count:
 * the whole IP packet before mangling). Every FOLD_TICKS, and before an entry is deleted, the
 * worker reads the entries it owns and adds what is new to the service's and real server's
 * traffic counters, so listings, the rate estimator and the API read the same with the cache on
 * or off (up to FOLD_TICKS late). The entry's last-forwarded time moves the connection's deadline
 * as a packet seen here would (ConnTable.touch); a connection whose timer runs out is first
 * checked against its entries (`deferExpiry`): it expires only if XDP has not forwarded a packet
 * of it within its timeout.
 *
 * Sync master (docs/sync.md): the kernel counts every client packet into in_pkts and sends a
 * connection's record at sync_threshold (3) and every sync_period (50) packets after, so a worker
 * must know the packets XDP forwarded. Two parts, both only while a master daemon runs:
 * - hold: a connection is not cached before it counted sync_threshold client packets (SyncFeed
 *   holds), so its first record leaves when the kernel's would, not up to FOLD_TICKS later: a
 *   failover in that second would lose it. Cost: XDP forwards a TCP connection from its 4th client
 *   packet instead of its 3rd (one packet more on the AF_XDP path), a UDP DR/TUN one from its 4th
 *   instead of its 2nd, a UDP NAT one from the first reply after its 3rd client packet;
 * - fold: the client packets XDP forwarded (DIR_IN entries; replies are not in_pkts) are counted
 *   into in_pkts when they are folded, and the send rule runs for the points they crossed
 *   (SyncFeed.forwarded): the backup hears of a long connection at least every FOLD_TICKS it
 *   crosses a point, as from the kernel every sync_period packets. Packets forwarded after the last
 *   fold of a connection that leaves the cache (FIN, RST, expiry) are not counted: its FIN or RST
 *   is synced by the fast path with the new state anyway (a forced record), and an expired one is
 *   not synced by the kernel either.
 */
import { ErrorCode, LbError } from "../errors.ts";
import { flowClockNs } from "../ffi/bpf.ts";
import { FlowMapFd } from "../ffi/flow-io.ts";
import {
  CF_FWD_MASK,
  CF_OUT_ENTRY,
  CONN_DEST,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_TIMEOUT,
  CONN_WORDS,
  type ConnTable,
  DIR_IN,
  DIR_OUT,
} from "../conn/table.ts";
import { S_ESTABLISHED } from "../conn/state.ts";
import { DEST_FLAGS, DEST_WORDS, DESTF_AVAILABLE, FWD_MASQ, type Tables } from "../service/tables.ts";
import { type Counters, DEST_TRAFFIC_BASE, TS_INBYTES, TS_INPKTS, TS_OUTBYTES, TS_OUTPKTS, TS_WORDS } from "../stats/counters.ts";
import { TICKS_PER_SEC } from "../service/clock.ts";
import { PROTO_TCP, PROTO_UDP } from "../wire/fields.ts";
import type { ConnPeers } from "../conn/peers.ts";
import { FLOW_VALUE_SIZE, FlowBatch, FlowRefusal, flowKeyOwner, flowRefusal, ownsFlowKey } from "./flow-entry.ts";
import * as abi from "../ffi/abi.ts";
import { Stat } from "./verdict.ts";
import type { SyncFeed } from "./sync-feed.ts";

/** Per-connection state bits (FlowCache.state). */
const FC_IN = 1;
const FC_OUT = 2;
/** Never (again) cached: refused for good, refused by a full map, or uncached after leaving ESTABLISHED. */
const FC_NEVER = 4;

/** How often the worker folds its entries' counters (ticks): the estimator ticks every 2 s. */
export const FOLD_TICKS = TICKS_PER_SEC;
/** Entries queued per batch before a flush is forced (one FFI call more). */
const BATCH = 4096;
/** Entries read per FFI call when folding. */
const FOLD_BATCH = 2048;
const E2BIG = 7;

/** What the flow cache uses of the fast path (FastPath implements it). */
export interface FlowCacheHost {
  readonly conns: ConnTable;
  readonly counters: Counters;
  tables: Tables;
  now: number;
  release(id: number): void;
  /** The sync daemon's feed (FastPath.sync): a master counts what XDP forwarded (see "Sync master" above). */
  readonly sync?: SyncFeed | null;
}

/** The map operations (the steering program's `flows` map; a fake in unit tests). */
export interface FlowMapIo {
  update(b: FlowBatch): number;
  delete(b: FlowBatch): number;
  lookup(b: FlowBatch): number;
}

export interface FlowCacheOptions {
  /** The `flows` map (or a fake). */
  io: FlowMapIo;
  /** This worker's number (the entry's `worker` field). */
  worker: number;
  /** Most entries this worker tracks (the map's size: more would be refused anyway). */
  maxEntries: number;
  /** The clock of the entries' last_ns (CLOCK_BOOTTIME ns); default: the system's (ffi/bpf.ts flowClockNs). */
  clockNs?: () => number;
}

export class FlowCache {
  readonly enabled: boolean;
  private readonly io: FlowMapIo | null;
  /** The worker's own table: a packet handled with another worker's connection (conn/peers.ts) is not ours to cache. */
  private readonly home: ConnTable | null;
  private readonly worker: number;
  private readonly clockNs: () => number;
  /** FC_* bits per connection id. */
  private readonly state: Uint8Array;
  // live connections (with at least one entry), dense: position per id, snapshots of the counters
  // already folded, per direction [IN packets, IN bytes, OUT packets, OUT bytes]
  private readonly livePos: Int32Array;
  private readonly liveConn: Int32Array;
  private readonly snap: Float64Array;
  private nLive = 0;
  // queued work of the current burst
  private readonly ins: FlowBatch;
  private readonly insConn: Int32Array;
  private readonly insDir: Uint8Array;
  private readonly del: FlowBatch;
  /** Per queued delete: service, dest, dir and the counters already folded (to fold the rest). */
  private readonly delSvc: Int32Array;
  private readonly delDest: Int32Array;
  private readonly delDir: Uint8Array;
  private readonly delSnap: Float64Array;
  /** Connections whose timer ran out while cached, checked against their entries at the flush. */
  private readonly checks: Int32Array;
  private nChecks = 0;
  private readonly look: FlowBatch;
  private readonly lookConn: Int32Array;
  private readonly lookDir: Uint8Array;
  private lastFold = 0;
  /** A reply entry taken over by a new connection (replyTaken) is queued for deletion. */
  private takeover = false;
  /** Total entries written, deleted, refused by a full map (tests, docs). */
  inserted = 0;
  deleted = 0;
  full = 0;

  private constructor(o: FlowCacheOptions | null, home: ConnTable | null) {
    const capacity = home?.capacity ?? 0;
    this.enabled = o !== null;
    this.home = home;
    this.io = o?.io ?? null;
    this.worker = o?.worker ?? 0;
    this.clockNs = o?.clockNs ?? flowClockNs;
    const cap = this.enabled ? capacity : 0;
    const live = this.enabled ? Math.max(1, Math.min(capacity, o!.maxEntries)) : 0;
    const b = this.enabled ? BATCH : 0;
    this.state = new Uint8Array(cap);
    this.livePos = new Int32Array(cap).fill(-1);
    this.liveConn = new Int32Array(live);
    this.snap = new Float64Array(live * 4);
    this.ins = new FlowBatch(b);
    this.insConn = new Int32Array(b);
    this.insDir = new Uint8Array(b);
    this.del = new FlowBatch(b);
    this.delSvc = new Int32Array(b);
    this.delDest = new Int32Array(b);
    this.delDir = new Uint8Array(b);
    this.delSnap = new Float64Array(b * 2);
    this.checks = new Int32Array(b);
    this.look = new FlowBatch(this.enabled ? FOLD_BATCH : 0);
    this.lookConn = new Int32Array(this.enabled ? FOLD_BATCH : 0);
    this.lookDir = new Uint8Array(this.enabled ? FOLD_BATCH : 0);
  }

  /** A flow cache for the worker whose own connection table is `home`. */
  static create(o: FlowCacheOptions, home: ConnTable): FlowCache {
    if (o.maxEntries < 1) throw new LbError(ErrorCode.Invalid, "flow cache: at least one entry");
    return new FlowCache(o, home);
  }

  /** The cache turned off (--flow-cache off, or a fast path outside a daemon): every call returns at once. */
  static off(): FlowCache {
    return new FlowCache(null, null);
  }

  /** Entries this worker has in the map (or queued). */
  get live(): number {
    return this.nLive;
  }

  /**
   * Per packet, after the fast path handled a packet of connection `id` in direction `dir`
   * (DIR_IN: FastPath.forward, after the TCP state update; DIR_OUT: FastPath.reply, forwarded).
   * Queues the connection's entries when it just became cacheable, or their removal when a
   * cached TCP connection left ESTABLISHED. No allocation; a few loads for a connection that
   * is not cacheable yet.
   */
  seen(h: FlowCacheHost, id: number, dir: number): void {
    if (!this.enabled || h.conns !== this.home) return;
    const s = this.state[id];
    if ((s & FC_NEVER) !== 0) return;
    const rec = this.home!.rec,
      o = id * CONN_WORDS;
    const ps = rec[o + CONN_PROTO_STATE];
    const proto = (ps >>> 8) & 0xff;
    if ((s & (FC_IN | FC_OUT)) !== 0) {
      // cached: a TCP connection the fast path moved out of ESTABLISHED (FIN, RST) goes back to it
      if (proto === PROTO_TCP && (ps & 0xff) !== S_ESTABLISHED) this.uncache(h, id, true);
      return;
    }
    const flags = rec[o + CONN_FLAGS];
    const nat = (flags & CF_FWD_MASK) === FWD_MASQ;
    if (proto === PROTO_TCP) {
      if ((ps & 0xff) !== S_ESTABLISHED) return;
    } else if (proto === PROTO_UDP) {
      // NAT: from the first reply on (udp_state_transition); DR/TUN: from the first packet
      if (nat && dir !== DIR_OUT) return;
    } else {
      this.state[id] = FC_NEVER;
      return;
    }
    // a real server not available (weight 0 is available: IPVS keeps forwarding its connections)
    const t = h.tables;
    if ((t.dest[rec[o + CONN_DEST] * DEST_WORDS + DEST_FLAGS] & DESTF_AVAILABLE) === 0) return;
    // a sync master sends the record of its sync_threshold-th client packet from here first
    if (h.sync?.holds(rec, id)) return;
    this.cache(h, id, nat && (flags & CF_OUT_ENTRY) !== 0);
  }

  /** Queue the entries of connection `id` (cold: once per connection). */
  private cache(h: FlowCacheHost, id: number, withOut: boolean): void {
    const rec = this.home!.rec,
      t = h.tables;
    if (flowRefusal(rec, id, DIR_IN, t) !== FlowRefusal.Ok || (withOut && flowRefusal(rec, id, DIR_OUT, t) !== FlowRefusal.Ok)) {
      this.state[id] = FC_NEVER;
      return;
    }
    if (this.nLive >= this.liveConn.length) {
      // as many entries as the map holds: the map would refuse it
      this.state[id] = FC_NEVER;
      h.counters.verdicts[Stat.FlowCacheFull] += 1;
      this.full++;
      return;
    }
    if (this.ins.n + 2 > this.ins.capacity) this.flushInserts(h);
    // a reply entry a new connection took over is deleted before any reply entry is written
    // (the flush writes inserts first: the new one could share its key)
    if (withOut && this.takeover) {
      this.flushInserts(h);
      this.flushDeletes(h);
    }
    // a tuple two connections share (one client port to two virtual services of one real
    // server:port share the reply's) belongs to the one the fast path's lookup finds
    const home = this.home!;
    let bits = 0;
    if (ownsFlowKey(home, id, DIR_IN) && this.queueInsert(h, id, DIR_IN)) bits |= FC_IN;
    if (withOut && ownsFlowKey(home, id, DIR_OUT) && this.queueInsert(h, id, DIR_OUT)) bits |= FC_OUT;
    if (bits === 0) {
      this.state[id] = FC_NEVER;
      return;
    }
    this.state[id] = bits;
    const p = this.nLive++;
    this.livePos[id] = p;
    this.liveConn[p] = id;
    const s = p * 4;
    this.snap[s] = this.snap[s + 1] = this.snap[s + 2] = this.snap[s + 3] = 0;
  }

  /**
   * schedule.ts newConnection, before NAT connection `id` is linked (its record filled): when its
   * reply tuple is another connection's (the same client port to another virtual port of one real
   * server:port, while the first lives), that connection's reply entry goes in this burst's
   * flush, which runs before the new connection's first packet is sent. Otherwise XDP would
   * forward the new connection's replies with the old entry (the old virtual port) and they would
   * never reach the fast path, which finds the new connection (the newest) and caches its entries
   * from its first reply on. ip_vs_conn_new hashes the new connection in front of the old one in
   * the same way. One lookup per new NAT connection (and one per other worker's table).
   */
  replyTaken(h: FlowCacheHost, peers: ConnPeers | null, id: number): void {
    if (!this.enabled || h.conns !== this.home) return;
    const home = this.home!;
    if (this.nLive > 0) {
      const prev = flowKeyOwner(home, home.rec, id, DIR_OUT);
      if (prev >= 0) {
        if ((prev & 1) === DIR_OUT && prev >>> 1 !== id) this.dropOut(h, prev >>> 1);
        return;
      }
    }
    if (peers === null) return;
    // another worker's connection: its entry is in the same map; its worker folded its counters
    // up to its last fold (the rest, up to FOLD_TICKS of replies, is not counted)
    for (let k = 0; k < peers.views.length; k++) {
      const prev = flowKeyOwner(peers.views[k], home.rec, id, DIR_OUT);
      if (prev < 0 || (prev & 1) !== DIR_OUT) continue;
      if (this.del.n + 1 > this.del.capacity) this.flushDeletes(h);
      const i = this.del.addKey(home.rec, id, DIR_OUT);
      if (i >= 0) this.delSvc[i] = -1;
      this.takeover = true;
      return;
    }
  }

  /** Queue the deletion of cached connection `a`'s reply entry (another connection took its tuple). */
  private dropOut(h: FlowCacheHost, a: number): void {
    const s = this.state[a];
    const p = this.livePos[a];
    if ((s & FC_OUT) === 0 || p < 0) return;
    const rec = this.home!.rec,
      o = a * CONN_WORDS;
    if (this.del.n + 1 > this.del.capacity) this.flushDeletes(h);
    const i = this.del.addKey(rec, a, DIR_OUT);
    if (i >= 0) {
      this.delSvc[i] = rec[o + CONN_SVC];
      this.delDest[i] = rec[o + CONN_DEST];
      this.delDir[i] = DIR_OUT;
      this.delSnap[i * 2] = this.snap[p * 4 + DIR_OUT * 2];
      this.delSnap[i * 2 + 1] = this.snap[p * 4 + DIR_OUT * 2 + 1];
    }
    this.takeover = true;
    // its requests stay cached; with no entry left it is never cached again (its replies are the new one's now)
    if ((s & FC_IN) !== 0) this.state[a] = s & ~FC_OUT;
    else {
      this.state[a] = FC_NEVER;
      this.unlive(a, p);
    }
  }

  private queueInsert(h: FlowCacheHost, id: number, dir: number): boolean {
    const i = this.ins.add(this.home!.rec, id, dir, h.tables, this.home!.seedConn, this.worker);
    if (i < 0) return false;
    this.insConn[i] = id;
    this.insDir[i] = dir;
    return true;
  }

  /**
   * Queue the removal of connection `id`'s entries (with a last read of their counters). `never`:
   * not to be cached again (a TCP connection that left ESTABLISHED).
   */
  private uncache(h: FlowCacheHost, id: number, never: boolean): void {
    const s = this.state[id];
    this.state[id] = never ? FC_NEVER : 0;
    const p = this.livePos[id];
    if (p < 0) return;
    const rec = this.home!.rec,
      o = id * CONN_WORDS;
    if (this.del.n + 2 > this.del.capacity) this.flushDeletes(h);
    for (let dir = DIR_IN; dir <= DIR_OUT; dir++) {
      if ((s & (dir === DIR_IN ? FC_IN : FC_OUT)) === 0) continue;
      // a newer connection took the tuple over and wrote its own entry: not ours to delete
      if (!ownsFlowKey(this.home!, id, dir)) continue;
      const i = this.del.addKey(rec, id, dir);
      if (i < 0) continue;
      this.delSvc[i] = rec[o + CONN_SVC];
      this.delDest[i] = rec[o + CONN_DEST];
      this.delDir[i] = dir;
      this.delSnap[i * 2] = this.snap[p * 4 + dir * 2];
      this.delSnap[i * 2 + 1] = this.snap[p * 4 + dir * 2 + 1];
    }
    this.unlive(id, p);
  }

  /** Swap-remove connection `id` (at `p`) from the live list. */
  private unlive(id: number, p: number): void {
    const last = --this.nLive;
    if (p !== last) {
      const moved = this.liveConn[last];
      this.liveConn[p] = moved;
      this.livePos[moved] = p;
      this.snap.copyWithin(p * 4, last * 4, last * 4 + 4);
    }
    this.livePos[id] = -1;
  }

  /** FastPath.release: the connection's record is about to be freed; its entries go. */
  released(h: FlowCacheHost, id: number): void {
    if (!this.enabled || h.conns !== this.home) return;
    if (this.livePos[id] >= 0) this.uncache(h, id, false);
    this.state[id] = 0;
  }

  /**
   * FastPath's expiry callback, before it expires connection `id`: true when the connection is
   * cached, in which case its entries are read at the flush (end of this expiry call) and it
   * expires then only if XDP forwarded nothing of it within its timeout.
   */
  deferExpiry(h: FlowCacheHost, id: number): boolean {
    if (!this.enabled || h.conns !== this.home || this.livePos[id] < 0) return false;
    if (this.nChecks >= this.checks.length) {
      // more than a batch of cached connections due at once: the rest are checked next round
      this.home!.touch(id, h.now - this.home!.rec[id * CONN_WORDS + CONN_TIMEOUT] + 1);
      return true;
    }
    this.checks[this.nChecks++] = id;
    return true;
  }

  /** After every burst (FastPath.expire): expiry checks, due folds, then the queued writes. */
  flush(h: FlowCacheHost): void {
    if (!this.enabled) return;
    if (this.nChecks > 0) this.runChecks(h);
    if (((h.now - this.lastFold) | 0) >= FOLD_TICKS) {
      this.lastFold = h.now;
      this.fold(h);
    }
    this.flushInserts(h);
    this.flushDeletes(h);
  }

  private flushInserts(h: FlowCacheHost): void {
    const b = this.ins;
    if (b.n === 0) return;
    const ok = this.io!.update(b);
    this.inserted += Math.max(0, ok);
    if (ok !== b.n) {
      for (let i = 0; i < b.n; i++) {
        if (ok >= 0 && b.status[i] === 0) continue;
        // refused (E2BIG: the map is full): that direction stays on the AF_XDP path, for good
        const id = this.insConn[i];
        if (b.status[i] === E2BIG || ok < 0) {
          h.counters.verdicts[Stat.FlowCacheFull] += 1;
          this.full++;
        }
        if (this.livePos[id] >= 0) this.uncache(h, id, true);
        else this.state[id] = FC_NEVER;
      }
    }
    b.clear();
  }

  private flushDeletes(h: FlowCacheHost): void {
    const b = this.del;
    if (b.n === 0) return;
    // last counters first, then the delete (XDP may forward a packet in between: at most a
    // burst's worth per connection is not counted, on a connection that is closing or idle)
    const found = this.io!.lookup(b);
    if (found > 0) {
      const dv = b.vdv,
        tr = h.counters.traffic;
      for (let i = 0; i < b.n; i++) {
        // -1: another worker's entry (replyTaken), its counters are its worker's
        if (b.status[i] !== 0 || this.delSvc[i] < 0) continue;
        const off = i * FLOW_VALUE_SIZE;
        const pk = Number(dv.getBigUint64(off + abi.XVS_FLOW_PACKETS_OFF, true)) - this.delSnap[i * 2];
        const by = Number(dv.getBigUint64(off + abi.XVS_FLOW_BYTES_OFF, true)) - this.delSnap[i * 2 + 1];
        if (pk > 0) addTraffic(tr, this.delSvc[i], this.delDest[i], this.delDir[i], pk, by);
      }
    }
    const ok = this.io!.delete(b);
    this.deleted += Math.max(0, ok);
    b.clear();
    this.takeover = false;
  }

  /** Connections whose timer ran out while cached: fold, then expire or move their deadline. */
  private runChecks(h: FlowCacheHost): void {
    const ids = this.checks,
      n = this.nChecks;
    this.nChecks = 0;
    for (let i = 0; i < n; i += FOLD_BATCH / 2) this.readLive(h, ids, i, Math.min(n, i + FOLD_BATCH / 2));
    const rec = this.home!.rec;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const o = id * CONN_WORDS;
      // readLive moved the deadline to the last forwarded packet's time + timeout when XDP
      // forwarded something since; otherwise it has passed: the connection expires now
      if (((rec[o + CONN_EXPIRES] - h.now) | 0) > 0) continue;
      h.counters.verdicts[Stat.ConnsExpired] += 1;
      h.release(id);
    }
  }

  /** Fold every live connection's counters (every FOLD_TICKS). */
  private fold(h: FlowCacheHost): void {
    const n = this.nLive;
    for (let i = 0; i < n; i += FOLD_BATCH / 2) this.readLive(h, this.liveConn, i, Math.min(n, i + FOLD_BATCH / 2));
  }

  /**
   * Read the entries of connections ids[from..to) (one FFI call), add their new packets and
   * bytes to the traffic counters, and move each connection's deadline to its last forwarded
   * packet + its timeout when that is later than the deadline it has.
   */
  private readLive(h: FlowCacheHost, ids: Int32Array, from: number, to: number): void {
    const b = this.look,
      rec = this.home!.rec;
    b.clear();
    for (let i = from; i < to; i++) {
      const id = ids[i];
      const s = this.state[id];
      for (let dir = DIR_IN; dir <= DIR_OUT; dir++) {
        if ((s & (dir === DIR_IN ? FC_IN : FC_OUT)) === 0) continue;
        const k = b.addKey(rec, id, dir);
        if (k < 0) break;
        this.lookConn[k] = id;
        this.lookDir[k] = dir;
      }
    }
    if (b.n === 0 || this.io!.lookup(b) <= 0) return;
    const nowNs = this.clockNs(),
      dv = b.vdv,
      tr = h.counters.traffic,
      sync = h.sync ?? null;
    for (let k = 0; k < b.n; k++) {
      if (b.status[k] !== 0) continue;
      const id = this.lookConn[k],
        dir = this.lookDir[k];
      const p = this.livePos[id];
      if (p < 0) continue;
      const off = k * FLOW_VALUE_SIZE;
      const pk = Number(dv.getBigUint64(off + abi.XVS_FLOW_PACKETS_OFF, true));
      const by = Number(dv.getBigUint64(off + abi.XVS_FLOW_BYTES_OFF, true));
      const last = Number(dv.getBigUint64(off + abi.XVS_FLOW_LAST_NS_OFF, true));
      const s = p * 4 + dir * 2;
      const o = id * CONN_WORDS;
      if (pk > this.snap[s]) {
        addTraffic(tr, rec[o + CONN_SVC], rec[o + CONN_DEST], dir, pk - this.snap[s], by - this.snap[s + 1]);
        // ip_vs_in's in_pkts and ip_vs_sync_conn for the client packets XDP forwarded
        if (sync !== null && dir === DIR_IN) sync.forwarded(h, id, pk - this.snap[s]);
        this.snap[s] = pk;
        this.snap[s + 1] = by;
      }
      if (last > 0) {
        // the tick of the last forwarded packet (never in the future): deadline = it + timeout
        const ageTicks = Math.max(0, Math.floor((nowNs - last) / (1e9 / TICKS_PER_SEC)));
        const exp = (h.now - ageTicks + rec[o + CONN_TIMEOUT]) | 0;
        if (((exp - rec[o + CONN_EXPIRES]) | 0) > 0) rec[o + CONN_EXPIRES] = exp;
      }
    }
  }

  /** Connection `id`'s cached directions, for tests: bit 1 IN, bit 2 OUT. */
  cachedDirs(id: number): number {
    return this.enabled ? this.state[id] & (FC_IN | FC_OUT) : 0;
  }
}

/** ip_vs_in_stats / ip_vs_out_stats for `pk` packets of `by` IP bytes forwarded by XDP. */
function addTraffic(tr: Float64Array, svc: number, dest: number, dir: number, pk: number, by: number): void {
  const s = svc * TS_WORDS,
    d = DEST_TRAFFIC_BASE + dest * TS_WORDS;
  const pw = dir === DIR_IN ? TS_INPKTS : TS_OUTPKTS,
    bw = dir === DIR_IN ? TS_INBYTES : TS_OUTBYTES;
  tr[s + pw] += pk;
  tr[s + bw] += by;
  tr[d + pw] += pk;
  tr[d + bw] += by;
}

/** The `flows` map of the loaded steering program by fd, for a worker thread (same process). */
export function flowMapIo(fd: number): FlowMapIo {
  return new FlowMapFd(fd);
}
