/**
 * Paired A/B of the fast path of two source trees, for changes whose cost is a few percent
 * (such as accessor functions instead of hand decodes, or verdicts returned instead of stored).
 * Both trees' micro rigs (`src/tools/bench/micro.ts`, `src/bench/micro.ts` in trees before the tools moved) (64-frame bursts of IPv4 UDP to a NAT service with three
 * real servers) are loaded into ONE process, each its own module instance with its own JIT code,
 * and run alternately a slice of bursts at a time, so the load of a shared machine hits both
 * alike; a slice is timed in process CPU time (wall time on a loaded host varies tenfold),
 * processBurst plus the restore of the frames it rewrote (the same code in both trees). Run it
 * both ways round: the tree loaded second tends to come out a few percent slower.
 *
 *   git archive <base> | tar -x -C /tmp/a; git archive <work> | tar -x -C /tmp/b  (+ node_modules,
 *   src/ffi/abi.ts and native/out of a built tree in each)
 *   bun run bench/fastpath-ab.bench.ts /tmp/a /tmp/b [rounds]
 *
 * Prints per workload the median ns/packet of each tree and the median of the per-round ratios
 * (B / A). To see what JSC did with the code: BUN_JSC_printEachDFGFTLInlineCall=1 (inlining
 * decisions), BUN_JSC_reportCompileTimes=1 (each tier's compiled size).
 */
import { existsSync } from "node:fs";

const [A, B] = [process.argv[2], process.argv[3]];
if (!A || !B) throw new Error("usage: bun run bench/fastpath-ab.bench.ts TREE_A TREE_B [rounds]");
const ROUNDS = Number(process.argv[4] ?? 30);
const microOf = (tree: string) => (existsSync(`${tree}/src/tools/bench/micro.ts`) ? `${tree}/src/tools/bench/micro.ts` : `${tree}/src/bench/micro.ts`);
const ma = await import(microOf(A)),
  mb = await import(microOf(B));
const M = 1_000_000,
  K4 = 4096,
  CAP = M + (M >> 2),
  BURST: number = ma.BURST;

/** Process CPU time in ns (microsecond resolution; a slice lasts milliseconds). */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

interface RigLike {
  descs: Uint32Array;
  conns: { size: number };
  fp: { processBurst(descs: Uint32Array, n: number): void };
  refresh(first: number, flows: number): number;
  resetConns(capacity: number): void;
  verdict(name: string): number;
}

class Side {
  readonly rig: RigLike;
  private f = 0;
  constructor(mod: { Rig: new (capacity: number) => RigLike }) {
    this.rig = new mod.Rig(CAP);
  }

  /** Establish `flows` connections. */
  fill(flows: number): void {
    this.rig.resetConns(CAP);
    this.f = 0;
    for (let done = 0; done < flows; done += BURST) {
      this.f = this.rig.refresh(this.f, flows);
      this.rig.fp.processBurst(this.rig.descs, BURST);
    }
  }

  /**
   * `bursts` bursts over `flows` flows; returns CPU ns per packet of processBurst plus the
   * restore of the burst's frames (micro.ts's "copy" row, the same code in both trees): one
   * clock read per slice, since process.cpuUsage() itself costs microseconds.
   */
  run(flows: number, bursts: number, fresh: boolean): number {
    const rig = this.rig,
      descs = rig.descs;
    const t0 = cpuNs();
    for (let b = 0; b < bursts; b++) {
      if (fresh && rig.conns.size > M) rig.resetConns(CAP);
      this.f = rig.refresh(this.f, flows);
      rig.fp.processBurst(descs, BURST);
    }
    return (cpuNs() - t0) / (bursts * BURST);
  }
}

const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
const workloads = [
  ["fastpath-4K", K4, 2000, false],
  ["fastpath-1M", M, 1500, false],
  ["new-conns", 16_000_000, 400, true],
] as const;
for (const [name, flows, slice, fresh] of workloads) {
  const a = new Side(ma),
    b = new Side(mb);
  if (fresh) {
    a.rig.resetConns(CAP);
    b.rig.resetConns(CAP);
  } else {
    a.fill(flows);
    b.fill(flows);
  }
  a.run(flows, slice, fresh); // warm-up: both tiers compiled before timing
  b.run(flows, slice, fresh);
  const ra: number[] = [],
    rb: number[] = [],
    ratio: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let x: number, y: number;
    if (r & 1) {
      y = b.run(flows, slice, fresh);
      x = a.run(flows, slice, fresh);
    } else {
      x = a.run(flows, slice, fresh);
      y = b.run(flows, slice, fresh);
    }
    ra.push(x);
    rb.push(y);
    ratio.push(y / x);
  }
  if (a.rig.verdict("fwd_in") === 0 || b.rig.verdict("fwd_in") === 0) throw new Error(`${name}: nothing forwarded`);
  console.log(
    `${name.padEnd(12)} A ${median(ra).toFixed(1).padStart(7)} ns/pkt  B ${median(rb).toFixed(1).padStart(7)} ns/pkt  B/A ${median(ratio).toFixed(3)}  (${ROUNDS} rounds)`,
  );
  a.rig.resetConns(16);
  b.rig.resetConns(16);
  Bun.gc(true);
}
