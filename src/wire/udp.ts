/** UDP header access (RFC 768). A zero checksum means "none" over IPv4 and stays zero. */
import { csumReplace16, csumReplace32 } from "./checksum.ts";
import { UDP_CSUM, UDP_DST_PORT, UDP_LEN, UDP_SRC_PORT } from "./fields.ts";

/** Return the source port. */
export function srcPort(dv: DataView, off: number): number {
  return dv.getUint16(off + UDP_SRC_PORT);
}

/** Return the destination port. */
export function dstPort(dv: DataView, off: number): number {
  return dv.getUint16(off + UDP_DST_PORT);
}

/** Return the length field (header + payload). */
export function length(dv: DataView, off: number): number {
  return dv.getUint16(off + UDP_LEN);
}

/** Return the checksum field. */
export function checksumField(dv: DataView, off: number): number {
  return dv.getUint16(off + UDP_CSUM);
}

/**
 * Store an incrementally updated checksum. RFC 768: a computed 0 is sent as 0xFFFF, and a
 * datagram sent without a checksum (0) keeps none.
 */
function store(dv: DataView, off: number, c: number): void {
  dv.setUint16(off + UDP_CSUM, c === 0 ? 0xffff : c);
}

/** Set the source port, fixing the checksum if there is one. */
export function setSrcPortFix(dv: DataView, off: number, v: number): void {
  const old = dv.getUint16(off + UDP_SRC_PORT);
  dv.setUint16(off + UDP_SRC_PORT, v);
  const c = dv.getUint16(off + UDP_CSUM);
  if (c !== 0) store(dv, off, csumReplace16(c, old, v));
}

/** Set the destination port, fixing the checksum if there is one. */
export function setDstPortFix(dv: DataView, off: number, v: number): void {
  const old = dv.getUint16(off + UDP_DST_PORT);
  dv.setUint16(off + UDP_DST_PORT, v);
  const c = dv.getUint16(off + UDP_CSUM);
  if (c !== 0) store(dv, off, csumReplace16(c, old, v));
}

/** Fix the checksum (if any) for an IPv4 address change in the pseudo-header. */
export function fixForAddr(dv: DataView, off: number, oldAddr: number, newAddr: number): void {
  const c = dv.getUint16(off + UDP_CSUM);
  if (c !== 0) store(dv, off, csumReplace32(c, oldAddr, newAddr));
}
