/**
 * Where the director's time goes, for the report: the xvs worker's own phase timing
 * (XVS_PROFILE=1: shim ring work, kicks, fast path, timers, loop), and, when `perf` works on
 * this machine, a cpu-clock sample of the director CPU during a 64-byte UDP run of xvs and of
 * the C forwarder, grouped by where the code lives.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sh } from "../lab/netns.ts";

export interface PerfSample {
  /** Share of samples per place: kernel, shim (libxvs.so), bun runtime, JIT code... */
  groups: Record<string, number>;
  /** Share of samples per process name (who else ran on the CPU). */
  processes: Record<string, number>;
  /** Top symbols: [percent, dso, symbol]. */
  top: [number, string, string][];
  samples: number;
}

/** True when `perf record -e cpu-clock` works here. */
export async function perfWorks(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "xvs-perf-"));
  try {
    const r = await sh(["perf", "record", "-q", "-e", "cpu-clock", "-a", "-o", join(dir, "p.data"), "--", "sleep", "0.05"], true);
    return r.code === 0;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Start sampling one CPU for `seconds`; resolves with the grouped profile (null on failure). */
export async function perfCpu(cpu: number, seconds: number): Promise<PerfSample | null> {
  const dir = mkdtempSync(join(tmpdir(), "xvs-perf-"));
  const file = join(dir, "p.data");
  try {
    const rec = await sh(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-C", String(cpu), "-o", file, "--", "sleep", String(seconds)], true);
    if (rec.code !== 0) return null;
    const rep = await sh(["perf", "report", "-i", file, "--stdio", "--no-children", "--sort", "dso,sym", "-q", "--percent-limit", "0.3"], true);
    const total = await sh(["perf", "report", "-i", file, "--stdio", "--no-children", "--sort", "dso"], true);
    const groups: Record<string, number> = {};
    for (const line of total.stdout.split("\n")) {
      if (line.startsWith("#")) continue;
      const m = /^\s*([\d.]+)%\s+(.+?)\s*$/.exec(line);
      if (!m) continue;
      const g = groupOf(m[2]);
      groups[g] = (groups[g] ?? 0) + Number(m[1]);
    }
    const top: [number, string, string][] = [];
    for (const line of rep.stdout.split("\n")) {
      const m = /^\s*([\d.]+)%\s+(\S+)\s+\[[.kHgu]\]\s+(.+?)\s*$/.exec(line);
      if (m && top.length < 25) top.push([Number(m[1]), m[2], m[3]]);
    }
    const byComm = await sh(["perf", "report", "-i", file, "--stdio", "--no-children", "--sort", "comm", "-q"], true);
    const processes: Record<string, number> = {};
    for (const line of byComm.stdout.split("\n")) {
      const m = /^\s*([\d.]+)%\s+(.+?)\s*$/.exec(line);
      if (m && Number(m[1]) >= 0.5) processes[m[2]] = Number(m[1]);
    }
    const sm = /# Samples: ([\d.]+)([KM]?)/.exec(total.stdout);
    const samples = sm ? Math.round(Number(sm[1]) * (sm[2] === "K" ? 1e3 : sm[2] === "M" ? 1e6 : 1)) : 0;
    return { groups, processes, top, samples };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function groupOf(dso: string): string {
  if (dso.includes("kernel")) return "kernel";
  if (dso.includes("libxvs")) return "xvs shim (C)";
  if (/xskfwd/.test(dso)) return "xskfwd (C)";
  if (/libxdp|libbpf/.test(dso)) return "libxdp/libbpf";
  if (/libc|ld-linux/.test(dso)) return "libc";
  if (/^\[unknown\]|perf-\d+\.map|JIT|jitted/.test(dso)) return "JIT code (TypeScript)";
  if (/bun|xvs/.test(dso)) return "bun runtime";
  return dso;
}

/** Kernel symbols grouped by what they do on this path (approximate, by name). */
export function kernelArea(sym: string): string {
  if (/xsk|xdp_do|__xsk|xp_/.test(sym)) return "AF_XDP";
  if (/veth/.test(sym)) return "veth";
  if (/skb|kmem|slab|kmalloc|kfree|page_pool|alloc_pages|free_unref/.test(sym)) return "skb/memory";
  if (/memcpy|memmove|copy_|rep_movs/.test(sym)) return "copies";
  if (/bpf|xdp/.test(sym)) return "BPF/XDP programs";
  if (/ip_|nf_|nft_|udp_|tcp_|fib_|neigh|dst_|__netif|netif_|napi|net_rx|dev_|sch_|__dev/.test(sym)) return "IP stack / netdev";
  if (/syscall|entry_|sys_|do_syscall|__x64|poll|schedule|switch|irq|softirq|timer|hrtimer|rcu|idle|cpuidle|acpi|native_safe_halt|default_idle/.test(sym))
    return "syscalls, scheduling, idle";
  return "other kernel";
}

export interface WorkerProfile {
  totalNs: number;
  bursts: number;
  busyBursts: number;
  frames: number;
  ns: Record<string, number>;
}

/**
 * The worker profile of the measurement window only: the sum of the 250 ms slices that lie
 * inside [startMs, endMs] (falls back to the whole-life totals when no slice fits).
 */
export function windowProfile(stats: Record<string, unknown>, [startMs, endMs]: [number, number]): WorkerProfile & { window: string } {
  const slices = ((stats.slices as (WorkerProfile & { endMs: number })[] | undefined) ?? []).filter((x) => x.endMs - 260 >= startMs && x.endMs <= endMs + 10);
  if (slices.length === 0) return { ...(stats as unknown as WorkerProfile), window: "the worker's whole life (no slice inside the window)" };
  const out: WorkerProfile = { totalNs: 0, bursts: 0, busyBursts: 0, frames: 0, ns: {} };
  for (const x of slices) {
    out.totalNs += x.totalNs;
    out.bursts += x.bursts;
    out.busyBursts += x.busyBursts;
    out.frames += x.frames;
    for (const [k, v] of Object.entries(x.ns)) out.ns[k] = (out.ns[k] ?? 0) + v;
  }
  return { ...out, window: `${slices.length} slices of 250 ms inside the measurement window` };
}

const PHASE_TEXT: Record<string, string> = {
  shimTx: "shim: previous burst onto tx rings",
  shimKick: "shim: tx kicks (sendto: the kernel's copy-mode transmit, veth, the sink)",
  shimReclaimFill: "shim: completions back, fill rings topped up",
  shimRx: "shim: next burst from rx rings",
  shimIdlePoll: "shim: idle poll()",
  ffiAndClock: "FFI crossing and clock reads",
  fastPath: "TypeScript fast path (processBurst: parse, lookup, rewrite)",
  expire: "connection timers (expire)",
  loopOther: "loop: event-loop turns, configuration checks",
};

/** Markdown lines for the report's "where the time goes" section. */
export function profileSummary(
  xvs: WorkerProfile | null,
  xvsRate: number | null,
  xskRate: number | null,
  perfXvs: PerfSample | null,
  perfXsk: PerfSample | null,
  micro: { id: string; netNs: number }[],
  dirCpu: number,
  loss: Record<string, { offered: number | null; veth: Record<string, number>; xsk: Record<string, number> | null } | null> = {},
): string[] {
  const L: string[] = [];
  if (xvsRate !== null) {
    L.push(
      `One profiled 64-byte UDP run of xvs-nat${xskRate !== null ? " and of the C forwarder" : ""}, each offered the load of its peak rate (median over the rounds), director on CPU ${dirCpu}: xvs ${(xvsRate / 1e6).toFixed(3)} Mpps${xskRate !== null ? `, xskfwd ${(xskRate / 1e6).toFixed(3)} Mpps (xvs/xskfwd ${(xvsRate / xskRate).toFixed(2)}x)` : ""}. ` +
        `At that rate one packet has ${(1e9 / xvsRate).toFixed(0)} ns of the director CPU${xskRate ? ` (the C forwarder: ${(1e9 / xskRate).toFixed(0)} ns)` : ""}.`,
      "",
    );
  }
  if (xvs && xvs.frames > 0) {
    const per = (v: number) => v / xvs.frames;
    L.push(
      `xvs worker, timed phases (XVS_PROFILE=1), ${xvs.frames} frames in ${xvs.busyBursts} non-empty bursts (${(xvs.frames / Math.max(1, xvs.busyBursts)).toFixed(1)} frames per burst), ${(xvs.totalNs / 1e9).toFixed(2)} s:`,
      "",
    );
    L.push("| phase | ns per packet | share of the loop |", "|---|---:|---:|");
    for (const [k, v] of Object.entries(xvs.ns).sort((a, b) => b[1] - a[1])) {
      L.push(`| ${PHASE_TEXT[k] ?? k} | ${per(v).toFixed(1)} | ${((100 * v) / xvs.totalNs).toFixed(1)}% |`);
    }
    L.push(`| total | ${per(xvs.totalNs).toFixed(1)} | 100% |`, "");
    if (micro.length) {
      const m = (id: string) => micro.find((x) => x.id === id)?.netNs;
      const parse = m("parse"),
        hash = m("parse+hash"),
        look = m("lookup-4K"),
        rw = m("rewrite"),
        fp = m("fastpath-4K"),
        cold = m("fastpath-4K-cold");
      if (parse !== undefined && fp !== undefined) {
        L.push(
          `Inside the fast path (microbenchmarks, 4K flows, net of the copy loop): parse ${parse.toFixed(1)} ns, + hash ${hash?.toFixed(1)} ns, + lookup ${look?.toFixed(1)} ns, rewrite alone ${rw?.toFixed(1)} ns; the whole processBurst ${fp.toFixed(1)} ns per packet (the rest: counters, connection state and timers, next-hop MACs, verdict bookkeeping)` +
            `${cold !== undefined ? `, and ${cold.toFixed(1)} ns when 2 MiB of other data is walked between bursts, as the kernel's work does in the daemon` : ""}. In the daemon (table above) it costs more again: the director core switches between the NAPI thread and the worker every burst, and the kernel's receive and transmit work between two bursts evicts the fast path's code and data.`,
          "",
        );
      }
    }
  }
  for (const [name, p] of [
    ["xvs", perfXvs],
    ["xskfwd", perfXsk],
  ] as const) {
    if (!p) continue;
    L.push(`perf (cpu-clock) on CPU ${dirCpu} during the ${name} run, ${p.samples || "?"} samples, by place:`, "");
    L.push("| where | share |", "|---|---:|");
    for (const [g, v] of Object.entries(p.groups).sort((a, b) => b[1] - a[1])) L.push(`| ${g} | ${v.toFixed(1)}% |`);
    const areas: Record<string, number> = {};
    for (const [pct, dso, sym] of p.top) if (dso.includes("kernel")) areas[kernelArea(sym)] = (areas[kernelArea(sym)] ?? 0) + pct;
    L.push(
      "",
      `by process: ${Object.entries(p.processes)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v.toFixed(1)}%`)
        .join(", ")}`,
    );
    L.push(
      "",
      `top symbols: ${p.top
        .slice(0, 12)
        .map(([pct, , s]) => `${s} ${pct.toFixed(1)}%`)
        .join(", ")}`,
    );
    if (Object.keys(areas).length)
      L.push(
        "",
        `kernel symbols (>= 0.3%) by area: ${Object.entries(areas)
          .sort((a, b) => b[1] - a[1])
          .map(([a, v]) => `${a} ${v.toFixed(1)}%`)
          .join(", ")}`,
      );
    L.push("");
  }
  if (!perfXvs && !perfXsk) L.push("(perf sampling was not available here.)", "");
  for (const [name, l] of Object.entries(loss)) {
    if (!l) continue;
    const xsk = l.xsk
      ? Object.entries(l.xsk)
          .filter(([, v]) => v > 0)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")
      : "";
    const veth = Object.entries(l.veth)
      .filter(([k]) => /drop|err|full/.test(k))
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    L.push(
      `Where the offered frames went in the ${name} run (offered ${l.offered ? (l.offered / 1e6).toFixed(3) : "?"} Mpps): ` +
        `AF_XDP socket statistics: ${xsk || "no drops"}; veth drop/error counters that grew: ${veth || "none"}.`,
      "",
    );
  }
  return L;
}
