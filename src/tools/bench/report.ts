/**
 * Results of `xvs bench`: the JSON document, and its renderings: a terminal table and a
 * markdown report here, the SVG plot in src/tools/bench/plot.ts. Statistics are over rounds: median,
 * min..max, and each contender's ratio to xvs (ratio of medians, and the median of per-round ratios, which is less
 * sensitive to slow drifts in a noisy machine's load since one round's contenders run close
 * together in time).
 */
import type { MicroRow } from "./micro.ts";

export interface Sample {
  round: number;
  value: number;
  extra: Record<string, number | string>;
}

export interface Cell {
  contender: string;
  workload: string;
  samples: Sample[];
  errors: { round: number; error: string }[];
}

export interface WorkloadInfo {
  id: string;
  title: string;
  unit: string;
  /** Divide raw values by this for display. */
  scale: number;
  digits: number;
  better: "higher" | "lower";
}

export interface ContenderInfo {
  id: string;
  kind: string;
  mode: string;
  label: string;
  skipped: string | null;
  workloads: string[];
}

export interface Row {
  contender: string;
  workload: string;
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
  /** Contender's median / reference xvs median. */
  ratioToXvs: number | null;
  /** Median over rounds of (contender / xvs in the same round). */
  roundRatioToXvs: number | null;
  reference: string | null;
  samples: Sample[];
  errors: { round: number; error: string }[];
  /** Medians of numeric extras (offered rate, bytes per flow...). */
  extra: Record<string, number | string>;
}

export interface Target {
  name: string;
  value: number | null;
  target: number;
  pass: boolean | null;
  detail: string;
}

export interface BenchReport {
  schema: "xvs-bench/1";
  title: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  setup: string[];
  contenders: ContenderInfo[];
  workloads: WorkloadInfo[];
  rows: Row[];
  micro: MicroRow[];
  profile: Record<string, unknown> | null;
  targets: Target[];
  notes: string[];
}

export const WORKLOAD_INFO: Record<string, Omit<WorkloadInfo, "id">> = {
  udp64: {
    title: "UDP, 64-byte frames, peak forwarding rate (most forwarded over a few offered loads)",
    unit: "Mpps",
    scale: 1e6,
    digits: 3,
    better: "higher",
  },
  "udp64-replied": {
    title: "UDP, 64-byte frames, every flow answered once by the sink early (NAT flows cached), peak forwarding rate",
    unit: "Mpps",
    scale: 1e6,
    digits: 3,
    better: "higher",
  },
  "udp64-replied-overload": {
    title: "UDP, 64-byte frames, every flow answered once by the sink early, under the generator's full load",
    unit: "Mpps",
    scale: 1e6,
    digits: 3,
    better: "higher",
  },
  "udp64-overload": { title: "UDP, 64-byte frames, under the generator's full load (overload)", unit: "Mpps", scale: 1e6, digits: 3, better: "higher" },
  udp1514: { title: "UDP, 1514-byte frames (1500-byte IP packets), under the generator's full load", unit: "Mpps", scale: 1e6, digits: 3, better: "higher" },
  "latency-p50": { title: "UDP echo round trip, p50", unit: "µs", scale: 1, digits: 1, better: "lower" },
  "latency-p99": { title: "UDP echo round trip, p99", unit: "µs", scale: 1, digits: 1, better: "lower" },
  tcp: { title: "new TCP connections (short request/response)", unit: "conn/s", scale: 1, digits: 0, better: "higher" },
};

export function workloadInfo(id: string): WorkloadInfo {
  const w = WORKLOAD_INFO[id];
  if (w) return { id, ...w };
  const m = /^flows-(.+)$/.exec(id);
  return { id, title: `64-byte UDP with ${m ? m[1] : "?"} tracked flows`, unit: "Mpps", scale: 1e6, digits: 3, better: "higher" };
}

export function median(v: number[]): number | null {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Reference xvs contender for a contender: xvs in the same mode, else the first xvs. */
function referenceOf(c: ContenderInfo, all: ContenderInfo[]): string | null {
  const xs = all.filter((x) => x.kind === "xvs" && !x.skipped);
  if (c.kind === "xvs" && !c.skipped) return c.id;
  return (xs.find((x) => x.mode === c.mode) ?? xs[0])?.id ?? null;
}

/** Build the statistics rows from raw cells. */
export function buildRows(cells: Cell[], contenders: ContenderInfo[]): Row[] {
  const byKey = new Map(cells.map((c) => [`${c.contender}|${c.workload}`, c]));
  const rows: Row[] = [];
  for (const cell of cells) {
    const vals = cell.samples.map((s) => s.value);
    const c = contenders.find((x) => x.id === cell.contender)!;
    const ref = referenceOf(c, contenders);
    const refCell = ref ? byKey.get(`${ref}|${cell.workload}`) : undefined;
    const med = median(vals);
    const refMed = refCell ? median(refCell.samples.map((s) => s.value)) : null;
    const per: number[] = [];
    if (refCell) {
      for (const s of cell.samples) {
        const r = refCell.samples.find((x) => x.round === s.round);
        if (r && r.value > 0) per.push(s.value / r.value);
      }
    }
    const extra: Record<string, number | string> = {};
    const keys = new Set(cell.samples.flatMap((s) => Object.keys(s.extra)));
    for (const k of keys) {
      const nums = cell.samples.map((s) => s.extra[k]).filter((x): x is number => typeof x === "number");
      if (nums.length) extra[k] = median(nums)!;
      else extra[k] = String(cell.samples.map((s) => s.extra[k]).find((x) => x !== undefined) ?? "");
    }
    rows.push({
      contender: cell.contender,
      workload: cell.workload,
      n: vals.length,
      median: med,
      min: vals.length ? Math.min(...vals) : null,
      max: vals.length ? Math.max(...vals) : null,
      ratioToXvs: med !== null && refMed ? med / refMed : null,
      roundRatioToXvs: median(per),
      reference: ref,
      samples: cell.samples,
      errors: cell.errors,
      extra,
    });
  }
  return rows;
}

/** A value in the workload's display unit and digits; "-" when missing. */
export function fmt(v: number | null, w: WorkloadInfo): string {
  if (v === null || !Number.isFinite(v)) return "-";
  return (v / w.scale).toFixed(w.digits);
}

/** A ratio to xvs, "1.33x"; "-" when missing. */
export function ratio(r: number | null): string {
  return r === null || !Number.isFinite(r) ? "-" : `${r.toFixed(2)}x`;
}

function extraNote(r: Row): string {
  const e = r.extra;
  const parts: string[] = [];
  if (typeof e.offeredPps === "number" && e.offeredPps > 0) parts.push(`offered ${(e.offeredPps / 1e6).toFixed(2)} Mpps`);
  if (typeof e.overloadPps === "number" && r.median) parts.push(`${(e.overloadPps / r.median).toFixed(2)}x of it under full load`);
  if (typeof e.gbps === "number" && r.workload === "udp1514") parts.push(`${e.gbps.toFixed(2)} Gbit/s`);
  if (typeof e.xdpShare === "number") parts.push(`${(e.xdpShare * 100).toFixed(0)}% forwarded by XDP`);
  if (typeof e.replied === "number") parts.push(`${Math.round(e.replied)} flows replied`);
  const cpu = cpuNote(e);
  if (cpu) parts.push(cpu);
  if (typeof e.tracked === "number") parts.push(`${Math.round(e.tracked)} tracked`);
  if (typeof e.bytesPerFlow === "number" && e.bytesPerFlow > 0) parts.push(`${Math.round(e.bytesPerFlow)} B/flow`);
  if (typeof e.errors === "number" && e.errors > 0) parts.push(`${Math.round(e.errors)} failed conns`);
  if (typeof e.lost === "number" && e.lost > 0) parts.push(`${Math.round(e.lost)} lost`);
  if (r.errors.length) parts.push(`FAILED ${r.errors.length}x: ${r.errors[0].error.slice(0, 160)}`);
  return parts.join("; ");
}

/**
 * Where each CPU's time went in the row's window (workloads.ts, cpu.ts): each CPU's busy share,
 * the director's and the sink's NAPI threads' share and CPU ns per forwarded packet, the load.
 */
function cpuNote(e: Row["extra"]): string {
  const pct = (k: string) => (typeof e[k] === "number" ? `${Math.round((e[k] as number) * 100)}%` : null);
  const ns = (k: string) => (typeof e[k] === "number" ? `${Math.round(e[k] as number)} ns/pkt` : null);
  const out: string[] = [];
  if (pct("dirCpuBusy")) {
    const parts: string[] = [];
    if (pct("dirNapiShare")) parts.push(`NAPI ${pct("dirNapiShare")}`);
    if (pct("procShare")) parts.push(`process ${pct("procShare")}`);
    if (ns("dirNsPerPkt")) parts.push(ns("dirNsPerPkt")!);
    out.push(`dir CPU ${pct("dirCpuBusy")} busy${parts.length ? ` (${parts.join(", ")})` : ""}`);
  }
  if (pct("genCpuBusy")) {
    const napi = pct("sinkNapiShare") ? ` (sink+gen NAPI ${pct("sinkNapiShare")}${ns("sinkNapiNsPerPkt") ? `, ${ns("sinkNapiNsPerPkt")}` : ""})` : "";
    out.push(`gen CPU ${pct("genCpuBusy")} busy${napi}`);
  }
  if (typeof e.load1 === "number") out.push(`load ${(e.load1 as number).toFixed(1)}`);
  return out.join(", ");
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** Workload ids in display order. */
export function workloadOrder(rows: Row[]): string[] {
  const order = ["udp64", "udp64-overload", "udp64-replied", "udp64-replied-overload", "udp1514", "latency-p50", "latency-p99", "tcp"];
  const ids = [...new Set(rows.map((r) => r.workload))];
  const flows = ids.filter((i) => i.startsWith("flows-")).sort((a, b) => flowN(a) - flowN(b));
  return [...order.filter((o) => ids.includes(o)), ...flows];
}

function flowN(id: string): number {
  const m = /^flows-(\d+)([kM]?)$/.exec(id);
  if (!m) return 0;
  return Number(m[1]) * (m[2] === "M" ? 1e6 : m[2] === "k" ? 1e3 : 1);
}

/** The terminal table. */
export function renderTable(rep: BenchReport): string {
  const out: string[] = [];
  for (const wid of workloadOrder(rep.rows)) {
    const w = workloadInfo(wid);
    out.push("", `${w.title} — ${w.unit} (${w.better} is better)`);
    out.push(`  ${pad("contender", 12)} ${pad("median", 9, true)}  ${pad("min..max", 19)} ${pad("vs xvs", 7, true)} ${pad("n", 2, true)}  notes`);
    for (const r of rep.rows.filter((x) => x.workload === wid)) {
      const mm = r.min === null ? "-" : `${fmt(r.min, w)}..${fmt(r.max, w)}`;
      out.push(
        `  ${pad(r.contender, 12)} ${pad(fmt(r.median, w), 9, true)}  ${pad(mm, 19)} ${pad(ratio(r.ratioToXvs), 7, true)} ${pad(String(r.n), 2, true)}  ${extraNote(r)}`,
      );
    }
  }
  const skipped = rep.contenders.filter((c) => c.skipped);
  if (skipped.length) {
    out.push("");
    for (const c of skipped) out.push(`skipped ${c.id}: ${c.skipped}`);
  }
  if (rep.micro.length) {
    out.push("", "fast path microbenchmarks (one core, synthetic frames, bursts of 64)");
    out.push(`  ${pad("row", 16)} ${pad("ns/pkt", 8, true)} ${pad("net", 8, true)} ${pad("Mpps", 7, true)}  what`);
    for (const m of rep.micro)
      out.push(
        `  ${pad(m.id, 16)} ${pad(m.nsPerPacket.toFixed(1), 8, true)} ${pad(m.netNs.toFixed(1), 8, true)} ${pad(m.mpps.toFixed(2), 7, true)}  ${m.label}${m.error ? `  ERROR: ${m.error}` : ""}`,
      );
  }
  if (rep.targets.length) {
    out.push("");
    for (const t of rep.targets)
      out.push(
        `target ${t.name}: ${t.value === null ? "n/a" : t.value.toFixed(3)} (target >= ${t.target}) ${t.pass === null ? "not measured" : t.pass ? "MET" : "NOT MET"} — ${t.detail}`,
      );
  }
  return out.join("\n") + "\n";
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, "\\|");
}

/** The markdown report. */
export function renderMarkdown(rep: BenchReport, svgName: string | null): string {
  const L: string[] = [];
  L.push(`# ${rep.title}`, "");
  L.push(`Run ${rep.startedAt} .. ${rep.finishedAt} (${Math.round(rep.seconds)} s).`, "");
  L.push("## Machine", "");
  for (const [k, v] of Object.entries(rep.machine)) {
    if (Array.isArray(v)) {
      L.push(`- ${k}:`);
      for (const x of v) L.push(`  - \`${String(x)}\``);
    } else L.push(`- ${k}: ${String(v)}`);
  }
  L.push("", "## Setup", "");
  for (const s of rep.setup) L.push(`- ${s}`);
  L.push("", "Contenders:", "");
  for (const c of rep.contenders) L.push(`- **${c.id}**: ${c.label}${c.skipped ? ` — **skipped**: ${c.skipped}` : ""}`);
  if (rep.targets.length) {
    L.push("", "## Targets", "");
    L.push("| target | value | wanted | result | |", "|---|---|---|---|---|");
    for (const t of rep.targets)
      L.push(
        `| ${t.name} | ${t.value === null ? "n/a" : t.value.toFixed(3)} | >= ${t.target} | ${t.pass === null ? "not measured" : t.pass ? "met" : "**not met**"} | ${mdEscape(t.detail)} |`,
      );
  }
  L.push("", "## Results", "");
  L.push("Median over rounds, min..max, and the ratio of the contender's median to xvs's (same mode); `round ratio` is the median of per-round ratios.", "");
  if (svgName) L.push(`![plot](${svgName})`, "");
  for (const wid of workloadOrder(rep.rows)) {
    const w = workloadInfo(wid);
    L.push(`### ${w.title} (${w.unit}, ${w.better} is better)`, "");
    L.push("| contender | median | min..max | vs xvs | round ratio | n | notes |", "|---|---:|---|---:|---:|---:|---|");
    for (const r of rep.rows.filter((x) => x.workload === wid)) {
      const mm = r.min === null ? "-" : `${fmt(r.min, w)}..${fmt(r.max, w)}`;
      L.push(`| ${r.contender} | ${fmt(r.median, w)} | ${mm} | ${ratio(r.ratioToXvs)} | ${ratio(r.roundRatioToXvs)} | ${r.n} | ${mdEscape(extraNote(r))} |`);
    }
    L.push("");
  }
  if (rep.micro.length) {
    L.push("### Fast path microbenchmarks", "");
    L.push(
      "One core, this process, synthetic 64-byte UDP frames in bursts of 64 to a NAT service with 3 real servers. `net` subtracts the baseline copy loop (restoring the frames each burst), which every row includes.",
      "",
    );
    L.push("| row | ns/packet | net ns | Mpps | what | |", "|---|---:|---:|---:|---|---|");
    for (const m of rep.micro) {
      const x = m.extra
        ? Object.entries(m.extra)
            .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(1)}`)
            .join(", ")
        : "";
      L.push(
        `| ${m.id} | ${m.nsPerPacket.toFixed(1)} | ${m.netNs.toFixed(1)} | ${m.mpps.toFixed(2)} | ${mdEscape(m.label)}${m.error ? ` **ERROR: ${mdEscape(m.error)}**` : ""} | ${x} |`,
      );
    }
    L.push("");
  }
  if (rep.profile) {
    L.push("## Where the time goes", "");
    for (const line of (rep.profile.summary as string[] | undefined) ?? []) L.push(line);
    L.push("");
  }
  if (rep.notes.length) {
    L.push("## Notes", "");
    for (const n of rep.notes) L.push(`- ${n}`);
    L.push("");
  }
  L.push("## Raw", "", "Every sample, error and option is in the JSON file next to this report.", "");
  return L.join("\n");
}
