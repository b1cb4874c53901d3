/**
 * The state of one checker and what a result does to it, as keepalived's checkers do (the
 * retry_it counter of check_tcp.c and its siblings): a success brings the checker up at once; a
 * failure of a checker that is up (or has not run yet) is retried `retry` times,
 * `delay_before_retry` apart, before the checker goes down; a failure of a checker that is down
 * changes nothing. Pure functions of plain data, so the unit tests need no clock.
 */
import type { CheckResult } from "./checkers.ts";

export interface CheckerState {
  up: boolean;
  /** At least one attempt finished. */
  hasRun: boolean;
  /** Retries used since the last success (keepalived retry_it). */
  retryIt: number;
  last: CheckResult | null;
  /** Weight set by a misc_dynamic script (exit 2..255); undefined: the configured weight. */
  weight: number | undefined;
}

export function initialChecker(up: boolean): CheckerState {
  return { up, hasRun: false, retryIt: 0, last: null, weight: undefined };
}

/**
 * Apply one result. Returns the delay until the next attempt, seconds (a retry or the next
 * loop), and whether the checker changed state (up <-> down) or weight.
 */
export function applyResult(
  s: CheckerState,
  r: CheckResult,
  retry: number,
  delayBeforeRetrySec: number,
  delayLoopSec: number,
): { nextSec: number; changed: boolean } {
  s.last = r;
  if (r.ok) {
    const changed = !s.up || s.weight !== r.weight;
    s.up = true;
    s.hasRun = true;
    s.retryIt = 0;
    s.weight = r.weight;
    return { nextSec: delayLoopSec, changed };
  }
  if ((s.up || !s.hasRun) && s.retryIt < retry) {
    s.retryIt++;
    return { nextSec: delayBeforeRetrySec, changed: false };
  }
  const changed = s.up;
  s.up = false;
  s.hasRun = true;
  s.retryIt = 0;
  return { nextSec: delayLoopSec, changed };
}

/** A real server is up only while every one of its checkers is up (keepalived's failed_checkers count). */
export function destUp(checkers: readonly CheckerState[]): boolean {
  return checkers.every((c) => c.up);
}

/** The weight a live real server gets: the last misc_dynamic weight if a script set one, else the configured one. */
export function destWeight(checkers: readonly CheckerState[], configured: number): number {
  let w = configured;
  for (const c of checkers) if (c.weight !== undefined) w = c.weight;
  return w;
}

/**
 * keepalived's quorum with hysteresis (ipwrapper.c update_quorum_state): the quorum is lost when
 * the live weight falls below quorum - hysteresis, and regained at quorum + hysteresis.
 */
export function quorumAfter(quorumUp: boolean, liveWeight: number, quorum: number, hysteresis: number): boolean {
  if (quorumUp && liveWeight < quorum - hysteresis) return false;
  if (!quorumUp && liveWeight >= quorum + hysteresis) return true;
  return quorumUp;
}
