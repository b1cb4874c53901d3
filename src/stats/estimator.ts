/**
 * The kernel's rate estimator (net/netfilter/ipvs/ip_vs_est.c), for one stats object: every
 * 2 seconds the counter deltas are scaled (<< 9 for connections and packets, << 4 for bytes, so
 * the average keeps 10 resp. 5 fraction bits per second), and folded into an EWMA with weight
 * 1/4: `avg += (rate - avg) >> 2`. Readers get `(avg + 0x1FF) >> 10` (cps, pps) and
 * `(avg + 0xF) >> 5` (bytes per second), as ip_vs_read_estimator does.
 *
 * A constant 100 connections per second therefore reads 25, 44, 58, 68, ... after successive
 * ticks. Zeroing (ip_vs_zero_estimator) takes the current counters as the new starting point
 * and clears the averages.
 *
 * The maths runs on BigInt: byte counters reach 2^53 and `delta << 4` would lose bits as a
 * double. This is the control thread's 2-second tick, never the packet path.
 */

/** Period of the estimator, ms (ip_vs_est.c: 2 * HZ). */
export const ESTIMATOR_PERIOD_MS = 2000;

/** Counter values the estimator samples (IPVS struct ip_vs_kstats order). */
export interface CounterSample {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

/** Rates as `ipvsadm --rate` shows them: per second, bytes (not bits) for bps. */
export interface Rates {
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

const KEYS = ["conns", "inpkts", "outpkts", "inbytes", "outbytes"] as const;
/** Shift applied to each delta: 9 for conns/pkts (2 s -> per second << 10), 4 for bytes (<< 5). */
const SHIFT = [9n, 9n, 9n, 4n, 4n];

/** The estimator of one stats object (a service or a real server). */
export class RateEstimator {
  private readonly last: bigint[] = [0n, 0n, 0n, 0n, 0n];
  private readonly avg: bigint[] = [0n, 0n, 0n, 0n, 0n];

  constructor(start: CounterSample) {
    this.reset(start);
  }

  /** Start over from `current` with all rates 0 (ip_vs_zero_estimator). */
  reset(current: CounterSample): void {
    for (let i = 0; i < 5; i++) {
      this.last[i] = BigInt(current[KEYS[i]]);
      this.avg[i] = 0n;
    }
  }

  /** Fold one 2-second interval ending at `current` into the averages (estimation_timer). */
  update(current: CounterSample): void {
    for (let i = 0; i < 5; i++) {
      const now = BigInt(current[KEYS[i]]);
      const rate = (now - this.last[i]) << SHIFT[i];
      this.last[i] = now;
      this.avg[i] += (rate - this.avg[i]) >> 2n;
    }
  }

  /** Return the rates as the kernel reports them (rounded, never negative). */
  rates(): Rates {
    const pps = (v: bigint) => Number(v + 0x1ffn > 0n ? (v + 0x1ffn) >> 10n : 0n);
    const bps = (v: bigint) => Number(v + 0xfn > 0n ? (v + 0xfn) >> 5n : 0n);
    return { cps: pps(this.avg[0]), inpps: pps(this.avg[1]), outpps: pps(this.avg[2]), inbps: bps(this.avg[3]), outbps: bps(this.avg[4]) };
  }

  /** Set the averages so that `rates()` reads `r` (restoring a known state; tests). */
  setRates(r: Rates): void {
    this.avg[0] = BigInt(r.cps) << 10n;
    this.avg[1] = BigInt(r.inpps) << 10n;
    this.avg[2] = BigInt(r.outpps) << 10n;
    this.avg[3] = BigInt(r.inbps) << 5n;
    this.avg[4] = BigInt(r.outbps) << 5n;
  }
}

/**
 * Decides when estimator ticks are due on a clock the caller passes in: one tick per elapsed
 * period, like the kernel's timer that re-arms itself 2 s later. A caller that was stalled for
 * several periods gets one tick (the deltas then cover the whole stall), not a burst, and the
 * schedule restarts from now.
 */
export class EstimatorSchedule {
  private due: number;

  constructor(
    startMs: number,
    private readonly periodMs = ESTIMATOR_PERIOD_MS,
  ) {
    this.due = startMs + periodMs;
  }

  /** Return true when a tick is due at `nowMs` (and schedule the next one). */
  take(nowMs: number): boolean {
    if (nowMs < this.due) return false;
    this.due = nowMs - this.due >= this.periodMs ? nowMs + this.periodMs : this.due + this.periodMs;
    return true;
  }
}
