/**
 * Turn the pcap files record-nat.sh wrote into nat.ts (stdout): for each case, every
 * TCP/UDP frame that reached the director (from the client on c0, from the real server on s0) with
 * the frame the director sent for it, in the order the director received them.
 *
 *   bun test/kernel/frames/extract-nat.ts DIR > test/kernel/frames/nat.ts
 *
 * Pairs are made per direction in order (IPVS neither drops nor reorders these), and the case fails
 * loudly when a direction's counts differ.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir) throw new Error("usage: bun extract-nat.ts DIR-with-pcaps");
const version = process.argv[3] ?? "?";

/** Frames of a little-endian pcap file with their capture time (µs). */
function readPcapTimed(bytes: Uint8Array): { t: number; f: Uint8Array }[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || dv.getUint32(0, true) !== 0xa1b2c3d4) throw new Error("not a little-endian pcap file");
  const out: { t: number; f: Uint8Array }[] = [];
  for (let off = 24; off + 16 <= bytes.length; ) {
    const incl = dv.getUint32(off + 8, true);
    out.push({ t: dv.getUint32(off, true) * 1e6 + dv.getUint32(off + 4, true), f: bytes.slice(off + 16, off + 16 + incl) });
    off += 16 + incl;
  }
  return out;
}

const hex = (f: Uint8Array) => Buffer.from(f).toString("hex");
const mac = (f: Uint8Array, off: number) => hex(f.subarray(off, off + 6));
const et = (f: Uint8Array) => (f[12] << 8) | f[13];
const l4 = (f: Uint8Array) => (et(f) === 0x0800 ? f[23] : et(f) === 0x86dd ? f[20] : -1);
const tcpUdp = (f: Uint8Array) => l4(f) === 6 || l4(f) === 17;
const CLIENT = "020000000102",
  C0 = "020000000101",
  S0 = "020000000201",
  RS = "02000000020b";

const CASES = ["tcp-opts", "tcp6-opts", "tcp-noopts", "tcp6-noopts", "udp", "udp6"];
const out: string[] = [
  `// NAT frames captured from kernel IPVS (Debian ${version} kernel, ipvsadm 1.31) in the ipvs-vm guest`,
  "// (tools: IPVSVM_TOOLS) by record-nat.sh, extracted by extract-nat.ts. Director lb as in",
  "// dr-tun.ts (c0 02:00:00:00:01:01, s0 02:00:00:00:02:01; client 02:00:00:00:01:02 198.18.1.2 /",
  "// 2001:db8:1::2; real server 02:00:00:00:02:0b 198.18.2.11 / 2001:db8:2::11, routed through lb), ipvsadm -m:",
  "// TCP VIP:80 -> RS:8080, UDP VIP:9000 -> RS:9001, VIP 198.18.0.100 / 2001:db8:100::100. One TCP connection",
  "// (TCP timestamps, SACK and window scaling on in both stacks, or all off: then only the SYNs carry an",
  "// option, MSS) or two UDP datagrams and their echoes per case. Each step: a frame the director received",
  "// (`from` client on c0 or real server on s0) and the frame it sent for it. Hex, Ethernet included.",
  'export const KERNEL_NAT_CASES: Record<string, { from: "client" | "server"; in: string; out: string }[]> = {',
];
for (const c of CASES) {
  const c0 = readPcapTimed(new Uint8Array(readFileSync(join(dir, `${c}-c0.pcap`)))).filter((x) => tcpUdp(x.f));
  const s0 = readPcapTimed(new Uint8Array(readFileSync(join(dir, `${c}-s0.pcap`)))).filter((x) => tcpUdp(x.f));
  const fromClient = c0.filter((x) => mac(x.f, 6) === CLIENT && mac(x.f, 0) === C0);
  const toServer = s0.filter((x) => mac(x.f, 6) === S0 && mac(x.f, 0) === RS);
  const fromServer = s0.filter((x) => mac(x.f, 6) === RS && mac(x.f, 0) === S0);
  const toClient = c0.filter((x) => mac(x.f, 6) === C0 && mac(x.f, 0) === CLIENT);
  if (fromClient.length !== toServer.length || fromServer.length !== toClient.length || fromClient.length < 2 || fromServer.length < 2) {
    throw new Error(`${c}: client ${fromClient.length} -> server ${toServer.length}, server ${fromServer.length} -> client ${toClient.length}`);
  }
  const steps = [
    ...fromClient.map((x, i) => ({ t: x.t, from: "client", in: x.f, out: toServer[i].f })),
    ...fromServer.map((x, i) => ({ t: x.t, from: "server", in: x.f, out: toClient[i].f })),
  ].sort((a, b) => a.t - b.t);
  out.push(`  "${c}": [`);
  for (const s of steps) out.push(`    { from: "${s.from}", in: "${hex(s.in)}", out: "${hex(s.out)}" },`);
  out.push("  ],");
}
out.push("};", "");
process.stdout.write(out.join("\n"));
