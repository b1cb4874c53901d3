/**
 * The fuzz rig: two identical in-process fast paths (test/util/harness.ts) fed the same bursts,
 * and the oracle that judges every burst. Used by test/fuzz/*.test.ts (short runs) and
 * bench/fuzz.bench.ts (10 million frames).
 *
 * Layout: frame i of a burst sits in UMEM slot 2i (at HEADROOM), every odd slot is a guard. All
 * bytes outside the frames are filled with a canary, 0xa5 in fast path A and 0x5a in B.
 *
 * The oracle, per burst:
 * 1. no exception escapes processBurst;
 * 2. no out-of-bounds write: every guard slot still holds its canary (a frame may only change
 *    its own slot: in place rewrites, ICMP errors, tunnel headers in the headroom);
 * 3. no out-of-bounds read: A and B, which differ only in the bytes outside the frames, decide
 *    every frame the same way (verdict counters, out port, output bytes);
 * 4. exactly one verdict per frame: the terminal counters (every drop_*, fwd_in, fwd_out,
 *    icmp_forwarded, icmp_pmtu_learned) add up to the burst size, and the frames that leave
 *    number fwd_in + fwd_out + icmp_forwarded + icmp_sent + tcp_reset_sent;
 * 5. every frame that leaves is well formed: IPv4 header checksum valid and lengths consistent;
 *    forwarded frames keep their L4 checksum valid when it was valid (never "repaired" either),
 *    and a partial one (a sender's checksum offload: TCP/UDP field = folded pseudo-header sum,
 *    SCTP CRC 0) leaves completed,
 *    have TTL - 1 and our port's source MAC; an ICMP error we generate has valid checksums and
 *    goes back to the sender; so does a TCP RST we generate, which answers a TCP segment without
 *    RST, from the ports it was sent to, with the sequence numbers RFC 9293 gives;
 * 6. every forwarded frame belongs to a tracked flow: the connection of its input tuple (or, for a
 *    later fragment, of its datagram) exists and names the real server the frame went to.
 */
import * as abi from "../../src/ffi/abi.ts";
import { CONN_CPORT_VPORT, CONN_DADDR, CONN_DPORT, CONN_VADDR, CONN_WORDS } from "../../src/conn/table.ts";
import { Stat, STAT_NAMES } from "../../src/dataplane/verdict.ts";
import { checksum, fold, pseudoSumV4, pseudoSumV6 } from "../../src/wire/checksum.ts";
import { crc32c } from "../../src/wire/crc32c.ts";
import { hashTuple } from "../../src/wire/flow.ts";
import { addrText } from "../../src/wire/ipv4.ts";
import { FRAME_SIZE, HEADROOM, Harness, PORT_MACS } from "../util/harness.ts";
import { type Chooser, type Corpus, FrameGen, MAX_FRAME } from "./gen.ts";

/** Most frames per burst: 2n + 1 slots must fit the harness buffer. */
export const MAX_FUZZ_BURST = (abi.XVS_MAX_BURST >> 1) - 1;
const D = abi.XVS_DESC_WORDS;
const CANARY_A = 0xa5,
  CANARY_B = 0x5a;
const PORT_MAC_BYTES = PORT_MACS.map((m) => m.split(":").map((x) => parseInt(x, 16)));

/** The services of the fuzz model (pools in gen.ts), the lab's addresses. */
export function fuzzModel(h: Harness): void {
  const m = h.model;
  const masq = (address: string, port: number, weight = 1) => ({ address, port, forward: "masq" as const, weight, upperThreshold: 0, lowerThreshold: 0 });
  const svc = (protocol: "tcp" | "udp" | "sctp", address: string, port: number, scheduler: string, persistence?: { timeout: number }) =>
    m.addService({ protocol, address, port, scheduler, onePacket: false, schedFlags: [], ...(persistence ? { persistence } : {}) } as never);
  svc("tcp", "198.18.0.100", 80, "rr");
  for (const r of ["198.18.2.11", "198.18.2.12", "198.18.2.13"]) m.addDest({ protocol: "tcp", address: "198.18.0.100", port: 80 }, masq(r, 80));
  svc("tcp", "198.18.0.100", 7000, "wrr");
  m.addDest({ protocol: "tcp", address: "198.18.0.100", port: 7000 }, masq("198.18.2.11", 7000, 3));
  m.addDest({ protocol: "tcp", address: "198.18.0.100", port: 7000 }, masq("198.18.2.12", 7000, 1));
  svc("udp", "198.18.0.100", 9000, "sh");
  for (const r of ["198.18.2.11", "198.18.2.12", "198.18.2.13"]) m.addDest({ protocol: "udp", address: "198.18.0.100", port: 9000 }, masq(r, 9000));
  svc("sctp", "198.18.0.100", 80, "rr");
  m.addDest({ protocol: "sctp", address: "198.18.0.100", port: 80 }, masq("198.18.2.13", 80));
  svc("tcp", "198.18.0.101", 0, "lc", { timeout: 360 });
  for (const r of ["198.18.2.11", "198.18.2.12"]) m.addDest({ protocol: "tcp", address: "198.18.0.101", port: 0 }, masq(r, 0));
  svc("tcp", "2001:db8:100::100", 80, "rr");
  m.addDest({ protocol: "tcp", address: "2001:db8:100::100", port: 80 }, masq("2001:db8:2::11", 80));
  svc("udp", "2001:db8:100::100", 9000, "rr");
  m.addDest({ protocol: "udp", address: "2001:db8:100::100", port: 9000 }, masq("2001:db8:2::11", 9000));
  h.apply();
}

/** Result of the oracle over one run. */
export interface FuzzReport {
  frames: number;
  bursts: number;
  /** Verdict counters of fast path A, by name. */
  verdicts: Record<string, number>;
  /** Frames that left, by kind of output. */
  outputs: { forwarded: number; icmpGenerated: number; resetGenerated: number };
  /** Oracle violations (first ones with the frame in hex). */
  failures: string[];
  failureCount: number;
  exceptions: number;
}

function hex(b: Uint8Array, off: number, len: number): string {
  return Buffer.from(b.subarray(off, off + Math.min(len, 128))).toString("hex");
}

/** Return 1 when the TCP/UDP checksum of an IPv4/IPv6 packet at l3 verifies, 0 when not, -1 when not applicable. */
function l4Valid(b: Uint8Array, dv: DataView, l3: number, avail: number): number {
  const ver = b[l3] >>> 4;
  if (ver === 4) {
    const ihl = (b[l3] & 15) << 2,
      tot = dv.getUint16(l3 + 2),
      proto = b[l3 + 9];
    if ((dv.getUint16(l3 + 6) & 0x3fff) !== 0 || tot > avail) return -1; // fragments: the checksum spans the datagram
    const l4 = l3 + ihl,
      len = tot - ihl;
    if (proto === 6 && len >= 20) return checksum(b, l4, len, pseudoSumV4(dv.getInt32(l3 + 12), dv.getInt32(l3 + 16), 6, len)) === 0 ? 1 : 0;
    if (proto === 17 && len >= 8) {
      if (dv.getUint16(l4 + 6) === 0) return -1;
      return checksum(b, l4, len, pseudoSumV4(dv.getInt32(l3 + 12), dv.getInt32(l3 + 16), 17, len)) === 0 ? 1 : 0;
    }
    return -1;
  }
  if (ver === 6) {
    const plen = dv.getUint16(l3 + 4),
      nh = b[l3 + 6];
    if (40 + plen > avail) return -1;
    if ((nh === 6 && plen >= 20) || (nh === 17 && plen >= 8)) return checksum(b, l3 + 40, plen, pseudoSumV6(b, l3 + 8, l3 + 24, nh, plen)) === 0 ? 1 : 0;
  }
  return -1;
}

/**
 * Does the packet at l3 carry a partial L4 checksum (a sender's offload, CHECKSUM_PARTIAL) that
 * the fast path must complete? An unfragmented TCP/UDP packet whose field holds the folded
 * pseudo-header sum and does not verify as it is (UDP/IPv4 0 means none); or an unfragmented
 * SCTP packet whose CRC32c is 0 and whose real CRC is not. Written apart from src/wire/partial-csum.ts.
 */
function l4Partial(b: Uint8Array, dv: DataView, l3: number, avail: number): boolean {
  const ver = b[l3] >>> 4;
  let l4: number, len: number, proto: number, pseudo: (n: number) => number;
  if (ver === 4) {
    const ihl = (b[l3] & 15) << 2,
      tot = dv.getUint16(l3 + 2);
    if ((dv.getUint16(l3 + 6) & 0x3fff) !== 0 || tot > avail || tot < ihl) return false;
    proto = b[l3 + 9];
    l4 = l3 + ihl;
    len = tot - ihl;
    pseudo = (n) => pseudoSumV4(dv.getInt32(l3 + 12), dv.getInt32(l3 + 16), proto, n);
  } else if (ver === 6) {
    proto = b[l3 + 6];
    len = dv.getUint16(l3 + 4);
    if (40 + len > avail) return false;
    l4 = l3 + 40;
    pseudo = (n) => pseudoSumV6(b, l3 + 8, l3 + 24, proto, n);
  } else {
    return false;
  }
  if (proto === 132) {
    if (len < 12 || dv.getInt32(l4 + 8) !== 0) return false;
    return crc32c(b, l4, len) !== 0;
  }
  if (proto === 17 && len >= 8) {
    const ulen = dv.getUint16(l4 + 4);
    if (ulen < 8 || ulen > len) return false;
    len = ulen;
    if (ver === 4 && dv.getUint16(l4 + 6) === 0) return false;
  } else if (proto !== 6 || len < 20) {
    return false;
  }
  const field = dv.getUint16(l4 + (proto === 6 ? 16 : 6));
  return field === fold(pseudo(len)) && checksum(b, l4, len, pseudo(len)) !== 0;
}

/** Does the unfragmented SCTP packet at l3 carry a correct CRC32c? */
function sctpValid(b: Uint8Array, dv: DataView, l3: number): boolean {
  const v6 = b[l3] >>> 4 === 6;
  const l4 = v6 ? l3 + 40 : l3 + ((b[l3] & 15) << 2);
  const len = v6 ? dv.getUint16(l3 + 4) : dv.getUint16(l3 + 2) - (l4 - l3);
  const copy = b.slice(l4, l4 + len),
    cdv = new DataView(copy.buffer);
  const want = cdv.getUint32(8, true);
  cdv.setUint32(8, 0);
  return crc32c(copy, 0, copy.length) === want;
}

export class FuzzRig {
  readonly a: Harness;
  readonly b: Harness;
  readonly gen: FrameGen;
  readonly report: FuzzReport;
  private readonly inputs: Uint8Array[] = [];
  private readonly inLens = new Int32Array(MAX_FUZZ_BURST);
  private readonly before = new Float64Array(Stat.Count);
  private readonly beforeB = new Float64Array(Stat.Count);
  private readonly canaryA = Buffer.alloc(FRAME_SIZE, CANARY_A);
  private readonly canaryB = Buffer.alloc(FRAME_SIZE, CANARY_B);
  private readonly terminal: number[] = [];
  private readonly leaving: number[] = [];
  private readonly endpoints = new Map<string, number>();
  private endpointsFor = -1;
  private burstSize = 0;
  /** Ticks advanced per burst (the fast path clock: 10 ms ticks). */
  tickPerBurst = 1;

  constructor(
    corpus?: Corpus,
    connCapacity = 4096,
    readonly maxFailures = 20,
  ) {
    this.a = new Harness(connCapacity);
    this.b = new Harness(connCapacity);
    fuzzModel(this.a);
    fuzzModel(this.b);
    // schedulers that draw random numbers must draw the same ones in A and B
    let ra = 7,
      rb = 7;
    this.a.fp.sched.random = () => (ra = (Math.imul(ra, 1103515245) + 12345) & 0x7fffffff);
    this.b.fp.sched.random = () => (rb = (Math.imul(rb, 1103515245) + 12345) & 0x7fffffff);
    this.gen = new FrameGen(corpus);
    for (let i = 0; i < MAX_FUZZ_BURST; i++) this.inputs.push(new Uint8Array(MAX_FRAME));
    for (let s = 0; s < Stat.Count; s++) {
      const name = STAT_NAMES[s];
      if (name.startsWith("drop_") || name === "fwd_in" || name === "fwd_out" || name === "icmp_forwarded" || name === "icmp_pmtu_learned")
        this.terminal.push(s);
      if (name === "fwd_in" || name === "fwd_out" || name === "icmp_forwarded" || name === "icmp_sent" || name === "tcp_reset_sent") this.leaving.push(s);
    }
    this.report = {
      frames: 0,
      bursts: 0,
      verdicts: {},
      outputs: { forwarded: 0, icmpGenerated: 0, resetGenerated: 0 },
      failures: [],
      failureCount: 0,
      exceptions: 0,
    };
  }

  private fail(msg: string): void {
    this.report.failureCount++;
    if (this.report.failures.length < this.maxFailures) this.report.failures.push(msg);
  }

  private place(h: Harness, canary: number, n: number): void {
    const buf = h.buf;
    buf.fill(canary, 0, (2 * n + 1) * FRAME_SIZE);
    for (let i = 0; i < n; i++) {
      const addr = 2 * i * FRAME_SIZE + HEADROOM;
      buf.set(this.inputs[i].subarray(0, this.inLens[i]), addr);
      h.descs[i * D + abi.XVS_DESC_ADDR] = addr;
      h.descs[i * D + abi.XVS_DESC_LEN] = this.inLens[i];
      h.descs[i * D + abi.XVS_DESC_IN_PORT] = i & 1; // clients on port 0, real servers on port 1 (both seen on either)
      h.descs[i * D + abi.XVS_DESC_OUT_PORT] = abi.XVS_OUT_DROP;
    }
  }

  /**
   * Generate `n` frames and run them as one burst through A and B, then judge. `c` is one
   * chooser for every frame, or one per frame.
   */
  burst(c: Chooser | Chooser[], n: number): void {
    for (let i = 0; i < n; i++) {
      const len = this.gen.frame(Array.isArray(c) ? c[i] : c);
      this.inputs[i].set(this.gen.out.subarray(0, len), 0);
      this.inLens[i] = len;
    }
    this.runPlaced(n);
  }

  /** Run `frames` (given bytes) as one burst. */
  burstOf(frames: Uint8Array[]): void {
    for (let i = 0; i < frames.length; i++) {
      const len = Math.min(frames[i].length, MAX_FRAME);
      this.inputs[i].set(frames[i].subarray(0, len), 0);
      this.inLens[i] = len;
    }
    this.runPlaced(frames.length);
  }

  private runPlaced(n: number): void {
    const A = this.a,
      B = this.b,
      r = this.report;
    this.place(A, CANARY_A, n);
    this.place(B, CANARY_B, n);
    this.before.set(A.counters.verdicts.subarray(0, Stat.Count));
    this.beforeB.set(B.counters.verdicts.subarray(0, Stat.Count));
    A.fp.now = B.fp.now = (A.fp.now + this.tickPerBurst) | 0;
    let threw = false;
    for (const h of [A, B]) {
      try {
        h.fp.processBurst(h.descs, n);
      } catch (e) {
        threw = true;
        r.exceptions++;
        this.fail(`exception: ${e instanceof Error ? e.stack : e} in burst with first frame ${hex(this.inputs[0], 0, this.inLens[0])}`);
      }
    }
    r.frames += n;
    r.bursts++;
    if (threw) return;
    this.checkGuards(A.buf, this.canaryA, n, "A");
    this.checkGuards(B.buf, this.canaryB, n, "B");
    // verdicts: identical in A and B, one terminal each
    const va = A.counters.verdicts,
      vb = B.counters.verdicts;
    for (let s = 0; s < Stat.Count; s++) {
      if (va[s] - this.before[s] !== vb[s] - this.beforeB[s])
        this.fail(`A and B disagree on ${STAT_NAMES[s]}: bytes outside a frame were read (burst of ${n})`);
    }
    let term = 0,
      leave = 0,
      left = 0;
    for (const s of this.terminal) term += va[s] - this.before[s];
    for (const s of this.leaving) leave += va[s] - this.before[s];
    for (let i = 0; i < n; i++) if (A.descs[i * D + abi.XVS_DESC_OUT_PORT] !== abi.XVS_OUT_DROP) left++;
    if (term !== n) this.fail(`${term} terminal verdicts for ${n} frames${n === 1 ? `: ${hex(this.inputs[0], 0, this.inLens[0])}` : ""}`);
    if (leave !== left) this.fail(`${left} frames left but the counters say ${leave}`);
    this.burstSize = n;
    for (let i = 0; i < n; i++) this.checkFrame(i, n);
    // connection timers run between bursts, as in the worker loop
    for (const h of [A, B]) {
      try {
        h.fp.expire();
      } catch (e) {
        r.exceptions++;
        this.fail(`exception in expire(): ${e instanceof Error ? e.stack : e}`);
      }
    }
  }

  private checkGuards(buf: Uint8Array, canary: Buffer, n: number, which: string): void {
    for (let s = 1; s <= 2 * n; s += 2) {
      const slot = buf.subarray(s * FRAME_SIZE, (s + 1) * FRAME_SIZE);
      if (Buffer.compare(slot, canary) !== 0) {
        let k = 0;
        while (slot[k] === canary[0]) k++;
        this.fail(
          `${which}: guard slot ${s} changed at byte ${k} (a write outside frame ${(s - 1) >> 1}'s slot, or ${(s + 1) >> 1}'s): frame ${hex(this.inputs[(s - 1) >> 1], 0, this.inLens[(s - 1) >> 1])}`,
        );
      }
    }
  }

  private checkFrame(i: number, n: number): void {
    const A = this.a,
      B = this.b;
    const portA = A.descs[i * D + abi.XVS_DESC_OUT_PORT],
      portB = B.descs[i * D + abi.XVS_DESC_OUT_PORT];
    const inp = this.inputs[i],
      inLen = this.inLens[i];
    if (portA !== portB) {
      this.fail(`A and B sent frame ${i} to ${portA} / ${portB}: ${hex(inp, 0, inLen)}`);
      return;
    }
    if (portA === abi.XVS_OUT_DROP) return;
    const addr = A.descs[i * D + abi.XVS_DESC_ADDR],
      len = A.descs[i * D + abi.XVS_DESC_LEN];
    if (addr !== B.descs[i * D + abi.XVS_DESC_ADDR] || len !== B.descs[i * D + abi.XVS_DESC_LEN]) {
      this.fail(`A and B disagree on frame ${i}'s output address/length: ${hex(inp, 0, inLen)}`);
      return;
    }
    const slot0 = 2 * i * FRAME_SIZE;
    if (addr < slot0 || addr + len > slot0 + FRAME_SIZE || len < 14) {
      this.fail(`frame ${i} leaves from outside its slot (addr ${addr}, len ${len}): ${hex(inp, 0, inLen)}`);
      return;
    }
    const out = A.buf,
      dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const et = dv.getUint16(addr + 12),
      l3 = addr + 14;
    const icmpGenerated =
      portA === A.descs[i * D + abi.XVS_DESC_IN_PORT] &&
      ((et === 0x0800 && out[l3 + 9] === 1) || (et === 0x86dd && out[l3 + 6] === 58)) &&
      !this.isInputIcmp(inp);
    // A and B must produce the same bytes (ICMP errors we generate carry a global IP id: skip it and the header checksum)
    for (let k = 0; k < len; k++) {
      if (out[addr + k] !== B.buf[addr + k] && !(icmpGenerated && et === 0x0800 && (k === 18 || k === 19 || k === 24 || k === 25))) {
        this.fail(`A and B wrote different bytes at ${k} of frame ${i}: a read outside the frame: ${hex(inp, 0, inLen)}`);
        return;
      }
    }
    const resetGenerated = !icmpGenerated && this.isResetAnswer(i, out, dv, l3, et, portA);
    const mac = PORT_MAC_BYTES[portA];
    if (!icmpGenerated && !resetGenerated && (!mac || mac.some((x, k) => out[addr + 6 + k] !== x))) {
      this.fail(`frame ${i} leaves port ${portA} without that port's source MAC: ${hex(inp, 0, inLen)}`);
    }
    if (et === 0x0800) {
      const ihl = (out[l3] & 15) << 2,
        tot = dv.getUint16(l3 + 2);
      if (out[l3] >>> 4 !== 4 || ihl < 20 || tot < ihl || tot > len - 14) {
        this.fail(`frame ${i} leaves with a broken IPv4 header: ${hex(out, addr, len)} from ${hex(inp, 0, inLen)}`);
        return;
      }
      if (checksum(out, l3, ihl) !== 0) {
        this.fail(`frame ${i} leaves with a bad IPv4 header checksum: ${hex(out, addr, len)} from ${hex(inp, 0, inLen)}`);
        return;
      }
    } else if (et === 0x86dd) {
      if (out[l3] >>> 4 !== 6 || 40 + dv.getUint16(l3 + 4) > len - 14) {
        this.fail(`frame ${i} leaves with a broken IPv6 header: ${hex(out, addr, len)}`);
        return;
      }
    } else {
      this.fail(`frame ${i} leaves with ethertype ${et.toString(16)}: ${hex(out, addr, len)}`);
      return;
    }
    if (icmpGenerated) {
      this.report.outputs.icmpGenerated++;
      this.checkIcmpError(i, out, dv, l3, len - 14, et === 0x86dd);
      return;
    }
    if (resetGenerated) {
      this.report.outputs.resetGenerated++;
      this.checkReset(i, out, dv, l3, et === 0x86dd);
      return;
    }
    this.report.outputs.forwarded++;
    if (this.isInputIcmp(inp)) this.checkIcmpForwarded(i, out, dv, l3, portA);
    else this.checkForwarded(i, n, out, dv, l3, len - 14, portA);
  }

  private isInputIcmp(inp: Uint8Array): boolean {
    const et = (inp[12] << 8) | inp[13];
    return (et === 0x0800 && inp[14 + 9] === 1) || (et === 0x86dd && inp[14 + 6] === 58);
  }

  /**
   * Is the frame leaving its input port a TCP RST from the input's destination back to its
   * source? (A forwarded frame never swaps its addresses.)
   */
  private isResetAnswer(i: number, out: Uint8Array, dv: DataView, l3: number, et: number, port: number): boolean {
    const inp = this.inputs[i],
      idv = new DataView(inp.buffer);
    if (port !== this.a.descs[i * D + abi.XVS_DESC_IN_PORT] || ((inp[12] << 8) | inp[13]) !== et) return false;
    if (et === 0x0800) {
      return (
        out[l3 + 9] === 6 &&
        inp[14 + 9] === 6 &&
        dv.getInt32(l3 + 12) === idv.getInt32(14 + 16) &&
        dv.getInt32(l3 + 16) === idv.getInt32(14 + 12) &&
        (out[l3 + 20 + 13] & 0x04) !== 0
      );
    }
    if (out[l3 + 6] !== 6 || inp[14 + 6] !== 6) return false;
    for (let k = 0; k < 16; k += 4)
      if (dv.getInt32(l3 + 8 + k) !== idv.getInt32(14 + 24 + k) || dv.getInt32(l3 + 24 + k) !== idv.getInt32(14 + 8 + k)) return false;
    return (out[l3 + 40 + 13] & 0x04) !== 0;
  }

  /** A generated RST (xmit/tcp-reset.ts): valid checksum, ports swapped, sequence numbers per RFC 9293 3.10.7.1. */
  private checkReset(i: number, out: Uint8Array, dv: DataView, l3: number, v6: boolean): void {
    const inp = this.inputs[i],
      idv = new DataView(inp.buffer);
    const where = () => `${hex(out, l3 - 14, v6 ? 74 : 54)} from ${hex(inp, 0, this.inLens[i])}`;
    const th = l3 + (v6 ? 40 : 20);
    const il3 = 14,
      il4 = il3 + (v6 ? 40 : (inp[il3] & 15) << 2);
    const ilen = v6 ? 40 + idv.getUint16(il3 + 4) : idv.getUint16(il3 + 2);
    const sum = v6 ? pseudoSumV6(out, l3 + 8, l3 + 24, 6, 20) : pseudoSumV4(dv.getInt32(l3 + 12), dv.getInt32(l3 + 16), 6, 20);
    if (checksum(out, th, 20, sum) !== 0) {
      this.fail(`generated RST with a bad TCP checksum: ${where()}`);
      return;
    }
    const iflags = inp[il4 + 13];
    if (iflags & 0x04) {
      this.fail(`a RST was answered with a RST: ${where()}`);
      return;
    }
    if (dv.getUint16(th) !== idv.getUint16(il4 + 2) || dv.getUint16(th + 2) !== idv.getUint16(il4)) {
      this.fail(`generated RST with the ports not swapped: ${where()}`);
      return;
    }
    const seg = ilen - (il4 - il3) - ((inp[il4 + 12] >>> 4) << 2) + (iflags & 0x02 ? 1 : 0) + (iflags & 0x01 ? 1 : 0);
    const want = iflags & 0x10 ? [idv.getUint32(il4 + 8), 0, 0x04] : [0, (idv.getUint32(il4 + 4) + seg) >>> 0, 0x14];
    const got = [dv.getUint32(th + 4), dv.getUint32(th + 8), out[th + 13]];
    if (got.some((x, k) => x !== want[k])) this.fail(`generated RST with seq/ack/flags ${got} instead of ${want}: ${where()}`);
  }

  private checkIcmpError(i: number, out: Uint8Array, dv: DataView, l3: number, avail: number, v6: boolean): void {
    const inp = this.inputs[i],
      idv = new DataView(inp.buffer);
    if (!v6) {
      const ihl = (out[l3] & 15) << 2,
        tot = dv.getUint16(l3 + 2);
      if (checksum(out, l3 + ihl, tot - ihl) !== 0) this.fail(`generated ICMP error with a bad checksum for ${hex(inp, 0, this.inLens[i])}`);
      if (dv.getInt32(l3 + 16) !== idv.getInt32(14 + 12)) this.fail(`generated ICMP error not addressed to the sender: ${hex(inp, 0, this.inLens[i])}`);
    } else {
      const plen = dv.getUint16(l3 + 4);
      if (checksum(out, l3 + 40, plen, pseudoSumV6(out, l3 + 8, l3 + 24, 58, plen)) !== 0)
        this.fail(`generated ICMPv6 error with a bad checksum for ${hex(inp, 0, this.inLens[i])}`);
    }
    void avail;
  }

  /**
   * A forwarded ICMP error (ip_vs_nat_icmp / ip_vs_out_icmp): valid ICMP checksum, TTL - 1, and
   * its embedded packet, as rewritten, is a packet of a tracked connection: towards a real
   * server it reads as that server's reply (conn OUT entry naming the outer destination), towards
   * a client as the client's packet to the virtual service (conn IN entry naming the outer source).
   */
  private checkIcmpForwarded(i: number, out: Uint8Array, dv: DataView, l3: number, port: number): void {
    const inp = this.inputs[i];
    const where = () => `${hex(out, l3 - 14, 100)} from ${hex(inp, 0, this.inLens[i])}`;
    if (out[l3] >>> 4 !== 4) {
      const plen = dv.getUint16(l3 + 4);
      if (checksum(out, l3 + 40, plen, pseudoSumV6(out, l3 + 8, l3 + 24, 58, plen)) !== 0)
        this.fail(`forwarded ICMPv6 error ${i} with a bad checksum: ${where()}`);
      return;
    }
    const ihl = (out[l3] & 15) << 2,
      tot = dv.getUint16(l3 + 2);
    if (out[l3 + 8] !== inp[14 + 8] - 1) {
      this.fail(`forwarded ICMP error ${i}: TTL ${inp[14 + 8]} -> ${out[l3 + 8]}: ${where()}`);
      return;
    }
    if (checksum(out, l3 + ihl, tot - ihl) !== 0) {
      this.fail(`forwarded ICMP error ${i} with a bad ICMP checksum: ${where()}`);
      return;
    }
    const inner = l3 + ihl + 8;
    if (tot - ihl < 8 + 20 + 4) {
      this.fail(`forwarded ICMP error ${i} too short to embed a packet: ${where()}`);
      return;
    }
    const iihl = (out[inner] & 15) << 2,
      proto = out[inner + 9];
    const s0 = dv.getInt32(inner + 12),
      d0 = dv.getInt32(inner + 16),
      ports = dv.getInt32(inner + iihl);
    const A = this.a;
    if (this.repeated(i, this.burstSize)) return;
    const r = A.conns.lookup(hashTuple(A.conns.seedConn, s0, 0, 0, 0, d0, 0, 0, 0, ports, proto), 0, s0, 0, 0, 0, d0, 0, 0, 0, ports, proto);
    if (r < 0) {
      this.fail(`forwarded ICMP error ${i} embeds a packet of no connection: ${where()}`);
      return;
    }
    const o = (r >> 1) * CONN_WORDS,
      rec = A.conns.rec;
    const ok = port === 1 ? (r & 1) === 1 && rec[o + CONN_DADDR] === dv.getInt32(l3 + 16) : (r & 1) === 0 && rec[o + CONN_VADDR] === dv.getInt32(l3 + 12);
    if (!ok) this.fail(`forwarded ICMP error ${i} does not match the direction/addresses of its connection: ${where()}`);
  }

  /**
   * Does another frame of this burst share an endpoint (address, port, proto) with frame i?
   * Then a later frame may have expired and replaced its connection (conn reuse), and the
   * table no longer shows the one this frame used: the connection check is skipped for it.
   */
  private repeated(i: number, n: number): boolean {
    if (this.endpointsFor !== this.report.bursts) {
      this.endpointsFor = this.report.bursts;
      this.endpoints.clear();
      for (let k = 0; k < n; k++) for (const e of this.ends(k)) this.endpoints.set(e, (this.endpoints.get(e) ?? 0) + 1);
    }
    const mine = this.ends(i).filter((e) => e !== "icmp");
    return mine.some((e) => (this.endpoints.get(e) ?? 0) > (mine[0] === mine[1] ? 2 : 1));
  }

  /** Does another IPv4 frame of this burst have the same two addresses (either way round)? */
  private repeatedPair(i: number, n: number): boolean {
    const a = this.inputs[i];
    for (let k = 0; k < n; k++) {
      if (k === i || this.inLens[k] < 34) continue;
      const b = this.inputs[k];
      let fwd = true,
        rev = true;
      for (let j = 0; j < 4; j++) {
        fwd &&= a[26 + j] === b[26 + j] && a[30 + j] === b[30 + j];
        rev &&= a[26 + j] === b[30 + j] && a[30 + j] === b[26 + j];
      }
      if (fwd || rev) return true;
    }
    return false;
  }

  private ends(k: number): string[] {
    const b = this.inputs[k],
      len = this.inLens[k];
    if (len < 34 || b[12] !== 8 || b[13] !== 0) return [];
    return this.endsAt(b, 14, len);
  }

  private endsAt(b: Uint8Array, l3: number, len: number): string[] {
    const l4 = l3 + ((b[l3] & 15) << 2);
    if (len < l4 + 4 || len < l3 + 20) return [];
    if (b[l3 + 9] === 1 && l3 === 14) return this.endsAt(b, l4 + 8, len).concat(["icmp"]);
    const sp = (b[l4] << 8) | b[l4 + 1],
      dp = (b[l4 + 2] << 8) | b[l4 + 3];
    return [
      `${b[l3 + 12]}.${b[l3 + 13]}.${b[l3 + 14]}.${b[l3 + 15]}:${sp}/${b[l3 + 9]}`,
      `${b[l3 + 16]}.${b[l3 + 17]}.${b[l3 + 18]}.${b[l3 + 19]}:${dp}/${b[l3 + 9]}`,
    ];
  }

  private checkForwarded(i: number, n: number, out: Uint8Array, dv: DataView, l3: number, avail: number, port: number): void {
    const inp = this.inputs[i],
      inLen = this.inLens[i];
    const idv = new DataView(inp.buffer);
    const il3 = 14;
    const v6 = inp[il3] >>> 4 === 6;
    const where = () => `${hex(out, l3 - 14, avail + 14)} from ${hex(inp, 0, inLen)}`;
    if (!v6) {
      const inTtl = inp[il3 + 8],
        outTtl = out[l3 + 8];
      if (outTtl !== inTtl - 1) {
        this.fail(`forwarded frame ${i}: TTL ${inTtl} -> ${outTtl}: ${where()}`);
        return;
      }
      const fragWord = idv.getUint16(il3 + 6);
      const later = (fragWord & 0x1fff) !== 0;
      const proto = inp[il3 + 9];
      const src = idv.getInt32(il3 + 12),
        dst = idv.getInt32(il3 + 16);
      const osrc = dv.getInt32(l3 + 12),
        odst = dv.getInt32(l3 + 16);
      const iihl = (inp[il3] & 15) << 2,
        oihl = (out[l3] & 15) << 2;
      const vin = l4Valid(inp, idv, il3, inLen - 14),
        vout = l4Valid(out, dv, l3, avail);
      const partial = l4Partial(inp, idv, il3, inLen - 14);
      if ((partial && proto !== 132 ? 1 : vin) !== vout) {
        this.fail(`forwarded frame ${i}: L4 checksum validity ${vin} -> ${vout}${partial ? " (a partial checksum, to be completed)" : ""}: ${where()}`);
        return;
      }
      if (partial && proto === 132 && !sctpValid(out, dv, l3)) {
        this.fail(`forwarded frame ${i}: SCTP CRC32c left 0 (partial), not completed: ${where()}`);
        return;
      }
      const ports = later ? 0 : idv.getInt32(il3 + iihl);
      const A = this.a;
      if (later) {
        if (this.repeatedPair(i, n)) return;
        const fr = A.fp.frag.table.find(src, dst, (idv.getUint16(il3 + 4) << 8) | proto, A.fp.now);
        if (fr < 0) {
          this.fail(`later fragment ${i} forwarded without a fragment record: ${where()}`);
          return;
        }
        const id = A.fp.frag.table.conn[fr] >> 1,
          o = id * CONN_WORDS,
          rec = A.conns.rec;
        const toReal = (A.fp.frag.table.conn[fr] & 1) === 0;
        if (toReal ? rec[o + CONN_DADDR] !== odst || osrc !== src : rec[o + CONN_VADDR] !== osrc || odst !== dst) {
          this.fail(`later fragment ${i} forwarded to ${addrText(odst)} from ${addrText(osrc)}, not its connection's: ${where()}`);
          return;
        }
        return;
      }
      if (this.repeated(i, n)) return;
      const h = hashTuple(A.conns.seedConn, src, 0, 0, 0, dst, 0, 0, 0, ports, proto);
      const r = A.conns.lookup(h, 0, src, 0, 0, 0, dst, 0, 0, 0, ports, proto);
      if (r < 0) {
        if (proto === 17 && port === 1) return; // -o would be untracked; the fuzz model has none, but UDP may be one-packet elsewhere
        this.fail(`forwarded frame ${i} (${addrText(src)}:${ports >>> 16} -> ${addrText(dst)}:${ports & 0xffff}) matches no connection: ${where()}`);
        return;
      }
      const o = (r >> 1) * CONN_WORDS,
        rec = A.conns.rec;
      const oports = dv.getInt32(l3 + oihl);
      if ((r & 1) === 0) {
        if (rec[o + CONN_DADDR] !== odst || (rec[o + CONN_DPORT] & 0xffff) !== (oports & 0xffff) || osrc !== src || oports >>> 16 !== ports >>> 16) {
          this.fail(`frame ${i} forwarded to ${addrText(odst)}:${oports & 0xffff}, not to its connection's real server: ${where()}`);
          return;
        }
      } else if (
        rec[o + CONN_VADDR] !== osrc ||
        (rec[o + CONN_CPORT_VPORT] & 0xffff) !== oports >>> 16 ||
        odst !== dst ||
        (oports & 0xffff) !== (ports & 0xffff)
      ) {
        this.fail(`reply ${i} rewritten to come from ${addrText(osrc)}:${oports >>> 16}, not its virtual service: ${where()}`);
        return;
      }
      return;
    }
    // IPv6: hop limit and checksum validity
    if (out[l3 + 7] !== inp[il3 + 7] - 1) {
      this.fail(`forwarded IPv6 frame ${i}: hop limit ${inp[il3 + 7]} -> ${out[l3 + 7]}: ${where()}`);
      return;
    }
    const vin = l4Valid(inp, idv, il3, inLen - 14),
      vout = l4Valid(out, dv, l3, avail);
    const partial = l4Partial(inp, idv, il3, inLen - 14);
    if ((partial && inp[il3 + 6] !== 132 ? 1 : vin) !== vout) {
      this.fail(`forwarded IPv6 frame ${i}: L4 checksum validity ${vin} -> ${vout}${partial ? " (a partial checksum, to be completed)" : ""}: ${where()}`);
      return;
    }
    if (partial && inp[il3 + 6] === 132 && !sctpValid(out, dv, l3))
      this.fail(`forwarded IPv6 frame ${i}: SCTP CRC32c left 0 (partial), not completed: ${where()}`);
  }

  /** Fold A's verdict counters into the report. */
  finish(): FuzzReport {
    for (let s = 0; s < Stat.Count; s++) this.report.verdicts[STAT_NAMES[s]] = this.a.counters.verdicts[s];
    return this.report;
  }
}
