/**
 * The host's load while the ipvs-vm guest runs a benchmark. The guest's own report records the
 * guest's load, which says nothing about the machine qemu runs on: an emulated vCPU is a host
 * thread, and on a shared host it gets what the other work leaves. Every few seconds this
 * records the host's 1-minute load average, the share of the host's CPUs that was busy, and the
 * cores qemu itself got (its utime+stime; it wants one per guest CPU when the guest is busy).
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { busyProcesses } from "./machine.ts";

const HZ = 100;

interface Point {
  t: number;
  load1: number;
  /** Host CPU busy share since the previous point (0..1 of all host CPUs). */
  hostBusy: number | null;
  /** Cores the qemu process used since the previous point. */
  qemuCores: number | null;
}

export interface HostLoadSummary {
  hostCpus: number;
  startLoad: string;
  endLoad: string;
  load1: { median: number; min: number; max: number };
  hostBusy: { median: number; min: number; max: number } | null;
  qemuCores: { median: number; min: number; max: number } | null;
  busiestAtStart: string[];
  busiestAtEnd: string[];
  points: Point[];
}

function hostTicks(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((s, v) => s + v, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total };
}

/** The qemu process that runs this guest: its command line names the guest's cache directory. */
function findQemu(cacheDir: string): number | null {
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8");
      if (cmd.startsWith("qemu-system") && cmd.includes(cacheDir)) return Number(p);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

function procTicks(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

const stats = (v: number[]) => {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { median: r(s[s.length >> 1]), min: r(s[0]), max: r(s[s.length - 1]) };
};

const loadText = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

export class HostLoad {
  private points: Point[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private startLoad = "";
  private busiestAtStart: string[] = [];
  private last: { t: number; host: { busy: number; total: number }; qemu: number | null } | null = null;
  private qemuPid: number | null = null;

  constructor(
    private cacheDir: string,
    private periodMs = 5000,
  ) {}

  async start(): Promise<void> {
    this.startLoad = loadText();
    this.busiestAtStart = await busyProcesses();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.periodMs);
  }

  private sample(): void {
    if (this.qemuPid === null || procTicks(this.qemuPid) === null) this.qemuPid = findQemu(this.cacheDir);
    const t = Date.now(),
      host = hostTicks(),
      qemu = this.qemuPid === null ? null : procTicks(this.qemuPid);
    const l = this.last;
    if (l) {
      const secs = (t - l.t) / 1000;
      this.points.push({
        t,
        load1: Math.round(loadavg()[0] * 100) / 100,
        hostBusy: host.total > l.host.total ? Math.round(((host.busy - l.host.busy) / (host.total - l.host.total)) * 100) / 100 : null,
        qemuCores: qemu !== null && l.qemu !== null && qemu >= l.qemu ? Math.round(((qemu - l.qemu) / HZ / secs) * 100) / 100 : null,
      });
    }
    this.last = { t, host, qemu };
  }

  async stop(): Promise<HostLoadSummary> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const p = this.points;
    const num = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
    return {
      hostCpus: cpus().length,
      startLoad: this.startLoad,
      endLoad: loadText(),
      load1: stats(p.map((x) => x.load1)) ?? { median: 0, min: 0, max: 0 },
      hostBusy: stats(num(p.map((x) => x.hostBusy))),
      // only while qemu ran (points before it started or after it ended carry null)
      qemuCores: stats(num(p.map((x) => x.qemuCores))),
      busiestAtStart: this.busiestAtStart,
      busiestAtEnd: await busyProcesses(),
      points: p,
    };
  }
}

/** The report's note about the host. */
export function hostLoadNote(h: HostLoadSummary, guestCpus: number): string {
  const r = (x: { median: number; min: number; max: number } | null, f = (v: number) => v.toFixed(2)) =>
    x ? `median ${f(x.median)} (${f(x.min)}..${f(x.max)})` : "not measured";
  const pc = (v: number) => `${Math.round(v * 100)}%`;
  return (
    `The host (${h.hostCpus} CPUs, shared with other work) while qemu ran: 1-minute load average ${r(h.load1)} ` +
    `(${h.startLoad} at start, ${h.endLoad} at the end), host CPUs busy ${r(h.hostBusy, pc)}, ` +
    `qemu got ${r(h.qemuCores)} cores of the ${guestCpus} its vCPUs want when busy (sampled every few seconds). ` +
    `A starved vCPU slows whatever runs on it: contenders measured in the same round met roughly the same host, which is why the rounds interleave and the ratios are medians; the spread between rounds shows the noise. ` +
    `Busiest host processes at start: ${h.busiestAtStart.slice(0, 5).join("; ") || "-"}.`
  );
}
