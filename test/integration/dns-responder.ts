/**
 * A tiny DNS responder for the health lab (run with bun inside a real server's namespace):
 * `bun dns-responder.ts ADDR PORT` answers every query with its own id, QR set, NOERROR, no
 * records; prints "ready" once bound. Enough for DNS_CHECK, which wants a reply with its id.
 */
import dgram from "node:dgram";

const [addr, port] = process.argv.slice(2);
const s = dgram.createSocket(addr.includes(":") ? "udp6" : "udp4");
s.on("message", (q, r) => {
  if (q.length < 12) return;
  const a = Buffer.from(q);
  a.writeUInt16BE(0x8180, 2); // QR, RD, RA, NOERROR
  s.send(a, r.port, r.address);
});
s.bind(Number(port), addr, () => process.stdout.write("ready\n"));
