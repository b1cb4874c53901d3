/** TCP header access (RFC 9293). */
import { csumReplace16, csumReplace32 } from "./checksum.ts";
import { TCP_CSUM, TCP_DOFF, TCP_DST_PORT, TCP_FLAGS, TCP_SRC_PORT } from "./fields.ts";

/** Return the source port. */
export function srcPort(dv: DataView, off: number): number {
  return dv.getUint16(off + TCP_SRC_PORT);
}

/** Return the destination port. */
export function dstPort(dv: DataView, off: number): number {
  return dv.getUint16(off + TCP_DST_PORT);
}

/** Return the header length in bytes (data offset * 4). */
export function headerLen(dv: DataView, off: number): number {
  return (dv.getUint8(off + TCP_DOFF) >>> 4) << 2;
}

/** Return the flags byte (FIN=0x01 ... URG=0x20, ECE, CWR). */
export function flags(dv: DataView, off: number): number {
  return dv.getUint8(off + TCP_FLAGS);
}

/** Return the checksum field. */
export function checksumField(dv: DataView, off: number): number {
  return dv.getUint16(off + TCP_CSUM);
}

/** Set the source port, fixing the checksum. */
export function setSrcPortFix(dv: DataView, off: number, v: number): void {
  const old = dv.getUint16(off + TCP_SRC_PORT);
  dv.setUint16(off + TCP_SRC_PORT, v);
  dv.setUint16(off + TCP_CSUM, csumReplace16(dv.getUint16(off + TCP_CSUM), old, v));
}

/** Set the destination port, fixing the checksum. */
export function setDstPortFix(dv: DataView, off: number, v: number): void {
  const old = dv.getUint16(off + TCP_DST_PORT);
  dv.setUint16(off + TCP_DST_PORT, v);
  dv.setUint16(off + TCP_CSUM, csumReplace16(dv.getUint16(off + TCP_CSUM), old, v));
}

/** Fix the checksum for an IPv4 address change in the pseudo-header. */
export function fixForAddr(dv: DataView, off: number, oldAddr: number, newAddr: number): void {
  dv.setUint16(off + TCP_CSUM, csumReplace32(dv.getUint16(off + TCP_CSUM), oldAddr, newAddr));
}
