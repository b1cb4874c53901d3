/**
 * Turn the pcap files record-dr-tun.sh wrote into dr-tun.ts (stdout): for each case, the
 * client's UDP frames that reached the director and the frames the director sent to the real
 * server, in order; and the PMTU case's request with the ICMP answer.
 *
 *   bun test/kernel/frames/extract-dr-tun.ts DIR > test/kernel/frames/dr-tun.ts
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readPcap } from "../../integration/helpers.ts";

const dir = process.argv[2];
if (!dir) throw new Error("usage: bun extract-dr-tun.ts DIR-with-pcaps");
const hex = (f: Uint8Array) => Buffer.from(f).toString("hex");
const mac = (f: Uint8Array, off: number) => hex(f.subarray(off, off + 6));
const read = (name: string) => readPcap(new Uint8Array(readFileSync(join(dir, `${name}.pcap`))));
const et = (f: Uint8Array) => (f[12] << 8) | f[13];
const l4proto = (f: Uint8Array) => (et(f) === 0x0800 ? f[23] : et(f) === 0x86dd ? f[20] : -1);
const fromClientUdp = (f: Uint8Array) => mac(f, 6) === "020000000102" && l4proto(f) === 17;
const directorOut = (f: Uint8Array) => mac(f, 0) === "02000000020b" && mac(f, 6) === "020000000201" && l4proto(f) >= 0 && l4proto(f) !== 1 && l4proto(f) !== 58;

const CASES = [
  "dr",
  "ipip",
  "gue-nocsum",
  "gue-csum",
  "gue-remcsum",
  "gre-nocsum",
  "gre-csum",
  "ipip-v6rs",
  "gue-v6rs",
  "v6-ipip-v6rs",
  "v6-gre-v6rs",
  "v6-ipip-v4rs",
  "v6-dr",
];
const out: string[] = [
  "// Frames captured from kernel IPVS (Debian 6.1.0-56 kernel, ipvsadm 1.31) in the ipvs-vm guest",
  "// (tools: IPVSVM_TOOLS) by record-dr-tun.sh, extracted by extract-dr-tun.ts. Director lb:",
  "// c0 02:00:00:00:01:01 198.18.1.1 / 2001:db8:1::1 (client side), s0 02:00:00:00:02:01 198.18.2.1 /",
  "// 2001:db8:2::1 (real server side); client 02:00:00:00:01:02 198.18.1.2 / 2001:db8:1::2; real server",
  "// 02:00:00:00:02:0b 198.18.2.11 / 2001:db8:2::11; VIP 198.18.0.100 / 2001:db8:100::100, UDP :9000,",
  "// one real server per case (ipvsadm -a ... -g | -i [--tun-type ...]). The client sent UDP datagrams",
  "// with IP_TOS 0x4b (AF21 + CE) and DF, 0x49 (ECT(1)) without DF, and (IPv4 only) 0 with DF and 300",
  "// bytes; tcpdump -w on c0 (in) and s0 (out). Hex, Ethernet included.",
  "export const KERNEL_CASES: Record<string, { in: string[]; out: string[] }> = {",
];
for (const c of CASES) {
  out.push(`  "${c}": {`);
  out.push(
    `    in: [${read(`${c}-in`)
      .filter(fromClientUdp)
      .map((f) => `"${hex(f)}"`)
      .join(", ")}],`,
  );
  out.push(
    `    out: [${read(`${c}-out`)
      .filter(directorOut)
      .map((f) => `"${hex(f)}"`)
      .join(", ")}],`,
  );
  out.push("  },");
}
out.push("};", "");
const pm = read("pmtu-gue-in");
const req = pm.find(fromClientUdp)!;
const icmp = pm.find((f) => mac(f, 0) === "020000000102" && et(f) === 0x0800 && f[23] === 1)!;
out.push("// Route MTU 1000 (mtu lock) towards the real server, GUE tunnel: a 1200-byte UDP datagram with DF from");
out.push('// the client, and the "fragmentation needed" (mtu 1000 - 20 - 12 = 968) kernel IPVS answered with.');
out.push(`export const KERNEL_PMTU_GUE = { in: "${hex(req)}", icmp: "${hex(icmp)}" };`);
process.stdout.write(out.join("\n") + "\n");
