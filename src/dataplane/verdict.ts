/**
 * Every packet the fast path sees ends in exactly one counted verdict: forwarded, or dropped for
 * a named reason; a dropped packet may be answered (an ICMP error or a TCP RST sent back, counted
 * apart). Counters are Float64 slots (exact
 * to 2^53) in a SharedArrayBuffer the control thread reads.
 */
import { VERDICT_SLOTS } from "../stats/counters.ts";

/** Counter slots, one per verdict and a few totals. */
export const enum Stat {
  /** Frames received from the AF_XDP rings. */
  RxPackets = 0,
  RxBytes,
  /** Frames handed to tx rings. */
  TxPackets,
  TxBytes,
  /** Client -> real server packets forwarded. */
  FwdIn,
  /** Real server -> client replies forwarded (NAT). */
  FwdOut,
  /** Connections created (templates not counted). */
  NewConns,
  /** ICMP errors sent (port unreachable, time exceeded, fragmentation needed). */
  IcmpSent,
  /** Connections expired by their timer. */
  ConnsExpired,
  // ---- drop reasons ----
  /** Frame too short, or a header length / total length that does not fit. */
  DropMalformed,
  /** IPv4 header checksum wrong (the kernel's ip_rcv would drop it too). */
  DropBadChecksum,
  /** VLAN-tagged frame (not supported on the fast path). */
  DropVlan,
  /** IPv4 fragment of a refused shape (first fragment too short for its L4 header, tiny-fragment
   * overlap, ICMP, past 65535): see frag.ts. */
  DropFragment,
  /** IPv6 packet with extension headers. */
  DropIpv6ExtHeader,
  /** IP protocol other than TCP, UDP, SCTP and ICMP. */
  DropUnknownProto,
  /** ICMP message the fast path does not handle. */
  DropIcmp,
  /** TCP packet that is not a SYN (or is a RST) and has no connection (kernel: passed to the local
   * stack, which answers with a RST; xvs sends that RST itself, counted in TcpResetSent). */
  DropTcpNoConn,
  /** Matches no connection and no virtual service: a NAT real server's packet whose connection
   * expired (or predates a restart), or a service removed while the packet was in flight. */
  DropNoConn,
  /** No real server available: answered with ICMP port unreachable. */
  DropNoDest,
  /** Connection whose real server was deleted (expire_nodest_conn=0). */
  DropDestUnavailable,
  /** Connection table full. */
  DropTableFull,
  /** TTL or hop limit would reach 0: answered with ICMP time exceeded. */
  DropTtl,
  /** No route towards the real server or the client through our interfaces. */
  DropNoRoute,
  /** Next hop known but its MAC not resolved yet. */
  DropNeighbour,
  /** Larger than the path MTU with DF set: answered with ICMP fragmentation needed. */
  DropMtu,
  /** Forwarding method not supported on this path. */
  DropUnsupported,
  /** A new TCP connection refused by the SYN flood defence. */
  DropSynFlood,
  /** Client packets sent by direct routing (DR), counted in FwdIn too. */
  FwdDr,
  /** Client packets sent encapsulated (TUN), counted in FwdIn too. */
  FwdTun,
  /** ICMP errors about a tracked connection forwarded (rewritten for NAT). */
  IcmpForwarded,
  /** ICMP error whose embedded packet matches no connection. */
  DropIcmpNoConn,
  /** ICMP error that is truncated, has a bad checksum, or embeds garbage. */
  DropIcmpMalformed,
  /** Non-first IPv4 fragments forwarded after their first fragment's connection. */
  FragForwarded,
  /** Non-first fragment whose first fragment was never seen (or expired). */
  DropFragOrphan,
  /** Fragment tracking table full. */
  DropFragTableFull,
  /** IPv4 packet without DF larger than the path MTU: xvs cannot fragment, so it is answered with
   * ICMP fragmentation needed (as for DF) and dropped; the kernel would fragment it. */
  DropMtuNoDf,
  /** Tunnel path MTU minus the encapsulation below 68 (IPv4) / 1280 (IPv6): dropped, as IPVS does. */
  DropTunnelMtu,
  /** No room before the frame for the tunnel headers (cannot happen with the default UMEM headroom). */
  DropNoHeadroom,
  /** ICMP fragmentation needed / packet too big about one of our tunnel packets whose client packet
   * had no DF: the path MTU towards that real server was learned and the message consumed. */
  IcmpPmtuLearned,
  /** Half-open TCP connections evicted by the SYN flood defence to make room (dataplane/synflood.ts);
   * an event, not a verdict. */
  HalfOpenEvicted,
  /** An ICMP error xvs would send was held back by the kernel's ICMP rate limits (icmp-limit.ts). */
  IcmpRateLimited,
  /** RSTs sent for TCP segments that may not start a connection and have none (counted in
   * DropTcpNoConn too), as the director's stack answers them in the kernel (xmit/tcp-reset.ts). */
  TcpResetSent,
  /** TCP/UDP/SCTP packets whose checksum the sender left partial (CHECKSUM_PARTIAL: checksum
   * offload on a veth or a local device) and xvs completed before forwarding
   * (wire/partial-csum.ts); an event alongside the packet's verdict, not a verdict. */
  CsumPartialCompleted,
  /** Also counted: a packet handled with another worker's connection (a NAT reply on another queue; conn/peers.ts). */
  PeerConn,
  /** A connection direction the flow cache could not take (its map full): it stays on the AF_XDP path (dataplane/flowcache.ts). */
  FlowCacheFull,
  Count,
}

/** Names of the counters, for the API and logs (same order as Stat). */
export const STAT_NAMES = [
  "rx_packets",
  "rx_bytes",
  "tx_packets",
  "tx_bytes",
  "fwd_in",
  "fwd_out",
  "new_conns",
  "icmp_sent",
  "conns_expired",
  "drop_malformed",
  "drop_bad_checksum",
  "drop_vlan",
  "drop_fragment",
  "drop_ipv6_ext_header",
  "drop_unknown_proto",
  "drop_icmp",
  "drop_tcp_no_conn",
  "drop_no_conn",
  "drop_no_dest",
  "drop_dest_unavailable",
  "drop_table_full",
  "drop_ttl",
  "drop_no_route",
  "drop_neighbour",
  "drop_mtu",
  "drop_unsupported",
  "drop_syn_flood",
  "fwd_dr",
  "fwd_tun",
  "icmp_forwarded",
  "drop_icmp_no_conn",
  "drop_icmp_malformed",
  "frag_forwarded",
  "drop_frag_orphan",
  "drop_frag_table_full",
  "drop_mtu_no_df",
  "drop_tunnel_mtu",
  "drop_no_headroom",
  "icmp_pmtu_learned",
  "half_open_evicted",
  "icmp_rate_limited",
  "tcp_reset_sent",
  "csum_partial_completed",
  "peer_conn",
  "flow_cache_full",
] as const;

// Stat entries are only ever appended, each with its name here
if (STAT_NAMES.length !== Stat.Count || Stat.Count > VERDICT_SLOTS) {
  throw new Error("verdict counters: Stat and STAT_NAMES disagree, or do not fit VERDICT_SLOTS");
}
