/**
 * Encoder of IPVS sync messages, packing records the way the master does (ip_vs_sync_conn,
 * ip_vs_sync_conn_v0, ip_vs_sync_buff_create*): a message is opened for the first record and holds
 * at most sync_maxlen bytes (or the one record, if that alone is larger); a record that does not fit,
 * or one of the other version, closes it. v1 records start 4-byte aligned (zero padding before the
 * next record, none after the last); v0 carries IPv4 only. Which connections are sent, and when a
 * half-full message leaves, is decided by policy.ts. Slow path.
 */
import * as ipv4 from "../wire/ipv4.ts";
import * as ipv6 from "../wire/ipv6.ts";
import {
  CONN_F_SEQ_MASK,
  IPVS_OPT_PE_DATA,
  IPVS_OPT_PE_NAME,
  IPVS_OPT_SEQ_DATA,
  MSG0_NR_CONNS,
  MSG0_SIZE,
  MSG0_SYNCID,
  MSG_NR_CONNS,
  MSG_SIZE,
  MSG_SYNCID,
  MSG_V0_HLEN,
  MSG_V1_HLEN,
  MSG_VERSION,
  PE_DATA_MAXLEN,
  PE_NAME_MAXLEN,
  REC0_CADDR,
  REC0_CPORT,
  REC0_DADDR,
  REC0_DPORT,
  REC0_FLAGS,
  REC0_FULL_LEN,
  REC0_LEN,
  REC0_PROTOCOL,
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
  SYNC_PROTO_VER,
  type SeqAdjust,
  type SyncConn,
  type SyncOption,
} from "./format.ts";

/** Most records one message can count (nr_conns is a u8). */
export const MAX_RECORDS_PER_MESSAGE = 255;

/**
 * The options a v1 record carries: its own `options` when it has them (a decoded record), else the
 * kernel's choice (ip_vs_sync_conn): sequence data when a SEQ flag is set, PE data then PE name.
 */
export function recordOptions(c: SyncConn): SyncOption[] {
  if (c.options) return c.options;
  const out: SyncOption[] = [];
  if ((c.flags & CONN_F_SEQ_MASK) !== 0) {
    const d = new Uint8Array(SEQ_OPT_DATA_LEN);
    const dv = new DataView(d.buffer);
    writeSeq(dv, 0, c.inSeq);
    writeSeq(dv, SEQ_OUT, c.outSeq);
    out.push({ type: IPVS_OPT_SEQ_DATA, data: d });
  }
  if (c.peData && c.peData.length > 0) {
    out.push({ type: IPVS_OPT_PE_DATA, data: c.peData });
    if (c.peName) out.push({ type: IPVS_OPT_PE_NAME, data: latin1Bytes(c.peName) });
  }
  return out;
}

/** Encode one v1 record (without padding); null when it cannot be (bad address, options too long). */
export function encodeRecordV1(c: SyncConn): Uint8Array | null {
  const fixed = c.family === 6 ? REC_V6_LEN : REC_V4_LEN;
  const opts = recordOptions(c);
  let size = fixed;
  for (const o of opts) {
    if (o.data.length === 0 || o.data.length > 255) return null;
    if (o.type === IPVS_OPT_PE_NAME && o.data.length > PE_NAME_MAXLEN) return null;
    if (o.type === IPVS_OPT_PE_DATA && o.data.length > PE_DATA_MAXLEN) return null;
    size += 2 + o.data.length;
  }
  if (size > SVER_MASK) return null;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b[REC_TYPE] = c.family === 6 ? STYPE_F_INET6 : 0;
  b[REC_PROTOCOL] = c.protocol & 0xff;
  dv.setUint16(REC_VER_SIZE, size); // version nibble 0
  dv.setUint32(REC_FLAGS, c.flags >>> 0);
  dv.setUint16(REC_STATE, c.state & 0xffff);
  dv.setUint16(REC_CPORT, c.cport & 0xffff);
  dv.setUint16(REC_VPORT, c.vport & 0xffff);
  dv.setUint16(REC_DPORT, c.dport & 0xffff);
  dv.setUint32(REC_FWMARK, c.fwmark >>> 0);
  dv.setUint32(REC_TIMEOUT, c.timeoutSec >>> 0);
  const step = c.family === 6 ? 16 : 4;
  if (
    !writeAddr(dv, REC_CADDR, c.family, c.caddr) ||
    !writeAddr(dv, REC_CADDR + step, c.family, c.vaddr) ||
    !writeAddr(dv, REC_CADDR + 2 * step, c.family, c.daddr)
  )
    return null;
  let q = fixed;
  for (const o of opts) {
    b[q] = o.type;
    b[q + 1] = o.data.length;
    b.set(o.data, q + 2);
    q += 2 + o.data.length;
  }
  return b;
}

/** Encode one v0 record (24 bytes, 48 with sequence data); null for IPv6 or a bad address. */
export function encodeRecordV0(c: SyncConn): Uint8Array | null {
  if (c.family !== 4) return null;
  const withSeq = (c.flags & CONN_F_SEQ_MASK) !== 0;
  const b = new Uint8Array(withSeq ? REC0_FULL_LEN : REC0_LEN);
  const dv = new DataView(b.buffer);
  b[REC0_PROTOCOL] = c.protocol & 0xff;
  dv.setUint16(REC0_CPORT, c.cport & 0xffff);
  dv.setUint16(REC0_VPORT, c.vport & 0xffff);
  dv.setUint16(REC0_DPORT, c.dport & 0xffff);
  if (!writeAddr(dv, REC0_CADDR, 4, c.caddr) || !writeAddr(dv, REC0_VADDR, 4, c.vaddr) || !writeAddr(dv, REC0_DADDR, 4, c.daddr)) return null;
  dv.setUint16(REC0_FLAGS, c.flags & 0xffff);
  dv.setUint16(REC0_STATE, c.state & 0xffff);
  if (withSeq) {
    writeSeq(dv, REC0_LEN, c.inSeq);
    writeSeq(dv, REC0_LEN + SEQ_OUT, c.outSeq);
  }
  return b;
}

/** Encode one record in the given message version. */
export function encodeRecord(c: SyncConn, version: 0 | 1): Uint8Array | null {
  return version === 1 ? encodeRecordV1(c) : encodeRecordV0(c);
}

/**
 * The master's current message and the ones it closed. `add` appends a record as ip_vs_sync_conn
 * does and returns the messages that closed on the way; `take` closes the current one (the master
 * thread sends it when it is IPVS_SYNC_FLUSH_TIME old, policy.ts flushDue).
 */
export class SyncMessageBuilder {
  private buf: Uint8Array | null = null;
  private dv: DataView | null = null;
  private version: 0 | 1 = 1;
  private head = 0;
  private nr = 0;
  /** When the current message got its first record (ms, the caller's clock); -1 without one. */
  firstUseMs = -1;
  /** Records that could not be encoded (IPv6 in v0, bad addresses, options too long). */
  unencodable = 0;

  constructor(
    private readonly syncid: number,
    private readonly maxlen: number,
  ) {}

  /** Bytes the current message holds so far (0 without one). */
  get size(): number {
    return this.buf ? this.head : 0;
  }

  /** Append one record in `version`; returns the messages closed to make room (0 or 1). */
  add(c: SyncConn, version: 0 | 1, nowMs = 0): Uint8Array[] {
    const rec = encodeRecord(c, version);
    if (!rec) {
      this.unencodable++;
      return [];
    }
    const closed: Uint8Array[] = [];
    const len = rec.length;
    let pad = 0;
    if (this.buf) {
      pad = version === 1 ? (4 - this.head) & 3 : 0;
      // a message of the other version is sent first (ip_vs_sync_conn: "Send buffer if it is for v0")
      if (this.head + pad + len > this.buf.length || this.version !== version || this.nr === MAX_RECORDS_PER_MESSAGE) {
        closed.push(this.close());
        pad = 0;
      }
    }
    if (!this.buf) this.open(version, len, nowMs);
    const b = this.buf as Uint8Array;
    b.fill(0, this.head, this.head + pad);
    this.head += pad;
    b.set(rec, this.head);
    this.head += len;
    this.nr++;
    const dv = this.dv as DataView;
    if (version === 1) {
      b[MSG_NR_CONNS] = this.nr;
      dv.setUint16(MSG_SIZE, this.head);
    } else {
      b[MSG0_NR_CONNS] = this.nr;
      dv.setUint16(MSG0_SIZE, this.head);
    }
    return closed;
  }

  /** Close and return the current message (null when there is none). */
  take(): Uint8Array | null {
    return this.buf ? this.close() : null;
  }

  private open(version: 0 | 1, recLen: number, nowMs: number): void {
    const hlen = version === 1 ? MSG_V1_HLEN : MSG_V0_HLEN;
    // ip_vs_sync_buff_create: room for max(this record + header, sync_maxlen)
    this.buf = new Uint8Array(Math.max(recLen + hlen, this.maxlen));
    this.dv = new DataView(this.buf.buffer);
    this.version = version;
    this.nr = 0;
    this.head = hlen;
    this.firstUseMs = nowMs;
    if (version === 1) {
      this.buf[MSG_SYNCID] = this.syncid;
      this.buf[MSG_VERSION] = SYNC_PROTO_VER; // reserved and spare stay 0
    } else {
      this.buf[MSG0_SYNCID] = this.syncid;
    }
  }

  private close(): Uint8Array {
    const out = (this.buf as Uint8Array).slice(0, this.head);
    this.buf = null;
    this.dv = null;
    this.head = 0;
    this.nr = 0;
    this.firstUseMs = -1;
    return out;
  }
}

/** Pack records into messages as the master would, all in one version; the last one is closed too. */
export function encodeSyncMessages(conns: readonly SyncConn[], opts: { syncid: number; maxlen: number; version: 0 | 1 }): Uint8Array[] {
  const b = new SyncMessageBuilder(opts.syncid, opts.maxlen);
  const out: Uint8Array[] = [];
  for (const c of conns) out.push(...b.add(c, opts.version));
  const last = b.take();
  if (last) out.push(last);
  return out;
}

function writeSeq(dv: DataView, at: number, s: SeqAdjust | undefined): void {
  dv.setUint32(at, s ? s.initSeq >>> 0 : 0);
  dv.setUint32(at + 4, s ? s.delta >>> 0 : 0);
  dv.setUint32(at + 8, s ? s.previousDelta >>> 0 : 0);
}

function writeAddr(dv: DataView, at: number, family: 4 | 6, text: string): boolean {
  if (family === 4) {
    const v = ipv4.parseAddr(text);
    if (v === null) return false;
    dv.setUint32(at, v >>> 0);
    return true;
  }
  const w = ipv6.parseAddr(text);
  if (w === null) return false;
  for (let i = 0; i < 4; i++) dv.setUint32(at + 4 * i, w[i] >>> 0);
  return true;
}

function latin1Bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}
