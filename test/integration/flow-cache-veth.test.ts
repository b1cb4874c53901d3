/**
 * The flow cache on veths (docs/flow-cache.md "veth peers"): a veth takes the frames XDP sends
 * into it only when its peer has NAPI (GRO on, or an XDP program: veth_xdp_xmit), and default
 * veth peers have neither. The lab (topology.ts) keeps the defaults, as containers have them:
 * - default peers: the ports are marked before the first packet (the kernel's XDP features of a
 *   veth say whether its peer has NAPI), every connection works, XDP sends nothing, the log says
 *   what to do, /metrics shows the marks;
 * - peers with GRO turned on while xvs runs: the marks go, XDP forwards the cached flows
 *   (its counters rise); GRO off again: marked again, connections still work.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as abi from "../../src/ffi/abi.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { HeldConnection, requireRoot, startServers, stopLab } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon | undefined;

async function ok(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await xvs!.api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Packets the steering program forwarded from the flow cache (XDP_TX + redirect). */
async function cachedPackets(): Promise<number> {
  const x = ((await xvs!.api("GET", "/v1/stats")).json as { xdp: number[] }).xdp;
  return (x[abi.XVS_XDP_FLOW_TX] ?? 0) + (x[abi.XVS_XDP_FLOW_REDIRECT] ?? 0);
}

/** The samples of metric `name` by its iface label. */
async function perIface(name: string): Promise<Map<string, number>> {
  const r = await xvs!.api("GET", "/metrics");
  const text = typeof r.json === "string" ? r.json : JSON.stringify(r.json);
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const g = new RegExp(`^${name}\\{iface="([^"]+)"\\} (\\d+)`).exec(line);
    if (g) m.set(g[1], Number(g[2]));
  }
  return m;
}

/** `conns` TCP connections to the service, `lines` exchanges on each; every reply must come. */
async function traffic(port: number, conns: number, lines: number): Promise<void> {
  const cs = await Promise.all(Array.from({ length: conns }, () => HeldConnection.open(L.lab, L.client, LAB_VIP, port)));
  for (let i = 0; i < lines; i++) {
    const t = `l${i.toString().padStart(3, "0")}`;
    const got = await Promise.all(cs.map((c) => c.ask(t)));
    for (const g of got) expect(g).toBe(`rs1 ${t}`);
  }
  for (const c of cs) c.close();
}

async function service(port: number): Promise<void> {
  await ok("POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port, scheduler: "rr" });
  await ok("POST", `/v1/services/tcp:${LAB_VIP}:${port}/dests`, { address: realAddr(1), port: 7000, forward: "masq" });
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("flowv", { reals: 1 });
  // the hosts keep veth's default offloads (XDP completes their partial checksums itself)
  await startServers(L.lab, L.reals);
}, 60_000);

afterAll(() => stopLab(xvs, L), 30_000);

/** Until `f` holds (polled every 100 ms, at most `ms`): housekeeping runs every 200 ms. */
async function until(f: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(100);
  }
}

describe("flow cache on veths", () => {
  test("default peers (GRO off): the ports are marked before any packet, every connection works, nothing sent by XDP", async () => {
    // --flow-cache on whatever XVS_LAB_FLOW_CACHE says: the marks and XDP's counters are the
    // cache's (with the cache off there is nothing to mark); the cache-off run leaves this file out
    xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--flow-cache", "on"]);
    const noXdp = await perIface("xvs_flow_cache_port_no_xdp");
    for (const i of L.ifaces) expect(noXdp.get(i)).toBe(1);
    expect(xvs.log()).toContain("enable GRO on the veth peer");
    await service(7100);
    await traffic(7100, 4, 30);
    // the flows were cached, but XDP left every packet to AF_XDP, so none was lost
    expect(await cachedPackets()).toBe(0);
    const lost = await perIface("xvs_flow_cache_veth_xdp_lost_total");
    const marks = await perIface("xvs_flow_cache_port_no_xdp_marks_total");
    for (const i of L.ifaces) {
      expect(lost.get(i)).toBe(0);
      expect(marks.get(i)).toBe(1);
    }
  }, 120_000);

  test("peers with GRO on: the ports are unmarked without a restart and XDP forwards the cached flows", async () => {
    // departs from the defaults on purpose: GRO gives the peers NAPI, which is what lets a veth
    // take XDP frames (veth_xdp_xmit); the bench runs this way to measure the XDP path
    const peers = [
      ["eth0", "cl"],
      ["p0", "sw"],
    ]; // the peers of c0 and s0 (topology.ts)
    for (const [dev, ns] of peers) await L.lab.exec(ns, ["ethtool", "-K", dev, "gro", "on"]);
    try {
      expect(await until(async () => [...(await perIface("xvs_flow_cache_port_no_xdp")).values()].every((v) => v === 0), 5000)).toBe(true);
      expect(xvs!.log()).toContain("forwarded by XDP again");
      await service(7200);
      const before = await cachedPackets();
      await traffic(7200, 4, 30);
      expect(await cachedPackets()).toBeGreaterThan(before + 100);
      const lost = await perIface("xvs_flow_cache_veth_xdp_lost_total");
      for (const i of L.ifaces) expect(lost.get(i)).toBe(0);
    } finally {
      for (const [dev, ns] of peers) await L.lab.exec(ns, ["ethtool", "-K", dev, "gro", "off"]);
    }
    // GRO off again: marked again at the next pass
    expect(await until(async () => [...(await perIface("xvs_flow_cache_port_no_xdp")).values()].every((v) => v === 1), 5000)).toBe(true);
    await traffic(7200, 2, 10);
  }, 120_000);
});
