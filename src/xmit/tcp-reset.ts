/**
 * Turn a received TCP segment, in place, into the RST the director's own stack answers it with
 * when IPVS passes it up (tcp_conn_schedule returns NF_ACCEPT for a segment that may not start
 * a connection and has none; the VIP is a local address and no socket listens on it):
 * tcp_v4_send_reset / tcp_v6_send_reset, RFC 9293 3.10.7.1.
 *
 * - ports and addresses swapped, MACs swapped: the RST leaves where the segment came from;
 * - the segment had ACK: RST alone, seq = its ack; otherwise RST+ACK, seq 0, ack = its seq plus
 *   its length (SYN and FIN count one each);
 * - data offset 5 (no options), window 0;
 * - IPv4: TOS copied without the ECN bits, DF set and IP ID 0 (the kernel's reply socket does
 *   path MTU discovery; a DF packet from a socket with no peer gets ID 0), TTL 64 (ip_default_ttl);
 * - IPv6: traffic class copied without ECN, flow label 0, hop limit 64.
 * Never for a segment that itself carries RST (the caller checks): no reset answers a reset.
 */
import { checksum, pseudoSumV4, pseudoSumV6 } from "../wire/checksum.ts";
import { setEtherType, swapMacs } from "../wire/eth.ts";
import {
  ETH_HLEN,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  IP_DEFAULT_TTL,
  IPV4_DST,
  IPV4_FLAG_DF,
  IPV4_MIN_HLEN,
  IPV4_SRC,
  IPV4_TOS,
  IPV6_DST,
  IPV6_HLEN,
  IPV6_HOP_LIMIT,
  IPV6_NEXT_HDR,
  IPV6_PAYLOAD_LEN,
  IPV6_SRC,
  PROTO_TCP,
  TCP_ACK,
  TCP_ACK_FLAG,
  TCP_CSUM,
  TCP_DOFF,
  TCP_DST_PORT,
  TCP_FIN,
  TCP_FLAGS,
  TCP_MIN_HLEN,
  TCP_RST,
  TCP_SEQ,
  TCP_SRC_PORT,
  TCP_SYN,
  TCP_URG,
  TCP_WINDOW,
} from "../wire/fields.ts";
import { writeHeader } from "../wire/ipv4.ts";

const ECN_MASK = 0x03;

/**
 * Write the RST's TCP header at `th` from the segment's fields (read by the caller before any
 * byte moved). Leaves the checksum 0.
 */
function writeReset(u8: Uint8Array, dv: DataView, th: number, sport: number, dport: number, seq: number, ack: number, flags: number, segLen: number): void {
  const hasAck = (flags & TCP_ACK_FLAG) !== 0;
  dv.setUint16(th + TCP_SRC_PORT, dport);
  dv.setUint16(th + TCP_DST_PORT, sport);
  dv.setUint32(th + TCP_SEQ, hasAck ? ack : 0);
  // the sequence space the segment used: its data, plus one for SYN and one for FIN
  const used = segLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
  dv.setUint32(th + TCP_ACK, hasAck ? 0 : (seq + used) >>> 0);
  u8[th + TCP_DOFF] = (TCP_MIN_HLEN >>> 2) << 4;
  u8[th + TCP_FLAGS] = hasAck ? TCP_RST : TCP_RST | TCP_ACK_FLAG;
  dv.setUint32(th + TCP_WINDOW, 0); // window 0, checksum 0 (filled below)
  dv.setUint16(th + TCP_URG, 0);
}

/**
 * Build the RST for the IPv4 TCP segment at `l3` (`l3len` bytes, TCP header at `l4`) inside the
 * frame at `frame`. Returns the new frame length (54).
 */
export function tcpReset4(u8: Uint8Array, dv: DataView, frame: number, l3: number, l4: number, l3len: number): number {
  const src = dv.getInt32(l3 + IPV4_SRC),
    dst = dv.getInt32(l3 + IPV4_DST),
    tos = u8[l3 + IPV4_TOS];
  const sport = dv.getUint16(l4 + TCP_SRC_PORT),
    dport = dv.getUint16(l4 + TCP_DST_PORT);
  const seq = dv.getUint32(l4 + TCP_SEQ),
    ack = dv.getUint32(l4 + TCP_ACK),
    flags = u8[l4 + TCP_FLAGS];
  const segLen = l3len - (l4 - l3) - ((u8[l4 + TCP_DOFF] >>> 4) << 2);
  const ip = frame + ETH_HLEN,
    th = ip + IPV4_MIN_HLEN;
  writeReset(u8, dv, th, sport, dport, seq, ack, flags, segLen);
  writeHeader(u8, dv, ip, tos & ~ECN_MASK, IPV4_MIN_HLEN + TCP_MIN_HLEN, 0, IPV4_FLAG_DF, IP_DEFAULT_TTL, PROTO_TCP, dst, src);
  dv.setUint16(th + TCP_CSUM, checksum(u8, th, TCP_MIN_HLEN, pseudoSumV4(dst, src, PROTO_TCP, TCP_MIN_HLEN)));
  setEtherType(dv, frame, ETHERTYPE_IPV4);
  swapMacs(dv, frame);
  return ETH_HLEN + IPV4_MIN_HLEN + TCP_MIN_HLEN;
}

/** Build the RST for the IPv6 TCP segment at `l3`; returns the new frame length (74). */
export function tcpReset6(u8: Uint8Array, dv: DataView, frame: number, l3: number, l4: number, l3len: number): number {
  const ip = frame + ETH_HLEN,
    th = ip + IPV6_HLEN;
  const tclass = (dv.getUint32(l3) >>> 20) & 0xff;
  const sport = dv.getUint16(l4 + TCP_SRC_PORT),
    dport = dv.getUint16(l4 + TCP_DST_PORT);
  const seq = dv.getUint32(l4 + TCP_SEQ),
    ack = dv.getUint32(l4 + TCP_ACK),
    flags = u8[l4 + TCP_FLAGS];
  const segLen = l3len - (l4 - l3) - ((u8[l4 + TCP_DOFF] >>> 4) << 2);
  // the addresses swap in place (IPv6 has no options here: l3 is the frame's own header)
  for (let i = 0; i < 16; i += 4) {
    const s = dv.getInt32(l3 + IPV6_SRC + i);
    dv.setInt32(ip + IPV6_SRC + i, dv.getInt32(l3 + IPV6_DST + i));
    dv.setInt32(ip + IPV6_DST + i, s);
  }
  writeReset(u8, dv, th, sport, dport, seq, ack, flags, segLen);
  dv.setUint32(ip, (0x6 << 28) | ((tclass & ~ECN_MASK) << 20));
  dv.setUint16(ip + IPV6_PAYLOAD_LEN, TCP_MIN_HLEN);
  u8[ip + IPV6_NEXT_HDR] = PROTO_TCP;
  u8[ip + IPV6_HOP_LIMIT] = IP_DEFAULT_TTL;
  dv.setUint16(th + TCP_CSUM, checksum(u8, th, TCP_MIN_HLEN, pseudoSumV6(u8, ip + IPV6_SRC, ip + IPV6_DST, PROTO_TCP, TCP_MIN_HLEN)));
  setEtherType(dv, frame, ETHERTYPE_IPV6);
  swapMacs(dv, frame);
  return ETH_HLEN + IPV6_HLEN + TCP_MIN_HLEN;
}
