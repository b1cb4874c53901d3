/**
 * Where the ipvs-vm guest's CPU time goes in each measurement window. perf does not exist in the
 * guest, so a small C sampler (bench/ipvs-vm-sampler.c, built statically on the host) runs beside
 * `xvs bench --in-guest` (pinned to the generator's CPU): every second it appends to a JSON-lines
 * file in the share the guest's /proc/stat per-CPU times and the CPU ticks of the threads that matter (the bench's xvs processes, the kernel's
 * network threads, itself), each with its process's command line. On the host, every rate
 * sample that carries its window (`windowStartMs`/`windowEndMs`, guest clock: the full-load
 * rows) gets the split between the first and the last snapshot inside that window: each CPU's
 * user/system/softirq/idle shares, and the threads that used the most CPU, each as a share of
 * the CPU time of all the threads followed. Shares, not seconds: when the host starves qemu, the
 * guest's /proc/stat loses ticks and its per-thread times (from the scheduler's clock) do not
 * add up to its CPUs' totals; a share within one source is still what it says.
 *
 * Caveats the report repeats: the snapshots are a second apart, so a 2 s window is measured over
 * 1-2 s of it; the sampler itself costs the generator's CPU a little (it is followed too);
 * a guest's CPU is a host thread of qemu, so "idle" is the guest's view, not the host's.
 */
import samplerSource from "../../../bench/ipvs-vm-sampler.c" with { type: "text" };
import type { BenchReport } from "./report.ts";

/** The guest-side sampler's source (built statically on the host: the guest has no compiler). */
export const SAMPLER_C: string = samplerSource;

/** Seconds between the sampler's snapshots. */
export const SAMPLE_PERIOD_S = 1;

interface Snap {
  t: number;
  /** cpuN -> user nice system idle iowait irq softirq steal (ticks). */
  cpus: Record<string, number[]>;
  /** tid -> [process command line, thread name, utime+stime ticks, last CPU]. */
  tasks: Record<string, [string, string, number, number]>;
}

export interface CpuShares {
  user: number;
  system: number;
  softirq: number;
  idle: number;
  steal: number;
}

export interface WindowCpu {
  contender: string;
  workload: string;
  round: number;
  /** Seconds between the two snapshots used. */
  secs: number;
  cpus: Record<string, CpuShares>;
  /** Busiest threads (grouped by process command and thread name): share of the followed threads' CPU time, and the CPU each last ran on. */
  threads: { name: string; share: number; cpu: number }[];
}

export function parseSnaps(text: string): Snap[] {
  const out: Snap[] = [];
  for (const l of text.split("\n")) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as Snap);
    } catch {
      // the last line may be cut off when the guest powered off mid-write
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/** A thread's group: its process's command (the daemon, a generator, ...) and its name with per-instance numbers dropped. */
function threadName(cmd: string, comm: string): string {
  const c = comm.replace(/^(napi\/[a-z0-9]+)-\d+$/, "$1").replace(/^kworker\/.*/, "kworker");
  const p = cmd || `[${c}]`;
  return cmd && c !== p.split(" ")[0] ? `${p} (${c})` : p;
}

/** The CPU split between the first and the last snapshot inside [w0, w1]; null when less than a second apart. */
export function windowCpu(snaps: Snap[], w0: number, w1: number): Omit<WindowCpu, "contender" | "workload" | "round"> | null {
  const inside = snaps.filter((s) => s.t >= w0 && s.t <= w1);
  if (inside.length < 2) return null;
  const a = inside[0],
    b = inside[inside.length - 1];
  const secs = (b.t - a.t) / 1000;
  if (secs < 1) return null;
  const cpus: Record<string, CpuShares> = {};
  for (const k of Object.keys(b.cpus).sort()) {
    const x = a.cpus[k];
    if (!x) continue;
    const d = b.cpus[k].map((v, i) => v - (x[i] ?? 0));
    const tot = d.reduce((s, v) => s + v, 0) || 1;
    const r = (v: number) => Math.round((v / tot) * 100) / 100;
    cpus[k] = { user: r(d[0] + d[1]), system: r(d[2]), softirq: r(d[5] + d[6]), idle: r(d[3] + d[4]), steal: r(d[7] ?? 0) };
  }
  const by = new Map<string, { ticks: number; cpu: number }>();
  for (const [tid, t] of Object.entries(b.tasks)) {
    const d = t[2] - (a.tasks[tid]?.[2] ?? 0);
    if (d <= 0) continue;
    const name = threadName(t[0], t[1]);
    const g = by.get(name) ?? { ticks: 0, cpu: t[3] };
    g.ticks += d;
    by.set(name, g);
  }
  const total = [...by.values()].reduce((x, g) => x + g.ticks, 0) || 1;
  const threads = [...by.entries()]
    .map(([name, g]) => ({ name, share: Math.round((g.ticks / total) * 100) / 100, cpu: g.cpu }))
    .filter((t) => t.share >= 0.02)
    .sort((x, y) => y.share - x.share)
    .slice(0, 8);
  return { secs: Math.round(secs * 100) / 100, cpus, threads };
}

/** Every windowed sample of the report, with its split. */
export function guestCpuOfReport(report: BenchReport, snaps: Snap[]): WindowCpu[] {
  const out: WindowCpu[] = [];
  for (const row of report.rows)
    for (const s of row.samples) {
      const w0 = Number(s.extra.windowStartMs),
        w1 = Number(s.extra.windowEndMs);
      if (!(w0 > 0 && w1 > w0)) continue;
      const w = windowCpu(snaps, w0, w1);
      if (w) out.push({ contender: row.contender, workload: row.workload, round: s.round, ...w });
    }
  return out;
}

function med(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

/** One line per contender and windowed workload: medians over rounds of the CPU shares and of the busiest threads' shares. */
export function guestCpuLines(entries: WindowCpu[]): string[] {
  const groups = new Map<string, WindowCpu[]>();
  for (const e of entries) {
    const k = `${e.contender}|${e.workload}`;
    groups.set(k, [...(groups.get(k) ?? []), e]);
  }
  const lines: string[] = [];
  for (const [k, es] of groups) {
    const [contender, workload] = k.split("|");
    const cpuNames = [...new Set(es.flatMap((e) => Object.keys(e.cpus)))].sort();
    const cpuText = cpuNames
      .map((c) => {
        const xs = es.map((e) => e.cpus[c]).filter(Boolean);
        const m = (f: keyof CpuShares) => med(xs.map((x) => x[f]));
        return `${c} user ${pct(m("user"))} sys ${pct(m("system"))} softirq ${pct(m("softirq"))} idle ${pct(m("idle"))}`;
      })
      .join("; ");
    const names = new Map<string, number[]>();
    for (const e of es) for (const t of e.threads) names.set(t.name, [...(names.get(t.name) ?? []), t.share]);
    // a thread absent from a round's top list used (next to) nothing there
    const top = [...names.entries()]
      .map(([n, v]) => ({ n, c: med([...v, ...Array(Math.max(0, es.length - v.length)).fill(0)]) }))
      .filter((t) => t.c >= 0.03)
      .sort((a, b) => b.c - a.c)
      .slice(0, 5)
      .map((t) => `${t.n} ${pct(t.c)}`)
      .join(", ");
    lines.push(`${contender}, ${workload} (${es.length} windows): ${cpuText}; busiest threads (share of the followed threads' time): ${top || "-"}`);
  }
  return lines;
}
