/**
 * DR (direct routing, "gatewaying"): ip_vs_dr_xmit sends the client's IP packet unchanged to the
 * real server's MAC address (a route lookup with FLOWI_FLAG_KNOWN_NH: the next hop is the real
 * server, while the destination address stays the VIP, which the real server holds on a
 * non-ARPing interface). The only change to the IP packet is the one every forwarding hop makes:
 * TTL / hop limit minus one (decrement_ttl) and, for IPv4, the header checksum. The L4 header is
 * untouched, so its checksum stays valid. The same decrement serves NAT and TUN (the tunnel's
 * outer TTL is the decremented inner one).
 */
import { IPV4_TTL, IPV6_HOP_LIMIT } from "../wire/fields.ts";
import { decTtlFix } from "../wire/ipv4.ts";

/** Decrement the TTL / hop limit of the packet at `l3` (checked > 1 by the caller); IPv4 fixes its header checksum. */
export function decTtl(u8: Uint8Array, dv: DataView, l3: number, v6: number): void {
  if (v6) u8[l3 + IPV6_HOP_LIMIT] -= 1;
  else decTtlFix(dv, l3);
}

/** Return the TTL / hop limit of the packet at `l3`. */
export function hopsLeft(u8: Uint8Array, l3: number, v6: number): number {
  return v6 ? u8[l3 + IPV6_HOP_LIMIT] : u8[l3 + IPV4_TTL];
}
