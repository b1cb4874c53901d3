import { describe, expect, test } from "bun:test";
import { Daemon } from "../../../src/control/daemon.ts";
import { ESTIMATOR_PERIOD_MS, EstimatorSchedule, RateEstimator, type CounterSample } from "../../../src/stats/estimator.ts";
import { startXvs, NOW_MS } from "../cli/fixture.ts";
import { TS_WORDS } from "../../../src/stats/counters.ts";

const zero: CounterSample = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

/** Feed `perSec` of everything for `ticks` 2-second ticks; returns what each tick reads. */
function run(perSec: CounterSample, ticks: number): ReturnType<RateEstimator["rates"]>[] {
  const est = new RateEstimator(zero);
  const cur = { ...zero };
  const out = [];
  for (let i = 0; i < ticks; i++) {
    cur.conns += perSec.conns * 2;
    cur.inpkts += perSec.inpkts * 2;
    cur.outpkts += perSec.outpkts * 2;
    cur.inbytes += perSec.inbytes * 2;
    cur.outbytes += perSec.outbytes * 2;
    est.update(cur);
    out.push(est.rates());
  }
  return out;
}

describe("rate estimator", () => {
  test("a steady 100 connections per second reads 25, 44, 58, 68, 76, 82, 87, 90, 92, 94, 96 on successive ticks", () => {
    const cps = run({ conns: 100, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 }, 11).map((r) => r.cps);
    expect(cps).toEqual([25, 44, 58, 68, 76, 82, 87, 90, 92, 94, 96]);
  });

  test("converges to the true rate and stays there", () => {
    const last = run({ conns: 100, inpkts: 1000, outpkts: 900, inbytes: 1_000_000, outbytes: 50_000 }, 60).at(-1)!;
    expect(last).toEqual({ cps: 100, inpps: 1000, outpps: 900, inbps: 1_000_000, outbps: 50_000 });
  });

  test("byte counters near 2^53 give the kernel's exact integer result", () => {
    const est = new RateEstimator(zero);
    const delta = 2 ** 52 + 3;
    est.update({ ...zero, inbytes: delta });
    // avg = (delta << 4) >> 2; read as (avg + 0xF) >> 5, all in 64-bit integers
    expect(BigInt(est.rates().inbps)).toBe((((BigInt(delta) << 4n) >> 2n) + 15n) >> 5n);
  });

  test("decays to zero when traffic stops", () => {
    const est = new RateEstimator(zero);
    est.update({ ...zero, conns: 200 });
    expect(est.rates().cps).toBe(25);
    for (let i = 0; i < 40; i++) est.update({ ...zero, conns: 200 });
    expect(est.rates().cps).toBe(0);
  });

  test("reset takes the current counters as the starting point and zeroes the rates", () => {
    const est = new RateEstimator(zero);
    est.update({ ...zero, conns: 1000 });
    est.reset({ ...zero, conns: 1000 });
    expect(est.rates().cps).toBe(0);
    est.update({ ...zero, conns: 1200 });
    expect(est.rates().cps).toBe(25);
  });
});

describe("estimator schedule", () => {
  test("ticks once per 2-second period of the injected clock", () => {
    const s = new EstimatorSchedule(0);
    const due = [0, 1999, 2000, 2500, 3999, 4000, 6001].map((t) => s.take(t));
    expect(due).toEqual([false, false, true, false, false, true, true]);
    expect(ESTIMATOR_PERIOD_MS).toBe(2000);
  });

  test("a stalled caller gets one tick, not a burst", () => {
    const s = new EstimatorSchedule(0);
    expect(s.take(20_000)).toBe(true);
    expect(s.take(20_001)).toBe(false);
    expect(s.take(22_000)).toBe(true);
  });
});

describe("daemon statistics", () => {
  test("a service's rate follows its counters on the control thread's ticks and -Z resets it", async () => {
    let now = NOW_MS;
    const x = startXvs();
    const daemon = new Daemon(x.daemon.dataplane, null, () => now);
    await daemon.mutate((m) => m.addService({ protocol: "tcp", address: "198.18.0.100", port: 80, scheduler: "rr", onePacket: false, schedFlags: [] }));
    const s = daemon.model.services[0];
    const traffic = x.dataplane.workers[0].counters.traffic;
    const seen: number[] = [];
    for (let i = 1; i <= 3; i++) {
      traffic[s.id * TS_WORDS] += 200;
      now += 2000;
      daemon.tickEstimator(now);
      seen.push(daemon.stats.serviceRates(s).cps);
    }
    expect(seen).toEqual([25, 44, 58]);
    expect(daemon.stats.serviceStats(s).conns).toBe(600);
    daemon.zero();
    expect(daemon.stats.serviceRates(s).cps).toBe(0);
    expect(daemon.stats.serviceStats(s).conns).toBe(0);
  });
});
