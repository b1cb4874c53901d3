/**
 * The bench plots (src/tools/bench/plot.ts): valid XML, a panel per workload with an axis a reader can
 * use (ticks on the 1-2-5 series with their values, the unit, linear from 0 or marked as log),
 * and every bar, whisker and round dot where its value falls on that axis as the tick labels
 * print it, checked against the report's numbers, not against the plot's own attributes.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderSvg } from "../../../src/tools/bench/plot.ts";
import { type BenchReport, buildRows, type Cell, type ContenderInfo, fmt, workloadInfo, workloadOrder } from "../../../src/tools/bench/report.ts";
import { byClass, parseXml, textOf, walk, type XmlElement } from "./xml.ts";

const RESULTS = join(import.meta.dir, "../../../bench/results");
const load = (name: string) => JSON.parse(readFileSync(join(RESULTS, name), "utf8")) as BenchReport;

/** A small report with known values: a generator 20x the contenders, latency, a failed row, markup in names. */
function synthetic(): BenchReport {
  const contenders: ContenderInfo[] = [
    { id: "gen", kind: "gen", mode: "nat", label: "generator", skipped: null, workloads: ["udp64"] },
    { id: "xvs-nat", kind: "xvs", mode: "nat", label: "xvs", skipped: null, workloads: ["udp64", "latency"] },
    { id: "nft", kind: "nft", mode: "nat", label: "nftables <DNAT> & conntrack", skipped: null, workloads: ["udp64", "latency"] },
    { id: "xskfwd", kind: "xskfwd", mode: "nat", label: "C", skipped: null, workloads: ["udp64"] },
  ];
  const s = (vals: number[]) => vals.map((value, i) => ({ round: i + 1, value, extra: {} }));
  const cells: Cell[] = [
    { contender: "gen", workload: "udp64", samples: s([10e6, 9.5e6, 10.2e6]), errors: [] },
    { contender: "xvs-nat", workload: "udp64", samples: s([0.5e6, 0.45e6, 0.55e6]), errors: [] },
    { contender: "nft", workload: "udp64", samples: s([0.6e6, 0.7e6, 0.65e6]), errors: [] },
    { contender: "xskfwd", workload: "udp64", samples: [], errors: [{ round: 1, error: "start: exited <1> & died" }] },
    { contender: "xvs-nat", workload: "latency-p50", samples: s([110, 120, 130]), errors: [] },
    { contender: "nft", workload: "latency-p50", samples: s([100, 95, 105]), errors: [] },
  ];
  return {
    schema: "xvs-bench/1",
    title: "synthetic <run> & co",
    startedAt: "",
    finishedAt: "",
    seconds: 1,
    machine: { summary: "2 x test CPU" },
    options: { rounds: 3 },
    setup: [],
    contenders,
    workloads: [],
    rows: buildRows(cells, contenders),
    micro: [
      { id: "copy", label: "copy", nsPerPacket: 11, netNs: 0, mpps: 90, packets: 1 },
      { id: "fastpath-1M", label: "fast path", nsPerPacket: 200, netNs: 189, mpps: 5, packets: 1 },
    ],
    profile: null,
    targets: [],
    notes: [],
  };
}

interface ReadAxis {
  kind: string;
  ticks: { v: number; x: number }[];
  label: string;
  /** x of a value, from the first and last tick labels as printed. */
  x(v: number): number;
}

/** The axis of a panel as a reader sees it: tick labels (numbers) at their x, the unit line. */
function readAxis(panel: XmlElement): ReadAxis {
  const kind = panel.attrs["data-axis"];
  const ticks = byClass(panel, "tick-label").map((t) => ({ v: Number(textOf(t)), x: Number(t.attrs.x) }));
  const a = ticks[0],
    b = ticks[ticks.length - 1];
  const label = textOf(byClass(panel, "axis-label")[0]);
  const x = (v: number) => (kind === "log" ? a.x + (Math.log(v / a.v) / Math.log(b.v / a.v)) * (b.x - a.x) : a.x + ((v - a.v) / (b.v - a.v)) * (b.x - a.x));
  return { kind, ticks, label, x };
}

const mantissa = (v: number) => Number((v / 10 ** Math.floor(Math.log10(v) + 1e-9)).toPrecision(6));

function checkAxis(panel: XmlElement, unit: string): ReadAxis {
  const ax = readAxis(panel);
  const id = panel.attrs["data-panel"];
  expect(["linear", "log"], id).toContain(ax.kind);
  expect(byClass(panel, "baseline").length, id).toBe(1);
  expect(byClass(panel, "tick").length, id).toBe(ax.ticks.length);
  expect(ax.ticks.length, id).toBeGreaterThanOrEqual(3);
  expect(ax.label, id).toContain(unit);
  for (const t of ax.ticks) expect(Number.isFinite(t.v), `${id} tick ${t.v}`).toBe(true);
  for (let i = 1; i < ax.ticks.length; i++) {
    expect(ax.ticks[i].v, id).toBeGreaterThan(ax.ticks[i - 1].v);
    expect(ax.ticks[i].x, id).toBeGreaterThan(ax.ticks[i - 1].x);
  }
  // every tick where its printed value falls (so the labels and the scale agree)
  for (const t of ax.ticks) expect(Math.abs(ax.x(t.v) - t.x), `${id} tick ${t.v}`).toBeLessThan(0.6);
  if (ax.kind === "linear") {
    expect(ax.label, id).toContain("linear scale from 0");
    expect(ax.ticks[0].v, id).toBe(0);
    const step = ax.ticks[1].v;
    expect([1, 2, 5], `${id} step ${step}`).toContain(mantissa(step));
    for (let i = 1; i < ax.ticks.length; i++) expect(ax.ticks[i].v - ax.ticks[i - 1].v, id).toBeCloseTo(step, 9);
  } else {
    expect(ax.label, id).toContain("log scale");
    for (const t of ax.ticks) expect([1, 2, 5], `${id} tick ${t.v}`).toContain(mantissa(t.v));
  }
  return ax;
}

/** Every bar of a workload panel against the report's row: bar end, whisker, dots, printed value. */
function checkWorkloadPanel(rep: BenchReport, panel: XmlElement, wid: string) {
  const w = workloadInfo(wid);
  const ax = checkAxis(panel, w.unit);
  const origin = ax.ticks[0].x;
  const values = rep.rows
    .filter((r) => r.workload === wid)
    .flatMap((r) => [r.min, r.max])
    .filter((v): v is number => v !== null && v > 0)
    .map((v) => v / w.scale);
  // the axis covers every value, and takes the log scale exactly when they span a decade
  for (const v of values) {
    expect(v, wid).toBeGreaterThanOrEqual(ax.ticks[0].v);
    expect(v, wid).toBeLessThanOrEqual(ax.ticks[ax.ticks.length - 1].v + 1e-9);
  }
  expect(ax.kind, wid).toBe(Math.max(...values) / Math.min(...values) >= 10 ? "log" : "linear");
  const bars = byClass(panel, "bar");
  const rows = rep.rows.filter((r) => r.workload === wid);
  expect(bars.map((b) => b.attrs["data-name"])).toEqual(rows.map((r) => r.contender));
  for (const [i, r] of rows.entries()) {
    const bar = bars[i],
      id = `${wid} ${r.contender}`;
    if (r.median === null) {
      expect(byClass(bar, "median"), id).toEqual([]);
      expect(textOf(byClass(bar, "failed")[0]), id).toContain(r.errors.length ? "failed" : "no data");
      continue;
    }
    const rect = byClass(bar, "median")[0];
    expect(Number(rect.attrs.x), id).toBeCloseTo(origin, 1);
    // the bar's length is the median's place on the panel's axis, as its tick labels say
    const end = Number(rect.attrs.x) + Number(rect.attrs.width);
    expect(Math.abs(end - ax.x(r.median / w.scale)), id).toBeLessThan(0.6);
    expect(Math.abs(Number(byClass(bar, "median-mark")[0].attrs.x1) - end), id).toBeLessThan(0.6);
    if (r.max! > r.min!) {
      expect(Math.abs(Number(byClass(bar, "whisker-min")[0].attrs.x1) - ax.x(r.min! / w.scale)), id).toBeLessThan(0.6);
      expect(Math.abs(Number(byClass(bar, "whisker-max")[0].attrs.x1) - ax.x(r.max! / w.scale)), id).toBeLessThan(0.6);
    }
    const dots = byClass(bar, "round")
      .map((c) => Number(c.attrs.cx))
      .sort((a, b) => a - b);
    const want = r.samples.map((s) => ax.x(s.value / w.scale)).sort((a, b) => a - b);
    expect(dots.length, id).toBe(want.length);
    dots.forEach((x, k) => {
      expect(Math.abs(x - want[k]), id).toBeLessThan(0.6);
    });
    expect(textOf(byClass(bar, "value")[0]), id).toContain(`${fmt(r.median, w)} ${w.unit}`);
  }
}

function checkPlot(rep: BenchReport, svg: string) {
  const root = parseXml(svg);
  expect(root.name).toBe("svg");
  expect(root.attrs.xmlns).toBe("http://www.w3.org/2000/svg");
  expect(Number(root.attrs.height)).toBeGreaterThan(100);
  // readable: no text smaller than 12 px
  for (const el of walk(root)) if (el.attrs["font-size"]) expect(Number(el.attrs["font-size"])).toBeGreaterThanOrEqual(12);
  const panels = byClass(root, "panel");
  const wids = workloadOrder(rep.rows);
  expect(panels.map((p) => p.attrs["data-panel"])).toEqual([...wids, ...(rep.micro.length ? ["micro"] : [])]);
  for (const [i, wid] of wids.entries()) checkWorkloadPanel(rep, panels[i], wid);
  if (rep.micro.length) {
    const p = panels[panels.length - 1];
    const ax = checkAxis(p, "ns per packet");
    const bars = byClass(p, "bar");
    rep.micro.forEach((m, k) => {
      const rect = byClass(bars[k], "median")[0];
      expect(Math.abs(Number(rect.attrs.x) + Number(rect.attrs.width) - ax.x(m.nsPerPacket)), m.id).toBeLessThan(0.6);
      expect(textOf(byClass(bars[k], "value")[0]), m.id).toContain(`${m.nsPerPacket.toFixed(1)} ns`);
    });
  }
  return root;
}

describe("bench plot", () => {
  test("a synthetic report: log axis where the generator is 20x the rest, linear from 0 elsewhere, failures and markup", () => {
    const rep = synthetic();
    const svg = renderSvg(rep);
    const root = checkPlot(rep, svg);
    const [udp, lat, micro] = byClass(root, "panel");
    const ua = readAxis(udp);
    expect(ua.kind).toBe("log");
    expect(ua.ticks.map((t) => t.v)).toEqual([0.2, 0.5, 1, 2, 5, 10, 20]);
    expect(ua.label).toBe("Mpps (million packets per second), log scale");
    const la = readAxis(lat);
    expect(la.kind).toBe("linear");
    expect(la.ticks.map((t) => t.v)).toEqual([0, 20, 40, 60, 80, 100, 120, 140]);
    expect(la.label).toContain("µs");
    expect(readAxis(micro).kind).toBe("log");
    // xvs's bar (0.5 Mpps) is no sliver: on the log axis it is far from the origin, and nft's
    // 1.3x is a visible step beyond it
    const bar = (name: string) => byClass(udp, "bar").find((b) => b.attrs["data-name"] === name)!;
    const len = (name: string) => Number(byClass(bar(name), "median")[0].attrs.width);
    expect(len("xvs-nat")).toBeGreaterThan(100);
    expect(len("nft") - len("xvs-nat")).toBeGreaterThan(20);
    expect(textOf(byClass(bar("nft"), "value")[0])).toContain("1.30x xvs-nat");
    expect(textOf(byClass(bar("xskfwd"), "failed")[0])).toBe("failed: start: exited <1> & died");
    expect(textOf(byClass(root, "title")[0])).toBe("synthetic <run> & co");
    expect(svg).toContain("synthetic &lt;run&gt; &amp; co");
  });

  test("a run without values on a panel still gets an axis", () => {
    const rep = synthetic();
    rep.rows = rep.rows.filter((r) => r.contender === "xskfwd");
    rep.micro = [];
    const root = checkPlot(rep, renderSvg(rep));
    expect(byClass(root, "tick-label").length).toBeGreaterThanOrEqual(3);
  });

  const reports = readdirSync(RESULTS)
    .filter((f) => f.endsWith(".json"))
    .filter((f) => load(f).schema === "xvs-bench/1");
  test("bench/results holds bench reports to plot", () => expect(reports.length).toBeGreaterThanOrEqual(3));
  for (const f of reports) {
    test(`${f}: every panel and bar checks out, and the committed .svg is this rendering`, () => {
      const rep = load(f);
      const svg = renderSvg(rep);
      checkPlot(rep, svg);
      expect(readFileSync(join(RESULTS, f.replace(/\.json$/, ".svg")), "utf8")).toBe(svg);
    });
  }
});

describe("the test's XML parser rejects what is not well-formed", () => {
  for (const bad of [
    "<svg><g></svg>",
    "<svg a=1/>",
    "<svg>a & b</svg>",
    '<svg a="1" a="2"/>',
    "<svg></svg><svg/>",
    "<svg><g></g>",
    '<svg a="<"/>',
    "<svg>&nbsp;</svg>",
  ])
    test(bad, () => expect(() => parseXml(bad)).toThrow());
  test("and accepts what is", () => {
    const r = parseXml('<?xml version="1.0"?>\n<!-- c --><svg a="x &amp; y"><text>1 &lt; 2<tspan>!</tspan></text><g/></svg>\n');
    expect(r.attrs.a).toBe("x & y");
    expect(textOf(r.children[0])).toBe("1 < 2 !");
  });
});
