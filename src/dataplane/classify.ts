/**
 * First pass over a burst: check every header the fast path will touch, then fill the packet's
 * flow row (wire/flow.ts). After classify() returns CONTINUE, every offset in the row lies inside
 * the frame and every later accessor may run without bounds checks (smoltcp's `new_checked`
 * contract). Anything else is a Stat drop reason; nothing here throws or allocates.
 */
import {
  ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPV4_FRAG, IPV4_MIN_HLEN, IPV4_OFFSET_MASK,
  IPV4_FLAG_MF, IPV6_HLEN, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SCTP_HLEN, TCP_MIN_HLEN, UDP_HLEN,
} from "../wire/fields.ts";
import { FLOW_DST, FLOW_L3, FLOW_L4, FLOW_META, FLOW_PORTS, FLOW_SRC } from "../wire/flow.ts";
import { Stat } from "./verdict.ts";
import { classifyFragment } from "./frag.ts";

/** Returned when the packet goes on to the connection stage. */
export const CONTINUE = -1;
/**
 * Returned for ICMP / ICMPv6: the row holds the addresses, FLOW_L3 and FLOW_L4 (the ICMP header,
 * not bounds-checked: dataplane/icmp.ts checks every byte it reads).
 */
export const CONTINUE_ICMP = -2;

/**
 * Classify the frame of `len` bytes at `off`; fill `flow` at `row`. Returns CONTINUE or the
 * Stat slot of the drop reason. `l3Len` receives the IP packet length (header + payload,
 * without Ethernet padding), the byte count IPVS's stats use.
 */
export function classify(u8: Uint8Array, dv: DataView, off: number, len: number, flow: Int32Array, row: number, l3Len: Int32Array, pkt: number): number {
  if (len < ETH_HLEN + IPV4_MIN_HLEN) return Stat.DropMalformed;
  const et = dv.getUint16(off + 12);
  const l3 = off + ETH_HLEN;
  const avail = len - ETH_HLEN;
  if (et === ETHERTYPE_IPV4) {
    const vihl = u8[l3];
    const ihl = (vihl & 0x0f) << 2;
    if (vihl >>> 4 !== 4 || ihl < IPV4_MIN_HLEN) return Stat.DropMalformed;
    const tot = dv.getUint16(l3 + 2);
    if (tot < ihl || tot > avail) return Stat.DropMalformed;
    // header checksum: the kernel's ip_rcv drops a bad one before IPVS sees it
    // IHL is a multiple of 4: sum 32-bit words, half the loads of a 16-bit walk
    let sum = 0;
    for (let i = 0; i < ihl; i += 4) {
      const w = dv.getUint32(l3 + i);
      sum += (w >>> 16) + (w & 0xffff);
    }
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    if (sum !== 0xffff) return Stat.DropBadChecksum;
    const frag = dv.getUint16(l3 + IPV4_FRAG);
    const proto = u8[l3 + 9];
    flow[row + FLOW_SRC] = dv.getInt32(l3 + 12);
    flow[row + FLOW_SRC + 1] = 0;
    flow[row + FLOW_SRC + 2] = 0;
    flow[row + FLOW_SRC + 3] = 0;
    flow[row + FLOW_DST] = dv.getInt32(l3 + 16);
    flow[row + FLOW_DST + 1] = 0;
    flow[row + FLOW_DST + 2] = 0;
    flow[row + FLOW_DST + 3] = 0;
    flow[row + FLOW_L3] = l3;
    l3Len[pkt] = tot;
    // fragments follow their first fragment's connection (dataplane/frag.ts)
    if ((frag & (IPV4_OFFSET_MASK | IPV4_FLAG_MF)) !== 0) return classifyFragment(u8, dv, l3, ihl, tot, frag, proto, flow, row);
    return classifyL4(u8, dv, 4, proto, l3 + ihl, tot - ihl, flow, row);
  }
  if (et === ETHERTYPE_IPV6) {
    if (avail < IPV6_HLEN || u8[l3] >>> 4 !== 6) return Stat.DropMalformed;
    const plen = dv.getUint16(l3 + 4);
    if (IPV6_HLEN + plen > avail) return Stat.DropMalformed;
    const nh = u8[l3 + 6];
    for (let i = 0; i < 4; i++) {
      flow[row + FLOW_SRC + i] = dv.getInt32(l3 + 8 + i * 4);
      flow[row + FLOW_DST + i] = dv.getInt32(l3 + 24 + i * 4);
    }
    flow[row + FLOW_L3] = l3;
    l3Len[pkt] = IPV6_HLEN + plen;
    if (nh !== PROTO_TCP && nh !== PROTO_UDP && nh !== PROTO_SCTP && nh !== PROTO_ICMPV6) return Stat.DropIpv6ExtHeader;
    return classifyL4(u8, dv, 6, nh, l3 + IPV6_HLEN, plen, flow, row);
  }
  if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ) return Stat.DropVlan;
  return Stat.DropMalformed;
}

function classifyL4(u8: Uint8Array, dv: DataView, family: number, proto: number, l4: number, l4len: number, flow: Int32Array, row: number): number {
  let flags = 0;
  if (proto === PROTO_TCP) {
    if (l4len < TCP_MIN_HLEN) return Stat.DropMalformed;
    const doff = (u8[l4 + 12] >>> 4) << 2;
    if (doff < TCP_MIN_HLEN || doff > l4len) return Stat.DropMalformed;
    flags = u8[l4 + 13];
  } else if (proto === PROTO_UDP) {
    if (l4len < UDP_HLEN) return Stat.DropMalformed;
    const ulen = dv.getUint16(l4 + 4);
    if (ulen < UDP_HLEN || ulen > l4len) return Stat.DropMalformed;
  } else if (proto === PROTO_SCTP) {
    if (l4len < SCTP_HLEN) return Stat.DropMalformed;
  } else if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
    flow[row + FLOW_META] = (family << 16) | (proto << 8);
    flow[row + FLOW_L4] = l4;
    return CONTINUE_ICMP;
  } else {
    return Stat.DropUnknownProto;
  }
  flow[row + FLOW_META] = (family << 16) | (proto << 8) | flags;
  flow[row + FLOW_PORTS] = dv.getInt32(l4);
  flow[row + FLOW_L4] = l4;
  return CONTINUE;
}
