/**
 * Byte offsets of header fields, relative to the start of their header, and protocol numbers.
 * All multi-byte fields are big-endian on the wire (DataView's default).
 */

// ---- Ethernet (IEEE 802.3) ----
/** Destination MAC, 6 bytes. */
export const ETH_DST = 0;
/** Source MAC, 6 bytes. */
export const ETH_SRC = 6;
/** EtherType, u16. */
export const ETH_TYPE = 12;
/** Ethernet header length in bytes (untagged). */
export const ETH_HLEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;

// ---- IPv4 (RFC 791) ----
export const IPV4_VER_IHL = 0;
export const IPV4_TOS = 1;
export const IPV4_TOTAL_LEN = 2;
export const IPV4_ID = 4;
/** Flags (3 bits) and fragment offset (13 bits, in 8-byte units). */
export const IPV4_FRAG = 6;
export const IPV4_TTL = 8;
export const IPV4_PROTO = 9;
export const IPV4_CSUM = 10;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;
/** Minimum (option-less) IPv4 header length in bytes. */
export const IPV4_MIN_HLEN = 20;
/** TTL / hop limit of packets the host itself sends (net.ipv4.ip_default_ttl, IPv6 hop_limit). */
export const IP_DEFAULT_TTL = 64;
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_OFFSET_MASK = 0x1fff;

// ---- IPv6 (RFC 8200) ----
export const IPV6_VER_TC_FLOW = 0;
export const IPV6_PAYLOAD_LEN = 4;
export const IPV6_NEXT_HDR = 6;
export const IPV6_HOP_LIMIT = 7;
export const IPV6_SRC = 8;
export const IPV6_DST = 24;
/** IPv6 fixed header length in bytes. */
export const IPV6_HLEN = 40;

// ---- IP protocol numbers (IANA) ----
export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_IPV6 = 41;
export const PROTO_GRE = 47;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;
export const PROTO_IPV6_FRAGMENT = 44;

// ---- TCP (RFC 9293) ----
export const TCP_SRC_PORT = 0;
export const TCP_DST_PORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
/** Data offset (high 4 bits, in 32-bit words). */
export const TCP_DOFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CSUM = 16;
export const TCP_URG = 18;
export const TCP_MIN_HLEN = 20;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK_FLAG = 0x10;
export const TCP_URG_FLAG = 0x20;

// ---- UDP (RFC 768) ----
export const UDP_SRC_PORT = 0;
export const UDP_DST_PORT = 2;
export const UDP_LEN = 4;
export const UDP_CSUM = 6;
export const UDP_HLEN = 8;

// ---- SCTP (RFC 9260): only the common header's ports are read ----
export const SCTP_SRC_PORT = 0;
export const SCTP_DST_PORT = 2;
export const SCTP_HLEN = 12;

// ---- ICMP (RFC 792) / ICMPv6 (RFC 4443) ----
export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CSUM = 2;
/** Rest of header: identifier/sequence, or unused + next-hop MTU for frag-needed. */
export const ICMP_REST = 4;
export const ICMP_HLEN = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_CODE_PORT_UNREACH = 3;
export const ICMP_CODE_FRAG_NEEDED = 4;
export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PKT_TOOBIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_CODE_PORT_UNREACH = 4;
