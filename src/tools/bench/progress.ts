/**
 * The time a bench run has left, estimated from the steps it has finished: a run is a plan of
 * steps (a contender in a round, the profiled run, the microbenchmarks) known in advance. A step
 * not done yet is expected to take what the finished steps of its kind (same key: the same
 * contender with the same workloads) took on average; a kind not seen yet takes its guess when
 * the plan gives one, else the mean of all finished steps. Nothing finished and no guess: unknown.
 */

export interface PlannedStep {
  /** Steps with the same key are expected to take the same time. */
  key: string;
  /** Expected seconds before any step of this key has finished. */
  guess?: number;
}

export class ProgressEstimator {
  private readonly took: (number | null)[];
  private running: { i: number; since: number } | null = null;

  constructor(readonly plan: PlannedStep[]) {
    this.took = plan.map(() => null);
  }

  /** Step `i` of the plan took `seconds`. */
  finish(i: number, seconds: number): void {
    this.took[i] = seconds;
  }

  /**
   * Steps run one after the other: step `i` starts at `nowMs` (a clock in milliseconds), which
   * ends the step that was running, if any.
   */
  start(i: number, nowMs: number): void {
    this.stop(nowMs);
    this.running = { i, since: nowMs };
  }

  /** The running step ends at `nowMs`. */
  stop(nowMs: number): void {
    if (this.running) this.finish(this.running.i, (nowMs - this.running.since) / 1000);
    this.running = null;
  }

  /** Expected seconds of the steps from `from` on that have not finished; null when unknown. */
  secondsLeft(from: number): number | null {
    const byKey = new Map<string, { sum: number; n: number }>();
    let sum = 0,
      n = 0;
    this.took.forEach((t, i) => {
      if (t === null) return;
      const k = byKey.get(this.plan[i].key) ?? { sum: 0, n: 0 };
      k.sum += t;
      k.n++;
      byKey.set(this.plan[i].key, k);
      sum += t;
      n++;
    });
    let left = 0;
    for (let i = from; i < this.plan.length; i++) {
      if (this.took[i] !== null) continue;
      const k = byKey.get(this.plan[i].key);
      if (k) left += k.sum / k.n;
      else if (this.plan[i].guess !== undefined) left += this.plan[i].guess!;
      else if (n > 0) left += sum / n;
      else return null;
    }
    return left;
  }
}

/** "45s", "3m10s", "1h02m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The progress line's estimate: "3m10s left (est.)", or that there is none yet. */
export function leftText(seconds: number | null): string {
  return seconds === null ? "time left not known yet" : `${formatDuration(seconds)} left (est.)`;
}
