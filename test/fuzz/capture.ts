/**
 * Capture real frames for the fuzz corpus (test/fuzz/corpus/real-*.bin): build the director lab,
 * run xvs with the fuzz model's services, send real traffic (HTTP over IPv4 and IPv6, UDP, UDP
 * datagrams large enough to be fragmented both ways, ICMP echo with fragments), and record with
 * tcpdump what the client sends and receives (cl:eth0) and what crosses the real servers' segment
 * (sw:p0). Every distinct frame up to MAX_FRAMES_PER_LINK per link becomes one .bin file.
 *
 *   bun test/fuzz/capture.ts            (root; rewrites test/fuzz/corpus/real-*.bin)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { startDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, LAB_VIP6, realAddr, realAddr6 } from "../../src/tools/lab/topology.ts";
import { httpGet, startServers, udpAsk } from "../integration/helpers.ts";
import { CORPUS_DIR } from "./corpus.ts";

const MAX_FRAMES_PER_LINK = 50;

/** Frames of a classic pcap file (little-endian, microsecond, Ethernet). */
export function pcapFrames(file: Uint8Array): Uint8Array[] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (dv.getUint32(0, true) !== 0xa1b2c3d4) throw new Error("not a little-endian microsecond pcap file");
  const out: Uint8Array[] = [];
  for (let off = 24; off + 16 <= file.length; ) {
    const incl = dv.getUint32(off + 8, true);
    out.push(file.slice(off + 16, off + 16 + incl));
    off += 16 + incl;
  }
  return out;
}

async function main(): Promise<void> {
  const L = await buildDirectorLab("fzcap", { reals: 3, ipv6: true });
  const tmp = mkdtempSync(join(tmpdir(), "xvs-capture-"));
  try {
    await startServers(L.lab, L.reals);
    const xvs = await startDaemon(L.lab, L.director, L.ifaces);
    const ok = async (m: string, p: string, b?: unknown) => {
      const r = await xvs.api(m, p, b);
      if (r.status >= 300) throw new Error(`${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
    };
    for (const [proto, port] of [
      ["tcp", 80],
      ["tcp", 7000],
      ["udp", 9000],
    ] as const) {
      await ok("POST", "/v1/services", { protocol: proto, address: LAB_VIP, port, scheduler: "rr" });
      for (let i = 1; i <= 3; i++) await ok("POST", `/v1/services/${proto}:${LAB_VIP}:${port}/dests`, { address: realAddr(i), port, forward: "masq" });
    }
    await ok("POST", "/v1/services", { protocol: "tcp", address: LAB_VIP6, port: 80, scheduler: "rr" });
    await ok("POST", `/v1/services/tcp:[${LAB_VIP6}]:80/dests`, { address: realAddr6(1), port: 80, forward: "masq" });
    const dumps = [
      L.lab.spawn(L.client, ["tcpdump", "-U", "-s", "4096", "-i", "eth0", "-w", join(tmp, "cl.pcap")]),
      L.lab.spawn("sw", ["tcpdump", "-U", "-s", "4096", "-i", "p0", "-w", join(tmp, "sw.pcap")]),
    ];
    await Bun.sleep(1000);
    // fragmented both ways: a 3000-byte datagram, echoed back with the server's name in front
    const big = await L.lab.exec(
      L.client,
      ["bash", "-c", `head -c 3000 /dev/zero | tr '\\0' x | timeout 2 socat -t 1 - UDP:${LAB_VIP}:9000,sourceport=41000 | wc -c`],
      true,
    );
    process.stdout.write(`fragmented UDP echo: ${big.stdout.trim()} bytes back\n`);
    await L.lab.exec(L.client, ["ping", "-c", "2", "-s", "2000", "-W", "1", LAB_VIP], true);
    await L.lab.exec(L.client, ["ping", "-c", "1", "-W", "1", "198.18.1.1"], true);
    await udpAsk(L.lab, L.client, LAB_VIP, 9000, 2);
    await httpGet(L.lab, L.client, LAB_VIP, 80, 2, 1);
    await httpGet(L.lab, L.client, `[${LAB_VIP6}]`, 80, 2, 1);
    await Bun.sleep(1000);
    for (const d of dumps) d.kill("SIGINT");
    await Promise.all(dumps.map((d) => d.exited));
    await xvs.stop();
    const seen = new Set<string>();
    for (const f of readdirSync(CORPUS_DIR).filter((n) => n.startsWith("real-") && n.endsWith(".bin"))) unlinkSync(join(CORPUS_DIR, f));
    let n = 0;
    for (const [tag, file] of [
      ["cl", "cl.pcap"],
      ["sw", "sw.pcap"],
    ]) {
      let perLink = 0;
      for (const fr of pcapFrames(new Uint8Array(readFileSync(join(tmp, file))))) {
        const h = createHash("sha256").update(fr).digest("hex").slice(0, 10);
        if (seen.has(h) || perLink >= MAX_FRAMES_PER_LINK) continue;
        seen.add(h);
        writeFileSync(join(CORPUS_DIR, `real-${tag}-${String(n).padStart(3, "0")}-${h}.bin`), fr);
        n++;
        perLink++;
      }
    }
    process.stdout.write(`wrote ${n} frames to ${CORPUS_DIR}\n`);
  } finally {
    await L.lab.teardown();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
