/**
 * What completing a partial checksum costs XDP per packet (issue 17): BPF_PROG_TEST_RUN with
 * `repeat` over a cached DR flow's frame (DR: only MACs and TTL change, so every repetition is
 * forwarded again until the TTL runs out), once with a complete checksum and once with the
 * field holding the pseudo-header sum P and a payload that verifies with it: each repetition
 * then sums the whole segment (xf_complete_partial's loop) without a write, the cost of a
 * completion. The kernel reports the mean duration of the repetitions; the best of `rounds`.
 * Only with XVS_FLOW_COST=1 (steer-flow-runner.ts): it measures, it does not test.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { fold, sumBytes } from "../../src/wire/checksum.ts";
import { partialChecksum } from "../util/packet.ts";

const libbpf = dlopen(new URL("../../native/out/libbpf.so.1", import.meta.url).pathname, {
  bpf_prog_test_run_opts: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});

/** The same IPv4 TCP frame with TTL 255 (header checksum recomputed). */
function ttl255(frame: Uint8Array): Uint8Array {
  const f = new Uint8Array(frame);
  f[14 + 8] = 255;
  f[14 + 10] = 0;
  f[14 + 11] = 0;
  const c = ~fold(sumBytes(f, 14, 20, 0)) & 0xffff;
  f[14 + 10] = c >> 8;
  f[14 + 11] = c & 0xff;
  return f;
}

/** Field = P and the first payload word chosen so that the full checksum verifies. */
function partialVerifying(frame: Uint8Array): Uint8Array {
  const f = partialChecksum(frame);
  const l4 = 14 + 20,
    n = 14 + ((f[16] << 8) | f[17]);
  const p = (f[l4 + 16] << 8) | f[l4 + 17];
  f[l4 + 20] = 0;
  f[l4 + 21] = 0;
  const w = 0xffff - fold(sumBytes(f, l4, n - l4, 0) + p);
  f[l4 + 20] = w >> 8;
  f[l4 + 21] = w & 0xff;
  return f;
}

/** Mean ns per run of `repeat` runs of `frame` (best of `rounds`), and the XDP action. */
function timeRun(progFd: number, frame: Uint8Array, ifindex: number, repeat: number, rounds: number): { ns: number; retval: number } {
  const ctx = new Uint32Array(6);
  ctx[1] = frame.length;
  ctx[3] = ifindex;
  const out = new Uint8Array(frame.length + 256);
  const opts = new ArrayBuffer(80);
  const dv = new DataView(opts);
  let best = Infinity,
    retval = -1;
  for (let r = 0; r < rounds; r++) {
    const data = new Uint8Array(frame);
    dv.setBigUint64(0, 80n, true); // sz
    dv.setBigUint64(8, BigInt(ptr(data)), true); // data_in
    dv.setBigUint64(16, BigInt(ptr(out)), true); // data_out
    dv.setUint32(24, data.length, true);
    dv.setUint32(28, out.length, true);
    dv.setBigUint64(32, BigInt(ptr(ctx)), true); // ctx_in
    dv.setBigUint64(40, 0n, true);
    dv.setUint32(48, ctx.byteLength, true);
    dv.setUint32(52, 0, true);
    dv.setInt32(60, repeat, true);
    const rc = libbpf.symbols.bpf_prog_test_run_opts(progFd, ptr(opts));
    if (rc !== 0) throw new Error(`bpf_prog_test_run_opts: ${rc}`);
    retval = dv.getUint32(56, true);
    best = Math.min(best, dv.getUint32(64, true));
  }
  return { ns: best, retval };
}

export interface CompletionCost {
  /** per frame size (IP bytes): ns per packet complete, with a partial field, and the XDP actions */
  [l3len: string]: { complete: number; partial: number; retvals: number[] };
}

/** `frames`: cached DR flow frames (IPv4 TCP, body >= 2) of several sizes. */
export function completionCost(progFd: number, ifindex: number, frames: Uint8Array[], repeat = 250, rounds = 40): CompletionCost {
  const out: CompletionCost = {};
  for (const fr of frames) {
    const full = ttl255(fr);
    const a = timeRun(progFd, full, ifindex, repeat, rounds);
    const b = timeRun(progFd, partialVerifying(full), ifindex, repeat, rounds);
    out[String(fr.length - 14)] = { complete: a.ns, partial: b.ns, retvals: [a.retval, b.retval] };
  }
  return out;
}
