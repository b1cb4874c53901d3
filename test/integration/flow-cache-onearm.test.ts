/**
 * A one-armed DR director on a veth whose peer has GRO on but no XDP program (a veth into a
 * bridge, as a container host wires it, with GRO turned on at the bridge port). Cached flows go
 * back out of the interface they came in on. After an XDP_TX, veth wakes its peer's NAPI only when
 * the peer has an XDP program (veth_xdp_flush), so XDP_TX'd frames sat in the peer's ring: every
 * held connection stalled once it was cached (found in a throwaway lab: 120 segments sent by
 * XDP_TX, none at the real server). xvs now sends them by a redirect to the same veth
 * (XVS_FPORT_F_TX_REDIRECT, set for every veth port), which flushes.
 *
 * GRO on at the bridge port departs from veth's default on purpose: with the default peer (no
 * NAPI) xvs leaves these flows to AF_XDP (flow-cache-veth.test.ts), and the bug needs NAPI without
 * an XDP program. With XVS_LAB_FLOW_CACHE=off the same connections must work with XDP sending
 * nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as abi from "../../src/ffi/abi.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { Lab } from "../../src/tools/lab/netns.ts";
import { apiOk, HeldConnection, macOf, requireRoot, serveOn } from "./helpers.ts";

const VIP = "198.18.0.100";
const REAL = "198.18.0.21";
const CACHE_ON = process.env.XVS_LAB_FLOW_CACHE !== "off";
let lab: Lab;
let xvs: LabDaemon | undefined;

/** XDP's flow cache transmissions: [XDP_TX, redirect]. */
async function xdpSent(): Promise<[number, number]> {
  const x = ((await xvs!.api("GET", "/v1/stats")).json as { xdp: number[] }).xdp;
  return [x[abi.XVS_XDP_FLOW_TX] ?? 0, x[abi.XVS_XDP_FLOW_REDIRECT] ?? 0];
}

beforeAll(async () => {
  requireRoot();
  lab = new Lab("onearm");
  await lab.addNs("sw");
  await lab.ip("sw", "link", "add", "br0", "type", "bridge");
  await lab.ip("sw", "link", "set", "br0", "up");
  for (const [h, addr] of [
    ["cl", "198.18.0.2"],
    ["da", "198.18.0.11"],
    ["rs", REAL],
  ] as const) {
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "br0");
    await lab.ip(h, "addr", "add", `${addr}/24`, "dev", "eth0");
  }
  // DR real server: the VIP on lo, not answering ARP for it
  await lab.ip("rs", "addr", "add", `${VIP}/32`, "dev", "lo");
  for (const k of ["all", "eth0"]) {
    await lab.sysctl("rs", `net.ipv4.conf.${k}.arp_ignore`, 1);
    await lab.sysctl("rs", `net.ipv4.conf.${k}.arp_announce`, 2);
  }
  await lab.ip("da", "addr", "add", `${VIP}/32`, "dev", "lo");
  await serveOn(lab, "rs", ["--name", "rs1", "--tcp", "7000"]);
  await lab.exec("sw", ["ethtool", "-K", "pda", "gro", "on"]); // NAPI, no XDP program: see the header
  await lab.ip("cl", "neigh", "replace", VIP, "lladdr", await macOf(lab, "da", "eth0"), "dev", "eth0", "nud", "permanent");
  xvs = await startDaemon(lab, "da", ["eth0"]);
  await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: 7000, scheduler: "rr" });
  await apiOk(xvs, "POST", `/v1/services/tcp:${VIP}:7000/dests`, { address: REAL, port: 7000, forward: "route", weight: 1 });
}, 120_000);

afterAll(async () => {
  await xvs?.stop();
  await lab?.teardown();
}, 30_000);

describe("one-armed DR on a veth whose peer has GRO but no XDP program", () => {
  test("8 held connections, 10 exchanges each: every reply comes; cached frames leave by redirect, never XDP_TX", async () => {
    const [tx0, rd0] = await xdpSent();
    const cs = await Promise.all(Array.from({ length: 8 }, () => HeldConnection.open(lab, "cl", VIP, 7000)));
    try {
      for (let i = 0; i < 10; i++) {
        const t = `l${i}`;
        const got = await Promise.all(cs.map((c) => c.ask(t)));
        expect(got).toEqual(cs.map(() => `rs1 ${t}`));
      }
    } finally {
      for (const c of cs) c.close();
    }
    const [tx1, rd1] = await xdpSent();
    process.stdout.write(`  XDP sent: ${tx1 - tx0} by XDP_TX, ${rd1 - rd0} by redirect (cache ${CACHE_ON ? "on" : "off"})\n`);
    expect(tx1 - tx0).toBe(0);
    // with the cache on, most of the 80 exchanges' client segments are forwarded by XDP
    if (CACHE_ON) expect(rd1 - rd0).toBeGreaterThan(40);
    else expect(rd1 - rd0).toBe(0);
  }, 90_000);
});
