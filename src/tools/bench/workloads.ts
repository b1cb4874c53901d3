/**
 * The traffic of `xvs bench`, run against one started contender in its lab:
 *
 *  - udp(size): the live-frames generator (CPU genCpu) sends `flows` UDP flows as fast as it
 *    can; after `warmup` seconds the sink's counters are read twice, `duration` apart: the rate
 *    that came out of the director. The generator reports what it offered;
 *  - latency: UDP echo round trips through the director, one at a time (p50/p99);
 *  - tcp: new TCP connections per second, a short HTTP/1.0 request and response each;
 *  - flows(n): the generator cycles through n flows; once the contender tracks them all (or
 *    stops adding), the rate is measured, and the memory the tracked flows take is read.
 *
 * A measurement that forwards nothing throws, with the contender's own diagnosis.
 */
import type { Subprocess } from "bun";
import { selfCommand } from "../lab/self.ts";
import type { Contender, RunCtx } from "./contenders.ts";
import { CPU_EXTRAS, cpuSnapshot, windowCpuExtras } from "./cpu.ts";
import { agentJson, GEN_ADDR, PING_PORT, TCP_PORT, UDP_PORT } from "./lab.ts";

/** One value produced by a workload run. */
export interface Result {
  /** Workload row id: udp64, udp1514, latency-p50, latency-p99, tcp, flows-100k... */
  id: string;
  value: number;
  extra: Record<string, number | string>;
}

export function flowsId(n: number): string {
  return n >= 1_000_000 && n % 1_000_000 === 0 ? `flows-${n / 1_000_000}M` : n >= 1000 && n % 1000 === 0 ? `flows-${n / 1000}k` : `flows-${n}`;
}

interface Gen {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the generator printed so far. */
  out(): string;
}

/** Start the generator and wait until it sends (its start-up can take seconds in an emulated guest). */
async function startGen(ctx: RunCtx, c: Contender, size: number, flows: number, seconds: number, pps = 0): Promise<Gen> {
  const { o, bl } = ctx;
  const args = [
    ...selfCommand(),
    "__bench",
    "gen",
    "--iface",
    "eth0",
    "--dst-mac",
    bl.mac.c0,
    "--src",
    GEN_ADDR,
    "--dst",
    c.udpDst,
    "--dport",
    String(UDP_PORT),
    "--size",
    String(size),
    "--flows",
    String(flows),
    "--seconds",
    String(seconds),
    "--pps",
    String(Math.round(pps)),
  ];
  if (o.pin) args.push("--cpu", String(o.genCpu));
  const proc = bl.lab.spawn("gen", args) as Subprocess<"ignore", "pipe", "pipe">;
  let text = "";
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) text += dec.decode(chunk);
  })();
  const g: Gen & { reading: Promise<void> } = { proc, out: () => text, reading };
  const deadline = performance.now() + 60_000;
  while (!text.includes("running")) {
    if (proc.exitCode !== null || performance.now() > deadline) {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      const err = await new Response(proc.stderr).text();
      throw new Error(`generator did not start: ${err.trim().slice(-300) || "no 'running' line within 60 s"}`);
    }
    await Bun.sleep(10);
  }
  return g;
}

async function stopGen(g: Gen): Promise<{ sent: number; secs: number; pps: number } | null> {
  const p = g.proc;
  if (p.exitCode === null) p.kill("SIGTERM");
  const [err] = await Promise.all([new Response(p.stderr).text(), Promise.race([p.exited, Bun.sleep(5000)])]);
  if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.race([(g as Gen & { reading: Promise<void> }).reading, Bun.sleep(1000)]);
  const line = g.out().trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) {
    if (err.trim()) throw new Error(`generator failed: ${err.trim().slice(-300)}`);
    return null;
  }
  return JSON.parse(line);
}

/** Sleep, but fail early when the generator died. */
async function sleepWhileRunning(g: Gen, ms: number): Promise<void> {
  const p = g.proc;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (p.exitCode !== null) {
      const err = await new Response(p.stderr).text();
      throw new Error(`generator exited (${p.exitCode}): ${err.trim().slice(-300)}`);
    }
    await Bun.sleep(Math.min(100, Math.max(1, end - performance.now())));
  }
}

async function nothingForwarded(ctx: RunCtx, c: Contender, what: string): Promise<never> {
  const why = await c.diagnose(ctx).catch(() => "");
  throw new Error(`${c.id} forwarded nothing (${what})${why ? `; ${why}` : ""}`);
}

/** One rate measurement: what came out of the director while the generator offered `pps` (0: all it can). */
export interface RateSample {
  pps: number;
  offeredPps: number;
  bytes: number;
  secs: number;
  w0: number;
  w1: number;
  /** Where each CPU's time went in the window (cpu.ts windowCpuExtras). */
  cpu: Record<string, number>;
}

export async function measureRate(ctx: RunCtx, c: Contender, size: number, flows: number, pps: number, warmupS: number, windowS: number): Promise<RateSample> {
  const counter = c.counter(ctx);
  const gen = await startGen(ctx, c, size, flows, warmupS + windowS + 30, pps);
  try {
    await sleepWhileRunning(gen, warmupS * 1000);
    const threads = [ctx.bl.napiThreads, ctx.bl.sideNapiThreads, c.processPid()] as const;
    const a = counter.read(),
      c0 = cpuSnapshot(...threads),
      t0 = performance.now(),
      w0 = Date.now();
    await sleepWhileRunning(gen, windowS * 1000);
    const b = counter.read(),
      c1 = cpuSnapshot(...threads),
      t1 = performance.now(),
      w1 = Date.now();
    const g = await stopGen(gen);
    const secs = (t1 - t0) / 1000;
    const cpus = ctx.o.pin ? { dirCpu: ctx.o.dirCpu, genCpu: ctx.o.genCpu } : null;
    const cpu = windowCpuExtras(c0, c1, cpus, b.pkts - a.pkts);
    return { pps: (b.pkts - a.pkts) / secs, offeredPps: g?.pps ?? 0, bytes: b.bytes - a.bytes, secs, w0, w1, cpu };
  } finally {
    if (gen.proc.exitCode === null) gen.proc.kill("SIGKILL");
  }
}

/**
 * Traffic before the first measurement of a freshly started contender: a just-started xvs runs
 * its fast path in the JIT's lower tiers for a while (JSC compiles hot code in steps, on a
 * compiler thread that shares the director's CPU); a long-running daemon would be warm. The
 * same warm-up is given to every contender.
 */
export async function warmUp(ctx: RunCtx, c: Contender, seconds: number): Promise<void> {
  if (seconds <= 0) return;
  await measureRate(ctx, c, 64, ctx.o.flows, 0, seconds, 0.05);
}

/** Packets per second of `size`-byte frames that came out of the director, under the generator's full load. */
export async function udpRate(ctx: RunCtx, c: Contender, size: number, id = `udp${size}`): Promise<Result> {
  const { o } = ctx;
  const r = await measureRate(ctx, c, size, o.flows, 0, o.warmup, o.duration);
  if (!(r.pps > 0)) await nothingForwarded(ctx, c, `${size}-byte UDP`);
  return { id, value: r.pps, extra: { offeredPps: r.offeredPps, gbps: (r.bytes * 8) / r.secs / 1e9, windowStartMs: r.w0, windowEndMs: r.w1, ...r.cpu } };
}

/** Offered loads of the peak search, relative to the rate forwarded under full load. */
export const PEAK_LEVELS = [1.2, 1.5, 1.9];

/**
 * The peak forwarding rate: the most that came out of the director over a few offered loads
 * (evenly paced by the generator) around and above what it forwarded under the generator's full
 * load. Under overload some contenders forward less than their peak: an AF_XDP forwarder whose
 * receive work shares its core spends it on frames it then drops (receive livelock), while the
 * kernel's forwarding drops at the veth ring, on the sender's CPU. Returns the peak and the
 * full-load value (`udp64-overload`).
 */
export async function udpPeak(ctx: RunCtx, c: Contender, size: number, id = `udp${size}`): Promise<Result[]> {
  const full = await udpRate(ctx, c, size, `${id}-overload`);
  const trials: string[] = [];
  const fullCpu: Record<string, number> = {};
  for (const [k, v] of Object.entries(full.extra)) if (CPU_EXTRAS.includes(k) && typeof v === "number") fullCpu[k] = v;
  let best = { pps: full.value, offered: Number(full.extra.offeredPps), cpu: fullCpu };
  for (const k of PEAK_LEVELS) {
    const r = await measureRate(ctx, c, size, ctx.o.flows, full.value * k, 0.4, Math.max(0.5, ctx.o.duration * 0.35));
    trials.push(`${(r.offeredPps / 1e6).toFixed(3)}->${(r.pps / 1e6).toFixed(3)}`);
    if (r.pps > best.pps) best = { pps: r.pps, offered: r.offeredPps, cpu: r.cpu };
  }
  return [
    {
      id,
      value: best.pps,
      extra: { offeredPps: best.offered, overloadPps: full.value, trials: trials.join(" "), gbps: (best.pps * size * 8) / 1e9, ...best.cpu },
    },
    full,
  ];
}

/**
 * udp64 with a reply per flow: the sink sends the first packet of each flow back as the real
 * server's reply (xvs_gen.bpf.c reply_first), then sinks the rest as in udp64. A UDP NAT
 * connection is cached by xvs at its first reply (docs/flow-cache.md), so here xvs-nat's flows
 * are forwarded by XDP, where udp64's one-way flood never leaves AF_XDP. Kernel contenders see
 * the replies too (conntrack entries seen in both directions). The rows carry which share of the
 * packets XDP forwarded (contenders that say: xvs) and how many flows the sink answered.
 */
export async function udpReplied(ctx: RunCtx, c: Contender): Promise<Result[]> {
  const { bl, o } = ctx;
  bl.sinkReplies(true);
  try {
    const r0 = bl.sink.replied(),
      p0 = await c.pathCounts();
    // a short paced run first (a tenth of a second of every flow at 1 Mpps at most, no
    // measurement): the first packet of every flow gets through and is answered before the
    // flood, in which a director under overload drops first packets too
    await measureRate(ctx, c, 64, o.flows, Math.min(1e6, o.flows * 100), 0.3, 0.05);
    const rows = await udpPeak(ctx, c, 64, "udp64-replied");
    const p1 = await c.pathCounts();
    const extra: Record<string, number> = { replied: bl.sink.replied() - r0 };
    if (p0 && p1) {
      const xdp = p1.xdp - p0.xdp,
        ts = p1.ts - p0.ts;
      extra.xdpForwarded = xdp;
      extra.tsPackets = ts;
      extra.xdpShare = xdp + ts > 0 ? xdp / (xdp + ts) : 0;
    }
    for (const r of rows) Object.assign(r.extra, extra);
    return rows;
  } finally {
    bl.sinkReplies(false);
  }
}

/** UDP echo round-trip times through the director, microseconds. */
export async function latency(ctx: RunCtx, c: Contender): Promise<Result[]> {
  const { o, bl } = ctx;
  const args = [
    "udp-ping",
    "--host",
    c.pingHost,
    "--port",
    String(PING_PORT),
    "--count",
    String(o.pingCount),
    "--warm",
    String(Math.min(200, Math.ceil(o.pingCount / 5))),
  ];
  if (o.pin) args.push("--cpu", String(o.genCpu));
  const r = await agentJson<{ samples: number; lost: number; p50: number; p90: number; p99: number; max: number }>(bl.lab, "gen", args);
  if (r.samples === 0) await nothingForwarded(ctx, c, "no UDP echo came back");
  const extra = { samples: r.samples, lost: r.lost, p90: r.p90, max: r.max };
  return [
    { id: "latency-p50", value: r.p50, extra },
    { id: "latency-p99", value: r.p99, extra },
  ];
}

/** New TCP connections per second (connect, request, response, close). */
export async function tcpRate(ctx: RunCtx, c: Contender): Promise<Result> {
  const { o, bl } = ctx;
  const args = [
    "tcp-cli",
    "--hosts",
    c.tcpHosts.join(","),
    "--port",
    String(TCP_PORT),
    "--seconds",
    String(o.duration),
    "--warmup",
    String(Math.min(o.warmup, 1)),
    "--concurrency",
    String(o.tcpConcurrency),
  ];
  if (o.pin) args.push("--cpu", String(o.genCpu));
  const r = await agentJson<{ conns: number; errors: number; secs: number; cps: number; firstErrors: string[] }>(bl.lab, "gen", args);
  if (r.conns === 0) await nothingForwarded(ctx, c, `no TCP connection completed: ${r.firstErrors.join("; ")}`);
  return { id: "tcp", value: r.cps, extra: { errors: r.errors, conns: r.conns } };
}

/**
 * Packet rate and memory with `n` tracked flows. First the flows are created at a pace the
 * contender can take (`populatePps`, e.g. 60% of its measured 64-byte rate: a generator far
 * faster than the director would have most first packets dropped, and the table would fill
 * only slowly), until the contender tracks 95% of them or stops adding; then the
 * generator cycles through them at full speed and the rate is measured.
 */
export async function flowsRate(ctx: RunCtx, c: Contender, n: number, populatePps: number): Promise<Result> {
  const { o } = ctx;
  const counter = c.counter(ctx);
  const t0 = performance.now();
  const pop = await startGen(ctx, c, 64, n, 120, populatePps);
  let tracked = 0;
  try {
    let best = -1,
      lastGrowth = t0;
    for (;;) {
      await sleepWhileRunning(pop, 200);
      tracked = (await c.tracked(ctx))?.flows ?? 0;
      const now = performance.now();
      if (process.env.XVS_BENCH_DEBUG) ctx.progress(`populate ${n}: ${tracked} tracked after ${((now - t0) / 1000).toFixed(1)} s`);
      if (tracked > best) {
        best = tracked;
        lastGrowth = now;
      }
      if (tracked >= n * 0.95 || now - lastGrowth > 1500 || now - t0 > 60_000) break;
    }
  } finally {
    await stopGen(pop).catch(() => null);
  }
  const populateSecs = (performance.now() - t0) / 1000;
  const gen = await startGen(ctx, c, 64, n, 120);
  try {
    await sleepWhileRunning(gen, Math.min(o.warmup, 0.5) * 1000);
    const a = counter.read(),
      m0 = performance.now();
    await sleepWhileRunning(gen, o.duration * 1000);
    const b = counter.read(),
      m1 = performance.now();
    const t = await c.tracked(ctx);
    await stopGen(gen);
    const pps = (b.pkts - a.pkts) / ((m1 - m0) / 1000);
    if (!(pps > 0)) await nothingForwarded(ctx, c, `${n} flows`);
    return {
      id: flowsId(n),
      value: pps,
      extra: {
        tracked: t?.flows ?? 0,
        bytesPerFlow: t && t.flows > 0 ? t.bytes / t.flows : 0,
        memoryBytes: t?.bytes ?? 0,
        populateSecs,
        populatePps,
        memory: t?.how ?? "",
      },
    };
  } finally {
    if (gen.proc.exitCode === null) gen.proc.kill("SIGKILL");
  }
}
