/**
 * New connections: scheduling, persistence templates, creation and counting (ip_vs_core.c
 * ip_vs_schedule / ip_vs_sched_persist, ip_vs_conn.c ip_vs_conn_new / ip_vs_check_template).
 * The fast path calls newConnection() for a packet that matched no connection but a virtual
 * service.
 *
 * Persistence: a template record (CF_TEMPLATE) keyed <proto, client network, 0, vaddr, vport>
 * names the dest every new connection of that client network gets without asking the
 * scheduler; it counts in PersistConn, each connection it controls re-arms it (ip_vs_conn_put)
 * and names it in CONN_CONTROL, and it outlives its connections by the persistence timeout.
 * A template whose dest was deleted (or, with expire_quiescent_template, set to weight 0) is
 * invalidated (re-keyed with ports 0xffff, as the kernel rehashes it) and the scheduler runs.
 * One template per client network and service over all workers: a client's template in
 * another worker's table is linked to there (conn/persist-template.ts), never copied; the
 * lookup over every table and the creation happen under the service's lock, so two workers
 * never make two.
 *
 * A TCP packet that may not start a connection (no SYN, or RST; sloppy_tcp=0) and has none is
 * passed to the local stack by the kernel (tcp_conn_schedule returns NF_ACCEPT), and the
 * director's stack, which owns the VIP, answers it with a RST (none for a RST). An AF_XDP
 * socket cannot hand a frame back to the kernel, so xvs counts Stat.DropTcpNoConn and sends
 * that RST itself (xmit/tcp-reset.ts, Stat.TcpResetSent).
 *
 * One scheduler state per service over all workers (shared-sched.ts): the choice of the dest
 * and the count of the connection on it happen under the service's lock (stats/svc-lock.ts),
 * one hold per new connection, so rr/wrr positions advance once per connection over all workers
 * and a threshold (-x) holds over all of them. The record is allocated after the lock is given
 * back; when that fails the count is given back (unbindDest).
 *
 * Deviation, because the fast path cannot do otherwise:
 * - the kernel's connection table has no fixed size; xvs's has, so when it is full a new
 *   connection is refused (Stat.DropTableFull) and nothing else changes: an established
 *   connection is never evicted to make room, and the client's next SYN retries. Under table
 *   pressure the SYN-flood defence (synflood.ts) may first reclaim half-open connections, never
 *   established ones.
 */
import {
  CF_DEST_V6,
  CF_FWD_MASK,
  CF_INACTIVE,
  CF_NOOUTPUT,
  CF_OUT_ENTRY,
  CF_TEMPLATE,
  CF_USED,
  CONN_CADDR,
  CONN_CONTROL,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DEST,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  TICKS_PER_SEC,
  type ConnTable,
} from "../conn/table.ts";
import { bindDestHeld, unbindDest } from "../conn/accounting.ts";
import { peerLink, touchLink, uncontrol } from "../conn/persist-template.ts";
import { NEW_CONN_TIMEOUT_SEC, S_NONE } from "../conn/state.ts";
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_FWD,
  DEST_PORT,
  DEST_WEIGHT,
  DEST_WORDS,
  DESTF_AVAILABLE,
  DESTF_V6,
  FWD_MASQ,
  SET_EXPIRE_QUIESCENT_TEMPLATE,
  SET_SLOPPY_TCP,
  SVC_FLAGS,
  SVC_FWMARK,
  SVC_NETMASK,
  SVC_PORT,
  SVC_PTIMEOUT,
  SVC_SCHED,
  SVC_WORDS,
  SVCF_FWMARK,
  SVCF_ONEPACKET,
  SVCF_PERSISTENT,
  type Tables,
} from "../service/tables.ts";
import { DEST_TRAFFIC_BASE, TS_CONNS, TS_WORDS } from "../stats/counters.ts";
import { lockService, unlockService } from "../stats/svc-lock.ts";
import {
  ICMP_CODE_PORT_UNREACH,
  ICMP_DEST_UNREACH,
  ICMPV6_CODE_PORT_UNREACH,
  ICMPV6_DEST_UNREACH,
  PROTO_TCP,
  PROTO_UDP,
  TCP_RST,
  TCP_SYN,
} from "../wire/fields.ts";
import { FLOW_DST, FLOW_PORTS, FLOW_SRC, flowDport } from "../wire/flow.ts";
import * as abi from "../ffi/abi.ts";
import type { FastPathState } from "./contract.ts";
import { Stat } from "./verdict.ts";
import { SYN_REFUSED } from "./synflood.ts";

/** What of the fast path scheduling uses (contract.ts). */
export type ScheduleState = Pick<
  FastPathState,
  | "tables"
  | "flows"
  | "conns"
  | "peers"
  | "flowCache"
  | "counters"
  | "sched"
  | "synGuard"
  | "now"
  | "drop"
  | "sendIcmp"
  | "sendReset"
  | "setReplyHop"
  | "transmitIn"
  | "forward"
  | "release"
>;

const D_ADDR = abi.XVS_DESC_ADDR;
const D_IN = abi.XVS_DESC_IN_PORT;

/** FTPPORT: a persistent FTP service keeps vport 0 in its templates (data connections use other ports). */
const FTP_PORT = 21;
/** Template ports after invalidation (ip_vs_check_template): no lookup matches them any more. */
const INVALID_PORT = 0xffff;

/** tcp_conn_schedule's gate: a SYN without RST (or, with sloppy_tcp, any non-RST packet) may start a TCP connection. */
export function mayCreate(t: Tables, proto: number, tcpFlags: number): boolean {
  if (proto !== PROTO_TCP) return true;
  if (tcpFlags & TCP_RST) return false;
  return (tcpFlags & TCP_SYN) !== 0 || t.settings[SET_SLOPPY_TCP] !== 0;
}

/**
 * The flags a new connection (or template) inherits from its dest (dest->conn_flags); the real
 * server's family is recorded too (a v4 service may tunnel to a v6 real server).
 */
function destConnFlags(t: Tables, dest: number, v6: number): number {
  const fwd = t.dest[dest * DEST_WORDS + DEST_FWD];
  const destV6 = (t.dest[dest * DEST_WORDS + DEST_FLAGS] & DESTF_V6) !== 0 ? CF_DEST_V6 : 0;
  return CF_USED | (fwd & CF_FWD_MASK) | CF_INACTIVE | v6 | destV6 | (fwd === FWD_MASQ ? 0 : CF_NOOUTPUT);
}

/** ip_vs_check_template's test: may a template still send clients to dest `d`? */
function templateDestUsable(t: Tables, d: number): boolean {
  const dOff = d * DEST_WORDS;
  return (t.dest[dOff + DEST_FLAGS] & DESTF_AVAILABLE) !== 0 && !(t.settings[SET_EXPIRE_QUIESCENT_TEMPLATE] !== 0 && t.dest[dOff + DEST_WEIGHT] === 0);
}

/**
 * ip_vs_check_template: is the template's dest still usable? If not, invalidate the template
 * (it stays until its timer, counted in PersistConn, but no lookup finds it) and say so.
 */
function checkTemplate(t: Tables, conns: ConnTable, ct: number): boolean {
  const rec = conns.rec,
    o = ct * CONN_WORDS;
  if (templateDestUsable(t, rec[o + CONN_DEST])) return true;
  if ((rec[o + CONN_CPORT_VPORT] & 0xffff) !== INVALID_PORT) {
    conns.rekeyPorts(ct, INVALID_PORT);
    rec[o + CONN_DPORT] = INVALID_PORT;
  }
  return false;
}

/**
 * The template persistSchedule found or made, as the new connection's CONN_CONTROL (> 0 this
 * worker's, < 0 another's: persist-template.ts), with a reference taken on it for the connection.
 */
let persistLink = 0;

/**
 * ip_vs_sched_persist, up to the choice of the dest: find (in this worker's table, then the
 * others') or create the client network's template (the caller holds the service's lock: a new
 * template is scheduled and counted), and take a reference on it (`persistLink`: the caller links
 * the connection, or gives the reference back). Returns the dest, -1 when no dest is available
 * (the client gets ICMP), or -2 when the template could not be stored (table full: drop).
 */
function persistSchedule(fp: ScheduleState, svc: number, row: number, proto: number, v6: number, dport: number): number {
  const t = fp.tables,
    f = fp.flows,
    conns = fp.conns,
    rec = conns.rec;
  const so = svc * SVC_WORDS;
  const svcPort = t.svc[so + SVC_PORT];
  // snet: the client address under the persistence mask
  const n0 = f[row + FLOW_SRC] & t.svc[so + SVC_NETMASK],
    n1 = f[row + FLOW_SRC + 1] & t.svc[so + SVC_NETMASK + 1];
  const n2 = f[row + FLOW_SRC + 2] & t.svc[so + SVC_NETMASK + 2],
    n3 = f[row + FLOW_SRC + 3] & t.svc[so + SVC_NETMASK + 3];
  let tproto = proto,
    vport = 0;
  let v0 = f[row + FLOW_DST],
    v1 = f[row + FLOW_DST + 1],
    v2 = f[row + FLOW_DST + 2],
    v3 = f[row + FLOW_DST + 3];
  if (dport === svcPort) {
    // <proto, snet, 0, vaddr, vport> (FTP: vport 0)
    if (svcPort !== FTP_PORT) vport = dport;
  } else if ((t.svc[so + SVC_FLAGS] & SVCF_FWMARK) !== 0) {
    // fwmark template: <IPPROTO_IP, snet, 0, fwmark, 0>
    tproto = 0;
    v0 = t.svc[so + SVC_FWMARK];
    v1 = v2 = v3 = 0;
  } // else a port-0 service: <proto, snet, 0, vaddr, 0>
  let ct = conns.lookupTemplate(v6, n0, n1, n2, n3, v0, v1, v2, v3, vport, tproto);
  if (ct >= 0 && checkTemplate(t, conns, ct)) {
    // other workers' links change the count too: atomic (only this thread ends the template)
    Atomics.add(rec, ct * CONN_WORDS + CONN_CONTROL, 1);
    persistLink = ct + 1;
    return rec[ct * CONN_WORDS + CONN_DEST];
  }
  const peers = fp.peers;
  if (peers !== null) {
    // the client's template may be another worker's (its earlier connection came in on another
    // queue): the connection links to it there; an unusable one is left to its owner
    for (let from = 0; ; from = peers.foundView + 1) {
      const pt = peers.acquireTemplate(from, v6, n0, n1, n2, n3, v0, v1, v2, v3, vport, tproto);
      if (pt < 0) break;
      const pr = peers.found.rec;
      const dest = pr[pt * CONN_WORDS + CONN_DEST];
      if (templateDestUsable(t, dest)) {
        persistLink = peerLink(peers.viewWorker(peers.foundView), pt);
        return dest;
      }
      Atomics.sub(pr, pt * CONN_WORDS + CONN_CONTROL, 1);
    }
  }
  const sched = SCHEDULER_BY_ID[t.svc[so + SVC_SCHED]];
  const dest = sched ? sched.schedule(fp.sched, svc, f, row) : -1;
  if (dest < 0) return -1;
  ct = conns.alloc();
  if (ct < 0) return -2;
  const o = ct * CONN_WORDS,
    dOff = dest * DEST_WORDS;
  const flags = destConnFlags(t, dest, v6) | CF_TEMPLATE;
  rec[o + CONN_FLAGS] = flags;
  rec[o + CONN_PROTO_STATE] = (tproto << 8) | S_NONE;
  rec[o + CONN_CADDR] = n0;
  rec[o + CONN_CADDR + 1] = n1;
  rec[o + CONN_CADDR + 2] = n2;
  rec[o + CONN_CADDR + 3] = n3;
  rec[o + CONN_VADDR] = v0;
  rec[o + CONN_VADDR + 1] = v1;
  rec[o + CONN_VADDR + 2] = v2;
  rec[o + CONN_VADDR + 3] = v3;
  for (let k = 0; k < 4; k++) rec[o + CONN_DADDR + k] = t.dest[dOff + DEST_ADDR + k];
  rec[o + CONN_CPORT_VPORT] = vport;
  rec[o + CONN_DPORT] = dport === svcPort && svcPort !== FTP_PORT ? t.dest[dOff + DEST_PORT] : 0;
  rec[o + CONN_SVC] = svc;
  rec[o + CONN_DEST] = dest;
  rec[o + CONN_CONTROL] = 1; // the new connection's reference
  const timeout = t.svc[so + SVC_PTIMEOUT];
  rec[o + CONN_TIMEOUT] = timeout;
  rec[o + CONN_EXPIRES] = (fp.now + timeout) | 0;
  bindDestHeld(fp.counters, t, dest, flags);
  fp.counters.svcRefs[svc] += 1;
  conns.link(ct, fp.now);
  persistLink = ct + 1;
  return dest;
}

/**
 * A connection that took a reference on its template (`link`) is not made (-o's one datagram,
 * a refused or failed allocation): the template is re-armed (ip_vs_conn_put(ct)) and the
 * reference given back.
 */
function unlinkTemplate(conns: ConnTable, link: number, now: number): void {
  touchLink(conns, link, now);
  uncontrol(conns, link);
}

/** Count a scheduled connection (ip_vs_conn_stats): conns per service and per dest. */
function countConn(fp: ScheduleState, svc: number, dest: number): void {
  const tr = fp.counters.traffic;
  tr[svc * TS_WORDS + TS_CONNS] += 1;
  tr[DEST_TRAFFIC_BASE + dest * TS_WORDS + TS_CONNS] += 1;
  fp.counters.verdicts[Stat.NewConns] += 1;
}

/** Answer the client with ICMP (v6) port unreachable (ip_vs_leave); returns the out port. */
function leave(fp: ScheduleState, descs: Uint32Array, d: number, row: number, pkt: number, v6: number): number {
  fp.counters.verdicts[Stat.DropNoDest] += 1;
  return fp.sendIcmp(descs, d, row, pkt, v6, v6 ? ICMPV6_DEST_UNREACH : ICMP_DEST_UNREACH, v6 ? ICMPV6_CODE_PORT_UNREACH : ICMP_CODE_PORT_UNREACH, 0);
}

/**
 * The first packet of a connection (ip_vs_schedule): gate (TCP needs a SYN unless sloppy_tcp),
 * choose the dest (through the client's persistence template, or the service's scheduler),
 * create and count the connection, then forward the packet. With no real server available the
 * client gets ICMP port unreachable (ip_vs_leave), for TCP as for UDP. Returns the out port.
 */
export function newConnection(
  fp: ScheduleState,
  descs: Uint32Array,
  d: number,
  row: number,
  pkt: number,
  svc: number,
  proto: number,
  v6: number,
  tcpFlags: number,
): number {
  const t = fp.tables,
    f = fp.flows;
  if (!mayCreate(t, proto, tcpFlags)) {
    // the kernel passes it to the director's stack, which owns the VIP and answers with a RST
    // (none for a RST): xvs answers the same
    if ((tcpFlags & TCP_RST) !== 0) return fp.drop(Stat.DropTcpNoConn);
    fp.counters.verdicts[Stat.DropTcpNoConn] += 1;
    return fp.sendReset(descs, d, row, pkt, v6);
  }
  fp.sched.now = fp.now;
  const so = svc * SVC_WORDS;
  const svcFlags = t.svc[so + SVC_FLAGS];
  const pktDport = flowDport(f, row);
  const svcPort = t.svc[so + SVC_PORT];
  let dest: number,
    link = 0,
    dport: number,
    flags: number;
  const lock = fp.counters.svcLock;
  if ((svcFlags & SVCF_PERSISTENT) !== 0) {
    lockService(lock, svc);
    dest = persistSchedule(fp, svc, row, proto, v6, pktDport);
    flags = dest >= 0 ? destConnFlags(t, dest, v6) : 0;
    if (dest >= 0) bindDestHeld(fp.counters, t, dest, flags);
    unlockService(lock, svc);
    if (dest === -2) return fp.drop(Stat.DropTableFull);
    if (dest < 0) return leave(fp, descs, d, row, pkt, v6);
    link = persistLink;
    // persistent fwmark and port-0 services keep the client's port
    const destPort = t.dest[dest * DEST_WORDS + DEST_PORT];
    dport = pktDport === svcPort && destPort !== 0 ? destPort : pktDport;
  } else {
    if ((svcFlags & SVCF_FWMARK) === 0 && pktDport !== svcPort) {
      // "Schedule: port zero only supported in persistent services"
      return leave(fp, descs, d, row, pkt, v6);
    }
    const sched = SCHEDULER_BY_ID[t.svc[so + SVC_SCHED]];
    // choose and count in one hold of the service's lock: exact over all workers
    lockService(lock, svc);
    dest = sched ? sched.schedule(fp.sched, svc, f, row) : -1;
    flags = dest >= 0 ? destConnFlags(t, dest, v6) : 0;
    if (dest >= 0) bindDestHeld(fp.counters, t, dest, flags);
    unlockService(lock, svc);
    if (dest < 0) return leave(fp, descs, d, row, pkt, v6);
    const destPort = t.dest[dest * DEST_WORDS + DEST_PORT];
    dport = destPort !== 0 ? destPort : pktDport;
  }
  const conns = fp.conns,
    rec = conns.rec;
  const fwd = t.dest[dest * DEST_WORDS + DEST_FWD];
  if ((svcFlags & SVCF_ONEPACKET) !== 0 && proto === PROTO_UDP) {
    // -o: the connection lives for this one datagram and is never hashed (ip_vs_conn_hash
    // skips it; ip_vs_conn_put frees it at once): bound (above) and unbound around the packet,
    // so the thresholds see it, and its template is re-armed
    countConn(fp, svc, dest);
    if (link !== 0) unlinkTemplate(conns, link, fp.now);
    const out = fp.transmitIn(descs, d, row, pkt, svc, dest, dport, fwd, v6, -1);
    unbindDest(fp.counters, t, dest, flags);
    return out;
  }
  // ---- SYN flood defence (dataplane/synflood.ts): under table pressure a TCP connection's record
  // comes from evicting half-open ones, or the SYN is refused; established ones are never touched
  const id = proto === PROTO_TCP ? fp.synGuard.alloc(fp, row) : conns.alloc();
  if (id === SYN_REFUSED) {
    unbindDest(fp.counters, t, dest, flags);
    if (link !== 0) unlinkTemplate(conns, link, fp.now);
    return fp.drop(Stat.DropSynFlood);
  }
  // ---- end SYN flood defence ----
  if (id < 0) {
    unbindDest(fp.counters, t, dest, flags);
    if (link !== 0) unlinkTemplate(conns, link, fp.now);
    return fp.drop(Stat.DropTableFull);
  }
  const o = id * CONN_WORDS;
  rec[o + CONN_FLAGS] = flags | (fwd === FWD_MASQ ? CF_OUT_ENTRY : 0);
  rec[o + CONN_PROTO_STATE] = (proto << 8) | S_NONE;
  for (let k = 0; k < 4; k++) {
    rec[o + CONN_CADDR + k] = f[row + FLOW_SRC + k];
    rec[o + CONN_VADDR + k] = f[row + FLOW_DST + k];
    rec[o + CONN_DADDR + k] = t.dest[dest * DEST_WORDS + DEST_ADDR + k];
  }
  rec[o + CONN_CPORT_VPORT] = f[row + FLOW_PORTS];
  rec[o + CONN_DPORT] = dport;
  rec[o + CONN_SVC] = svc;
  rec[o + CONN_DEST] = dest;
  rec[o + CONN_CONTROL] = 0;
  if (fwd === FWD_MASQ) fp.setReplyHop(rec, o, descs[d + D_IN], descs[d + D_ADDR], row, v6);
  rec[o + CONN_TIMEOUT] = NEW_CONN_TIMEOUT_SEC * TICKS_PER_SEC;
  rec[o + CONN_EXPIRES] = (fp.now + NEW_CONN_TIMEOUT_SEC * TICKS_PER_SEC) | 0;
  // counted on its dest when it was scheduled (above)
  fp.counters.svcRefs[svc] += 1;
  // before it is linked: another connection's cached reply entry for the same tuple goes (flowcache.ts)
  if (fwd === FWD_MASQ) fp.flowCache.replyTaken(fp, fp.peers, id);
  conns.link(id, fp.now);
  if (link !== 0) {
    // ip_vs_control_add (counted by persistSchedule) + ip_vs_conn_put(ct): the template, this
    // worker's or another's, controls it and is re-armed
    rec[o + CONN_CONTROL] = link;
    touchLink(conns, link, fp.now);
  }
  countConn(fp, svc, dest);
  return fp.forward(descs, d, row, pkt, id);
}
