/**
 * What machine a benchmark ran on, for the report: CPU, kernel, memory, load, what else was
 * running. Best effort: anything unreadable is left out.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { sh } from "../lab/netns.ts";

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1].trim();
  } catch {
    // fall through
  }
  return cpus()[0]?.model ?? "unknown";
}

function hypervisor(): string {
  try {
    const flags = /^flags\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    return flags.split(" ").includes("hypervisor") ? "yes (virtual machine)" : "no (bare metal)";
  } catch {
    return "unknown";
  }
}

/** The few processes using the most CPU right now (not counting this benchmark's own). */
/** Run a command, "" when it fails or does not exist. */
async function quiet(cmd: string[]): Promise<string> {
  try {
    const r = await sh(cmd, true);
    return r.code === 0 ? r.stdout : "";
  } catch {
    return "";
  }
}

/** The busiest processes (ps's %cpu is the average over each process's life), this one excluded. */
export async function busyProcesses(): Promise<string[]> {
  const out = await quiet(["ps", "-eo", "pid,pcpu,rss,args", "--sort=-pcpu", "--no-headers"]);
  return out
    .split("\n")
    .filter(Boolean)
    .filter((l) => l.trim().split(/\s+/)[0] !== String(process.pid))
    .slice(0, 8)
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return `${f[1]}% cpu ${(Number(f[2]) / 1024).toFixed(0)} MB ${f.slice(3).join(" ").slice(0, 90)}`;
    });
}

async function gitCommit(): Promise<string> {
  const r = (await quiet(["git", "-C", import.meta.dir, "rev-parse", "--short", "HEAD"])).trim();
  if (!r) return "unknown (not run from a git checkout)";
  const dirty = (await quiet(["git", "-C", import.meta.dir, "status", "--porcelain", "--untracked-files=no"])).trim();
  return dirty ? `${r} + uncommitted changes in the working tree` : r;
}

export async function describeMachine(note: string, inGuest: boolean): Promise<Record<string, unknown>> {
  const cpu = cpuModel();
  const n = cpus().length;
  const kernel = release();
  const mem = `${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  const m: Record<string, unknown> = {
    summary: `${n} x ${cpu}, Linux ${kernel}, ${mem}${inGuest ? ", qemu TCG guest (emulated)" : ""}; load ${load} at start${note ? `; ${note}` : ""}`,
    cpu: `${n} x ${cpu}`,
    virtualised: inGuest ? "qemu TCG guest (software emulation: absolute numbers mean nothing, ratios do)" : hypervisor(),
    kernel,
    memory: mem,
    "load average at start (1/5/15 min)": load,
    bun: Bun.version,
    "xvs commit": await gitCommit(),
    "busiest processes at start": await busyProcesses(),
  };
  if (note) m.note = note;
  return m;
}
