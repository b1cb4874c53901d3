/**
 * Hostile frame generator for the fast-path fuzzer. One generator serves both drivers:
 *
 * - the property tests (fast-check) hand it a `Choices` list of integers (fast-check shrinks the
 *   list towards fewer and smaller numbers, and choice 0 is always the plainest option, so a
 *   failing case shrinks to a near-valid frame);
 * - the 10M-frame benchmark hands it a seeded `Rng`.
 *
 * Frames are written into a caller's buffer (no per-frame allocation in the benchmark). Addresses
 * come from small pools matching `fuzzModel()` and the namespace lab (198.18.0.0/15,
 * 2001:db8::/32) so that frames hit services, connections, replies and fragment records, and are
 * then broken in every way the issue lists: truncation, bad version/IHL/total length, options,
 * fragment shapes, bad, zero and partial (offloaded) checksums, odd TCP flags and data offsets, UDP length mismatch,
 * ICMP errors embedding garbage, VLAN tags, IPv6 extension headers, unknown ethertypes, random
 * byte flips and corpus frames.
 */
import { checksum, fold, pseudoSumV4, pseudoSumV6 } from "../../src/wire/checksum.ts";
import { crc32c } from "../../src/wire/crc32c.ts";

/** Source of choices: an integer in 0..n-1. */
export interface Chooser {
  int(n: number): number;
}

/** Seeded PRNG (mulberry32): deterministic runs for the benchmark. */
export class Rng implements Chooser {
  private s: number;
  constructor(seed: number) {
    this.s = seed | 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
}

/** A fixed list of choices (from fast-check); 0 once exhausted. */
export class Choices implements Chooser {
  private i = 0;
  constructor(private readonly list: number[]) {}
  int(n: number): number {
    if (n <= 1 || this.i >= this.list.length) return 0;
    return this.list[this.i++] % n;
  }
}

// ---- address pools (int32 words, network order as DataView reads them) ----
const v4 = (a: number, b: number, c: number, d: number) => (a << 24) | (b << 16) | (c << 8) | d | 0;
export const VIP = v4(198, 18, 0, 100);
export const VIP2 = v4(198, 18, 0, 101);
export const CLIENTS = [v4(198, 18, 1, 2), v4(198, 18, 1, 3), v4(198, 19, 7, 9)];
export const REALS = [v4(198, 18, 2, 11), v4(198, 18, 2, 12), v4(198, 18, 2, 13)];
/** (proto, port) of the services on VIP; replies come from REALS on the same port. */
export const SERVICES: [number, number][] = [
  [6, 80],
  [6, 7000],
  [17, 9000],
  [132, 80],
];
export const VIP6 = [0x20010db8, 0x01000000, 0, 0x100];
export const CLIENT6 = [0x20010db8, 0x00010000, 0, 2];
export const REAL6 = [0x20010db8, 0x00020000, 0, 0x11];
const CPORTS = [40000, 40001, 40002, 40003];
const IP_IDS = [1, 2, 3, 0x1234];

/** Frame scratch size: larger than any generated frame. */
export const MAX_FRAME = 3000;

/** Corpus frames for the "corpus" kind (set by the driver). */
export interface Corpus {
  frames: Uint8Array[];
}

const ETH = 14;

/** Writes frames into `out` (MAX_FRAME bytes). */
export class FrameGen {
  readonly out = new Uint8Array(MAX_FRAME);
  readonly dv = new DataView(this.out.buffer);
  /** Histogram of generated kinds (for the benchmark's report). */
  readonly kinds = new Float64Array(KIND_NAMES.length);
  constructor(private readonly corpus: Corpus = { frames: [] }) {}

  private eth(type: number): void {
    const o = this.out;
    o[0] = 0x02;
    o[1] = 0;
    o[2] = 0;
    o[3] = 0;
    o[4] = 0x0a;
    o[5] = 0;
    o[6] = 0x02;
    o[7] = 0;
    o[8] = 0;
    o[9] = 0;
    o[10] = 0;
    o[11] = 0xfe;
    this.dv.setUint16(12, type);
  }

  private pick(c: Chooser, pool: number[]): number {
    return pool[c.int(pool.length)];
  }

  /** Random bytes. */
  private fill(c: Chooser, off: number, len: number): void {
    for (let i = 0; i < len; i++) this.out[off + i] = c.int(256);
  }

  /** Payload: mostly a pattern, sometimes random bytes. */
  private payload(c: Chooser, off: number, len: number): void {
    if (c.int(4) === 3) this.fill(c, off, len);
    else for (let i = 0; i < len; i++) this.out[off + i] = (0x41 + i) & 0xff;
  }

  private ipv4Header(c: Chooser, l3: number, src: number, dst: number, proto: number, l4len: number, fragWord: number, id: number): number {
    const o = this.out,
      dv = this.dv;
    // options: none mostly; NOPs + EOL, a record-route, or random bytes
    let optLen = 0;
    const oc = c.int(8);
    if (oc === 5) optLen = 4;
    else if (oc === 6) optLen = 12;
    else if (oc === 7) optLen = 4 * (1 + c.int(10));
    const ihl = 20 + optLen;
    o[l3] = 0x40 | (ihl >>> 2);
    o[l3 + 1] = c.int(6) === 5 ? c.int(256) : 0;
    dv.setUint16(l3 + 2, ihl + l4len);
    dv.setUint16(l3 + 4, id);
    dv.setUint16(l3 + 6, fragWord);
    o[l3 + 8] = c.int(10) === 9 ? c.int(3) : 64;
    o[l3 + 9] = proto;
    dv.setUint16(l3 + 10, 0);
    dv.setInt32(l3 + 12, src);
    dv.setInt32(l3 + 16, dst);
    if (oc === 5) {
      o[l3 + 20] = 1;
      o[l3 + 21] = 1;
      o[l3 + 22] = 1;
      o[l3 + 23] = 0;
    } else if (oc === 6) {
      o[l3 + 20] = 7;
      o[l3 + 21] = 11;
      o[l3 + 22] = 4;
      for (let i = 23; i < 32; i++) o[l3 + i] = 0;
    } else if (oc === 7) this.fill(c, l3 + 20, optLen);
    return ihl;
  }

  private ipv4Csum(l3: number): void {
    const ihl = (this.out[l3] & 15) << 2;
    this.dv.setUint16(l3 + 10, 0);
    this.dv.setUint16(l3 + 10, checksum(this.out, l3, ihl));
  }

  /** TCP/UDP/SCTP header + payload at l4; returns its length. Checksum computed later. */
  private l4(c: Chooser, l4: number, proto: number, sport: number, dport: number, plen: number): number {
    const o = this.out,
      dv = this.dv;
    dv.setUint16(l4, sport);
    dv.setUint16(l4 + 2, dport);
    if (proto === 6) {
      dv.setInt32(l4 + 4, 1000 + c.int(5));
      dv.setInt32(l4 + 8, c.int(3));
      const fc = c.int(10);
      // flags: SYN, ACK, PSH|ACK, FIN|ACK, RST, SYN|ACK, then odd combinations
      const flags = fc < 6 ? [0x02, 0x10, 0x18, 0x11, 0x04, 0x12][fc] : fc === 6 ? 0 : fc === 7 ? 0x3f : c.int(256);
      const optLen = c.int(5) === 4 ? 4 * c.int(11) : 0;
      const doff = 20 + optLen;
      o[l4 + 12] = (doff >>> 2) << 4;
      if (c.int(12) === 11) o[l4 + 12] = c.int(16) << 4; // odd data offset
      o[l4 + 13] = flags;
      dv.setUint16(l4 + 14, 65535);
      dv.setUint16(l4 + 16, 0);
      dv.setUint16(l4 + 18, 0);
      for (let i = 0; i < optLen; i++) o[l4 + 20 + i] = i === 0 ? 2 : 1;
      this.payload(c, l4 + doff, plen);
      return doff + plen;
    }
    if (proto === 17) {
      let ulen = 8 + plen;
      const lc = c.int(10);
      if (lc === 8)
        ulen = c.int(8); // below the header
      else if (lc === 9) ulen = 8 + plen + 1 + c.int(100); // beyond the datagram
      dv.setUint16(l4 + 4, ulen);
      dv.setUint16(l4 + 6, 0);
      this.payload(c, l4 + 8, plen);
      return 8 + plen;
    }
    // SCTP: common header (verification tag); the CRC32c left 0 (what a sender offloading it
    // leaves: xvs completes it), correct, or wrong (xvs recomputes it only on a port change)
    dv.setInt32(l4 + 4, 0x01020304);
    dv.setInt32(l4 + 8, 0);
    this.payload(c, l4 + 12, plen);
    const crc = c.int(3);
    if (crc === 1) dv.setUint32(l4 + 8, crc32c(o, l4, 12 + plen), true);
    else if (crc === 2) dv.setInt32(l4 + 8, 1 + c.int(0x7ffffffe));
    return 12 + plen;
  }

  private l4Csum(c: Chooser, v6: boolean, l3: number, l4: number, proto: number, l4len: number): void {
    const co = proto === 6 ? 16 : proto === 17 ? 6 : proto === 58 || proto === 1 ? 2 : -1;
    if (co < 0 || l4len < co + 2) return;
    // 0..5 correct, 6 bad, 7 zero, 8 partial (TCP/UDP: the folded pseudo-header sum a sender
    // offloading its checksum leaves, CHECKSUM_PARTIAL; ICMP has none: correct)
    const mode = c.int(9);
    this.dv.setUint16(l4 + co, 0);
    let sum = 0;
    const pseudo =
      proto === 1
        ? 0
        : v6
          ? pseudoSumV6(this.out, l3 + 8, l3 + 24, proto, l4len)
          : pseudoSumV4(this.dv.getInt32(l3 + 12), this.dv.getInt32(l3 + 16), proto, l4len);
    if (mode === 8 && (proto === 6 || proto === 17)) {
      sum = fold(pseudo);
    } else if (mode < 6 || mode === 8) {
      sum = checksum(this.out, l4, l4len, pseudo);
      if (proto === 17 && sum === 0) sum = 0xffff;
    } else if (mode === 6) {
      sum = 1 + c.int(0xfffe);
    }
    this.dv.setUint16(l4 + co, sum);
  }

  /** An IPv4 TCP/UDP/SCTP packet of a flow; returns the frame length. */
  private flow4(c: Chooser, reply: boolean): number {
    this.eth(0x0800);
    const svc = SERVICES[c.int(SERVICES.length)];
    const proto = c.int(8) === 7 ? 6 : svc[0];
    const client = c.int(16) === 15 ? c.int(0x7fffffff) : this.pick(c, CLIENTS);
    const cport = c.int(8) === 7 ? c.int(65536) : this.pick(c, CPORTS);
    const vip = c.int(8) === 7 ? VIP2 : VIP;
    const rs = this.pick(c, REALS);
    const plen = c.int(4) === 3 ? c.int(1400) : c.int(64);
    const src = reply ? rs : client,
      dst = reply ? client : vip;
    const sport = reply ? svc[1] : cport,
      dport = reply ? cport : svc[1];
    const df = c.int(3) === 2 ? 0x4000 : 0;
    const l3 = ETH;
    const ihl = this.ipv4Header(c, l3, src, dst, proto, 0, df, this.pick(c, IP_IDS));
    const l4len = this.l4(c, l3 + ihl, proto, sport, dport, plen);
    this.dv.setUint16(l3 + 2, ihl + l4len);
    this.l4Csum(c, false, l3, l3 + ihl, proto, l4len);
    this.ipv4Csum(l3);
    return ETH + ihl + l4len;
  }

  /** One fragment of a datagram (first, middle, last, overlapping, tiny, oversized, duplicate). */
  private fragment(c: Chooser): number {
    this.eth(0x0800);
    const svc = SERVICES[c.int(SERVICES.length)];
    const reply = c.int(4) === 3;
    const client = this.pick(c, CLIENTS),
      cport = this.pick(c, CPORTS),
      rs = this.pick(c, REALS);
    const src = reply ? rs : client,
      dst = reply ? client : VIP;
    const sport = reply ? svc[1] : cport,
      dport = reply ? cport : svc[1];
    const id = this.pick(c, IP_IDS);
    const shape = c.int(8);
    const l3 = ETH;
    let ihl: number, l4len: number;
    if (shape === 0 || shape === 6) {
      // first fragment: L4 header and 8n payload bytes, MF; shape 6: tiny (header cut short)
      ihl = this.ipv4Header(c, l3, src, dst, svc[0], 0, 0x2000, id);
      const full = this.l4(c, l3 + ihl, svc[0], sport, dport, 8 * (1 + c.int(60)));
      this.l4Csum(c, false, l3, l3 + ihl, svc[0], full);
      // the UDP length / checksum describe the whole datagram
      if (svc[0] === 17) this.dv.setUint16(l3 + ihl + 4, full + 8 * c.int(200));
      l4len = shape === 6 ? c.int(svc[0] === 6 ? 20 : 8) : full - (full & 7);
    } else {
      // later fragment: offset k*8, payload; MF except for the last; shape 5: offset 1 (overlap);
      // shape 7: reaching past 65535
      const off = shape === 5 ? 1 : shape === 7 ? 8000 + c.int(191) : 1 + c.int(200);
      const mf = shape === 1 || shape === 2 ? 0x2000 : 0;
      ihl = this.ipv4Header(c, l3, src, dst, svc[0], 0, mf | off, id);
      l4len = c.int(4) === 0 ? 0 : 8 * (1 + c.int(100));
      this.payload(c, l3 + ihl, l4len);
    }
    this.dv.setUint16(l3 + 2, ihl + l4len);
    this.ipv4Csum(l3);
    return ETH + ihl + l4len;
  }

  /** An ICMP(v4) error embedding a real-looking or garbage packet. */
  private icmpError(c: Chooser): number {
    this.eth(0x0800);
    const types = [3, 11, 4, 12, 0, 8, 5];
    const type = types[c.int(types.length)];
    const toClient = c.int(2) === 1;
    const l3 = ETH;
    const outerSrc = toClient ? this.pick(c, REALS) : v4(198, 18, 1, 1);
    const outerDst = toClient ? VIP : this.pick(c, CLIENTS);
    const ihl = this.ipv4Header(c, l3, c.int(6) === 5 ? outerSrc : this.pick(c, CLIENTS), outerDst, 1, 0, 0, 7);
    const ic = l3 + ihl;
    this.out[ic] = type;
    this.out[ic + 1] = c.int(16);
    this.dv.setInt32(ic + 4, c.int(4) === 3 ? 1400 : 0);
    // inner packet: a client->VIP or RS->client header, then 8 bytes of L4; or garbage
    const inner = ic + 8;
    let innerLen: number;
    const ik = c.int(4);
    if (ik === 3) {
      innerLen = c.int(60);
      this.fill(c, inner, innerLen);
    } else {
      const svc = SERVICES[c.int(SERVICES.length)];
      const cl = this.pick(c, CLIENTS),
        cp = this.pick(c, CPORTS);
      const iIhl = this.ipv4Header(c, inner, ik === 1 ? VIP : cl, ik === 1 ? cl : VIP, svc[0], 8, 0, 9);
      this.dv.setUint16(inner + iIhl, ik === 1 ? svc[1] : cp);
      this.dv.setUint16(inner + iIhl + 2, ik === 1 ? cp : svc[1]);
      this.dv.setInt32(inner + iIhl + 4, 0);
      this.ipv4Csum(inner);
      innerLen = iIhl + (c.int(5) === 4 ? c.int(8) : 8);
      if (c.int(6) === 5) this.out[inner] = c.int(256); // broken inner version/IHL
    }
    const l4len = 8 + innerLen;
    this.dv.setUint16(l3 + 2, ihl + l4len);
    this.l4Csum(c, false, l3, ic, 1, l4len);
    this.ipv4Csum(l3);
    return ETH + ihl + l4len;
  }

  /** IPv6: TCP/UDP to the v6 VIP or from its real server, sometimes behind extension headers. */
  private ipv6(c: Chooser): number {
    this.eth(0x86dd);
    const o = this.out,
      dv = this.dv;
    const l3 = ETH;
    const reply = c.int(3) === 2;
    const src = reply ? REAL6 : CLIENT6,
      dst = reply ? CLIENT6 : VIP6;
    const proto = c.int(4) === 3 ? 17 : c.int(8) === 7 ? 58 : 6;
    dv.setInt32(l3, 0x60000000);
    o[l3 + 7] = c.int(10) === 9 ? c.int(2) : 64;
    for (let i = 0; i < 4; i++) {
      dv.setInt32(l3 + 8 + 4 * i, src[i]);
      dv.setInt32(l3 + 24 + 4 * i, dst[i]);
    }
    // extension headers: hop-by-hop 0, routing 43, fragment 44, destination options 60, none 59
    let nhOff = l3 + 6;
    let p = l3 + 40;
    const nExt = c.int(3) === 2 ? 1 + c.int(3) : 0;
    for (let k = 0; k < nExt; k++) {
      const types = [0, 43, 44, 60, 59];
      const t = types[c.int(types.length)];
      o[nhOff] = t;
      if (t === 59) {
        nhOff = -1;
        break;
      }
      const hlen = t === 44 ? 8 : 8 * (1 + c.int(3));
      nhOff = p;
      o[p + 1] = t === 44 ? 0 : hlen / 8 - 1;
      for (let i = 2; i < hlen; i++) o[p + i] = 0;
      if (t === 44) dv.setUint16(p + 2, c.int(2) === 1 ? 0x0001 : c.int(100) << 3);
      p += hlen;
    }
    if (nhOff >= 0) o[nhOff] = proto;
    const port = proto === 17 ? 9000 : 80;
    const cp = this.pick(c, CPORTS);
    let l4len: number;
    if (proto === 58) {
      o[p] = c.int(2) === 1 ? 1 : 128 + c.int(10);
      o[p + 1] = c.int(5);
      dv.setInt32(p + 4, 0);
      const il = c.int(80);
      this.fill(c, p + 8, il);
      l4len = 8 + il;
    } else {
      l4len = this.l4(c, p, proto, reply ? port : cp, reply ? cp : port, c.int(64));
    }
    dv.setUint16(l3 + 4, p - l3 - 40 + l4len);
    if (nExt === 0) this.l4Csum(c, true, l3, p, proto, l4len);
    return p + l4len;
  }

  /** A VLAN / QinQ tagged IPv4 packet. */
  private vlan(c: Chooser): number {
    const n = this.flow4(c, false);
    const o = this.out;
    const tags = c.int(2) === 1 ? 2 : 1;
    o.copyWithin(12 + 4 * tags, 12, n);
    for (let t = 0; t < tags; t++) {
      this.dv.setUint16(12 + 4 * t, t === 0 && tags === 2 ? 0x88a8 : 0x8100);
      this.dv.setUint16(14 + 4 * t, c.int(4096));
    }
    return n + 4 * tags;
  }

  /** Unknown or non-IP ethertypes, ARP included. */
  private otherEthertype(c: Chooser): number {
    const types = [0x0806, 0x88cc, 0x8847, 0x0000, 0xffff, 0x0801, 0x86de];
    this.eth(types[c.int(types.length)]);
    const n = ETH + c.int(100);
    this.fill(c, ETH, n - ETH);
    return n;
  }

  private corpusFrame(c: Chooser): number {
    const fr = this.corpus.frames;
    if (fr.length === 0) return this.flow4(c, false);
    const f = fr[c.int(fr.length)];
    const n = Math.min(f.length, MAX_FRAME);
    this.out.set(f.subarray(0, n), 0);
    return n;
  }

  /**
   * Generate one frame into `out`; returns its length. The kind is chosen first, then hostile
   * edits: byte flips, a header field clobbered, truncation, trailing bytes.
   */
  frame(c: Chooser): number {
    const kind = c.int(KIND_NAMES.length);
    this.kinds[kind] += 1;
    let n: number;
    switch (kind) {
      case 0:
        n = this.flow4(c, false);
        break;
      case 1:
        n = this.flow4(c, true);
        break;
      case 2:
        n = this.fragment(c);
        break;
      case 3:
        n = this.icmpError(c);
        break;
      case 4:
        n = this.ipv6(c);
        break;
      case 5:
        n = this.vlan(c);
        break;
      case 6:
        n = this.otherEthertype(c);
        break;
      case 7:
        n = c.int(200);
        this.fill(c, 0, n);
        break;
      default:
        n = this.corpusFrame(c);
        break;
    }
    const o = this.out;
    // hostile edits (none most of the time, so that deep paths are reached too)
    const e = c.int(16);
    if (e === 1 || e === 2) {
      // flip 1-3 bytes anywhere
      for (let k = 0; k <= c.int(3); k++) o[c.int(n)] ^= 1 + c.int(255);
    } else if (e === 3 && n > ETH) {
      // clobber the IPv4 version/IHL byte or the total length
      if (c.int(2) === 0) o[ETH] = c.int(256);
      else this.dv.setUint16(ETH + 2, c.int(65536));
    } else if (e === 4) {
      n = c.int(n + 1); // truncate at any length
    } else if (e === 5) {
      const extra = c.int(64); // Ethernet padding / trailing garbage
      this.fill(c, n, extra);
      n += extra;
    }
    return n;
  }
}

export const KIND_NAMES = [
  "tcp/udp/sctp to VIP",
  "reply from real server",
  "IPv4 fragment",
  "ICMP error",
  "IPv6",
  "VLAN/QinQ",
  "other ethertype",
  "random bytes",
  "corpus",
];
