/**
 * Resource ids in API paths: a service is `tcp:198.18.0.100:80`, `udp:[2001:db8::1]:53`,
 * `fwm:1` or `fwm6:1`; a real server is `198.18.1.2:80` or `[2001:db8::2]:80`.
 */
import { canonicalIp, parseIp } from "../service/addr.ts";
import type { ServiceKeyT } from "./schemas.ts";

/** Parse an address:port with optional brackets; null when malformed. */
export function parseAddrPort(s: string): { address: string; port: number } | null {
  let m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s);
  if (!m) m = /^([0-9.]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  if (!parseIp(m[1]) || port > 65535) return null;
  return { address: canonicalIp(m[1])!, port };
}

/** Parse a service id; null when malformed. */
export function parseServiceId(id: string): ServiceKeyT | null {
  let m = /^fwm(6?):(\d{1,10})$/.exec(id);
  if (m) {
    const mark = Number(m[2]);
    if (mark < 1 || mark > 0xffffffff) return null;
    return { fwmark: mark, family: m[1] ? "ipv6" : "ipv4" };
  }
  m = /^(tcp|udp|sctp):(.+)$/.exec(id);
  if (!m) return null;
  const ap = parseAddrPort(m[2]);
  return ap ? { protocol: m[1] as "tcp" | "udp" | "sctp", address: ap.address, port: ap.port } : null;
}

/** Format a service id. */
export function serviceId(k: ServiceKeyT): string {
  if ("fwmark" in k) return `fwm${k.family === "ipv6" ? "6" : ""}:${k.fwmark}`;
  return `${k.protocol}:${destId(k.address, k.port)}`;
}

/** Format a real server id. */
export function destId(address: string, port: number): string {
  const a = canonicalIp(address) ?? address;
  return a.includes(":") ? `[${a}]:${port}` : `${a}:${port}`;
}
