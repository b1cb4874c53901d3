/**
 * NAT on every queue (conn/peers.ts): the director's veths have four queues each and `xvs run`
 * serves them all with its default workers (min(cores, 4)). A NAT reply (real server -> client)
 * arrives on the queue the real server's side picked for it, whose worker is often not the one
 * that holds the connection (the request's): it must find the connection in the other worker's
 * table. Real TCP and UDP over IPv4 and IPv6, every connection answered; replies that crossed
 * are counted (`peer_conn`), so the labs prove they happened; a persistent client keeps one real
 * server over every queue; a fragmented UDP answer and ICMP port unreachable from a real server
 * reach the client whatever queue they arrive on; nothing goes to the kernel for lack of a socket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, LAB_VIP6, realAddr, realAddr6, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, curlCount, httpGet, requireRoot, serveOn, stopLab, udpAsk, udpSend, verdictsOf, passNoSocket, xdpPacketsPerQueue } from "./helpers.ts";

const QUEUES = 4;
let L: DirectorLab;
let xvs: LabDaemon | undefined;

/**
 * `count` UDP questions to [addr]:port over IPv6 from the client, each from a socket of its own
 * (socat: the lab's udp-ask agent speaks IPv4 only); answers counted by the server name they
 * start with, only when they came back to the socket that asked (a connected UDP socket takes
 * nothing from another source).
 */
async function udp6Ask(addr: string, port: number, count: number): Promise<{ ok: number; byServer: Record<string, number> }> {
  const r = await L.lab.exec(L.client, ["bash", "-c", `for i in $(seq ${count}); do echo q$i | socat -T 1 - 'UDP6:[${addr}]:${port}'; echo; done`], true);
  const byServer: Record<string, number> = {};
  let ok = 0;
  for (const line of r.stdout.split("\n")) {
    const m = /^(rs\d) q\d+/.exec(line);
    if (!m) continue;
    ok++;
    byServer[m[1]] = (byServer[m[1]] ?? 0) + 1;
  }
  return { ok, byServer };
}

const svcPath = (proto: string, addr: string, port: number) => `/v1/services/${proto}:${addr.includes(":") ? `[${addr}]` : addr}:${port}`;

/** A NAT service over rs1..rs3 (same port), rr unless said otherwise. */
async function natService(proto: "tcp" | "udp", addr: string, port: number, extra: Record<string, unknown> = {}, dport = port): Promise<void> {
  await apiOk(xvs!, "POST", "/v1/services", { protocol: proto, address: addr, port, scheduler: "rr", ...extra });
  for (const i of [1, 2, 3]) {
    await apiOk(xvs!, "POST", `${svcPath(proto, addr, port)}/dests`, {
      address: addr.includes(":") ? realAddr6(i) : realAddr(i),
      port: dport,
      forward: "masq",
      weight: 1,
    });
  }
}

/** Counter deltas around `run`, with the XDP packets per queue of s0 (where replies come in). */
async function measured<T>(run: () => Promise<T>): Promise<{ r: T; d: Record<string, number>; replyQueues: number[] }> {
  const v0 = await verdictsOf(xvs!);
  const q0 = await xdpPacketsPerQueue(L, "s0");
  const r = await run();
  const v1 = await verdictsOf(xvs!);
  const q1 = await xdpPacketsPerQueue(L, "s0");
  const d: Record<string, number> = {};
  for (const k of Object.keys(v1)) d[k] = v1[k] - (v0[k] ?? 0);
  return { r, d, replyQueues: q1.map((n, i) => n - (q0[i] ?? 0)) };
}

function report(what: string, d: Record<string, number>, replyQueues: number[]): void {
  process.stdout.write(
    `  ${what}: peer_conn ${d.peer_conn}, fwd_out ${d.fwd_out}, drop_no_conn ${d.drop_no_conn}; replies per s0 queue ${replyQueues.join(" / ")}\n`,
  );
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("qnat", { reals: 3, queues: QUEUES, ipv6: true });
  // dual-stack servers: IPv4 and IPv6 on one socket
  for (const h of L.reals) {
    await serveOn(L.lab, h, ["--http", "80", "--udp", "9000", "--addr", "::"]);
    // every port unreachable is sent (the per-peer ICMP rate limit would keep 6 of 10 per client)
    await L.lab.sysctl(h, "net.ipv4.icmp_ratelimit", 0);
  }
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
}, 120_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("NAT over four queues, default options", () => {
  test("the default workers serve every queue; with one worker there is nothing to cross (the lab needs two cores)", async () => {
    expect(Math.min(availableParallelism(), QUEUES)).toBeGreaterThan(1);
    expect(await passNoSocket(xvs!)).toBe(0);
  }, 30_000);

  test("TCP over IPv4: 200 connections all answered, rr 3-way; replies crossed workers and found their connection", async () => {
    await natService("tcp", LAB_VIP, 80);
    const { r, d, replyQueues } = await measured(() => httpGet(L.lab, L.client, LAB_VIP, 80, 200, 4));
    report("TCP/IPv4", d, replyQueues);
    expect({ errors: r.errors, ok: r.ok, servers: Object.keys(r.byServer).sort() }).toEqual({ errors: [], ok: 200, servers: ["rs1", "rs2", "rs3"] });
    expect(d.new_conns).toBe(200);
    expect(d.drop_no_conn + d.drop_tcp_no_conn).toBe(0);
    expect(d.peer_conn).toBeGreaterThan(0);
    expect(replyQueues.filter((n) => n > 0).length).toBeGreaterThan(1);
    expect(await passNoSocket(xvs!)).toBe(0);
  }, 90_000);

  test("TCP over IPv6: 80 connections all answered; replies crossed workers", async () => {
    await natService("tcp", LAB_VIP6, 80);
    const { r, d, replyQueues } = await measured(() => curlCount(L.lab, L.client, `http://[${LAB_VIP6}]:80/`, 80));
    report("TCP/IPv6", d, replyQueues);
    expect(Object.values(r).reduce((a, b) => a + b, 0)).toBe(80);
    expect(Object.keys(r).sort()).toEqual(["rs1", "rs2", "rs3"]);
    expect(d.drop_no_conn + d.drop_tcp_no_conn).toBe(0);
    expect(d.peer_conn).toBeGreaterThan(0);
  }, 90_000);

  test("UDP over IPv4: 60 questions, every answer from the VIP, rr 3-way; replies crossed workers", async () => {
    await natService("udp", LAB_VIP, 9000);
    const { r, d, replyQueues } = await measured(() => udpAsk(L.lab, L.client, LAB_VIP, 9000, 60));
    report("UDP/IPv4", d, replyQueues);
    expect({ ok: r.ok, failed: r.failed }).toEqual({ ok: 60, failed: 0 });
    expect(r.byServer).toEqual({ rs1: 20, rs2: 20, rs3: 20 });
    expect(d.drop_no_conn).toBe(0);
    expect(d.peer_conn).toBeGreaterThan(0);
  }, 90_000);

  test("UDP over IPv6: 40 questions (socat, a socket each), every one answered from the VIP; replies crossed workers", async () => {
    await natService("udp", LAB_VIP6, 9000);
    const { r, d, replyQueues } = await measured(() => udp6Ask(LAB_VIP6, 9000, 40));
    report("UDP/IPv6", d, replyQueues);
    expect(r.ok).toBe(40);
    expect(Object.keys(r.byServer).sort()).toEqual(["rs1", "rs2", "rs3"]);
    expect(d.drop_no_conn).toBe(0);
    expect(d.peer_conn).toBeGreaterThan(0);
  }, 90_000);

  test("fragmented UDP answers (4000 bytes) whose first fragment lands on another worker: every later fragment follows", async () => {
    const { r, d, replyQueues } = await measured(() => udpAsk(L.lab, L.client, LAB_VIP, 9000, 24, 4000));
    report("UDP fragments", d, replyQueues);
    expect({ ok: r.ok, failed: r.failed }).toEqual({ ok: 24, failed: 0 });
    // 4000 bytes over a 1500-byte MTU: two later fragments each way per datagram
    expect(d.frag_forwarded).toBe(24 * 2 * 2);
    expect(d.drop_frag_orphan).toBe(0);
    expect(d.peer_conn).toBeGreaterThan(0);
  }, 90_000);

  test("ICMP port unreachable from real servers (nothing listens on 9100) reaches the client, from whatever queue", async () => {
    await natService("udp", LAB_VIP, 9100);
    const before = await L.lab.snmp(L.client);
    const { d, replyQueues } = await measured(() => udpSend(L.lab, L.client, LAB_VIP, 9100, 30));
    // the errors trail the datagrams by a round trip
    let after = await L.lab.snmp(L.client);
    for (let i = 0; i < 20 && after.IcmpInDestUnreachs - before.IcmpInDestUnreachs < 30; i++) {
      await Bun.sleep(100);
      after = await L.lab.snmp(L.client);
    }
    const v = await verdictsOf(xvs!);
    report("ICMP errors", d, replyQueues);
    expect(after.IcmpInDestUnreachs - before.IcmpInDestUnreachs).toBe(30);
    expect(v.drop_icmp_no_conn).toBe(0);
    expect(v.icmp_forwarded).toBeGreaterThanOrEqual(30);
    // the datagrams made connections on their own workers: every peer_conn here is an error
    // handled with another worker's connection
    expect(d.peer_conn).toBeGreaterThan(0);
  }, 90_000);

  test("persistence: 60 connections of one client over every queue all reach one real server", async () => {
    await natService("tcp", LAB_VIP, 8080, { persistence: { timeout: 300 } }, 80);
    const { r, d } = await measured(() => httpGet(L.lab, L.client, LAB_VIP, 8080, 60, 4));
    const drops = Object.fromEntries(Object.entries(d).filter(([k, v]) => k.startsWith("drop_") && v !== 0));
    process.stdout.write(
      `  persistence: ${JSON.stringify(r.byServer)}, peer_conn ${d.peer_conn}, new_conns ${d.new_conns}, fwd_in ${d.fwd_in}, fwd_out ${d.fwd_out}, drops ${JSON.stringify(drops)}, errors ${JSON.stringify(r.errors)}\n`,
    );
    expect({ ok: r.ok, errors: r.errors }).toEqual({ ok: 60, errors: [] });
    expect(Object.keys(r.byServer).length).toBe(1);
    // the client's later connections came in on other workers than its template's
    expect(d.new_conns).toBe(60);
  }, 90_000);

  test("nothing reached the kernel for lack of a socket; the daemon stops cleanly", async () => {
    expect(await passNoSocket(xvs!)).toBe(0);
    expect(await xvs!.stop()).toBe(0);
    xvs = undefined;
  }, 30_000);
});
