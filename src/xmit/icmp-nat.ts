/**
 * NAT of ICMP errors about a masqueraded connection (ip_vs_nat_icmp / ip_vs_nat_icmp_v6): the
 * outer address on the real-server side and the embedded packet's matching address and port are
 * translated, the embedded IPv4 header checksum and the whole ICMP checksum recomputed.
 *
 * - "in" (an error from the client's side about a reply VIP:vport -> client, going to the real
 *   server): outer daddr -> RIP, embedded saddr -> RIP, embedded source port -> dport.
 * - "out" (an error from the real server's side about a request client -> RIP:dport, going to the
 *   client): outer saddr -> VIP, embedded daddr -> VIP, embedded destination port -> vport.
 *
 * The embedded packet's own L4 checksum is left as it is, as the kernel leaves it: the quote is
 * usually truncated, so no receiver can verify it. Offsets: `l3` outer IP header, `ic` ICMP header,
 * `icLen` ICMP bytes (header + quote), `e` embedded IP header, `eihl` its length (IPv4).
 */
import { checksum, pseudoSumV6 } from "../wire/checksum.ts";
import { ICMP_CSUM, IPV4_DST, IPV4_SRC, IPV6_DST, IPV6_HLEN, IPV6_SRC, PROTO_ICMPV6, TCP_DST_PORT, TCP_SRC_PORT } from "../wire/fields.ts";
import { fillHeaderChecksum } from "../wire/ipv4.ts";

function icmp4Checksum(u8: Uint8Array, dv: DataView, ic: number, icLen: number): void {
  dv.setUint16(ic + ICMP_CSUM, 0);
  dv.setUint16(ic + ICMP_CSUM, checksum(u8, ic, icLen));
}

function icmp6Checksum(u8: Uint8Array, dv: DataView, l3: number, ic: number, icLen: number): void {
  dv.setUint16(ic + ICMP_CSUM, 0);
  dv.setUint16(ic + ICMP_CSUM, checksum(u8, ic, icLen, pseudoSumV6(u8, l3 + IPV6_SRC, l3 + IPV6_DST, PROTO_ICMPV6, icLen)));
}

/** IPv4 "in": the error goes to the real server `raddr`; the quoted reply gets (raddr, dport) as source. */
export function natIcmpIn4(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  ic: number,
  icLen: number,
  e: number,
  eihl: number,
  hasPorts: boolean,
  raddr: number,
  dport: number,
): void {
  dv.setInt32(l3 + IPV4_DST, raddr);
  fillHeaderChecksum(u8, dv, l3);
  dv.setInt32(e + IPV4_SRC, raddr);
  fillHeaderChecksum(u8, dv, e);
  if (hasPorts) dv.setUint16(e + eihl + TCP_SRC_PORT, dport);
  icmp4Checksum(u8, dv, ic, icLen);
}

/** IPv4 "out": the error goes to the client from `vaddr`; the quoted request gets (vaddr, vport) as destination. */
export function natIcmpOut4(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  ic: number,
  icLen: number,
  e: number,
  eihl: number,
  hasPorts: boolean,
  vaddr: number,
  vport: number,
): void {
  dv.setInt32(l3 + IPV4_SRC, vaddr);
  fillHeaderChecksum(u8, dv, l3);
  dv.setInt32(e + IPV4_DST, vaddr);
  fillHeaderChecksum(u8, dv, e);
  if (hasPorts) dv.setUint16(e + eihl + TCP_DST_PORT, vport);
  icmp4Checksum(u8, dv, ic, icLen);
}

/** IPv6 "in" (ip_vs_nat_icmp_v6 inout=0); the embedded L4 header follows its 40-byte IPv6 header. */
export function natIcmpIn6(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  ic: number,
  icLen: number,
  e: number,
  hasPorts: boolean,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  dport: number,
): void {
  dv.setInt32(l3 + IPV6_DST, a0);
  dv.setInt32(l3 + IPV6_DST + 4, a1);
  dv.setInt32(l3 + IPV6_DST + 8, a2);
  dv.setInt32(l3 + IPV6_DST + 12, a3);
  dv.setInt32(e + IPV6_SRC, a0);
  dv.setInt32(e + IPV6_SRC + 4, a1);
  dv.setInt32(e + IPV6_SRC + 8, a2);
  dv.setInt32(e + IPV6_SRC + 12, a3);
  if (hasPorts) dv.setUint16(e + IPV6_HLEN + TCP_SRC_PORT, dport);
  icmp6Checksum(u8, dv, l3, ic, icLen);
}

/** IPv6 "out" (ip_vs_nat_icmp_v6 inout=1). */
export function natIcmpOut6(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  ic: number,
  icLen: number,
  e: number,
  hasPorts: boolean,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  vport: number,
): void {
  dv.setInt32(l3 + IPV6_SRC, a0);
  dv.setInt32(l3 + IPV6_SRC + 4, a1);
  dv.setInt32(l3 + IPV6_SRC + 8, a2);
  dv.setInt32(l3 + IPV6_SRC + 12, a3);
  dv.setInt32(e + IPV6_DST, a0);
  dv.setInt32(e + IPV6_DST + 4, a1);
  dv.setInt32(e + IPV6_DST + 8, a2);
  dv.setInt32(e + IPV6_DST + 12, a3);
  if (hasPorts) dv.setUint16(e + IPV6_HLEN + TCP_DST_PORT, vport);
  icmp6Checksum(u8, dv, l3, ic, icLen);
}
