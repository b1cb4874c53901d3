/**
 * ICMP errors about tracked connections (ip_vs_core.c ip_vs_in_icmp[_v6], ip_vs_out_icmp[_v6],
 * ip_vs_icmp_xmit), and the path MTUs they teach (ipv4_update_pmtu).
 *
 * The steering program hands us only ICMP errors that can be ours (xvs_steer.bpf.c); each one ends
 * in exactly one counted verdict:
 *
 * - about a packet the client got from a VIP (a NAT reply, or a DR/TUN real server's direct reply):
 *   the embedded packet, read in reverse, is the connection's client packet. NAT: outer daddr,
 *   embedded saddr and source port become the real server's (ip_vs_nat_icmp, "in"); DR and TUN:
 *   forwarded unchanged by the connection's method (TTL - 1, real server's MAC / tunnel). So a
 *   "fragmentation needed" from the client's side reaches the real server that sent too much.
 * - about a request we sent to a NAT real server (an error from the real server or a router on
 *   its side, to the client): outer saddr, embedded daddr and destination port become the VIP's
 *   (ip_vs_nat_icmp, "out"), then it goes to the client like a reply.
 * - about one of our own IPIP/GUE/GRE packets (to the tunnel source address): the client packet
 *   inside names the connection. "Fragmentation needed" / "packet too big" lowers the path MTU
 *   towards that real server for 10 minutes (ip_rt_mtu_expires), and the client gets the error
 *   about its own packet with the MTU less the tunnel overhead, if it uses PMTU discovery (DF);
 *   other errors are relayed to the client with their type and code.
 *
 * Only DEST_UNREACH, SOURCE_QUENCH and TIME_EXCEEDED (ICMPv6: types below 128) are handled, with a
 * valid ICMP checksum and an embedded packet long enough to name a connection (its ports). No
 * connection: counted and dropped (the kernel would pass it to its stack, which has no socket for
 * it). schedule_icmp=0: an ICMP error never creates a connection. Nothing here allocates or throws.
 */
import * as abi from "../ffi/abi.ts";
import {
  CF_FWD_MASK, CF_V6, CONN_CPORT_VPORT, CONN_DEST, CONN_DPORT, CONN_FLAGS, CONN_MAC_HI, CONN_MAC_LO, CONN_NEXTHOP, CONN_SVC,
  CONN_VADDR, CONN_WORDS, DIR_IN, TICKS_PER_SEC,
} from "../conn/table.ts";
import {
  DEST_ADDR, DEST_FLAGS, DEST_MTU, DEST_NEXTHOP, DEST_TUN, DEST_TUN_PORT, DEST_WORDS, DESTF_V6, FWD_MASQ, FWD_ROUTE, FWD_TUNNEL,
  MAX_DESTS, TUN_GRE, TUN_GUE, TUN_IPIP,
} from "../service/tables.ts";
import { fold, pseudoSumV6, sumBytes } from "../wire/checksum.ts";
import { setDstMac, setSrcMac } from "../wire/eth.ts";
import {
  ICMP_CODE_FRAG_NEEDED, ICMP_DEST_UNREACH, ICMP_HLEN, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED, ICMPV6_DEST_UNREACH,
  ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEEDED, IPV4_FLAG_DF, IPV4_MIN_HLEN, IPV4_OFFSET_MASK, IPV6_HLEN, PROTO_GRE, PROTO_ICMP,
  PROTO_ICMPV6, PROTO_IPIP, PROTO_IPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, UDP_HLEN,
} from "../wire/fields.ts";
import { FLOW_L3, FLOW_L4, FLOW_META, hashTuple } from "../wire/flow.ts";
import { PORT_MAC_HI, PORT_MAC_LO, PORT_WORDS } from "../nexthop/table.ts";
import { hopsLeft } from "../xmit/dr.ts";
import { ICMP_CODE_HOST_UNREACH, ICMPV6_CODE_ADDR_UNREACH, icmp4Error, icmp6Error } from "../xmit/icmp-error.ts";
import { natIcmpIn4, natIcmpIn6, natIcmpOut4, natIcmpOut6 } from "../xmit/icmp-nat.ts";
import { GRE_FLAG_CSUM, GRE_PROTO_IPV4, GRE_PROTO_IPV6, GUE_HLEN, IPV4_MIN_MTU, IPV6_MIN_MTU } from "../xmit/tun.ts";
import type { FastPath } from "./fastpath.ts";
import { HOP_NO_ROUTE, nextHopFor } from "./route.ts";
import { Stat } from "./verdict.ts";

const D_ADDR = abi.XVS_DESC_ADDR;
const D_LEN = abi.XVS_DESC_LEN;

/** How long a learned path MTU holds (net.ipv4.route.mtu_expires, ip6 the same): 600 s. */
const PMTU_EXPIRES_TICKS = 600 * TICKS_PER_SEC;
/** Lowest IPv4 path MTU the kernel learns (net.ipv4.route.min_pmtu: 512 + 20 + 20). */
const MIN_PMTU4 = 552;

/**
 * Path MTUs towards real servers learned from ICMP errors about our tunnel packets, per worker
 * (the kernel keeps them in its routing cache, shared by all CPUs: a worker that did not see the
 * ICMP error learns the MTU from its own client's next oversized packet's error, one round later).
 */
export class PathMtu {
  readonly mtu = new Int32Array(MAX_DESTS);
  readonly expires = new Int32Array(MAX_DESTS);
  /** A word of the real server's address: a dest id reused for another server starts afresh. */
  readonly key = new Int32Array(MAX_DESTS);

  /** Return the MTU towards `dest`: the route's (`routeMtu`, 0 = unknown) or a lower learned one still valid. */
  effective(dest: number, routeMtu: number, key: number, now: number): number {
    const m = this.mtu[dest];
    if (m === 0) return routeMtu;
    if (this.key[dest] !== key || ((this.expires[dest] - now) | 0) <= 0) {
      this.mtu[dest] = 0;
      return routeMtu;
    }
    return routeMtu > 0 && routeMtu < m ? routeMtu : m;
  }

  /** Learn a reported MTU (__ip_rt_update_pmtu: only ever lowers, floored at min_pmtu / 1280). */
  learn(dest: number, reported: number, routeMtu: number, key: number, now: number, v6: number): void {
    let m = reported;
    const floor = v6 ? IPV6_MIN_MTU : MIN_PMTU4;
    if (m < floor) m = floor;
    const cur = this.effective(dest, routeMtu, key, now);
    if (cur > 0 && cur < m) return;
    this.mtu[dest] = m;
    this.key[dest] = key;
    this.expires[dest] = (now + PMTU_EXPIRES_TICKS) | 0;
  }
}

/** The word PathMtu keys a dest by. */
export function pmtuKey(dest: Int32Array, dOff: number): number {
  return dest[dOff + DEST_ADDR] ^ dest[dOff + DEST_ADDR + 3];
}

/**
 * Learn a reported MTU for every dest with `dest`'s address: the kernel keeps it per route (per
 * real server address), so every service tunnelling to that server sees it. Runs once per ICMP
 * error, over the configured dests only.
 */
function learnPmtu(fp: FastPath, dest: number, reported: number, v6: number): void {
  const t = fp.tables, list = t.destList, o = dest * DEST_WORDS;
  const a0 = t.dest[o + DEST_ADDR], a1 = t.dest[o + DEST_ADDR + 1], a2 = t.dest[o + DEST_ADDR + 2], a3 = t.dest[o + DEST_ADDR + 3];
  const fam = t.dest[o + DEST_FLAGS] & DESTF_V6;
  fp.pmtu.learn(dest, reported, t.dest[o + DEST_MTU], pmtuKey(t.dest, o), fp.now, v6);
  for (let i = 0; i < list.length; i++) {
    const id = list[i], q = id * DEST_WORDS;
    if (id === dest || (t.dest[q + DEST_FLAGS] & DESTF_V6) !== fam || t.dest[q + DEST_ADDR] !== a0 || t.dest[q + DEST_ADDR + 1] !== a1 ||
      t.dest[q + DEST_ADDR + 2] !== a2 || t.dest[q + DEST_ADDR + 3] !== a3) continue;
    fp.pmtu.learn(id, reported, t.dest[q + DEST_MTU], pmtuKey(t.dest, q), fp.now, v6);
  }
}

function isL4(p: number): boolean {
  return p === PROTO_TCP || p === PROTO_UDP || p === PROTO_SCTP;
}

/**
 * Handle one ICMP / ICMPv6 frame classified with CONTINUE_ICMP (row `row`, burst index `pkt`):
 * forward it, answer it or drop it, always counting one verdict.
 */
export function handleIcmp(fp: FastPath, descs: Uint32Array, d: number, row: number, pkt: number): void {
  const u8 = fp.u8, dv = fp.dv, f = fp.flows;
  const meta = f[row + FLOW_META];
  const v6 = (meta >>> 16) === 6 ? 1 : 0;
  const l3 = f[row + FLOW_L3], ic = f[row + FLOW_L4];
  const l3len = fp.l3Len[pkt];
  const icLen = l3len - (ic - l3);
  if (((meta >>> 8) & 0xff) !== (v6 ? PROTO_ICMPV6 : PROTO_ICMP)) {
    fp.drop(descs, d, Stat.DropIcmp);
    return;
  }
  if (icLen < ICMP_HLEN) {
    fp.drop(descs, d, Stat.DropIcmpMalformed);
    return;
  }
  const type = u8[ic];
  if (v6 ? type >= 128 : type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED) {
    // not an error message (echo, NDP...): the steering program never hands us these
    fp.drop(descs, d, Stat.DropIcmp);
    return;
  }
  // ip_vs_checksum_complete: a corrupt error must not be translated and passed on
  const sum = v6 ? sumBytes(u8, ic, icLen, pseudoSumV6(u8, l3 + 8, l3 + 24, PROTO_ICMPV6, icLen)) : sumBytes(u8, ic, icLen, 0);
  if (fold(sum) !== 0xffff) {
    fp.drop(descs, d, Stat.DropIcmpMalformed);
    return;
  }
  const e = ic + ICMP_HLEN, eAvail = icLen - ICMP_HLEN;
  let eihl: number, eproto: number;
  if (v6) {
    if (eAvail < IPV6_HLEN || u8[e] >>> 4 !== 6) {
      fp.drop(descs, d, Stat.DropIcmpMalformed);
      return;
    }
    eihl = IPV6_HLEN;
    eproto = u8[e + 6];
  } else {
    eihl = (u8[e] & 0x0f) << 2;
    if (eAvail < IPV4_MIN_HLEN || u8[e] >>> 4 !== 4 || eihl < IPV4_MIN_HLEN || eihl > eAvail) {
      fp.drop(descs, d, Stat.DropIcmpMalformed);
      return;
    }
    if ((dv.getUint16(e + 6) & IPV4_OFFSET_MASK) !== 0) {
      // about a non-first fragment: no ports to name a connection with
      fp.drop(descs, d, Stat.DropIcmpNoConn);
      return;
    }
    eproto = u8[e + 9];
  }
  if ((eproto === PROTO_IPIP || eproto === PROTO_IPV6 || eproto === PROTO_GRE || eproto === PROTO_UDP) &&
    tunnelError(fp, descs, d, l3, l3len, ic, icLen, e, eihl, eproto, v6)) return;
  if (!isL4(eproto)) {
    fp.drop(descs, d, Stat.DropIcmpNoConn);
    return;
  }
  if (eihl + 4 > eAvail) {
    fp.drop(descs, d, Stat.DropIcmpMalformed); // truncated before the ports
    return;
  }
  // the embedded packet travelled the other way: look its reverse up
  let s0: number, s1 = 0, s2 = 0, s3 = 0, d0: number, d1 = 0, d2 = 0, d3 = 0;
  if (v6) {
    s0 = dv.getInt32(e + 8); s1 = dv.getInt32(e + 12); s2 = dv.getInt32(e + 16); s3 = dv.getInt32(e + 20);
    d0 = dv.getInt32(e + 24); d1 = dv.getInt32(e + 28); d2 = dv.getInt32(e + 32); d3 = dv.getInt32(e + 36);
  } else {
    s0 = dv.getInt32(e + 12);
    d0 = dv.getInt32(e + 16);
  }
  const p = dv.getInt32(e + eihl);
  const rports = ((p << 16) | (p >>> 16)) | 0;
  const conns = fp.conns;
  const hash = hashTuple(conns.seedConn, d0, d1, d2, d3, s0, s1, s2, s3, rports, eproto);
  const r = conns.lookup(hash, v6 ? CF_V6 : 0, d0, d1, d2, d3, s0, s1, s2, s3, rports, eproto);
  if (r < 0) {
    fp.drop(descs, d, Stat.DropIcmpNoConn);
    return;
  }
  if ((r & 1) === DIR_IN) inIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, r >> 1, hash);
  else outIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, r >> 1);
}

/** ip_vs_in_icmp + ip_vs_icmp_xmit: an error from the client's side goes to the connection's real server. */
function inIcmp(fp: FastPath, descs: Uint32Array, d: number, l3: number, l3len: number, ic: number, icLen: number,
  e: number, eihl: number, v6: number, id: number, hash: number): void {
  const t = fp.tables, rec = fp.conns.rec, o = id * CONN_WORDS, u8 = fp.u8, dv = fp.dv;
  const fwd = rec[o + CONN_FLAGS] & CF_FWD_MASK;
  const svc = rec[o + CONN_SVC], dest = rec[o + CONN_DEST], dOff = dest * DEST_WORDS;
  fp.countIn(svc, dest, l3len);
  if (fwd !== FWD_MASQ && fwd !== FWD_ROUTE && fwd !== FWD_TUNNEL) {
    fp.drop(descs, d, Stat.DropUnsupported);
    return;
  }
  const nh = t.dest[dOff + DEST_NEXTHOP];
  if (nh < 0) {
    fp.drop(descs, d, Stat.DropNoRoute);
    return;
  }
  // decrement_ttl: at 1 the kernel would answer time exceeded, which icmp_send refuses for an error
  if (hopsLeft(u8, l3, v6) <= 1) {
    fp.drop(descs, d, Stat.DropTtl);
    return;
  }
  if (fwd === FWD_MASQ) {
    const dport = rec[o + CONN_DPORT] & 0xffff;
    if (v6) natIcmpIn6(u8, dv, l3, ic, icLen, e, true, t.dest[dOff + DEST_ADDR], t.dest[dOff + DEST_ADDR + 1], t.dest[dOff + DEST_ADDR + 2], t.dest[dOff + DEST_ADDR + 3], dport);
    else natIcmpIn4(u8, dv, l3, ic, icLen, e, eihl, true, t.dest[dOff + DEST_ADDR], dport);
  }
  fp.decTtl(l3, v6);
  if (fwd === FWD_TUNNEL) {
    if (fp.tunnelOut(descs, d, -1, -1, l3, l3len, v6, dest, nh, hash, true)) {
      fp.counters.verdicts[Stat.IcmpForwarded] += 1;
      fp.out(descs, d, fp.txPort);
    }
    return;
  }
  const port = fp.nh.setMacs(dv, descs[d + D_ADDR], nh, t.ports);
  if (port < 0) {
    fp.drop(descs, d, Stat.DropNeighbour);
    return;
  }
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  fp.out(descs, d, port);
}

/** ip_vs_out_icmp (NAT only): an error from the real server's side goes to the client, as from the VIP. */
function outIcmp(fp: FastPath, descs: Uint32Array, d: number, l3: number, l3len: number, ic: number, icLen: number,
  e: number, eihl: number, v6: number, id: number): void {
  const rec = fp.conns.rec, o = id * CONN_WORDS, u8 = fp.u8, dv = fp.dv;
  const svc = rec[o + CONN_SVC], dest = rec[o + CONN_DEST];
  fp.countOut(svc, dest, l3len);
  if (hopsLeft(u8, l3, v6) <= 1) {
    fp.drop(descs, d, Stat.DropTtl);
    return;
  }
  const port = fp.clientHop(descs, d, id);
  if (port < 0) return;
  const vport = rec[o + CONN_CPORT_VPORT] & 0xffff;
  if (v6) natIcmpOut6(u8, dv, l3, ic, icLen, e, true, rec[o + CONN_VADDR], rec[o + CONN_VADDR + 1], rec[o + CONN_VADDR + 2], rec[o + CONN_VADDR + 3], vport);
  else natIcmpOut4(u8, dv, l3, ic, icLen, e, eihl, true, rec[o + CONN_VADDR], vport);
  fp.decTtl(l3, v6);
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  fp.out(descs, d, port);
}

/**
 * An error about one of our IPIP/GUE/GRE packets (ip_vs_in_icmp's tunnel case, for IPv6 outer
 * headers too). Returns false when the embedded packet is not a tunnel packet of a TUN
 * connection towards that real server with that tunnel type (and GUE port): the caller then
 * treats it as an ordinary embedded packet. Otherwise handles and counts the frame.
 */
function tunnelError(fp: FastPath, descs: Uint32Array, d: number, l3: number, l3len: number, ic: number, icLen: number,
  e: number, eihl: number, eproto: number, v6: number): boolean {
  const u8 = fp.u8, dv = fp.dv, t = fp.tables;
  const end = ic + icLen;
  let x = e + eihl;
  let type: number, innerV6: number, tunPort = 0;
  if (eproto === PROTO_IPIP || eproto === PROTO_IPV6) {
    type = TUN_IPIP;
    innerV6 = eproto === PROTO_IPV6 ? 1 : 0;
  } else if (eproto === PROTO_GRE) {
    // only what ipvs_gre_encap sends: version 0, no flag but C (ipvs_gre_decap's rule)
    if (x + 4 > end) return false;
    const gf = dv.getUint16(x), gp = dv.getUint16(x + 2);
    if ((gf & ~GRE_FLAG_CSUM & 0xffff) !== 0) return false;
    if (gp === GRE_PROTO_IPV4) innerV6 = 0;
    else if (gp === GRE_PROTO_IPV6) innerV6 = 1;
    else return false;
    type = TUN_GRE;
    x += (gf & GRE_FLAG_CSUM) !== 0 ? 8 : 4;
  } else {
    // UDP: GUE version 0, a data message (C 0) carrying IPv4 or IPv6 (ipvs_udp_decap's rule)
    if (x + UDP_HLEN + GUE_HLEN > end) return false;
    tunPort = dv.getUint16(x + 2);
    const g0 = u8[x + 8], ctype = u8[x + 9];
    if ((g0 & 0xe0) !== 0) return false;
    if (ctype === PROTO_IPIP) innerV6 = 0;
    else if (ctype === PROTO_IPV6) innerV6 = 1;
    else return false;
    type = TUN_GUE;
    x += UDP_HLEN + GUE_HLEN + ((g0 & 0x1f) << 2);
  }
  const encapLen = x - e; // outer IP header + UDP/GUE or GRE: what the client's MTU loses
  // the client's packet inside
  let ihl: number, ip: number;
  if (innerV6) {
    if (x + IPV6_HLEN + 4 > end || u8[x] >>> 4 !== 6) return false;
    ihl = IPV6_HLEN;
    ip = u8[x + 6];
  } else {
    if (x + IPV4_MIN_HLEN > end || u8[x] >>> 4 !== 4) return false;
    ihl = (u8[x] & 0x0f) << 2;
    if (ihl < IPV4_MIN_HLEN || x + ihl + 4 > end || (dv.getUint16(x + 6) & IPV4_OFFSET_MASK) !== 0) return false;
    ip = u8[x + 9];
  }
  if (!isL4(ip)) return false;
  let c0: number, c1 = 0, c2 = 0, c3 = 0, v0: number, v1 = 0, v2 = 0, v3 = 0;
  if (innerV6) {
    c0 = dv.getInt32(x + 8); c1 = dv.getInt32(x + 12); c2 = dv.getInt32(x + 16); c3 = dv.getInt32(x + 20);
    v0 = dv.getInt32(x + 24); v1 = dv.getInt32(x + 28); v2 = dv.getInt32(x + 32); v3 = dv.getInt32(x + 36);
  } else {
    c0 = dv.getInt32(x + 12);
    v0 = dv.getInt32(x + 16);
  }
  const ports = dv.getInt32(x + ihl);
  const conns = fp.conns;
  const hash = hashTuple(conns.seedConn, c0, c1, c2, c3, v0, v1, v2, v3, ports, ip);
  const r = conns.lookup(hash, innerV6 ? CF_V6 : 0, c0, c1, c2, c3, v0, v1, v2, v3, ports, ip);
  if (r < 0 || (r & 1) !== DIR_IN) return false;
  const rec = conns.rec, o = (r >> 1) * CONN_WORDS;
  if ((rec[o + CONN_FLAGS] & CF_FWD_MASK) !== FWD_TUNNEL) return false;
  const dest = rec[o + CONN_DEST], dOff = dest * DEST_WORDS;
  // the tunnel packet must be the one this connection's real server gets
  if (((t.dest[dOff + DEST_FLAGS] & DESTF_V6) !== 0 ? 1 : 0) !== v6) return false;
  if (v6) {
    if (dv.getInt32(e + 24) !== t.dest[dOff + DEST_ADDR] || dv.getInt32(e + 28) !== t.dest[dOff + DEST_ADDR + 1] ||
      dv.getInt32(e + 32) !== t.dest[dOff + DEST_ADDR + 2] || dv.getInt32(e + 36) !== t.dest[dOff + DEST_ADDR + 3]) return false;
  } else if (dv.getInt32(e + 16) !== t.dest[dOff + DEST_ADDR]) {
    return false;
  }
  if ((t.dest[dOff + DEST_TUN] & 0xff) !== type || (type === TUN_GUE && t.dest[dOff + DEST_TUN_PORT] !== tunPort)) return false;

  // ours. ip_vs_out_stats: "ICMP can be shorter but anyways, account it"
  const svc = rec[o + CONN_SVC];
  fp.countOut(svc, dest, l3len);

  const icType = u8[ic], icCode = u8[ic + 1];
  let rest = dv.getInt32(ic + 4);
  let t4 = icType, c4 = icCode, t6 = icType, c6 = icCode;
  const tooBig = v6 ? icType === ICMPV6_PKT_TOOBIG : icType === ICMP_DEST_UNREACH && icCode === ICMP_CODE_FRAG_NEEDED;
  if (tooBig) {
    const key = pmtuKey(t.dest, dOff);
    const routeMtu = t.dest[dOff + DEST_MTU];
    learnPmtu(fp, dest, v6 ? dv.getInt32(ic + 4) : dv.getUint16(ic + 6), v6);
    // "Client uses PMTUD?": an IPv4 client packet without DF gets no error (IPv6 always does)
    if (!innerV6 && (dv.getUint16(x + 6) & IPV4_FLAG_DF) === 0) {
      fp.drop(descs, d, Stat.IcmpPmtuLearned);
      return true;
    }
    // "Prefer the resulting PMTU", less the tunnel headers (when that leaves more than 68)
    let mtu = fp.pmtu.effective(dest, routeMtu, key, fp.now);
    if (mtu > IPV4_MIN_MTU + encapLen) mtu -= encapLen;
    if (innerV6 && mtu < IPV6_MIN_MTU) mtu = IPV6_MIN_MTU;
    rest = mtu;
    t4 = ICMP_DEST_UNREACH; c4 = ICMP_CODE_FRAG_NEEDED;
    t6 = ICMPV6_PKT_TOOBIG; c6 = 0;
  } else if (innerV6 !== v6) {
    // the client's family differs from the tunnel's: translate what has an equivalent
    const exceeded = v6 ? icType === ICMPV6_TIME_EXCEEDED : icType === ICMP_TIME_EXCEEDED;
    rest = 0;
    t4 = exceeded ? ICMP_TIME_EXCEEDED : ICMP_DEST_UNREACH; c4 = exceeded ? icCode & 1 : ICMP_CODE_HOST_UNREACH;
    t6 = exceeded ? ICMPV6_TIME_EXCEEDED : ICMPV6_DEST_UNREACH; c6 = exceeded ? icCode & 1 : ICMPV6_CODE_ADDR_UNREACH;
  }
  // icmp_send about the client's packet: from the VIP (its destination), routed to the client
  const hop = nextHopFor(t, fp.nh, innerV6 ? 6 : 4, c0, c1, c2, c3);
  if (hop === HOP_NO_ROUTE) {
    fp.drop(descs, d, Stat.DropNoRoute);
    return true;
  }
  // an on-link client the kernel has no neighbour entry for yet (nextHopFor asked for one): the
  // MAC its packets came from, if they came in on the port the route goes out of (transmitIn)
  const viaMac = hop < 0 && rec[o + CONN_NEXTHOP] === hop && (rec[o + CONN_MAC_HI] | rec[o + CONN_MAC_LO]) !== 0;
  if (hop < 0 && !viaMac) {
    fp.drop(descs, d, Stat.DropNeighbour);
    return true;
  }
  const avail = end - x;
  const frame = descs[d + D_ADDR];
  let len: number;
  if (innerV6) {
    const plen = IPV6_HLEN + dv.getUint16(x + 4);
    len = icmp6Error(u8, dv, frame, x, plen < avail ? plen : avail, t6, c6, rest);
  } else {
    const tot = dv.getUint16(x + 2);
    len = icmp4Error(u8, dv, frame, x, tot < avail ? tot : avail, t4, c4, rest);
  }
  let port: number;
  if (viaMac) {
    port = -1 - hop;
    setSrcMac(dv, frame, t.ports[port * PORT_WORDS + PORT_MAC_HI], t.ports[port * PORT_WORDS + PORT_MAC_LO]);
    setDstMac(dv, frame, rec[o + CONN_MAC_HI], rec[o + CONN_MAC_LO]);
  } else {
    port = fp.nh.setMacs(dv, frame, hop, t.ports);
    if (port < 0) {
      fp.drop(descs, d, Stat.DropNeighbour);
      return true;
    }
  }
  descs[d + D_LEN] = len;
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  fp.out(descs, d, port);
  return true;
}
