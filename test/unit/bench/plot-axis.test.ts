/** Value axes of the bench plots (src/tools/bench/plot-axis.ts): 1-2-5 ticks, linear from 0, log across decades. */
import { describe, expect, test } from "bun:test";
import { axisFraction, chooseAxis, linearAxis, logAxis, niceCeil, niceFloor, tickLabel } from "../../../src/tools/bench/plot-axis.ts";

describe("plot axes", () => {
  test("1-2-5 rounding, up and down, without binary noise", () => {
    expect([0.12, 0.2, 0.21, 3, 7.5, 9635, 1e-7].map(niceCeil)).toEqual([0.2, 0.2, 0.5, 5, 10, 10000, 1e-7]);
    expect([0.12, 0.2, 0.395, 3, 7.5, 9635, 11.3].map(niceFloor)).toEqual([0.1, 0.2, 0.2, 2, 5, 5000, 10]);
  });

  test("linear: from 0, a 1-2-5 step, at most 8 intervals, the end covering the maximum", () => {
    expect(linearAxis(0.964).ticks).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(linearAxis(130).ticks).toEqual([0, 20, 40, 60, 80, 100, 120, 140]);
    expect(linearAxis(9635).ticks).toEqual([0, 2000, 4000, 6000, 8000, 10000]);
    expect(linearAxis(0.3).ticks).toEqual([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
    expect(linearAxis(100).ticks).toEqual([0, 20, 40, 60, 80, 100]);
    for (let i = 0; i < 2000; i++) {
      const max = Math.exp(Math.random() * 40 - 20);
      const a = linearAxis(max);
      expect(a.lo).toBe(0);
      expect(a.hi).toBeGreaterThanOrEqual(max);
      expect(a.ticks.length - 1).toBeLessThanOrEqual(8);
      expect(a.ticks.length - 1).toBeGreaterThanOrEqual(3);
    }
    // labels share their decimals
    const a = linearAxis(0.3);
    expect(a.ticks.map((t) => tickLabel(a, t))).toEqual(["0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"]);
  });

  test("log: from a 1-2-5 value under the minimum to one over the maximum, every 1-2-5 tick between", () => {
    const a = logAxis(0.395, 12.07);
    expect([a.lo, a.hi]).toEqual([0.2, 20]);
    expect(a.ticks).toEqual([0.2, 0.5, 1, 2, 5, 10, 20]);
    expect(a.ticks.map((t) => tickLabel(a, t))).toEqual(["0.2", "0.5", "1", "2", "5", "10", "20"]);
    // ten decades: powers of ten only
    expect(logAxis(1, 1e10).ticks).toEqual([1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]);
    expect(axisFraction(a, 2)).toBeCloseTo(0.5, 9);
    expect(axisFraction(a, 0.2)).toBe(0);
    expect(axisFraction(a, 20)).toBe(1);
  });

  test("the choice: log when the positive values span 10x or more, else linear from 0", () => {
    expect(chooseAxis([0.5, 0.6, 4.9]).kind).toBe("linear");
    expect(chooseAxis([0.5, 0.6, 5]).kind).toBe("log");
    expect(chooseAxis([0, 3, 20]).kind).toBe("linear");
    expect(chooseAxis([]).ticks.length).toBeGreaterThanOrEqual(3);
    const a = chooseAxis([0, 25, 50]);
    expect(axisFraction(a, 25)).toBeCloseTo(25 / a.hi, 9);
  });
});
