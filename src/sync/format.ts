/**
 * The IPVS connection-synchronisation wire format (net/netfilter/ipvs/ip_vs_sync.c): message headers,
 * connection records and their options for version 1 and the old version 0, the connection flags the
 * records carry, and the defaults of the sync daemon. Offsets are bytes from the start of the header
 * or record they belong to; every multi-byte field is big-endian. The layout is documented in
 * docs/sync.md.
 */

/** Default multicast group 224.0.0.81 (IP_VS_SYNC_GROUP). */
export const SYNC_GROUP_V4 = "224.0.0.81";
/** Default UDP port (IP_VS_SYNC_PORT); thread i of sync_ports uses port + i. */
export const SYNC_PORT = 8848;
/** Default multicast TTL (start_sync_thread: mcast_ttl 0 becomes 1). */
export const SYNC_TTL = 1;
/** Protocol version a v1 header carries (SYNC_PROTO_VER). */
export const SYNC_PROTO_VER = 1;

// ---- version 1 message header (struct ip_vs_sync_mesg, 8 bytes) ----
/** u8, must be 0: where v0 has nr_conns, so v0 receivers see an empty message. */
export const MSG_RESERVED = 0;
/** u8 sync id. */
export const MSG_SYNCID = 1;
/** be16 size of the whole message in bytes. */
export const MSG_SIZE = 2;
/** u8 number of connection records. */
export const MSG_NR_CONNS = 4;
/** s8 version (1). */
export const MSG_VERSION = 5;
/** u16 spare, must be 0. */
export const MSG_SPARE = 6;
/** Bytes in a v1 message header. */
export const MSG_V1_HLEN = 8;

// ---- version 0 message header (struct ip_vs_sync_mesg_v0, 4 bytes) ----
/** u8 number of records. */
export const MSG0_NR_CONNS = 0;
/** u8 sync id. */
export const MSG0_SYNCID = 1;
/** be16 size of the whole message in bytes. */
export const MSG0_SIZE = 2;
/** Bytes in a v0 message header (also the shortest message a backup reads). */
export const MSG_V0_HLEN = 4;

// ---- version 1 connection record (struct ip_vs_sync_v4 / ip_vs_sync_v6) ----
/** u8 type: bit 0 set = IPv6 (STYPE_F_INET6). */
export const REC_TYPE = 0;
/** u8 IP protocol. */
export const REC_PROTOCOL = 1;
/** be16: version in the top 4 bits (must be 0), record size incl. options in the low 12. */
export const REC_VER_SIZE = 2;
/** be32 connection flags (IP_VS_CONN_F_*, HASHED cleared). */
export const REC_FLAGS = 4;
/** be16 protocol state. */
export const REC_STATE = 8;
/** be16 client port. */
export const REC_CPORT = 10;
/** be16 virtual port. */
export const REC_VPORT = 12;
/** be16 destination (real server) port. */
export const REC_DPORT = 14;
/** be32 firewall mark. */
export const REC_FWMARK = 16;
/** be32 timeout in seconds (the connection's full timeout, not what is left of it). */
export const REC_TIMEOUT = 20;
/** Client, virtual and destination addresses follow: 3 x 4 bytes (IPv4) or 3 x 16 (IPv6). */
export const REC_CADDR = 24;
/** Fixed bytes of an IPv4 record. */
export const REC_V4_LEN = 36;
/** Fixed bytes of an IPv6 record. */
export const REC_V6_LEN = 72;
/** Type bit for IPv6 records. */
export const STYPE_F_INET6 = 1;
/** Shift and mask of ver_size. */
export const SVER_SHIFT = 12;
export const SVER_MASK = 0x0fff;

// ---- options after a v1 record: u8 type, u8 length (> 0), data ----
/** Sequence adjustment data: in_seq then out_seq, 3 x be32 each (24 bytes). */
export const IPVS_OPT_SEQ_DATA = 1;
/** Persistence-engine data (the SIP Call-ID for the sip engine), 1..255 bytes. */
export const IPVS_OPT_PE_DATA = 2;
/** Persistence-engine name, 1..16 bytes, no NUL. */
export const IPVS_OPT_PE_NAME = 3;
/** Option type bit: the option may be skipped by a receiver that does not know it. */
export const IPVS_OPT_F_PARAM = 1 << (7 - 1);
/** Bytes of the sequence option's data (struct ip_vs_sync_conn_options). */
export const SEQ_OPT_DATA_LEN = 24;
/**
 * Where out_seq starts in the sequence data (in_seq at 0, each a struct ip_vs_seq: be32 init_seq,
 * delta, previous_delta); a v0 record with sequence data carries the same 24 bytes after REC0_LEN.
 */
export const SEQ_OUT = 12;
/** Longest PE data (IP_VS_PEDATA_MAXLEN). */
export const PE_DATA_MAXLEN = 255;
/** Longest PE name (IP_VS_PENAME_MAXLEN). */
export const PE_NAME_MAXLEN = 16;

// ---- version 0 record (struct ip_vs_sync_conn_v0, 24 bytes; IPv4 only) ----
export const REC0_RESERVED = 0;
export const REC0_PROTOCOL = 1;
export const REC0_CPORT = 2;
export const REC0_VPORT = 4;
export const REC0_DPORT = 6;
export const REC0_CADDR = 8;
export const REC0_VADDR = 12;
export const REC0_DADDR = 16;
/** be16: only the low 16 flag bits travel in v0. */
export const REC0_FLAGS = 20;
export const REC0_STATE = 22;
/** Bytes of a v0 record without sequence data (SIMPLE_CONN_SIZE). */
export const REC0_LEN = 24;
/** Bytes of a v0 record with sequence data (FULL_CONN_SIZE): follows when flags & SEQ_MASK. */
export const REC0_FULL_LEN = REC0_LEN + SEQ_OPT_DATA_LEN;

// ---- connection flags (include/uapi/linux/ip_vs.h IP_VS_CONN_F_*) ----
export const CONN_F_FWD_MASK = 0x0007;
export const CONN_F_MASQ = 0x0000;
export const CONN_F_LOCALNODE = 0x0001;
export const CONN_F_TUNNEL = 0x0002;
export const CONN_F_DROUTE = 0x0003;
export const CONN_F_SYNC = 0x0020;
export const CONN_F_HASHED = 0x0040;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_OUT_SEQ = 0x0200;
export const CONN_F_IN_SEQ = 0x0400;
export const CONN_F_SEQ_MASK = 0x0600;
export const CONN_F_NO_CPORT = 0x0800;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;
/** Flags a backup takes from a record (IP_VS_CONN_F_BACKUP_MASK). */
export const CONN_F_BACKUP_MASK = CONN_F_FWD_MASK | CONN_F_NOOUTPUT | CONN_F_INACTIVE | CONN_F_SEQ_MASK | CONN_F_NO_CPORT | CONN_F_TEMPLATE;
/** Flags a backup updates on a connection it already has (IP_VS_CONN_F_BACKUP_UPD_MASK). */
export const CONN_F_BACKUP_UPD_MASK = CONN_F_INACTIVE | CONN_F_SEQ_MASK;

// ---- protocols and the number of states a backup accepts for each (ip_vs_proto_get, num_states) ----
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_SCTP = 132;
/** IP_VS_TCP_S_LAST. */
export const TCP_STATE_COUNT = 11;
/** IP_VS_UDP_S_LAST. */
export const UDP_STATE_COUNT = 1;
/** IP_VS_SCTP_S_LAST. */
export const SCTP_STATE_COUNT = 13;
/** AH and ESP have one state. */
export const AH_ESP_STATE_COUNT = 1;
/** Template states: NONE, ASSURED (IP_VS_CTPL_S_LAST = 2). */
export const TEMPLATE_STATE_COUNT = 2;

/** Number of states the kernel knows for a protocol; 0 for a protocol IPVS does not handle. */
export function protocolStateCount(protocol: number): number {
  switch (protocol) {
    case IPPROTO_TCP:
      return TCP_STATE_COUNT;
    case IPPROTO_UDP:
      return UDP_STATE_COUNT;
    case IPPROTO_SCTP:
      return SCTP_STATE_COUNT;
    case IPPROTO_AH:
    case IPPROTO_ESP:
      return AH_ESP_STATE_COUNT;
    default:
      return 0;
  }
}

// ---- sync_maxlen (start_sync_thread) ----
/** Largest UDP payload of an IPv4 datagram: the upper bound of --sync-maxlen in ipvsadm. */
export const SYNC_MAXLEN_LIMIT = 65507;
/** IPv4 + UDP header bytes, IPv6 + UDP header bytes. */
const HLEN_V4 = 20 + 8,
  HLEN_V6 = 40 + 8;

/**
 * The sync_maxlen the kernel uses (start_sync_thread): given, it is clamped to [1 (master) or 1024
 * (backup), 65535 - IP/UDP headers]; not given (0), the master uses 1500 - headers (1472 over IPv4)
 * whatever the interface MTU, and the backup its interface MTU clamped to [1500, 65535] - headers.
 */
export function syncMaxlen(role: "master" | "backup", requested: number, ifaceMtu: number, groupFamily: 4 | 6): number {
  const hlen = groupFamily === 6 ? HLEN_V6 : HLEN_V4;
  if (requested > 0) {
    const min = role === "backup" ? 1024 : 1;
    return Math.min(Math.max(requested, min), 65535 - hlen);
  }
  const mtu = role === "backup" ? Math.min(Math.max(ifaceMtu, 1500), 65535) : 1500;
  return mtu - hlen;
}

// ---- decoded forms ----

/** struct ip_vs_seq as synced: initial sequence number and the current and previous deltas. */
export interface SeqAdjust {
  initSeq: number;
  delta: number;
  previousDelta: number;
}

/** One option of a v1 record, as it was on the wire (type byte including IPVS_OPT_F_PARAM). */
export interface SyncOption {
  type: number;
  data: Uint8Array;
}

/** One connection (or persistence template) as a sync record describes it. */
export interface SyncConn {
  /** 0 or 1: the message version it came in / goes out in. */
  version: 0 | 1;
  family: 4 | 6;
  protocol: number;
  /** IP_VS_CONN_F_* as sent (v0 carries only the low 16 bits). */
  flags: number;
  state: number;
  cport: number;
  vport: number;
  dport: number;
  /** v1 only (0 in v0). */
  fwmark: number;
  /** v1 only, seconds (0 in v0: the backup then uses the protocol's timeout for the state). */
  timeoutSec: number;
  /** Canonical text (dotted quad / RFC 5952). */
  caddr: string;
  vaddr: string;
  daddr: string;
  /** Sequence adjustment (FTP helper), when the record carries it. */
  inSeq?: SeqAdjust;
  outSeq?: SeqAdjust;
  /** Persistence-engine data and name (v1), when present. */
  peData?: Uint8Array;
  peName?: string;
  /**
   * v1: the options exactly as they were on the wire (order, type bytes, skipped optional ones), so
   * that a decoded record re-encodes to its own bytes. When absent the encoder writes the kernel's
   * options from inSeq/outSeq/peData/peName (ip_vs_sync_conn's order: seq, pe data, pe name).
   */
  options?: SyncOption[];
}
