/**
 * Internet checksum (RFC 1071) over packet bytes, and incremental updates (RFC 1624, eqn. 3:
 * HC' = ~(~HC + ~m + m')), so a rewrite of an address or port never re-reads the payload.
 * All values are plain numbers; sums are folded to 16 bits before they are stored.
 */

/** Return the ones'-complement sum (unfolded, < 2^32 for one packet) of `len` bytes at `off`, added to `sum`. */
export function sumBytes(b: Uint8Array, off: number, len: number, sum: number): number {
  // A packet has at most 32K words: their sum stays below 2^32, which fold() handles.
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (len & 1) sum += b[end] << 8;
  return sum;
}

/** Fold a 32-bit ones'-complement sum to 16 bits. */
export function fold(sum: number): number {
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum & 0xffff;
}

/** Return the checksum (complemented fold) of `len` bytes at `off`, seeded with `sum`. */
export function checksum(b: Uint8Array, off: number, len: number, sum = 0): number {
  return ~fold(sumBytes(b, off, len, sum)) & 0xffff;
}

/**
 * Return the checksum field after a 16-bit word of the covered data changed from `oldV` to
 * `newV` (RFC 1624 eqn. 3). `csum` is the stored checksum field.
 */
export function csumReplace16(csum: number, oldV: number, newV: number): number {
  let s = (~csum & 0xffff) + (~oldV & 0xffff) + (newV & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Return the checksum field after a 32-bit word (an IPv4 address) changed. */
export function csumReplace32(csum: number, oldV: number, newV: number): number {
  let s = (~csum & 0xffff) + (~oldV & 0xffff) + (~(oldV >>> 16) & 0xffff) + (newV & 0xffff) + ((newV >>> 16) & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Return the ones'-complement sum of an IPv4 pseudo-header (RFC 793 / 768). */
export function pseudoSumV4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/** Return the ones'-complement sum of an IPv6 pseudo-header (RFC 8200 §8.1), the addresses
 * read from the packet at `srcOff` and `dstOff`. */
export function pseudoSumV6(b: Uint8Array, srcOff: number, dstOff: number, proto: number, len: number): number {
  let s = sumBytes(b, srcOff, 16, 0);
  s = sumBytes(b, dstOff, 16, s);
  return s + (len >>> 16) + (len & 0xffff) + proto;
}

/**
 * Return the ones'-complement sum of a pseudo-header whose addresses are given as 8 int32 words
 * at `at` in `words`: source then destination, 4 words each, an IPv4 address in the first word
 * of its 4 with the other 3 zero (the flow row's layout, wire/flow.ts). Equals pseudoSumV4 /
 * pseudoSumV6 for the same packet, from typed-array loads only (the fast path's).
 */
export function pseudoSumWords(words: Int32Array, at: number, proto: number, len: number): number {
  let s = (len >>> 16) + (len & 0xffff) + proto;
  for (let k = at, end = at + 8; k < end; k++) {
    const w = words[k];
    s += (w >>> 16) + (w & 0xffff);
  }
  return s;
}
