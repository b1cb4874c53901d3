/**
 * The C library functions ipvsadm's parsing rests on, reproduced so that xvs accepts and
 * refuses exactly the same spellings: strtol (base 10, leading blanks and a sign allowed),
 * inet_aton (1 to 4 parts, each decimal, octal or hex: "198.18.1" is 198.18.0.1, "0xc6.18.0.1"
 * is 198.18.0.1) and inet_pton for IPv6.
 */
import * as ipv6 from "../wire/ipv6.ts";

const isSpace = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\v" || c === "\f" || c === "\r";
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";

/** strtol(s, &end, base) for base 10 or 0; `end` is the index after the number (0 when none). */
export function strtol(s: string, base: 0 | 10 = 10): { value: bigint; end: number } {
  let i = 0;
  while (i < s.length && isSpace(s[i])) i++;
  let neg = false;
  if (s[i] === "+" || s[i] === "-") {
    neg = s[i] === "-";
    i++;
  }
  let radix = 10;
  if (base === 0 && s[i] === "0") {
    if ((s[i + 1] === "x" || s[i + 1] === "X") && /[0-9a-fA-F]/.test(s[i + 2] ?? "")) {
      radix = 16;
      i += 2;
    } else {
      radix = 8;
    }
  }
  const digitRe = radix === 16 ? /[0-9a-fA-F]/ : radix === 8 ? /[0-7]/ : /[0-9]/;
  const start = i;
  let v = 0n;
  while (i < s.length && digitRe.test(s[i])) {
    v = v * BigInt(radix) + BigInt(parseInt(s[i], radix));
    i++;
  }
  if (i === start) return { value: 0n, end: 0 };
  return { value: neg ? -v : v, end: i };
}

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

/**
 * ipvsadm's string_to_number: the whole string is a base-10 long within [min, max]; -1 otherwise.
 */
export function stringToNumber(s: string, min: number, max: number): number {
  const r = strtol(s, 10);
  if (r.end === 0 || r.end !== s.length) return -1;
  if (r.value > LONG_MAX || r.value < LONG_MIN) return -1; // ERANGE
  if (r.value < BigInt(min) || r.value > BigInt(max)) return -1;
  return Number(r.value);
}

/** glibc inet_aton: the address as an unsigned 32-bit number, or null. */
export function inetAton(s: string): number | null {
  const parts: number[] = [];
  let i = 0;
  let val = 0n;
  for (;;) {
    if (!isDigit(s[i])) return null;
    const r = strtol(s.slice(i), 0);
    if (r.value > 0xffffffffn) return null;
    val = r.value;
    i += r.end;
    if (s[i] === ".") {
      if (parts.length > 2 || val > 0xffn) return null;
      parts.push(Number(val));
      i++;
    } else {
      break;
    }
  }
  // trailing blanks (and whatever follows them) are allowed, as in glibc
  if (i < s.length && !isSpace(s[i])) return null;
  const max = [0xffffffffn, 0xffffffn, 0xffffn, 0xffn][parts.length];
  if (val > max) return null;
  let word = 0;
  parts.forEach((p, k) => {
    word |= p << (24 - 8 * k);
  });
  return ((word >>> 0) + Number(val)) >>> 0;
}

/** inet_pton(AF_INET6): four big-endian words, or null. */
export function inetPton6(s: string): [number, number, number, number] | null {
  const w = ipv6.parseAddr(s);
  return w ? [w[0], w[1], w[2], w[3]] : null;
}

/** inet_pton(AF_INET): strict dotted quad (no octal, no short forms), or null. */
export function inetPton4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
}

/** C's atoi: leading blanks, a sign, digits; 0 when there are none. */
export function atoi(s: string): number {
  const r = strtol(s, 10);
  return r.end === 0 ? 0 : Number(BigInt.asIntN(32, r.value));
}
