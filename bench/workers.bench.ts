#!/usr/bin/env bun
/**
 * Issue 13's scaling bench: xvs NAT with `--workers 1` and `--workers 2` side by side in one run,
 * on veths of 2 rx queues (the director's c0 and s0), interleaved over rounds, medians:
 *
 *   bun bench/workers.bench.ts [--rounds 3] [--duration 3] [--cache] [--quick] [--out DIR] [--name NAME]
 *
 * (as root; writes DIR/NAME.json and .md, default bench/results/host-YYYYMMDD-workers).
 *
 * - udp64: 64-byte UDP to the VIP from TWO live-frames generators, one pinned to each CPU. veth
 *   hands an XDP-sent frame to the peer's rx queue `smp_processor_id() % queues`
 *   (veth_select_rxq, drivers/net/veth.c), so one generator would fill one queue only; with one
 *   per CPU each queue gets one generator's flows (different source ports), and that queue's
 *   receive work (the XDP steering, the copy into the UMEM) runs on the generator's CPU.
 * - tcp: new TCP connections per second, two `tcp-cli` clients, one pinned to each CPU (the
 *   kernel's tx-queue hash spreads the connections over both queues); the NAT replies cross
 *   workers about half the time (conn/peers.ts).
 * - Where the time goes, over each measurement window: every CPU's /proc/stat split (user,
 *   system, softirq, idle), the CPU time of the generators/clients and of the daemon's threads,
 *   and each worker's busy share (GET /metrics xvs_worker_busy_seconds_total / _loop_).
 *
 * The machine has 2 cores: generators, clients, servers, NAPI and xvs all share them; nothing
 * is pinned on the director's side (the workers go where the scheduler puts them).
 * Contenders: xvs-nat-nocache-w1, -w2 (`--flow-cache off`: the TypeScript path on every packet);
 * with --cache also xvs-nat-w2 (flow cache on; UDP without replies is never cached, so it only
 * changes TCP).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { selfCommand } from "../src/tools/lab/self.ts";
import { Xvs, type RunCtx } from "../src/tools/bench/contenders.ts";
import { buildBenchLab, GEN_ADDR, TCP_PORT, UDP_PORT, VIP } from "../src/tools/bench/lab.ts";
import { describeMachine } from "../src/tools/bench/machine.ts";
import { defaultOptions, type WorkloadKind } from "../src/tools/bench/options.ts";

const argv = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const quick = argv.includes("--quick");
const ROUNDS = Number(arg("--rounds", quick ? "1" : "3"));
const DURATION = Number(arg("--duration", quick ? "1" : "3"));
const WARMUP = quick ? 0.5 : 1;
const START_WARMUP = quick ? 1 : 3;
const FLOWS = 512; // per generator
const TCP_CONC = 16; // per client
const CPUS = [0, 1];
const stamp = new Date().toISOString().slice(0, 10).replaceAll("-", "");
const OUT = arg("--out", join(import.meta.dir, "results"));
const NAME = arg("--name", `host-${stamp}-workers`);
const HZ = 100; // USER_HZ of /proc/*/stat and /proc/stat
/** Nice of the UDP generators (--gen-nice): 19 lets the director's threads take the CPU they want. */
const GEN_NICE = Number(arg("--gen-nice", "19"));
/** --profile: the daemon runs with XVS_PROFILE=1 (worker.ts's phase timing) and the udp64 window's phases are reported. */
const PROFILE = argv.includes("--profile");

const kinds: { id: string; make: () => Xvs }[] = [
  { id: "w1", make: () => new Xvs("nat", false, 1) },
  { id: "w2", make: () => new Xvs("nat", false, 2) },
];
if (argv.includes("--cache")) kinds.push({ id: "w2-cache", make: () => new Xvs("nat", true, 2) });

const log = (s: string) => process.stderr.write(`workers bench: ${s}\n`);

// ---- CPU accounting over a window ----
type CpuStat = Record<string, number[]>; // cpuN -> [user nice system idle iowait irq softirq steal]
function cpuStat(): CpuStat {
  const out: CpuStat = {};
  for (const l of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(l);
    if (m) out[m[1]] = m[2].split(/\s+/).map(Number);
  }
  return out;
}
/** Per CPU, the share of the window spent in each state (sums to ~1). */
function cpuSplit(a: CpuStat, b: CpuStat): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const k of Object.keys(b)) {
    const d = b[k].map((v, i) => v - (a[k]?.[i] ?? 0));
    const tot = d.slice(0, 8).reduce((x, y) => x + y, 0) || 1;
    out[k] = { user: (d[0] + d[1]) / tot, system: d[2] / tot, softirq: (d[5] + d[6]) / tot, idle: (d[3] + d[4]) / tot, steal: d[7] / tot };
  }
  return out;
}
/** utime+stime ticks of a process's threads, keyed "comm/tid". */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const r = s.slice(s.lastIndexOf(")") + 2).split(" ");
      out.set(`${s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"))}/${tid}`, Number(r[11]) + Number(r[12]));
    }
  } catch {
    // gone
  }
  return out;
}
function procTicks(pid: number): number {
  let t = 0;
  for (const v of threadTicks(pid).values()) t += v;
  return t;
}
/** Threads that used CPU in the window: "comm/tid" -> share of one core. */
function threadShares(a: Map<string, number>, b: Map<string, number>, secs: number): Record<string, number> {
  const out: [string, number][] = [];
  for (const [k, v] of b) {
    const d = (v - (a.get(k) ?? 0)) / HZ / secs;
    if (d >= 0.01) out.push([k, d]);
  }
  out.sort((x, y) => y[1] - x[1]);
  return Object.fromEntries(out.map(([k, v]) => [k, round(v, 2)]));
}
/** Whole-process ticks of every process on the machine (pid -> [comm, ticks]). */
function allProcTicks(): Map<number, [string, number]> {
  const out = new Map<number, [string, number]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "utf8");
      const r = s.slice(s.lastIndexOf(")") + 2).split(" ");
      out.set(Number(d), [s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")), Number(r[11]) + Number(r[12])]);
    } catch {
      // exited
    }
  }
  return out;
}
/** The busiest processes in the window other than `exclude` (the bench's own): "comm cores". */
function otherProcs(a: Map<number, [string, number]>, b: Map<number, [string, number]>, exclude: number[], secs: number): { total: number; top: string[] } {
  const rows: [string, number][] = [];
  let total = 0;
  for (const [pid, [comm, t]] of b) {
    if (exclude.includes(pid) || pid === process.pid) continue;
    const d = (t - (a.get(pid)?.[1] ?? t)) / HZ / secs;
    total += d;
    if (d >= 0.02) rows.push([`${comm}(${pid})`, d]);
  }
  rows.sort((x, y) => y[1] - x[1]);
  return { total: round(total, 2), top: rows.slice(0, 5).map(([c, v]) => `${c} ${round(v, 2)}`) };
}
function workerTimes(metrics: string): { busy: number[]; loop: number[] } {
  const busy: number[] = [],
    loop: number[] = [];
  for (const l of metrics.split("\n")) {
    const m = /^xvs_worker_(busy|loop)_seconds_total\{[^}]*worker="(\d+)"[^}]*\}\s+(\S+)/.exec(l);
    if (m) (m[1] === "busy" ? busy : loop)[Number(m[2])] = Number(m[3]);
  }
  return { busy, loop };
}
function metricValue(metrics: string, re: RegExp): number {
  let t = 0;
  for (const l of metrics.split("\n")) if (re.test(l)) t += Number(l.trim().split(/\s+/).pop());
  return t;
}
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Window {
  value: number;
  cpus: Record<string, Record<string, number>>;
  /** Share of one core used by the traffic source processes (generators / clients). */
  source: number;
  /** Share of one core used by the daemon's threads in total, and its busiest threads. */
  daemon: number;
  threads: Record<string, number>;
  /** Each worker's busy share of its loop time in the window. */
  workerBusy: number[];
  /** Replies/packets handled with another worker's connection (peer_conn) in the window. */
  peerConn: number;
  passNoSocket: number;
  /** Cores used by every other process on the machine (the harness's own excluded), and the busiest. */
  others: { total: number; top: string[] };
  /** c0's rx queues over the window, per second: frames that reached each (xdp_packets), went to a socket (xdp_redirect), were dropped. */
  c0PerSec: Record<string, number>;
  /** What the generators offered (frames/s over their whole run, UDP only). */
  offered?: number;
  /** Wall-clock bounds of the window (ms since the epoch), to pick the profile's slices. */
  fromMs: number;
  toMs: number;
}

/**
 * --profile: each worker's phases over the udp64 window, from its "xvs profile" log line (the
 * 250 ms slices that ended inside the window): ns per forwarded frame and share of wall time.
 */
function windowPhases(logText: string, fromMs: number, toMs: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of logText.split("\n")) {
    if (!line.includes('"xvs profile"')) continue;
    const rec = JSON.parse(line.slice(line.indexOf("{"))) as {
      worker: number;
      slices: { endMs: number; totalNs: number; frames: number; ns: Record<string, number> }[];
    };
    let total = 0,
      frames = 0;
    const ns: Record<string, number> = {};
    for (const sl of rec.slices) {
      if (sl.endMs < fromMs + 250 || sl.endMs > toMs) continue;
      total += sl.totalNs;
      frames += sl.frames;
      for (const [k, v] of Object.entries(sl.ns)) ns[k] = (ns[k] ?? 0) + v;
    }
    if (total === 0) continue;
    out.push({
      worker: rec.worker,
      frames,
      nsPerFrame: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, Math.round(v / Math.max(1, frames))])),
      shareOfWall: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, round(v / total, 2)])),
    });
  }
  return out;
}

/** c0's per-rx-queue counters (veth's ethtool -S): frames that reached each queue, and drops. */
async function c0Queues(ctx: RunCtx): Promise<Record<string, number>> {
  const r = await ctx.bl.lab.exec("dir", ["ethtool", "-S", "c0"], true);
  const out: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/rx_queue_(\d+)_(xdp_packets|xdp_redirect|drops|xdp_drops):\s+(\d+)/g)) out[`q${m[1]}_${m[2]}`] = Number(m[3]);
  return out;
}

/** Measure `secs` seconds while `sources` run; `count` reads the forwarded total. */
async function window(ctx: RunCtx, x: Xvs, sources: Subprocess[], secs: number, count: () => number): Promise<Window> {
  const m0 = await x.metricsText();
  const q0 = await c0Queues(ctx);
  const fromMs = Date.now();
  const c0 = count(),
    s0 = cpuStat(),
    t0 = threadTicks(x.pid),
    g0 = sources.map((p) => procTicks(p.pid)),
    a0 = allProcTicks(),
    p0 = performance.now();
  await Bun.sleep(secs * 1000);
  const c1 = count(),
    s1 = cpuStat(),
    t1 = threadTicks(x.pid),
    g1 = sources.map((p) => procTicks(p.pid)),
    a1 = allProcTicks(),
    toMs = Date.now(),
    el = (performance.now() - p0) / 1000;
  const q1 = await c0Queues(ctx);
  const m1 = await x.metricsText();
  const w0 = workerTimes(m0),
    w1 = workerTimes(m1);
  let daemon = 0;
  for (const [k, v] of t1) daemon += v - (t0.get(k) ?? 0);
  return {
    value: (c1 - c0) / el,
    fromMs,
    toMs,
    cpus: Object.fromEntries(Object.entries(cpuSplit(s0, s1)).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([a, b]) => [a, round(b, 2)]))])),
    source: round(g1.reduce((a, v, i) => a + v - g0[i], 0) / HZ / el, 2),
    daemon: round(daemon / HZ / el, 2),
    threads: threadShares(t0, t1, el),
    workerBusy: w1.busy.map((b, i) => round((b - (w0.busy[i] ?? 0)) / Math.max(1e-9, w1.loop[i] - (w0.loop[i] ?? 0)), 2)),
    peerConn: metricValue(m1, /^xvs_verdicts_total\{[^}]*verdict="peer_conn"/) - metricValue(m0, /^xvs_verdicts_total\{[^}]*verdict="peer_conn"/),
    c0PerSec: Object.fromEntries(Object.entries(q1).map(([k, v]) => [k, Math.round((v - (q0[k] ?? 0)) / el)])),
    others: otherProcs(a0, a1, [x.pid, ...sources.map((p) => p.pid)], el),
    passNoSocket: metricValue(m1, /^xvs_xdp_packets_total\{[^}]*"pass_no_socket"/) - metricValue(m0, /^xvs_xdp_packets_total\{[^}]*"pass_no_socket"/),
  };
}

/** Two live-frames generators, one per CPU (so one per rx queue), each its own source ports. */
async function startGens(ctx: RunCtx, seconds: number): Promise<Subprocess[] & { texts: string[] }> {
  const procs = CPUS.map((cpu, i) =>
    ctx.bl.lab.spawn("gen", [
      ...selfCommand(),
      "__bench",
      "gen",
      ...["--iface", "eth0", "--dst-mac", ctx.bl.mac.c0, "--src", GEN_ADDR, "--dst", VIP],
      ...["--dport", String(UDP_PORT), "--sport", String(10000 + i * 20000), "--size", "64", "--flows", String(FLOWS)],
      ...["--seconds", String(seconds), "--cpu", String(cpu)],
    ]),
  );
  // the director first: a generator spins its CPU whatever its pace (xvs_gen.c), so at nice 0 it
  // would take half of its CPU from a worker there, and one worker would get a smaller share
  // of the machine than two (the scheduler's fairness, not xvs's scaling)
  for (const p of procs) setPriority(p.pid, GEN_NICE);
  const texts = procs.map(() => "");
  for (const [i, p] of procs.entries()) {
    void (async () => {
      const dec = new TextDecoder();
      for await (const c of p.stdout) texts[i] += dec.decode(c);
    })();
  }
  const deadline = performance.now() + 60_000;
  while (!texts.every((t) => t.includes("running"))) {
    if (procs.some((p) => p.exitCode !== null) || performance.now() > deadline) {
      for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
      const why = await Promise.all(
        procs.map(async (p, i) => `gen ${i} exit ${p.exitCode}: ${(await new Response(p.stderr).text()).trim().slice(-200)} ${texts[i].trim().slice(-100)}`),
      );
      throw new Error(`generators did not start: ${why.join("; ")}`);
    }
    await Bun.sleep(10);
  }
  return Object.assign(procs as Subprocess[], { texts }) as Subprocess[] & { texts: string[] };
}
async function stopAll(procs: Subprocess[]): Promise<void> {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(5000)]);
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
}
/** Sum of the generators' own reports ({sent, secs, pps}: their whole run, warm-up included). */
function offered(texts: string[]): number {
  let t = 0;
  for (const x of texts) {
    const line = x.trim().split("\n").pop() ?? "";
    if (line.startsWith("{")) t += (JSON.parse(line) as { pps: number }).pps;
  }
  return t;
}

async function udp64(ctx: RunCtx, x: Xvs, warm: number): Promise<Window> {
  const gens = await startGens(ctx, warm + DURATION + 30);
  try {
    await Bun.sleep(warm * 1000);
    const w = await window(ctx, x, gens, DURATION, () => ctx.bl.sink.read().pkts);
    await stopAll(gens);
    await Bun.sleep(200); // the last stdout chunk
    return { ...w, offered: offered(gens.texts) };
  } finally {
    await stopAll(gens);
  }
}

async function tcp(ctx: RunCtx, x: Xvs): Promise<Window & { errors: number }> {
  const secs = DURATION + WARMUP;
  const clients = CPUS.map((cpu) =>
    ctx.bl.lab.spawn("gen", [
      ...selfCommand(),
      "__bench",
      "tcp-cli",
      ...["--hosts", VIP, "--port", String(TCP_PORT), "--seconds", String(secs), "--warmup", "0"],
      ...["--concurrency", String(TCP_CONC), "--cpu", String(cpu)],
    ]),
  ) as Subprocess<"ignore", "pipe", "pipe">[];
  const outs = clients.map((p) => new Response(p.stdout).text());
  // the clients report only at their end: the window's rate is their count over their time;
  // the CPU split is taken over the middle DURATION seconds
  await Bun.sleep(WARMUP * 1000 * 0.5);
  const w = await window(ctx, x, clients as Subprocess[], DURATION, () => 0);
  await Promise.all(clients.map((p) => p.exited));
  let cps = 0,
    errors = 0;
  for (const [i, o] of (await Promise.all(outs)).entries()) {
    const line = o.trim().split("\n").pop() ?? "";
    if (!line.startsWith("{")) throw new Error(`tcp-cli ${i} failed: ${(await new Response(clients[i].stderr).text()).slice(-300)}`);
    const r = JSON.parse(line) as { cps: number; errors: number; conns: number };
    cps += r.cps;
    errors += r.errors;
  }
  return { ...w, value: cps, errors };
}

// ---- the run ----
const o = { ...defaultOptions(), pin: false, steer: false, rounds: ROUNDS, duration: DURATION, warmup: WARMUP, workloads: ["udp64", "tcp"] as WorkloadKind[] };
const machineStart = await describeMachine("", false);
const results: Record<string, { udp64: Window[]; tcp: (Window & { errors: number })[]; errors: string[]; phases: Record<string, unknown>[][] }> = {};
for (const k of kinds) results[k.id] = { udp64: [], tcp: [], errors: [], phases: [] };
const t0 = Date.now();
for (let r = 0; r < ROUNDS; r++) {
  // rotate the order each round so that no contender always runs first or last
  const order = kinds.map((_, i) => kinds[(i + r) % kinds.length]);
  for (const k of order) {
    log(`round ${r + 1}/${ROUNDS}: ${k.id}`);
    const bl = await buildBenchLab(`wb${r}k${kinds.indexOf(k)}`, { mode: "nat", steer: null, serverCpu: null, queues: 2 });
    const ctx: RunCtx = { o, bl, progress: log };
    const x = k.make();
    try {
      await x.prepare(o);
      await x.start(ctx, PROFILE);
      const u = await udp64(ctx, x, START_WARMUP);
      results[k.id].udp64.push(u);
      log(
        `  udp64 ${(u.value / 1e6).toFixed(3)} Mpps (c0 got ${JSON.stringify(u.c0PerSec)}), busy ${u.workerBusy.join("/")}, daemon ${u.daemon} cores, gens ${u.source} cores`,
      );
      const t = await tcp(ctx, x);
      results[k.id].tcp.push(t);
      log(`  tcp ${Math.round(t.value)} conn/s (errors ${t.errors}), busy ${t.workerBusy.join("/")}, peer_conn ${t.peerConn}`);
    } catch (e) {
      results[k.id].errors.push(String(e instanceof Error ? e.message : e).slice(0, 400));
      log(`  failed: ${e instanceof Error ? e.message : e}`);
    } finally {
      await x.stop().catch(() => null);
      const u = results[k.id].udp64.at(-1);
      if (PROFILE && u && results[k.id].udp64.length > results[k.id].phases.length) results[k.id].phases.push(windowPhases(x.lastLog, u.fromMs, u.toMs));
      await bl.close();
    }
  }
}
const machineEnd = await describeMachine("", false);

const med = (id: string, w: "udp64" | "tcp") => median(results[id][w].map((x) => x.value));
const ratio = (w: "udp64" | "tcp") => med("w2", w) / med("w1", w);
/** Per-round w2/w1 ratios (rounds where both ran). */
const roundRatios = (w: "udp64" | "tcp") => results.w1[w].map((a, i) => (results.w2[w][i] ? results.w2[w][i].value / a.value : NaN)).filter((v) => v > 0);
const summary = {
  name: NAME,
  command: `bun bench/workers.bench.ts ${argv.join(" ")}`.trim(),
  when: new Date(t0).toISOString(),
  seconds: Math.round((Date.now() - t0) / 1000),
  rounds: ROUNDS,
  duration: DURATION,
  flowsPerGenerator: FLOWS,
  generatorNice: GEN_NICE,
  tcpConcurrencyPerClient: TCP_CONC,
  medians: Object.fromEntries(kinds.map((k) => [k.id, { udp64Mpps: round(med(k.id, "udp64") / 1e6), tcpCps: Math.round(med(k.id, "tcp")) }])),
  ratio: {
    udp64: round(ratio("udp64")),
    tcp: round(ratio("tcp")),
    udp64PerRound: roundRatios("udp64").map((v) => round(v)),
    tcpPerRound: roundRatios("tcp").map((v) => round(v)),
  },
  results,
  machineStart,
  machineEnd,
};
mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, `${NAME}.json`), JSON.stringify(summary, null, 1) + "\n");

// markdown: the numbers and the time split; the interpretation is written by hand next to it
const md: string[] = [`# ${NAME}: xvs NAT, 1 and 2 workers, 2 rx queues`, "", "```", summary.command, "```", ""];
md.push(`${summary.when}, ${ROUNDS} rounds interleaved (order rotated), ${DURATION} s windows, medians (min..max).`, "");
md.push("| contender | udp64 Mpps | tcp conn/s |", "|---|---|---|");
for (const k of kinds) {
  const u = results[k.id].udp64.map((x) => x.value / 1e6),
    t = results[k.id].tcp.map((x) => x.value);
  md.push(
    `| ${k.make().id} | ${round(median(u))} (${round(Math.min(...u))}..${round(Math.max(...u))}) | ${Math.round(median(t))} (${Math.round(Math.min(...t))}..${Math.round(Math.max(...t))}) |`,
  );
}
md.push(
  "",
  `Ratio w2/w1 of medians: udp64 **${summary.ratio.udp64}**, tcp **${summary.ratio.tcp}**; per round: udp64 ${summary.ratio.udp64PerRound.join(", ")}; tcp ${summary.ratio.tcpPerRound.join(", ")}.`,
  "",
);
md.push("## Where each core's time goes (per window, each round)", "");
md.push("cpuN: user/system/softirq/idle shares of that CPU; gens/clients and daemon: cores used; busy: each worker's busy share of its loop.", "");
for (const k of kinds)
  for (const w of ["udp64", "tcp"] as const)
    for (const [i, x] of results[k.id][w].entries()) {
      const cpus = Object.entries(x.cpus)
        .map(([c, s]) => `${c} u${s.user} s${s.system} si${s.softirq} id${s.idle}`)
        .join("; ");
      const top = Object.entries(x.threads)
        .slice(0, 5)
        .map(([t, v]) => `${t.replace(/\/\d+$/, "")} ${v}`)
        .join(", ");
      md.push(
        `- ${k.id} ${w} r${i + 1}: ${w === "udp64" ? `${round(x.value / 1e6)} Mpps` : `${Math.round(x.value)} conn/s`}; ${cpus}; ${w === "udp64" ? "gens" : "clients"} ${x.source}, daemon ${x.daemon} (${top}); busy ${x.workerBusy.join("/")}; others ${x.others.total} (${x.others.top.join(", ")})${x.offered ? `; offered ${round(x.offered / 1e6, 2)} Mpps` : ""}; c0/s ${Object.entries(
          x.c0PerSec,
        )
          .filter(([, v]) => v > 0)
          .map(([k, v]) => `${k} ${v}`)
          .join(" ")}; peer_conn ${x.peerConn}; pass_no_socket ${x.passNoSocket}`,
      );
    }
if (PROFILE) {
  md.push("", "## Worker phases in the udp64 window (XVS_PROFILE=1): ns per forwarded frame, share of the worker's wall time", "");
  for (const k of kinds)
    for (const [i, ph] of results[k.id].phases.entries())
      for (const w of ph as { worker: number; frames: number; nsPerFrame: Record<string, number>; shareOfWall: Record<string, number> }[])
        md.push(
          `- ${k.id} r${i + 1} worker ${w.worker}: ${Object.entries(w.nsPerFrame)
            .map(([p, v]) => `${p} ${v} ns (${w.shareOfWall[p]})`)
            .join(", ")}`,
        );
}
for (const k of kinds) if (results[k.id].errors.length) md.push(`- ${k.id} failed: ${results[k.id].errors.join(" | ")}`);
writeFileSync(join(OUT, `${NAME}.md`), md.join("\n") + "\n");
process.stdout.write(JSON.stringify({ medians: summary.medians, ratio: summary.ratio, out: join(OUT, NAME) }) + "\n");
const failed = kinds.some((k) => results[k.id].udp64.length === 0);
process.exit(failed ? 1 : 0);
