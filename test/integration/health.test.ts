/**
 * Health checks in the namespace lab: the daemon checks real servers whose HTTP, TCP,
 * UDP and DNS services are stopped and restarted, from the director's namespace with real
 * sockets. Each real server leaves its services' tables (or gets weight 0 with
 * inhibit_on_failure) within delay_loop + retry x delay_before_retry + (1 + retry) x
 * connect_timeout (+ a margin), no new connection reaches it while it is out, and it comes back
 * when its service does; MISC_CHECK scripts take real servers out (removed: their established
 * connections are dropped, as IPVS drops them; inhibited: they go on); losing the quorum brings
 * in the sorry server.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { parseLogLine } from "../../src/log.ts";
import { apiOk, eventually, HeldConnection, httpGet, requireRoot, verdictsOf } from "./helpers.ts";
import { parseExposition } from "../util/prom.ts";

let L: DirectorLab;
let xvs: LabDaemon;
const stateDir = mkdtempSync(join(tmpdir(), "xvs-health-state-"));
const flagDir = mkdtempSync(join(tmpdir(), "xvs-health-flag-"));
const FLAG = join(flagDir, "rs3-ok");
const FLAG2 = join(flagDir, "rs2-ok");

/** Checker timing of every checker here: seconds. */
const LOOP = 1,
  RETRY = 1,
  DBR = 1,
  TIMEOUT = 1;
/**
 * Longest time a real server may take to leave, ms: the next loop, then 1 + retry attempts
 * delay_before_retry apart, each of which may last connect_timeout when nothing answers (a
 * stopped UDP service answers with ICMP port unreachable, rate-limited to one a second by the
 * real server's kernel, so some attempts end at their timeout), plus a margin for a busy lab.
 */
const LEAVE_MS = (LOOP + (1 + RETRY) * TIMEOUT + RETRY * DBR) * 1000 + 1500;
const RETURN_MS = (LOOP + TIMEOUT) * 1000 + 1500;
const timing = { delay_loop: LOOP, retry: RETRY, delay_before_retry: DBR, connect_timeout: TIMEOUT };

/** The lab real server processes (HTTP :80, TCP :7000, UDP :9000) and DNS responders (:53), by host. */
const serves = new Map<string, Subprocess>();
const dnses = new Map<string, Subprocess>();

async function ready(p: Subprocess<"ignore" | "pipe", "pipe", "pipe">): Promise<void> {
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  expect(new TextDecoder().decode(value)).toContain("ready");
}

async function startServe(host: string): Promise<void> {
  const p = L.lab.spawn(host, [...selfCommand(), "__lab", "serve", "--name", host, "--http", "80", "--tcp", "7000", "--udp", "9000"]);
  await ready(p);
  serves.set(host, p);
}

async function startDns(host: string, i: number): Promise<void> {
  const p = L.lab.spawn(host, [process.execPath, join(import.meta.dir, "dns-responder.ts"), realAddr(i), "53"]);
  await ready(p);
  dnses.set(host, p);
}

async function stop(map: Map<string, Subprocess>, host: string): Promise<void> {
  const p = map.get(host)!;
  p.kill("SIGKILL");
  await p.exited;
  map.delete(host);
}

interface DestV {
  address: string;
  port: number;
  weight: number;
  health?: { state: string; reason: string };
}
interface SvcV {
  spec: { protocol: string; port: number };
  dests: DestV[];
  health?: { quorum: string; sorry_server_active: boolean; removed: { address: string; port: number; health: { state: string } }[] };
}

async function services(): Promise<SvcV[]> {
  return ((await apiOk(xvs, "GET", "/v1/services")) as { services: SvcV[] }).services;
}

/** address -> weight of the live table of one service. */
async function table(protocol: string, port: number): Promise<Record<string, number>> {
  const s = (await services()).find((x) => x.spec.protocol === protocol && x.spec.port === port)!;
  return Object.fromEntries(s.dests.map((d) => [d.address, d.weight]));
}

/** Poll until `cond` holds on the table of a service; the time it took, ms. @throws after `limitMs` (+ a grace to report). */
async function until(protocol: string, port: number, cond: (t: Record<string, number>) => boolean, limitMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const t = await table(protocol, port);
    if (cond(t)) {
      const ms = Date.now() - t0;
      process.stdout.write(`  ${what}: ${ms} ms\n`);
      return ms;
    }
    if (Date.now() - t0 > limitMs + 3000) throw new Error(`${what}: not within ${limitMs} ms: ${JSON.stringify(t)}`);
    await Bun.sleep(100);
  }
}

const RS = [1, 2, 3].map(realAddr);

/** GET /metrics' health families say what GET /v1/services says: each checked real server (removed ones too), quorum, sorry server. */
async function expectHealthMetricsAgree(): Promise<void> {
  const page = parseExposition(String((await xvs.api("GET", "/metrics")).json));
  const svcs = await services();
  const up = (state: string) => (state === "up" ? 1 : 0);
  const want = { up: {} as Record<string, number>, quorum: {} as Record<string, number>, sorry: {} as Record<string, number> };
  for (const s of svcs) {
    const svc = `${s.spec.protocol.toUpperCase()} ${s.spec.port}`;
    for (const d of s.dests) if (d.health) want.up[`${svc} ${d.address}:${d.port}`] = up(d.health.state);
    for (const r of s.health?.removed ?? []) want.up[`${svc} ${r.address}:${r.port}`] = up(r.health.state);
    if (s.health) {
      want.quorum[svc] = up(s.health.quorum);
      want.sorry[svc] = s.health.sorry_server_active ? 1 : 0;
    }
  }
  const got = (name: string, key: (l: Record<string, string>) => string) => Object.fromEntries(page.find(name).map((x) => [key(x.labels), x.value]));
  expect({
    up: got("xvs_backend_health_up", (l) => `${l.proto} ${l.local_port} ${l.remote_address}:${l.remote_port}`),
    quorum: got("xvs_service_quorum_up", (l) => `${l.proto} ${l.local_port}`),
    sorry: got("xvs_service_sorry_server_active", (l) => `${l.proto} ${l.local_port}`),
  }).toEqual(want);
  // the monitor's attempts: every checked real server was checked, every one that is down failed a check
  const checks = (result: string) =>
    got("xvs_backend_health_checks_total", (l) => (l.result === result ? `${l.proto} ${l.local_port} ${l.remote_address}:${l.remote_port}` : ""));
  const ok = checks("ok"),
    fail = checks("fail");
  for (const [k, v] of Object.entries(want.up)) {
    expect({ k, checked: (ok[k] ?? 0) + (fail[k] ?? 0) > 0 }).toEqual({ k, checked: true });
    if (v === 0) expect({ k, fail: fail[k] > 0 }).toEqual({ k, fail: true });
  }
}

beforeAll(async () => {
  requireRoot();
  writeFileSync(FLAG, "");
  writeFileSync(FLAG2, "");
  L = await buildDirectorLab("health", { reals: 3 });
  for (const h of L.reals) await startServe(h);
  await startDns("rs1", 1);
  await startDns("rs2", 2);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, [], stateDir);
  const svc = (protocol: string, port: number, extra: Record<string, unknown> = {}) =>
    apiOk(xvs, "POST", "/v1/services", { protocol, address: LAB_VIP, port, scheduler: "rr", health: { delay_loop: LOOP }, ...extra });
  const dest = (protocol: string, vport: number, i: number, port: number, checkers: unknown[], extra: Record<string, unknown> = {}) =>
    apiOk(xvs, "POST", `/v1/services/${protocol}:${LAB_VIP}:${vport}/dests`, { address: realAddr(i), port, forward: "masq", checkers, ...extra });
  const http = { kind: "http", ...timing, urls: [{ path: "/health", status_code: [200] }] };
  await svc("tcp", 80);
  for (const i of [1, 2, 3]) await dest("tcp", 80, i, 80, [http]);
  await svc("tcp", 7000);
  await dest("tcp", 7000, 1, 7000, [{ kind: "tcp", ...timing }]);
  await dest(
    "tcp",
    7000,
    2,
    7000,
    [
      { kind: "tcp", ...timing },
      { kind: "misc", ...timing, misc_path: `sh -c 'test -e ${FLAG2}'`, misc_timeout: 1 },
    ],
    { inhibit_on_failure: true },
  );
  await dest("tcp", 7000, 3, 7000, [
    { kind: "tcp", ...timing },
    { kind: "misc", ...timing, misc_path: `sh -c 'test -e ${FLAG}'`, misc_timeout: 1 },
  ]);
  await svc("udp", 9000);
  for (const i of [1, 2, 3]) await dest("udp", 9000, i, 9000, [{ kind: "udp", ...timing, payload: "6869", require_reply: true }]);
  await svc("udp", 53);
  for (const i of [1, 2]) await dest("udp", 53, i, 53, [{ kind: "dns", ...timing, type: "A", name: "www.example.test" }]);
  await svc("tcp", 81, { health: { delay_loop: LOOP, quorum: 2, sorry_server: { address: realAddr(3), port: 80 } } });
  for (const i of [1, 2]) await dest("tcp", 81, i, 80, [http]);
  // until every checker has passed once (it was a fixed 2 s: too short when other labs load the
  // machine; the checks below still require every real server up)
  await eventually(services, (ss) => ss.every((s) => s.dests.every((d) => d.health?.reason === "all checkers pass")), 20_000);
  for (const port of [80, 81]) expect((await httpGet(L.lab, L.client, LAB_VIP, port, 8, 4)).ok).toBe(8);
  for (const s of await services()) {
    for (const d of s.dests) expect(d.health).toMatchObject({ state: "up", reason: "all checkers pass" });
  }
}, 90_000);

afterAll(async () => {
  await xvs?.stop();
  await L?.lab.teardown();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(flagDir, { recursive: true, force: true });
}, 30_000);

describe("a real server's services stop and start again", () => {
  test("rs1 stops: it leaves the HTTP, TCP and UDP services within the bound, the quorum service falls to its sorry server, and new connections avoid it", async () => {
    expect(Object.keys(await table("tcp", 80)).sort()).toEqual(RS);
    expect((await httpGet(L.lab, L.client, LAB_VIP, 80, 30, 4)).byServer.rs1).toBeGreaterThan(0);
    await stop(serves, "rs1");
    const gone = (t: Record<string, number>) => !(RS[0] in t);
    const waits = await Promise.all([
      until("tcp", 80, gone, LEAVE_MS, "HTTP_GET: rs1 out of tcp :80"),
      until("tcp", 7000, gone, LEAVE_MS, "TCP_CHECK: rs1 out of tcp :7000"),
      until("udp", 9000, gone, LEAVE_MS, "UDP_CHECK: rs1 out of udp :9000"),
      until("tcp", 81, (t) => JSON.stringify(t) === JSON.stringify({ [RS[2]]: 1 }), LEAVE_MS, "quorum lost: sorry server alone in tcp :81"),
    ]);
    for (const ms of waits) expect(ms).toBeLessThanOrEqual(LEAVE_MS);
    // no new connection reaches it, none fails
    const after = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 4);
    expect(after.failed).toBe(0);
    expect(after.byServer.rs1 ?? 0).toBe(0);
    expect(after.byServer.rs2).toBeGreaterThan(0);
    const sorry = await httpGet(L.lab, L.client, LAB_VIP, 81, 20, 4);
    expect(sorry).toMatchObject({ ok: 20, failed: 0, byServer: { rs3: 20 } });
    const svc80 = (await services()).find((s) => s.spec.port === 80)!;
    expect(svc80.health!.removed.map((r) => r.address)).toEqual([RS[0]]);
    // one log line per change
    const downs = xvs
      .log()
      .split("\n")
      .map(parseLogLine)
      .filter((l) => l?.msg === "real server down" && l.server === `${RS[0]}:80`);
    expect(downs.length).toBe(2); // tcp :80 and tcp :81
    expect(xvs.log()).toContain('"msg":"quorum lost"');
    await expectHealthMetricsAgree();
  }, 30_000);

  test("rs1 starts again: it comes back into every service, the sorry server leaves, and it gets new connections", async () => {
    await startServe("rs1");
    const back = (t: Record<string, number>) => RS[0] in t;
    const waits = await Promise.all([
      until("tcp", 80, back, RETURN_MS, "rs1 back in tcp :80"),
      until("tcp", 7000, back, RETURN_MS, "rs1 back in tcp :7000"),
      until("udp", 9000, back, RETURN_MS, "rs1 back in udp :9000"),
      until("tcp", 81, (t) => Object.keys(t).sort().join() === [RS[0], RS[1]].join(), RETURN_MS, "quorum regained: tcp :81 without the sorry server"),
    ]);
    for (const ms of waits) expect(ms).toBeLessThanOrEqual(RETURN_MS);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 4);
    expect(r.failed).toBe(0);
    expect(r.byServer.rs1).toBeGreaterThan(0);
    const q = await httpGet(L.lab, L.client, LAB_VIP, 81, 20, 4);
    expect(q.failed).toBe(0);
    expect(q.byServer.rs3 ?? 0).toBe(0);
  }, 30_000);

  test("inhibit_on_failure: rs2 stays in tcp :7000 with weight 0 while down, and gets its weight back", async () => {
    await stop(serves, "rs2");
    const ms = await until("tcp", 7000, (t) => t[RS[1]] === 0, LEAVE_MS, "rs2 at weight 0 in tcp :7000");
    expect(ms).toBeLessThanOrEqual(LEAVE_MS);
    expect(await table("tcp", 80)).not.toHaveProperty(RS[1]);
    // the saved configuration keeps rs2 with its weight
    const cfg = (await apiOk(xvs, "GET", "/v1/config")) as { services: { port: number; dests: { address: string; weight: number }[] }[] };
    expect(cfg.services.find((s) => s.port === 7000)!.dests.find((d) => d.address === RS[1])!.weight).toBe(1);
    await startServe("rs2");
    await until("tcp", 7000, (t) => t[RS[1]] === 1, RETURN_MS, "rs2 weight 1 again in tcp :7000");
    await until("tcp", 80, (t) => RS[1] in t, RETURN_MS, "rs2 back in tcp :80");
  }, 30_000);

  test("DNS_CHECK: rs1's DNS responder stops and starts", async () => {
    expect(Object.keys(await table("udp", 53)).sort()).toEqual([RS[0], RS[1]]);
    await stop(dnses, "rs1");
    expect(await until("udp", 53, (t) => !(RS[0] in t), LEAVE_MS, "DNS_CHECK: rs1 out of udp :53")).toBeLessThanOrEqual(LEAVE_MS);
    await startDns("rs1", 1);
    expect(await until("udp", 53, (t) => RS[0] in t, RETURN_MS, "rs1 back in udp :53")).toBeLessThanOrEqual(RETURN_MS);
  }, 30_000);

  test("MISC_CHECK: failing scripts take rs3 out of tcp :7000 (removed) and rs2 to weight 0 (inhibit_on_failure) although their TCP checks pass; rs2's established connections keep working, rs3's are dropped as IPVS drops them; both return when their scripts pass", async () => {
    const held = await Promise.all(Array.from({ length: 9 }, () => HeldConnection.open(L.lab, L.client, LAB_VIP, 7000)));
    const first = await Promise.all(held.map((c) => c.ask("before").then((r) => r.split(" ")[0])));
    const on = (rs: string) => held.filter((_, i) => first[i] === rs);
    expect(on("rs2").length).toBeGreaterThan(0);
    expect(on("rs3").length).toBeGreaterThan(0);
    const dropped0 = (await verdictsOf(xvs)).drop_dest_unavailable;
    unlinkSync(FLAG);
    unlinkSync(FLAG2);
    const waits = await Promise.all([
      until("tcp", 7000, (t) => !(RS[2] in t), LEAVE_MS, "MISC_CHECK: rs3 out of tcp :7000"),
      until("tcp", 7000, (t) => t[RS[1]] === 0, LEAVE_MS, "MISC_CHECK: rs2 at weight 0 in tcp :7000"),
    ]);
    for (const ms of waits) expect(ms).toBeLessThanOrEqual(LEAVE_MS);
    const svc = (await services()).find((s) => s.spec.port === 7000)!;
    expect(svc.health!.removed.map((r) => r.address)).toEqual([RS[2]]);
    // weight 0 keeps the real server available: its connections go on
    for (const c of on("rs2")) expect(await c.ask("inhibited")).toBe("rs2 inhibited");
    // a deleted real server's connections are dropped, as IPVS drops them (ip_vs_in_hook: "the
    // destination server is not available"), counted as drop_dest_unavailable
    const answers = await Promise.all(
      on("rs3").map((c) =>
        c.ask("removed").then(
          (r) => r,
          () => null,
        ),
      ),
    );
    expect(answers.every((a) => a === null)).toBe(true);
    expect((await verdictsOf(xvs)).drop_dest_unavailable).toBeGreaterThan(dropped0);
    for (const c of held) c.close();
    writeFileSync(FLAG, "");
    writeFileSync(FLAG2, "");
    expect(await until("tcp", 7000, (t) => RS[2] in t && t[RS[1]] === 1, RETURN_MS, "rs3 back, rs2 at weight 1 in tcp :7000")).toBeLessThanOrEqual(RETURN_MS);
  }, 30_000);
});
