/**
 * One lock per virtual service, shared by every worker (a word of Counters.svcLock): it makes
 * "choose a dest, then count the connection on it" one step over all workers, so that rr and
 * wrr advance one position per service, lc/wlc/sed/nq see every worker's connections, and a
 * real server with an upper threshold (`-x u`) never holds more than u connections in total.
 * In IPVS the schedulers run under a per-service spinlock too where they keep state (rr's
 * sched_lock, wrr's), and ip_vs_bind_dest counts with atomics; here the lock also covers the
 * count, since a worker may otherwise schedule against a count another worker is about to
 * raise.
 *
 * Lock word: 0 free, 1 held, 2 held and someone may sleep on it (Drepper's "Futexes are
 * tricky", mutex 2). The uncontended path is one compareExchange to take and one exchange to
 * give back. A waiter spins a bounded number of times (the critical section is a scheduler
 * call, well under a microsecond), then sleeps on the word with Atomics.wait for at most
 * WAIT_MS (the holder may have been preempted: this machine runs more threads than cores),
 * and the releaser notifies only when the word says someone may sleep. Nothing here allocates
 * (Atomics.wait returns interned strings), so it may run per packet.
 *
 * Rule: a worker holds at most one service's lock at a time and never calls anything that
 * might take another (or the same) lock while holding it.
 */
import { SL_LOCK, SL_WORDS } from "./counters.ts";

/** Spins before a waiter sleeps. */
const SPINS = 200;
/** Longest sleep before a waiter looks again, ms. */
const WAIT_MS = 1;

/** Take service `svc`'s lock. */
export function lockService(lock: Int32Array, svc: number): void {
  const i = svc * SL_WORDS + SL_LOCK;
  if (Atomics.compareExchange(lock, i, 0, 1) !== 0) lockContended(lock, i);
}

function lockContended(lock: Int32Array, i: number): void {
  for (let n = 0; n < SPINS; n++) {
    if (Atomics.load(lock, i) === 0 && Atomics.compareExchange(lock, i, 0, 1) === 0) return;
  }
  // mark the word "may have sleepers" (2) and sleep until it was free when we marked it
  let c = Atomics.exchange(lock, i, 2);
  while (c !== 0) {
    Atomics.wait(lock, i, 2, WAIT_MS);
    c = Atomics.exchange(lock, i, 2);
  }
}

/** Give back service `svc`'s lock (held by the caller). */
export function unlockService(lock: Int32Array, svc: number): void {
  const i = svc * SL_WORDS + SL_LOCK;
  if (Atomics.exchange(lock, i, 0) === 2) Atomics.notify(lock, i, 1);
}
