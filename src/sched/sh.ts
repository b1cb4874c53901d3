/**
 * Source hashing (ip_vs_sh.c): 256 buckets filled by walking the dest list, each dest taking
 * `weight` consecutive buckets (a weight-0 dest still takes one), repeated until the table is
 * full; rebuilt whenever dests or weights change. The client address (and, with sh-port, its
 * source port) picks a bucket with hash_32; a bucket whose dest has weight 0 or OVERLOAD
 * refuses the connection unless sh-fallback is set, which rehashes with growing offsets until
 * it finds a usable dest.
 */
import { SVC_FLAGS, SVC_WORDS, SVCF_SCHED1 } from "../service/tables.ts";
import { sourceFold, sourcePort, tableOff, weightOf, type Scheduler, type SchedView } from "./scheduler.ts";

/** Buckets per service (IP_VS_SH_TAB_SIZE = 1 << 8). */
export const SH_TAB_SIZE = 256;
/** include/linux/hash.h GOLDEN_RATIO_32. */
const GOLDEN_RATIO_32 = 0x61c88647;

/** hash_32(val, bits): the top `bits` bits of val * GOLDEN_RATIO_32 (mod 2^32). */
export function hash32(val: number, bits: number): number {
  return Math.imul(val, GOLDEN_RATIO_32) >>> (32 - bits);
}

/** ip_vs_sh_hashkey: bucket of a (folded, host-order) client address and port, plus an offset. */
export function shHashkey(addrFold: number, port: number, offset: number): number {
  return (offset + hash32((port + addrFold) | 0, 8)) & (SH_TAB_SIZE - 1);
}

function usable(v: SchedView, d: number): boolean {
  return weightOf(v.t, d) > 0 && v.overload[d] === 0;
}

export const sh: Scheduler = {
  name: "sh",
  tableSize: () => SH_TAB_SIZE,
  buildTable(svc, out, off) {
    const ds = svc.dests;
    if (ds.length === 0) {
      out.fill(-1, off, off + SH_TAB_SIZE);
      return;
    }
    let p = 0,
      count = 0;
    for (let i = 0; i < SH_TAB_SIZE; i++) {
      const d = ds[p];
      out[off + i] = d.id;
      if (++count >= d.spec.weight) {
        p = (p + 1) % ds.length;
        count = 0;
      }
    }
  },
  init() {},
  update() {},
  schedule(v, svc, flow, row) {
    const t = v.t;
    const flags = t.svc[svc * SVC_WORDS + SVC_FLAGS];
    const base = tableOff(t, svc);
    const addr = sourceFold(flags, flow, row);
    const port = sourcePort(flags, flow, row);
    const ihash = shHashkey(addr, port, 0);
    const first = t.buckets[base + ihash];
    if (first < 0) return -1;
    if (usable(v, first)) return first;
    if ((flags & SVCF_SCHED1) === 0) return -1;
    // ip_vs_sh_get_fallback: walk offsets from the original bucket, rehashing each time
    for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) % SH_TAB_SIZE;
      const d = t.buckets[base + shHashkey(addr, port, roffset)];
      if (usable(v, d)) return d;
    }
    return -1;
  },
};
