/**
 * IPv4 header access. Addresses are int32 (network order read big-endian), as the
 * dataplane keeps them: `Uint32` values >= 2^31 would become doubles in the JIT.
 */
import { csumReplace16, csumReplace32, checksum } from "./checksum.ts";
import {
  IPV4_CSUM, IPV4_DST, IPV4_FRAG, IPV4_ID, IPV4_MIN_HLEN, IPV4_PROTO, IPV4_SRC, IPV4_TOS, IPV4_TOTAL_LEN, IPV4_TTL,
  IPV4_VER_IHL,
} from "./fields.ts";

/** Return the version nibble. */
export function version(dv: DataView, off: number): number {
  return dv.getUint8(off + IPV4_VER_IHL) >>> 4;
}

/** Return the header length in bytes (IHL * 4). */
export function headerLen(dv: DataView, off: number): number {
  return (dv.getUint8(off + IPV4_VER_IHL) & 0x0f) << 2;
}

/** Return the TOS/DSCP+ECN byte. */
export function tos(dv: DataView, off: number): number {
  return dv.getUint8(off + IPV4_TOS);
}

/** Return the total length field. */
export function totalLen(dv: DataView, off: number): number {
  return dv.getUint16(off + IPV4_TOTAL_LEN);
}

/** Return the identification field. */
export function ident(dv: DataView, off: number): number {
  return dv.getUint16(off + IPV4_ID);
}

/** Return the flags + fragment offset word. */
export function fragWord(dv: DataView, off: number): number {
  return dv.getUint16(off + IPV4_FRAG);
}

/** Return the TTL. */
export function ttl(dv: DataView, off: number): number {
  return dv.getUint8(off + IPV4_TTL);
}

/** Return the protocol number. */
export function protocol(dv: DataView, off: number): number {
  return dv.getUint8(off + IPV4_PROTO);
}

/** Return the header checksum field. */
export function headerChecksum(dv: DataView, off: number): number {
  return dv.getUint16(off + IPV4_CSUM);
}

/** Return the source address as int32. */
export function srcAddr(dv: DataView, off: number): number {
  return dv.getInt32(off + IPV4_SRC);
}

/** Return the destination address as int32. */
export function dstAddr(dv: DataView, off: number): number {
  return dv.getInt32(off + IPV4_DST);
}

/** Set the source address and fix the header checksum incrementally. */
export function setSrcAddrFix(dv: DataView, off: number, v: number): void {
  const old = dv.getInt32(off + IPV4_SRC);
  dv.setInt32(off + IPV4_SRC, v);
  dv.setUint16(off + IPV4_CSUM, csumReplace32(dv.getUint16(off + IPV4_CSUM), old, v));
}

/** Set the destination address and fix the header checksum incrementally. */
export function setDstAddrFix(dv: DataView, off: number, v: number): void {
  const old = dv.getInt32(off + IPV4_DST);
  dv.setInt32(off + IPV4_DST, v);
  dv.setUint16(off + IPV4_CSUM, csumReplace32(dv.getUint16(off + IPV4_CSUM), old, v));
}

/**
 * Decrement the TTL and fix the checksum (RFC 1624: the TTL shares a word with the protocol).
 * Returns the new TTL.
 */
export function decTtlFix(dv: DataView, off: number): number {
  const word = dv.getUint16(off + IPV4_TTL);
  const nw = word - 0x100;
  dv.setUint16(off + IPV4_TTL, nw);
  dv.setUint16(off + IPV4_CSUM, csumReplace16(dv.getUint16(off + IPV4_CSUM), word, nw));
  return nw >>> 8;
}

/** Recompute the header checksum from scratch (for headers the dataplane builds). */
export function fillHeaderChecksum(u8: Uint8Array, dv: DataView, off: number): void {
  dv.setUint16(off + IPV4_CSUM, 0);
  dv.setUint16(off + IPV4_CSUM, checksum(u8, off, headerLen(dv, off)));
}

/**
 * Write a whole IPv4 header without options at `off` (version 4, IHL 5), checksum included:
 * the headers the dataplane builds (ICMP errors, RSTs, tunnel outer headers).
 */
export function writeHeader(u8: Uint8Array, dv: DataView, off: number, tos: number, totalLen: number, id: number, frag: number, ttl: number, proto: number, src: number, dst: number): void {
  u8[off + IPV4_VER_IHL] = 0x45;
  u8[off + IPV4_TOS] = tos;
  dv.setUint16(off + IPV4_TOTAL_LEN, totalLen);
  dv.setUint16(off + IPV4_ID, id);
  dv.setUint16(off + IPV4_FRAG, frag);
  u8[off + IPV4_TTL] = ttl;
  u8[off + IPV4_PROTO] = proto;
  dv.setUint16(off + IPV4_CSUM, 0);
  dv.setInt32(off + IPV4_SRC, src);
  dv.setInt32(off + IPV4_DST, dst);
  dv.setUint16(off + IPV4_CSUM, checksum(u8, off, IPV4_MIN_HLEN));
}

/** Return true when the header checksum verifies. */
export function headerChecksumOk(u8: Uint8Array, dv: DataView, off: number): boolean {
  return checksum(u8, off, headerLen(dv, off)) === 0;
}

/** Parse dotted-quad text to int32; slow path. Returns null when malformed. */
export function parseAddr(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i].length > 1 && m[i][0] === "0")) return null;
    v = (v << 8) | o;
  }
  return v | 0;
}

/** Format an int32 address as dotted quad; slow path. */
export function addrText(v: number): string {
  return `${(v >>> 24) & 0xff}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}
