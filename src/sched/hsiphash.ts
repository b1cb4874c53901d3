/**
 * The kernel's hsiphash of one u32 (lib/siphash.c, 64-bit build: hsiphash is SipHash-1-3 over
 * u64 keys, truncated to u32), as ip_vs_mh.c uses it with its fixed keys. 64-bit lanes are kept
 * as (hi, lo) int32 pairs in a module-level Int32Array, so a call allocates nothing.
 */

/** The eight int32 halves of v0..v3: [v0h, v0l, v1h, v1l, v2h, v2l, v3h, v3l]. */
const s = new Int32Array(8);

/** v[a] += v[b] (64-bit, lanes a and b as indexes 0..3). */
function add(a: number, b: number): void {
  const al = s[a * 2 + 1],
    bl = s[b * 2 + 1];
  const lo = (al >>> 0) + (bl >>> 0);
  s[a * 2 + 1] = lo | 0;
  s[a * 2] = (s[a * 2] + s[b * 2] + (lo > 0xffffffff ? 1 : 0)) | 0;
}

/** v[a] = rol64(v[a], n) for 0 < n < 64. */
function rol(a: number, n: number): void {
  let h = s[a * 2],
    l = s[a * 2 + 1];
  if (n >= 32) {
    const x = h;
    h = l;
    l = x;
    n -= 32;
  }
  if (n > 0) {
    const nh = (h << n) | (l >>> (32 - n));
    l = (l << n) | (h >>> (32 - n));
    h = nh;
  }
  s[a * 2] = h;
  s[a * 2 + 1] = l;
}

/** v[a] ^= v[b]. */
function xor(a: number, b: number): void {
  s[a * 2] ^= s[b * 2];
  s[a * 2 + 1] ^= s[b * 2 + 1];
}

function sipround(): void {
  add(0, 1);
  rol(1, 13);
  xor(1, 0);
  rol(0, 32);
  add(2, 3);
  rol(3, 16);
  xor(3, 2);
  add(0, 3);
  rol(3, 21);
  xor(3, 0);
  add(2, 1);
  rol(1, 17);
  xor(1, 2);
  rol(2, 32);
}

/**
 * Return hsiphash_1u32(value, key) as an unsigned 32-bit number, for a key of two u64 words
 * given as (k0hi, k0lo, k1hi, k1lo).
 */
export function hsiphash1u32(value: number, k0hi: number, k0lo: number, k1hi: number, k1lo: number): number {
  // PREAMBLE(4): the "somepseudorandomlygeneratedbytes" constants xor the key
  s[0] = 0x736f6d65 ^ k0hi;
  s[1] = 0x70736575 ^ k0lo;
  s[2] = 0x646f7261 ^ k1hi;
  s[3] = 0x6e646f6d ^ k1lo;
  s[4] = 0x6c796765 ^ k0hi;
  s[5] = 0x6e657261 ^ k0lo;
  s[6] = 0x74656462 ^ k1hi;
  s[7] = 0x79746573 ^ k1lo;
  // b = len << 56 | value
  const bh = 0x04000000,
    bl = value | 0;
  s[6] ^= bh;
  s[7] ^= bl;
  sipround();
  s[0] ^= bh;
  s[1] ^= bl;
  s[5] ^= 0xff;
  sipround();
  sipround();
  sipround();
  return (s[1] ^ s[3] ^ s[5] ^ s[7]) >>> 0;
}
