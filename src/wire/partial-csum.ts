/**
 * Frames whose L4 checksum a sender left to "hardware" (the kernel's CHECKSUM_PARTIAL), completed
 * in software before the fast path rewrites or quotes them.
 *
 * Why: a Linux sender on a device that offers checksum offload (every veth by default, and
 * containers and VMs on the director's host) writes only the folded pseudo-header sum into the
 * TCP/UDP checksum field, not complemented (`~csum_tcpudp_magic(saddr, daddr, len, proto, 0)`,
 * and the IPv6 equivalent), and marks the skb CHECKSUM_PARTIAL; with NETIF_F_SCTP_CRC an SCTP
 * sender leaves the CRC32c field 0. A veth passes the skb on with that promise; the kernel's own
 * paths keep it (IPVS updates such a field with tcp_partial_csum_update, and the device or
 * skb_checksum_help / skb_crc32c_csum_help completes it on the way out). An AF_XDP socket gets
 * only the bytes, so the promise is lost: forwarded as is, the real server counts
 * TcpInCsumErrors and drops every segment.
 *
 * How a partial checksum is told apart, with no payload read for a complete frame:
 * - compute P, the folded pseudo-header sum (a few adds over the addresses classify() already
 *   put in the flow row, the protocol and the length);
 * - the field differs from P: the frame is complete (or corrupt): untouched. This is the whole
 *   cost for complete frames: the pseudo sum and one compare;
 * - the field equals P: sum the segment. If the full checksum verifies, the frame is left
 *   untouched; otherwise the field is replaced by the complement of the segment's sum (the
 *   field's P standing in for the pseudo-header, which is what the hardware computes).
 *
 * Why a correct frame is never changed: a frame whose full checksum verifies is never written.
 * And there is no ambiguity to resolve: if the field equals P and the frame verifies, completing
 * it would write P again (the segment sums to -P, whose complement is P), so both readings of
 * such a frame are the same bytes. A corrupt frame (neither complete nor partial) is left as it
 * is, as IPVS forwards it, and the receiver drops it; only a corruption that happens to leave
 * exactly P in the field (about 1 in 65535 corruptions of that field) would be completed.
 *
 * Not here: UDP over IPv4 with a 0 field ("no checksum", RFC 768) is never completed (P is never
 * 0 anyway: the protocol number is in it). IPv4 fragments are never passed in: a partial
 * checksum exists only on a whole L4 packet, and the checksum of a fragmented datagram spans
 * fragments xvs never holds together. UDP-lite is not balanced (classify drops it).
 *
 * A computed 0 is written as 0xFFFF, as skb_checksum_help does (`csum_fold(csum) ?:
 * CSUM_MANGLED_0`): required for UDP (0 means none), the same value for TCP.
 *
 * Per packet: no allocation, no exception; offsets were bounds-checked by classify().
 */
import { fold, pseudoSumWords, sumBytes } from "./checksum.ts";
import { crc32c } from "./crc32c.ts";
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, TCP_CSUM, UDP_CSUM, UDP_LEN } from "./fields.ts";
import { FLOW_L3, FLOW_L4, FLOW_META, FLOW_SRC } from "./flow.ts";

/** Offset of the CRC32c in the SCTP common header (RFC 9260 §3.1). */
const SCTP_CSUM = 8;

/**
 * Complete the L4 checksum of the whole (unfragmented) IPv4 or IPv6 packet that classify()
 * described in `flow` at `row` (family, protocol, addresses, L3/L4 offsets), of `l3len` bytes,
 * when the sender left it partial. Returns 1 when the checksum was completed (written), 0 when
 * the frame was left untouched.
 */
export function completePartialChecksum(u8: Uint8Array, dv: DataView, flow: Int32Array, row: number, l3len: number): number {
  const meta = flow[row + FLOW_META];
  const proto = (meta >>> 8) & 0xff;
  const l4 = flow[row + FLOW_L4];
  let co: number, len: number;
  if (proto === PROTO_TCP) {
    co = l4 + TCP_CSUM;
    len = l3len - (l4 - flow[row + FLOW_L3]);
  } else if (proto === PROTO_UDP) {
    co = l4 + UDP_CSUM;
    // the UDP length, as the sender's pseudo-header and the receiver's check use (classify: 8..payload)
    len = dv.getUint16(l4 + UDP_LEN);
  } else if (proto === PROTO_SCTP) {
    return dv.getInt32(l4 + SCTP_CSUM) === 0 ? completeSctp(u8, dv, l4, l3len - (l4 - flow[row + FLOW_L3])) : 0;
  } else {
    return 0;
  }
  const field = dv.getUint16(co);
  if (field === 0 && proto === PROTO_UDP && meta >>> 16 === 4) return 0;
  // P: the pseudo-header sum folded to 16 bits (below 2^21 before folding: two folds suffice)
  let p = pseudoSumWords(flow, row + FLOW_SRC, proto, len);
  p = (p & 0xffff) + (p >>> 16);
  p = (p & 0xffff) + (p >>> 16);
  if (field !== p) return 0;
  return completeL4(u8, dv, co, l4, len, p);
}

/**
 * The field holds P: sum the segment once (field included). If the full checksum (with the
 * pseudo-header, which P stands for) verifies, the frame is complete and stays untouched;
 * otherwise the field gets the complement of the segment's sum, which is what the hardware
 * computes (P in the field standing for the pseudo-header). Kept apart: complete frames never
 * call it.
 */
function completeL4(u8: Uint8Array, dv: DataView, co: number, l4: number, len: number, p: number): number {
  const seg = sumBytes(u8, l4, len, 0);
  if (fold(seg + p) === 0xffff) return 0;
  const c = ~fold(seg) & 0xffff;
  dv.setUint16(co, c === 0 ? 0xffff : c);
  return 1;
}

/**
 * SCTP: a CRC32c field of 0 is what a sender offloading the CRC (NETIF_F_SCTP_CRC) leaves. The
 * CRC is computed over the packet with the field 0, which it already is; a packet whose CRC
 * really is 0 is left as it is, any other gets its CRC (skb_crc32c_csum_help). A nonzero field
 * costs one compare. (A CRC that is correct is accepted by every receiver, RFC 9653 included.)
 */
function completeSctp(u8: Uint8Array, dv: DataView, l4: number, l4len: number): number {
  const crc = crc32c(u8, l4, l4len);
  if (crc === 0) return 0;
  dv.setUint32(l4 + SCTP_CSUM, crc, true);
  return 1;
}
