/** The ipvs-vm run's observations: the guest's CPU split per window and the host's load note (src/tools/bench/ipvsvm-*.ts). */
import { describe, expect, test } from "bun:test";
import { guestCpuLines, guestCpuOfReport, parseSnaps, SAMPLER_C, windowCpu } from "../../../src/tools/bench/ipvsvm-guest-cpu.ts";
import { type HostLoadSummary, hostLoadNote } from "../../../src/tools/bench/ipvsvm-host-load.ts";
import type { BenchReport } from "../../../src/tools/bench/report.ts";

// /proc/stat order: user nice system idle iowait irq softirq steal (ticks, 100 per second)
const snap = (t: number, cpu1: number[], tasks: Record<string, [string, string, number, number]>) =>
  JSON.stringify({ t, cpus: { cpu0: [t / 10, 0, 0, 0, 0, 0, 0, 0], cpu1: cpu1 }, tasks });

const lines = [
  snap(1000, [0, 0, 0, 0, 0, 0, 0, 0], { "10": ["xvs run --iface", "xvs", 0, 1], "20": ["", "napi/c0-8193", 0, 1] }),
  // inside the window [1500, 4200]: 2 s between these two
  snap(2000, [100, 0, 100, 0, 0, 0, 100, 0], { "10": ["xvs run --iface", "xvs", 50, 1], "20": ["", "napi/c0-8193", 50, 1] }),
  snap(4000, [160, 0, 180, 0, 0, 0, 160, 0], {
    "10": ["xvs run --iface", "xvs", 110, 1],
    "11": ["xvs run --iface", "bun-worker", 40, 1],
    "20": ["", "napi/c0-8193", 130, 1],
  }),
  snap(5000, [999, 0, 999, 0, 0, 0, 999, 0], {}),
  '{"t": 6000, "cpus": {"cpu0"', // cut off by the guest's power-off
];

describe("guest CPU split", () => {
  test("the sampler's C source is embedded, not its path", () => {
    expect(SAMPLER_C).toContain("int main(int argc");
  });

  test("between the first and the last snapshot inside the window", () => {
    const snaps = parseSnaps(lines.join("\n"));
    expect(snaps.length).toBe(4);
    const w = windowCpu(snaps, 1500, 4200)!;
    expect(w.secs).toBe(2);
    // cpu1: 60 user, 80 system, 60 softirq ticks of 200
    expect(w.cpus.cpu1).toEqual({ user: 0.3, system: 0.4, softirq: 0.3, idle: 0, steal: 0 });
    // threads grouped by command and name (the NAPI thread's number dropped), shares of their 180 ticks
    expect(w.threads).toEqual([
      { name: "[napi/c0]", share: 0.44, cpu: 1 },
      { name: "xvs run --iface", share: 0.33, cpu: 1 },
      { name: "xvs run --iface (bun-worker)", share: 0.22, cpu: 1 },
    ]);
  });

  test("no split when fewer than two snapshots a second apart fall inside", () => {
    const snaps = parseSnaps(lines.join("\n"));
    expect(windowCpu(snaps, 1500, 2500)).toBeNull();
    expect(windowCpu(snaps, 3500, 4500)).toBeNull();
  });

  test("every windowed sample of a report, summarised per contender and workload", () => {
    const report = {
      rows: [
        {
          contender: "xvs-nat",
          workload: "udp64-overload",
          samples: [
            { round: 1, value: 1, extra: { windowStartMs: 1500, windowEndMs: 4200 } },
            { round: 2, value: 1, extra: {} },
          ],
        },
      ],
    } as unknown as BenchReport;
    const es = guestCpuOfReport(report, parseSnaps(lines.join("\n")));
    expect(es.map((e) => [e.contender, e.workload, e.round])).toEqual([["xvs-nat", "udp64-overload", 1]]);
    const [line] = guestCpuLines(es);
    expect(line).toContain("xvs-nat, udp64-overload (1 windows)");
    expect(line).toContain("cpu1 user 30% sys 40% softirq 30% idle 0%");
    expect(line).toContain("[napi/c0] 44%, xvs run --iface 33%");
  });
});

describe("host load note", () => {
  test("says the host's load, its busy CPUs and the cores qemu got", () => {
    const h: HostLoadSummary = {
      hostCpus: 2,
      startLoad: "5.00 4.00 3.00",
      endLoad: "7.00 6.00 5.00",
      load1: { median: 6, min: 4.5, max: 9 },
      hostBusy: { median: 1, min: 0.9, max: 1 },
      qemuCores: { median: 0.8, min: 0.4, max: 1.5 },
      busiestAtStart: ["90% cpu 100 MB bun test"],
      busiestAtEnd: [],
      points: [],
    };
    const n = hostLoadNote(h, 2);
    expect(n).toContain("1-minute load average median 6.00 (4.50..9.00)");
    expect(n).toContain("host CPUs busy median 100% (90%..100%)");
    expect(n).toContain("qemu got median 0.80 (0.40..1.50) cores of the 2");
    expect(n).toContain("90% cpu 100 MB bun test");
  });
});
