/**
 * PacketBuilder: synthetic frames for unit and golden tests, with correct lengths and
 * checksums unless told otherwise. Slow path only; allocation is fine here.
 *
 * @example new PacketBuilder().eth().ipv4({ src: "198.18.1.2", dst: "198.18.0.100" }).tcp({ sport: 40000, dport: 80, flags: SYN }).build()
 */
import { checksum, pseudoSumV4, pseudoSumV6 } from "../../src/wire/checksum.ts";
import { parseIp } from "../../src/service/addr.ts";
import { crc32c } from "../../src/wire/crc32c.ts";

export const FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10;

export interface Ipv4Opts {
  src: string;
  dst: string;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  frag?: number;
  options?: number[];
  proto?: number;
}
export interface Ipv6Opts {
  src: string;
  dst: string;
  hopLimit?: number;
  tc?: number;
  nextHeader?: number;
}
export interface TcpOpts {
  sport: number;
  dport: number;
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  options?: number[];
}
export interface UdpOpts {
  sport: number;
  dport: number;
  noChecksum?: boolean;
}

function addrBytes(text: string): number[] {
  const a = parseIp(text);
  if (!a) throw new Error(`bad address ${text}`);
  const out: number[] = [];
  for (let i = 0; i < (a.family === 4 ? 1 : 4); i++) out.push((a.words[i] >>> 24) & 255, (a.words[i] >>> 16) & 255, (a.words[i] >>> 8) & 255, a.words[i] & 255);
  return out;
}

function be16(v: number): number[] {
  return [(v >>> 8) & 255, v & 255];
}

export class PacketBuilder {
  private ethHdr: number[] | null = null;
  private l3: { kind: 4; o: Ipv4Opts } | { kind: 6; o: Ipv6Opts } | null = null;
  private l4: { kind: "tcp"; o: TcpOpts } | { kind: "udp"; o: UdpOpts } | { kind: "raw"; proto: number; bytes: number[] } | null = null;
  private body: number[] = [];

  eth(dst = "02:00:00:00:00:01", src = "02:00:00:00:00:02", type?: number): this {
    const mac = (m: string) => m.split(":").map((x) => parseInt(x, 16));
    this.ethHdr = [...mac(dst), ...mac(src), ...(type !== undefined ? be16(type) : [])];
    return this;
  }
  ipv4(o: Ipv4Opts): this {
    this.l3 = { kind: 4, o };
    return this;
  }
  ipv6(o: Ipv6Opts): this {
    this.l3 = { kind: 6, o };
    return this;
  }
  tcp(o: TcpOpts): this {
    this.l4 = { kind: "tcp", o };
    return this;
  }
  udp(o: UdpOpts): this {
    this.l4 = { kind: "udp", o };
    return this;
  }
  /** Raw L4 bytes with a protocol number (ICMP, unknown protocols). */
  raw(proto: number, bytes: number[]): this {
    this.l4 = { kind: "raw", proto, bytes };
    return this;
  }
  payload(p: string | number[]): this {
    this.body = typeof p === "string" ? [...Buffer.from(p)] : p;
    return this;
  }

  build(): Uint8Array {
    const l3 = this.l3!;
    const v6 = l3.kind === 6;
    const src = addrBytes(l3.o.src),
      dst = addrBytes(l3.o.dst);
    let l4: number[] = [];
    let proto = 0;
    const pseudo = (p: number, len: number) => {
      const b = new Uint8Array([...src, ...dst]);
      if (!v6) return pseudoSumV4(new DataView(b.buffer).getInt32(0), new DataView(b.buffer).getInt32(4), p, len);
      return pseudoSumV6(b, 0, 16, p, len);
    };
    const l = this.l4!;
    if (l.kind === "tcp") {
      proto = 6;
      const opts = l.o.options ?? [];
      const hl = 20 + opts.length;
      l4 = [
        ...be16(l.o.sport),
        ...be16(l.o.dport),
        ...be16((l.o.seq ?? 1000) >>> 16),
        ...be16((l.o.seq ?? 1000) & 0xffff),
        ...be16((l.o.ack ?? 0) >>> 16),
        ...be16((l.o.ack ?? 0) & 0xffff),
        (hl / 4) << 4,
        l.o.flags ?? SYN,
        ...be16(l.o.window ?? 65535),
        0,
        0,
        0,
        0,
        ...opts,
        ...this.body,
      ];
      const c = checksum(new Uint8Array(l4), 0, l4.length, pseudo(6, l4.length));
      l4[16] = c >>> 8;
      l4[17] = c & 255;
    } else if (l.kind === "udp") {
      proto = 17;
      const len = 8 + this.body.length;
      l4 = [...be16(l.o.sport), ...be16(l.o.dport), ...be16(len), 0, 0, ...this.body];
      if (!l.o.noChecksum) {
        let c = checksum(new Uint8Array(l4), 0, l4.length, pseudo(17, l4.length));
        if (c === 0) c = 0xffff;
        l4[6] = c >>> 8;
        l4[7] = c & 255;
      }
    } else {
      proto = l.proto;
      l4 = [...l.bytes, ...this.body];
    }
    let ip: number[];
    if (l3.kind === 4) {
      const o = l3.o;
      const opts = o.options ?? [];
      const ihl = 20 + opts.length;
      const frag = (o.df ? 0x4000 : 0) | (o.frag ?? 0);
      ip = [
        0x40 | (ihl / 4),
        o.tos ?? 0,
        ...be16(ihl + l4.length),
        ...be16(o.id ?? 1),
        ...be16(frag),
        o.ttl ?? 64,
        o.proto ?? proto,
        0,
        0,
        ...src,
        ...dst,
        ...opts,
      ];
      const c = checksum(new Uint8Array(ip), 0, ihl);
      ip[10] = c >>> 8;
      ip[11] = c & 255;
    } else {
      const o = l3.o;
      const tc = o.tc ?? 0;
      ip = [0x60 | (tc >>> 4), (tc & 15) << 4, 0, 0, ...be16(l4.length), o.nextHeader ?? proto, o.hopLimit ?? 64, ...src, ...dst];
    }
    const eth = this.ethHdr ?? [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    const withType = eth.length === 12 ? [...eth, ...be16(v6 ? 0x86dd : 0x0800)] : eth;
    return new Uint8Array([...withType, ...ip, ...l4]);
  }
}

/** Return true when the IPv4 header checksum and the TCP/UDP checksum of a frame verify. */
export function checksumsValid(frame: Uint8Array, off = 0): boolean {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const et = dv.getUint16(off + 12);
  const l3 = off + 14;
  if (et === 0x0800) {
    const ihl = (frame[l3] & 15) * 4;
    if (checksum(frame, l3, ihl) !== 0) return false;
    const tot = dv.getUint16(l3 + 2);
    const proto = frame[l3 + 9];
    const l4 = l3 + ihl,
      l4len = tot - ihl;
    if (proto === 17 && dv.getUint16(l4 + 6) === 0) return true;
    if (proto === 6 || proto === 17) return checksum(frame, l4, l4len, pseudoSumV4(dv.getInt32(l3 + 12), dv.getInt32(l3 + 16), proto, l4len)) === 0;
    if (proto === 1) return checksum(frame, l4, l4len) === 0;
    return true;
  }
  if (et === 0x86dd) {
    const plen = dv.getUint16(l3 + 4),
      nh = frame[l3 + 6];
    if (nh === 6 || nh === 17 || nh === 58) return checksum(frame, l3 + 40, plen, pseudoSumV6(frame, l3 + 8, l3 + 24, nh, plen)) === 0;
    return true;
  }
  return true;
}

/** Offset of the TCP/UDP checksum field of an unfragmented IPv4/IPv6 frame at `off`, and the L4 header and its length (the UDP length for UDP). */
function l4Of(frame: Uint8Array, off: number): { l3: number; l4: number; len: number; proto: number; v6: boolean; field: number } {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const l3 = off + 14;
  const v6 = dv.getUint16(off + 12) === 0x86dd;
  const proto = v6 ? frame[l3 + 6] : frame[l3 + 9];
  const l4 = v6 ? l3 + 40 : l3 + (frame[l3] & 15) * 4;
  let len = v6 ? dv.getUint16(l3 + 4) : dv.getUint16(l3 + 2) - (l4 - l3);
  if (proto === 17) len = dv.getUint16(l4 + 4);
  const field = proto === 6 ? l4 + 16 : proto === 17 ? l4 + 6 : proto === 132 ? l4 + 8 : -1;
  return { l3, l4, len, proto, v6, field };
}

/** The folded pseudo-header sum P of the frame's TCP/UDP packet: what a sender offloading its checksum leaves in the field. */
export function pseudoFold(frame: Uint8Array, off = 0): number {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const p = l4Of(frame, off);
  let s = p.v6 ? pseudoSumV6(frame, p.l3 + 8, p.l3 + 24, p.proto, p.len) : pseudoSumV4(dv.getInt32(p.l3 + 12), dv.getInt32(p.l3 + 16), p.proto, p.len);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The L4 checksum field of a TCP/UDP frame (SCTP: the CRC32c as read little-endian). */
export function l4ChecksumField(frame: Uint8Array, off = 0): number {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const p = l4Of(frame, off);
  return p.proto === 132 ? dv.getUint32(p.field, true) : dv.getUint16(p.field);
}

/**
 * A copy of a TCP/UDP/SCTP frame as a Linux sender with checksum offload (CHECKSUM_PARTIAL, the
 * default on veth) puts it on the wire: the TCP/UDP field holds only the folded pseudo-header
 * sum, not complemented (~csum_tcpudp_magic(saddr, daddr, len, proto, 0)); SCTP's CRC32c is 0.
 */
export function partialChecksum(frame: Uint8Array, off = 0): Uint8Array {
  const f = new Uint8Array(frame);
  const dv = new DataView(f.buffer);
  const p = l4Of(f, off);
  if (p.proto === 132) dv.setUint32(p.field, 0);
  else dv.setUint16(p.field, pseudoFold(f, off));
  return f;
}

/** An SCTP common header (RFC 9260 §3.1) with one DATA-like chunk of `body` bytes, CRC32c filled in (or 0 when `crc` is false). */
export function sctpPacket(sport: number, dport: number, body: number[], crc = true): number[] {
  const b = new Uint8Array(12 + 4 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint32(4, 0x01020304);
  b[12] = 0; // DATA
  dv.setUint16(14, 4 + body.length);
  b.set(body, 16);
  if (crc) dv.setUint32(8, crc32c(b, 0, b.length), true);
  return [...b];
}

/** Does the SCTP packet of an unfragmented IPv4/IPv6 frame carry a correct CRC32c? */
export function sctpCrcValid(frame: Uint8Array, off = 0): boolean {
  const p = l4Of(frame, off);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const l4len = p.v6 ? dv.getUint16(p.l3 + 4) : dv.getUint16(p.l3 + 2) - (p.l4 - p.l3);
  const copy = frame.slice(p.l4, p.l4 + l4len);
  const want = new DataView(copy.buffer).getUint32(8, true);
  new DataView(copy.buffer).setUint32(8, 0);
  return crc32c(copy, 0, copy.length) === want;
}

/**
 * A correct TCP frame (client -> 198.18.0.100:80 or the v6 VIP) whose checksum equals P, so that
 * it reads like a partial one: the last payload word is chosen so that the complement of
 * (pseudo-header + segment) is P.
 */
export function correctFrameWithFieldP(v6: boolean, sport = 40000, flags = PSH | ACK): Uint8Array {
  const make = (w: number) => {
    const payload = [...Buffer.from("GET / HTTP/1.0\r\n\r\n"), w >>> 8, w & 0xff];
    return v6
      ? new PacketBuilder().eth().ipv6({ src: "2001:db8:1::2", dst: "2001:db8:100::100" }).tcp({ sport, dport: 80, flags }).payload(payload).build()
      : new PacketBuilder().eth().ipv4({ src: "198.18.1.2", dst: "198.18.0.100" }).tcp({ sport, dport: 80, flags }).payload(payload).build();
  };
  // with the word 0 the segment sums (with the pseudo-header) to s = ~checksum; the word w makes
  // it s + w, whose complement must be P: s + w = ~P (ones' complement, mod 0xffff)
  const f0 = make(0);
  const s = ~l4ChecksumField(f0) & 0xffff,
    p = pseudoFold(f0);
  const f = make(((~p & 0xffff) - s + 0xffff) % 0xffff);
  if (l4ChecksumField(f) !== pseudoFold(f)) throw new Error("no payload word gives a checksum equal to P");
  return f;
}
