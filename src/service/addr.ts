/**
 * Addresses of the control plane: text <-> the four int32 words the dataplane keeps
 * (IPv4 in word 0, words 1..3 zero). Slow path only.
 */
import * as ipv4 from "../wire/ipv4.ts";
import * as ipv6 from "../wire/ipv6.ts";

/** An address as the tables store it. */
export interface IpAddr {
  family: 4 | 6;
  words: [number, number, number, number];
}

/** Parse IPv4 or IPv6 text; returns null when it is neither. */
export function parseIp(text: string): IpAddr | null {
  const v4 = ipv4.parseAddr(text);
  if (v4 !== null) return { family: 4, words: [v4, 0, 0, 0] };
  const v6 = ipv6.parseAddr(text);
  if (v6 !== null) return { family: 6, words: [v6[0], v6[1], v6[2], v6[3]] };
  return null;
}

/** Format an address in canonical form (dotted quad, or RFC 5952 IPv6). */
export function ipText(a: IpAddr): string {
  return a.family === 4 ? ipv4.addrText(a.words[0]) : ipv6.addrText(a.words);
}

/** Return the canonical text of an address given as text; null when malformed. */
export function canonicalIp(text: string): string | null {
  const a = parseIp(text);
  return a ? ipText(a) : null;
}

/** Format address and port the way ipvsadm -n does: a.b.c.d:p or [v6]:p. */
export function addrPortText(a: IpAddr, port: number): string {
  return a.family === 4 ? `${ipText(a)}:${port}` : `[${ipText(a)}]:${port}`;
}

/** Return the address words masked to `prefix` bits. */
export function maskWords(words: readonly number[], prefix: number): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    const m = bits === 0 ? 0 : bits === 32 ? -1 : (~0 << (32 - bits)) | 0;
    out[i] = words[i] & m;
  }
  return out;
}

/** Convert a dotted IPv4 netmask to a prefix length; null unless it is a contiguous mask. */
export function netmaskPrefix(text: string): number | null {
  const v = ipv4.parseAddr(text);
  if (v === null) return null;
  const inv = ~v >>> 0;
  if ((inv & (inv + 1)) !== 0) return null;
  return 32 - Math.log2(inv + 1);
}

/** Convert a prefix length to a dotted IPv4 mask. */
export function prefixNetmask(prefix: number): string {
  return ipv4.addrText(prefix === 0 ? 0 : (~0 << (32 - prefix)) | 0);
}
