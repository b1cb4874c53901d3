/**
 * The health monitor: runs every real server's checkers on the main thread and keeps the live
 * table in line with their results, as keepalived's checker process keeps IPVS.
 *
 * The model the daemon holds is the live table (what IPVS would hold): a real server that fails
 * is deleted from it (its connections stay in the table, their packets dropped as IPVS drops
 * them, until it comes back with the same id) or, with inhibit_on_failure, set to weight 0 (its
 * connections go on); the sorry server is a real dest while the
 * quorum is lost. The configuration is that table plus what the monitor keeps (`configOf`): the
 * removed real servers, the configured weights of inhibited ones, without the sorry server. That
 * configuration is what is saved and what GET /v1/config shows, so a restart or a reload starts
 * from the configuration, never from a table trimmed by failures.
 *
 * Every table change goes through Daemon.mutate: `enforce` runs inside each mutation, on the
 * clone about to be installed, so a user change and the health state are applied together and
 * atomically; a state change only asks for a (coalesced) mutation.
 *
 * Scheduling: each checker runs every delay_loop seconds from the end of its previous attempt,
 * its first attempt at a random phase (within the first second, plus a random part of warmup)
 * so that checks spread over time; at most `maxInFlight` attempts run at once, the others wait
 * in order; each attempt ends within its timeout (checkers.ts).
 */
import { ipText, parseIp } from "../service/addr.ts";
import { serviceName, type Model, type Service } from "../config/model.ts";
import type { DestSpecT, ServiceKeyT } from "../config/spec.ts";
import { log } from "../log.ts";
import { killRunningScripts, runCheck, type CheckResult } from "./checkers.ts";
import { attemptTimeoutSec, delayBeforeRetrySec, delayLoopSec, type CheckerT, type ServiceHealthT } from "../config/health.ts";
import { applyResult, destUp, destWeight, initialChecker, quorumAfter, type CheckerState } from "./state.ts";

/** Attempts running at once, all real servers together. */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** The first attempt of a checker comes at a random time within this many ms (spreads a start or reload). */
export const FIRST_CHECK_SPREAD_MS = 1000;

/** What the monitor needs from the daemon: its one way to change the table. */
export interface TableMutator {
  mutate<T>(change: (m: Model) => T): Promise<T>;
}

/** Clock, timers, randomness and the checker itself: real ones by default, fakes in unit tests. */
export interface HealthDeps {
  run: (c: CheckerT, t: { address: string; port: number }, timeoutMs: number) => Promise<CheckResult>;
  now: () => number;
  setTimer: (fn: () => void, ms: number) => unknown;
  clearTimer: (t: unknown) => void;
  random: () => number;
  maxInFlight: number;
}

const realDeps: HealthDeps = {
  run: runCheck,
  now: Date.now,
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
  random: Math.random,
  maxInFlight: DEFAULT_MAX_IN_FLIGHT,
};

/** Health of one real server as GET /v1/services shows it. */
export interface DestHealthView {
  state: "up" | "down";
  last_result: "success" | "failure" | null;
  /** ISO time of the last up/down change; null: none since it was configured. */
  last_change: string | null;
  reason: string;
}

interface Entry {
  key: string;
  svcKey: string;
  svcId: number;
  service: string;
  address: string;
  port: number;
  /** The configured spec (weight as configured, not as applied). */
  spec: DestSpecT & { port: number };
  checkers: CheckerT[];
  states: CheckerState[];
  timers: unknown[];
  health: ServiceHealthT | undefined;
  up: boolean;
  /** Weight in effect while up (configured, or set by misc_dynamic). */
  weight: number;
  lastChange: number | null;
  reason: string;
  lastResult: "success" | "failure" | null;
  /** Deleted from the table by the monitor (kept here so that the configuration keeps it). */
  parked: boolean;
  /** The weight the monitor last put in the table; null while parked. */
  appliedWeight: number | null;
  /** Bumped to cancel the attempts of an older configuration. */
  gen: number;
  /** Attempts that ended, all checkers together: passed, failed (GET /metrics). */
  checksOk: number;
  checksFailed: number;
}

interface ServiceState {
  quorumUp: boolean;
  /** The sorry server the monitor put in the table, if any. */
  sorry: { address: string; port: number } | null;
}

function entryKey(svcKey: string, address: string, port: number): string {
  return `${svcKey}|${address}|${port}`;
}

function canonical(address: string): string {
  const a = parseIp(address);
  return a ? ipText(a) : address;
}

function findDest(s: Service, address: string, port: number) {
  return s.dests.find((d) => d.port === port && ipText(d.addr) === address);
}

export class HealthMonitor {
  private readonly entries = new Map<string, Entry>();
  private readonly services = new Map<string, ServiceState>();
  private readonly deps: HealthDeps;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private applying = false;
  private applyAgain = false;
  private stopped = false;

  constructor(
    private readonly table: TableMutator,
    deps: Partial<HealthDeps> = {},
  ) {
    this.deps = { ...realDeps, ...deps };
  }

  /** Real servers with checkers (for tests and the bench). */
  get size(): number {
    return this.entries.size;
  }

  /** Attempts running now. */
  get running(): number {
    return this.inFlight;
  }

  /** Stop every checker (daemon shutdown): no new attempt; scripts still running are killed, other attempts end at their timeout and are ignored. */
  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) this.cancel(e);
    killRunningScripts();
  }

  // ---- the table: enforce inside each mutation, configuration for saving ----

  /**
   * Bring `next` (the clone a mutation is about to install) in line with the health state:
   * learn new and changed real servers from it, drop those the user deleted, then remove /
   * inhibit / restore real servers and add or remove sorry servers. Idempotent.
   */
  enforce(next: Model): void {
    const now = this.deps.now();
    const bySvc = new Map<string, Entry[]>();
    const seen = new Set<string>();
    for (const s of next.services) {
      const h = s.spec.health;
      const st = this.services.get(s.key);
      const list: Entry[] = [];
      bySvc.set(s.key, list);
      for (const d of s.dests) {
        const address = ipText(d.addr);
        if (st?.sorry && st.sorry.address === address && st.sorry.port === d.port) continue;
        const key = entryKey(s.key, address, d.port);
        let e = this.entries.get(key);
        const checkers = d.spec.checkers ?? [];
        if (checkers.length === 0) {
          if (e) this.drop(e);
          continue;
        }
        seen.add(key);
        if (!e) {
          e = this.create(s, key, address, d.spec, checkers, h);
        } else {
          // a weight other than the one the monitor applied is the user's; otherwise the configured one stays
          const userWeight = e.parked || d.spec.weight !== e.appliedWeight;
          e.spec = { ...structuredClone(d.spec), weight: userWeight ? d.spec.weight : e.spec.weight };
          e.parked = false;
          e.appliedWeight = d.spec.weight;
          e.svcId = s.id;
          e.health = h;
          if (JSON.stringify(checkers) !== JSON.stringify(e.checkers)) this.restart(e, checkers);
          e.weight = destWeight(e.states, e.spec.weight);
        }
        list.push(e);
      }
    }
    for (const e of [...this.entries.values()]) {
      if (seen.has(e.key)) continue;
      const s = next.services.find((x) => x.key === e.svcKey);
      if (e.parked && s && s.id === e.svcId) {
        e.health = s.spec.health;
        bySvc.get(s.key)!.push(e);
      } else {
        this.drop(e);
      }
    }
    for (const s of next.services) this.enforceService(next, s, bySvc.get(s.key)!, now);
    for (const k of [...this.services.keys()]) if (!bySvc.has(k)) this.services.delete(k);
  }

  private enforceService(next: Model, s: Service, list: Entry[], now: number): void {
    const h = s.spec.health;
    let st = this.services.get(s.key);
    if (!st) {
      st = { quorumUp: true, sorry: null };
      this.services.set(s.key, st);
    }
    if (h) {
      // keepalived counts every live real server: checked ones that are up, and unchecked ones
      let live = 0;
      for (const e of list) if (e.up) live += e.weight;
      for (const d of s.dests) {
        const a = ipText(d.addr);
        if (!this.entries.has(entryKey(s.key, a, d.port)) && !(st.sorry && st.sorry.address === a && st.sorry.port === d.port)) live += d.spec.weight;
      }
      const q = quorumAfter(st.quorumUp, live, h.quorum, h.hysteresis);
      if (q !== st.quorumUp) {
        log(q ? "info" : "warn", q ? "quorum regained" : "quorum lost", {
          service: serviceName(s),
          liveWeight: live,
          quorum: h.quorum,
          hysteresis: h.hysteresis,
          ...(h.sorry_server ? { sorryServer: q ? "removed" : "added" } : {}),
        });
        st.quorumUp = q;
      }
    } else {
      st.quorumUp = true;
    }
    const sorryOn = !!h?.sorry_server && !st.quorumUp;
    for (const e of list) {
      const inhibit = e.spec.inhibit_on_failure === true;
      // below quorum with a sorry server, keepalived takes the live real servers out too
      const want = e.up && !sorryOn ? e.weight : inhibit ? 0 : null;
      this.applyEntry(next, s, e, want, now);
    }
    this.applySorry(next, s, st, sorryOn, list[0]?.spec.forward ?? s.dests[0]?.spec.forward ?? "route", now);
  }

  private applyEntry(next: Model, s: Service, e: Entry, want: number | null, now: number): void {
    const present = findDest(s, e.address, e.port);
    if (want === null) {
      if (present) next.deleteDest(s.spec, e.address, e.port, now);
      e.parked = true;
      e.appliedWeight = null;
      return;
    }
    if (!present) next.addDest(s.spec, { ...structuredClone(e.spec), weight: want });
    else if (present.spec.weight !== want) next.editDest(s.spec, { ...structuredClone(present.spec), weight: want });
    e.parked = false;
    e.appliedWeight = want;
  }

  /** `forward`: the sorry server's default forwarding method, its service's real servers' (keepalived: the lb_kind). */
  private applySorry(next: Model, s: Service, st: ServiceState, on: boolean, defaultForward: DestSpecT["forward"], now: number): void {
    const ss = s.spec.health?.sorry_server;
    const want = ss ? { address: canonical(ss.address), port: ss.port ?? s.port } : null;
    // a sorry server that is no longer the configured one leaves
    if (st.sorry && (!want || want.address !== st.sorry.address || want.port !== st.sorry.port)) {
      if (findDest(s, st.sorry.address, st.sorry.port)) next.deleteDest(s.spec, st.sorry.address, st.sorry.port, now);
      st.sorry = null;
    }
    if (!want || !ss) return;
    const present = findDest(s, want.address, want.port);
    if (on) {
      if (!present) {
        next.addDest(s.spec, {
          address: want.address,
          port: want.port,
          forward: ss.forward ?? defaultForward,
          weight: 1,
          upperThreshold: 0,
          lowerThreshold: 0,
        });
      } else if (present.spec.weight === 0) {
        next.editDest(s.spec, { ...structuredClone(present.spec), weight: 1 });
      }
      st.sorry = want;
    } else if (st.sorry && present) {
      if (ss.inhibit) {
        if (present.spec.weight !== 0) next.editDest(s.spec, { ...structuredClone(present.spec), weight: 0 });
      } else {
        next.deleteDest(s.spec, want.address, want.port, now);
        st.sorry = null;
      }
    }
  }

  /** The configuration behind the live table `m`: removed real servers back, configured weights, no sorry server. */
  configOf(m: Model): Model {
    if (this.entries.size === 0 && ![...this.services.values()].some((s) => s.sorry)) return m;
    const c = m.clone();
    for (const s of c.services) {
      const st = this.services.get(s.key);
      if (st?.sorry && findDest(s, st.sorry.address, st.sorry.port)) c.deleteDest(s.spec, st.sorry.address, st.sorry.port);
    }
    for (const e of this.entries.values()) {
      const s = c.services.find((x) => x.key === e.svcKey);
      if (!s) continue;
      const present = findDest(s, e.address, e.port);
      try {
        if (!present) c.addDest(s.spec, structuredClone(e.spec));
        else if (present.spec.weight !== e.spec.weight) c.editDest(s.spec, { ...structuredClone(present.spec), weight: e.spec.weight });
      } catch (err) {
        log("error", "health: cannot put a real server back into the saved configuration", { server: e.key, error: String(err) });
      }
    }
    return c;
  }

  /**
   * Forget a real server the checks took out (DELETE of it, ipvsadm -d): it is only in the
   * configuration, so deleting it from the table means dropping it here. Returns false when the
   * monitor does not hold it out of `m` (then it is the table's to delete).
   */
  forget(m: Model, key: ServiceKeyT, address: string, port: number | undefined): boolean {
    const s = m.findService(key);
    if (!s) return false;
    const e = this.entries.get(entryKey(s.key, canonical(address), port ?? s.port));
    if (!e?.parked || findDest(s, e.address, e.port)) return false;
    this.drop(e);
    log("info", "real server deleted while its checks held it out", { service: e.service, server: `${e.address}:${e.port}` });
    return true;
  }

  // ---- views ----

  /** Health of a real server of the table, or undefined when it has no checkers. */
  destHealth(s: Service, address: string, port: number): DestHealthView | undefined {
    const e = this.entries.get(entryKey(s.key, address, port));
    return e ? this.view(e) : undefined;
  }

  /** Health of a service: quorum and the real servers the monitor removed (with their configured spec). */
  serviceHealth(
    s: Service,
  ): { quorum: "up" | "down"; sorry_server_active: boolean; removed: { address: string; port: number; weight: number; health: DestHealthView }[] } | undefined {
    const st = this.services.get(s.key);
    const removed = [...this.entries.values()]
      .filter((e) => e.svcKey === s.key && e.parked)
      .map((e) => ({ address: e.address, port: e.port, weight: e.spec.weight, health: this.view(e) }));
    if (!s.spec.health && removed.length === 0) return undefined;
    return { quorum: st?.quorumUp === false ? "down" : "up", sorry_server_active: !!st?.sorry && st.quorumUp === false, removed };
  }

  /** Check attempts of a real server (in the table or removed by its checks) that passed and failed, since it got checkers. */
  checkCounts(s: Service, address: string, port: number): { ok: number; fail: number } | undefined {
    const e = this.entries.get(entryKey(s.key, address, port));
    return e ? { ok: e.checksOk, fail: e.checksFailed } : undefined;
  }

  private view(e: Entry): DestHealthView {
    return {
      state: e.up ? "up" : "down",
      last_result: e.lastResult,
      last_change: e.lastChange === null ? null : new Date(e.lastChange).toISOString(),
      reason: e.reason,
    };
  }

  // ---- checkers ----

  private create(s: Service, key: string, address: string, spec: DestSpecT & { port: number }, checkers: CheckerT[], h: ServiceHealthT | undefined): Entry {
    const alpha = h?.alpha === true;
    const e: Entry = {
      key,
      svcKey: s.key,
      svcId: s.id,
      service: serviceName(s),
      address,
      port: spec.port,
      spec: structuredClone(spec),
      checkers: [],
      states: [],
      timers: [],
      health: h,
      up: !alpha,
      weight: spec.weight,
      lastChange: null,
      reason: alpha ? "alpha: down until a check passes" : "not checked yet",
      lastResult: null,
      parked: false,
      appliedWeight: spec.weight,
      gen: 0,
      checksOk: 0,
      checksFailed: 0,
    };
    this.entries.set(key, e);
    this.restart(e, checkers);
    return e;
  }

  /** (Re)start the checkers of an entry; the real server keeps its up/down state. */
  private restart(e: Entry, checkers: CheckerT[]): void {
    this.cancel(e);
    e.checkers = structuredClone(checkers);
    e.states = checkers.map(() => initialChecker(e.up));
    if (this.stopped) return;
    const gen = e.gen;
    e.checkers.forEach((c, i) => {
      const warmupMs = (c.warmup ?? 0) * 1000;
      const loopMs = delayLoopSec(c, e.health) * 1000;
      const first = this.deps.random() * Math.min(FIRST_CHECK_SPREAD_MS, loopMs) + this.deps.random() * warmupMs;
      this.schedule(e, i, gen, first);
    });
  }

  private cancel(e: Entry): void {
    e.gen++;
    for (const t of e.timers) if (t !== undefined) this.deps.clearTimer(t);
    e.timers = [];
  }

  private drop(e: Entry): void {
    this.cancel(e);
    this.entries.delete(e.key);
  }

  private schedule(e: Entry, i: number, gen: number, ms: number): void {
    e.timers[i] = this.deps.setTimer(() => void this.attempt(e, i, gen), ms);
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < this.deps.maxInFlight) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes to the next waiter
    else this.inFlight--;
  }

  private async attempt(e: Entry, i: number, gen: number): Promise<void> {
    if (e.gen !== gen || this.stopped) return;
    e.timers[i] = undefined;
    await this.acquire();
    let r: CheckResult;
    const c = e.checkers[i];
    try {
      if (e.gen !== gen || this.stopped) return;
      r = await this.deps.run(c, { address: e.address, port: e.port }, attemptTimeoutSec(c, e.health) * 1000);
    } finally {
      this.release();
    }
    if (e.gen !== gen || this.stopped) return;
    const s = e.states[i];
    const { nextSec, changed } = applyResult(s, r, c.retry, delayBeforeRetrySec(c, e.health), delayLoopSec(c, e.health));
    e.lastResult = r.ok ? "success" : "failure";
    if (r.ok) e.checksOk++;
    else e.checksFailed++;
    if (changed) this.evaluate(e, c, r);
    else if (e.up && e.states.every((x) => x.hasRun && x.up)) e.reason = "all checkers pass";
    this.schedule(e, i, gen, nextSec * 1000);
  }

  /** A checker changed: recompute the real server's state and weight; log and apply a change. */
  private evaluate(e: Entry, c: CheckerT, r: CheckResult): void {
    const up = destUp(e.states);
    const weight = destWeight(e.states, e.spec.weight);
    const server = `${e.address.includes(":") ? `[${e.address}]` : e.address}:${e.port}`;
    if (up !== e.up) {
      e.up = up;
      e.lastChange = this.deps.now();
      const failing = e.states.findIndex((x) => !x.up);
      e.reason = up ? "all checkers pass" : `${e.checkers[failing].kind}: ${e.states[failing].last?.reason ?? r.reason}`;
      const inhibit = e.spec.inhibit_on_failure === true;
      if (up) log("info", "real server up", { service: e.service, server, checker: c.kind, weight, action: "restored" });
      else log("warn", "real server down", { service: e.service, server, checker: c.kind, reason: e.reason, action: inhibit ? "weight 0" : "removed" });
    } else if (weight !== e.weight) {
      log("info", "real server weight set by its check script", { service: e.service, server, weight, previous: e.weight });
    } else {
      return;
    }
    e.weight = weight;
    this.requestApply();
  }

  /** Ask for one mutation that applies the current state; requests during one coalesce into the next. */
  private requestApply(): void {
    if (this.applying) {
      this.applyAgain = true;
      return;
    }
    this.applying = true;
    this.table
      .mutate(() => undefined)
      .catch((err: unknown) => {
        log("error", "health: applying a state change failed; retried with the next change", { error: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => {
        this.applying = false;
        if (this.applyAgain && !this.stopped) {
          this.applyAgain = false;
          this.requestApply();
        }
      });
  }
}
