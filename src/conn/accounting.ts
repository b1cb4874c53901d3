/**
 * Connection accounting as IPVS does it (ip_vs_conn.c ip_vs_bind_dest/ip_vs_unbind_dest,
 * ip_vs_proto_tcp.c set_tcp_state, ip_vs_proto_udp.c udp_state_transition, ip_vs_ctl.c
 * __ip_vs_update_dest): which counter (ActiveConn, InActConn, PersistConn) a connection is in,
 * the OVERLOAD flag that the upper and lower thresholds drive, and the ASSURED mark of a
 * persistence template.
 *
 * The counts are one per dest over all workers (stats/counters.ts SharedCountBuffers), as the
 * kernel's atomics are one per dest over all CPUs. Increments happen when a connection is
 * scheduled, under its service's lock (stats/svc-lock.ts) together with the choice of the dest,
 * so a threshold holds exactly over all workers; decrements and active<->inactive moves are
 * single Atomics.sub/add from whatever worker owns the connection. The OVERLOAD flag is written
 * only under the dest's service lock: a decrement that finds it set takes the lock to
 * re-evaluate it (otherwise a worker clearing it on a stale count could race one setting it, and
 * leave a full dest open to the scheduler).
 */
import type { Counters } from "../stats/counters.ts";
import { lockService, unlockService } from "../stats/svc-lock.ts";
import {
  DEST_FLAGS,
  DEST_LTHRESH,
  DEST_SVC,
  DEST_UTHRESH,
  DEST_WORDS,
  DESTF_AVAILABLE,
  DESTF_USED,
  MAX_DESTS,
  SVC_DEST_N,
  SVC_DEST_OFF,
  SVC_WORDS,
  type Tables,
} from "../service/tables.ts";
import { CF_INACTIVE, CF_TEMPLATE, CF_USED, CONN_CONTROL, CONN_DEST, CONN_FLAGS, CONN_PROTO_STATE, CONN_WORDS, HDR_HIGH, type ConnTable } from "./table.ts";
import { S_ESTABLISHED, TCP_STATE_ACTIVE } from "./state.ts";
import { assureLink, kill } from "./persist-template.ts";

/**
 * ip_vs_dest_update_overload: set OVERLOAD once a dest's connections (active + inactive;
 * templates are not connections) reach its upper threshold, clear it once they fall below the
 * lower threshold, or without one below u - u/4 (75 %, rounded as the kernel does), and never
 * keep it without an upper threshold. This is the rule of the 6.1 oracle kernel (Debian
 * 6.1.0-56, which carries "ipvs: properly update the overload flag on dest edit"): editing
 * the thresholds re-evaluates the flag at once, so `-e -x 1` on a busy dest overloads it
 * before any new connection (observed: test/kernel/oracle, scenario sh-changes). The
 * older rule (set only when a connection binds; -e clears it only when u grows or becomes 0)
 * gives the same results in every other case. The caller holds the dest's service lock.
 */
export function updateOverload(c: Counters, t: Tables, dest: number): void {
  const dOff = dest * DEST_WORDS;
  const u = t.dest[dOff + DEST_UTHRESH];
  if (u === 0) {
    c.overload[dest] = 0;
    return;
  }
  const conns = Atomics.load(c.total, dest);
  if (conns >= u) {
    c.overload[dest] = 1;
    return;
  }
  const l = t.dest[dOff + DEST_LTHRESH] !== 0 ? t.dest[dOff + DEST_LTHRESH] : u - (u >>> 2);
  if (conns < l) c.overload[dest] = 0;
}

/**
 * ip_vs_bind_dest for a caller that holds no lock (a restored, synced or adopted connection):
 * takes the dest's service lock around bindDestHeld.
 */
export function bindDest(c: Counters, t: Tables, dest: number, flags: number): void {
  const svc = t.dest[dest * DEST_WORDS + DEST_SVC];
  lockService(c.svcLock, svc);
  bindDestHeld(c, t, dest, flags);
  unlockService(c.svcLock, svc);
}

/**
 * ip_vs_bind_dest: count a connection (or a template, in PersistConn) on its dest, then update
 * OVERLOAD. The caller holds the dest's service lock (the same hold as the scheduling decision).
 */
export function bindDestHeld(c: Counters, t: Tables, dest: number, flags: number): void {
  if (flags & CF_TEMPLATE) Atomics.add(c.persist, dest, 1);
  else {
    Atomics.add(c.total, dest, 1);
    if (flags & CF_INACTIVE) Atomics.add(c.inactive, dest, 1);
    else Atomics.add(c.active, dest, 1);
  }
  updateOverload(c, t, dest);
}

/**
 * ip_vs_unbind_dest: uncount; an OVERLOADed dest re-evaluates its flag under its service's lock.
 * The caller holds no lock.
 */
export function unbindDest(c: Counters, t: Tables, dest: number, flags: number): void {
  if (flags & CF_TEMPLATE) Atomics.sub(c.persist, dest, 1);
  else {
    if (flags & CF_INACTIVE) Atomics.sub(c.inactive, dest, 1);
    else Atomics.sub(c.active, dest, 1);
    Atomics.sub(c.total, dest, 1);
  }
  if (c.overload[dest] !== 0) {
    const svc = t.dest[dest * DEST_WORDS + DEST_SVC];
    lockService(c.svcLock, svc);
    updateOverload(c, t, dest);
    unlockService(c.svcLock, svc);
  }
}

/**
 * __ip_vs_update_dest for a new configuration generation, for the dests of service `svc`: a
 * dest whose thresholds changed (ipvsadm -a/-e -x/-y) re-evaluates OVERLOAD against its current
 * connections; a dest that is new starts without it. Run once per service and generation over
 * all workers (dataplane/shared-sched.ts), under the service's lock.
 */
export function thresholdsChanged(c: Counters, prev: Tables, next: Tables, svc: number): void {
  const a = prev.dest,
    b = next.dest;
  const off = next.svc[svc * SVC_WORDS + SVC_DEST_OFF],
    n = next.svc[svc * SVC_WORDS + SVC_DEST_N];
  for (let i = 0; i < n; i++) {
    const d = next.destList[off + i];
    const o = d * DEST_WORDS;
    if ((a[o + DEST_FLAGS] & DESTF_USED) === 0) {
      c.overload[d] = 0;
      if (b[o + DEST_UTHRESH] !== 0) updateOverload(c, next, d);
    } else if (a[o + DEST_UTHRESH] !== b[o + DEST_UTHRESH] || a[o + DEST_LTHRESH] !== b[o + DEST_LTHRESH]) {
      updateOverload(c, next, d);
    }
  }
}

/**
 * ip_vs_control_assure_ct: mark the template controlling connection `id` of `conns` ASSURED (shown
 * by -Lnc); the template may be another worker's (persist-template.ts).
 */
export function assureTemplate(conns: ConnTable, id: number): void {
  const rec = conns.rec;
  const ctl = rec[id * CONN_WORDS + CONN_CONTROL];
  if (ctl !== 0 && (rec[id * CONN_WORDS + CONN_FLAGS] & CF_TEMPLATE) === 0) assureLink(conns, ctl);
}

/**
 * Move one connection of `dest` from ActiveConn to InActConn (`toInactive`) or back. The counts
 * are shared by all workers: atomics, never `+= 1`. `total` (what OVERLOAD follows) does not
 * change, so no lock.
 */
export function moveCount(c: Counters, dest: number, toInactive: boolean): void {
  if (toInactive) {
    Atomics.add(c.inactive, dest, 1);
    Atomics.sub(c.active, dest, 1);
  } else {
    Atomics.add(c.active, dest, 1);
    Atomics.sub(c.inactive, dest, 1);
  }
}

/**
 * set_tcp_state's bookkeeping: move connection `id` to state `next`, moving it between
 * ActiveConn and InActConn as tcp_state_active says, mark its template ASSURED when it becomes
 * ESTABLISHED, and re-arm it with `timeoutTicks` (the new state's timeout).
 */
export function setTcpState(conns: ConnTable, c: Counters, id: number, proto: number, next: number, timeoutTicks: number, now: number): void {
  const rec = conns.rec,
    o = id * CONN_WORDS;
  const ps = rec[o + CONN_PROTO_STATE];
  if ((ps & 0xff) !== next) {
    const flags = rec[o + CONN_FLAGS];
    const dest = rec[o + CONN_DEST];
    if ((flags & CF_INACTIVE) === 0 && TCP_STATE_ACTIVE[next] === 0) {
      moveCount(c, dest, true);
      rec[o + CONN_FLAGS] = flags | CF_INACTIVE;
    } else if ((flags & CF_INACTIVE) !== 0 && TCP_STATE_ACTIVE[next] !== 0) {
      moveCount(c, dest, false);
      rec[o + CONN_FLAGS] = flags & ~CF_INACTIVE;
    }
    rec[o + CONN_PROTO_STATE] = (proto << 8) | next;
    if (next === S_ESTABLISHED) assureTemplate(conns, id);
  }
  conns.rearm(id, now, timeoutTicks);
}

/**
 * udp_state_transition (and any protocol without states): the connection stays inactive, a
 * reply (`output`) marks its template ASSURED, and every packet re-arms it with the UDP timeout.
 */
export function setUdpState(conns: ConnTable, id: number, output: boolean, timeoutTicks: number, now: number): void {
  if (output) assureTemplate(conns, id);
  conns.rearm(id, now, timeoutTicks);
}

/** What the expire_nodest_conn flush needs from the fast path. */
export interface ConnOwner {
  conns: ConnTable;
  tables: Tables;
  /** Unbind and free a record (templates: and un-control nothing; connections: un-control their template). */
  release(id: number): void;
}

/**
 * ip_vs_expire_nodest_conn_flush (Linux 5.9+, run when a dest is deleted while
 * expire_nodest_conn=1): delete every connection whose dest is no longer available, and with it
 * its template once that controls nothing else. Templates that still control connections are
 * left to their timers. Walks at most `budget` records from `cursor`; returns the next cursor,
 * or -1 when the walk is done (the fast path spreads it over its expiry calls).
 */
export function flushNodest(fp: ConnOwner, cursor: number, budget: number): number {
  const conns = fp.conns,
    rec = conns.rec,
    t = fp.tables;
  const high = conns.header[HDR_HIGH];
  const end = Math.min(high, cursor + budget);
  for (let id = cursor; id < end; id++) {
    const o = id * CONN_WORDS;
    const flags = rec[o + CONN_FLAGS];
    if ((flags & CF_USED) === 0) continue;
    const dest = rec[o + CONN_DEST];
    if ((t.dest[dest * DEST_WORDS + DEST_FLAGS] & DESTF_AVAILABLE) !== 0) continue;
    // a template goes only once nothing, in any worker, holds it (persist-template.ts kill)
    if ((flags & CF_TEMPLATE) !== 0) {
      if (kill(rec, id)) fp.release(id);
      continue;
    }
    const ctl = rec[o + CONN_CONTROL];
    fp.release(id);
    if (ctl > 0 && kill(rec, ctl - 1)) fp.release(ctl - 1);
  }
  return end >= high ? -1 : end;
}

/** True when some dest available in `prev` is not in `next` (deleted: ip_vs_del_dest). */
export function destRemoved(prev: Tables, next: Tables): boolean {
  const a = prev.dest,
    b = next.dest;
  for (let d = 0; d < MAX_DESTS; d++) {
    const o = d * DEST_WORDS;
    if ((a[o + DEST_FLAGS] & DESTF_AVAILABLE) !== 0 && (b[o + DEST_FLAGS] & DESTF_AVAILABLE) === 0) return true;
  }
  return false;
}
