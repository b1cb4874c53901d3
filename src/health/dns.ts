/**
 * The few bytes of DNS (RFC 1035) DNS_CHECK needs: one query (header + one question), and the
 * header of a reply (id, QR bit, rcode). No library: a checker sends one datagram.
 */
import type { DnsCheckT } from "../config/health.ts";

/** QTYPE numbers of the types DNS_CHECK takes (RFC 1035 3.2.2, RFC 3596 for AAAA). */
export const DNS_TYPE_CODES: Record<DnsCheckT["type"], number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, MX: 15, TXT: 16, AAAA: 28 };

/** A query for `name` (a dotted name; "." is the root) of `type`, recursion desired, class IN. */
export function encodeDnsQuery(id: number, name: string, type: DnsCheckT["type"]): Buffer {
  const labels = name === "." ? [] : name.replace(/\.$/, "").split(".");
  const qname: number[] = [];
  for (const l of labels) {
    if (l.length === 0 || l.length > 63) throw new Error(`dns: bad label in ${name}`);
    qname.push(l.length, ...Buffer.from(l, "ascii"));
  }
  qname.push(0);
  const b = Buffer.alloc(12 + qname.length + 4);
  b.writeUInt16BE(id & 0xffff, 0);
  b.writeUInt16BE(0x0100, 2); // RD
  b.writeUInt16BE(1, 4); // QDCOUNT
  Buffer.from(qname).copy(b, 12);
  b.writeUInt16BE(DNS_TYPE_CODES[type], 12 + qname.length);
  b.writeUInt16BE(1, 12 + qname.length + 2); // IN
  return b;
}

/** The header fields of a reply; null when the datagram is shorter than a header. */
export function parseDnsReplyHeader(m: Buffer): { id: number; isReply: boolean; rcode: number } | null {
  if (m.length < 12) return null;
  const flags = m.readUInt16BE(2);
  return { id: m.readUInt16BE(0), isReply: (flags & 0x8000) !== 0, rcode: flags & 0xf };
}
