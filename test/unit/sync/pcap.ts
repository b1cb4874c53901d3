/**
 * Reads the sync datagrams out of a classic pcap file (tcpdump -w, Ethernet link type) as the
 * kernel sent them: IPv4, UDP, with the outer addresses, TTL and ports, for the fixture tests.
 */
import { readFileSync } from "node:fs";

export interface SyncDatagram {
  /** Capture time in ms since the epoch. */
  timeMs: number;
  src: string;
  dst: string;
  ttl: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** Every UDP-over-IPv4 datagram in the capture. Throws on a file that is not a little-endian pcap. */
export function readSyncPcap(path: string): SyncDatagram[] {
  const d = new Uint8Array(readFileSync(path));
  const dv = new DataView(d.buffer, d.byteOffset, d.length);
  if (dv.getUint32(0, true) !== 0xa1b2c3d4) throw new Error(`${path}: not a microsecond pcap`);
  if (dv.getUint32(20, true) !== 1) throw new Error(`${path}: link type is not Ethernet`);
  const out: SyncDatagram[] = [];
  let o = 24;
  while (o + 16 <= d.length) {
    const sec = dv.getUint32(o, true),
      usec = dv.getUint32(o + 4, true),
      caplen = dv.getUint32(o + 8, true);
    const f = o + 16;
    o = f + caplen;
    if (dv.getUint16(f + 12) !== 0x0800) continue;
    const ip = f + 14;
    const ihl = (d[ip] & 0x0f) * 4;
    if (d[ip + 9] !== 17) continue;
    const totalLen = dv.getUint16(ip + 2);
    const udp = ip + ihl;
    const udpLen = dv.getUint16(udp + 4);
    if (ip + totalLen > o) throw new Error(`${path}: datagram cut by the snap length`);
    out.push({
      timeMs: sec * 1000 + Math.floor(usec / 1000),
      src: [...d.subarray(ip + 12, ip + 16)].join("."),
      dst: [...d.subarray(ip + 16, ip + 20)].join("."),
      ttl: d[ip + 8],
      srcPort: dv.getUint16(udp),
      dstPort: dv.getUint16(udp + 2),
      payload: d.slice(udp + 8, udp + udpLen),
    });
  }
  return out;
}
