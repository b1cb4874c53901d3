/**
 * The daemon's state: the model, the dataplane that runs it, and the views the API serves.
 * Every change goes through `mutate`: one at a time (a promise chain), on a clone of the model,
 * committed only when the new generation compiled, reached the workers and was saved. A failed
 * change leaves model, dataplane and saved configuration exactly as they were.
 *
 * Statistics: the workers' counters only grow; zeroing and the rate estimator live on this
 * thread (stats-book.ts), like the kernel's kstats0 and estimator.
 */
import { ErrorCode, LbError } from "../errors.ts";
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import { compile, emptyRoutes } from "../config/compile.ts";
import { Model } from "../config/model.ts";
import type { Tables } from "../service/tables.ts";
import { DEST_TRAFFIC_BASE, TS_WORDS } from "../stats/counters.ts";
import type { Dataplane } from "../dataplane/dataplane.ts";
import { Stat, STAT_NAMES } from "../dataplane/verdict.ts";
import { ticksSince } from "../dataplane/protocol.ts";
import type { ServiceKeyT } from "./schemas.ts";
import { listConns } from "./conns.ts";
import { StatsBook } from "./stats-book.ts";
import type { HealthMonitor } from "../health/monitor.ts";

/** Traffic counters of a service or a real server, as IPVS keeps them. */
export interface Traffic {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

/** Something that keeps the configuration across restarts (config-store.ts). */
export interface ConfigSink {
  save(model: Model): void;
}

/** Connection table size the header of `ipvsadm -L` shows without a dataplane (CONFIG_IP_VS_TAB_BITS 12). */
export const DEFAULT_CONN_TAB_SIZE = 4096;

/** The running daemon: model, dataplane, statistics; every change through `mutate`. */
export class Daemon {
  model = new Model();
  /** Baselines (-Z) and rate estimators of every service and real server. */
  readonly stats: StatsBook;
  readonly startedMs: number;
  /** Called after every committed change with the tables before and after (the dashboard's event ring, ui/events.ts). */
  readonly changeListeners: ((before: Model, after: Model) => void)[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private offlineGen = 0;
  private offlineTables: Tables;
  /**
   * Health checks (src/health/monitor.ts), set by `xvs run`: `enforce` brings every clone in line
   * with the checkers' results before it is installed; `configOf` gives the configuration behind
   * the live table (what is saved and what GET /v1/config shows).
   */
  health: HealthMonitor | null = null;

  /** `clock`: ms since the epoch (tests pin it). */
  constructor(
    public dataplane: Dataplane | null = null,
    private readonly sink: ConfigSink | null = null,
    readonly clock: () => number = Date.now,
  ) {
    this.offlineTables = compile(this.model, emptyRoutes(), 0);
    this.startedMs = clock();
    this.stats = new StatsBook({ service: (id) => this.serviceTraffic(id), dest: (id) => this.destTraffic(id) }, this.startedMs);
  }

  /**
   * Apply a change atomically. `change` edits a clone of the model and may throw (LbError);
   * nothing is changed then. Changes run one after another in call order.
   */
  mutate<T>(change: (m: Model) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const prev = this.model;
      const next = prev.clone();
      const result = change(next);
      this.health?.enforce(next);
      for (const s of next.services) {
        if (!SCHEDULER_BY_ID[s.schedId]) throw new LbError(ErrorCode.NotExist, "Scheduler or persistence engine not found");
      }
      this.install(next);
      try {
        this.sink?.save(this.health ? this.health.configOf(next) : next);
      } catch (e) {
        // not saved: roll back (the previous table goes out as the next generation), so that
        // the live table and the one a restart would bring back never stay different
        this.install(prev);
        throw new LbError(ErrorCode.System, `the change was not applied: saving the table failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      this.model = next;
      this.stats.sync(next);
      for (const listen of this.changeListeners) listen(prev, next);
      return result;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** The configuration: the live table plus what health checks took out of it (the table itself without checks). */
  config(): Model {
    return this.health ? this.health.configOf(this.model) : this.model;
  }

  private install(m: Model): void {
    if (this.dataplane) this.dataplane.apply(m);
    else this.offlineTables = compile(m, emptyRoutes(), ++this.offlineGen);
  }

  /**
   * Zero the counters and rates of one service and its real servers, or of everything
   * (ip_vs_zero_service / ip_vs_zero_all). @throws LbError(NotExist) "No such service".
   */
  zero(key?: ServiceKeyT): void {
    if (!key) {
      for (const s of this.model.services) this.stats.zero(s);
      return;
    }
    const s = this.model.findService(key);
    if (!s) throw new LbError(ErrorCode.NotExist, "No such service");
    this.stats.zero(s);
  }

  /** Run the rate estimator when its 2-second tick is due. */
  tickEstimator(nowMs = this.clock()): void {
    this.stats.tick(nowMs);
  }

  /** One page of connections (empty without a dataplane). */
  conns(cursor: string | undefined, limit: number) {
    const dp = this.dataplane;
    if (!dp) return { conns: [], next: null };
    const tables = dp.workers.map((w) => ({ rec: w.conns.rec, header: w.conns.header, capacity: w.conns.capacity }));
    return listConns(tables, ticksSince(dp.epochMs, this.clock()), cursor, limit);
  }

  /** Connection table size for the listing header: the workers' capacity, or the kernel's default. */
  connTableSize(): number {
    const dp = this.dataplane;
    if (!dp || dp.workers.length === 0) return DEFAULT_CONN_TAB_SIZE;
    return dp.workers.reduce((n, w) => n + w.conns.capacity, 0);
  }

  /** The generation the dataplane runs (or would run). */
  tables(): Tables {
    return this.dataplane ? this.dataplane.current() : this.offlineTables;
  }

  private sumTraffic(base: number): Traffic {
    const t: Traffic = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
    for (const w of this.dataplane?.workers ?? []) {
      const a = w.counters.traffic;
      t.conns += a[base];
      t.inpkts += a[base + 1];
      t.outpkts += a[base + 2];
      t.inbytes += a[base + 3];
      t.outbytes += a[base + 4];
    }
    return t;
  }

  /** Traffic of a service id, summed over workers. */
  serviceTraffic(id: number): Traffic {
    return this.sumTraffic(id * TS_WORDS);
  }

  /** Traffic of a dest id, summed over workers. */
  destTraffic(id: number): Traffic {
    return this.sumTraffic(DEST_TRAFFIC_BASE + id * TS_WORDS);
  }

  /**
   * ActiveConn, InActConn, PersistConn of a dest id: one count over all workers, which share it
   * (stats/counters.ts SharedCountBuffers), read from any one of them, never summed.
   */
  destConns(id: number): { active: number; inactive: number; persist: number } {
    const c = this.dataplane?.workers[0]?.counters;
    if (!c) return { active: 0, inactive: 0, persist: 0 };
    return { active: Atomics.load(c.active, id), inactive: Atomics.load(c.inactive, id), persist: Atomics.load(c.persist, id) };
  }

  /** Connections (and templates) still naming a dest or a service. */
  destRefs(id: number): number {
    const c = this.destConns(id);
    return c.active + c.inactive + c.persist;
  }

  svcRefs(id: number): number {
    let n = 0;
    for (const w of this.dataplane?.workers ?? []) n += w.counters.svcRefs[id];
    return n;
  }

  /** Verdict counters by name, summed over workers, plus the XDP program's and the shim's. */
  verdicts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < Stat.Count; i++) out[STAT_NAMES[i]] = 0;
    for (const w of this.dataplane?.workers ?? []) {
      for (let i = 0; i < Stat.Count; i++) out[STAT_NAMES[i]] += w.counters.verdicts[i];
    }
    return out;
  }

  /** Free trashed real servers nothing refers to any more (every few seconds). */
  purge(now = Date.now()): void {
    const m = this.model;
    if (m.trash.length === 0 && m.deadServiceIds.length === 0) return;
    if (
      !m.clone().purgeTrash(
        now,
        (id) => this.destRefs(id),
        (id) => this.svcRefs(id),
      )
    )
      return;
    void this.mutate((next) =>
      next.purgeTrash(
        now,
        (id) => this.destRefs(id),
        (id) => this.svcRefs(id),
      ),
    );
  }
}
