/**
 * Maglev hashing (ip_vs_mh.c): a lookup table of MH_TAB_SIZE (4093, a prime) slots, each naming
 * a dest. Every dest gets a permutation of the slots from two hashes of its address and port
 * (offset, skip); the table is filled round robin over the dest list, each dest claiming
 * `turns` slots per round (its last non-zero weight over the gcd, shifted right so that the
 * largest fits in 6 bits), each time its next preferred slot that is still free. Lookups hash
 * the client address (plus its source port with mh-port). Because the table uses last_weight,
 * a dest set to weight 0 keeps its slots and its clients find it unavailable (refused, or with
 * mh-fallback rehashed to another dest), while every other client keeps its dest.
 * The table is rebuilt on the control thread for every change (ip_vs_mh_dest_changed).
 */
import { SVC_FLAGS, SVC_WORDS, SVCF_SCHED1 } from "../service/tables.ts";
import { hsiphash1u32 } from "./hsiphash.ts";
import { gcd, sourceFold, sourcePort, tableOff, weightOf, type Scheduler, type SchedView, type TableInput } from "./scheduler.ts";

/** Slots per service: primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] with the default index 12. */
export const MH_TAB_SIZE = 4093;
/** IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2: weights are scaled to fit this many bits. */
const MH_TAB_BITS = 6;
/** generate_hash_secret: hash1 = {2654435761, 2654435761}, hash2 = {2654446892, 2654446892} (u64 words). */
const K1 = 2654435761 | 0,
  K2 = 2654446892 | 0;

/** ip_vs_mh_hashkey with hash1: slot of a folded (host-order) address, a host-order port and an offset. */
export function mhHashkey(addrFold: number, port: number, offset: number): number {
  return hsiphash1u32((offset + port + addrFold) | 0, 0, K1, 0, K1) % MH_TAB_SIZE;
}

function fold(words: readonly number[], v6: boolean): number {
  return v6 ? words[0] ^ words[1] ^ words[2] ^ words[3] : words[0];
}

/** fls(): index of the highest set bit, 1-based (0 for 0). */
function fls(x: number): number {
  return x === 0 ? 0 : 32 - Math.clz32(x);
}

/** Fill the lookup table of `svc` (ip_vs_mh_permutate + ip_vs_mh_populate) into out[off..off+MH_TAB_SIZE). */
export function mhPopulate(svc: TableInput, out: Int32Array, off: number): void {
  const ds = svc.dests;
  out.fill(-1, off, off + MH_TAB_SIZE);
  let g = 0,
    maxw = 0;
  for (const d of ds) {
    const w = d.lastWeight;
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > maxw) maxw = w;
  }
  if (g < 1) return; // no dest ever had a weight: an empty table, every lookup fails
  const shift = Math.max(0, fls(Math.floor(maxw / g)) - MH_TAB_BITS);
  const n = ds.length;
  const perm = new Int32Array(n),
    skip = new Int32Array(n),
    turns = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const d = ds[i];
    const v = (d.port + fold(d.addr.words, svc.family === 6)) | 0;
    perm[i] = hsiphash1u32(v, 0, K1, 0, K1) % MH_TAB_SIZE;
    skip[i] = (hsiphash1u32(v, 0, K2, 0, K2) % (MH_TAB_SIZE - 1)) + 1;
    const lw = d.lastWeight;
    const tr = Math.floor(lw / g) >> shift;
    turns[i] = tr !== 0 ? tr : lw !== 0 ? 1 : 0;
  }
  const taken = new Uint8Array(MH_TAB_SIZE);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      // a dest added with weight 0 (last_weight 0) takes no slot
      for (let k = 0; k < turns[i]; k++) {
        let c = perm[i];
        while (taken[c] !== 0) {
          perm[i] += skip[i];
          if (perm[i] >= MH_TAB_SIZE) perm[i] -= MH_TAB_SIZE;
          c = perm[i];
        }
        taken[c] = 1;
        out[off + c] = ds[i].id;
        if (++filled === MH_TAB_SIZE) return;
      }
    }
  }
}

function usable(v: SchedView, d: number): boolean {
  return weightOf(v.t, d) > 0 && v.overload[d] === 0;
}

export const mh: Scheduler = {
  name: "mh",
  tableSize: () => MH_TAB_SIZE,
  buildTable: mhPopulate,
  init() {},
  update() {},
  schedule(v, svc, flow, row) {
    const t = v.t;
    const flags = t.svc[svc * SVC_WORDS + SVC_FLAGS];
    const base = tableOff(t, svc);
    const addr = sourceFold(flags, flow, row);
    const port = sourcePort(flags, flow, row);
    const ihash = mhHashkey(addr, port, 0);
    const first = t.buckets[base + ihash];
    if (first < 0) return -1;
    if (usable(v, first)) return first;
    if ((flags & SVCF_SCHED1) === 0) return -1;
    // ip_vs_mh_get_fallback: rehash with growing offsets from the original slot
    for (let offset = 0; offset < MH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) % MH_TAB_SIZE;
      const d = t.buckets[base + mhHashkey(addr, port, roffset)];
      if (d < 0) return -1;
      if (usable(v, d)) return d;
    }
    return -1;
  },
};
