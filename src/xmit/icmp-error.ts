/**
 * Turn a received frame, in place, into the ICMP error the kernel would send back for it
 * (icmp_send / icmp6_send): new IP and ICMP headers in front, followed by as much of the
 * offending packet as fits in 576 bytes (IPv4) or 1280 bytes (IPv6), MACs swapped so the
 * frame leaves where it came from. Used for "port unreachable" when no real server is
 * available, "time exceeded" and "fragmentation needed" / "packet too big".
 */
import { checksum, pseudoSumV6 } from "../wire/checksum.ts";
import { swapMacs } from "../wire/eth.ts";
import { ETH_HLEN, ICMP_HLEN, IP_DEFAULT_TTL, IPV4_MIN_HLEN, IPV6_HLEN, PROTO_ICMP, PROTO_ICMPV6 } from "../wire/fields.ts";
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
  const origSrc = dv.getInt32(l3 + 12), origDst = dv.getInt32(l3 + 16), origTos = u8[l3 + 1];
  const ip = frame + ETH_HLEN;
  const icmp = ip + IPV4_MIN_HLEN;
  u8.copyWithin(icmp + ICMP_HLEN, l3, l3 + quote);
  const total = IPV4_MIN_HLEN + ICMP_HLEN + quote;
  // TOS: IPTOS_PREC_INTERNETCONTROL over the offending packet's, as icmp_send
  writeHeader(u8, dv, ip, (origTos & 0x1e) | 0xc0, total, ipId, 0, IP_DEFAULT_TTL, PROTO_ICMP, origDst, origSrc);
  ipId = (ipId + 1) & 0xffff;
  u8[icmp] = type;
  u8[icmp + 1] = code;
  dv.setUint16(icmp + 2, 0);
  dv.setInt32(icmp + 4, rest);
  dv.setUint16(icmp + 2, checksum(u8, icmp, ICMP_HLEN + quote));
  dv.setUint16(frame + 12, 0x0800);
  swapMacs(dv, frame);
  return ETH_HLEN + total;
}

/** Build an ICMPv6 error from the IPv6 packet at `l3`; returns the new frame length. */
export function icmp6Error(u8: Uint8Array, dv: DataView, frame: number, l3: number, l3len: number, type: number, code: number, rest: number): number {
  const quote = Math.min(l3len, ICMP6_MAX - IPV6_HLEN - ICMP_HLEN);
  const ip = frame + ETH_HLEN;
  const icmp = ip + IPV6_HLEN;
  // keep the addresses before the move overwrites them
  const s0 = dv.getInt32(l3 + 8), s1 = dv.getInt32(l3 + 12), s2 = dv.getInt32(l3 + 16), s3 = dv.getInt32(l3 + 20);
  const d0 = dv.getInt32(l3 + 24), d1 = dv.getInt32(l3 + 28), d2 = dv.getInt32(l3 + 32), d3 = dv.getInt32(l3 + 36);
  u8.copyWithin(icmp + ICMP_HLEN, l3, l3 + quote);
  const plen = ICMP_HLEN + quote;
  dv.setInt32(ip, 0x60000000);
  dv.setUint16(ip + 4, plen);
  u8[ip + 6] = PROTO_ICMPV6;
  u8[ip + 7] = IP_DEFAULT_TTL;
  dv.setInt32(ip + 8, d0); dv.setInt32(ip + 12, d1); dv.setInt32(ip + 16, d2); dv.setInt32(ip + 20, d3);
  dv.setInt32(ip + 24, s0); dv.setInt32(ip + 28, s1); dv.setInt32(ip + 32, s2); dv.setInt32(ip + 36, s3);
  u8[icmp] = type;
  u8[icmp + 1] = code;
  dv.setUint16(icmp + 2, 0);
  dv.setInt32(icmp + 4, rest);
  dv.setUint16(icmp + 2, checksum(u8, icmp, plen, pseudoSumV6(u8, ip + 8, ip + 24, PROTO_ICMPV6, plen)));
  dv.setUint16(frame + 12, 0x86dd);
  swapMacs(dv, frame);
  return ETH_HLEN + IPV6_HLEN + plen;
}
