/**
 * New connections: scheduling, creation and counting (ip_vs_core.c ip_vs_schedule,
 * ip_vs_conn.c ip_vs_conn_new). Persistence templates, one-packet scheduling and the kernel's
 * gating rules live here; the fast path calls newConnection() for a packet that matched no
 * connection but a virtual service.
 */
import {
  CF_FWD_MASK, CF_INACTIVE, CF_NOOUTPUT, CF_OUT_ENTRY, CF_USED, CONN_CADDR, CONN_CONTROL, CONN_CPORT_VPORT, CONN_DADDR,
  CONN_DEST, CONN_DPORT, CONN_EXPIRES, CONN_FLAGS, CONN_PROTO_STATE, CONN_SVC, CONN_TIMEOUT, CONN_VADDR, CONN_WORDS,
  TICKS_PER_SEC,
} from "../conn/table.ts";
import { bindDest } from "../conn/accounting.ts";
import { NEW_CONN_TIMEOUT_SEC, S_NONE } from "../conn/state.ts";
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import {
  DEST_ADDR, DEST_FWD, DEST_PORT, DEST_WORDS, FWD_MASQ, SET_SLOPPY_TCP, SVC_FLAGS, SVC_PORT, SVC_SCHED, SVC_WORDS, SVCF_ONEPACKET,
} from "../service/tables.ts";
import { DEST_TRAFFIC_BASE, TS_CONNS, TS_WORDS } from "../stats/counters.ts";
import { ICMP_CODE_PORT_UNREACH, ICMP_DEST_UNREACH, ICMPV6_CODE_PORT_UNREACH, ICMPV6_DEST_UNREACH, PROTO_TCP } from "../wire/fields.ts";
import { FLOW_DST, FLOW_PORTS, FLOW_SRC } from "../wire/flow.ts";
import * as abi from "../ffi/abi.ts";
import type { FastPath } from "./fastpath.ts";
import { Stat } from "./verdict.ts";

const D_ADDR = abi.XVS_DESC_ADDR;
const D_IN = abi.XVS_DESC_IN_PORT;

/** A SYN (or, with sloppy_tcp, any non-RST TCP packet) may start a TCP connection. */
function mayCreate(fp: FastPath, proto: number, tcpFlags: number): boolean {
  if (proto !== PROTO_TCP) return true;
  if (tcpFlags & 0x04) return false;
  return (tcpFlags & 0x02) !== 0 || fp.tables.settings[SET_SLOPPY_TCP] !== 0;
}

/**
 * The first packet of a connection (ip_vs_schedule): gate (TCP needs a SYN unless sloppy_tcp),
 * ask the service's scheduler, create and count the connection, then forward the packet. With
 * no real server available the client gets ICMP port unreachable (ip_vs_leave).
 */
export function newConnection(fp: FastPath, descs: Uint32Array, d: number, row: number, pkt: number, svc: number, proto: number, v6: number, tcpFlags: number): void {
  const t = fp.tables, f = fp.flows;
  if (!mayCreate(fp, proto, tcpFlags)) {
    fp.drop(descs, d, Stat.DropTcpNoConn);
    return;
  }
  const so = svc * SVC_WORDS;
  const sched = SCHEDULER_BY_ID[t.svc[so + SVC_SCHED]];
  const dest = sched ? sched.schedule(fp.sched, svc, f, row) : -1;
  if (dest < 0) {
    // ip_vs_leave: ICMP port unreachable for TCP as for UDP
    fp.counters.verdicts[Stat.DropNoDest] += 1;
    fp.sendIcmp(descs, d, row, pkt, v6, v6 ? ICMPV6_DEST_UNREACH : ICMP_DEST_UNREACH, v6 ? ICMPV6_CODE_PORT_UNREACH : ICMP_CODE_PORT_UNREACH, 0);
    return;
  }
  const tr = fp.counters.traffic;
  const dOff = dest * DEST_WORDS;
  const dport = t.dest[dOff + DEST_PORT] !== 0 ? t.dest[dOff + DEST_PORT] : t.svc[so + SVC_PORT];
  const fwd = t.dest[dOff + DEST_FWD];
  if ((t.svc[so + SVC_FLAGS] & SVCF_ONEPACKET) !== 0 && proto === 17) {
    // -o: the connection lives for this one datagram and is never hashed (ip_vs_conn_hash skips it)
    tr[svc * TS_WORDS + TS_CONNS] += 1;
    tr[DEST_TRAFFIC_BASE + dest * TS_WORDS + TS_CONNS] += 1;
    fp.counters.verdicts[Stat.NewConns] += 1;
    fp.transmitIn(descs, d, row, pkt, svc, dest, dport, fwd, v6, -1);
    return;
  }
  const conns = fp.conns;
  const id = conns.alloc();
  if (id < 0) {
    fp.drop(descs, d, Stat.DropTableFull);
    return;
  }
  const rec = conns.rec, o = id * CONN_WORDS;
  let flags = CF_USED | (fwd & CF_FWD_MASK) | CF_INACTIVE | v6;
  flags |= fwd === FWD_MASQ ? CF_OUT_ENTRY : CF_NOOUTPUT;
  rec[o + CONN_FLAGS] = flags;
  rec[o + CONN_PROTO_STATE] = (proto << 8) | S_NONE;
  for (let k = 0; k < 4; k++) {
    rec[o + CONN_CADDR + k] = f[row + FLOW_SRC + k];
    rec[o + CONN_VADDR + k] = f[row + FLOW_DST + k];
    rec[o + CONN_DADDR + k] = t.dest[dOff + DEST_ADDR + k];
  }
  rec[o + CONN_CPORT_VPORT] = f[row + FLOW_PORTS];
  rec[o + CONN_DPORT] = dport;
  rec[o + CONN_SVC] = svc;
  rec[o + CONN_DEST] = dest;
  rec[o + CONN_CONTROL] = 0;
  if (fwd === FWD_MASQ) fp.setReplyHop(rec, o, descs[d + D_IN], descs[d + D_ADDR], row, v6);
  rec[o + CONN_TIMEOUT] = NEW_CONN_TIMEOUT_SEC * TICKS_PER_SEC;
  rec[o + CONN_EXPIRES] = (fp.now + NEW_CONN_TIMEOUT_SEC * TICKS_PER_SEC) | 0;
  bindDest(fp.counters, t, dest, flags);
  fp.counters.svcRefs[svc] += 1;
  conns.link(id, fp.now);
  tr[svc * TS_WORDS + TS_CONNS] += 1;
  tr[DEST_TRAFFIC_BASE + dest * TS_WORDS + TS_CONNS] += 1;
  fp.counters.verdicts[Stat.NewConns] += 1;
  fp.forward(descs, d, row, pkt, id);
}
