/** ICMP (RFC 792) and ICMPv6 (RFC 4443) header access. */
import { ICMP_CODE, ICMP_CSUM, ICMP_REST, ICMP_TYPE } from "./fields.ts";

/** Return the type. */
export function type(dv: DataView, off: number): number {
  return dv.getUint8(off + ICMP_TYPE);
}

/** Return the code. */
export function code(dv: DataView, off: number): number {
  return dv.getUint8(off + ICMP_CODE);
}

/** Return the checksum field. */
export function checksumField(dv: DataView, off: number): number {
  return dv.getUint16(off + ICMP_CSUM);
}

/** Return the next-hop MTU of a "fragmentation needed" message (low half of the rest word). */
export function nextHopMtu(dv: DataView, off: number): number {
  return dv.getUint16(off + ICMP_REST + 2);
}

/** Return the MTU of an ICMPv6 "packet too big" message. */
export function mtuV6(dv: DataView, off: number): number {
  return dv.getUint32(off + ICMP_REST);
}
