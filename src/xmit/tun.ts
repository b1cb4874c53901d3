/**
 * TUN (IP tunneling) encapsulation, in place: the outer headers are written in the frame's headroom,
 * right in front of the client's IP packet, which does not move. Field for field what
 * ip_vs_tunnel_xmit / ip_vs_tunnel_xmit_v6 and ip_vs_prepare_tunneled_skb build:
 *
 * - outer IPv4: version 4, ihl 5, tos = the inner DSCP with the ECN bits copied except CE, which
 *   becomes ECT(0) (INET_ECN_encapsulate); frag_off = the inner DF (pmtu_disc=1; MF and offset
 *   clear; 0 for an IPv6 inner packet); id = 0 with DF (ip_select_ident: DF and !ignore_df),
 *   otherwise a per-real-server counter the caller keeps (the kernel's __ip_select_ident hashes
 *   (saddr, daddr, proto) into a counter bucket); ttl = the inner TTL / hop limit, already
 *   decremented; protocol 4 (IPv4 inside), 41 (IPv6 inside), 17 (GUE) or 47 (GRE).
 * - outer IPv6: traffic class = that same dsfield, flow label 0, hop limit = the inner one.
 * - GUE: UDP (sport = udp_flow_src_port over the flow hash, dport = --tun-port, checksum only with
 *   --tun-csum or --tun-remcsum, 0 otherwise) + a 4-byte GUE header (version 0, C 0, hlen 0,
 *   proto_ctype 4/41, flags 0). --tun-remcsum adds its option only for CHECKSUM_PARTIAL skbs, i.e.
 *   locally generated ones; a forwarded packet never is, so remcsum sends what csum sends.
 * - GRE: version 0, C bit and checksum (+ reserved) with --tun-csum, protocol 0x0800 / 0x86DD; no
 *   key, no sequence number (gre_build_header(.., tflags, proto, 0, 0)).
 *
 * Checksums are computed in full where the kernel's output path would (outer IP header, GUE UDP
 * checksum, GRE checksum): a veth or NIC with offloads would do the same work in the driver.
 */
import { checksum, fold, pseudoSumV4, pseudoSumV6, sumBytes } from "../wire/checksum.ts";
import {
  IPV4_FLAG_DF,
  IPV4_FRAG,
  IPV4_MIN_HLEN,
  IPV4_TOS,
  IPV4_TTL,
  IPV6_DST,
  IPV6_HLEN,
  IPV6_HOP_LIMIT,
  IPV6_NEXT_HDR,
  IPV6_PAYLOAD_LEN,
  IPV6_SRC,
  PROTO_GRE,
  PROTO_IPIP,
  PROTO_IPV6,
  PROTO_UDP,
  UDP_CSUM,
  UDP_DST_PORT,
  UDP_HLEN,
  UDP_LEN,
  UDP_SRC_PORT,
} from "../wire/fields.ts";
import { TUN_CSUM_NONE, TUN_GRE, TUN_GUE } from "../service/tables.ts";
import { writeHeader } from "../wire/ipv4.ts";

/** GUE base header length in bytes (draft-ietf-intarea-gue: version/C/hlen, proto_ctype, flags). */
export const GUE_HLEN = 4;
/** GUE: version (2 bits), C (1 bit), hlen (5 bits, in 32-bit words of options). */
export const GUE_VER_HLEN = 0;
/** GUE: the inner IP protocol (C 0). */
export const GUE_PROTO_CTYPE = 1;
export const GUE_FLAGS = 2;
/** GRE base header (flags+version, protocol); +4 bytes checksum and reserved with the C bit. */
export const GRE_HLEN = 4;
/** GRE: flags and version (u16), protocol (u16, an EtherType), checksum (u16, with the C bit). */
export const GRE_FLAGS = 0;
export const GRE_PROTO = 2;
export const GRE_CSUM = 4;
export const GRE_CSUM_HLEN = 8;
/** GRE C (checksum present) flag in the first 16 bits. */
export const GRE_FLAG_CSUM = 0x8000;
/** GRE protocol types (EtherType) of the inner packet. */
export const GRE_PROTO_IPV4 = 0x0800;
export const GRE_PROTO_IPV6 = 0x86dd;

/** Smallest IPv4 tunnel MTU IPVS accepts (__ip_vs_get_out_rt: "mtu less than 68"). */
export const IPV4_MIN_MTU = 68;
/** Smallest IPv6 MTU (IPV6_MIN_MTU, RFC 8200). */
export const IPV6_MIN_MTU = 1280;

/** udp_flow_src_port's range: net.ipv4.ip_local_port_range defaults (32768 60999). */
const SPORT_MIN = 32768;
const SPORT_MAX = 60999;

/** Return the bytes the encapsulation puts in front of the inner IP packet (outer IP + UDP/GUE or GRE). */
export function tunnelOverhead(type: number, csum: number, outerV6: number): number {
  let n = outerV6 ? IPV6_HLEN : IPV4_MIN_HLEN;
  if (type === TUN_GUE) n += UDP_HLEN + GUE_HLEN;
  else if (type === TUN_GRE) n += csum !== TUN_CSUM_NONE ? GRE_CSUM_HLEN : GRE_HLEN;
  return n;
}

/**
 * Return the outer DS field for an inner one: DSCP copied, ECN copied except CE, which becomes
 * ECT(0) (INET_ECN_encapsulate, RFC 6040's "compatibility mode" encapsulation).
 */
export function encapDsfield(tos: number): number {
  return (tos & 3) === 3 ? (tos & 0xfc) | 2 : tos & 0xff;
}

/**
 * Return the GUE UDP source port for a flow hash, as udp_flow_src_port: the hash folded onto
 * itself, then scaled into the local port range. The same flow always gets the same port, so
 * the real server's NIC can spread flows over its queues (RSS) by the outer header.
 */
export function flowSourcePort(hash: number): number {
  const h = (hash ^ (hash << 16)) >>> 0;
  return Math.floor((h * (SPORT_MAX - SPORT_MIN)) / 4294967296) + SPORT_MIN;
}

/**
 * Encapsulate the IP packet at `l3` (`l3len` bytes; `innerV6` its family) for a real server:
 * writes the outer IP header and the UDP+GUE or GRE header in the `tunnelOverhead()` bytes just
 * before `l3` and returns the offset of the outer IP header. The caller writes the Ethernet header
 * in the 14 bytes before that. Outer addresses are (s0..s3) -> (d0..d3), IPv4 in word 0.
 * `ipId` is used for an IPv4 outer header without DF; `sport` is the GUE source port.
 */
export function encapsulate(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  l3len: number,
  innerV6: number,
  outerV6: number,
  type: number,
  csum: number,
  tunPort: number,
  sport: number,
  ipId: number,
  s0: number,
  s1: number,
  s2: number,
  s3: number,
  d0: number,
  d1: number,
  d2: number,
  d3: number,
): number {
  let tos: number, ttl: number, df: number;
  if (innerV6) {
    tos = (dv.getUint16(l3) >>> 4) & 0xff;
    ttl = u8[l3 + IPV6_HOP_LIMIT];
    df = 0; // ip_vs_prepare_tunneled_skb: an IPv6 packet has no DF to copy
  } else {
    tos = u8[l3 + IPV4_TOS];
    ttl = u8[l3 + IPV4_TTL];
    df = dv.getUint16(l3 + IPV4_FRAG) & IPV4_FLAG_DF;
  }
  const dsfield = encapDsfield(tos);
  const ipHdr = outerV6 ? IPV6_HLEN : IPV4_MIN_HLEN;
  const over = tunnelOverhead(type, csum, outerV6);
  const o = l3 - over;
  const x = o + ipHdr; // UDP or GRE header
  const innerProto = innerV6 ? PROTO_IPV6 : PROTO_IPIP;
  let proto = innerProto;

  // an IPv6 outer header first: the UDP checksum below reads its addresses (an IPv4 one is
  // written at the end, when its protocol is known)
  if (outerV6) {
    dv.setInt32(o, 0x60000000 | (dsfield << 20) | 0);
    dv.setUint16(o + IPV6_PAYLOAD_LEN, over - IPV6_HLEN + l3len);
    u8[o + IPV6_HOP_LIMIT] = ttl;
    dv.setInt32(o + IPV6_SRC, s0);
    dv.setInt32(o + IPV6_SRC + 4, s1);
    dv.setInt32(o + IPV6_SRC + 8, s2);
    dv.setInt32(o + IPV6_SRC + 12, s3);
    dv.setInt32(o + IPV6_DST, d0);
    dv.setInt32(o + IPV6_DST + 4, d1);
    dv.setInt32(o + IPV6_DST + 8, d2);
    dv.setInt32(o + IPV6_DST + 12, d3);
  }

  if (type === TUN_GUE) {
    proto = PROTO_UDP;
    const ulen = UDP_HLEN + GUE_HLEN + l3len;
    dv.setUint16(x + UDP_SRC_PORT, sport);
    dv.setUint16(x + UDP_DST_PORT, tunPort);
    dv.setUint16(x + UDP_LEN, ulen);
    dv.setUint16(x + UDP_CSUM, 0);
    const g = x + UDP_HLEN;
    u8[g + GUE_VER_HLEN] = 0; // version 0, C 0, hlen 0
    u8[g + GUE_PROTO_CTYPE] = innerProto;
    dv.setUint16(g + GUE_FLAGS, 0);
    if (csum !== TUN_CSUM_NONE) {
      // udp_set_csum / udp6_set_csum with a complete (not offloaded) checksum
      const pseudo = outerV6 ? pseudoSumV6(u8, o + IPV6_SRC, o + IPV6_DST, PROTO_UDP, ulen) : pseudoSumV4(s0, d0, PROTO_UDP, ulen);
      let c = ~fold(sumBytes(u8, x, ulen, pseudo)) & 0xffff;
      if (c === 0) c = 0xffff; // CSUM_MANGLED_0
      dv.setUint16(x + UDP_CSUM, c);
    }
  } else if (type === TUN_GRE) {
    proto = PROTO_GRE;
    const withCsum = csum !== TUN_CSUM_NONE;
    dv.setUint16(x + GRE_FLAGS, withCsum ? GRE_FLAG_CSUM : 0);
    dv.setUint16(x + GRE_PROTO, innerV6 ? GRE_PROTO_IPV6 : GRE_PROTO_IPV4);
    if (withCsum) {
      dv.setInt32(x + GRE_CSUM, 0); // checksum and reserved
      dv.setUint16(x + GRE_CSUM, checksum(u8, x, GRE_CSUM_HLEN + l3len));
    }
  }

  if (outerV6) u8[o + IPV6_NEXT_HDR] = proto;
  else writeHeader(u8, dv, o, dsfield, over + l3len, df ? 0 : ipId & 0xffff, df, ttl, proto, s0, d0);
  return o;
}
