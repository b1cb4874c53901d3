/**
 * Value axes for the bench plots (src/tools/bench/plot.ts): a linear axis from 0, or a logarithmic
 * one when a panel's values span a decade or more (the generator's ~10 Mpps next to a
 * contender's ~0.5 Mpps), both with tick values on the 1-2-5 series so that a reader can read
 * a bar against round numbers. Pure arithmetic, no SVG.
 */

export type AxisKind = "linear" | "log";

export interface Axis {
  kind: AxisKind;
  /** Value at the axis origin (0 for linear, a 1-2-5 value for log). */
  lo: number;
  /** Value at the axis end, a tick. */
  hi: number;
  /** Tick values, lo..hi ascending. */
  ticks: number[];
  /** Decimals that every tick label needs. */
  digits: number;
}

/** Values at least this many times apart on one panel get a log axis. */
export const LOG_SPAN = 10;

const MANTISSAS = [1, 2, 5];

/** m x 10^e without the binary noise of the multiplication (0.1 * 3 style). */
function series(m: number, e: number): number {
  return Number((m * 10 ** e).toPrecision(12));
}

/** The smallest 1-2-5 value >= v (v > 0). */
export function niceCeil(v: number): number {
  let e = Math.floor(Math.log10(v));
  for (;;) {
    for (const m of MANTISSAS) if (series(m, e) >= v * (1 - 1e-12)) return series(m, e);
    e++;
  }
}

/** The largest 1-2-5 value <= v (v > 0). */
export function niceFloor(v: number): number {
  let e = Math.floor(Math.log10(v)) + 1;
  for (;;) {
    for (let i = MANTISSAS.length - 1; i >= 0; i--) if (series(MANTISSAS[i], e) <= v * (1 + 1e-12)) return series(MANTISSAS[i], e);
    e--;
  }
}

/** Decimals needed to print v exactly (up to 6). */
function decimalsOf(v: number): number {
  for (let d = 0; d < 6; d++) if (Math.abs(Number(v.toFixed(d)) - v) < 1e-9 * Math.max(1, Math.abs(v))) return d;
  return 6;
}

/**
 * A linear axis from 0 to a multiple of a 1-2-5 step, with at most `maxIntervals` intervals
 * (default 8, so that 0..130 gets steps of 20 rather than 50) and at least one: the step is the
 * smallest 1-2-5 value that covers `max` in that many intervals.
 */
export function linearAxis(max: number, maxIntervals = 8): Axis {
  if (!(max > 0) || !Number.isFinite(max)) return { kind: "linear", lo: 0, hi: 1, ticks: [0, 0.5, 1], digits: 1 };
  const step = niceCeil(max / maxIntervals);
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  const ticks: number[] = [];
  for (let i = 0; i <= n; i++) ticks.push(Number((i * step).toPrecision(12)));
  return { kind: "linear", lo: 0, hi: ticks[n], ticks, digits: decimalsOf(step) };
}

/**
 * A log axis from the largest 1-2-5 value <= `min` to the smallest >= `max` (both > 0). Ticks at
 * every 1-2-5 value in between; over more than 4 decades only at the powers of ten.
 */
export function logAxis(min: number, max: number): Axis {
  const lo = niceFloor(min),
    hi = niceCeil(Math.max(max, min * 1.0001));
  const decades = Math.log10(hi / lo);
  const ms = decades > 4 ? [1] : MANTISSAS;
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); series(1, e) <= hi; e++) {
    for (const m of ms) {
      const t = series(m, e);
      if (t >= lo * (1 - 1e-12) && t <= hi * (1 + 1e-12)) ticks.push(t);
    }
  }
  if (ticks[0] !== lo) ticks.unshift(lo);
  if (ticks[ticks.length - 1] !== hi) ticks.push(hi);
  return { kind: "log", lo, hi, ticks, digits: Math.max(...ticks.map(decimalsOf)) };
}

/**
 * The axis for a panel whose values (medians, minima, maxima) are `values`: log when the
 * positive ones span LOG_SPAN or more, else linear from 0.
 */
export function chooseAxis(values: number[]): Axis {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) return linearAxis(0);
  const min = Math.min(...pos),
    max = Math.max(...pos);
  return max / min >= LOG_SPAN ? logAxis(min, max) : linearAxis(max);
}

/** Where v falls on the axis, 0 (origin) .. 1 (end), clamped. */
export function axisFraction(a: Axis, v: number): number {
  let f: number;
  if (a.kind === "linear") f = (v - a.lo) / (a.hi - a.lo);
  else f = v > 0 ? Math.log(v / a.lo) / Math.log(a.hi / a.lo) : 0;
  return Math.min(1, Math.max(0, f));
}

/** A tick's label: a linear axis prints every tick with the same decimals, a log one each as short as it is. */
export function tickLabel(a: Axis, v: number): string {
  return v.toFixed(a.kind === "linear" ? a.digits : decimalsOf(v));
}
