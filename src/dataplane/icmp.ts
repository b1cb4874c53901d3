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
  CF_FWD_MASK,
  CF_V6,
  CONN_CPORT_VPORT,
  CONN_DEST,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_MAC_HI,
  CONN_MAC_LO,
  CONN_NEXTHOP,
  CONN_SVC,
  CONN_VADDR,
  CONN_WORDS,
  DIR_IN,
  hitDir,
  hitId,
  TICKS_PER_SEC,
} from "../conn/table.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_MTU,
  DEST_NEXTHOP,
  DEST_TUN,
  DEST_TUN_PORT,
  DEST_WORDS,
  DESTF_V6,
  FWD_MASQ,
  FWD_ROUTE,
  FWD_TUNNEL,
  MAX_DESTS,
  TUN_GRE,
  TUN_GUE,
  TUN_IPIP,
} from "../service/tables.ts";
import { fold, pseudoSumV6, sumBytes } from "../wire/checksum.ts";
import { setDstMac, setSrcMac } from "../wire/eth.ts";
import {
  ICMP_CODE,
  ICMP_CODE_FRAG_NEEDED,
  ICMP_DEST_UNREACH,
  ICMP_HLEN,
  ICMP_REST,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  ICMP_TYPE,
  ICMPV6_DEST_UNREACH,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_TIME_EXCEEDED,
  IPV4_DST,
  IPV4_FLAG_DF,
  IPV4_FRAG,
  IPV4_MIN_HLEN,
  IPV4_OFFSET_MASK,
  IPV4_PROTO,
  IPV4_SRC,
  IPV4_TOTAL_LEN,
  IPV4_VER_IHL,
  IPV6_DST,
  IPV6_HLEN,
  IPV6_NEXT_HDR,
  IPV6_PAYLOAD_LEN,
  IPV6_SRC,
  PROTO_GRE,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_IPIP,
  PROTO_IPV6,
  PROTO_SCTP,
  PROTO_TCP,
  PROTO_UDP,
  UDP_DST_PORT,
  UDP_HLEN,
} from "../wire/fields.ts";
import { FLOW_L3, FLOW_L4, flowFamily, flowProto, hashTuple } from "../wire/flow.ts";
import { PORT_MAC_HI, PORT_MAC_LO, PORT_WORDS } from "../nexthop/table.ts";
import { hopsLeft } from "../xmit/dr.ts";
import { ICMP_CODE_HOST_UNREACH, ICMPV6_CODE_ADDR_UNREACH, icmp4Error, icmp6Error } from "../xmit/icmp-error.ts";
import { natIcmpIn4, natIcmpIn6, natIcmpOut4, natIcmpOut6 } from "../xmit/icmp-nat.ts";
import {
  GRE_FLAG_CSUM,
  GRE_FLAGS,
  GRE_PROTO,
  GRE_PROTO_IPV4,
  GRE_PROTO_IPV6,
  GUE_HLEN,
  GUE_PROTO_CTYPE,
  GUE_VER_HLEN,
  IPV4_MIN_MTU,
  IPV6_MIN_MTU,
} from "../xmit/tun.ts";
import type { FastPathState } from "./contract.ts";
import { HOP_NO_ROUTE, nextHopFor } from "./route.ts";
import { Stat } from "./verdict.ts";

/** What of the fast path ICMP handling uses (contract.ts). */
export type IcmpState = Pick<
  FastPathState,
  | "u8"
  | "dv"
  | "flows"
  | "l3Len"
  | "tables"
  | "conns"
  | "home"
  | "peers"
  | "borrow"
  | "nh"
  | "counters"
  | "now"
  | "pmtu"
  | "drop"
  | "countIn"
  | "countOut"
  | "clientHop"
  | "decTtl"
  | "tunnelOut"
>;

const D_ADDR = abi.XVS_DESC_ADDR;
const D_LEN = abi.XVS_DESC_LEN;
const OUT_DROP = abi.XVS_OUT_DROP;

/** How long a learned path MTU holds (net.ipv4.route.mtu_expires, ip6 the same): 600 s. */
const PMTU_EXPIRES_TICKS = 600 * TICKS_PER_SEC;
/** Lowest IPv4 path MTU the kernel learns (net.ipv4.route.min_pmtu: 512 + 20 + 20). */
const MIN_PMTU4 = 552;

/**
 * Path MTUs towards real servers learned from ICMP errors about our tunnel packets. With several
 * workers, one memory for all (`share`), as the kernel keeps them in its routing cache, shared by
 * all CPUs: an error that came in on one queue lowers the MTU every worker tunnels with.
 */
export class PathMtu {
  mtu: Int32Array = new Int32Array(MAX_DESTS);
  expires: Int32Array = new Int32Array(MAX_DESTS);
  /** A word of the real server's address: a dest id reused for another server starts afresh. */
  key: Int32Array = new Int32Array(MAX_DESTS);

  /** Memory for path MTUs that every worker shares (`share`). */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(3 * MAX_DESTS * 4);
  }

  /**
   * Use `buffer` (PathMtu.allocate), shared by every worker: a path MTU learned from an error
   * that came in on one queue holds for the tunnel packets every worker sends (the kernel keeps
   * it per route). Three plain words per dest; a race between two workers learning at once
   * leaves one of their values, both lower than the route's.
   */
  share(buffer: SharedArrayBuffer): void {
    this.mtu = new Int32Array(buffer, 0, MAX_DESTS);
    this.expires = new Int32Array(buffer, MAX_DESTS * 4, MAX_DESTS);
    this.key = new Int32Array(buffer, 2 * MAX_DESTS * 4, MAX_DESTS);
  }

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
function learnPmtu(fp: IcmpState, dest: number, reported: number, v6: number): void {
  const t = fp.tables,
    list = t.destList,
    o = dest * DEST_WORDS;
  const a0 = t.dest[o + DEST_ADDR],
    a1 = t.dest[o + DEST_ADDR + 1],
    a2 = t.dest[o + DEST_ADDR + 2],
    a3 = t.dest[o + DEST_ADDR + 3];
  const fam = t.dest[o + DEST_FLAGS] & DESTF_V6;
  fp.pmtu.learn(dest, reported, t.dest[o + DEST_MTU], pmtuKey(t.dest, o), fp.now, v6);
  for (let i = 0; i < list.length; i++) {
    const id = list[i],
      q = id * DEST_WORDS;
    if (
      id === dest ||
      (t.dest[q + DEST_FLAGS] & DESTF_V6) !== fam ||
      t.dest[q + DEST_ADDR] !== a0 ||
      t.dest[q + DEST_ADDR + 1] !== a1 ||
      t.dest[q + DEST_ADDR + 2] !== a2 ||
      t.dest[q + DEST_ADDR + 3] !== a3
    )
      continue;
    fp.pmtu.learn(id, reported, t.dest[q + DEST_MTU], pmtuKey(t.dest, q), fp.now, v6);
  }
}

function isL4(p: number): boolean {
  return p === PROTO_TCP || p === PROTO_UDP || p === PROTO_SCTP;
}

/**
 * Handle one ICMP / ICMPv6 frame classified Classified.Icmp (row `row`, burst index `pkt`):
 * forward it, answer it or drop it, always counting one verdict. Returns the out port.
 */
export function handleIcmp(fp: IcmpState, descs: Uint32Array, d: number, row: number, pkt: number): number {
  const u8 = fp.u8,
    dv = fp.dv,
    f = fp.flows;
  const v6 = flowFamily(f, row) === 6 ? 1 : 0;
  const l3 = f[row + FLOW_L3],
    ic = f[row + FLOW_L4];
  const l3len = fp.l3Len[pkt];
  const icLen = l3len - (ic - l3);
  if (flowProto(f, row) !== (v6 ? PROTO_ICMPV6 : PROTO_ICMP)) return fp.drop(Stat.DropIcmp);
  if (icLen < ICMP_HLEN) return fp.drop(Stat.DropIcmpMalformed);
  const type = u8[ic + ICMP_TYPE];
  if (v6 ? type >= 128 : type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED) {
    // not an error message (echo, NDP...): the steering program never hands us these
    return fp.drop(Stat.DropIcmp);
  }
  // ip_vs_checksum_complete: a corrupt error must not be translated and passed on
  const sum = v6 ? sumBytes(u8, ic, icLen, pseudoSumV6(u8, l3 + IPV6_SRC, l3 + IPV6_DST, PROTO_ICMPV6, icLen)) : sumBytes(u8, ic, icLen, 0);
  if (fold(sum) !== 0xffff) return fp.drop(Stat.DropIcmpMalformed);
  const e = ic + ICMP_HLEN,
    eAvail = icLen - ICMP_HLEN;
  let eihl: number, eproto: number;
  if (v6) {
    if (eAvail < IPV6_HLEN || u8[e] >>> 4 !== 6) return fp.drop(Stat.DropIcmpMalformed);
    eihl = IPV6_HLEN;
    eproto = u8[e + IPV6_NEXT_HDR];
  } else {
    eihl = (u8[e + IPV4_VER_IHL] & 0x0f) << 2;
    if (eAvail < IPV4_MIN_HLEN || u8[e + IPV4_VER_IHL] >>> 4 !== 4 || eihl < IPV4_MIN_HLEN || eihl > eAvail) return fp.drop(Stat.DropIcmpMalformed);
    // about a non-first fragment: no ports to name a connection with
    if ((dv.getUint16(e + IPV4_FRAG) & IPV4_OFFSET_MASK) !== 0) return fp.drop(Stat.DropIcmpNoConn);
    eproto = u8[e + IPV4_PROTO];
  }
  if (eproto === PROTO_IPIP || eproto === PROTO_IPV6 || eproto === PROTO_GRE || eproto === PROTO_UDP) {
    const out = tunnelError(fp, descs, d, l3, l3len, ic, icLen, e, eihl, eproto, v6);
    fp.borrow(fp.home); // tunnelError may have used another worker's connection
    if (out >= 0) return out;
  }
  if (!isL4(eproto)) return fp.drop(Stat.DropIcmpNoConn);
  if (eihl + 4 > eAvail) return fp.drop(Stat.DropIcmpMalformed); // truncated before the ports
  // the embedded packet travelled the other way: look its reverse up
  let s0: number,
    s1 = 0,
    s2 = 0,
    s3 = 0,
    d0: number,
    d1 = 0,
    d2 = 0,
    d3 = 0;
  if (v6) {
    s0 = dv.getInt32(e + IPV6_SRC);
    s1 = dv.getInt32(e + IPV6_SRC + 4);
    s2 = dv.getInt32(e + IPV6_SRC + 8);
    s3 = dv.getInt32(e + IPV6_SRC + 12);
    d0 = dv.getInt32(e + IPV6_DST);
    d1 = dv.getInt32(e + IPV6_DST + 4);
    d2 = dv.getInt32(e + IPV6_DST + 8);
    d3 = dv.getInt32(e + IPV6_DST + 12);
  } else {
    s0 = dv.getInt32(e + IPV4_SRC);
    d0 = dv.getInt32(e + IPV4_DST);
  }
  const p = dv.getInt32(e + eihl);
  const rports = (p << 16) | (p >>> 16) | 0;
  const conns = fp.conns;
  const hash = hashTuple(conns.seedConn, d0, d1, d2, d3, s0, s1, s2, s3, rports, eproto);
  const r = conns.lookup(hash, v6 ? CF_V6 : 0, d0, d1, d2, d3, s0, s1, s2, s3, rports, eproto);
  if (r < 0) {
    // several workers: the connection may be another's (the error came in on another queue
    // than the connection's packets: conn/peers.ts); handled with that worker's record
    const peers = fp.peers;
    const pr = peers === null ? -1 : peers.findLoose(v6 ? CF_V6 : 0, d0, d1, d2, d3, s0, s1, s2, s3, rports, eproto);
    if (pr < 0) return fp.drop(Stat.DropIcmpNoConn);
    fp.borrow(peers!.found);
    const out =
      hitDir(pr) === DIR_IN
        ? inIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, hitId(pr), hash)
        : outIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, hitId(pr));
    fp.borrow(fp.home);
    fp.counters.verdicts[Stat.PeerConn] += 1;
    return out;
  }
  if (hitDir(r) === DIR_IN) return inIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, hitId(r), hash);
  return outIcmp(fp, descs, d, l3, l3len, ic, icLen, e, eihl, v6, hitId(r));
}

/** ip_vs_in_icmp + ip_vs_icmp_xmit: an error from the client's side goes to the connection's real server. */
function inIcmp(
  fp: IcmpState,
  descs: Uint32Array,
  d: number,
  l3: number,
  l3len: number,
  ic: number,
  icLen: number,
  e: number,
  eihl: number,
  v6: number,
  id: number,
  hash: number,
): number {
  const t = fp.tables,
    rec = fp.conns.rec,
    o = id * CONN_WORDS,
    u8 = fp.u8,
    dv = fp.dv;
  const fwd = rec[o + CONN_FLAGS] & CF_FWD_MASK;
  const svc = rec[o + CONN_SVC],
    dest = rec[o + CONN_DEST],
    dOff = dest * DEST_WORDS;
  fp.countIn(svc, dest, l3len);
  if (fwd !== FWD_MASQ && fwd !== FWD_ROUTE && fwd !== FWD_TUNNEL) return fp.drop(Stat.DropUnsupported);
  const nh = t.dest[dOff + DEST_NEXTHOP];
  if (nh < 0) return fp.drop(Stat.DropNoRoute);
  // decrement_ttl: at 1 the kernel would answer time exceeded, which icmp_send refuses for an error
  if (hopsLeft(u8, l3, v6) <= 1) return fp.drop(Stat.DropTtl);
  if (fwd === FWD_MASQ) {
    const dport = rec[o + CONN_DPORT] & 0xffff;
    if (v6)
      natIcmpIn6(
        u8,
        dv,
        l3,
        ic,
        icLen,
        e,
        true,
        t.dest[dOff + DEST_ADDR],
        t.dest[dOff + DEST_ADDR + 1],
        t.dest[dOff + DEST_ADDR + 2],
        t.dest[dOff + DEST_ADDR + 3],
        dport,
      );
    else natIcmpIn4(u8, dv, l3, ic, icLen, e, eihl, true, t.dest[dOff + DEST_ADDR], dport);
  }
  fp.decTtl(l3, v6);
  if (fwd === FWD_TUNNEL) {
    const port = fp.tunnelOut(descs, d, -1, -1, l3, l3len, v6, dest, nh, hash, true);
    if (port < 0) return ~port;
    fp.counters.verdicts[Stat.IcmpForwarded] += 1;
    return port;
  }
  const port = fp.nh.setMacs(dv, descs[d + D_ADDR], nh, t.ports);
  if (port < 0) return fp.drop(Stat.DropNeighbour);
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  return port;
}

/** ip_vs_out_icmp (NAT only): an error from the real server's side goes to the client, as from the VIP. */
function outIcmp(
  fp: IcmpState,
  descs: Uint32Array,
  d: number,
  l3: number,
  l3len: number,
  ic: number,
  icLen: number,
  e: number,
  eihl: number,
  v6: number,
  id: number,
): number {
  const rec = fp.conns.rec,
    o = id * CONN_WORDS,
    u8 = fp.u8,
    dv = fp.dv;
  const svc = rec[o + CONN_SVC],
    dest = rec[o + CONN_DEST];
  fp.countOut(svc, dest, l3len);
  if (hopsLeft(u8, l3, v6) <= 1) return fp.drop(Stat.DropTtl);
  const port = fp.clientHop(descs, d, id);
  if (port < 0) return OUT_DROP;
  const vport = rec[o + CONN_CPORT_VPORT] & 0xffff;
  if (v6) natIcmpOut6(u8, dv, l3, ic, icLen, e, true, rec[o + CONN_VADDR], rec[o + CONN_VADDR + 1], rec[o + CONN_VADDR + 2], rec[o + CONN_VADDR + 3], vport);
  else natIcmpOut4(u8, dv, l3, ic, icLen, e, eihl, true, rec[o + CONN_VADDR], vport);
  fp.decTtl(l3, v6);
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  return port;
}

/**
 * An error about one of our IPIP/GUE/GRE packets (ip_vs_in_icmp's tunnel case, for IPv6 outer
 * headers too). Returns false when the embedded packet is not a tunnel packet of a TUN
 * connection towards that real server with that tunnel type (and GUE port): the caller then
 * treats it as an ordinary embedded packet. Otherwise handles and counts the frame.
 * Returns -1 (not ours) or the out port.
 */
function tunnelError(
  fp: IcmpState,
  descs: Uint32Array,
  d: number,
  _l3: number,
  l3len: number,
  ic: number,
  icLen: number,
  e: number,
  eihl: number,
  eproto: number,
  v6: number,
): number {
  const u8 = fp.u8,
    dv = fp.dv,
    t = fp.tables;
  const end = ic + icLen;
  let x = e + eihl;
  let type: number,
    innerV6: number,
    tunPort = 0;
  if (eproto === PROTO_IPIP || eproto === PROTO_IPV6) {
    type = TUN_IPIP;
    innerV6 = eproto === PROTO_IPV6 ? 1 : 0;
  } else if (eproto === PROTO_GRE) {
    // only what ipvs_gre_encap sends: version 0, no flag but C (ipvs_gre_decap's rule)
    if (x + 4 > end) return -1;
    const gf = dv.getUint16(x + GRE_FLAGS),
      gp = dv.getUint16(x + GRE_PROTO);
    if ((gf & ~GRE_FLAG_CSUM & 0xffff) !== 0) return -1;
    if (gp === GRE_PROTO_IPV4) innerV6 = 0;
    else if (gp === GRE_PROTO_IPV6) innerV6 = 1;
    else return -1;
    type = TUN_GRE;
    x += (gf & GRE_FLAG_CSUM) !== 0 ? 8 : 4;
  } else {
    // UDP: GUE version 0, a data message (C 0) carrying IPv4 or IPv6 (ipvs_udp_decap's rule)
    if (x + UDP_HLEN + GUE_HLEN > end) return -1;
    tunPort = dv.getUint16(x + UDP_DST_PORT);
    const g0 = u8[x + UDP_HLEN + GUE_VER_HLEN],
      ctype = u8[x + UDP_HLEN + GUE_PROTO_CTYPE];
    if ((g0 & 0xe0) !== 0) return -1;
    if (ctype === PROTO_IPIP) innerV6 = 0;
    else if (ctype === PROTO_IPV6) innerV6 = 1;
    else return -1;
    type = TUN_GUE;
    x += UDP_HLEN + GUE_HLEN + ((g0 & 0x1f) << 2);
  }
  const encapLen = x - e; // outer IP header + UDP/GUE or GRE: what the client's MTU loses
  // the client's packet inside
  let ihl: number, ip: number;
  if (innerV6) {
    if (x + IPV6_HLEN + 4 > end || u8[x] >>> 4 !== 6) return -1;
    ihl = IPV6_HLEN;
    ip = u8[x + IPV6_NEXT_HDR];
  } else {
    if (x + IPV4_MIN_HLEN > end || u8[x + IPV4_VER_IHL] >>> 4 !== 4) return -1;
    ihl = (u8[x + IPV4_VER_IHL] & 0x0f) << 2;
    if (ihl < IPV4_MIN_HLEN || x + ihl + 4 > end || (dv.getUint16(x + IPV4_FRAG) & IPV4_OFFSET_MASK) !== 0) return -1;
    ip = u8[x + IPV4_PROTO];
  }
  if (!isL4(ip)) return -1;
  let c0: number,
    c1 = 0,
    c2 = 0,
    c3 = 0,
    v0: number,
    v1 = 0,
    v2 = 0,
    v3 = 0;
  if (innerV6) {
    c0 = dv.getInt32(x + IPV6_SRC);
    c1 = dv.getInt32(x + IPV6_SRC + 4);
    c2 = dv.getInt32(x + IPV6_SRC + 8);
    c3 = dv.getInt32(x + IPV6_SRC + 12);
    v0 = dv.getInt32(x + IPV6_DST);
    v1 = dv.getInt32(x + IPV6_DST + 4);
    v2 = dv.getInt32(x + IPV6_DST + 8);
    v3 = dv.getInt32(x + IPV6_DST + 12);
  } else {
    c0 = dv.getInt32(x + IPV4_SRC);
    v0 = dv.getInt32(x + IPV4_DST);
  }
  const ports = dv.getInt32(x + ihl);
  let conns = fp.conns;
  const hash = hashTuple(conns.seedConn, c0, c1, c2, c3, v0, v1, v2, v3, ports, ip);
  let r = conns.lookup(hash, innerV6 ? CF_V6 : 0, c0, c1, c2, c3, v0, v1, v2, v3, ports, ip);
  if (r < 0 && fp.peers !== null) {
    // another worker's connection (conn/peers.ts): used from here on; handleIcmp borrows home back
    r = fp.peers.findLoose(innerV6 ? CF_V6 : 0, c0, c1, c2, c3, v0, v1, v2, v3, ports, ip);
    if (r >= 0) {
      conns = fp.peers.found;
      fp.borrow(conns);
    }
  }
  if (r < 0 || hitDir(r) !== DIR_IN) return -1;
  const rec = conns.rec,
    o = hitId(r) * CONN_WORDS;
  if ((rec[o + CONN_FLAGS] & CF_FWD_MASK) !== FWD_TUNNEL) return -1;
  const dest = rec[o + CONN_DEST],
    dOff = dest * DEST_WORDS;
  // the tunnel packet must be the one this connection's real server gets
  if (((t.dest[dOff + DEST_FLAGS] & DESTF_V6) !== 0 ? 1 : 0) !== v6) return -1;
  if (v6) {
    if (
      dv.getInt32(e + IPV6_DST) !== t.dest[dOff + DEST_ADDR] ||
      dv.getInt32(e + IPV6_DST + 4) !== t.dest[dOff + DEST_ADDR + 1] ||
      dv.getInt32(e + IPV6_DST + 8) !== t.dest[dOff + DEST_ADDR + 2] ||
      dv.getInt32(e + IPV6_DST + 12) !== t.dest[dOff + DEST_ADDR + 3]
    )
      return -1;
  } else if (dv.getInt32(e + IPV4_DST) !== t.dest[dOff + DEST_ADDR]) {
    return -1;
  }
  if ((t.dest[dOff + DEST_TUN] & 0xff) !== type || (type === TUN_GUE && t.dest[dOff + DEST_TUN_PORT] !== tunPort)) return -1;

  // ours. ip_vs_out_stats: "ICMP can be shorter but anyways, account it"
  const svc = rec[o + CONN_SVC];
  fp.countOut(svc, dest, l3len);

  const icType = u8[ic + ICMP_TYPE],
    icCode = u8[ic + ICMP_CODE];
  let rest = dv.getInt32(ic + ICMP_REST);
  let t4 = icType,
    c4 = icCode,
    t6 = icType,
    c6 = icCode;
  const tooBig = v6 ? icType === ICMPV6_PKT_TOOBIG : icType === ICMP_DEST_UNREACH && icCode === ICMP_CODE_FRAG_NEEDED;
  if (tooBig) {
    const key = pmtuKey(t.dest, dOff);
    const routeMtu = t.dest[dOff + DEST_MTU];
    // the reported MTU: ICMPv6 "packet too big" has 32 bits of it, ICMP "fragmentation needed" the low 16
    learnPmtu(fp, dest, v6 ? dv.getInt32(ic + ICMP_REST) : dv.getUint16(ic + ICMP_REST + 2), v6);
    // "Client uses PMTUD?": an IPv4 client packet without DF gets no error (IPv6 always does)
    if (!innerV6 && (dv.getUint16(x + IPV4_FRAG) & IPV4_FLAG_DF) === 0) return fp.drop(Stat.IcmpPmtuLearned);
    // "Prefer the resulting PMTU", less the tunnel headers (when that leaves more than 68)
    let mtu = fp.pmtu.effective(dest, routeMtu, key, fp.now);
    if (mtu > IPV4_MIN_MTU + encapLen) mtu -= encapLen;
    if (innerV6 && mtu < IPV6_MIN_MTU) mtu = IPV6_MIN_MTU;
    rest = mtu;
    t4 = ICMP_DEST_UNREACH;
    c4 = ICMP_CODE_FRAG_NEEDED;
    t6 = ICMPV6_PKT_TOOBIG;
    c6 = 0;
  } else if (innerV6 !== v6) {
    // the client's family differs from the tunnel's: translate what has an equivalent
    const exceeded = v6 ? icType === ICMPV6_TIME_EXCEEDED : icType === ICMP_TIME_EXCEEDED;
    rest = 0;
    t4 = exceeded ? ICMP_TIME_EXCEEDED : ICMP_DEST_UNREACH;
    c4 = exceeded ? icCode & 1 : ICMP_CODE_HOST_UNREACH;
    t6 = exceeded ? ICMPV6_TIME_EXCEEDED : ICMPV6_DEST_UNREACH;
    c6 = exceeded ? icCode & 1 : ICMPV6_CODE_ADDR_UNREACH;
  }
  // icmp_send about the client's packet: from the VIP (its destination), routed to the client
  const hop = nextHopFor(t, fp.nh, innerV6 ? 6 : 4, c0, c1, c2, c3);
  if (hop === HOP_NO_ROUTE) return fp.drop(Stat.DropNoRoute);
  // an on-link client the kernel has no neighbour entry for yet (nextHopFor asked for one): the
  // MAC its packets came from, if they came in on the port the route goes out of (transmitIn)
  const viaMac = hop < 0 && rec[o + CONN_NEXTHOP] === hop && (rec[o + CONN_MAC_HI] | rec[o + CONN_MAC_LO]) !== 0;
  if (hop < 0 && !viaMac) return fp.drop(Stat.DropNeighbour);
  const avail = end - x;
  const frame = descs[d + D_ADDR];
  let len: number;
  if (innerV6) {
    const plen = IPV6_HLEN + dv.getUint16(x + IPV6_PAYLOAD_LEN);
    len = icmp6Error(u8, dv, frame, x, plen < avail ? plen : avail, t6, c6, rest);
  } else {
    const tot = dv.getUint16(x + IPV4_TOTAL_LEN);
    len = icmp4Error(u8, dv, frame, x, tot < avail ? tot : avail, t4, c4, rest);
  }
  let port: number;
  if (viaMac) {
    port = -1 - hop;
    setSrcMac(dv, frame, t.ports[port * PORT_WORDS + PORT_MAC_HI], t.ports[port * PORT_WORDS + PORT_MAC_LO]);
    setDstMac(dv, frame, rec[o + CONN_MAC_HI], rec[o + CONN_MAC_LO]);
  } else {
    port = fp.nh.setMacs(dv, frame, hop, t.ports);
    if (port < 0) return fp.drop(Stat.DropNeighbour);
  }
  descs[d + D_LEN] = len;
  fp.counters.verdicts[Stat.IcmpForwarded] += 1;
  return port;
}
