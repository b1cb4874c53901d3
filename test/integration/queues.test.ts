/**
 * Several queues (`xvs run --queues 2`): one worker, one AF_XDP port and one connection table
 * per rx queue. The director's veths get two queues each; veth hands a frame to the rx queue
 * numbered like the sender's tx queue, which the sender picks by flow hash, so different client
 * connections land on different queues, as RSS spreads them on a NIC.
 * - DR works on any number of queues (every packet of a connection through the director comes
 *   from the client, on one queue): every connection succeeds and both workers carry some;
 * - NAT does not (a reply may arrive on the other queue): the daemon says so in its log when a
 *   NAT real server is added (docs/architecture.md, "Several queues").
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, httpGet, requireRoot, serveOn, stopLab, verdictsOf } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;

/** XDP packets seen per rx queue of a director interface (veth's ethtool statistics). */
async function xdpPacketsPerQueue(iface: string): Promise<number[]> {
  const r = await L.lab.exec(L.director, ["ethtool", "-S", iface]);
  const per: number[] = [];
  for (const m of r.stdout.matchAll(/rx_queue_(\d+)_xdp_packets: (\d+)/g)) per[Number(m[1])] = Number(m[2]);
  return per;
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("q2", { reals: 3, queues: 2 });
  await directReturn(L.lab, L.director, L.reals, [LAB_VIP]);
  for (const h of L.reals) await serveOn(L.lab, h, ["--http", "80"]);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--queues", "2"]);
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("two queues", () => {
  test("DR: every connection succeeds and both queues' workers carry connections", async () => {
    await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 80, scheduler: "rr" });
    for (let i = 1; i <= 3; i++) await apiOk(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:80/dests`, { address: realAddr(i), port: 80, forward: "route" });
    const q0 = await xdpPacketsPerQueue("c0");
    const before = await verdictsOf(xvs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 120, 4);
    const after = await verdictsOf(xvs);
    const q1 = await xdpPacketsPerQueue("c0");
    const perQueue = q1.map((n, i) => n - (q0[i] ?? 0));
    process.stdout.write(`  120 connections: ${r.ok} ok; XDP packets on c0's queues ${perQueue.join(" / ")}; servers ${JSON.stringify(r.byServer)}\n`);
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(120);
    expect(perQueue.length).toBe(2);
    // 120 client ports hashed over two queues: each gets a share (all on one has odds 2^-119)
    expect(Math.min(...perQueue)).toBeGreaterThan(0);
    expect(after.new_conns - before.new_conns).toBe(120);
    expect(after.drop_tcp_no_conn - before.drop_tcp_no_conn).toBe(0);
    expect(after.drop_no_conn - before.drop_no_conn).toBe(0);
  }, 60_000);

  test("NAT: the daemon warns once that replies may arrive on the other queue", async () => {
    await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 8080, scheduler: "rr" });
    await apiOk(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:8080/dests`, { address: realAddr(1), port: 80, forward: "masq" });
    await apiOk(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:8080/dests`, { address: realAddr(2), port: 80, forward: "masq" });
    const warnings = xvs
      .log()
      .split("\n")
      .filter((l) => l.includes("NAT real servers with several queues"));
    expect(warnings.length).toBe(1);
    expect(JSON.parse(warnings[0])).toMatchObject({ level: "warn", queues: 2 });
  }, 30_000);
});
