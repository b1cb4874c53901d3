/**
 * Synthetic frames for `xvs bench`: the generator's template and the microbenchmarks' input.
 * Slow path (built once); the microbenchmark refresh loop writes fields in place.
 */
import { fillHeaderChecksum, parseAddr } from "../../wire/ipv4.ts";

export const ETH_HLEN = 14;
export const IP_HLEN = 20;
export const UDP_HLEN = 8;
export const TCP_HLEN = 20;
/** Smallest frame the builders make: Ethernet + IPv4 + UDP + 8 bytes of payload (padded to 60 by Ethernet anyway). */
export const MIN_FRAME = 50;

export interface FrameSpec {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Ethernet frame length without FCS (64 = the classic minimum frame, 1514 = a 1500-byte IP packet). */
  size: number;
  proto?: "udp" | "tcp";
  /** TCP flags (SYN = 0x02, ACK = 0x10). */
  tcpFlags?: number;
}

/** Parse "aa:bb:cc:dd:ee:ff". */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address '${s}'`);
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

export function macString(m: Uint8Array): string {
  return [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

function addr(s: string): number {
  const v = parseAddr(s);
  if (v === null) throw new Error(`bad IPv4 address '${s}'`);
  return v;
}

/** Write one IPv4 UDP (or TCP) frame at `off` of `buf`; returns its length. UDP checksum 0 (none). */
export function writeFrame(buf: Uint8Array, off: number, f: FrameSpec): number {
  const proto = f.proto ?? "udp";
  const l4h = proto === "tcp" ? TCP_HLEN : UDP_HLEN;
  const size = Math.max(f.size, ETH_HLEN + IP_HLEN + l4h);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf.fill(0, off, off + size);
  buf.set(f.dstMac, off);
  buf.set(f.srcMac, off + 6);
  dv.setUint16(off + 12, 0x0800);
  const ip = off + ETH_HLEN;
  const tot = size - ETH_HLEN;
  buf[ip] = 0x45;
  dv.setUint16(ip + 2, tot);
  dv.setUint16(ip + 4, 0x1234);
  dv.setUint16(ip + 6, 0x4000); // DF
  buf[ip + 8] = 64;
  buf[ip + 9] = proto === "tcp" ? 6 : 17;
  dv.setInt32(ip + 12, addr(f.src));
  dv.setInt32(ip + 16, addr(f.dst));
  fillHeaderChecksum(buf, dv, ip);
  const l4 = ip + IP_HLEN;
  dv.setUint16(l4, f.sport);
  dv.setUint16(l4 + 2, f.dport);
  if (proto === "udp") {
    dv.setUint16(l4 + 4, tot - IP_HLEN);
    dv.setUint16(l4 + 6, 0);
  } else {
    dv.setUint32(l4 + 4, 1);
    buf[l4 + 12] = 5 << 4;
    buf[l4 + 13] = f.tcpFlags ?? 0x10;
    dv.setUint16(l4 + 14, 65535);
  }
  return size;
}

/** One frame in its own buffer. */
export function buildFrame(f: FrameSpec): Uint8Array {
  const buf = new Uint8Array(Math.max(f.size, ETH_HLEN + IP_HLEN + TCP_HLEN));
  const n = writeFrame(buf, 0, f);
  return buf.slice(0, n);
}
