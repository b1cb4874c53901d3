#!/usr/bin/env bun
/**
 * `xvs bench` from a source tree, writing into bench/results/ by default:
 *
 *   bun bench/bench.ts [xvs bench options]        (as root)
 *
 * is `xvs bench --out bench/results [options]`. See `xvs bench --help` and bench/README.md.
 */
import { join } from "node:path";
import { LbError } from "../src/errors.ts";
import { parseBenchArgs, runBench } from "../src/tools/bench/run.ts";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  const { BENCH_HELP } = await import("../src/tools/bench/run.ts");
  process.stdout.write(BENCH_HELP);
  process.exit(0);
}
if (!args.includes("--out")) args.unshift("--out", join(import.meta.dir, "results"));
try {
  process.exit(await runBench(parseBenchArgs(args)));
} catch (e) {
  process.stderr.write(`xvs bench: ${e instanceof LbError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
