/**
 * Next hops as the dataplane sees them. Resolved from the kernel's routing and neighbour tables
 * by resolver.ts on the control thread; read by the workers.
 *
 * - `NextHops`: one SharedArrayBuffer, NH_WORDS per next hop, ids stable for the process's
 *   life. The resolver updates MACs in place when the kernel's neighbour table changes, so every
 *   connection that names a next hop follows the change at once. The VALID bit is cleared while
 *   a MAC is being rewritten and set again after it.
 * - Route tables compiled into each `Tables` generation (see route words below): the port
 *   (interface index in the worker's AF_XDP port) and source MAC of each interface, the FIB used
 *   to route replies to clients (longest prefix first), the neighbour index for on-link clients,
 *   and the next hop of every dest.
 * - `ResolveRing`: addresses the worker met without a neighbour entry, for the resolver to ask
 *   the kernel about (the worker never crosses into C for it).
 */

/** Most next hops (neighbours on our interfaces plus gateways). */
export const MAX_NEXTHOPS = 65536;

export const NH_FLAGS = 0;
export const NH_MAC_HI = 1;
export const NH_MAC_LO = 2;
/** Interface index (port) the next hop is on. */
export const NH_PORT = 3;
export const NH_WORDS = 4;
export const NHF_VALID = 0x1;

// ---- per-port words (Tables.ports) ----
export const PORT_MAC_HI = 0;
export const PORT_MAC_LO = 1;
export const PORT_MTU = 2;
export const PORT_IFINDEX = 3;
export const PORT_WORDS = 4;

// ---- FIB rows (Tables.fib), longest prefix first ----
export const FIB_FAMILY = 0;
export const FIB_PREFIX_LEN = 1;
/** Prefix, 4 words (masked). */
export const FIB_ADDR = 2;
/** Gateway next hop id, or -1 for an on-link route (the destination itself is the neighbour). */
export const FIB_NEXTHOP = 6;
export const FIB_PORT = 7;
/** Route MTU (0: the interface's). */
export const FIB_MTU = 8;
export const FIB_WORDS = 9;

/** Return word `i` of a /len mask. */
export function maskWord(len: number, i: number): number {
  const bits = len - 32 * i;
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return (~0 << (32 - bits)) | 0;
}

/**
 * Find the FIB row for an address; returns the row offset into `fib` or -1 (no route through
 * one of our interfaces). Linear over rows sorted longest prefix first: it runs once per new
 * connection, never per packet.
 */
export function fibLookup(fib: Int32Array, rows: number, family: number, a0: number, a1: number, a2: number, a3: number): number {
  for (let r = 0; r < rows; r++) {
    const o = r * FIB_WORDS;
    if (fib[o + FIB_FAMILY] !== family) continue;
    const len = fib[o + FIB_PREFIX_LEN];
    if ((a0 & maskWord(len, 0)) !== fib[o + FIB_ADDR]) continue;
    if (
      family === 6 &&
      ((a1 & maskWord(len, 1)) !== fib[o + FIB_ADDR + 1] ||
        (a2 & maskWord(len, 2)) !== fib[o + FIB_ADDR + 2] ||
        (a3 & maskWord(len, 3)) !== fib[o + FIB_ADDR + 3])
    )
      continue;
    return o;
  }
  return -1;
}

// ---- neighbour index (Tables.neigh): open addressing, NEIGH_WORDS per slot ----
export const NEIGH_PORT = 0;
/** Address, 4 words. */
export const NEIGH_ADDR = 1;
/** Next hop id + 1 (0 = empty slot). */
export const NEIGH_NH = 5;
export const NEIGH_WORDS = 6;

/** Hash of a neighbour key. */
export function neighHash(port: number, a0: number, a1: number, a2: number, a3: number): number {
  let h = Math.imul(port + 0x9e3779b9, 0x85ebca6b) ^ a0;
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35) ^ a1;
  h = Math.imul(h ^ (h >>> 13), 0x85ebca6b) ^ a2;
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35) ^ a3;
  return (h ^ (h >>> 15)) | 0;
}

/** Find the next hop id of an on-link neighbour, or -1. */
export function neighLookup(neigh: Int32Array, port: number, a0: number, a1: number, a2: number, a3: number): number {
  const slots = neigh.length / NEIGH_WORDS;
  if (slots === 0) return -1;
  let i = neighHash(port, a0, a1, a2, a3) & (slots - 1);
  for (;;) {
    const o = i * NEIGH_WORDS;
    const nh = neigh[o + NEIGH_NH];
    if (nh === 0) return -1;
    if (
      neigh[o + NEIGH_PORT] === port &&
      neigh[o + NEIGH_ADDR] === a0 &&
      neigh[o + NEIGH_ADDR + 1] === a1 &&
      neigh[o + NEIGH_ADDR + 2] === a2 &&
      neigh[o + NEIGH_ADDR + 3] === a3
    )
      return nh - 1;
    i = (i + 1) & (slots - 1);
  }
}

/** Build a neighbour index from (port, addr words, nh id) entries; control thread. */
export function buildNeighIndex(entries: { port: number; words: readonly number[]; nh: number }[]): Int32Array {
  let slots = 1;
  while (slots < entries.length * 2) slots *= 2;
  const out = new Int32Array(new SharedArrayBuffer(Math.max(1, slots) * NEIGH_WORDS * 4));
  for (const e of entries) {
    let i = neighHash(e.port, e.words[0], e.words[1], e.words[2], e.words[3]) & (slots - 1);
    while (out[i * NEIGH_WORDS + NEIGH_NH] !== 0) i = (i + 1) & (slots - 1);
    const o = i * NEIGH_WORDS;
    out[o + NEIGH_PORT] = e.port;
    for (let k = 0; k < 4; k++) out[o + NEIGH_ADDR + k] = e.words[k];
    out[o + NEIGH_NH] = e.nh + 1;
  }
  return out;
}

// ---- resolve requests from workers ----
/** Entry: port, family, 4 address words. */
export const RING_ENTRY_WORDS = 6;
/** Entries in the ring (power of two). */
export const RING_ENTRIES = 256;
const RING_HEAD = 0,
  RING_TAIL = 1,
  RING_HDR = 2;

/** Allocate the shared buffer of a resolve ring. */
export function newResolveRing(): SharedArrayBuffer {
  return new SharedArrayBuffer((RING_HDR + RING_ENTRIES * RING_ENTRY_WORDS) * 4);
}

/** Worker side: ask for an address to be resolved; drops the request when the ring is full. */
export function pushResolve(ring: Int32Array, port: number, family: number, a0: number, a1: number, a2: number, a3: number): boolean {
  const head = Atomics.load(ring, RING_HEAD),
    tail = Atomics.load(ring, RING_TAIL);
  if (((head - tail) | 0) >= RING_ENTRIES) return false;
  const o = RING_HDR + (head & (RING_ENTRIES - 1)) * RING_ENTRY_WORDS;
  ring[o] = port;
  ring[o + 1] = family;
  ring[o + 2] = a0;
  ring[o + 3] = a1;
  ring[o + 4] = a2;
  ring[o + 5] = a3;
  Atomics.store(ring, RING_HEAD, (head + 1) | 0);
  return true;
}

/** Control side: take every pending request. */
export function drainResolve(ring: Int32Array): { port: number; family: number; words: number[] }[] {
  const out: { port: number; family: number; words: number[] }[] = [];
  let tail = Atomics.load(ring, RING_TAIL);
  const head = Atomics.load(ring, RING_HEAD);
  while (tail !== head) {
    const o = RING_HDR + (tail & (RING_ENTRIES - 1)) * RING_ENTRY_WORDS;
    out.push({ port: ring[o], family: ring[o + 1], words: [ring[o + 2], ring[o + 3], ring[o + 4], ring[o + 5]] });
    tail = (tail + 1) | 0;
  }
  Atomics.store(ring, RING_TAIL, tail);
  return out;
}
