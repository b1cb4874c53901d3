/**
 * The daemon's state: the model, the dataplane that runs it, and the views the API serves.
 * Every change goes through `mutate`: one at a time (a promise chain), on a clone of the model,
 * committed only when the new generation compiled and reached the workers. A failed change
 * leaves model, dataplane and saved configuration exactly as they were.
 */
import { ErrorCode, LbError } from "../errors.ts";
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import { compile, emptyRoutes } from "../service/compile.ts";
import { Model } from "../service/model.ts";
import type { Tables } from "../service/tables.ts";
import { DEST_TRAFFIC_BASE, TS_WORDS } from "../stats/counters.ts";
import type { Dataplane } from "../dataplane/dataplane.ts";
import { Stat, STAT_NAMES } from "../dataplane/verdict.ts";

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

export class Daemon {
  model = new Model();
  private chain: Promise<unknown> = Promise.resolve();
  private offlineGen = 0;
  private offlineTables: Tables;

  constructor(public dataplane: Dataplane | null = null, private readonly sink: ConfigSink | null = null) {
    this.offlineTables = compile(this.model, emptyRoutes(), 0);
  }

  /**
   * Apply a change atomically. `change` edits a clone of the model and may throw (LbError);
   * nothing is changed then. Changes run one after another in call order.
   */
  mutate<T>(change: (m: Model) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const next = this.model.clone();
      const result = change(next);
      for (const s of next.services) {
        if (!SCHEDULER_BY_ID[s.schedId]) throw new LbError(ErrorCode.NotExist, "Scheduler or persistence engine not found");
      }
      if (this.dataplane) this.dataplane.apply(next);
      else this.offlineTables = compile(next, emptyRoutes(), ++this.offlineGen);
      this.model = next;
      this.sink?.save(next);
      return result;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
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

  /** ActiveConn, InActConn, PersistConn of a dest id. */
  destConns(id: number): { active: number; inactive: number; persist: number } {
    let active = 0, inactive = 0, persist = 0;
    for (const w of this.dataplane?.workers ?? []) {
      active += w.counters.active[id];
      inactive += w.counters.inactive[id];
      persist += w.counters.persist[id];
    }
    return { active, inactive, persist };
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
    if (!m.clone().purgeTrash(now, (id) => this.destRefs(id), (id) => this.svcRefs(id))) return;
    void this.mutate((next) => next.purgeTrash(now, (id) => this.destRefs(id), (id) => this.svcRefs(id)));
  }
}
