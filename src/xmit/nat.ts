/**
 * NAT (masquerading) rewrites, in place, with incremental checksum updates (RFC 1624):
 * client -> real server packets get the real server's address and port as destination
 * (tcp/udp_dnat_handler), replies get the virtual address and port back as source
 * (tcp/udp_snat_handler). UDP datagrams sent without a checksum keep none (IPv4). SCTP's CRC32c
 * covers no addresses, so only a port change makes it recompute.
 */
import { csumReplace16, csumReplace32 } from "../wire/checksum.ts";
import { fillSctpChecksum } from "../wire/crc32c.ts";
import { IPV4_DST, IPV4_SRC, IPV6_DST, IPV6_SRC, PROTO_SCTP, PROTO_TCP, PROTO_UDP, TCP_CSUM, TCP_DST_PORT, TCP_SRC_PORT, UDP_CSUM } from "../wire/fields.ts";
import { setAddrFix } from "../wire/ipv4.ts";

function l4CsumOffset(proto: number): number {
  return proto === PROTO_TCP ? TCP_CSUM : proto === PROTO_UDP ? UDP_CSUM : -1;
}

/**
 * Rewrite the IPv4 address at `addrOff` (IPV4_SRC or IPV4_DST) and the port at `portOff` (source
 * or destination port: the same offsets in TCP, UDP and SCTP), fixing the IP header checksum
 * (wire/ipv4.ts) and the L4 checksum over the pseudo-header.
 */
function rewrite4(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  l4: number,
  l4len: number,
  proto: number,
  addrOff: number,
  portOff: number,
  addr: number,
  port: number,
): void {
  const oldPort = dv.getUint16(l4 + portOff);
  const oldAddr = setAddrFix(dv, l3, addrOff, addr);
  dv.setUint16(l4 + portOff, port);
  const co = l4CsumOffset(proto);
  if (co >= 0) {
    let c = dv.getUint16(l4 + co);
    if (proto === PROTO_UDP && c === 0) return; // no checksum: stays none
    c = csumReplace32(c, oldAddr, addr);
    c = csumReplace16(c, oldPort, port);
    if (proto === PROTO_UDP && c === 0) c = 0xffff;
    dv.setUint16(l4 + co, c);
  } else if (proto === PROTO_SCTP && oldPort !== port) {
    fillSctpChecksum(u8, dv, l4, l4len);
  }
}

function rewrite6(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  l4: number,
  l4len: number,
  proto: number,
  addrOff: number,
  portOff: number,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  port: number,
): void {
  const co = l4CsumOffset(proto);
  let c = co >= 0 ? dv.getUint16(l4 + co) : 0;
  for (let i = 0; i < 4; i++) {
    const nw = i === 0 ? a0 : i === 1 ? a1 : i === 2 ? a2 : a3;
    const ow = dv.getInt32(l3 + addrOff + i * 4);
    dv.setInt32(l3 + addrOff + i * 4, nw);
    c = csumReplace32(c, ow, nw);
  }
  const oldPort = dv.getUint16(l4 + portOff);
  dv.setUint16(l4 + portOff, port);
  if (co >= 0) {
    c = csumReplace16(c, oldPort, port);
    if (proto === PROTO_UDP && c === 0) c = 0xffff;
    dv.setUint16(l4 + co, c);
  } else if (proto === PROTO_SCTP && oldPort !== port) {
    fillSctpChecksum(u8, dv, l4, l4len);
  }
}

/** Client -> real server: destination becomes (addr, port). IPv4. */
export function dnat4(u8: Uint8Array, dv: DataView, l3: number, l4: number, l4len: number, proto: number, addr: number, port: number): void {
  rewrite4(u8, dv, l3, l4, l4len, proto, IPV4_DST, TCP_DST_PORT, addr, port);
}

/** Real server -> client: source becomes (vaddr, vport). IPv4. */
export function snat4(u8: Uint8Array, dv: DataView, l3: number, l4: number, l4len: number, proto: number, addr: number, port: number): void {
  rewrite4(u8, dv, l3, l4, l4len, proto, IPV4_SRC, TCP_SRC_PORT, addr, port);
}

/** Client -> real server, IPv6. */
export function dnat6(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  l4: number,
  l4len: number,
  proto: number,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  port: number,
): void {
  rewrite6(u8, dv, l3, l4, l4len, proto, IPV6_DST, TCP_DST_PORT, a0, a1, a2, a3, port);
}

/** Real server -> client, IPv6. */
export function snat6(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  l4: number,
  l4len: number,
  proto: number,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  port: number,
): void {
  rewrite6(u8, dv, l3, l4, l4len, proto, IPV6_SRC, TCP_SRC_PORT, a0, a1, a2, a3, port);
}
