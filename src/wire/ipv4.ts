/**
 * IPv4 header writes that keep the header checksum right (incrementally, RFC 1624, or whole for
 * headers the dataplane builds), and address text. Reads need no accessor: the fast path reads
 * fields at their wire/fields.ts offsets. Addresses are int32 (network order read big-endian),
 * as the dataplane keeps them: `Uint32` values >= 2^31 would become doubles in the JIT.
 */
import { csumReplace16, csumReplace32, checksum } from "./checksum.ts";
import { IPV4_CSUM, IPV4_DST, IPV4_FRAG, IPV4_ID, IPV4_MIN_HLEN, IPV4_PROTO, IPV4_SRC, IPV4_TOS, IPV4_TOTAL_LEN, IPV4_TTL, IPV4_VER_IHL } from "./fields.ts";

/** Return the header length in bytes (IHL * 4). */
export function headerLen(dv: DataView, off: number): number {
  return (dv.getUint8(off + IPV4_VER_IHL) & 0x0f) << 2;
}

/**
 * Set the address at `field` (IPV4_SRC or IPV4_DST) of the header at `off` and fix the header
 * checksum incrementally (RFC 1624). Returns the old address, whose change the caller may owe
 * an L4 checksum too (the pseudo-header: xmit/nat.ts).
 */
export function setAddrFix(dv: DataView, off: number, field: number, v: number): number {
  const old = dv.getInt32(off + field);
  dv.setInt32(off + field, v);
  dv.setUint16(off + IPV4_CSUM, csumReplace32(dv.getUint16(off + IPV4_CSUM), old, v));
  return old;
}

/** Decrement the TTL (the caller checked it is > 1) and fix the checksum (RFC 1624: the TTL shares a word with the protocol). */
export function decTtlFix(dv: DataView, off: number): void {
  const word = dv.getUint16(off + IPV4_TTL);
  const nw = word - 0x100;
  dv.setUint16(off + IPV4_TTL, nw);
  dv.setUint16(off + IPV4_CSUM, csumReplace16(dv.getUint16(off + IPV4_CSUM), word, nw));
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
export function writeHeader(
  u8: Uint8Array,
  dv: DataView,
  off: number,
  tos: number,
  totalLen: number,
  id: number,
  frag: number,
  ttl: number,
  proto: number,
  src: number,
  dst: number,
): void {
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
