/**
 * Restarts keep connections (docs/operations.md, "Restarts"): 100 TCP connections held through a
 * NAT service and 50 through a DR service (another VIP, held on the real servers' lo), with
 * traffic flowing, survive 5 restarts in a row made as an operator makes them
 * (SIGTERM to the daemon's pid, wait for it to exit, `xvs run` again); after each one, every
 * connection answers again, in order, from the real server it had before. A saved table that is
 * damaged, or another namespace's, is not adopted: the start says why in one log line, sets the
 * file aside and starts empty (the held connections are then reset, as after a crash).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeTable, layoutVersion } from "../../src/conn/persist.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { requireRoot, startServers } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;
const stateDir = mkdtempSync(join(tmpdir(), "xvs-restart-state-"));
let tableFile = "";
/** The DR service's VIP (on the director's and the real servers' lo, as a DR site has it). */
const DR_VIP = "198.18.0.101";

interface Report {
  conns: number;
  closed: number;
  sent: number[];
  received: number[];
  outOfOrder: number;
  changedServer: number;
  byServer: Record<string, number>;
  errors: string[];
}

/** The lab client holding `n` connections (restart-chat.ts). */
class Chat {
  private buf = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly proc: ReturnType<DirectorLab["lab"]["spawn"]>;
  constructor(n: number, intervalMs: number, vip = LAB_VIP) {
    this.proc = L.lab.spawn(L.client, [process.execPath, join(import.meta.dir, "restart-chat.ts"), vip, "7000", String(n), String(intervalMs)], {
      stdin: "pipe",
    });
    this.reader = (this.proc.stdout as ReadableStream<Uint8Array>).getReader() as ReadableStreamDefaultReader<Uint8Array>;
  }
  async report(): Promise<Report> {
    const stdin = this.proc.stdin as unknown as { write(s: string): void; flush(): void };
    stdin.write("report\n");
    stdin.flush();
    while (!this.buf.includes("\n")) {
      const r = await Promise.race([this.reader.read(), Bun.sleep(30_000).then(() => null)]);
      if (r === null || r.done) throw new Error(`chat client gave no report: ${this.buf}`);
      this.buf += new TextDecoder().decode(r.value);
    }
    const i = this.buf.indexOf("\n");
    const line = this.buf.slice(0, i);
    this.buf = this.buf.slice(i + 1);
    return JSON.parse(line);
  }
  /** Poll the report until `done` holds (returns it) or `ms` pass (returns the last one). */
  async until(done: (r: Report) => boolean, ms: number): Promise<{ r: Report; ok: boolean; tookMs: number }> {
    const t0 = Date.now();
    for (;;) {
      const r = await this.report();
      if (done(r)) return { r, ok: true, tookMs: Date.now() - t0 };
      if (Date.now() - t0 > ms) return { r, ok: false, tookMs: Date.now() - t0 };
      await Bun.sleep(200);
    }
  }
  close(): void {
    (this.proc.stdin as unknown as { end(): void }).end();
  }
}

async function ok(d: LabDaemon, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await d.api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** SIGTERM to the daemon's pid, wait for it to exit, start it again on the same state directory. */
async function restart(): Promise<{ stopped: string; started: string }> {
  expect(await xvs.stop()).toBe(0);
  const stopped = xvs.log();
  xvs = await startDaemon(L.lab, L.director, L.ifaces, [], stateDir);
  return { stopped, started: xvs.log() };
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("rst", { reals: 3 });
  await startServers(L.lab, L.reals, { tcp: 7000 });
  xvs = await startDaemon(L.lab, L.director, L.ifaces, [], stateDir);
  await ok(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7000, scheduler: "rr" });
  for (let i = 1; i <= 3; i++) await ok(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:7000/dests`, { address: realAddr(i), port: 7000, forward: "masq" });
  await L.lab.ip(L.director, "addr", "add", `${DR_VIP}/32`, "dev", "lo");
  await directReturn(L.lab, L.director, L.reals, [DR_VIP]);
  await ok(xvs, "POST", "/v1/services", { protocol: "tcp", address: DR_VIP, port: 7000, scheduler: "rr" });
  for (let i = 1; i <= 3; i++) await ok(xvs, "POST", `/v1/services/tcp:${DR_VIP}:7000/dests`, { address: realAddr(i), port: 7000, forward: "route" });
  // the daemon's namespace (ip netns exec execs it: the spawned pid is the daemon's)
  const inode = /\[(\d+)\]/.exec(readlinkSync(`/proc/${xvs.proc.pid}/ns/net`))![1];
  tableFile = join("/run/xvs", `net-${inode}`, "conns.bin");
}, 120_000);

afterAll(async () => {
  await xvs?.stop();
  await L?.lab.teardown();
  rmSync(stateDir, { recursive: true, force: true });
  for (const f of [tableFile, tableFile.replace(".bin", ".damaged.bin"), tableFile.replace(".bin", ".foreign.bin")]) if (f) rmSync(f, { force: true });
}, 30_000);

describe("restarts keep connections", () => {
  test("100 held NAT and 50 held DR connections with traffic flowing survive 5 restarts in a row, each on its real server", async () => {
    const chats = [new Chat(100, 100), new Chat(50, 100, DR_VIP)];
    const names = ["NAT", "DR"];
    try {
      for (const [k, chat] of chats.entries()) {
        const warm = await chat.until((r) => r.received.length === (k === 0 ? 100 : 50) && r.received.every((x) => x >= 3), 60_000);
        expect(warm.ok).toBe(true);
        expect(Object.keys(warm.r.byServer).sort()).toEqual(["rs1", "rs2", "rs3"]);
      }
      for (let round = 1; round <= 5; round++) {
        const before = await Promise.all(chats.map((c) => c.report()));
        const t0 = Date.now();
        const { stopped, started } = await restart();
        const up = Date.now() - t0;
        expect(stopped).toContain("connection table saved for the next start");
        // NAT and DR connections, nothing expired, nothing without its service
        expect(started).toMatch(/adopting the saved connection table.*"kept":150,"expired":0,"noService":0/);
        // the program the stopped daemon left in hold mode is taken over, not reported as a crash's
        expect(started).toContain("took over the steering program the stopped xvs left in hold mode");
        expect(started).not.toContain("a killed xvs left attached");
        // packets that came while no daemon ran were held (dropped for retransmission), not passed
        // to the kernel's RSTs: the stopped daemon's program counted them (one program on both interfaces)
        const held = Math.max(...[...started.matchAll(/"heldInGap":(-?\d+)/g)].map((m) => Number(m[1])));
        for (const [k, chat] of chats.entries()) {
          // every connection answers lines sent after the stop began
          const back = await chat.until((r) => r.received.every((x, i) => x > before[k].sent[i] + 2), 60_000);
          const r = back.r;
          process.stdout.write(
            `  restart ${round} ${names[k]}: daemon back after ${up} ms (${held} packets held in the gap), all ${r.received.length} answering ${Date.now() - t0 - up} ms after that; closed ${r.closed}, changed server ${r.changedServer}, out of order ${r.outOfOrder}\n`,
          );
          expect(held).toBeGreaterThan(0);
          expect(back.ok).toBe(true);
          expect(r.closed).toBe(0);
          expect(r.changedServer).toBe(0);
          expect(r.outOfOrder).toBe(0);
          expect(r.errors).toEqual([]);
        }
      }
    } finally {
      for (const c of chats) c.close();
    }
  }, 600_000);

  test("a damaged saved table: the start says why, sets it aside, starts empty (held connections reset)", async () => {
    const chat = new Chat(10, 100);
    try {
      expect((await chat.until((r) => r.conns === 10 && r.received.every((x) => x >= 2), 60_000)).ok).toBe(true);
      expect(await xvs.stop()).toBe(0);
      const bytes = readFileSync(tableFile);
      bytes[bytes.length >> 1] ^= 0xff;
      writeFileSync(tableFile, bytes);
      xvs = await startDaemon(L.lab, L.director, L.ifaces, [], stateDir);
      const lines = xvs
        .log()
        .split("\n")
        .filter((l) => l.includes("saved connection table not adopted"));
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain("checksum mismatch");
      expect(existsSync(tableFile.replace(".bin", ".damaged.bin"))).toBe(true);
      expect(existsSync(tableFile)).toBe(false);
      const reset = await chat.until((r) => r.closed === 10, 20_000);
      expect(reset.ok).toBe(true);
    } finally {
      chat.close();
    }
  }, 120_000);

  test("another namespace's saved table: the start says why, sets it aside, starts empty", async () => {
    const chat = new Chat(10, 100);
    try {
      expect((await chat.until((r) => r.conns === 10 && r.received.every((x) => x >= 2), 60_000)).ok).toBe(true);
      expect(await xvs.stop()).toBe(0);
      expect(existsSync(tableFile)).toBe(true);
      // a well-formed table of this build from a namespace with another cookie (same inode: reused)
      const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      const inode = /net-(\d+)/.exec(tableFile)![1];
      writeFileSync(
        tableFile,
        encodeTable({
          header: {
            layout: layoutVersion(),
            build: "test",
            netns: { cookie: "1", inode, boot },
            epochMs: Date.now(),
            savedMs: Date.now(),
            ports: [],
            services: [],
            dests: [],
            queues: [],
          },
          queues: [new Int32Array(0)],
        }),
      );
      xvs = await startDaemon(L.lab, L.director, L.ifaces, [], stateDir);
      const lines = xvs
        .log()
        .split("\n")
        .filter((l) => l.includes("saved connection table not adopted"));
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain("saved by another network namespace (cookie 1");
      expect(existsSync(tableFile.replace(".bin", ".foreign.bin"))).toBe(true);
      expect((await chat.until((r) => r.closed === 10, 20_000)).ok).toBe(true);
    } finally {
      chat.close();
    }
  }, 120_000);
});

describe("restarts with fewer workers", () => {
  test("two workers' connections (NAT over two queues) are all kept by a daemon restarted with one worker", async () => {
    const Q = await buildDirectorLab("rstq", { reals: 2, queues: 2 });
    const dir = mkdtempSync(join(tmpdir(), "xvs-restart-q-state-"));
    let d: LabDaemon | undefined;
    let qFile = "";
    const outer = L;
    try {
      L = Q; // Chat talks to the lab in L
      await startServers(Q.lab, Q.reals, { tcp: 7000 });
      d = await startDaemon(Q.lab, Q.director, Q.ifaces, ["--workers", "2"], dir);
      qFile = join("/run/xvs", `net-${/\[(\d+)\]/.exec(readlinkSync(`/proc/${d.proc.pid}/ns/net`))![1]}`, "conns.bin");
      expect(d.log()).toContain('"workers":2');
      await ok(d, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7000, scheduler: "rr" });
      for (let i = 1; i <= 2; i++) await ok(d, "POST", `/v1/services/tcp:${LAB_VIP}:7000/dests`, { address: realAddr(i), port: 7000, forward: "masq" });
      const chat = new Chat(40, 100);
      try {
        expect((await chat.until((r) => r.received.length === 40 && r.received.every((x) => x >= 3), 60_000)).ok).toBe(true);
        expect(await d.stop()).toBe(0);
        const before = await chat.report();
        d = await startDaemon(Q.lab, Q.director, Q.ifaces, ["--workers", "1"], dir);
        const started = d.log();
        // both saved workers' records: one in the worker's init, the other in an adopt message
        expect(started).toMatch(/adopting the saved connection table.*"kept":40,/);
        const line = started.split("\n").find((l) => l.includes("adopted connections installed; hold mode off"))!;
        const installed = JSON.parse(line) as { connections: number; savedWorkers: number; perSavedWorker: number[]; workers: number };
        expect([installed.connections, installed.savedWorkers, installed.workers]).toEqual([40, 2, 1]);
        // each saved worker held some (RSS spread the client ports over both queues)
        expect(Math.min(...installed.perSavedWorker)).toBeGreaterThan(0);
        const back = await chat.until((r) => r.received.every((x, i) => x > before.sent[i] + 2), 60_000);
        process.stdout.write(
          `  2 workers -> 1 (saved ${installed.perSavedWorker.join(" + ")}): all 40 answering: ${back.ok}; closed ${back.r.closed}, changed server ${back.r.changedServer}\n`,
        );
        expect(back.ok).toBe(true);
        expect([back.r.closed, back.r.changedServer, back.r.outOfOrder]).toEqual([0, 0, 0]);
      } finally {
        chat.close();
      }
    } finally {
      L = outer;
      await d?.stop();
      // the last stop saved its table: a later namespace with this inode would find it (foreign)
      if (qFile) rmSync(qFile, { force: true });
      await Q.lab.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
