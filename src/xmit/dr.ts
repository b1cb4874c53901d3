/**
 * DR (direct routing, "gatewaying"): ip_vs_dr_xmit sends the client's IP packet unchanged to the
 * real server's MAC address (a route lookup with FLOWI_FLAG_KNOWN_NH: the next hop is the real
 * server, while the destination address stays the VIP, which the real server holds on a
 * non-ARPing interface). The only change to the IP packet is the one every forwarding hop makes:
 * TTL / hop limit minus one (decrement_ttl) and, for IPv4, the header checksum. The L4 header is
 * untouched, so its checksum stays valid. The same decrement serves NAT and TUN (the tunnel's
 * outer TTL is the decremented inner one).
 */
import { csumReplace16 } from "../wire/checksum.ts";
import { IPV4_CSUM, IPV4_TTL, IPV6_HOP_LIMIT } from "../wire/fields.ts";

/** Decrement the IPv4 TTL at `l3` and update the header checksum (RFC 1624; TTL shares a word with the protocol). */
export function decTtl4(dv: DataView, l3: number): void {
  const word = dv.getUint16(l3 + IPV4_TTL);
  dv.setUint16(l3 + IPV4_TTL, word - 0x100);
  dv.setUint16(l3 + IPV4_CSUM, csumReplace16(dv.getUint16(l3 + IPV4_CSUM), word, word - 0x100));
}

/** Decrement the IPv6 hop limit at `l3` (IPv6 has no header checksum). */
export function decHopLimit6(u8: Uint8Array, l3: number): void {
  u8[l3 + IPV6_HOP_LIMIT] -= 1;
}

/** Return the TTL / hop limit of the packet at `l3`. */
export function hopsLeft(u8: Uint8Array, l3: number, v6: number): number {
  return v6 ? u8[l3 + IPV6_HOP_LIMIT] : u8[l3 + IPV4_TTL];
}
