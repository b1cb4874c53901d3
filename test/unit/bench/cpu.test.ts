/** Where each CPU's time went in a bench window (src/tools/bench/cpu.ts), over made-up snapshots. */
import { describe, expect, test } from "bun:test";
import { CPU_EXTRAS, type CpuSnapshot, cpuShares, cpuSnapshot, windowCpuExtras } from "../../../src/tools/bench/cpu.ts";

// ticks: [user nice system idle iowait irq softirq steal]
function snap(at: number, cpu0: number[], cpu1: number[], dir: number[], side: number[], proc: number): CpuSnapshot {
  return { at, cpus: { cpu0, cpu1 }, dir, side, proc };
}

describe("bench CPU accounting", () => {
  test("a CPU's shares over the window, idle and iowait counted as idle", () => {
    const a = snap(0, [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [], [], -1);
    const b = snap(1000, [10, 10, 30, 20, 10, 0, 20, 0], [0, 0, 0, 100, 0, 0, 0, 0], [], [], -1);
    const s = cpuShares(a, b, 0);
    expect(s.user).toBeCloseTo(0.2);
    expect(s.system).toBeCloseTo(0.3);
    expect(s.softirq).toBeCloseTo(0.2);
    expect(s.idle).toBeCloseTo(0.3);
    expect(s.busy).toBeCloseTo(0.7);
    expect(cpuShares(a, b, 1).busy).toBe(0);
  });

  test("NAPI threads and the contender's process per forwarded packet, and the director's total", () => {
    // 2 s window; director NAPI threads 0.5 + 0.3 s, sink's 0.2 s, process 0.4 s (nanoseconds)
    const a = snap(0, [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [1e9, 2e9], [5e7], 1e10);
    const b = snap(2000, [0, 0, 100, 100, 0, 0, 0, 0], [0, 0, 200, 0, 0, 0, 0, 0], [1.5e9, 2.3e9], [2.5e8], 1.04e10);
    const e = windowCpuExtras(a, b, { dirCpu: 1, genCpu: 0 }, 1_000_000);
    expect(e.dirCpuBusy).toBeCloseTo(1);
    expect(e.genCpuBusy).toBeCloseTo(0.5);
    expect(e.dirNapiShare).toBeCloseTo(0.4);
    expect(e.dirNapiNsPerPkt).toBeCloseTo(800);
    expect(e.sinkNapiShare).toBeCloseTo(0.1);
    expect(e.sinkNapiNsPerPkt).toBeCloseTo(200);
    expect(e.procShare).toBeCloseTo(0.2);
    expect(e.procNsPerPkt).toBeCloseTo(400);
    expect(e.dirNsPerPkt).toBeCloseTo(1200);
    expect(e.load1).toBeGreaterThanOrEqual(0);
    // a peak row copies these keys from its best window (workloads.ts udpPeak): every one listed
    expect(Object.keys(e).filter((k) => !CPU_EXTRAS.includes(k))).toEqual([]);
  });

  test("no process (kernel contender), no threads (not steered), no packets: only what is known", () => {
    const a = snap(0, [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [1e8], [], -1);
    const b = snap(1000, [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [4e8], [], -1);
    const kernel = windowCpuExtras(a, b, null, 100_000);
    expect(kernel.procShare).toBeUndefined();
    expect(kernel.dirNsPerPkt).toBeCloseTo(3000);
    expect(kernel.dirCpuBusy).toBeUndefined();
    expect(kernel.sinkNapiShare).toBeUndefined();
    const none = windowCpuExtras(a, b, null, 0);
    expect(none.dirNapiShare).toBeCloseTo(0.3);
    expect(none.dirNapiNsPerPkt).toBeUndefined();
    expect(none.dirNsPerPkt).toBeUndefined();
  });

  test("a live snapshot reads this machine's CPUs and this process", () => {
    const s = cpuSnapshot([process.pid], [], process.pid);
    expect(Object.keys(s.cpus).length).toBeGreaterThan(0);
    expect(s.dir[0]).toBeGreaterThan(0);
    expect(s.proc).toBeGreaterThanOrEqual(s.dir[0]);
    expect(cpuSnapshot([], [], 0).proc).toBe(-1);
  });
});
