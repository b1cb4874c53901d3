/**
 * One scheduler state per service over all workers, as IPVS has one per service over all CPUs.
 *
 * What is shared (stats/counters.ts SharedCountBuffers, allocated once by the dataplane and
 * handed to every worker in its init message): the per-service state words (`SchedView.state`:
 * rr's position, wrr's cycle...), the per-dest connection counts and OVERLOAD flags, and one
 * cache line per service holding its lock word and the generation whose scheduler transition
 * was last applied.
 *
 * Why a lock, and where: a new connection's "choose a dest" and "count it on that dest" must be
 * one step over all workers, or two workers may both pick the rr position's next dest, or both
 * see a dest one below its threshold and both add one. The fast path (dataplane/schedule.ts)
 * therefore takes the service's lock (stats/svc-lock.ts) around schedule + bindDest only; the
 * record's allocation and the packet's transmission happen after it is released (a failed
 * allocation gives the count back). Everything else a connection does to the counts
 * (state changes, expiry) is a single atomic add/sub without the lock. Measured cost: see
 * docs/architecture.md "Several queues" (bench/sched-lock.ts).
 *
 * Alternatives weighed: per-worker state with a global "sum of counts" read per decision would
 * still let two workers pass the same threshold at once (not exact); handing every new
 * connection to one scheduling worker costs a cross-thread round trip per SYN; a lock-free
 * compare-and-swap per scheduler would need each of the 16 schedulers rewritten around a single
 * word, and a threshold check-and-count spans two words (the position and the dest's count).
 *
 * Generations: every worker switches to each new Tables generation on its own. The scheduler's
 * transition for a service (init for a new or re-scheduled service, update for a changed one,
 * thresholds re-evaluated) must run once per generation, not once per worker, since the state
 * is shared: the first worker to reach generation G for service s applies it under s's lock
 * and records G in the applied word; the others see it and skip it.
 *
 * lblc/lblcr's address caches are shared too: they live in the locality pool (sched/locality.ts),
 * carved out by the scheduler's init and used under the service's lock; only when the pool is
 * full does a service fall back to per-worker caches.
 */
import { thresholdsChanged } from "../conn/accounting.ts";
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import type { SchedView } from "../sched/scheduler.ts";
import { MAX_SERVICES, SVC_EPOCH, SVC_FLAGS, SVC_SCHED, SVC_SCHED_EPOCH, SVC_WORDS, SVCF_USED, type Tables } from "../service/tables.ts";
import { type Counters, SL_APPLIED, SL_WORDS } from "../stats/counters.ts";
import { lockService, unlockService } from "../stats/svc-lock.ts";

/** A worker's view of the shared scheduler state over `counters` (shared by the dataplane's workers). */
export function sharedSchedView(tables: Tables, counters: Counters): SchedView {
  return {
    t: tables,
    active: counters.active,
    inactive: counters.inactive,
    persist: counters.persist,
    overload: counters.overload,
    state: counters.schedState,
    random: () => (Math.random() * 0x7fffffff) | 0,
    locality: { pool: counters.buffers.locality, lines: counters.svcLock },
  };
}

/**
 * A worker starts on `t`: a service no worker has started yet gets its scheduler's init; one
 * that another worker already runs keeps its shared state.
 */
export function startServices(v: SchedView, c: Counters, t: Tables): void {
  const lock = c.svcLock;
  for (let s = 0; s < MAX_SERVICES; s++) {
    if ((t.svc[s * SVC_WORDS + SVC_FLAGS] & SVCF_USED) === 0) continue;
    const sched = SCHEDULER_BY_ID[t.svc[s * SVC_WORDS + SVC_SCHED]];
    if (!sched) continue;
    lockService(lock, s);
    if (lock[s * SL_WORDS + SL_APPLIED] === 0) {
      sched.init(v, s);
      lock[s * SL_WORDS + SL_APPLIED] = t.generation + 1;
    }
    unlockService(lock, s);
  }
}

/**
 * Switch the view from `prev` to `next` (FastPath.setTables). Scheduler state follows the
 * kernel: a new or re-scheduled service starts fresh (init_service), a service whose dests or
 * weights changed gets update (add_dest/del_dest/upd_dest), and dests whose thresholds changed
 * re-evaluate OVERLOAD; each once per service and generation over all workers. The per-worker
 * caches (aux) follow on every worker.
 */
export function applyTables(v: SchedView, c: Counters, prev: Tables, next: Tables): void {
  const lock = c.svcLock;
  const gen = next.generation + 1;
  v.t = next;
  for (let s = 0; s < MAX_SERVICES; s++) {
    const o = s * SVC_WORDS;
    const used = (next.svc[o + SVC_FLAGS] & SVCF_USED) !== 0;
    const wasUsed = (prev.svc[o + SVC_FLAGS] & SVCF_USED) !== 0;
    if (!used) {
      // a deleted service lets go of its scheduler's own tables (lblc/lblcr caches)
      if (v.aux !== undefined) v.aux[s] = undefined;
      continue;
    }
    const restart = !wasUsed || prev.svc[o + SVC_SCHED_EPOCH] !== next.svc[o + SVC_SCHED_EPOCH];
    const changed = prev.svc[o + SVC_EPOCH] !== next.svc[o + SVC_EPOCH];
    if (!restart && !changed) continue;
    const sched = SCHEDULER_BY_ID[next.svc[o + SVC_SCHED]];
    lockService(lock, s);
    if (lock[s * SL_WORDS + SL_APPLIED] < gen) {
      if (sched && restart) sched.init(v, s);
      else if (sched) sched.update(v, s, prev);
      thresholdsChanged(c, prev, next, s);
      lock[s * SL_WORDS + SL_APPLIED] = gen;
    } else if (restart && v.aux !== undefined) {
      // another worker ran init: this worker's own cache starts afresh too (made again on first use)
      v.aux[s] = undefined;
    }
    unlockService(lock, s);
  }
}
