/** Ethernet II header access over a DataView of the UMEM (or any frame buffer). */
import { ETH_DST, ETH_SRC, ETH_TYPE } from "./fields.ts";

/** Return the EtherType. */
export function etherType(dv: DataView, off: number): number {
  return dv.getUint16(off + ETH_TYPE);
}

/** Set the EtherType. */
export function setEtherType(dv: DataView, off: number, v: number): void {
  dv.setUint16(off + ETH_TYPE, v);
}

/**
 * Set the destination MAC from a (hi16, lo32) pair: MACs are kept as two int32 words in
 * the dataplane tables so that no per-packet byte array is needed.
 */
export function setDstMac(dv: DataView, off: number, hi16: number, lo32: number): void {
  dv.setUint16(off + ETH_DST, hi16);
  dv.setUint32(off + ETH_DST + 2, lo32);
}

/** Set the source MAC from a (hi16, lo32) pair. */
export function setSrcMac(dv: DataView, off: number, hi16: number, lo32: number): void {
  dv.setUint16(off + ETH_SRC, hi16);
  dv.setUint32(off + ETH_SRC + 2, lo32);
}

/** Return the high 16 bits of the source MAC. */
export function srcMacHi(dv: DataView, off: number): number {
  return dv.getUint16(off + ETH_SRC);
}

/** Return the low 32 bits of the source MAC (as int32). */
export function srcMacLo(dv: DataView, off: number): number {
  return dv.getInt32(off + ETH_SRC + 2);
}

/** Return the high 16 bits of the destination MAC. */
export function dstMacHi(dv: DataView, off: number): number {
  return dv.getUint16(off + ETH_DST);
}

/** Return the low 32 bits of the destination MAC (as int32). */
export function dstMacLo(dv: DataView, off: number): number {
  return dv.getInt32(off + ETH_DST + 2);
}

/** Swap source and destination MACs in place (for frames sent back where they came from). */
export function swapMacs(dv: DataView, off: number): void {
  const dh = dv.getUint16(off + ETH_DST),
    dl = dv.getInt32(off + ETH_DST + 2);
  dv.setUint16(off + ETH_DST, dv.getUint16(off + ETH_SRC));
  dv.setInt32(off + ETH_DST + 2, dv.getInt32(off + ETH_SRC + 2));
  dv.setUint16(off + ETH_SRC, dh);
  dv.setInt32(off + ETH_SRC + 2, dl);
}

/** Parse "aa:bb:cc:dd:ee:ff" into [hi16, lo32]; slow path. */
export function macWords(mac: string | Uint8Array): [number, number] {
  const b = typeof mac === "string" ? mac.split(":").map((x) => parseInt(x, 16)) : Array.from(mac);
  if (b.length !== 6 || b.some((x) => !(x >= 0 && x <= 255))) throw new Error(`bad MAC address ${String(mac)}`);
  return [(b[0] << 8) | b[1], (b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5] | 0];
}

/** Format a [hi16, lo32] MAC pair as text; slow path. */
export function macText(hi16: number, lo32: number): string {
  const b = [hi16 >>> 8, hi16 & 0xff, (lo32 >>> 24) & 0xff, (lo32 >>> 16) & 0xff, (lo32 >>> 8) & 0xff, lo32 & 0xff];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}
