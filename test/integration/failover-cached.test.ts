/**
 * Failover of connections whose packets the XDP flow cache forwards (docs/sync.md, flowcache.ts
 * "Sync master"). Two xvs directors (da, db), each cabled as an operator would with two NICs: a
 * client side (c0, on bridge brc with the client) and a server side (s0, on bridge brs with two
 * NAT real servers), so a cached NAT flow is redirected from one veth to the other. The switch's
 * ports towards the directors have GRO on: a veth whose peer has NAPI takes XDP frames, so XDP
 * really forwards the cached flows (with default peers xvs leaves them to AF_XDP and the test
 * would not meet the case; docs/flow-cache.md "veth peers"). The client reaches the VIP through
 * the gateway 198.18.1.254 and the real servers answer through 198.18.2.254, both held by the
 * directors on lo: their permanent neighbour entries name da's MACs, then db's, as a VRRP
 * takeover's gratuitous ARPs would move them.
 *
 * da runs the master sync daemon, db the backup. CONNS held TCP connections through da talk
 * ROUNDS times, so that XDP forwards their packets past the kernel's sync points (3rd packet,
 * 53rd, ...): db must list every one, and after da's SIGKILL every one goes on talking to the same
 * real server through db. Without the fix, the master sent no record for them (the 3rd packet and
 * every later one went by XDP).
 *
 * The directors take --flow-cache from XVS_LAB_FLOW_CACHE (on by default, as `xvs run`): with it
 * off the same failover must hold and XDP must forward nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as abi from "../../src/ffi/abi.ts";
import { Lab } from "../../src/tools/lab/netns.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { apiOk, macOf, requireRoot, serveOn, verdictsOf, FailoverClient, waitFor } from "./helpers.ts";

const VIP = "198.18.0.100";
const CLIENT = "198.18.1.2";
/** The client side's gateway and the real servers' (VRRP addresses, on both directors' lo). */
const OUTSIDE_GW = "198.18.1.254";
const INSIDE_GW = "198.18.2.254";
const NAT_REALS = ["198.18.2.21", "198.18.2.22"];
const PORT = 7001;
const CONNS = 20;
/** Exchanges per connection before the failover: each sends a client packet or two, so XDP forwards past the 53rd. */
const ROUNDS = 60;
const CACHE_ON = process.env.XVS_LAB_FLOW_CACHE !== "off";

let lab: Lab;
let xa: LabDaemon;
let xb: LabDaemon;
let client: FailoverClient;

/** Packets the steering program forwarded from the flow cache (XDP_TX + redirect). */
async function cachedPackets(x: LabDaemon): Promise<number> {
  const v = ((await x.api("GET", "/v1/stats")).json as { xdp: number[] }).xdp;
  return (v[abi.XVS_XDP_FLOW_TX] ?? 0) + (v[abi.XVS_XDP_FLOW_REDIRECT] ?? 0);
}

async function director(name: string, last: number): Promise<void> {
  await lab.addNs(name);
  for (const [ifn, br, net] of [
    ["c0", "brc", "198.18.1"],
    ["s0", "brs", "198.18.2"],
  ]) {
    const port = `${name}${ifn}`;
    await lab.veth(name, ifn, "sw", port);
    await lab.ip("sw", "link", "set", port, "master", br);
    // NAPI at the director's peer, so that it takes the frames XDP redirects (see the top)
    await lab.exec("sw", ["ethtool", "-K", port, "gro", "on"]);
    await lab.ip(name, "addr", "add", `${net}.${last}/24`, "dev", ifn);
  }
  for (const a of [VIP, OUTSIDE_GW, INSIDE_GW]) await lab.ip(name, "addr", "add", `${a}/32`, "dev", "lo");
  await lab.sysctl(name, "net.ipv4.ip_forward", 1);
}

async function service(x: LabDaemon): Promise<void> {
  await apiOk(x, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: PORT, scheduler: "rr" });
  for (const r of NAT_REALS) await apiOk(x, "POST", `/v1/services/tcp:${VIP}:${PORT}/dests`, { address: r, port: PORT, forward: "masq", weight: 1 });
}

/** Point the client's and the real servers' gateways at `dir`'s MACs. */
async function pathTo(dir: string): Promise<void> {
  await lab.ip("cl", "neigh", "replace", OUTSIDE_GW, "lladdr", await macOf(lab, dir, "c0"), "dev", "eth0", "nud", "permanent");
  const inside = await macOf(lab, dir, "s0");
  for (const h of ["nrs1", "nrs2"]) await lab.ip(h, "neigh", "replace", INSIDE_GW, "lladdr", inside, "dev", "eth0", "nud", "permanent");
}

beforeAll(async () => {
  requireRoot();
  await Lab.cleanupStale();
  lab = new Lab("foc");
  await lab.addNs("sw");
  for (const br of ["brc", "brs"]) {
    await lab.ip("sw", "link", "add", br, "type", "bridge");
    await lab.ip("sw", "link", "set", br, "up");
  }
  await lab.addNs("cl");
  await lab.veth("cl", "eth0", "sw", "pcl");
  await lab.ip("sw", "link", "set", "pcl", "master", "brc");
  await lab.ip("cl", "addr", "add", `${CLIENT}/24`, "dev", "eth0");
  await lab.ip("cl", "route", "add", `${VIP}/32`, "via", OUTSIDE_GW);
  await director("da", 11);
  await director("db", 12);
  for (let i = 0; i < NAT_REALS.length; i++) {
    const h = `nrs${i + 1}`;
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "brs");
    await lab.ip(h, "addr", "add", `${NAT_REALS[i]}/24`, "dev", "eth0");
    await lab.ip(h, "route", "add", "default", "via", INSIDE_GW);
    await serveOn(lab, h, ["--tcp", String(PORT)]);
  }
  await pathTo("da");
  xa = await startDaemon(lab, "da", ["c0", "s0"]);
  xb = await startDaemon(lab, "db", ["c0", "s0"]);
  await service(xa);
  await service(xb);
  expect((await xb.adm(["--start-daemon", "backup", "--mcast-interface", "s0", "--syncid", "7"])).code).toBe(0);
  expect((await xa.adm(["--start-daemon", "master", "--mcast-interface", "s0", "--syncid", "7"])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  client?.proc.kill();
  await xb?.stop();
  await xa?.stop();
  await lab?.teardown();
}, 30_000);

describe(`failover of connections the flow cache forwards (flow cache ${CACHE_ON ? "on" : "off"})`, () => {
  test("held NAT connections reach the backup while XDP forwards them, and survive the master's SIGKILL", async () => {
    client = new FailoverClient(lab, "cl", VIP, PORT, CONNS);
    expect(await client.line(30_000)).toBe(`connected ${CONNS}`);
    const xdp0 = await cachedPackets(xa);
    const before = await client.ask("r0");
    expect(before.failed).toBe(0);
    expect(before.servers.filter((s) => s === "nrs1").length).toBe(CONNS / 2);
    for (let r = 1; r < ROUNDS; r++) {
      const a = await client.ask(`r${r}`);
      expect(a.failed).toBe(0);
      expect(a.servers).toEqual(before.servers);
    }
    // the flow cache really forwarded them (both ways): at least a client packet per round and connection
    const xdp = (await cachedPackets(xa)) - xdp0;
    if (CACHE_ON) expect(xdp).toBeGreaterThanOrEqual((ROUNDS - 2) * CONNS);
    else expect(xdp).toBe(0);

    // each connection's 3rd client packet (the fast path's) and its 53rd (XDP's, fed at a fold):
    // two records or more each, and the backup lists all of them, ESTABLISHED, to da's choice
    const master = await waitFor(
      "master records",
      async () => (await xa.api("GET", "/v1/daemons/master/stats")).json as { records: number; feedLost: number },
      (m) => m.records >= 2 * CONNS,
      15_000,
    );
    expect(master.feedLost).toBe(0);
    const backup = await waitFor(
      "backup installs",
      async () => (await xb.api("GET", "/v1/daemons/backup/stats")).json as { created: number; updated: number; drops: Record<string, number> },
      (s) => s.created >= CONNS && s.updated >= CONNS,
      15_000,
    );
    expect(backup.created).toBe(CONNS);
    expect(backup.drops).toEqual({});
    const listing = (await xb.adm(["-Lnc"])).stdout.split("\n").filter((l) => l.includes(`${VIP}:${PORT}`));
    expect(listing.filter((l) => l.includes("ESTABLISHED")).length).toBe(CONNS);
    for (let i = 0; i < NAT_REALS.length; i++)
      expect(listing.filter((l) => l.includes(`${NAT_REALS[i]}:${PORT}`)).length).toBe(before.servers.filter((s) => s === `nrs${i + 1}`).length);

    xa.proc.kill(9);
    await xa.proc.exited;
    await pathTo("db");
    const v0 = await verdictsOf(xb);
    const after = await client.ask("after");
    expect(after.failed).toBe(0);
    expect(after.servers).toEqual(before.servers);
    const v1 = await verdictsOf(xb);
    // through db as packets of connections it knows: no new connection
    expect(v1.fwd_in - v0.fwd_in).toBeGreaterThanOrEqual(CONNS);
    expect((v1.new_conns ?? 0) - (v0.new_conns ?? 0)).toBe(0);
    // and they keep talking (db caches them in turn when its cache is on)
    for (let r = 0; r < 5; r++) expect((await client.ask(`again${r}`)).servers).toEqual(before.servers);
  }, 120_000);
});
