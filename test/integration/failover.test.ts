/**
 * Failover with the sync daemon: two xvs directors (da, db) on one L2 segment, two DR real
 * servers that hold the VIP on lo (198.18.0.0/24, port 7000), two NAT real servers on another
 * subnet of the same segment (198.18.1.0/24, port 7001) whose default gateway is the directors'
 * shared inside address 198.18.1.254, two TUN (ipip) real servers on the segment with the VIP on
 * lo and xvs's XDP decap helper (port 7002), and a client. da runs the master sync daemon, db the backup,
 * both with the same services. 100 TCP connections per service are opened through da and each
 * talks once (its third packet is the one the kernel's rule syncs); db must then hold all 300 (its
 * backup daemon counts them installed). da is SIGKILLed and the paths moved to db the way a VRRP
 * takeover's gratuitous ARPs move them (the client's neighbour entry for the VIP and the NAT real
 * servers' entry for their gateway now name db's MAC). Every held connection must go on talking
 * to the same real server, through db, without a new handshake.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Lab } from "../../src/tools/lab/netns.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { apiOk, decap, macOf, requireRoot, serveOn, verdictsOf, FailoverClient, waitFor } from "./helpers.ts";

const VIP = "198.18.0.100";
const CLIENT = "198.18.0.2";
const DA = "198.18.0.11";
const DB = "198.18.0.12";
const REALS = ["198.18.0.21", "198.18.0.22"];
const NAT_REALS = ["198.18.1.21", "198.18.1.22"];
/** TUN real servers: on the segment, the VIP on lo, ipip stripped by xvs's XDP decap helper. */
const TUN_REALS = ["198.18.0.31", "198.18.0.32"];
const TUN_PORT = 7002;
/** The NAT real servers' gateway: the directors' inside address, moved with the VIP. */
const INSIDE_GW = "198.18.1.254";
const PORT = 7000;
const NAT_PORT = 7001;
const CONNS = 100;

let lab: Lab;
let xa: LabDaemon;
let xb: LabDaemon;
const clients: FailoverClient[] = [];
/** Clients of earlier tests, kept open until the end (closing them would send state changes into later counts). */
const idle: FailoverClient[] = [];

async function director(name: string, addr: string): Promise<void> {
  await lab.addNs(name);
  await lab.veth(name, "eth0", "sw", `p${name}`);
  await lab.ip("sw", "link", "set", `p${name}`, "master", "br0");
  await lab.ip(name, "addr", "add", `${addr}/24`, "dev", "eth0");
  await lab.ip(name, "addr", "add", `${VIP}/32`, "dev", "lo");
  await lab.ip(name, "addr", "add", `${addr.replace("198.18.0.", "198.18.1.")}/24`, "dev", "eth0");
  await lab.ip(name, "addr", "add", `${INSIDE_GW}/32`, "dev", "lo");
}

async function service(x: LabDaemon): Promise<void> {
  await apiOk(x, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: PORT, scheduler: "rr" });
  for (const r of REALS) await apiOk(x, "POST", `/v1/services/tcp:${VIP}:${PORT}/dests`, { address: r, port: PORT, forward: "route", weight: 1 });
  await apiOk(x, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: NAT_PORT, scheduler: "rr" });
  for (const r of NAT_REALS) await apiOk(x, "POST", `/v1/services/tcp:${VIP}:${NAT_PORT}/dests`, { address: r, port: NAT_PORT, forward: "masq", weight: 1 });
  await apiOk(x, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: TUN_PORT, scheduler: "rr" });
  for (const r of TUN_REALS)
    await apiOk(x, "POST", `/v1/services/tcp:${VIP}:${TUN_PORT}/dests`, { address: r, port: TUN_PORT, forward: "tunnel", weight: 1, tunnel: { type: "ipip" } });
}

beforeAll(async () => {
  requireRoot();
  await Lab.cleanupStale();
  lab = new Lab("fo");
  await lab.addNs("sw");
  await lab.ip("sw", "link", "add", "br0", "type", "bridge");
  await lab.ip("sw", "link", "set", "br0", "up");
  await lab.addNs("cl");
  await lab.veth("cl", "eth0", "sw", "pcl");
  await lab.ip("sw", "link", "set", "pcl", "master", "br0");
  await lab.ip("cl", "addr", "add", `${CLIENT}/24`, "dev", "eth0");
  await director("da", DA);
  await director("db", DB);
  for (let i = 0; i < REALS.length; i++) {
    const h = `rs${i + 1}`;
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "br0");
    await lab.ip(h, "addr", "add", `${REALS[i]}/24`, "dev", "eth0");
    await lab.ip(h, "addr", "add", `${VIP}/32`, "dev", "lo");
    for (const k of ["all", "eth0"]) {
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_ignore`, 1);
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_announce`, 2);
    }
    await serveOn(lab, h, ["--tcp", String(PORT)]);
  }
  for (let i = 0; i < TUN_REALS.length; i++) {
    const h = `trs${i + 1}`;
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "br0");
    await lab.ip(h, "addr", "add", `${TUN_REALS[i]}/24`, "dev", "eth0");
    await lab.ip(h, "addr", "add", `${VIP}/32`, "dev", "lo");
    for (const k of ["all", "eth0"]) {
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_ignore`, 1);
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_announce`, 2);
      await lab.sysctl(h, `net.ipv4.conf.${k}.rp_filter`, 0);
    }
    await decap(lab, h, ["attach", "eth0"]);
    await serveOn(lab, h, ["--tcp", String(TUN_PORT)]);
  }
  for (let i = 0; i < NAT_REALS.length; i++) {
    const h = `nrs${i + 1}`;
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "br0");
    await lab.ip(h, "addr", "add", `${NAT_REALS[i]}/24`, "dev", "eth0");
    await lab.ip(h, "route", "add", "default", "via", INSIDE_GW);
    await lab.ip(h, "neigh", "replace", INSIDE_GW, "lladdr", await macOf(lab, "da", "eth0"), "dev", "eth0", "nud", "permanent");
    await serveOn(lab, h, ["--tcp", String(NAT_PORT)]);
  }
  // the VIP is da's, as after a VRRP election: the client's neighbour entry names da
  await lab.ip("cl", "neigh", "replace", VIP, "lladdr", await macOf(lab, "da", "eth0"), "dev", "eth0", "nud", "permanent");
  xa = await startDaemon(lab, "da", ["eth0"]);
  xb = await startDaemon(lab, "db", ["eth0"]);
  await service(xa);
  await service(xb);
  expect((await xb.adm(["--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "5"])).code).toBe(0);
  expect((await xa.adm(["--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "5"])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const c of [...clients, ...idle]) c.proc.kill();
  await xb?.stop();
  await xa?.stop();
  await lab?.teardown();
}, 30_000);

describe("failover with the sync daemon", () => {
  test("-L --daemon on each director shows its daemon as ipvsadm 1.31 prints it", async () => {
    expect((await xa.adm(["-L", "--daemon"])).stdout).toBe("master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
    expect((await xb.adm(["-L", "--daemon"])).stdout).toBe("backup sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
  });

  test("an IPv6 group carries them too: ff02::1:81 on the link, 100 connections installed", async () => {
    const start = async (group: string[], syncid: string) => {
      expect((await xb.adm(["--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", syncid, ...group])).code).toBe(0);
      expect((await xa.adm(["--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", syncid, ...group])).code).toBe(0);
    };
    const stop = async () => {
      expect((await xa.adm(["--stop-daemon", "master"])).code).toBe(0);
      expect((await xb.adm(["--stop-daemon", "backup"])).code).toBe(0);
    };
    await stop();
    await start(["--mcast-group", "ff02::1:81"], "6");
    expect((await xa.adm(["-L", "--daemon"])).stdout).toBe("master sync daemon (mcast=eth0, syncid=6, maxlen=1452, group=ff02::1:81, port=8848, ttl=1)\n");
    const c = new FailoverClient(lab, "cl", VIP, PORT, CONNS);
    idle.push(c);
    expect(await c.line(30_000)).toBe(`connected ${CONNS}`);
    expect((await c.ask("v6")).failed).toBe(0);
    const st = await waitFor(
      "backup installs over IPv6",
      async () => (await xb.api("GET", "/v1/daemons/backup/stats")).json as { created: number; drops: Record<string, number> },
      (x) => x.created >= CONNS,
      15_000,
    );
    expect(st.created).toBe(CONNS);
    expect(st.drops).toEqual({});
    // back to the default group for the failover
    await stop();
    await start([], "5");
  }, 60_000);

  test("100 held DR, NAT and TUN connections each survive the master's SIGKILL: the backup forwards each to the same real server", async () => {
    clients.push(
      new FailoverClient(lab, "cl", VIP, PORT, CONNS),
      new FailoverClient(lab, "cl", VIP, NAT_PORT, CONNS),
      new FailoverClient(lab, "cl", VIP, TUN_PORT, CONNS),
    );
    for (const c of clients) expect(await c.line(30_000)).toBe(`connected ${CONNS}`);
    const before = await Promise.all(clients.map((c) => c.ask("before")));
    for (const b of before) expect(b.failed).toBe(0);
    // rr over two real servers: half each
    expect(before[0].servers.filter((s) => s === "rs1").length).toBe(CONNS / 2);
    expect(before[1].servers.filter((s) => s === "nrs1").length).toBe(CONNS / 2);
    expect(before[2].servers.filter((s) => s === "trs1").length).toBe(CONNS / 2);

    // the third packet of each connection was sent; a half-full message leaves within 2-3 s
    const stats = await waitFor(
      "backup installs",
      async () => (await xb.api("GET", "/v1/daemons/backup/stats")).json as { created: number; drops: Record<string, number> },
      (s) => s.created >= 3 * CONNS,
      15_000,
    );
    expect(stats.created).toBe(3 * CONNS);
    expect(stats.drops).toEqual({});
    const master = (await xa.api("GET", "/v1/daemons/master/stats")).json as { records: number; messages: number; feedLost: number };
    expect(master.records).toBe(3 * CONNS);
    expect(master.feedLost).toBe(0);
    // db's table lists them: ESTABLISHED, to the real servers da chose
    const listing = (await xb.adm(["-Lnc"])).stdout.split("\n");
    // (port 7000 also holds the IPv6-group test's 100)
    for (const p of [PORT, NAT_PORT, TUN_PORT])
      expect(listing.filter((l) => l.includes("ESTABLISHED") && l.includes(`${VIP}:${p}`)).length).toBe(p === PORT ? 2 * CONNS : CONNS);

    xa.proc.kill(9);
    await xa.proc.exited;
    // VRRP's takeover: the VIP and the inside gateway now resolve to db
    const macB = await macOf(lab, "db", "eth0");
    await lab.ip("cl", "neigh", "replace", VIP, "lladdr", macB, "dev", "eth0", "nud", "permanent");
    for (const h of ["nrs1", "nrs2"]) await lab.ip(h, "neigh", "replace", INSIDE_GW, "lladdr", macB, "dev", "eth0", "nud", "permanent");
    const v0 = await verdictsOf(xb);
    const after = await Promise.all(clients.map((c) => c.ask("after")));
    for (let i = 0; i < 3; i++) {
      expect(after[i].failed).toBe(0);
      expect(after[i].servers).toEqual(before[i].servers);
    }
    const v1 = await verdictsOf(xb);
    // every line went through db as a packet of a known connection: no new connection
    expect(v1.fwd_in - v0.fwd_in).toBeGreaterThanOrEqual(3 * CONNS);
    expect((v1.new_conns ?? 0) - (v0.new_conns ?? 0)).toBe(0);
    const again = await Promise.all(clients.map((c) => c.ask("again")));
    for (let i = 0; i < 3; i++) expect(again[i].servers).toEqual(before[i].servers);
  }, 90_000);
});
