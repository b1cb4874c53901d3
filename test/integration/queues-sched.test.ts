/**
 * One scheduler state per service over every queue and worker (issue 13, dataplane/shared-sched.ts).
 * The director's veths get four queues each and the daemon runs with default options (a socket
 * on every queue, min(cores, queues) workers): client connections spread over the queues by
 * their ports (veth hands a frame to the rx queue numbered like the sender's tx queue, picked by
 * flow hash), so several workers schedule new connections of one service at once. As in IPVS:
 * - rr over three DR real servers: 300 connections split exactly 100/100/100, every queue
 *   carrying some;
 * - a real server with `-x 10`: with 40 connections held open at once it holds exactly 10
 *   (never more over all workers; per-worker counts would have let each worker give it 10).
 * - lblc: one address cache per service: every connection goes to the real server the VIP's
 *   entry names, whichever worker made the entry.
 * The "passed to the kernel for lack of a socket" counter stays 0.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { buildDirectorLab, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, httpGet, requireRoot, serveOn, stopLab, verdictsOf, passNoSocket, xdpPacketsPerQueue } from "./helpers.ts";

const QUEUES = 4;
/** The lblc test's service port (DR keeps it: the real servers listen on it too). */
const LBLC_PORT = 8081;
let L: DirectorLab;
let xvs: LabDaemon | undefined;

const svcPath = (port: number) => `/v1/services/tcp:${LAB_VIP}:${port}`;

/** ActiveConn + InActConn per real server address of a service, as GET /v1/services/... lists them. */
async function heldPerServer(port: number): Promise<Record<string, number>> {
  const s = (await apiOk(xvs!, "GET", svcPath(port))) as { dests: { address: string; activeConns: number; inactiveConns: number }[] };
  const out: Record<string, number> = {};
  for (const d of s.dests) out[d.address] = d.activeConns + d.inactiveConns;
  return out;
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("qs", { reals: 3, queues: QUEUES });
  await directReturn(L.lab, L.director, L.reals, [LAB_VIP]);
  for (const h of L.reals) {
    await serveOn(L.lab, h, ["--http", "80", "--tcp", "7000", "--addr", "::"]);
    await serveOn(L.lab, h, ["--http", String(LBLC_PORT), "--addr", "::"]);
  }
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
}, 120_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("one scheduler state per service over four queues", () => {
  test("the daemon runs several workers over the four queues (or says why this machine cannot)", () => {
    const workers = Math.min(availableParallelism(), QUEUES);
    expect(xvs!.log()).toContain("rx queues and workers");
    // on a one-core machine there is one worker and this file tests nothing more than one queue does
    expect(workers).toBeGreaterThan(1);
  });

  test("DR, rr over three real servers: 300 connections over every queue split exactly 100/100/100", async () => {
    await apiOk(xvs!, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 80, scheduler: "rr" });
    for (const i of [1, 2, 3]) await apiOk(xvs!, "POST", `${svcPath(80)}/dests`, { address: realAddr(i), port: 80, weight: 1, forward: "route" });
    const q0 = await xdpPacketsPerQueue(L, "c0");
    const before = await verdictsOf(xvs!);
    const cl0 = await L.lab.snmp(L.client);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 300, 6);
    const after = await verdictsOf(xvs!);
    // a SYN sent again may come in on another queue (a new tx hash) and be scheduled twice
    // (queues.test.ts): said here, so that a split one off says why
    const synRetrans = (await L.lab.snmp(L.client)).TcpExtTCPSynRetrans - cl0.TcpExtTCPSynRetrans;
    const q1 = await xdpPacketsPerQueue(L, "c0");
    const perQueue = q1.map((n, i) => n - (q0[i] ?? 0));
    process.stdout.write(
      `  300 rr connections: servers ${JSON.stringify(r.byServer)}; XDP packets on c0's queues ${perQueue.join(" / ")}; client SYN retransmissions ${synRetrans}\n`,
    );
    expect({ errors: r.errors, ok: r.ok, byServer: r.byServer, newConns: after.new_conns - before.new_conns }).toEqual({
      errors: [],
      ok: 300,
      byServer: { rs1: 100, rs2: 100, rs3: 100 },
      newConns: 300,
    });
    expect(perQueue.length).toBe(QUEUES);
    expect(Math.min(...perQueue)).toBeGreaterThan(0);
    expect(await passNoSocket(xvs!)).toBe(0);
  }, 90_000);

  test("-x 10 held over all workers: 40 connections held at once, rs1 gets exactly 10", async () => {
    await apiOk(xvs!, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7000, scheduler: "rr" });
    await apiOk(xvs!, "POST", `${svcPath(7000)}/dests`, { address: realAddr(1), port: 7000, weight: 1, forward: "route", upperThreshold: 10 });
    for (const i of [2, 3]) await apiOk(xvs!, "POST", `${svcPath(7000)}/dests`, { address: realAddr(i), port: 7000, weight: 1, forward: "route" });
    const q0 = await xdpPacketsPerQueue(L, "c0");
    const chat = L.lab.spawn(L.client, [
      ...selfCommand(),
      "__lab",
      "tcp-chat",
      "--host",
      LAB_VIP,
      "--port",
      "7000",
      "--conns",
      "40",
      "--seconds",
      "6",
      "--interval",
      "500",
    ]);
    // while all 40 are open: the counts the API lists (one per real server over all workers). A
    // deadline far past the chat's own 6 s: the agent starting up can take seconds on a loaded
    // machine, and the DR connections stay listed (inactive) after the chat closes them
    let held: Record<string, number> = {};
    const deadline = Date.now() + 30_000;
    for (;;) {
      await Bun.sleep(300);
      held = await heldPerServer(7000);
      const total = Object.values(held).reduce((a, b) => a + b, 0);
      if (total >= 40 || Date.now() > deadline) break;
    }
    const out = JSON.parse((await new Response(chat.stdout).text()).trim()) as {
      conns: number;
      errors: string[];
      outOfOrder: number;
      byServer: Record<string, number>;
    };
    const q1 = await xdpPacketsPerQueue(L, "c0");
    const perQueue = q1.map((n, i) => n - (q0[i] ?? 0));
    process.stdout.write(
      `  40 held connections: counts ${JSON.stringify(held)}; first replies ${JSON.stringify(out.byServer)}; c0 queues ${perQueue.join(" / ")}\n`,
    );
    expect({ conns: out.conns, errors: out.errors, outOfOrder: out.outOfOrder }).toEqual({ conns: 40, errors: [], outOfOrder: 0 });
    expect(held).toEqual({ [realAddr(1)]: 10, [realAddr(2)]: 15, [realAddr(3)]: 15 });
    expect(out.byServer).toEqual({ rs1: 10, rs2: 15, rs3: 15 });
    expect(Math.min(...perQueue)).toBeGreaterThan(0);
    expect(await passNoSocket(xvs!)).toBe(0);
  }, 90_000);

  test("lblc: one address cache over all workers: 60 connections over every queue all go to the real server the VIP's entry names", async () => {
    // A port of its own, not the rr test's port 80 reused: those 300 DR connections stay in the
    // table in FIN_WAIT (the input-only state table, 2 min), and a client port the kernel hands out
    // again lands on one of them. As in IPVS, such a SYN follows the old connection (to a real
    // server revived from the deleted service's trash) or is dropped (its real server is gone,
    // expire_nodest_conn=0). CI saw 1 of 60 answered by another server and 4 time out, which is
    // what that does; the old test passed here 4 runs of 4, so the collision depends on the kernel
    // handing out ports (its per-destination port offsets are shared by every namespace).
    const port = LBLC_PORT;
    await apiOk(xvs!, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port, scheduler: "lblc" });
    // weights well above the connections in flight, so that lblc's own overload rule stays out of it
    for (const i of [1, 2]) await apiOk(xvs!, "POST", `${svcPath(port)}/dests`, { address: realAddr(i), port, weight: 100, forward: "route" });
    const q0 = await xdpPacketsPerQueue(L, "c0");
    const r = await httpGet(L.lab, L.client, LAB_VIP, port, 60, 4);
    const q1 = await xdpPacketsPerQueue(L, "c0");
    const perQueue = q1.map((n, i) => n - (q0[i] ?? 0));
    process.stdout.write(`  60 lblc connections: servers ${JSON.stringify(r.byServer)}; c0 queues ${perQueue.join(" / ")}\n`);
    // a cache per worker would send each worker's first connection to the least loaded server
    expect({ errors: r.errors, ok: r.ok, servers: Object.values(r.byServer) }).toEqual({ errors: [], ok: 60, servers: [60] });
    expect(Math.min(...perQueue)).toBeGreaterThan(0);
  }, 90_000);

  test("the daemon stops cleanly", async () => {
    expect(await xvs!.stop()).toBe(0);
    xvs = undefined;
  }, 30_000);
});
