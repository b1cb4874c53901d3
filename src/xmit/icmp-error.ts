/**
 * Turn a received frame, in place, into the ICMP error the kernel would send back for it
 * (icmp_send / icmp6_send): new IP and ICMP headers in front, followed by as much of the
 * offending packet as fits in 576 bytes (IPv4) or 1280 bytes (IPv6), MACs swapped so the
 * frame leaves where it came from. Used for "port unreachable" when no real server is
 * available, "time exceeded" and "fragmentation needed" / "packet too big".
 */
import { checksum, pseudoSumV6 } from "../wire/checksum.ts";
import { setEtherType, swapMacs } from "../wire/eth.ts";
import {
  ETH_HLEN,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ICMP_CODE,
  ICMP_CSUM,
  ICMP_HLEN,
  ICMP_REST,
  ICMP_TYPE,
  IP_DEFAULT_TTL,
  IPV4_DST,
  IPV4_MIN_HLEN,
  IPV4_SRC,
  IPV4_TOS,
  IPV6_DST,
  IPV6_HLEN,
  IPV6_HOP_LIMIT,
  IPV6_NEXT_HDR,
  IPV6_PAYLOAD_LEN,
  IPV6_SRC,
  PROTO_ICMP,
  PROTO_ICMPV6,
} from "../wire/fields.ts";
import { writeHeader } from "../wire/ipv4.ts";

/** Most bytes of an ICMPv4 error datagram (RFC 1812 4.3.2.3, Linux icmp_send). */
const ICMP4_MAX = 576;
/** Most bytes of an ICMPv6 error datagram (IPv6 minimum MTU, RFC 4443 2.4). */
const ICMP6_MAX = 1280;
/** ICMP destination unreachable code "host unreachable" (RFC 792), sent when no route leads to a real server. */
export const ICMP_CODE_HOST_UNREACH = 1;
/** ICMPv6 destination unreachable code "address unreachable" (RFC 4443). */
export const ICMPV6_CODE_ADDR_UNREACH = 3;

let ipId = 1;

/**
 * Build an ICMPv4 error of (type, code, rest-of-header word) from the IPv4 packet at `l3`
 * (`l3len` bytes) inside the frame at `frame`; the sender of the offending packet becomes the
 * destination. Returns the new frame length. The frame must have room for 28 more bytes.
 */
export function icmp4Error(u8: Uint8Array, dv: DataView, frame: number, l3: number, l3len: number, type: number, code: number, rest: number): number {
  const quote = Math.min(l3len, ICMP4_MAX - IPV4_MIN_HLEN - ICMP_HLEN);
  const origSrc = dv.getInt32(l3 + IPV4_SRC),
    origDst = dv.getInt32(l3 + IPV4_DST),
    origTos = u8[l3 + IPV4_TOS];
  const ip = frame + ETH_HLEN;
  const icmp = ip + IPV4_MIN_HLEN;
  u8.copyWithin(icmp + ICMP_HLEN, l3, l3 + quote);
  const total = IPV4_MIN_HLEN + ICMP_HLEN + quote;
  // TOS: IPTOS_PREC_INTERNETCONTROL over the offending packet's, as icmp_send
  writeHeader(u8, dv, ip, (origTos & 0x1e) | 0xc0, total, ipId, 0, IP_DEFAULT_TTL, PROTO_ICMP, origDst, origSrc);
  ipId = (ipId + 1) & 0xffff;
  u8[icmp + ICMP_TYPE] = type;
  u8[icmp + ICMP_CODE] = code;
  dv.setUint16(icmp + ICMP_CSUM, 0);
  dv.setInt32(icmp + ICMP_REST, rest);
  dv.setUint16(icmp + ICMP_CSUM, checksum(u8, icmp, ICMP_HLEN + quote));
  setEtherType(dv, frame, ETHERTYPE_IPV4);
  swapMacs(dv, frame);
  return ETH_HLEN + total;
}

/** Build an ICMPv6 error from the IPv6 packet at `l3`; returns the new frame length. */
export function icmp6Error(u8: Uint8Array, dv: DataView, frame: number, l3: number, l3len: number, type: number, code: number, rest: number): number {
  const quote = Math.min(l3len, ICMP6_MAX - IPV6_HLEN - ICMP_HLEN);
  const ip = frame + ETH_HLEN;
  const icmp = ip + IPV6_HLEN;
  // keep the addresses before the move overwrites them
  const s0 = dv.getInt32(l3 + IPV6_SRC),
    s1 = dv.getInt32(l3 + IPV6_SRC + 4),
    s2 = dv.getInt32(l3 + IPV6_SRC + 8),
    s3 = dv.getInt32(l3 + IPV6_SRC + 12);
  const d0 = dv.getInt32(l3 + IPV6_DST),
    d1 = dv.getInt32(l3 + IPV6_DST + 4),
    d2 = dv.getInt32(l3 + IPV6_DST + 8),
    d3 = dv.getInt32(l3 + IPV6_DST + 12);
  u8.copyWithin(icmp + ICMP_HLEN, l3, l3 + quote);
  const plen = ICMP_HLEN + quote;
  dv.setInt32(ip, 0x60000000);
  dv.setUint16(ip + IPV6_PAYLOAD_LEN, plen);
  u8[ip + IPV6_NEXT_HDR] = PROTO_ICMPV6;
  u8[ip + IPV6_HOP_LIMIT] = IP_DEFAULT_TTL;
  dv.setInt32(ip + IPV6_SRC, d0);
  dv.setInt32(ip + IPV6_SRC + 4, d1);
  dv.setInt32(ip + IPV6_SRC + 8, d2);
  dv.setInt32(ip + IPV6_SRC + 12, d3);
  dv.setInt32(ip + IPV6_DST, s0);
  dv.setInt32(ip + IPV6_DST + 4, s1);
  dv.setInt32(ip + IPV6_DST + 8, s2);
  dv.setInt32(ip + IPV6_DST + 12, s3);
  u8[icmp + ICMP_TYPE] = type;
  u8[icmp + ICMP_CODE] = code;
  dv.setUint16(icmp + ICMP_CSUM, 0);
  dv.setInt32(icmp + ICMP_REST, rest);
  dv.setUint16(icmp + ICMP_CSUM, checksum(u8, icmp, plen, pseudoSumV6(u8, ip + IPV6_SRC, ip + IPV6_DST, PROTO_ICMPV6, plen)));
  setEtherType(dv, frame, ETHERTYPE_IPV6);
  swapMacs(dv, frame);
  return ETH_HLEN + IPV6_HLEN + plen;
}
