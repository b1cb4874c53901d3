/**
 * The SVG plot of a bench report, written by hand (no dependencies): one panel per workload (and
 * one for the microbenchmarks), each with its own value axis, linear from 0 or logarithmic when
 * its values span a decade or more (src/tools/bench/plot-axis.ts), ticks on the 1-2-5 series with
 * their values and the unit under the axis. A horizontal bar per contender ends at its median
 * over rounds (marked with a dark line); a whisker spans the rounds' min..max and a dot marks
 * every round; the value, and the ratio to xvs, are printed next to the bar.
 *
 * Every panel has its own axis because the rows measure different things in different units;
 * within a panel, bar lengths are comparable (on a log axis their differences are ratios).
 */
import type { MicroRow } from "./micro.ts";
import { type Axis, axisFraction, chooseAxis, tickLabel } from "./plot-axis.ts";
import { type BenchReport, fmt, ratio, type Row, workloadInfo, workloadOrder } from "./report.ts";

/** One bar of a panel, in display units. */
export interface PlotBar {
  name: string;
  color: string;
  median: number | null;
  min: number | null;
  max: number | null;
  /** Every round's value (dots); empty when there are no rounds. */
  rounds: number[];
  /** Printed next to the bar. */
  label: string;
  /** Printed next to the label in grey (ratio to xvs...). */
  note: string;
  /** Printed in place of the bar when there is no median. */
  failed: string | null;
}

export interface PlotPanel {
  id: string;
  title: string;
  /** Unit under the axis, e.g. "Mpps (million packets per second)". */
  unit: string;
  bars: PlotBar[];
}

const COLORS: Record<string, string> = {
  xvs: "#d6336c",
  ipvs: "#1c7ed6",
  nft: "#f59f00",
  plain: "#868e96",
  xskfwd: "#37b24d",
  gen: "#343a40",
  ceiling: "#7048e8",
};
const UNIT_NAMES: Record<string, string> = {
  Mpps: "Mpps (million packets per second)",
  µs: "µs (microseconds, round trip)",
  "conn/s": "conn/s (new TCP connections per second)",
  ns: "ns per packet",
};

// layout, in px: names | plot | values
const W = 1000,
  LEFT = 12,
  X0 = 150,
  PLOT_W = 540,
  X1 = X0 + PLOT_W,
  VALUE_X = X1 + 16;
const BAR_H = 16,
  ROW_H = 26,
  FONT = "DejaVu Sans, Verdana, Arial, sans-serif";
const INK = "#212529",
  MUTED = "#495057",
  GRID = "#dee2e6",
  GRID_STRONG = "#adb5bd";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const px = (v: number) => v.toFixed(1);

/** x of a value on a panel's axis. */
function xOf(a: Axis, v: number): number {
  return X0 + axisFraction(a, v) * PLOT_W;
}

/** Break text into lines of at most `width` characters at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = "";
  for (const word of text.split(/\s+/)) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) lines.push(cur);
  return lines;
}

/** The axis a panel gets: over every median, minimum and maximum it draws. */
export function panelAxis(p: PlotPanel): Axis {
  return chooseAxis(p.bars.flatMap((b) => [b.median, b.min, b.max].filter((v): v is number => v !== null)));
}

/** SVG of one panel at `y`; returns the markup and the height used. */
export function renderPanel(p: PlotPanel, y: number): { svg: string; height: number } {
  const a = panelAxis(p);
  const out: string[] = [];
  out.push(`<g class="panel" data-panel="${esc(p.id)}" data-axis="${a.kind}">`);
  out.push(`<text class="panel-title" x="${LEFT}" y="${y + 16}" font-size="15" font-weight="bold" fill="${INK}">${esc(p.title)}</text>`);
  const top = y + 28,
    axisY = top + p.bars.length * ROW_H + 2;
  // grid behind the bars, a line per tick; on a log axis the powers of ten darker
  out.push(`<g class="grid">`);
  for (const t of a.ticks) {
    const x = px(xOf(a, t));
    const strong = a.kind === "log" && Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;
    out.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${axisY}" stroke="${strong ? GRID_STRONG : GRID}" stroke-width="1"/>`);
  }
  out.push(`</g>`);
  p.bars.forEach((b, i) => {
    const ry = top + i * ROW_H,
      mid = ry + BAR_H / 2,
      text = ry + BAR_H / 2 + 5;
    out.push(`<g class="bar" data-name="${esc(b.name)}">`);
    out.push(`<text class="name" x="${LEFT}" y="${text}" font-size="13" fill="${INK}">${esc(b.name)}</text>`);
    if (b.median === null) {
      out.push(`<text class="failed" x="${X0 + 6}" y="${text}" font-size="13" fill="#c92a2a">${esc(b.failed ?? "no data")}</text>`);
      out.push(`</g>`);
      return;
    }
    const xm = xOf(a, b.median);
    out.push(`<rect class="median" x="${X0}" y="${ry}" width="${px(xm - X0)}" height="${BAR_H}" fill="${b.color}" fill-opacity="0.8"/>`);
    out.push(`<line class="median-mark" x1="${px(xm)}" y1="${ry - 2}" x2="${px(xm)}" y2="${ry + BAR_H + 2}" stroke="${INK}" stroke-width="2.5"/>`);
    if (b.min !== null && b.max !== null && b.max > b.min) {
      const x0 = px(xOf(a, b.min)),
        x1 = px(xOf(a, b.max));
      out.push(`<line class="whisker" x1="${x0}" y1="${mid}" x2="${x1}" y2="${mid}" stroke="${INK}" stroke-width="1.2"/>`);
      out.push(`<line class="whisker-min" x1="${x0}" y1="${ry + 3}" x2="${x0}" y2="${ry + BAR_H - 3}" stroke="${INK}" stroke-width="1.2"/>`);
      out.push(`<line class="whisker-max" x1="${x1}" y1="${ry + 3}" x2="${x1}" y2="${ry + BAR_H - 3}" stroke="${INK}" stroke-width="1.2"/>`);
    }
    for (const v of b.rounds) out.push(`<circle class="round" cx="${px(xOf(a, v))}" cy="${mid}" r="2.6" fill="#fff" stroke="${INK}" stroke-width="1"/>`);
    out.push(
      `<text class="value" x="${VALUE_X}" y="${text}" font-size="13" fill="${INK}">${esc(b.label)}${b.note ? `<tspan dx="10" fill="${MUTED}">${esc(b.note)}</tspan>` : ""}</text>`,
    );
    out.push(`</g>`);
  });
  // the axis: origin line, base line, ticks and their values, the unit
  out.push(`<g class="axis">`);
  out.push(`<line class="origin" x1="${X0}" y1="${top - 4}" x2="${X0}" y2="${axisY}" stroke="${MUTED}" stroke-width="1"/>`);
  out.push(`<line class="baseline" x1="${X0}" y1="${axisY}" x2="${X1}" y2="${axisY}" stroke="${MUTED}" stroke-width="1"/>`);
  for (const t of a.ticks) {
    const x = px(xOf(a, t));
    out.push(`<line class="tick" x1="${x}" y1="${axisY}" x2="${x}" y2="${axisY + 5}" stroke="${MUTED}" stroke-width="1"/>`);
    out.push(`<text class="tick-label" x="${x}" y="${axisY + 18}" font-size="12" text-anchor="middle" fill="${INK}">${tickLabel(a, t)}</text>`);
  }
  out.push(
    `<text class="axis-label" x="${X0 + PLOT_W / 2}" y="${axisY + 35}" font-size="12" text-anchor="middle" fill="${MUTED}">${esc(`${p.unit}, ${a.kind === "log" ? "log scale" : "linear scale from 0"}`)}</text>`,
  );
  out.push(`</g>`);
  out.push(`</g>`);
  return { svg: out.join("\n"), height: axisY + 35 + 22 - y };
}

function colorOf(rep: BenchReport, contender: string): string {
  return COLORS[rep.contenders.find((c) => c.id === contender)?.kind ?? ""] ?? "#495057";
}

/** A workload's panel: a bar per contender, in the report's order. */
export function workloadPanel(rep: BenchReport, workload: string): PlotPanel {
  const w = workloadInfo(workload);
  const rounds = Number(rep.options.rounds) || 0;
  const bars = rep.rows
    .filter((r) => r.workload === workload)
    .map((r: Row): PlotBar => {
      const d = (v: number | null) => (v === null ? null : v / w.scale);
      const notes: string[] = [];
      if (r.ratioToXvs !== null && r.reference !== r.contender) notes.push(`${ratio(r.ratioToXvs)} ${r.reference}`);
      if (r.n > 0 && r.n !== rounds) notes.push(`n=${r.n}`);
      if (r.errors.length && r.median !== null) notes.push(`${r.errors.length} failed`);
      return {
        name: r.contender,
        color: colorOf(rep, r.contender),
        median: d(r.median),
        min: d(r.min),
        max: d(r.max),
        rounds: r.samples.map((s) => s.value / w.scale),
        label: `${fmt(r.median, w)} ${w.unit}`,
        note: notes.join(", "),
        failed: r.median === null ? (r.errors.length ? `failed: ${r.errors[0].error.slice(0, 70)}` : "no data") : null,
      };
    });
  return { id: workload, title: `${w.title} (${w.better} is better)`, unit: UNIT_NAMES[w.unit] ?? w.unit, bars };
}

/** The microbenchmarks' panel: ns per packet, one bar per row (single measurements, no rounds). */
export function microPanel(micro: MicroRow[]): PlotPanel {
  return {
    id: "micro",
    title: "fast path microbenchmarks, one core, synthetic frames (lower is better)",
    unit: UNIT_NAMES.ns,
    bars: micro.map((m) => ({
      name: m.id,
      color: m.id === "copy" ? "#adb5bd" : COLORS.xvs,
      median: m.nsPerPacket,
      min: null,
      max: null,
      rounds: [],
      label: `${m.nsPerPacket.toFixed(1)} ns`,
      note: m.error ? `ERROR: ${m.error.slice(0, 40)}` : `net ${m.netNs.toFixed(1)}`,
      failed: null,
    })),
  };
}

/** The legend under the title: what bar, mark, whisker and dots mean. */
function legend(y: number, rounds: number): string {
  const out: string[] = [`<g class="legend" font-size="12" fill="${INK}">`];
  let x = LEFT;
  out.push(`<rect x="${x}" y="${y - 11}" width="26" height="14" fill="#868e96" fill-opacity="0.8"/>`);
  out.push(`<line x1="${x + 26}" y1="${y - 13}" x2="${x + 26}" y2="${y + 5}" stroke="${INK}" stroke-width="2.5"/>`);
  out.push(`<text x="${x + 34}" y="${y}">bar to the median over rounds</text>`);
  x += 230;
  out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 40}" y2="${y - 4}" stroke="${INK}" stroke-width="1.2"/>`);
  out.push(`<line x1="${x}" y1="${y - 9}" x2="${x}" y2="${y + 1}" stroke="${INK}" stroke-width="1.2"/>`);
  out.push(`<line x1="${x + 40}" y1="${y - 9}" x2="${x + 40}" y2="${y + 1}" stroke="${INK}" stroke-width="1.2"/>`);
  out.push(`<circle cx="${x + 14}" cy="${y - 4}" r="2.6" fill="#fff" stroke="${INK}" stroke-width="1"/>`);
  out.push(`<text x="${x + 48}" y="${y}">min..max over rounds, a dot per round (${rounds} rounds; n= where fewer)</text>`);
  out.push(`</g>`);
  return out.join("\n");
}

/** The whole plot. */
export function renderSvg(rep: BenchReport): string {
  const parts: string[] = [];
  parts.push(`<text class="title" x="${LEFT}" y="26" font-size="18" font-weight="bold" fill="${INK}">${esc(rep.title)}</text>`);
  parts.push(legend(52, Number(rep.options.rounds) || 0));
  let y = 66;
  const panels = workloadOrder(rep.rows).map((wid) => workloadPanel(rep, wid));
  if (rep.micro.length) panels.push(microPanel(rep.micro));
  for (const p of panels) {
    const r = renderPanel(p, y);
    parts.push(r.svg);
    y += r.height;
  }
  for (const line of wrap(String(rep.machine.summary ?? ""), 150)) {
    parts.push(`<text class="machine" x="${LEFT}" y="${y}" font-size="12" fill="${MUTED}">${esc(line)}</text>`);
    y += 16;
  }
  y += 8;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="${FONT}">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join("\n")}\n</svg>\n`;
}
