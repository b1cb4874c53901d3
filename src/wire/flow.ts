/**
 * A parsed flow: one row of FLOW_WORDS int32 in an Int32Array, filled by the classifier and read
 * by the connection table, the schedulers and the fast path. The accessors below serve the
 * helpers; the per-packet functions (FastPath.handle/forward/reply/transmitIn, ConnTable.lookupRow,
 * hashFlow) decode FLOW_META by hand: inlined by JSC, the accessors still made their compiled
 * code larger (docs/architecture.md, "Fast path"). Rows are reused burst after burst: nothing
 * here allocates. IPv4 addresses use word 0 of each address (words 1..3 are zero), so the same code
 * serves both families and keys are ready for IPv6.
 */

/** Words per row. */
export const FLOW_WORDS = 12;
/** family (4|6) << 16 | proto << 8 | TCP flags. */
export const FLOW_META = 0;
/** Source address, 4 words. */
export const FLOW_SRC = 1;
/** Destination address, 4 words. */
export const FLOW_DST = 5;
/** sport << 16 | dport (int32). */
export const FLOW_PORTS = 9;
/** Offset of the L3 header in the frame buffer. */
export const FLOW_L3 = 10;
/** Offset of the L4 header in the frame buffer (0 for fragments without one). */
export const FLOW_L4 = 11;

/** Return the FLOW_META word of a packet: family (4|6), IP protocol, TCP flags (0 for other protocols). */
export function flowMeta(family: number, proto: number, tcpFlags: number): number {
  return (family << 16) | (proto << 8) | tcpFlags;
}

/** Return the family (4 or 6) of a row. */
export function flowFamily(f: Int32Array, row: number): number {
  return f[row + FLOW_META] >>> 16;
}

/** Return the IP protocol of a row. */
export function flowProto(f: Int32Array, row: number): number {
  return (f[row + FLOW_META] >>> 8) & 0xff;
}

/** Return the destination port of a row. */
export function flowDport(f: Int32Array, row: number): number {
  return f[row + FLOW_PORTS] & 0xffff;
}

/** Mix one word into a running hash (murmur3's body). */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Finish a hash (murmur3's fmix32). */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * Hash (src, dst, ports, proto) given as words. For IPv4 the extra address words are zero,
 * so an IPv4 flow hashes the same through either entry point. `seed` separates key kinds
 * (connections, templates) and is randomised per table against hash flooding.
 */
export function hashTuple(
  seed: number,
  s0: number,
  s1: number,
  s2: number,
  s3: number,
  d0: number,
  d1: number,
  d2: number,
  d3: number,
  ports: number,
  proto: number,
): number {
  let h = seed ^ proto;
  h = mix(h, s0);
  h = mix(h, d0);
  h = mix(h, ports);
  if ((s1 | s2 | s3 | d1 | d2 | d3) !== 0) {
    h = mix(h, s1);
    h = mix(h, s2);
    h = mix(h, s3);
    h = mix(h, d1);
    h = mix(h, d2);
    h = mix(h, d3);
  }
  return finish(h);
}

/**
 * Hash a flow row as it appears on the wire (src -> dst). The protocol is decoded here by hand,
 * not with flowProto(): one call more and JSC stops inlining hashFlow (with hashTuple, mix and
 * finish) into processBurst's pass 1 (seen with BUN_JSC_printEachDFGFTLInlineCall=1).
 */
export function hashFlow(seed: number, f: Int32Array, row: number): number {
  return hashTuple(
    seed,
    f[row + FLOW_SRC],
    f[row + FLOW_SRC + 1],
    f[row + FLOW_SRC + 2],
    f[row + FLOW_SRC + 3],
    f[row + FLOW_DST],
    f[row + FLOW_DST + 1],
    f[row + FLOW_DST + 2],
    f[row + FLOW_DST + 3],
    f[row + FLOW_PORTS],
    (f[row + FLOW_META] >>> 8) & 0xff,
  );
}
