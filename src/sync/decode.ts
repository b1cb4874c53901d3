/**
 * Decoder of IPVS sync messages (the backup side of net/netfilter/ipvs/ip_vs_sync.c:
 * ip_vs_process_message, ip_vs_process_message_v0, ip_vs_proc_sync_conn). Input is hostile: every
 * read is bounds-checked first, nothing throws, and a record is returned only when all of its bytes
 * were inside the message and every field was in range. Each thing not taken gets one SyncDrop,
 * counted in the caller's SyncRxCounters. Slow path (the sync socket's reader), allocation is fine.
 */
import * as ipv4 from "../wire/ipv4.ts";
import * as ipv6 from "../wire/ipv6.ts";
import { SyncDrop, type SyncRxCounters, endsMessage } from "./drops.ts";
import {
  CONN_F_SEQ_MASK,
  CONN_F_TEMPLATE,
  IPVS_OPT_F_PARAM,
  IPVS_OPT_PE_DATA,
  IPVS_OPT_PE_NAME,
  IPVS_OPT_SEQ_DATA,
  MSG0_NR_CONNS,
  MSG_NR_CONNS,
  MSG_RESERVED,
  MSG_SIZE,
  MSG_SPARE,
  MSG_SYNCID,
  MSG_V0_HLEN,
  MSG_V1_HLEN,
  MSG_VERSION,
  PE_NAME_MAXLEN,
  REC0_CADDR,
  REC0_CPORT,
  REC0_DADDR,
  REC0_DPORT,
  REC0_FLAGS,
  REC0_FULL_LEN,
  REC0_LEN,
  REC0_PROTOCOL,
  REC0_RESERVED,
  REC0_STATE,
  REC0_VADDR,
  REC0_VPORT,
  REC_CADDR,
  REC_CPORT,
  REC_DPORT,
  REC_FLAGS,
  REC_FWMARK,
  REC_PROTOCOL,
  REC_STATE,
  REC_TIMEOUT,
  REC_TYPE,
  REC_V4_LEN,
  REC_V6_LEN,
  REC_VER_SIZE,
  REC_VPORT,
  SEQ_OPT_DATA_LEN,
  SEQ_OUT,
  STYPE_F_INET6,
  SVER_MASK,
  SVER_SHIFT,
  SYNC_PROTO_VER,
  type SeqAdjust,
  type SyncConn,
  type SyncOption,
  TEMPLATE_STATE_COUNT,
  protocolStateCount,
} from "./format.ts";

/** What the receiver is configured with. */
export interface SyncRxConfig {
  /** The backup's sync id; 0 accepts every sync id (ip_vs_process_message). */
  syncid: number;
  /** Receive buffer size (the backup's sync_maxlen); longer datagrams are dropped. 0 = no limit. */
  maxlen: number;
  /** Optional: is there a service for this record? A record for none is skipped (REC_NO_SERVICE). */
  hasService?: (conn: SyncConn) => boolean;
}

/** A record taken, with where its bytes are in the message (without the padding after it). */
export interface DecodedRecord {
  conn: SyncConn;
  offset: number;
  length: number;
}

/** A record not taken. */
export interface RecordDrop {
  /** Index of the record in the message (0-based). */
  index: number;
  offset: number;
  reason: SyncDrop;
}

/** Everything the decoder learned from one datagram. */
export interface SyncDecodeResult {
  /** 0 or 1 once the header was read; -1 when the message was dropped before. */
  version: number;
  syncid: number;
  /** Records the header announced. */
  nrConns: number;
  records: DecodedRecord[];
  /** Records skipped and the error that ended the message, in order. */
  drops: RecordDrop[];
  /** The message-level reason, when the whole message (or its tail) was dropped; else null. */
  messageDrop: SyncDrop | null;
  /** Records announced but not read because the message ended early. */
  unread: number;
  /** Bytes after the last announced record (kernel ignores them; counted as MSG_TRAILING_BYTES). */
  trailingBytes: number;
}

/** Decode one sync datagram (its UDP payload). Never throws. */
export function decodeSyncMessage(buf: Uint8Array, cfg: SyncRxConfig, counters?: SyncRxCounters): SyncDecodeResult {
  const res: SyncDecodeResult = {
    version: -1,
    syncid: -1,
    nrConns: 0,
    records: [],
    drops: [],
    messageDrop: null,
    unread: 0,
    trailingBytes: 0,
  };
  const len = buf.length;
  if (counters) counters.messages++;
  const fail = (r: SyncDrop): SyncDecodeResult => {
    res.messageDrop = r;
    if (counters) counters.drop(r);
    return res;
  };
  if (len < MSG_V0_HLEN) return fail(SyncDrop.MSG_TOO_SHORT);
  if (cfg.maxlen > 0 && len > cfg.maxlen) return fail(SyncDrop.MSG_OVERSIZED);
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  if (dv.getUint16(MSG_SIZE) !== len) return fail(SyncDrop.MSG_SIZE_MISMATCH);
  const syncid = buf[MSG_SYNCID];
  res.syncid = syncid;
  if (cfg.syncid !== 0 && syncid !== cfg.syncid) return fail(SyncDrop.MSG_OTHER_SYNCID);

  // ip_vs_process_message: a v1 header has reserved 0, version 1, spare 0; anything else is read as
  // v0, where byte 0 is nr_conns. A first byte of 0 that is not v1 would be an empty v0 message,
  // which no kernel sends (it creates a buffer only to put a record in it): an unknown version.
  const isV1 = len >= MSG_V1_HLEN && buf[MSG_RESERVED] === 0 && buf[MSG_VERSION] === SYNC_PROTO_VER && dv.getUint16(MSG_SPARE) === 0;
  if (!isV1 && buf[MSG0_NR_CONNS] === 0) return fail(SyncDrop.MSG_UNKNOWN_VERSION);
  if (isV1) decodeV1(buf, dv, cfg, res);
  else decodeV0(buf, dv, cfg, res);

  if (res.trailingBytes > 0 && res.messageDrop === null) res.drops.push({ index: -1, offset: len - res.trailingBytes, reason: SyncDrop.MSG_TRAILING_BYTES });
  if (counters) {
    for (const d of res.drops) counters.drop(d.reason);
    counters.recordsAccepted += res.records.length;
    counters.recordsUnread += res.unread;
    if (res.records.length > 0) counters.messagesAccepted++;
  }
  return res;
}

/** Record the error that ends the message at record `i`; the rest is unread. */
function endAt(res: SyncDecodeResult, i: number, offset: number, reason: SyncDrop): void {
  res.drops.push({ index: i, offset, reason });
  res.messageDrop = reason;
  res.unread = res.nrConns - i - 1;
}

function decodeV1(buf: Uint8Array, dv: DataView, cfg: SyncRxConfig, res: SyncDecodeResult): void {
  const len = buf.length;
  res.version = 1;
  res.nrConns = buf[MSG_NR_CONNS];
  let next = MSG_V1_HLEN;
  for (let i = 0; i < res.nrConns; i++) {
    const p = next;
    // the kernel checks room for an IPv4 record first, whatever the type
    if (p + REC_V4_LEN > len) {
      endAt(res, i, p, SyncDrop.FRAME_TRUNCATED);
      return;
    }
    const verSize = dv.getUint16(p + REC_VER_SIZE);
    const size = verSize & SVER_MASK;
    if (p + size > len) {
      endAt(res, i, p, SyncDrop.FRAME_OVERRUN);
      return;
    }
    if (verSize >>> SVER_SHIFT !== 0) {
      endAt(res, i, p, SyncDrop.FRAME_RECORD_VERSION);
      return;
    }
    const r = readRecordV1(buf, dv, p, p + size);
    if (typeof r === "number") {
      if (endsMessage(r)) {
        endAt(res, i, p, r);
        return;
      }
      res.drops.push({ index: i, offset: p, reason: r });
    } else {
      takeRecord(res, cfg, i, p, r, size);
    }
    // records start 4-byte aligned: the sender pads before the next one (ip_vs_sync_conn)
    next = p + ((size + 3) & ~3);
  }
  if (next < len) res.trailingBytes = len - next;
}

/** Read one v1 record in [p, end); a SyncDrop when it is not taken. */
function readRecordV1(buf: Uint8Array, dv: DataView, p: number, end: number): SyncConn | SyncDrop {
  const type = buf[p + REC_TYPE];
  let family: 4 | 6;
  let fixed: number;
  if (type === STYPE_F_INET6) {
    family = 6;
    fixed = REC_V6_LEN;
  } else if (type === 0) {
    family = 4;
    fixed = REC_V4_LEN;
  } else {
    return SyncDrop.FRAME_BAD_TYPE;
  }
  if (p + fixed > end) return SyncDrop.FRAME_RECORD_SHORT;

  const options: SyncOption[] = [];
  let inSeq: SeqAdjust | undefined, outSeq: SeqAdjust | undefined;
  let peData: Uint8Array | undefined, peName: string | undefined;
  let unknownMandatory = false;
  let q = p + fixed;
  while (q < end) {
    if (q + 2 > end) return SyncDrop.FRAME_OPTION_TRUNCATED;
    const ptype = buf[q];
    const plen = buf[q + 1];
    q += 2;
    if (plen === 0 || q + plen > end) return SyncDrop.FRAME_OPTION_LENGTH;
    const data = buf.slice(q, q + plen);
    switch (ptype & ~IPVS_OPT_F_PARAM) {
      case IPVS_OPT_SEQ_DATA:
        if (plen !== SEQ_OPT_DATA_LEN || inSeq) return SyncDrop.FRAME_SEQ_OPTION;
        inSeq = readSeq(dv, q);
        outSeq = readSeq(dv, q + SEQ_OUT);
        break;
      case IPVS_OPT_PE_DATA:
        if (peData) return SyncDrop.FRAME_PE_DATA;
        peData = data;
        break;
      case IPVS_OPT_PE_NAME:
        if (plen > PE_NAME_MAXLEN || peName !== undefined) return SyncDrop.FRAME_PE_NAME;
        peName = latin1(data);
        break;
      default:
        // the kernel stops reading this record at an unknown mandatory option; a later framing
        // error in it therefore does not end the message: skip the record, keep reading the message
        if ((ptype & IPVS_OPT_F_PARAM) === 0) unknownMandatory = true;
    }
    if (unknownMandatory) return SyncDrop.REC_UNKNOWN_OPTION;
    options.push({ type: ptype, data });
    q += plen;
  }

  const flags = dv.getUint32(p + REC_FLAGS);
  const protocol = buf[p + REC_PROTOCOL];
  const state = dv.getUint16(p + REC_STATE);
  const bad = checkProtoState(flags, protocol, state);
  if (bad !== null) return bad;
  if (peData && peName === undefined) return SyncDrop.REC_PE_WITHOUT_NAME;

  const a = p + REC_CADDR;
  const conn: SyncConn = {
    version: 1,
    family,
    protocol,
    flags,
    state,
    cport: dv.getUint16(p + REC_CPORT),
    vport: dv.getUint16(p + REC_VPORT),
    dport: dv.getUint16(p + REC_DPORT),
    fwmark: dv.getUint32(p + REC_FWMARK),
    timeoutSec: dv.getUint32(p + REC_TIMEOUT),
    caddr: family === 4 ? addr4(dv, a) : addr6(dv, a),
    vaddr: family === 4 ? addr4(dv, a + 4) : addr6(dv, a + 16),
    daddr: family === 4 ? addr4(dv, a + 8) : addr6(dv, a + 32),
    options,
  };
  if (inSeq) {
    conn.inSeq = inSeq;
    conn.outSeq = outSeq;
  }
  if (peData) conn.peData = peData;
  if (peName !== undefined) conn.peName = peName;
  return conn;
}

function decodeV0(buf: Uint8Array, dv: DataView, cfg: SyncRxConfig, res: SyncDecodeResult): void {
  const len = buf.length;
  res.version = 0;
  res.nrConns = buf[MSG0_NR_CONNS];
  let p = MSG_V0_HLEN;
  for (let i = 0; i < res.nrConns; i++) {
    if (p + REC0_LEN > len) {
      endAt(res, i, p, SyncDrop.FRAME_TRUNCATED);
      return;
    }
    const flags = dv.getUint16(p + REC0_FLAGS);
    const size = (flags & CONN_F_SEQ_MASK) !== 0 ? REC0_FULL_LEN : REC0_LEN;
    if (p + size > len) {
      endAt(res, i, p, SyncDrop.FRAME_TRUNCATED);
      return;
    }
    const r = readRecordV0(buf, dv, p, size);
    if (typeof r === "number") res.drops.push({ index: i, offset: p, reason: r });
    else takeRecord(res, cfg, i, p, r, size);
    p += size;
  }
  if (p < len) res.trailingBytes = len - p;
}

/** Read one v0 record of `size` bytes (REC0_LEN, or REC0_FULL_LEN with sequence data) at p. */
function readRecordV0(buf: Uint8Array, dv: DataView, p: number, size: number): SyncConn | SyncDrop {
  const flags = dv.getUint16(p + REC0_FLAGS);
  const protocol = buf[p + REC0_PROTOCOL];
  const state = dv.getUint16(p + REC0_STATE);
  const bad = checkProtoState(flags, protocol, state);
  if (bad !== null) return bad;
  if (buf[p + REC0_RESERVED] !== 0) return SyncDrop.REC_V0_RESERVED;
  const conn: SyncConn = {
    version: 0,
    family: 4,
    protocol,
    flags,
    state,
    cport: dv.getUint16(p + REC0_CPORT),
    vport: dv.getUint16(p + REC0_VPORT),
    dport: dv.getUint16(p + REC0_DPORT),
    fwmark: 0,
    timeoutSec: 0,
    caddr: addr4(dv, p + REC0_CADDR),
    vaddr: addr4(dv, p + REC0_VADDR),
    daddr: addr4(dv, p + REC0_DADDR),
  };
  if (size === REC0_FULL_LEN) {
    // v0 copies struct ip_vs_seq as the kernel holds it: network order, like v1's option
    conn.inSeq = readSeq(dv, p + REC0_LEN);
    conn.outSeq = readSeq(dv, p + REC0_LEN + SEQ_OUT);
  }
  return conn;
}

/** A record read whole is taken, or skipped when the receiver has no service for it (both versions). */
function takeRecord(res: SyncDecodeResult, cfg: SyncRxConfig, i: number, p: number, conn: SyncConn, size: number): void {
  if (cfg.hasService && !cfg.hasService(conn)) res.drops.push({ index: i, offset: p, reason: SyncDrop.REC_NO_SERVICE });
  else res.records.push({ conn, offset: p, length: size });
}

/** The protocol/state checks of ip_vs_proc_sync_conn (templates: state < IP_VS_CTPL_S_LAST). */
function checkProtoState(flags: number, protocol: number, state: number): SyncDrop | null {
  if ((flags & CONN_F_TEMPLATE) !== 0) return state < TEMPLATE_STATE_COUNT ? null : SyncDrop.REC_TEMPLATE_STATE;
  const n = protocolStateCount(protocol);
  if (n === 0) return SyncDrop.REC_PROTOCOL;
  return state < n ? null : SyncDrop.REC_STATE;
}

function readSeq(dv: DataView, at: number): SeqAdjust {
  return { initSeq: dv.getUint32(at), delta: dv.getInt32(at + 4), previousDelta: dv.getInt32(at + 8) };
}

function addr4(dv: DataView, at: number): string {
  return ipv4.addrText(dv.getUint32(at));
}

function addr6(dv: DataView, at: number): string {
  return ipv6.addrText([dv.getInt32(at), dv.getInt32(at + 4), dv.getInt32(at + 8), dv.getInt32(at + 12)]);
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}
