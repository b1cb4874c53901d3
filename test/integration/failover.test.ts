/**
 * Failover with the sync daemon: two xvs directors (da, db) on one L2 segment with two DR real
 * servers that hold the VIP on lo, and a client. da runs the master sync daemon, db the backup,
 * both with the same service. 100 TCP connections are opened through da and each talks once (its
 * third packet is the one the kernel's rule syncs); db must then hold all 100 (its backup daemon
 * counts them installed). da is SIGKILLed and the client's path to the VIP moved to db the way a
 * VRRP takeover's gratuitous ARP moves it (the client's neighbour entry for the VIP now names db's
 * MAC). Every held connection must go on talking to the same real server, through db, without a
 * new handshake; db's listing shows them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Lab } from "../../src/tools/lab/netns.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { apiOk, macOf, requireRoot, serveOn, verdictsOf } from "./helpers.ts";

const VIP = "198.18.0.100";
const CLIENT = "198.18.0.2";
const DA = "198.18.0.11";
const DB = "198.18.0.12";
const REALS = ["198.18.0.21", "198.18.0.22"];
const PORT = 7000;
const CONNS = 100;

let lab: Lab;
let xa: LabDaemon;
let xb: LabDaemon;
let client: ReturnType<Lab["spawn"]>;
let out = "";

async function nextLine(timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!out.includes("\n")) {
    if (Date.now() > deadline) throw new Error(`client said nothing in time (so far: ${out})`);
    await Bun.sleep(20);
  }
  const i = out.indexOf("\n");
  const l = out.slice(0, i);
  out = out.slice(i + 1);
  return l;
}

async function ask(tag: string): Promise<{ answered: number; failed: number; servers: (string | null)[] }> {
  const stdin = client.stdin as unknown as { write(s: string): void; flush(): void };
  stdin.write(`ask ${tag}\n`);
  stdin.flush();
  return JSON.parse(await nextLine(20_000));
}

async function director(name: string, addr: string): Promise<void> {
  await lab.addNs(name);
  await lab.veth(name, "eth0", "sw", `p${name}`);
  await lab.ip("sw", "link", "set", `p${name}`, "master", "br0");
  await lab.ip(name, "addr", "add", `${addr}/24`, "dev", "eth0");
  await lab.ip(name, "addr", "add", `${VIP}/32`, "dev", "lo");
}

async function service(x: LabDaemon): Promise<void> {
  await apiOk(x, "POST", "/v1/services", { protocol: "tcp", address: VIP, port: PORT, scheduler: "rr" });
  for (const r of REALS) await apiOk(x, "POST", `/v1/services/tcp:${VIP}:${PORT}/dests`, { address: r, port: PORT, forward: "route", weight: 1 });
}

async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await Bun.sleep(200);
  }
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
  client?.kill();
  await xb?.stop();
  await xa?.stop();
  await lab?.teardown();
}, 30_000);

describe("failover with the sync daemon", () => {
  test("-L --daemon on each director shows its daemon as ipvsadm 1.31 prints it", async () => {
    expect((await xa.adm(["-L", "--daemon"])).stdout).toBe("master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
    expect((await xb.adm(["-L", "--daemon"])).stdout).toBe("backup sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
  });

  test("100 held connections survive the master's SIGKILL: the backup forwards each to the same real server", async () => {
    client = lab.spawn("cl", [process.execPath, join(import.meta.dir, "failover-client.ts"), "--host", VIP, "--port", String(PORT), "--conns", String(CONNS)], {
      stdin: "pipe",
    });
    void (async () => {
      const dec = new TextDecoder();
      for await (const c of client.stdout as ReadableStream<Uint8Array>) out += dec.decode(c);
    })();
    expect(await nextLine(30_000)).toBe(`connected ${CONNS}`);
    const before = await ask("before");
    expect(before.failed).toBe(0);
    // rr over two real servers: half each
    expect(before.servers.filter((s) => s === "rs1").length).toBe(CONNS / 2);

    // the third packet of each connection was sent; a half-full message leaves within 2-3 s
    const stats = await waitFor(
      "backup installs",
      async () => (await xb.api("GET", "/v1/daemons/backup/stats")).json as { created: number; drops: Record<string, number> },
      (s) => s.created >= CONNS,
      15_000,
    );
    expect(stats.created).toBe(CONNS);
    expect(stats.drops).toEqual({});
    const master = (await xa.api("GET", "/v1/daemons/master/stats")).json as { records: number; messages: number; feedLost: number };
    expect(master.records).toBe(CONNS);
    expect(master.feedLost).toBe(0);
    // db's table lists them: ESTABLISHED, to the real servers da chose
    const listing = (await xb.adm(["-Lnc"])).stdout;
    expect(listing.split("\n").filter((l) => l.includes("ESTABLISHED") && l.includes(`${VIP}:${PORT}`)).length).toBe(CONNS);

    xa.proc.kill(9);
    await xa.proc.exited;
    // VRRP's takeover: the VIP's address now resolves to db
    await lab.ip("cl", "neigh", "replace", VIP, "lladdr", await macOf(lab, "db", "eth0"), "dev", "eth0", "nud", "permanent");
    const v0 = await verdictsOf(xb);
    const after = await ask("after");
    expect(after.failed).toBe(0);
    expect(after.servers).toEqual(before.servers);
    const v1 = await verdictsOf(xb);
    // every line went through db as a packet of a known connection: no new connection, no drop
    expect(v1.fwd_in - v0.fwd_in).toBeGreaterThanOrEqual(CONNS);
    expect((v1.new_conns ?? 0) - (v0.new_conns ?? 0)).toBe(0);
    const again = await ask("again");
    expect(again.servers).toEqual(before.servers);
  }, 90_000);
});
