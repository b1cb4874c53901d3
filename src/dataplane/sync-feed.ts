/**
 * The workers' side of the sync daemon (docs/sync.md).
 *
 * Master: ip_vs_in calls ip_vs_sync_conn for every client packet of a connection; here
 * `FastPath.forward` calls `SyncFeed.packet`, which counts the connection's in_pkts, applies the
 * kernel's send rule (ip_vs_sync_conn_needed, the same rule as sync/policy.ts's syncDecision,
 * written again over typed arrays because it runs per packet) to the connection and then to its
 * controlling template, and copies what a sync record needs into a preallocated ring shared with
 * the main thread. Records are reused as soon as a connection ends, so the ring carries copies,
 * never ids. The main thread (control/sync-daemon.ts) drains the ring every few ms and packs the
 * copies into messages. Ring full: the copy is dropped and counted (the kernel's sync_qlen_max
 * drops whole messages; this ring sits before the queue).
 *
 * Backup: the main thread decodes messages, resolves each record's service and real server in
 * the current Tables and posts packed install records; `installSynced` applies them between
 * rounds as ip_vs_proc_conn does: an existing connection gets its INACTIVE flag (ActiveConn /
 * InActConn follow), state and timeout updated; an unknown one is created bound to its real
 * server, in the state the master sent and with the master's timeout, its in_pkts set to
 * sync_threshold. Templates the same through the template index.
 *
 * Per packet (packet()): no allocation, int arithmetic over preallocated arrays; when no daemon
 * was ever started the fast path does not call it at all.
 */
import { linkTable, linkTemplate } from "../conn/persist-template.ts";
import {
  CF_FWD_MASK,
  CF_OUT_ENTRY,
  CF_TEMPLATE,
  CF_V6,
  CONN_CADDR,
  CONN_CONTROL,
  CONN_CPORT_VPORT,
  CONN_DEST,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_MAC_HI,
  CONN_MAC_LO,
  CONN_NEXTHOP,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  CF_INACTIVE,
  type ConnTable,
} from "../conn/table.ts";
import { bindDest, unbindDest } from "../conn/accounting.ts";
import { installConnection } from "../conn/peers.ts";
import type { Counters } from "../stats/counters.ts";
import { hashTuple } from "../wire/flow.ts";
import { HOP_NO_ROUTE, nextHopFor, type NextHopView } from "./route.ts";
import type { Tables } from "../service/tables.ts";
import { FWD_MASQ } from "../service/tables.ts";
import * as abi from "../ffi/abi.ts";

// ---- ring header (Int32 words) ----
/** Entries written (producer; wraps, compared with `(head - tail) | 0`). */
export const FEED_HEAD = 0;
/** Entries read (consumer). */
export const FEED_TAIL = 1;
/** Entries dropped because the ring was full. */
export const FEED_LOST = 2;
/** 1 while a master daemon runs: packet() applies the send rule only then. */
export const FEED_MASTER = 3;
/** The sysctls of the send rule, written by the main thread. */
export const FEED_THRESHOLD = 4;
export const FEED_PERIOD = 5;
export const FEED_REFRESH_MS = 6;
export const FEED_RETRIES = 7;
export const FEED_PERSIST_MODE = 8;
/** Entries the ring holds (a power of two). */
export const FEED_CAPACITY = 9;
/** Backup: connections the worker created, updated, could not store (table full) from sync records. */
export const FEED_CREATED = 10;
export const FEED_UPDATED = 11;
export const FEED_REFUSED = 12;
export const FEED_HDR_WORDS = 16;

// ---- one entry: a copy of the record words a sync record needs ----
export const E_FLAGS = 0;
export const E_PROTO_STATE = 1;
export const E_CADDR = 2;
export const E_VADDR = 6;
export const E_DADDR = 10;
export const E_CPORT_VPORT = 14;
export const E_DPORT = 15;
export const E_SVC = 16;
/** The connection's timeout in ticks (cp->timeout). */
export const E_TIMEOUT = 17;
export const E_WORDS = 20;

/** Default ring size: 8192 copies, about 4 s of the kernel's default queue at 1472-byte messages. */
export const FEED_DEFAULT_ENTRIES = 8192;

/** A ring's shared buffer, sized for `entries` (rounded up to a power of two). */
export function newFeedBuffer(entries = FEED_DEFAULT_ENTRIES): SharedArrayBuffer {
  let n = 1;
  while (n < entries) n *= 2;
  const sab = new SharedArrayBuffer((FEED_HDR_WORDS + n * E_WORDS) * 4);
  new Int32Array(sab)[FEED_CAPACITY] = n;
  return sab;
}

/** Main thread: hand every entry written since the last call to `each` (the view and the entry's word offset). */
export function drainFeed(ring: Int32Array, each: (ring: Int32Array, at: number) => void): number {
  const cap = ring[FEED_CAPACITY];
  const head = Atomics.load(ring, FEED_HEAD);
  let tail = ring[FEED_TAIL];
  let n = 0;
  while (((head - tail) | 0) > 0) {
    each(ring, FEED_HDR_WORDS + (tail & (cap - 1)) * E_WORDS);
    tail = (tail + 1) | 0;
    n++;
  }
  Atomics.store(ring, FEED_TAIL, tail);
  return n;
}

// IPVS state numbers the rule names (conn/state.ts uses the kernel's numbering)
const TCP = 6,
  SCTP = 132;
const TCP_ESTABLISHED = 1,
  SCTP_ESTABLISHED = 7;
/** TCP: ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT (sync/policy.ts TCP_SYNC_STATES). */
const TCP_SYNC_STATES = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
/** SCTP: ESTABLISHED, SHUTDOWN_SENT/RECEIVED/ACK_SENT, CLOSED. */
const SCTP_SYNC_STATES = (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 12);
/** Template state ASSURED (the flag xvs keeps on templates). */
const CF_ASSURED = 0x10000;

/** What a packet hook needs of the fast path (a Pick of FastPath, so this file does not import it). */
export interface SyncPacketState {
  conns: ConnTable;
  now: number;
  setReplyHop(rec: Int32Array, o: number, inPort: number, frame: number, row: number, v6: number): void;
}

/** One worker's feed and per-connection sync state (in_pkts, old_state, sync_endtime). */
export class SyncFeed {
  readonly ring: Int32Array;
  private readonly mask: number;
  /** cp->in_pkts, per record id. */
  private readonly inPkts: Int32Array;
  /** cp->old_state. */
  private readonly oldState: Int32Array;
  /** cp->sync_endtime, ms (retry count in the low 2 bits). */
  private readonly syncEnd: Float64Array;
  /** A fingerprint of the tuple the id last carried: a reused record starts counting afresh (ip_vs_conn_new). */
  private readonly stamp: Int32Array;

  constructor(buffer: SharedArrayBuffer, capacity: number) {
    this.ring = new Int32Array(buffer);
    this.mask = this.ring[FEED_CAPACITY] - 1;
    this.inPkts = new Int32Array(capacity);
    this.oldState = new Int32Array(capacity);
    this.syncEnd = new Float64Array(capacity);
    this.stamp = new Int32Array(capacity);
  }

  /**
   * After the fast path updated connection `id`'s state for a client packet (ip_vs_in, before
   * ip_vs_sync_conn). `oldPs`: the record's proto/state word before this packet. Also gives an
   * installed NAT connection the client's next hop from its first packet (see installSynced).
   */
  packet(fp: SyncPacketState, id: number, oldPs: number, row: number, descs: Uint32Array, d: number): void {
    const rec = fp.conns.rec,
      o = id * CONN_WORDS;
    const flags = rec[o + CONN_FLAGS];
    // an installed NAT connection knows no MAC towards an on-link client: its first packet names it
    if (
      (flags & CF_FWD_MASK) === FWD_MASQ &&
      rec[o + CONN_NEXTHOP] < 0 &&
      rec[o + CONN_NEXTHOP] !== HOP_NO_ROUTE &&
      (rec[o + CONN_MAC_HI] | rec[o + CONN_MAC_LO]) === 0
    ) {
      fp.setReplyHop(rec, o, descs[d + abi.XVS_DESC_IN_PORT], descs[d + abi.XVS_DESC_ADDR], row, flags & CF_V6);
    }
    const ring = this.ring;
    if (ring[FEED_MASTER] === 0) return;
    const st = this.fingerprint(rec, o);
    const proto = (rec[o + CONN_PROTO_STATE] >>> 8) & 0xff;
    if (this.stamp[id] !== st || (proto === TCP && (oldPs & 0xff) === 0)) this.reset(id, st);
    const pkts = (this.inPkts[id] + 1) | 0;
    this.inPkts[id] = pkts;
    const nowMs = fp.now * 10;
    const ctl = rec[o + CONN_CONTROL];
    const pushed = this.needed(rec, o, id, pkts, nowMs, ctl !== 0);
    if (pushed) this.push(rec, o);
    if (ctl === 0) return;
    if (ctl < 0) {
      // a template in another worker's table (conn/persist-template.ts), whose in_pkts that worker
      // keeps: it goes with this connection's message
      if (pushed) this.push(linkTable(fp.conns, ctl).rec, linkTemplate(ctl) * CONN_WORDS);
      return;
    }
    // ip_vs_sync_conn "control:": the template, with its own in_pkts incremented
    const t = ctl - 1,
      to = t * CONN_WORDS;
    const tst = this.fingerprint(rec, to);
    if (this.stamp[t] !== tst) this.reset(t, tst);
    const tp = (this.inPkts[t] + 1) | 0;
    this.inPkts[t] = tp;
    if (this.needed(rec, to, t, tp, nowMs, false)) this.push(rec, to);
  }

  /**
   * The flow cache's hold (flowcache.ts seen): true while a master runs and connection `id` has
   * not counted sync_threshold client packets yet. Such a connection is not cached, so the packet
   * that reaches the threshold, the one ip_vs_sync_conn sends the connection's first record for,
   * still passes here (packet()) and is synced at once rather than at the next fold.
   */
  holds(rec: Int32Array, id: number): boolean {
    if (this.ring[FEED_MASTER] === 0) return false;
    return this.stamp[id] !== this.fingerprint(rec, id * CONN_WORDS) || this.inPkts[id] < this.ring[FEED_THRESHOLD];
  }

  /**
   * `n` client packets of cached connection `id` that XDP forwarded, read by the flow cache's fold
   * (flowcache.ts readLive, on this worker's thread, every FOLD_TICKS and before an expiry):
   * ip_vs_in would have counted each into in_pkts and called ip_vs_sync_conn. They are counted,
   * and when the count crossed a sync point (sync_threshold + k * sync_period; with sync_period 0,
   * sync_threshold once, or every packet under sync_refresh_period) the send rule runs once, at
   * the last point crossed, with the state the connection has (ESTABLISHED for a cached TCP one:
   * its FIN or RST passes here and is synced by packet()). One record per fold, not one per point:
   * the kernel would send one per point, spread over the second; copies made at one instant are
   * identical (same state, same timeout) and tell the backup nothing more, and a busy worker's
   * fold would fill the ring at once, losing the same connections' records at every fold. The
   * template the same: counted by `n`, its rule run once (the kernel sends a template with every
   * packet of its connections when sync_refresh_period is 0).
   */
  forwarded(fp: Pick<SyncPacketState, "conns" | "now">, id: number, n: number): void {
    if (this.ring[FEED_MASTER] === 0 || n <= 0) return;
    const rec = fp.conns.rec,
      o = id * CONN_WORDS;
    const st = this.fingerprint(rec, o);
    if (this.stamp[id] !== st) this.reset(id, st);
    const from = this.inPkts[id];
    const to = (from + n) | 0;
    this.inPkts[id] = to;
    const nowMs = fp.now * 10;
    const ctl = rec[o + CONN_CONTROL];
    const p = this.lastPoint(from, to, false);
    const pushed = p >= 0 && this.needed(rec, o, id, p, nowMs, ctl !== 0);
    if (pushed) this.push(rec, o);
    if (ctl === 0) return;
    if (ctl < 0) {
      // another worker's template: that worker counts it; it goes with the connection (as in packet())
      if (pushed) this.push(linkTable(fp.conns, ctl).rec, linkTemplate(ctl) * CONN_WORDS);
      return;
    }
    const t = ctl - 1,
      tOff = t * CONN_WORDS;
    const tst = this.fingerprint(rec, tOff);
    if (this.stamp[t] !== tst) this.reset(t, tst);
    const tFrom = this.inPkts[t];
    const tTo = (tFrom + n) | 0;
    this.inPkts[t] = tTo;
    const tp = this.lastPoint(tFrom, tTo, true);
    if (tp >= 0 && this.needed(rec, tOff, t, tp, nowMs, false)) this.push(rec, tOff);
  }

  /** The last in_pkts value in (from, to] at which the send rule's packet count passes, or -1. */
  private lastPoint(from: number, to: number, isTemplate: boolean): number {
    const period = this.ring[FEED_PERIOD],
      threshold = this.ring[FEED_THRESHOLD];
    if (period > 0) {
      if (isTemplate) return to;
      if (threshold < 0 || threshold >= period) return -1; // pkts % period never equals it
      const p = to - ((((to - threshold) % period) + period) % period);
      return p > from ? p : -1;
    }
    if (this.ring[FEED_REFRESH_MS] > 0) return to;
    return from < threshold && threshold <= to ? threshold : -1;
  }

  private fingerprint(rec: Int32Array, o: number): number {
    return (
      (rec[o + CONN_CADDR] ^
        rec[o + CONN_CADDR + 3] ^
        Math.imul(rec[o + CONN_CPORT_VPORT], 0x9e3779b1) ^
        rec[o + CONN_VADDR] ^
        (rec[o + CONN_FLAGS] & CF_TEMPLATE)) |
      1
    );
  }

  private reset(id: number, st: number): void {
    this.stamp[id] = st;
    this.inPkts[id] = 0;
    this.oldState[id] = 0;
    this.syncEnd[id] = 0;
  }

  /** A connection installed from a sync message: in_pkts = sync_threshold, old_state = state (ip_vs_proc_conn). */
  installed(rec: Int32Array, id: number): void {
    const o = id * CONN_WORDS;
    this.stamp[id] = this.fingerprint(rec, o);
    this.inPkts[id] = this.ring[FEED_THRESHOLD];
    this.oldState[id] = rec[o + CONN_PROTO_STATE] & 0xff;
    this.syncEnd[id] = 0;
  }

  /** ip_vs_sync_conn_needed over the record (sync/policy.ts syncDecision, without objects). */
  private needed(rec: Int32Array, o: number, id: number, pkts: number, nowMs: number, inPersistence: boolean): boolean {
    const ring = this.ring;
    const flags = rec[o + CONN_FLAGS];
    const ps = rec[o + CONN_PROTO_STATE];
    const proto = (ps >>> 8) & 0xff,
      state = ps & 0xff;
    const timeoutMs = rec[o + CONN_TIMEOUT] * 10;
    const orig = this.syncEnd[id];
    const t = nowMs + timeoutMs;
    let n = t - (t % 4);
    const isTemplate = (flags & CF_TEMPLATE) !== 0;
    if (!isTemplate) {
      if (ring[FEED_PERSIST_MODE] !== 0 && inPersistence) return false;
      if (proto === TCP || proto === SCTP) {
        const tcp = proto === TCP;
        if (state >= 31 || ((1 << state) & (tcp ? TCP_SYNC_STATES : SCTP_SYNC_STATES)) === 0) return false;
        if (state !== this.oldState[id] && state !== (tcp ? TCP_ESTABLISHED : SCTP_ESTABLISHED)) {
          this.oldState[id] = state;
          this.syncEnd[id] = n;
          return true;
        }
      }
    }
    const refresh = ring[FEED_REFRESH_MS];
    if (refresh > 0) {
      const diff = n - orig;
      const half = (timeoutMs / 2) | 0;
      const minDiff = half > 10000 ? half : 10000;
      if (Math.abs(diff) < (refresh < minDiff ? refresh : minDiff)) {
        const retries = orig % 4;
        if (retries >= ring[FEED_RETRIES]) return false;
        if (nowMs < orig - timeoutMs + (refresh >> 3)) return false;
        n += retries + 1;
      }
    }
    const period = ring[FEED_PERIOD],
      threshold = ring[FEED_THRESHOLD];
    if (period > 0) {
      if (!isTemplate && pkts % period !== threshold) return false;
    } else if (refresh === 0 && pkts !== threshold) {
      return false;
    }
    this.oldState[id] = state;
    this.syncEnd[id] = n;
    return true;
  }

  /** Copy the record into the ring, or count it lost when the ring is full. */
  private push(rec: Int32Array, o: number): void {
    const ring = this.ring;
    const head = ring[FEED_HEAD];
    if (((head - Atomics.load(ring, FEED_TAIL)) | 0) > this.mask) {
      ring[FEED_LOST] += 1;
      return;
    }
    const e = FEED_HDR_WORDS + (head & this.mask) * E_WORDS;
    ring[e + E_FLAGS] = rec[o + CONN_FLAGS];
    ring[e + E_PROTO_STATE] = rec[o + CONN_PROTO_STATE];
    for (let k = 0; k < 12; k++) ring[e + E_CADDR + k] = rec[o + CONN_CADDR + k];
    ring[e + E_CPORT_VPORT] = rec[o + CONN_CPORT_VPORT];
    ring[e + E_DPORT] = rec[o + CONN_DPORT];
    ring[e + E_SVC] = rec[o + CONN_SVC];
    ring[e + E_TIMEOUT] = rec[o + CONN_TIMEOUT];
    Atomics.store(ring, FEED_HEAD, (head + 1) | 0);
  }
}

// ---- install records (backup): packed by the main thread, applied by the worker ----
/** xvs record flags (CF_*), as the connection should have them (the local dest's forwarding method). */
export const I_FLAGS = 0;
export const I_PROTO_STATE = 1;
export const I_CADDR = 2;
export const I_VADDR = 6;
export const I_DADDR = 10;
export const I_CPORT_VPORT = 14;
export const I_DPORT = 15;
export const I_SVC = 16;
export const I_DEST = 17;
/** Timeout in ticks. */
export const I_TIMEOUT = 18;
export const I_WORDS = 20;

/** What installSynced needs of a worker. */
export interface SyncInstallState {
  conns: ConnTable;
  counters: Counters;
  tables: Tables;
  nh: NextHopView;
  now: number;
}

/** Result counts of one batch. */
export interface InstallCounts {
  created: number;
  updated: number;
  /** Table full. */
  refused: number;
}

/** The record words installSynced builds a new connection in. */
const scratch = new Int32Array(CONN_WORDS);

/**
 * ip_vs_proc_conn for each packed record of `batch`: update the connection (or template) the
 * worker has, else create it. Returns the counts. `feed` (when this worker has one) learns the
 * installed records' in_pkts and state.
 */
export function installSynced(fp: SyncInstallState, batch: Int32Array, feed: SyncFeed | null): InstallCounts {
  const out: InstallCounts = { created: 0, updated: 0, refused: 0 };
  const conns = fp.conns,
    rec = conns.rec,
    t = fp.tables;
  for (let b = 0; b + I_WORDS <= batch.length; b += I_WORDS) {
    const flags = batch[b + I_FLAGS];
    const ps = batch[b + I_PROTO_STATE];
    const proto = (ps >>> 8) & 0xff;
    const v6 = flags & CF_V6;
    const tpl = (flags & CF_TEMPLATE) !== 0;
    const c0 = batch[b + I_CADDR],
      c1 = batch[b + I_CADDR + 1],
      c2 = batch[b + I_CADDR + 2],
      c3 = batch[b + I_CADDR + 3];
    const v0 = batch[b + I_VADDR],
      v1 = batch[b + I_VADDR + 1],
      v2 = batch[b + I_VADDR + 2],
      v3 = batch[b + I_VADDR + 3];
    const cv = batch[b + I_CPORT_VPORT];
    let id: number;
    if (tpl) {
      id = conns.lookupTemplate(v6, c0, c1, c2, c3, v0, v1, v2, v3, cv & 0xffff, proto);
    } else {
      const hash = hashTuple(conns.seedConn, c0, c1, c2, c3, v0, v1, v2, v3, cv, proto);
      const r = conns.lookup(hash, v6, c0, c1, c2, c3, v0, v1, v2, v3, cv, proto);
      id = r >= 0 && (r & 1) === 0 ? r >> 1 : -1;
    }
    const timeout = batch[b + I_TIMEOUT];
    if (id >= 0) {
      // existing: only INACTIVE (and the sequence flags xvs does not keep) change; the counts follow
      const o = id * CONN_WORDS;
      const cur = rec[o + CONN_FLAGS];
      if (!tpl && ((cur ^ flags) & CF_INACTIVE) !== 0) {
        const dest = rec[o + CONN_DEST];
        unbindDest(fp.counters, t, dest, cur);
        rec[o + CONN_FLAGS] = (cur & ~CF_INACTIVE) | (flags & CF_INACTIVE);
        bindDest(fp.counters, t, dest, rec[o + CONN_FLAGS]);
      }
      rec[o + CONN_PROTO_STATE] = (rec[o + CONN_PROTO_STATE] & ~0xff) | (ps & 0xff);
      if (tpl) rec[o + CONN_FLAGS] = (rec[o + CONN_FLAGS] & ~CF_ASSURED) | (flags & CF_ASSURED);
      rec[o + CONN_TIMEOUT] = timeout;
      conns.rearm(id, fp.now, timeout);
      feed?.installed(rec, id);
      out.updated++;
      continue;
    }
    // new: a record as the fast path would have made it, linked through installConnection
    // (conn/peers.ts), so that every worker's lookup finds it
    const w = scratch;
    w.fill(0);
    const masq = (flags & CF_FWD_MASK) === FWD_MASQ && !tpl;
    w[CONN_FLAGS] = flags | (masq ? CF_OUT_ENTRY : 0);
    w[CONN_PROTO_STATE] = ps;
    for (let k = 0; k < 12; k++) w[CONN_CADDR + k] = batch[b + I_CADDR + k];
    w[CONN_CPORT_VPORT] = cv;
    w[CONN_DPORT] = batch[b + I_DPORT];
    w[CONN_SVC] = batch[b + I_SVC];
    w[CONN_DEST] = batch[b + I_DEST];
    // replies go to the client's next hop; an on-link client without a known MAC gets it from its
    // first packet (SyncFeed.packet)
    if (masq) w[CONN_NEXTHOP] = nextHopFor(t, fp.nh, v6 ? 6 : 4, c0, c1, c2, c3);
    w[CONN_TIMEOUT] = timeout;
    w[CONN_EXPIRES] = (fp.now + timeout) | 0;
    id = installConnection(conns, fp.counters, t, w, fp.now);
    if (id < 0) {
      out.refused++;
      continue;
    }
    feed?.installed(rec, id);
    out.created++;
  }
  return out;
}

/** What a worker's fast path carries for the daemon (FastPath.sync). */
export interface SyncHost extends SyncInstallState, SyncPacketState {
  sync: SyncFeed | null;
}

/** Worker: take a sync message between rounds (worker.ts). */
export function applySyncMessage(fp: SyncHost, m: SyncWorkerMessage): void {
  if (m.feed !== undefined && fp.sync === null) fp.sync = new SyncFeed(m.feed, fp.conns.capacity);
  if (m.install !== undefined) {
    const r = installSynced(fp, m.install, fp.sync);
    const ring = fp.sync?.ring;
    if (ring) {
      Atomics.add(ring, FEED_CREATED, r.created);
      Atomics.add(ring, FEED_UPDATED, r.updated);
      Atomics.add(ring, FEED_REFUSED, r.refused);
    }
  }
}

/** Main thread -> worker: start or change the feed, switch the master rule, install records. */
export interface SyncWorkerMessage {
  type: "sync";
  /** The ring this worker writes (sent once; the same buffer afterwards). */
  feed?: SharedArrayBuffer;
  /** Packed install records (I_WORDS each). */
  install?: Int32Array;
}
