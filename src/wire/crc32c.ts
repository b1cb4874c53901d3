/**
 * CRC32c (Castagnoli), the SCTP checksum (RFC 9260 appendix B). SCTP has no pseudo-header, so
 * only a port rewrite changes it, and then it must be recomputed over the whole packet.
 */
const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** Return the CRC32c of `len` bytes at `off` (as uint32). */
export function crc32c(b: Uint8Array, off: number, len: number): number {
  let c = -1;
  for (let i = off, end = off + len; i < end; i++) c = TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Recompute the checksum of the SCTP packet of `len` bytes at `off` (stored little-endian on the wire, per RFC 9260). */
export function fillSctpChecksum(b: Uint8Array, dv: DataView, off: number, len: number): void {
  dv.setUint32(off + 8, 0);
  dv.setUint32(off + 8, crc32c(b, off, len), true);
}
