/**
 * SYN flood in the namespace lab: spoofed SYNs (198.19.0.0/16, src/tools/lab/synflood.c over
 * AF_PACKET from the client namespace) at the VIP while 100 established connections keep
 * exchanging lines through xvs, and new connections keep being made. The daemon runs with a small
 * connection table (--conn-max 16384) so that the flood fills it within a second: the SYN flood
 * defence (dataplane/synflood.ts, mode `oldest`) has to make room. The daemon's RSS is sampled
 * throughout: memory must stay flat.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { startFlood } from "../../src/tools/lab/flood.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { httpGet, requireRoot, startServers, stopLab } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;
const FLOOD_PPS = 30000,
  FLOOD_SECONDS = 12;

async function ok(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await xvs.api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("flood", { reals: 3 });
  await startServers(L.lab, L.reals);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--conn-max", "16384"]);
  for (const port of [80, 7000]) {
    await ok("POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port, scheduler: "rr" });
    for (let i = 1; i <= 3; i++) await ok("POST", `/v1/services/tcp:${LAB_VIP}:${port}/dests`, { address: realAddr(i), port, forward: "masq" });
  }
  // warm the neighbour entries so that nothing below waits on ARP
  await httpGet(L.lab, L.client, LAB_VIP, 80, 6, 2);
}, 60_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("SYN flood with spoofed sources", () => {
  test("100 established connections exchange every line in order, new connections succeed, the table stays bounded and RSS flat", async () => {
    const before = ((await ok("GET", "/v1/stats")) as { verdicts: Record<string, number> }).verdicts;
    const chat = L.lab.spawn(L.client, [
      ...selfCommand(),
      "__lab",
      "tcp-chat",
      "--host",
      LAB_VIP,
      "--port",
      "7000",
      "--conns",
      "100",
      "--seconds",
      String(FLOOD_SECONDS + 4),
      "--interval",
      "200",
    ]);
    await Bun.sleep(2000);
    const dirMac = (await L.lab.exec(L.director, ["cat", "/sys/class/net/c0/address"])).stdout.trim();
    const flood = await startFlood(L.lab, L.client, {
      iface: "eth0",
      dstMac: dirMac,
      dst: LAB_VIP,
      dport: 80,
      srcBase: "198.19.0.0",
      srcPrefix: 16,
      pps: FLOOD_PPS,
      seconds: FLOOD_SECONDS,
    });
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(rssKb(xvs.proc.pid)), 500);
    await Bun.sleep(2000);
    // new connections to the attacked service while the table is under pressure
    const fresh = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 3);
    const [floodOut, chatOut] = await Promise.all([new Response(flood.stdout).text(), new Response(chat.stdout).text()]);
    clearInterval(sampler);
    const after = ((await ok("GET", "/v1/stats")) as { verdicts: Record<string, number> }).verdicts;
    const c = JSON.parse(chatOut.trim()) as {
      conns: number;
      sent: number;
      received: number;
      outOfOrder: number;
      closed: number;
      errors: string[];
      maxRttMs: number;
      byServer: Record<string, number>;
    };
    const sent = Number(floodOut.trim());
    const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    process.stdout.write(
      `  flood: ${sent} SYNs in ${FLOOD_SECONDS} s; new_conns +${d("new_conns")}, half_open_evicted +${d("half_open_evicted")}, drop_table_full +${d("drop_table_full")}, drop_syn_flood +${d("drop_syn_flood")}\n`,
    );
    process.stdout.write(
      `  chat: ${c.conns} connections, ${c.sent} lines sent, ${c.received} echoed, out of order ${c.outOfOrder}, max rtt ${c.maxRttMs} ms\n`,
    );
    process.stdout.write(
      `  new connections during the flood: ${fresh.ok}/60; RSS kB min ${Math.min(...rss)} max ${Math.max(...rss)} (${rss.length} samples)\n`,
    );
    // the flood did fill the table: the defence had to act
    expect(sent).toBeGreaterThan(FLOOD_PPS * FLOOD_SECONDS * 0.8);
    expect(d("half_open_evicted")).toBeGreaterThan(0);
    // established connections: all 100 kept, every line answered, in order
    expect(c.conns).toBe(100);
    expect(c.errors).toEqual([]);
    expect(c.closed).toBe(0);
    expect(c.outOfOrder).toBe(0);
    expect(c.received).toBe(c.sent);
    expect(Object.keys(c.byServer).sort()).toEqual(["rs1", "rs2", "rs3"]);
    // new connections keep working
    expect(fresh.ok).toBe(60);
    // memory: flat while the flood ran (the table is preallocated; the hot path does not allocate)
    const tail = rss.slice(Math.floor(rss.length / 3));
    expect(Math.max(...tail) - Math.min(...tail)).toBeLessThan(24 * 1024);
  }, 90_000);
});
