/**
 * First pass over a burst: check every header the fast path will touch, then fill the packet's
 * flow row (wire/flow.ts). After classify() returns Classified.Continue, every offset in the row
 * lies inside the frame and every later accessor may run without bounds checks (smoltcp's
 * `new_checked` contract). Nothing here throws or allocates.
 */
import {
  ETH_HLEN,
  ETH_TYPE,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  IPV4_DST,
  IPV4_FRAG,
  IPV4_MIN_HLEN,
  IPV4_OFFSET_MASK,
  IPV4_FLAG_MF,
  IPV4_PROTO,
  IPV4_SRC,
  IPV4_TOTAL_LEN,
  IPV4_VER_IHL,
  IPV6_DST,
  IPV6_HLEN,
  IPV6_NEXT_HDR,
  IPV6_PAYLOAD_LEN,
  IPV6_SRC,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_SCTP,
  PROTO_TCP,
  PROTO_UDP,
  SCTP_HLEN,
  TCP_DOFF,
  TCP_FLAGS,
  TCP_MIN_HLEN,
  UDP_HLEN,
  UDP_LEN,
} from "../wire/fields.ts";
import { FLOW_DST, FLOW_L3, FLOW_L4, FLOW_META, FLOW_PORTS, FLOW_SRC, flowMeta } from "../wire/flow.ts";
import { Stat } from "./verdict.ts";
import { classifyFragment } from "./frag.ts";

/**
 * What classify() found: where the frame goes in pass 2, or why it is dropped. The drop members
 * are their Stat counters (>= 0), so pass 2 counts them as they are; the others are negative.
 */
export const enum Classified {
  /** A TCP, UDP or SCTP packet with its ports: on to the connection stage. */
  Continue = -1,
  /**
   * ICMP / ICMPv6: the row holds the addresses, FLOW_L3 and FLOW_L4 (the ICMP header, not
   * bounds-checked: dataplane/icmp.ts checks every byte it reads).
   */
  Icmp = -2,
  /** A first IPv4 fragment whose L4 header is complete: as Continue, then recorded (frag.ts). */
  FragFirst = -3,
  /** A non-first IPv4 fragment: FLOW_PORTS holds IP id << 8 | proto, FLOW_L4 is 0 (frag.ts). */
  FragLater = -4,
  // biome-ignore-start lint/style/useLiteralEnumMembers: a drop verdict is its Stat, so the caller counts it without a lookup
  Malformed = Stat.DropMalformed,
  BadChecksum = Stat.DropBadChecksum,
  Vlan = Stat.DropVlan,
  Fragment = Stat.DropFragment,
  Ipv6ExtHeader = Stat.DropIpv6ExtHeader,
  UnknownProto = Stat.DropUnknownProto,
  // biome-ignore-end lint/style/useLiteralEnumMembers: end of the Stat aliases
}

/**
 * Classify the frame of `len` bytes at `off`; fill `flow` at `row`. `l3Len` receives the IP
 * packet length (header + payload, without Ethernet padding), the byte count IPVS's stats use.
 */
export function classify(u8: Uint8Array, dv: DataView, off: number, len: number, flow: Int32Array, row: number, l3Len: Int32Array, pkt: number): Classified {
  if (len < ETH_HLEN + IPV4_MIN_HLEN) return Classified.Malformed;
  const et = dv.getUint16(off + ETH_TYPE);
  const l3 = off + ETH_HLEN;
  const avail = len - ETH_HLEN;
  if (et === ETHERTYPE_IPV4) {
    const vihl = u8[l3 + IPV4_VER_IHL];
    const ihl = (vihl & 0x0f) << 2;
    if (vihl >>> 4 !== 4 || ihl < IPV4_MIN_HLEN) return Classified.Malformed;
    const tot = dv.getUint16(l3 + IPV4_TOTAL_LEN);
    if (tot < ihl || tot > avail) return Classified.Malformed;
    // header checksum: the kernel's ip_rcv drops a bad one before IPVS sees it
    // IHL is a multiple of 4: sum 32-bit words, half the loads of a 16-bit walk
    let sum = 0;
    for (let i = 0; i < ihl; i += 4) {
      const w = dv.getUint32(l3 + i);
      sum += (w >>> 16) + (w & 0xffff);
    }
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    if (sum !== 0xffff) return Classified.BadChecksum;
    const frag = dv.getUint16(l3 + IPV4_FRAG);
    const proto = u8[l3 + IPV4_PROTO];
    flow[row + FLOW_SRC] = dv.getInt32(l3 + IPV4_SRC);
    flow[row + FLOW_SRC + 1] = 0;
    flow[row + FLOW_SRC + 2] = 0;
    flow[row + FLOW_SRC + 3] = 0;
    flow[row + FLOW_DST] = dv.getInt32(l3 + IPV4_DST);
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
    if (avail < IPV6_HLEN || u8[l3] >>> 4 !== 6) return Classified.Malformed;
    const plen = dv.getUint16(l3 + IPV6_PAYLOAD_LEN);
    if (IPV6_HLEN + plen > avail) return Classified.Malformed;
    const nh = u8[l3 + IPV6_NEXT_HDR];
    for (let i = 0; i < 4; i++) {
      flow[row + FLOW_SRC + i] = dv.getInt32(l3 + IPV6_SRC + i * 4);
      flow[row + FLOW_DST + i] = dv.getInt32(l3 + IPV6_DST + i * 4);
    }
    flow[row + FLOW_L3] = l3;
    l3Len[pkt] = IPV6_HLEN + plen;
    if (nh !== PROTO_TCP && nh !== PROTO_UDP && nh !== PROTO_SCTP && nh !== PROTO_ICMPV6) return Classified.Ipv6ExtHeader;
    return classifyL4(u8, dv, 6, nh, l3 + IPV6_HLEN, plen, flow, row);
  }
  if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ) return Classified.Vlan;
  return Classified.Malformed;
}

function classifyL4(u8: Uint8Array, dv: DataView, family: number, proto: number, l4: number, l4len: number, flow: Int32Array, row: number): Classified {
  let flags = 0;
  if (proto === PROTO_TCP) {
    if (l4len < TCP_MIN_HLEN) return Classified.Malformed;
    const doff = (u8[l4 + TCP_DOFF] >>> 4) << 2;
    if (doff < TCP_MIN_HLEN || doff > l4len) return Classified.Malformed;
    flags = u8[l4 + TCP_FLAGS];
  } else if (proto === PROTO_UDP) {
    if (l4len < UDP_HLEN) return Classified.Malformed;
    const ulen = dv.getUint16(l4 + UDP_LEN);
    if (ulen < UDP_HLEN || ulen > l4len) return Classified.Malformed;
  } else if (proto === PROTO_SCTP) {
    if (l4len < SCTP_HLEN) return Classified.Malformed;
  } else if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
    flow[row + FLOW_META] = flowMeta(family, proto, 0);
    flow[row + FLOW_L4] = l4;
    return Classified.Icmp;
  } else {
    return Classified.UnknownProto;
  }
  flow[row + FLOW_META] = flowMeta(family, proto, flags);
  // source and destination port: the first word of TCP, UDP and SCTP alike
  flow[row + FLOW_PORTS] = dv.getInt32(l4);
  flow[row + FLOW_L4] = l4;
  return Classified.Continue;
}
