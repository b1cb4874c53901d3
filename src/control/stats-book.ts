/**
 * The control thread's side of IPVS statistics. The workers only ever add to their counters
 * (shared memory, never written here), so what the kernel keeps as `kstats0` lives here: a
 * baseline per service and per real server, taken when the object appears (a new service, a
 * new real server, one revived from the trash: the kernel zeroes those) and on `-Z`. Listings
 * show raw - baseline. Each object also has its rate estimator, ticked every 2 s.
 *
 * Objects are keyed by id (services) and id + incarnation (real servers: a revival bumps the
 * incarnation). `sync` after every committed change adds what is new and forgets what is gone,
 * so an id reused later starts from a fresh baseline.
 *
 * The metrics (metrics.ts) read a second view that -Z never touches: counters since the object
 * appeared (its `origin`, taken with the first baseline and kept by `zero`), so that a Prometheus
 * counter only grows while the object lives, and a new object under a reused id starts at 0.
 */
import type { Dest, Model, Service } from "../config/model.ts";
import { EstimatorSchedule, RateEstimator, type CounterSample, type Rates } from "../stats/estimator.ts";

/** Where the raw (never reset) counters come from: sums over the workers. */
export interface RawCounters {
  service(id: number): CounterSample;
  dest(id: number): CounterSample;
}

interface Entry {
  baseline: CounterSample;
  /** Raw counters when the object appeared; -Z keeps it. */
  origin: CounterSample;
  est: RateEstimator;
}

function minus(a: CounterSample, b: CounterSample): CounterSample {
  // a counter can only grow; max() keeps a listing sane if a worker restarted under us
  return {
    conns: Math.max(0, a.conns - b.conns),
    inpkts: Math.max(0, a.inpkts - b.inpkts),
    outpkts: Math.max(0, a.outpkts - b.outpkts),
    inbytes: Math.max(0, a.inbytes - b.inbytes),
    outbytes: Math.max(0, a.outbytes - b.outbytes),
  };
}

const destKey = (d: Dest) => `${d.id}:${d.incarnation}`;

/** Baselines and estimators of every listed service and real server. */
export class StatsBook {
  private services = new Map<number, Entry>();
  private dests = new Map<string, Entry>();
  private readonly schedule: EstimatorSchedule;

  constructor(
    private readonly raw: RawCounters,
    nowMs = Date.now(),
  ) {
    this.schedule = new EstimatorSchedule(nowMs);
  }

  private fresh(current: CounterSample, origin: CounterSample = current): Entry {
    return { baseline: current, origin, est: new RateEstimator(current) };
  }

  /** Track the objects of a committed model: new ones start at zero, gone ones are dropped. */
  sync(model: Model): void {
    const services = new Map<number, Entry>();
    const dests = new Map<string, Entry>();
    for (const s of model.services) {
      services.set(s.id, this.services.get(s.id) ?? this.fresh(this.raw.service(s.id)));
      for (const d of s.dests) {
        const k = destKey(d);
        dests.set(k, this.dests.get(k) ?? this.fresh(this.raw.dest(d.id)));
      }
    }
    this.services = services;
    this.dests = dests;
  }

  /** Zero a service and its real servers (ip_vs_zero_service), counters and rates. */
  zero(s: Service): void {
    this.services.set(s.id, this.fresh(this.raw.service(s.id), this.services.get(s.id)?.origin));
    for (const d of s.dests) this.dests.set(destKey(d), this.fresh(this.raw.dest(d.id), this.dests.get(destKey(d))?.origin));
  }

  /** Counters of a service since it appeared or was last zeroed. */
  serviceStats(s: Service): CounterSample {
    const e = this.services.get(s.id);
    const cur = this.raw.service(s.id);
    return e ? minus(cur, e.baseline) : minus(cur, cur);
  }

  /** Counters of a real server since it appeared or was last zeroed. */
  destStats(d: Dest): CounterSample {
    const e = this.dests.get(destKey(d));
    const cur = this.raw.dest(d.id);
    return e ? minus(cur, e.baseline) : minus(cur, cur);
  }

  /** Counters of a service since it appeared, whatever -Z did (the metrics' view). */
  serviceLifetime(s: Service): CounterSample {
    const e = this.services.get(s.id);
    const cur = this.raw.service(s.id);
    return e ? minus(cur, e.origin) : minus(cur, cur);
  }

  /** Counters of a real server since it appeared (or was revived), whatever -Z did. */
  destLifetime(d: Dest): CounterSample {
    const e = this.dests.get(destKey(d));
    const cur = this.raw.dest(d.id);
    return e ? minus(cur, e.origin) : minus(cur, cur);
  }

  serviceRates(s: Service): Rates {
    return this.services.get(s.id)?.est.rates() ?? { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
  }

  destRates(d: Dest): Rates {
    return this.dests.get(destKey(d))?.est.rates() ?? { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
  }

  /** Set the estimator state of a service or dest so that it reads `r` (tests replaying a capture). */
  setRates(target: { service: Service } | { dest: Dest }, r: Rates): void {
    const e = "service" in target ? this.services.get(target.service.id) : this.dests.get(destKey(target.dest));
    e?.est.setRates(r);
  }

  /** Run the estimator if its 2-second tick is due at `nowMs`; returns true when it ran. */
  tick(nowMs: number): boolean {
    if (!this.schedule.take(nowMs)) return false;
    for (const [id, e] of this.services) e.est.update(this.raw.service(id));
    for (const [k, e] of this.dests) e.est.update(this.raw.dest(Number(k.slice(0, k.indexOf(":")))));
    return true;
  }
}
