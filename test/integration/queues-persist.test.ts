/**
 * Persistence over every queue and worker (issue 13, conn/persist-template.ts): one template per
 * client and service over all workers, as IPVS has one over all CPUs. The director's veths get
 * four queues each and the daemon runs with default options (a socket on every queue,
 * min(cores, queues) workers); veth hands a frame to the rx queue numbered like the sender's tx
 * queue, picked by flow hash, so one client's connections (a new source port each) spread over
 * every queue and so over every worker, as RSS spreads them on a NIC. As in IPVS:
 * - every connection of the client goes to one real server (rr over three would split them);
 * - `-Ln --persistent-conn` shows PersistConn 1 on that server and 0 elsewhere (a template per
 *   worker the client reached would show one per worker), and the listing one template;
 * - the template, re-armed by every new connection whichever worker made it, goes its
 *   persistence timeout after the last one (the connections themselves gone before: FIN_WAIT set
 *   to 2 s with `--set`), neither earlier nor much later.
 * The "passed to the kernel for lack of a socket" counter stays 0. `--conn-max` is the daemon's
 * table size over all workers (the listing's `(size=N)`), split between them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, httpGet, requireRoot, serveOn, stopLab, passNoSocket, xdpPacketsPerQueue } from "./helpers.ts";

const QUEUES = 4;
/** Persistence timeout (s): short, so that the test sees the template expire. */
const PTIMEOUT = 8;
/** FIN_WAIT timeout (s): the DR connections (input-only states end in FIN_WAIT) go well before the template. */
const TCPFIN = 2;
/** --conn-max: the daemon's table size, split over the workers (queues.ts connShares). */
const CONN_MAX = 1000;
let L: DirectorLab;
let xvs: LabDaemon | undefined;

const svcPath = `/v1/services/tcp:${LAB_VIP}:80`;

/** PersistConn per real server, from `xvs adm -Ln --persistent-conn -t VIP:80` (ipvsadm's format). */
async function persistConn(): Promise<Record<string, number>> {
  const r = await xvs!.adm(["-Ln", "--persistent-conn", "-t", `${LAB_VIP}:80`]);
  expect(r.stdout).toContain("PersistConn");
  const out: Record<string, number> = {};
  for (const l of r.stdout.split("\n")) {
    const f = l.trim().split(/\s+/);
    // "  -> RemoteAddress:Port  Weight  PersistConn  ActiveConn  InActConn"
    if (f[0] === "->" && f[1] !== "RemoteAddress:Port") out[f[1].replace(/:80$/, "")] = Number(f[3]);
  }
  return out;
}

interface ConnRow {
  template: boolean;
  expiresSec: number;
  dest: { address: string };
}

/** Templates and connections of the service (GET /v1/conns: every worker's table). */
async function listed(): Promise<{ templates: ConnRow[]; conns: ConnRow[] }> {
  const r = (await apiOk(xvs!, "GET", "/v1/conns?limit=1000")) as { conns: ConnRow[] };
  return { templates: r.conns.filter((c) => c.template), conns: r.conns.filter((c) => !c.template) };
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("qp", { reals: 3, queues: QUEUES });
  await directReturn(L.lab, L.director, L.reals, [LAB_VIP]);
  for (const h of L.reals) await serveOn(L.lab, h, ["--http", "80", "--addr", "::"]);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--conn-max", String(CONN_MAX)]);
}, 120_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("persistence over four queues", () => {
  test("the daemon runs several workers over the four queues (or says why this machine cannot)", () => {
    expect(xvs!.log()).toContain("rx queues and workers");
    // on a one-core machine there is one worker and this file tests nothing more than one queue does
    expect(Math.min(availableParallelism(), QUEUES)).toBeGreaterThan(1);
  });

  test("--conn-max is the daemon's size over all workers: the listing shows (size=1000), not 1000 per worker", async () => {
    const r = await xvs!.adm(["-Ln"]);
    expect(r.stdout).toContain(`(size=${CONN_MAX})`);
  });

  test("60 connections of one client over every queue: one real server, one template, PersistConn 1; the template expires on time", async () => {
    await apiOk(xvs!, "PUT", "/v1/timeouts", { tcp: 0, tcpfin: TCPFIN, udp: 0 });
    await apiOk(xvs!, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 80, scheduler: "rr", persistence: { timeout: PTIMEOUT } });
    for (const i of [1, 2, 3]) await apiOk(xvs!, "POST", `${svcPath}/dests`, { address: realAddr(i), port: 80, weight: 1, forward: "route" });
    const q0 = await xdpPacketsPerQueue(L, "c0");
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 4);
    // the last connection was made before this: the template's deadline is at most PTIMEOUT from here
    const lastConn = Date.now();
    const q1 = await xdpPacketsPerQueue(L, "c0");
    const perQueue = q1.map((n, i) => n - (q0[i] ?? 0));
    const pc = await persistConn();
    const l = await listed();
    process.stdout.write(
      `  60 persistent connections: servers ${JSON.stringify(r.byServer)}; PersistConn ${JSON.stringify(pc)}; templates ${l.templates.length}; c0 queues ${perQueue.join(" / ")}\n`,
    );
    expect({ errors: r.errors, ok: r.ok, servers: Object.values(r.byServer) }).toEqual({ errors: [], ok: 60, servers: [60] });
    expect(perQueue.length).toBe(QUEUES);
    expect(Math.min(...perQueue)).toBeGreaterThan(0);
    // one template over all workers, naming the server every connection went to
    expect(l.templates.length).toBe(1);
    const server = l.templates[0].dest.address;
    expect(new Set(l.conns.map((c) => c.dest.address))).toEqual(new Set([server]));
    expect(pc).toEqual({ [realAddr(1)]: 0, [realAddr(2)]: 0, [realAddr(3)]: 0, [server]: 1 });
    expect(await passNoSocket(xvs!)).toBe(0);

    // the connections go (FIN_WAIT, TCPFIN s); the template stays until PTIMEOUT after the last one
    let goneConns = 0;
    for (;;) {
      const now = await listed();
      if (now.conns.length === 0 && goneConns === 0) goneConns = Date.now();
      if (Date.now() - lastConn >= (PTIMEOUT - 1.5) * 1000) {
        // not early: the last connection re-armed it, whichever worker made it
        expect(now.templates.length).toBe(1);
        break;
      }
      await Bun.sleep(250);
    }
    expect(goneConns).toBeGreaterThan(0);
    let goneTpl = 0;
    while (Date.now() - lastConn < (PTIMEOUT + 6) * 1000) {
      if ((await listed()).templates.length === 0) {
        goneTpl = Date.now();
        break;
      }
      await Bun.sleep(250);
    }
    process.stdout.write(
      `  connections gone ${((goneConns - lastConn) / 1000).toFixed(1)} s after the last, the template ${((goneTpl - lastConn) / 1000).toFixed(1)} s after (timeout ${PTIMEOUT} s)\n`,
    );
    expect(goneTpl).toBeGreaterThan(0);
    // the wheel's 1 s slots (never early) and the 1 s API polls: at most ~3 s late
    expect(goneTpl - lastConn).toBeLessThanOrEqual((PTIMEOUT + 3) * 1000);
    expect(await persistConn()).toEqual({ [realAddr(1)]: 0, [realAddr(2)]: 0, [realAddr(3)]: 0 });
  }, 90_000);

  test("the daemon stops cleanly", async () => {
    expect(await xvs!.stop()).toBe(0);
    xvs = undefined;
  }, 30_000);
});
