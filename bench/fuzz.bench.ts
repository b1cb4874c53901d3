/**
 * The 10-million-frame fuzz run: hostile frames from test/fuzz/gen.ts (seeded, with
 * the corpus test/fuzz/corpus/*.bin mixed in) in bursts of 1..127 through two in-process fast
 * paths, every burst judged by the oracle of test/fuzz/rig.ts. Prints and records the frame
 * count, the verdict histogram, the generated kinds, and the oracle's findings (zero expected).
 *
 *   bun run bench/fuzz.bench.ts [--frames N] [--seed S] [--out FILE]
 *
 * Exit code 1 when the oracle found anything. Records to bench/results/fuzz-<date>.json unless
 * --out says otherwise (--out - prints only).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCorpus } from "../test/fuzz/corpus.ts";
import { KIND_NAMES, Rng } from "../test/fuzz/gen.ts";
import { FuzzRig, MAX_FUZZ_BURST } from "../test/fuzz/rig.ts";

function arg(name: string, d: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : d;
}

const frames = Number(arg("--frames", "10000000"));
const seed = Number(arg("--seed", "7"));
const corpus = loadCorpus();
const rig = new FuzzRig({ frames: corpus.map((c) => c.bytes) }, 65536);
const rng = new Rng(seed);
const t0 = performance.now();
let nextReport = 1_000_000;
while (rig.report.frames < frames) {
  const n = Math.min(1 + rng.int(MAX_FUZZ_BURST), frames - rig.report.frames);
  rig.burst(rng, n);
  if (rig.report.frames >= nextReport) {
    process.stderr.write(`${rig.report.frames} frames, ${rig.report.failureCount} findings, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    nextReport += 1_000_000;
  }
}
const secs = (performance.now() - t0) / 1000;
const r = rig.finish();
const result = {
  command: `bun run bench/fuzz.bench.ts --frames ${frames} --seed ${seed}`,
  date: new Date().toISOString(),
  bun: Bun.version,
  commit: Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"]).stdout.toString().trim(),
  frames: r.frames,
  bursts: r.bursts,
  seconds: Number(secs.toFixed(1)),
  framesPerSecond: Math.round(r.frames / secs),
  corpusFrames: corpus.length,
  crashes: r.exceptions,
  oracleFindings: r.failureCount,
  firstFindings: r.failures,
  verdicts: Object.fromEntries(Object.entries(r.verdicts).filter(([, v]) => v > 0)),
  outputs: r.outputs,
  generated: Object.fromEntries(KIND_NAMES.map((k, i) => [k, rig.gen.kinds[i]])),
  connectionsAtEnd: rig.a.conns.size,
  fragmentRecordsAtEnd: rig.a.fp.frag.table.size,
};
const text = JSON.stringify(result, null, 2);
process.stdout.write(text + "\n");
const out = arg("--out", join(import.meta.dir, "results", `fuzz-${result.date.slice(0, 10)}.json`));
if (out !== "-") {
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(out, text + "\n");
  process.stderr.write(`recorded in ${out}\n`);
}
process.exit(r.failureCount === 0 && r.exceptions === 0 ? 0 : 1);
