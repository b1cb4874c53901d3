/**
 * Persistence templates over several workers: one template per (client network, service) over
 * all workers, as IPVS has one over all CPUs. The template lives in the table of the worker that
 * made it (its owner); a connection another worker makes for the same client links to it there
 * instead of copying it, so PersistConn counts it once, and it expires as the kernel's would.
 *
 * What the kernel does (ip_vs_core.c ip_vs_sched_persist, ip_vs_conn.c ip_vs_conn_expire /
 * ip_vs_control_add / ip_vs_control_del / ip_vs_check_template): a new template gets the
 * service's persistence timeout and is counted once in dest->persistconns (ip_vs_bind_dest);
 * every connection it controls adds one to its n_control and re-arms its timer
 * (ip_vs_conn_put(ct)); a controlled connection's expiry takes one off; the template's timer,
 * when it fires with n_control > 0, tries again 60 s later (expire_later), else it goes.
 *
 * How that is done here, without a second writer of the owner's index, wheel or flags:
 * - A connection's CONN_CONTROL is its template's id + 1 in its own table (> 0, as before), or
 *   `~(worker << 24 | id)` (< 0) for a template in worker `worker`'s table (`peerLink`). Ids fit
 *   in 24 bits (MAX_CONNS_LIMIT) and workers in 6 (REQ_PRODUCERS), so the link is one word and
 *   the record layout (and the restart file's) stays the same.
 * - A template's CONN_CONTROL (n_control) is a count every worker changes with atomics: +1 when
 *   a connection links to it (`acquire`, a compareExchange loop), -1 when one goes (`uncontrol`).
 *   Its owner ends it only by compareExchange from 0 to DEAD (`kill`), so a worker that took a
 *   reference has made the template unkillable until it gives the reference back, and one that
 *   comes after the kill sees DEAD and schedules afresh (as a lookup after the kernel's
 *   template expired finds nothing). This is __ip_vs_conn_get's "take a reference unless it is
 *   going" on the count itself.
 * - Re-arming (ip_vs_conn_put(ct)) stores the template's deadline (`touchLink`): the owner's
 *   wheel re-files a record whose deadline moved later when its slot comes (conn/table.ts), so
 *   nothing is posted. ASSURED (a controlled connection got established, or saw a UDP reply) is
 *   one Atomics.or on the template's flags (`assureLink`), made while holding a reference, so
 *   the template cannot be released under it.
 *
 * Why not post every control change to the owner through its request ring (as TCP state moves
 * are): a ring entry carries an id, and a full ring loses it (table.ts REQ_RING), which for a
 * state move only re-files a timer late but for n_control would let a template expire under its
 * connections or never expire; and the owner would see the count a burst late, so a template
 * expiring in that burst would be released while another worker's new connection linked to it.
 * The atomics cost the new connection that links to another worker's template one
 * compareExchange on a line the owner rarely writes (and the later expiry one Atomics.sub); a
 * connection of the owner's own template pays an Atomics.add instead of a plain `+= 1`.
 * Measured (`bun run bench/persist-template.bench.ts OLD NEW --rounds 31`, run both ways round,
 * process CPU time of making and expiring 2048 connections a round; the 2-core host at load
 * average 19-26, where the tree loaded second came out 20-30 % slower whichever it was, so the
 * geometric mean of both orders): one worker, own template, new/old 1.31 and 0.81, about 1.03
 * (600-1200 ns a connection: within the noise); two workers, template in the other's table
 * (before: a hit on the local copy; now: a miss in the own table, the lookup in the owner's and
 * the compareExchange) 1.26 and 0.98, about 1.11, some 90 ns more per such connection. The
 * non-persistent fast path (`bench/fastpath-ab.bench.ts`, both ways round, 30 rounds): 4K flows
 * new/old 1.02 and 1/0.98, new connections 1.09 and 1/1.53, as noisy as an A/A pair here.
 *
 * Restarts: the table file keeps links within one worker's records, so a connection linked to
 * another worker's template is saved with that template's worker (persist.ts collectAll); the
 * adopting daemon finds it in whichever table it is installed.
 */
import { CF_ASSURED, CF_TEMPLATE, CF_USED, CONN_CONTROL, CONN_EXPIRES, CONN_FLAGS, CONN_TIMEOUT, CONN_WORDS, type ConnTable } from "./table.ts";

/** A template's CONN_CONTROL once its owner ended it: no reference can be taken any more. */
export const TEMPLATE_DEAD = -1;
const ID_BITS = 24;
const ID_MASK = (1 << ID_BITS) - 1;

/** The CONN_CONTROL of a connection whose template is record `id` of worker `worker`'s table. */
export function peerLink(worker: number, id: number): number {
  return ~((worker << ID_BITS) | id);
}

/** The worker whose table holds the template of a peer link (CONN_CONTROL < 0). */
export function linkWorker(ctl: number): number {
  return ~ctl >>> ID_BITS;
}

/** The template's id in its table, for a peer link (CONN_CONTROL < 0). */
export function linkId(ctl: number): number {
  return ~ctl & ID_MASK;
}

/**
 * Take a reference on template `id` of `rec` (ip_vs_control_add): +1 on its count unless its owner
 * ended it. Returns false when the template is gone (DEAD, released, or its record reused).
 */
export function acquire(rec: Int32Array, id: number): boolean {
  const o = id * CONN_WORDS;
  for (;;) {
    const n = Atomics.load(rec, o + CONN_CONTROL);
    if (n < 0) return false;
    if (Atomics.compareExchange(rec, o + CONN_CONTROL, n, n + 1) !== n) continue;
    // a record released and reused between the caller's lookup and the count (the owner reuses a
    // shared table's records only after REUSE_DELAY others, so this needs a long preemption)
    if ((Atomics.load(rec, o + CONN_FLAGS) & (CF_USED | CF_TEMPLATE)) === (CF_USED | CF_TEMPLATE)) return true;
    Atomics.sub(rec, o + CONN_CONTROL, 1);
    return false;
  }
}

/** Owner: end template `id` if it controls nothing (0 -> DEAD); false while connections hold it. */
export function kill(rec: Int32Array, id: number): boolean {
  const n = Atomics.compareExchange(rec, id * CONN_WORDS + CONN_CONTROL, 0, TEMPLATE_DEAD);
  return n === 0 || n === TEMPLATE_DEAD;
}

/** The table of a connection's template: `own` for a local link, else the link's worker's. */
export function linkTable(own: ConnTable, ctl: number): ConnTable {
  return ctl > 0 ? own : own.byWorker![linkWorker(ctl)]!;
}

/** The template's id for a link (> 0 local, < 0 another worker's). */
export function linkTemplate(ctl: number): number {
  return ctl > 0 ? ctl - 1 : linkId(ctl);
}

/** ip_vs_control_del: the connection of `conns` with link `ctl` (!= 0) goes; its template counts one less. */
export function uncontrol(conns: ConnTable, ctl: number): void {
  Atomics.sub(linkTable(conns, ctl).rec, linkTemplate(ctl) * CONN_WORDS + CONN_CONTROL, 1);
}

/** ip_vs_conn_put(ct): re-arm the template a connection of `conns` links to (`ctl` != 0) with its timeout. */
export function touchLink(conns: ConnTable, ctl: number, now: number): void {
  const r = linkTable(conns, ctl).rec,
    o = linkTemplate(ctl) * CONN_WORDS;
  r[o + CONN_EXPIRES] = (now + r[o + CONN_TIMEOUT]) | 0;
}

/** Is the template a connection of `conns` links to (`ctl` != 0) ASSURED? */
export function linkAssured(conns: ConnTable, ctl: number): boolean {
  return (linkTable(conns, ctl).rec[linkTemplate(ctl) * CONN_WORDS + CONN_FLAGS] & CF_ASSURED) !== 0;
}

/** ip_vs_control_assure_ct for a link (`ctl` != 0): the template's flags get ASSURED (atomic: any worker may). */
export function assureLink(conns: ConnTable, ctl: number): void {
  const r = linkTable(conns, ctl).rec,
    o = linkTemplate(ctl) * CONN_WORDS + CONN_FLAGS;
  if ((r[o] & CF_ASSURED) === 0) Atomics.or(r, o, CF_ASSURED);
}
