/**
 * The XDP flow cache end to end (docs/flow-cache.md): established connections forwarded by the
 * steering program itself, with the TypeScript fast path still the authority. Each test checks
 * first that the cache did forward (the steering program's FLOW_TX / FLOW_REDIRECT counters
 * moved), then what must hold:
 * - the same traffic gives the same service and real-server counters with the cache on and off;
 * - a removed real server stops getting cached traffic at once;
 * - a FIN moves a cached connection to FIN_WAIT/TIME_WAIT through the TypeScript state machine;
 * - an idle cached connection expires on time (never before its timeout), a busy one outlives it;
 * - a real server's MAC change reaches the cached flows.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
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

interface Traffic {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}
async function serviceTraffic(proto: string, port: number): Promise<{ svc: Traffic; dests: Traffic[] }> {
  const s = (await ok("GET", `/v1/services/${proto}:${LAB_VIP}:${port}`)) as { stats: Traffic; dests: { stats: Traffic }[] };
  return { svc: s.stats, dests: s.dests.map((d) => d.stats) };
}

async function conns(): Promise<{ protocol: string; state: string; expiresSec: number; client: { port: number } }[]> {
  return ((await ok("GET", "/v1/conns")) as { conns: { protocol: string; state: string; expiresSec: number; client: { port: number } }[] }).conns;
}

/** One UDP socket (one source port) from the client: ask() sends a line, returns the reply or "timeout". */
class UdpFlow {
  private buf = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private constructor(private readonly proc: ReturnType<DirectorLab["lab"]["spawn"]>) {
    this.reader = (proc.stdout as ReadableStream<Uint8Array>).getReader() as ReadableStreamDefaultReader<Uint8Array>;
  }
  static async open(port: number, waitMs = 1000): Promise<UdpFlow> {
    const p = L.lab.spawn(L.client, [process.execPath, join(import.meta.dir, "flow-cache-udp.ts"), LAB_VIP, String(port), String(waitMs)], { stdin: "pipe" });
    const f = new UdpFlow(p);
    expect(await f.line()).toBe("ready");
    return f;
  }
  private async line(): Promise<string> {
    const deadline = Date.now() + 30_000;
    while (!this.buf.includes("\n")) {
      const r = await Promise.race([this.reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
      if (r === null || r.done) throw new Error(`udp flow helper: no line (${this.buf})`);
      this.buf += new TextDecoder().decode(r.value);
    }
    const i = this.buf.indexOf("\n");
    const l = this.buf.slice(0, i);
    this.buf = this.buf.slice(i + 1);
    return l;
  }
  async ask(text: string): Promise<string> {
    const stdin = this.proc.stdin as unknown as { write(s: string): void; flush(): void };
    stdin.write(`${text}\n`);
    stdin.flush();
    return this.line();
  }
  close(): void {
    (this.proc.stdin as unknown as { end(): void }).end();
  }
}

/** Until `f` holds (polled every 100 ms, at most `ms`): folds and expiry run on their own clocks. */
async function until(f: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(100);
  }
}

async function start(cache: "on" | "off"): Promise<void> {
  await xvs?.stop();
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--flow-cache", cache]);
}

/** The same traffic for the counters test: 40 UDP exchanges on one flow, 40 lines on one TCP connection. */
async function sameTraffic(udpPort: number, tcpPort: number): Promise<void> {
  await ok("POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: udpPort, scheduler: "rr" });
  await ok("POST", `/v1/services/udp:${LAB_VIP}:${udpPort}/dests`, { address: realAddr(1), port: 9000, forward: "masq" });
  await ok("POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: tcpPort, scheduler: "rr" });
  await ok("POST", `/v1/services/tcp:${LAB_VIP}:${tcpPort}/dests`, { address: realAddr(1), port: 7000, forward: "masq" });
  const u = await UdpFlow.open(udpPort);
  for (let i = 0; i < 40; i++) expect(await u.ask(`u${i.toString().padStart(3, "0")}`)).toBe(`rs1 u${i.toString().padStart(3, "0")}`);
  u.close();
  const t = await HeldConnection.open(L.lab, L.client, LAB_VIP, tcpPort);
  for (let i = 0; i < 40; i++) expect(await t.ask(`t${i.toString().padStart(3, "0")}`)).toBe(`rs1 t${i.toString().padStart(3, "0")}`);
  t.close();
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("flowc", { reals: 2 });
  // the hosts keep veth's default offloads: their partial L4 checksums are completed by the XDP
  // program itself for cached flows (xvs_flow.h), as TS does for the rest (wire/partial-csum.ts)
  // these tests are about what XDP forwards, so the director's veth peers get NAPI (GRO on), a
  // departure from the defaults: default peers do not take XDP frames and xvs leaves their flows
  // to AF_XDP (dataplane/veth-xdp.ts, flow-cache-veth.test.ts)
  await L.lab.exec("cl", ["ethtool", "-K", "eth0", "gro", "on"]);
  await L.lab.exec("sw", ["ethtool", "-K", "p0", "gro", "on"]);
  await startServers(L.lab, L.reals);
}, 60_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("flow cache", () => {
  test("the same traffic gives the same service and real-server counters with the cache on and off", async () => {
    const seen: Record<
      string,
      { udp: { svc: Traffic; dests: Traffic[] }; tcp: { svc: Traffic; dests: Traffic[] }; cached: number; rsIn: number; clIn: number }
    > = {};
    for (const cache of ["on", "off"] as const) {
      await start(cache);
      const rs0 = (await L.lab.snmp(L.reals[0])).IpInReceives,
        cl0 = (await L.lab.snmp(L.client)).IpInReceives;
      await sameTraffic(9100, 7100);
      // counters of packets the XDP program forwarded are folded within a second; a TCP
      // connection's last packets (FIN, ACK) pass through TS: wait until both are stable
      let last = "";
      await until(async () => {
        const now = JSON.stringify([await serviceTraffic("udp", 9100), await serviceTraffic("tcp", 7100)]);
        const same = now === last;
        last = now;
        return same;
      }, 5000);
      await Bun.sleep(1200);
      seen[cache] = {
        udp: await serviceTraffic("udp", 9100),
        tcp: await serviceTraffic("tcp", 7100),
        cached: await cachedPackets(),
        rsIn: (await L.lab.snmp(L.reals[0])).IpInReceives - rs0,
        clIn: (await L.lab.snmp(L.client)).IpInReceives - cl0,
      };
    }
    // the cache forwarded most of the packets (not only the first ones of each connection) ...
    expect(seen.on.cached).toBeGreaterThan(100);
    expect(seen.off.cached).toBe(0);
    // ... and the listings cannot tell: UDP exactly the same; TCP (whose ACKs vary with timing
    // from run to run) exactly what the real server received and the client got back
    expect(seen.on.udp).toEqual(seen.off.udp);
    expect(seen.on.udp.svc).toMatchObject({ conns: 1, inpkts: 40, outpkts: 40 });
    for (const cache of ["on", "off"] as const) {
      const { udp, tcp, rsIn, clIn } = seen[cache];
      expect({ cache, inpkts: udp.svc.inpkts + tcp.svc.inpkts, outpkts: udp.svc.outpkts + tcp.svc.outpkts }).toEqual({ cache, inpkts: rsIn, outpkts: clIn });
      expect(tcp.dests[0]).toEqual(tcp.svc);
      expect(tcp.svc.conns).toBe(1);
    }
  }, 120_000);

  test("a removed real server stops receiving cached traffic at once", async () => {
    await start("on");
    await ok("POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: 9200, scheduler: "rr" });
    await ok("POST", `/v1/services/udp:${LAB_VIP}:9200/dests`, { address: realAddr(1), port: 9000, forward: "masq" });
    const u = await UdpFlow.open(9200, 500);
    for (let i = 0; i < 10; i++) expect(await u.ask(`a${i}`)).toBe(`rs1 a${i}`);
    const before = await cachedPackets();
    for (let i = 0; i < 10; i++) expect(await u.ask(`b${i}`)).toBe(`rs1 b${i}`);
    expect((await cachedPackets()) - before).toBeGreaterThanOrEqual(18);
    await ok("DELETE", `/v1/services/udp:${LAB_VIP}:9200/dests/${realAddr(1)}:9000`);
    // the very next datagram of the cached flow reaches no real server (TS drops it:
    // drop_dest_unavailable, as IPVS keeps the connection of a deleted dest without forwarding)
    const after = await cachedPackets();
    for (let i = 0; i < 3; i++) expect(await u.ask(`c${i}`)).toBe("timeout");
    expect((await cachedPackets()) - after).toBe(0);
    u.close();
  }, 60_000);

  test("a FIN moves a cached connection to FIN_WAIT / TIME_WAIT through the TypeScript path", async () => {
    await start("on");
    await ok("POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7300, scheduler: "rr" });
    await ok("POST", `/v1/services/tcp:${LAB_VIP}:7300/dests`, { address: realAddr(1), port: 7000, forward: "masq" });
    const t = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7300);
    const before = await cachedPackets();
    for (let i = 0; i < 20; i++) expect(await t.ask(`x${i}`)).toBe(`rs1 x${i}`);
    expect((await cachedPackets()) - before).toBeGreaterThanOrEqual(20);
    expect((await conns()).filter((c) => c.protocol === "TCP").map((c) => c.state)).toEqual(["ESTABLISHED"]);
    t.close();
    expect(await until(async () => (await conns()).some((c) => c.protocol === "TCP" && ["FIN_WAIT", "TIME_WAIT", "CLOSE"].includes(c.state)), 5000)).toBe(true);
  }, 60_000);

  test("a busy cached connection outlives its UDP timeout; once idle it expires on time", async () => {
    const timeoutS = 3;
    await start("on");
    await ok("PUT", "/v1/timeouts", { tcp: 0, tcpfin: 0, udp: timeoutS });
    await ok("POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: 9400, scheduler: "rr" });
    await ok("POST", `/v1/services/udp:${LAB_VIP}:9400/dests`, { address: realAddr(1), port: 9000, forward: "masq" });
    // the helper waits up to 3 s for a reply: a loaded machine can take a second for one
    const u = await UdpFlow.open(9400, 3000);
    const udp = async () => (await conns()).filter((c) => c.protocol === "UDP");
    // the first exchange passes through TS, which caches the connection at its reply (the
    // flush after that burst); the worker handles the second request only after that flush, so
    // from the third exchange on every packet is XDP's
    expect(await u.ask("k0")).toBe("rs1 k0");
    expect(await u.ask("k1")).toBe("rs1 k1");
    const before = await cachedPackets();
    // traffic for twice the timeout with a pause between exchanges, counted in exchanges and
    // time (not a fixed number of sleeps): however slow the machine, the connection lives through
    // it on XDP's packets alone
    const t0 = Date.now();
    let n = 0,
      lastSent = 0;
    while (Date.now() - t0 < 2 * timeoutS * 1000 || n < 8) {
      lastSent = Date.now();
      expect(await u.ask(`k${n + 2}`)).toBe(`rs1 k${n + 2}`);
      n++;
      await Bun.sleep(250);
    }
    // every one of those packets went through XDP (read from the steering program's per-CPU
    // counters: no fold delay)
    expect((await cachedPackets()) - before).toBeGreaterThanOrEqual(2 * n);
    expect((await udp()).length).toBe(1);
    // idle: expiry reads the entry (flowcache.ts readLive/runChecks) and expires the connection
    // only when its last forwarded packet is at least the timeout old (age floored to 10 ms
    // ticks: never early). That packet (the last reply) left after lastSent, so a listing that
    // misses the connection was answered no earlier than `due`. Late: the timer wheel fires at
    // the deadline the last fold (every 1 s) set, then the check; the bound of 3 s past `due` is
    // that second plus the listing's own latency on a loaded 2-core machine
    const due = lastSent + timeoutS * 1000;
    let goneAt = 0;
    while (goneAt === 0 && Date.now() < due + 3000) {
      if ((await udp()).length === 0) goneAt = Date.now();
      else await Bun.sleep(100);
    }
    expect(goneAt).toBeGreaterThanOrEqual(due);
    expect(goneAt - due).toBeLessThan(3000);
    u.close();
  }, 60_000);

  test("a real server's MAC change reaches the cached flows", async () => {
    await start("on");
    await ok("POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: 9500, scheduler: "rr" });
    await ok("POST", `/v1/services/udp:${LAB_VIP}:9500/dests`, { address: realAddr(2), port: 9000, forward: "masq" });
    const u = await UdpFlow.open(9500, 500);
    for (let i = 0; i < 5; i++) expect(await u.ask(`m${i}`)).toBe(`rs2 m${i}`);
    const before = await cachedPackets();
    // rs2 gets a new MAC and says so (as after a NIC swap); the director's neighbour entry follows
    const rs2 = L.reals[1];
    const newMac = "02:00:00:00:2b:02";
    await L.lab.ip(rs2, "link", "set", "dev", "eth0", "address", newMac);
    await L.lab.ip(L.director, "neigh", "replace", realAddr(2), "lladdr", newMac, "dev", L.ifaces[1], "nud", "reachable");
    // within a few housekeeping passes every cached frame carries the new MAC: rs2 answers again
    expect(await until(async () => (await u.ask("probe")) === "rs2 probe", 5000)).toBe(true);
    for (let i = 0; i < 10; i++) expect(await u.ask(`n${i}`)).toBe(`rs2 n${i}`);
    expect((await cachedPackets()) - before).toBeGreaterThanOrEqual(10);
    u.close();
  }, 60_000);
});
