/**
 * What recognising partial L4 checksums (src/wire/partial-csum.ts) costs a complete frame: the
 * microbenchmark's fast-path row (src/tools/bench/micro.ts: 64-byte UDP frames to a NAT service, 4K
 * established flows, whole processBurst, the frame restore included) run twice, once with the
 * micro's frames (UDP checksum 0: "none", one compare) and once with a nonzero checksum field
 * (the pseudo-header sum and one compare; the field is a constant, so it is wrong for most flows,
 * which costs the same: a complete frame's payload is never read). Prints one JSON line.
 *
 * Each round times a fixed number of bursts (after a warm-up) by wall clock and by this
 * process's CPU time (process.cpuUsage: user + system). On a shared, loaded machine the CPU time
 * leaves out the time the process was not running, which the wall clock counts; both are given,
 * as medians over the rounds.
 *
 *   bun run bench/partial-csum.bench.ts [--seconds S] [--rounds R]
 *
 * For a before/after comparison run the same file against two source trees, interleaved.
 */
import { BURST, Rig } from "../src/tools/bench/micro.ts";
import { ETH_HLEN } from "../src/tools/bench/frames.ts";

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
}
const SECONDS = arg("--seconds", 0.5);
const ROUNDS = arg("--rounds", 3);
const FLOWS = 4096;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const rig = new Rig(1 << 16);
// the template frame sits after the burst's frames (micro.ts: BURST strides, then the template)
const tpl = (rig.buf.length / (BURST + 1)) * BURST;
const udpCsum = tpl + ETH_HLEN + 20 + 6;
const names = ["udp-csum-0", "udp-csum-set"] as const;
const wall: Record<string, number[]> = { "udp-csum-0": [], "udp-csum-set": [] };
const cpu: Record<string, number[]> = { "udp-csum-0": [], "udp-csum-set": [] };
for (let f = 0, done = 0; done < FLOWS; done += BURST) {
  f = rig.refresh(f, FLOWS);
  rig.fp.processBurst(rig.descs, BURST);
}
const fwd0 = rig.verdict("fwd_in");
// bursts per round: about SECONDS on an idle core at ~100 ns per packet
const BURSTS = Math.max(64, Math.round((SECONDS * 1e9) / (100 * BURST)));
let packets = 0,
  first = 0;
for (let r = 0; r < ROUNDS; r++) {
  for (const name of names) {
    rig.dv.setUint16(udpCsum, name === "udp-csum-0" ? 0 : 0x1234);
    for (let k = 0; k < BURSTS >> 3; k++) {
      first = rig.refresh(first, FLOWS);
      rig.fp.processBurst(rig.descs, BURST);
    }
    const c0 = process.cpuUsage(),
      t0 = Bun.nanoseconds();
    for (let k = 0; k < BURSTS; k++) {
      first = rig.refresh(first, FLOWS);
      rig.fp.processBurst(rig.descs, BURST);
    }
    const t1 = Bun.nanoseconds(),
      c1 = process.cpuUsage(c0);
    packets += (BURSTS + (BURSTS >> 3)) * BURST;
    wall[name].push((t1 - t0) / (BURSTS * BURST));
    cpu[name].push(((c1.user + c1.system) * 1000) / (BURSTS * BURST));
  }
}
const forwarded = rig.verdict("fwd_in") - fwd0;
const med = (o: Record<string, number[]>) => Object.fromEntries(names.map((n) => [n, median(o[n])]));

console.log(
  JSON.stringify({
    wallNsPerPacket: med(wall),
    cpuNsPerPacket: med(cpu),
    rounds: ROUNDS,
    forwardedAll: forwarded === packets,
    completed: rig.verdict("csum_partial_completed") ?? null,
  }),
);
