/**
 * `xvs bench --ipvs-vm`: run the benchmark inside the ipvs-vm guest (a qemu guest with a Debian
 * kernel that has IPVS, driven by a tools directory given with --ipvs-vm-tools DIR or
 * IPVSVM_TOOLS; bench/README.md says what it holds), so that kernel IPVS races xvs side by side
 * when the host kernel has no ip_vs.
 *
 * The guest is emulated (TCG): its report carries ratios only. Steps: prepare the guest
 * (idempotent), put this xvs executable and a host-built C forwarder in the guest's share, boot
 * it with `xvs bench --in-guest ...`, and copy the report files back. Around the run it records
 * the host's load (ipvsvm-host-load.ts) and, in the guest, where the CPUs' time goes in each
 * measurement window (ipvsvm-guest-cpu.ts); both go into the report's notes and JSON.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ErrorCode, LbError } from "../../errors.ts";
import { isCompiled } from "../lab/self.ts";
import { XskFwd } from "./contenders.ts";
import { guestCpuLines, guestCpuOfReport, parseSnaps, SAMPLE_PERIOD_S, SAMPLER_C } from "./ipvsvm-guest-cpu.ts";
import { HostLoad, type HostLoadSummary, hostLoadNote } from "./ipvsvm-host-load.ts";
import type { BenchOptions } from "./options.ts";
import { renderSvg } from "./plot.ts";
import { type BenchReport, renderMarkdown } from "./report.ts";

/** Seconds the guest's lab waits for a starting `xvs run` to answer: an emulated CPU on a busy
 * host starts a 100 MB executable far slower than the labs' 15 s allow. */
const GUEST_START_TIMEOUT_S = 600;

/** Repository root when running from a source tree (src/tools/bench/ -> ../../..). */
function repoRoot(): string | null {
  if (isCompiled()) return null;
  return resolve(import.meta.dir, "..", "..", "..");
}

function findTools(o: BenchOptions): string {
  // no default: the guest's tools live outside this repository, wherever the operator put them
  const dir = o.ipvsVmTools ?? process.env.IPVSVM_TOOLS;
  if (!dir)
    throw new LbError(
      ErrorCode.Environment,
      "--ipvs-vm needs the ipvs-vm guest's tools (prepare.sh, boot.sh): pass --ipvs-vm-tools DIR or set IPVSVM_TOOLS (bench/README.md)",
    );
  if (existsSync(join(dir, "boot.sh")) && existsSync(join(dir, "prepare.sh"))) return resolve(dir);
  throw new LbError(
    ErrorCode.Environment,
    `${dir} has no prepare.sh and boot.sh: --ipvs-vm-tools DIR (or IPVSVM_TOOLS) must name the ipvs-vm guest's tools directory (bench/README.md)`,
  );
}

function findBinary(): string {
  if (isCompiled()) return process.execPath;
  if (process.env.XVS_BIN && existsSync(process.env.XVS_BIN)) return process.env.XVS_BIN;
  const d = join(repoRoot()!, "dist", "xvs");
  if (existsSync(d)) return d;
  throw new LbError(ErrorCode.Environment, "the guest needs the compiled executable: build it first (bun run build.ts -> dist/xvs)");
}

async function run(cmd: string[], env: Record<string, string>): Promise<number> {
  const p = Bun.spawn(cmd, { stdout: "inherit", stderr: "inherit", stdin: "ignore", env: { ...process.env, ...env } });
  return p.exited;
}

/** The `xvs bench` arguments for the guest, from the host's options. */
export function guestArgs(o: BenchOptions, outDir: string): string[] {
  const a = [
    "bench",
    "--in-guest",
    "--out",
    outDir,
    "--name",
    o.name,
    "--rounds",
    String(o.rounds),
    "--duration",
    String(o.duration),
    "--warmup",
    String(o.warmup),
    "--start-warmup",
    String(o.startWarmup),
    "--contenders",
    o.contenders.join(","),
    "--modes",
    o.modes.join(","),
    "--workloads",
    o.workloads.join(","),
    "--flows",
    String(o.flows),
    "--flow-counts",
    o.flowCounts.join(","),
    "--flows-rounds",
    String(o.flowsRounds),
    "--tcp-concurrency",
    String(o.tcpConcurrency),
    "--ping-count",
    String(o.pingCount),
    "--micro-seconds",
    String(o.microSeconds),
    "--gen-cpu",
    String(o.genCpu),
    "--dir-cpu",
    String(o.dirCpu),
    "--no-profile",
  ];
  if (!o.pin) a.push("--no-pin");
  if (!o.steer) a.push("--no-steer");
  if (o.note) a.push("--note", o.note);
  return a;
}

export async function runIpvsVm(o: BenchOptions): Promise<number> {
  const tools = findTools(o);
  const cache = process.env.IPVSVM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "ipvs-vm");
  const env = { IPVSVM_CACHE: cache };
  const log = (s: string) => process.stderr.write(`[bench ipvs-vm] ${s}\n`);
  log(`tools ${tools}, cache ${cache}`);
  if ((await run(["bash", join(tools, "prepare.sh")], env)) !== 0) throw new LbError(ErrorCode.Environment, "ipvs-vm prepare.sh failed");
  const bin = join(cache, "share", "bin");
  mkdirSync(bin, { recursive: true });
  copyFileSync(findBinary(), join(bin, "xvs"));
  chmodSync(join(bin, "xvs"), 0o755);
  const contenders = [...o.contenders];
  let xskBin: string | null = null;
  if (contenders.includes("xskfwd")) {
    // the guest has the libraries but no compiler: build the forwarder here
    const x = new XskFwd();
    await x.prepare({ ...o, xskfwdBin: null });
    if (x.skipReason) log(`xskfwd: ${x.skipReason} (it will be skipped in the guest)`);
    else {
      const built = (x as unknown as { bin: string }).bin;
      copyFileSync(built, join(bin, "xvs-xskfwd"));
      chmodSync(join(bin, "xvs-xskfwd"), 0o755);
      xskBin = "/mnt/share/bin/xvs-xskfwd";
    }
  }
  // the guest's root filesystem has no tc modules: bring the two the counting sink needs
  // (same kernel build) through the share
  const kver = readFileSync(join(cache, "kver"), "utf8").trim();
  const mods = join(cache, "share", "modules");
  mkdirSync(mods, { recursive: true });
  const insmod: string[] = [];
  for (const m of ["sch_ingress", "cls_bpf"]) {
    const ko = join(cache, "kroot", "lib", "modules", kver, "kernel", "net", "sched", `${m}.ko`);
    if (existsSync(ko)) {
      copyFileSync(ko, join(mods, `${m}.ko`));
      insmod.push(`insmod /mnt/share/modules/${m}.ko 2>/dev/null;`);
    }
  }
  const guestOut = "/mnt/share/out/bench";
  const hostOut = join(cache, "share", "out", "bench");
  mkdirSync(hostOut, { recursive: true });
  const args = guestArgs(o, guestOut);
  if (xskBin) args.push("--xskfwd-bin", xskBin);
  // where the guest's CPUs spend each window: a sampler beside the bench, on the generator's CPU
  const samplerBin = await buildSampler(cache, log);
  const cpuLog = `${guestOut}/${o.name}.cpu.jsonl`;
  const period = SAMPLE_PERIOD_S * 1000;
  // started directly (taskset execs it), so that $! is the sampler and kill ends it; its output
  // goes nowhere, or it would hold the guest's run.log pipe open and the guest never powers off
  const sampler = samplerBin
    ? `ts=; command -v taskset >/dev/null && ts="taskset -c ${o.genCpu}"; $ts ${samplerBin} ${cpuLog} ${period} </dev/null >/dev/null 2>&1 & sp=$!;`
    : "sp=;";
  // the guest's TMPDIR is a tmpfs; xvs extracts its shim there
  const cmd =
    `${insmod.join(" ")} mkdir -p ${guestOut} && cd /tmp || exit 1; ${sampler} XVS_LAB_START_TIMEOUT_S=${GUEST_START_TIMEOUT_S} ` +
    `xvs ${args.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(" ")}; rc=$?; [ -n "$sp" ] && kill $sp 2>/dev/null; exit $rc`;
  writeFileSync(join(tmpdir(), "xvs-ipvsvm-cmd.txt"), cmd + "\n");
  log(`booting the guest: ${cmd}`);
  const hostLoad = new HostLoad(cache);
  await hostLoad.start();
  const rc = await run(["bash", join(tools, "boot.sh"), "--smp", "2", "--mem", "4096", "--timeout", "7200", "--run", cmd], env);
  const host = await hostLoad.stop();
  const produced = existsSync(join(hostOut, `${o.name}.json`));
  if (!produced) {
    const logFile = join(cache, "share", "out", "run.log");
    const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n") : "";
    throw new LbError(ErrorCode.System, `the guest run produced no report (boot.sh exit ${rc}); last lines of ${logFile}:\n${tail}`);
  }
  const dest = o.out ?? process.cwd();
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(hostOut)) {
    if (f.startsWith(o.name + ".") && !f.endsWith(".cpu.jsonl")) copyFileSync(join(hostOut, f), join(dest, f));
  }
  addObservations(join(dest, `${o.name}.json`), host, join(hostOut, `${o.name}.cpu.jsonl`), log);
  log(`report: ${join(dest, o.name)}.{md,json,svg} (guest log: ${join(cache, "share", "out", "run.log")})`);
  process.stdout.write(
    readFileSync(join(cache, "share", "out", "run.log"), "utf8")
      .split("\n")
      .filter((l) => !l.startsWith("[bench"))
      .join("\n"),
  );
  return 0;
}

/**
 * Put the host's load and the guest's CPU split per window into the report (JSON fields
 * `hostLoad` and `guestCpu`, and notes), and render its markdown and plot again.
 */
export function addObservations(jsonFile: string, host: HostLoadSummary, cpuLog: string, log: (s: string) => void): void {
  const report = JSON.parse(readFileSync(jsonFile, "utf8")) as BenchReport & { hostLoad?: HostLoadSummary; guestCpu?: unknown };
  const guestCpus = Number(/^(\d+) x/.exec(String(report.machine.cpu ?? ""))?.[1]) || 2;
  report.hostLoad = host;
  report.notes.push(hostLoadNote(host, guestCpus));
  if (existsSync(cpuLog)) {
    const entries = guestCpuOfReport(report, parseSnaps(readFileSync(cpuLog, "utf8")));
    report.guestCpu = entries;
    const lines = guestCpuLines(entries);
    if (lines.length)
      report.notes.push(
        `Where the guest's CPU time went in the full-load windows (bench/ipvs-vm-sampler.c in the guest read /proc/stat and the CPU time of the bench's and the kernel's network threads every ${SAMPLE_PERIOD_S} s, on the generator's CPU; medians over rounds; cpu${report.options.dirCpu ?? 1} is the director's, cpu${report.options.genCpu ?? 0} the generator's, the sink's receive work and the sampler's; threads as shares of the followed threads' CPU time, since a starved guest's clocks do not add up; per-round values in the JSON's guestCpu): ` +
          lines.join(" | "),
      );
    else report.notes.push("Where the guest's CPU time went: the sampler's snapshots fell inside no measurement window.");
  } else {
    log(`no guest CPU samples (${cpuLog}): the sampler was not built (gcc with a static libc) or failed in the guest`);
    report.notes.push(
      "Where the guest's CPU time went: not measured (the sampler was not built on the host, gcc with a static libc, or wrote nothing in the guest).",
    );
  }
  writeFileSync(jsonFile, JSON.stringify(report, null, 2) + "\n");
  const base = jsonFile.replace(/\.json$/, "");
  writeFileSync(`${base}.svg`, renderSvg(report));
  writeFileSync(`${base}.md`, renderMarkdown(report, `${base.slice(base.lastIndexOf("/") + 1)}.svg`));
}

/** Build the guest's CPU sampler statically (the guest has no compiler) into the share; null when that fails. */
async function buildSampler(cache: string, log: (s: string) => void): Promise<string | null> {
  const dir = join(cache, "share", "bin");
  const src = join(tmpdir(), `xvs-ipvs-vm-sampler-${process.pid}.c`);
  writeFileSync(src, SAMPLER_C);
  const p = Bun.spawn(["gcc", "-O2", "-static", "-o", join(dir, "xvs-cpu-sampler"), src], { stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) {
    log(`the guest's CPU sampler was not built (gcc -static): ${err.trim().split("\n").slice(0, 2).join(" ")}`);
    return null;
  }
  return "/mnt/share/bin/xvs-cpu-sampler";
}
