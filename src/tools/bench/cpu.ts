/**
 * Where each CPU's time goes during a measurement window, for the report: every CPU's
 * /proc/stat split (user, system, softirq, idle), the CPU time of the lab's NAPI kernel threads
 * (the director's, and the sink's and generator's when steered) per packet forwarded, and the
 * machine's load average. The machine is shared: the split shows how much of each CPU the lab's
 * own work got, and the NAPI threads' time per packet is a cost that does not depend on how
 * much CPU other work left over (a rate does).
 */
import { readdirSync, readFileSync } from "node:fs";

/** Ticks per CPU ("cpu0", ...): [user nice system idle iowait irq softirq steal]. */
export type CpuTicks = Record<string, number[]>;

export interface CpuSnapshot {
  at: number;
  cpus: CpuTicks;
  /** Nanoseconds the director's NAPI threads ran. */
  dir: number[];
  /** Nanoseconds the sink's and generator's NAPI threads ran. */
  side: number[];
  /** Nanoseconds the contender's own process ran, all its threads (-1: none). */
  proc: number;
}

function readCpus(): CpuTicks {
  const out: CpuTicks = {};
  for (const l of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(l);
    if (m) out[m[1]] = m[2].split(/\s+/).map(Number);
  }
  return out;
}

/**
 * Nanoseconds a task ran (/proc/.../schedstat, the scheduler's own clock, exact where the 10 ms
 * ticks of /proc/PID/stat would count a few ticks per window); 0 when it is gone. Softirq work
 * done in the task's context (a NAPI poll raised by its own transmit) is charged to it: this
 * kernel has no IRQ time accounting.
 */
function taskNs(path: string): number {
  try {
    return Number(readFileSync(`${path}/schedstat`, "utf8").split(" ")[0]);
  } catch {
    return 0;
  }
}

/** Nanoseconds all threads of a process ran (threads that ended are not counted). */
function processNs(pid: number): number {
  let t = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) t += taskNs(`/proc/${pid}/task/${tid}`);
  } catch {
    // gone
  }
  return t;
}

export function cpuSnapshot(dirThreads: number[], sideThreads: number[], procPid: number): CpuSnapshot {
  return {
    at: performance.now(),
    cpus: readCpus(),
    dir: dirThreads.map((p) => taskNs(`/proc/${p}`)),
    side: sideThreads.map((p) => taskNs(`/proc/${p}`)),
    proc: procPid > 0 ? processNs(procPid) : -1,
  };
}

/** The 1-minute load average. */
export function load1(): number {
  return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
}

/** Share of one CPU's window in each state between two snapshots (sums to ~1). */
export function cpuShares(a: CpuSnapshot, b: CpuSnapshot, cpu: number): { busy: number; user: number; system: number; softirq: number; idle: number } {
  const k = `cpu${cpu}`;
  const d = (b.cpus[k] ?? []).map((v, i) => v - (a.cpus[k]?.[i] ?? 0));
  const tot = d.slice(0, 8).reduce((x, y) => x + y, 0) || 1;
  const idle = ((d[3] ?? 0) + (d[4] ?? 0)) / tot;
  return {
    busy: 1 - idle,
    user: ((d[0] ?? 0) + (d[1] ?? 0)) / tot,
    system: (d[2] ?? 0) / tot,
    softirq: ((d[5] ?? 0) + (d[6] ?? 0)) / tot,
    idle,
  };
}

/** CPU seconds the threads ran between two snapshots. */
function threadSeconds(a: number[], b: number[]): number {
  let t = 0;
  for (let i = 0; i < b.length; i++) t += Math.max(0, b[i] - (a[i] ?? 0));
  return t / 1e9;
}

/** The keys windowCpuExtras adds to a rate row (a peak row takes its best trial's). */
export const CPU_EXTRAS = [
  "load1",
  "dirCpuBusy",
  "dirCpuSoftirq",
  "genCpuBusy",
  "genCpuSoftirq",
  "dirNapiShare",
  "dirNapiNsPerPkt",
  "sinkNapiShare",
  "sinkNapiNsPerPkt",
  "procShare",
  "procNsPerPkt",
  "dirNsPerPkt",
];

/**
 * The window's CPU extras of a rate row: each CPU's busy/softirq share, the director's NAPI
 * threads' CPU ns per forwarded packet (their share of the director CPU too), the sink's and
 * generator's NAPI threads' likewise, the contender process's, the director's total per packet
 * (NAPI threads + process: dirNsPerPkt), and the load average at the window's end.
 */
export function windowCpuExtras(a: CpuSnapshot, b: CpuSnapshot, cpus: { dirCpu: number; genCpu: number } | null, packets: number): Record<string, number> {
  const out: Record<string, number> = { load1: load1() };
  const secs = (b.at - a.at) / 1000;
  if (cpus) {
    const d = cpuShares(a, b, cpus.dirCpu),
      g = cpuShares(a, b, cpus.genCpu);
    out.dirCpuBusy = d.busy;
    out.dirCpuSoftirq = d.softirq;
    out.genCpuBusy = g.busy;
    out.genCpuSoftirq = g.softirq;
  }
  if (secs <= 0) return out;
  const dirNapi = threadSeconds(a.dir, b.dir),
    sideNapi = threadSeconds(a.side, b.side);
  if (a.dir.length) {
    out.dirNapiShare = dirNapi / secs;
    if (packets > 0) out.dirNapiNsPerPkt = (dirNapi / packets) * 1e9;
  }
  if (a.side.length) {
    out.sinkNapiShare = sideNapi / secs;
    if (packets > 0) out.sinkNapiNsPerPkt = (sideNapi / packets) * 1e9;
  }
  // the contender's process (xvs daemon, C forwarder): its user time and its system calls'
  // kernel time (AF_XDP transmit: the copy out of the UMEM, the skb, veth)
  if (a.proc >= 0 && b.proc >= 0) {
    const p = Math.max(0, b.proc - a.proc) / 1e9;
    out.procShare = p / secs;
    if (packets > 0) out.procNsPerPkt = (p / packets) * 1e9;
    if (packets > 0 && a.dir.length) out.dirNsPerPkt = ((p + dirNapi) / packets) * 1e9;
  } else if (packets > 0 && a.dir.length) out.dirNsPerPkt = (dirNapi / packets) * 1e9;
  return out;
}
