/**
 * NAT on every queue: the other workers' connection tables, looked up when a worker's own table
 * misses. One worker per rx queue owns one table (conn/table.ts); RSS sends a NAT reply (real
 * server -> client: other addresses) to another queue than its request, an ICMP error or a
 * fragment may come in anywhere, and a persistent client's next connection (another source
 * port) lands on any queue. So a miss in the own table looks in every other worker's table,
 * read-only, through `ConnTable.view`s over their SharedArrayBuffers (all workers are threads of
 * one process), and the packet is handled with the owner's record.
 *
 * Why this design (docs/architecture.md, "Several queues"). Measured with
 * `bun run bench/queues-nat.bench.ts` (one thread, 4 tables of 4K connections, best of 3; the
 * shared 2-core build host under load 10-20, so the ranges of 5 runs, not points):
 * - (a) peer lookup on a miss: nothing changes for a packet its own worker holds (the single
 *   queue path and every client packet: the own lookup hits first; fastpath-ab new/old 0.98,
 *   1.02, 0.97 for 4K flows, 1M flows, new connections, run both ways round). A cross-queue reply
 *   pays its own miss plus a probe per table until the owner's: own hit 37-74 ns; reply held by
 *   the 1st / 2nd / 3rd other table 34-82 / 49-148 / 127-256 ns when every table has one seed
 *   (the dataplane gives them one: pass 1's hash serves every table), 94-180 / 117-240 / 182-304
 *   ns with a seed per table (a flow hash per table).
 * - (b) one table for all workers: every insert and delete a CAS on a shared index, the wheel,
 *   free list and flags shared and contended, and every packet of every connection on index
 *   lines other cores write. Not built: it makes the common case dearer to make the rare case
 *   cheaper, and readers meet deletions there as here.
 * - (c) hand the frame to the owner through a ring: the frame copied into the owner's UMEM (each
 *   worker has its own) and a ring slot written and read cost 30-122 ns (64 B) / 38-164 ns
 *   (1500 B) alone; but the receiving worker must still find the owner of a reply, which only a
 *   lookup in the other tables tells (its request came in elsewhere), and the owner then handles
 *   the frame a second time, a burst later, and sends it from its own port. So (c) costs (a)
 *   plus the copy, the ring and a second pass.
 *
 * Writes: the owner stays the only writer of its index, wheel, free list, flags and counters.
 * A view moves a TCP connection's state word only by compareExchange (a lost race leaves the
 * state the other direction's packet set; the next packet moves it again), stores its timeout
 * and deadline, and posts the id to the owner's request ring; the owner, between bursts,
 * re-files the record by its deadline and brings CF_INACTIVE, ActiveConn/InActConn and the
 * template's ASSURED mark in line with the state word (`reconcileRequest`). Deletion is safe for
 * readers: the owner brackets index and release changes with a sequence word (HDR_SEQ). A hit
 * is a record whose key the probe compared equal and that is still in use (CF_USED; a shared
 * table reuses the oldest freed record first, so a record released under a reader keeps its old
 * words for as long as possible); a miss is trusted only when the word was even and unchanged
 * around the probe, else the probe is repeated (a backward shift may have moved the entry past
 * it), up to SEQ_TRIES times.
 *
 * Persistence: one template per client network and service over all workers, as IPVS. A
 * client's template may sit in another worker's table; a new connection here links to it there
 * (`acquireTemplate` takes a reference on its count, CONN_CONTROL holds a link naming the worker:
 * conn/persist-template.ts), re-arms it and counts in it, so PersistConn counts it once and it
 * lives as long as the kernel's would. Its owner stays the only one that expires and frees it.
 *
 * Installing connections that did not come through a worker's own queue (sync daemon, restart
 * adoption): `installConnection` into ANY worker's table, on that worker's thread; every worker
 * finds it (its own lookup, or this module's on a miss).
 */
import type { Tables } from "../service/tables.ts";
import type { Counters } from "../stats/counters.ts";
import { hashFlow, hashTuple } from "../wire/flow.ts";
import { assureTemplate, bindDest } from "./accounting.ts";
import { acquire, linkAssured } from "./persist-template.ts";
import { S_ESTABLISHED, TCP_STATE_ACTIVE } from "./state.ts";
import {
  CF_INACTIVE,
  CF_TEMPLATE,
  CF_USED,
  CONN_CONTROL,
  CONN_DEST,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_TIMEOUT,
  CONN_WHEEL_NEXT,
  CONN_WHEEL_PREV,
  CONN_WHEEL_SLOT,
  CONN_WORDS,
  ConnTable,
  type ConnTableBuffers,
  HDR_SEQ,
  REQ_PRODUCERS,
} from "./table.ts";

/** Probes per table while the owner changes its index under them (then the last miss stands). */
const SEQ_TRIES = 8;

/** The other workers' tables, as seen from worker `self`. */
export class ConnPeers {
  /** This worker's index (its request ring slot in every other table). */
  readonly self: number;
  /** Workers in all (this one included). */
  readonly workers: number;
  /** Views of the other workers' tables, in worker order without `self`. */
  readonly views: ConnTable[];
  /** The view the last successful find* hit in, and its index in `views`. */
  found: ConnTable;
  foundView = -1;

  /**
   * `own`: this worker's table (from now on it bumps its sequence word for readers); `all`: every
   * worker's table buffers in worker order, `own`'s at `self`.
   */
  constructor(own: ConnTable, all: ConnTableBuffers[], self: number) {
    if (all.length > REQ_PRODUCERS) throw new RangeError(`at most ${REQ_PRODUCERS} workers share connections`);
    if (!(self >= 0 && self < all.length) || all[self]!.records !== own.buffers.records) throw new RangeError("own table must be all[self]");
    this.self = self;
    this.workers = all.length;
    this.views = [];
    const byWorker: ConnTable[] = [];
    for (let k = 0; k < all.length; k++) {
      const t = k === self ? own : ConnTable.view(all[k]!, self);
      if (k !== self) this.views.push(t);
      byWorker.push(t);
    }
    // links to another worker's template (persist-template.ts) resolve through any of this thread's tables
    for (const t of byWorker) t.byWorker = byWorker;
    this.found = own;
    own.shared = true;
  }

  /**
   * A packet's connection in another worker's table, by its flow row and its hash under
   * `ownSeed` (reused when a view has the same seed). Returns `id << 1 | dir` in `found`, or -1.
   */
  find(hash: number, ownSeed: number, f: Int32Array, row: number): number {
    const views = this.views;
    for (let k = 0; k < views.length; k++) {
      const v = views[k]!;
      const h = v.seedConn === ownSeed ? hash : hashFlow(v.seedConn, f, row);
      for (let tries = 0; tries < SEQ_TRIES; tries++) {
        const seq = Atomics.load(v.header, HDR_SEQ);
        const r = v.lookupRow(h, f, row);
        // a record released under the probe (CF_USED cleared) is no hit: probe again
        if (r >= 0 && (v.rec[(r >> 1) * CONN_WORDS + CONN_FLAGS] & CF_USED) !== 0) {
          this.found = v;
          this.foundView = k;
          return r;
        }
        if ((seq & 1) === 0 && Atomics.load(v.header, HDR_SEQ) === seq) break;
      }
    }
    return -1;
  }

  /** `find` for callers holding loose values (ICMP errors, fragments): the packet's own addresses and ports. */
  findLoose(v6: number, s0: number, s1: number, s2: number, s3: number, d0: number, d1: number, d2: number, d3: number, ports: number, proto: number): number {
    const views = this.views;
    for (let k = 0; k < views.length; k++) {
      const v = views[k]!;
      const h = hashTuple(v.seedConn, s0, s1, s2, s3, d0, d1, d2, d3, ports, proto);
      for (let tries = 0; tries < SEQ_TRIES; tries++) {
        const seq = Atomics.load(v.header, HDR_SEQ);
        const r = v.lookup(h, v6, s0, s1, s2, s3, d0, d1, d2, d3, ports, proto);
        if (r >= 0 && (v.rec[(r >> 1) * CONN_WORDS + CONN_FLAGS] & CF_USED) !== 0) {
          this.found = v;
          this.foundView = k;
          return r;
        }
        if ((seq & 1) === 0 && Atomics.load(v.header, HDR_SEQ) === seq) break;
      }
    }
    return -1;
  }

  /** The worker index of view `k` (views skip `self`). */
  viewWorker(k: number): number {
    return k < this.self ? k : k + 1;
  }

  /**
   * This client's persistence template in another worker's table, from view `from` on
   * (arguments as ConnTable.lookupTemplate): its id with a reference taken on it
   * (persist-template.ts acquire; the caller links a connection to it or gives the reference
   * back with `uncontrol`), the view in `found` / `foundView`; or -1. A template its owner is
   * ending is passed over. The caller checks its real server (ip_vs_check_template) and, when
   * that fails, gives the reference back and looks on from `foundView + 1`: the owner invalidates
   * its template when its own lookup meets it.
   */
  acquireTemplate(
    from: number,
    v6: number,
    n0: number,
    n1: number,
    n2: number,
    n3: number,
    v0: number,
    v1: number,
    v2: number,
    v3: number,
    vport: number,
    proto: number,
  ): number {
    const views = this.views;
    for (let k = from; k < views.length; k++) {
      const v = views[k]!;
      for (let tries = 0; tries < SEQ_TRIES; tries++) {
        const seq = Atomics.load(v.header, HDR_SEQ);
        const ct = v.lookupTemplate(v6, n0, n1, n2, n3, v0, v1, v2, v3, vport, proto);
        if (ct >= 0 && acquire(v.rec, ct)) {
          this.found = v;
          this.foundView = k;
          return ct;
        }
        if ((seq & 1) === 0 && Atomics.load(v.header, HDR_SEQ) === seq) break;
      }
    }
    return -1;
  }
}

/**
 * A view's set_tcp_state: move connection `id` of another worker's table `view` to `next` by
 * compareExchange on its state word, store the new state's timeout and deadline, and ask the
 * owner to re-file it and recount it (reconcileRequest). A race lost to the owner's own packet
 * leaves the owner's state.
 */
export function peerSetTcpState(view: ConnTable, id: number, proto: number, next: number, timeoutTicks: number, now: number): void {
  const rec = view.rec,
    o = id * CONN_WORDS;
  const ps = Atomics.load(rec, o + CONN_PROTO_STATE);
  if ((ps & 0xff) === next) {
    view.rearm(id, now, timeoutTicks);
    return;
  }
  if (Atomics.compareExchange(rec, o + CONN_PROTO_STATE, ps, (proto << 8) | next) !== ps) return;
  rec[o + CONN_TIMEOUT] = timeoutTicks;
  view.touch(id, now);
  view.postRequest(id);
}

/**
 * A view's udp_state_transition for a reply: re-arm, and have the owner mark the template
 * ASSURED (only the owner writes flags).
 */
export function peerSetUdpState(view: ConnTable, id: number, timeoutTicks: number, now: number): void {
  const rec = view.rec,
    o = id * CONN_WORDS;
  view.rearm(id, now, timeoutTicks);
  const ctl = rec[o + CONN_CONTROL];
  if (ctl !== 0 && !linkAssured(view, ctl)) view.postRequest(id);
}

/**
 * Owner: a view's request about record `id`: bring CF_INACTIVE and the per-dest counts in line
 * with the state word (as set_tcp_state), mark the template ASSURED when the connection is
 * established or (no TCP) has seen a reply, and file the record again by its deadline.
 */
export function reconcileRequest(conns: ConnTable, c: Counters, id: number, now: number): void {
  const rec = conns.rec,
    o = id * CONN_WORDS;
  const flags = rec[o + CONN_FLAGS];
  if ((flags & CF_USED) === 0 || (flags & CF_TEMPLATE) !== 0) return;
  const ps = rec[o + CONN_PROTO_STATE];
  const proto = (ps >>> 8) & 0xff;
  if (proto === 6) {
    const state = ps & 0xff,
      dest = rec[o + CONN_DEST];
    // the counts are shared by all workers (stats/counters.ts): atomics, as set_tcp_state's
    if ((flags & CF_INACTIVE) === 0 && TCP_STATE_ACTIVE[state] === 0) {
      Atomics.add(c.inactive, dest, 1);
      Atomics.sub(c.active, dest, 1);
      rec[o + CONN_FLAGS] = flags | CF_INACTIVE;
    } else if ((flags & CF_INACTIVE) !== 0 && TCP_STATE_ACTIVE[state] !== 0) {
      Atomics.add(c.active, dest, 1);
      Atomics.sub(c.inactive, dest, 1);
      rec[o + CONN_FLAGS] = flags & ~CF_INACTIVE;
    }
    if (state === S_ESTABLISHED) assureTemplate(conns, id);
  } else {
    assureTemplate(conns, id);
  }
  conns.refile(id, now);
}

/**
 * Install a connection (or template) that did not come through this worker's queue (the sync
 * daemon's, a restart's adopted ones) into `table`: every worker then finds it, `table`'s own
 * worker by its lookup, the others through ConnPeers on a miss. `words`: a record of CONN_WORDS
 * (conn/table.ts layout; CF_USED is set here, the wheel words are ignored, CONN_CONTROL must be 0
 * or name a template already installed in the same table). Counts it on its dest in `c` (the
 * counters of `table`'s worker) as a scheduled connection is. Must run on the thread that owns
 * `table` (its worker: the one writer of its index), between bursts. Returns the id, or -1 when
 * the table is full.
 */
export function installConnection(table: ConnTable, c: Counters, t: Tables, words: Int32Array, now: number): number {
  if (table.producer >= 0) throw new RangeError("installConnection: a view cannot install; install on the table's own worker");
  const id = table.alloc();
  if (id < 0) return -1;
  const rec = table.rec,
    o = id * CONN_WORDS;
  for (let k = 0; k < CONN_WORDS; k++) {
    if (k === CONN_WHEEL_NEXT || k === CONN_WHEEL_PREV || k === CONN_WHEEL_SLOT) continue;
    rec[o + k] = words[k]!;
  }
  rec[o + CONN_FLAGS] = words[CONN_FLAGS]! | CF_USED;
  const ctl = rec[o + CONN_CONTROL];
  // the template's count is shared with other workers' links (persist-template.ts): atomic
  if (ctl > 0 && (rec[o + CONN_FLAGS] & CF_TEMPLATE) === 0) Atomics.add(rec, (ctl - 1) * CONN_WORDS + CONN_CONTROL, 1);
  bindDest(c, t, rec[o + CONN_DEST], rec[o + CONN_FLAGS]);
  c.svcRefs[rec[o + CONN_SVC]] += 1;
  table.link(id, now);
  return id;
}
