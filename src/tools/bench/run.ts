/**
 * `xvs bench`: race xvs against the kernel's balancers on this machine.
 *
 * For every round, every contender (in an order rotated each round) gets a fresh lab
 * (src/tools/bench/lab.ts), is started on the director, takes each workload it supports
 * (src/tools/bench/workloads.ts), and is stopped; the lab is torn down. A contender that cannot run
 * here is skipped with the reason; one that fails to start or forwards nothing is recorded as
 * failed with its error, and the others still run. Then: an optional profiled run (where xvs's
 * time goes), the pure-CPU microbenchmarks, and the report (table, JSON, markdown, SVG).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, LbError } from "../../errors.ts";
import { Lab, sh } from "../lab/netns.ts";
import { type Contender, makeContenders, type RunCtx, XskFwd, Xvs } from "./contenders.ts";
import { buildBenchLab, counterDeltas, ifaceCounters, type BenchLab } from "./lab.ts";
import { busyProcesses, describeMachine } from "./machine.ts";
import { runMicro, type MicroRow } from "./micro.ts";
import { type BenchOptions, WORKLOADS, type WorkloadKind } from "./options.ts";
import { renderSvg } from "./plot.ts";
import { leftText, type PlannedStep, ProgressEstimator } from "./progress.ts";
import { perfCpu, perfWorks, profileSummary, type PerfSample, windowProfile } from "./profile.ts";
import {
  type BenchReport,
  buildRows,
  type Cell,
  type ContenderInfo,
  renderMarkdown,
  renderTable,
  type Row,
  type Target,
  workloadInfo,
  workloadOrder,
} from "./report.ts";
import { flowsId, flowsRate, latency, measureRate, PEAK_LEVELS, type Result, tcpRate, udpPeak, udpRate, udpReplied, warmUp } from "./workloads.ts";

export { BENCH_HELP, parseBenchArgs } from "./options.ts";

/** Workload row ids a workload kind produces. */
function rowIds(w: WorkloadKind, o: BenchOptions): string[] {
  if (w === "latency") return ["latency-p50", "latency-p99"];
  if (w === "udp64") return ["udp64", "udp64-overload"];
  if (w === "udp64-replied") return ["udp64-replied", "udp64-replied-overload"];
  if (w === "flows") return o.flowCounts.map(flowsId);
  if (w === "micro") return [];
  return [w];
}

let currentLab: BenchLab | null = null;

/**
 * The generator must outrun every contender: when it offered little more than a contender
 * forwarded, in the 64-byte test even under full load, that contender's rate is a lower bound.
 */
function outrunNote(rows: BenchReport["rows"], steered: boolean): string | null {
  const slow = rows.filter(
    (r) => r.workload === "udp64-overload" && r.median && Number(r.extra.offeredPps) > 0 && Number(r.extra.offeredPps) < 1.15 * r.median,
  );
  if (slow.length === 0) return null;
  return (
    `The generator did not outrun ${slow.map((r) => `${r.contender} (offered ${(Number(r.extra.offeredPps) / 1e6).toFixed(3)}, forwarded ${(r.median! / 1e6).toFixed(3)} Mpps under full load)`).join(", ")}: ` +
    (steered
      ? "its CPU also carries the sink's receive work (its NAPI thread), which grows with what the contender forwards; these rates are lower bounds, and their ratios to xvs too."
      : "with --no-steer a kernel contender's receive and forwarding work runs on the sending CPU, the generator's, so the two share one core; these rates are what one core does for both, not the contender's ceiling.")
  );
}

/** Render an earlier run's JSON again: table on stdout, .md and .svg next to the JSON. */
function renderAgain(file: string): number {
  const report = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
  const note = outrunNote(report.rows, report.options.pin !== false && report.options.steer !== false);
  const old = report.notes.findIndex((n) => n.startsWith("The generator did not outrun"));
  if (note && (old < 0 || report.notes[old] !== note)) {
    if (old >= 0) report.notes[old] = note;
    else report.notes.push(note);
    writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  }
  const base = file.replace(/\.json$/, "");
  const name = base.slice(base.lastIndexOf("/") + 1);
  process.stdout.write(renderTable(report));
  writeFileSync(`${base}.svg`, renderSvg(report));
  writeFileSync(`${base}.md`, renderMarkdown(report, `${name}.svg`));
  return 0;
}

export async function runBench(o: BenchOptions): Promise<number> {
  if (o.render) return renderAgain(o.render);
  if (o.ipvsVm) {
    const { runIpvsVm } = await import("./ipvsvm.ts");
    return runIpvsVm(o);
  }
  if (process.getuid?.() !== 0)
    throw new LbError(ErrorCode.Permission, "xvs bench needs root (network namespaces, XDP, AF_XDP): run it as root, e.g. with sudo");
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const log = (s: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${s}\n`);

  // an interrupted earlier run leaves namespaces (with their XDP programs, nftables rules and
  // IPVS tables inside): remove those whose process is gone
  const stale = await Lab.cleanupStale();
  if (stale.length) log(`removed ${stale.length} namespaces left by an interrupted run: ${stale.join(" ")}`);

  const onSignal = (sig: string) => {
    log(`${sig}: tearing down`);
    const l = currentLab;
    currentLab = null;
    void (l ? l.close() : Promise.resolve()).finally(() => process.exit(130));
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  const contenders = makeContenders(o);
  for (const c of contenders) {
    try {
      await c.prepare(o);
    } catch (e) {
      c.skipReason = `cannot prepare: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (c.skipReason) log(`skip ${c.id}: ${c.skipReason}`);
  }
  const machine = await describeMachine(o.note, o.inGuest);
  log(`machine: ${machine.summary}`);
  // this process (its event loop and its threads) stays off the director's CPU
  if (o.pin) await sh(["taskset", "-a", "-p", "-c", String(o.genCpu), String(process.pid)], true).catch(() => null);
  const wanted: WorkloadKind[] = o.workloads.filter((w) => w !== "micro");
  const active = contenders.filter((c) => !c.skipReason && c.workloads.some((w) => wanted.includes(w)));
  const cells = new Map<string, Cell>();
  const cell = (c: string, w: string): Cell => {
    const k = `${c}|${w}`;
    let x = cells.get(k);
    if (!x) {
      x = { contender: c, workload: w, samples: [], errors: [] };
      cells.set(k, x);
    }
    return x;
  };
  // rows appear in contender order (the report's tables keep it)
  for (const c of active)
    for (const w of wanted) if (c.workloads.includes(w)) for (const id of rowIds(w, o)) if (!(c.kind === "gen" && id === "udp64-overload")) cell(c.id, id);

  const sinkKinds = new Set<string>();
  const ctxOf = (bl: BenchLab): RunCtx => {
    sinkKinds.add(bl.sinkKind);
    return { o, bl, progress: log };
  };
  const labFor = (c: Contender) =>
    buildBenchLab("bench", { mode: c.mode, steer: o.pin && o.steer ? { dirCpu: o.dirCpu, genCpu: o.genCpu } : null, serverCpu: o.pin ? o.genCpu : null });

  // the whole run as steps, for the progress lines' estimate of the time left
  const orderOf = (r: number) => active.map((_, i) => active[(i + r - 1) % active.length]);
  const xvsNat = active.find((c): c is Xvs => c instanceof Xvs && c.mode === "nat");
  const xsk = active.find((c): c is XskFwd => c instanceof XskFwd);
  const microWanted = o.workloads.includes("micro");
  const profiled = o.profile && !!xvsNat && wanted.includes("udp64");
  const plan: PlannedStep[] = [];
  for (let r = 1; r <= o.rounds; r++) {
    // a contender's rounds with the flows workload take longer than those without
    for (const c of orderOf(r)) plan.push({ key: `${c.id}${c.workloads.includes("flows") && wanted.includes("flows") && r <= o.flowsRounds ? "+flows" : ""}` });
  }
  // one rate measurement each; the microbenchmarks run ~12 rows and build a 1M-flow table
  if (microWanted) plan.push({ key: "micro", guess: 12 * o.microSeconds + 5 });
  if (profiled)
    for (const k of xsk ? ["profile-xvs", "profile-xskfwd"] : ["profile-xvs"]) plan.push({ key: k, guess: o.startWarmup + o.warmup + o.duration + 5 });
  const eta = new ProgressEstimator(plan);
  let stepNo = 0;
  const step = (what: string) => {
    const i = stepNo++;
    eta.start(i, Date.now());
    log(`${what} (step ${i + 1}/${plan.length}), ${leftText(eta.secondsLeft(i))}`);
  };

  for (let r = 1; r <= o.rounds; r++) {
    const order = orderOf(r);
    log(`round ${r}/${o.rounds}: ${order.map((c) => c.id).join(", ")}`);
    for (const c of order) {
      step(`round ${r}/${o.rounds}, contender ${c.id}`);
      // in WORKLOADS order whatever the order asked for (udp64-replied last: see options.ts)
      const ws = WORKLOADS.filter((w) => wanted.includes(w) && c.workloads.includes(w));
      const fail = (w: WorkloadKind, err: string) => {
        for (const id of rowIds(w, o)) cell(c.id, id).errors.push({ round: r, error: err });
        log(`  ${c.id} ${w}: FAILED ${err}`);
      };
      let bl: BenchLab;
      try {
        bl = await labFor(c);
      } catch (e) {
        for (const w of ws) fail(w, `lab: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      currentLab = bl;
      const ctx = ctxOf(bl);
      try {
        try {
          await c.start(ctx);
          if (ws.some((w) => w !== "latency")) await warmUp(ctx, c, o.startWarmup);
        } catch (e) {
          for (const w of ws) fail(w, `start: ${e instanceof Error ? e.message : String(e)}`);
          continue;
        }
        for (const w of ws) {
          const record = (res: Result) => {
            cell(c.id, res.id).samples.push({ round: r, value: res.value, extra: res.extra });
            const info = workloadInfo(res.id);
            log(`  ${c.id.padEnd(9)} ${res.id.padEnd(12)} ${(res.value / info.scale).toFixed(info.digits)} ${info.unit}`);
          };
          try {
            if (w === "udp64") {
              if (c.kind === "gen") record(await udpRate(ctx, c, 64));
              else for (const x of await udpPeak(ctx, c, 64)) record(x);
            } else if (w === "udp64-replied") for (const x of await udpReplied(ctx, c)) record(x);
            else if (w === "udp1514") record(await udpRate(ctx, c, 1514));
            else if (w === "latency") for (const x of await latency(ctx, c)) record(x);
            else if (w === "tcp") record(await tcpRate(ctx, c));
            else if (w === "flows") {
              if (r > o.flowsRounds) continue;
              // create the flows at 60% of what this contender forwarded this round (64-byte UDP)
              const measured =
                cell(c.id, "udp64-overload").samples.find((x) => x.round === r)?.value ?? cell(c.id, "udp64").samples.find((x) => x.round === r)?.value;
              const populatePps = Math.max(20_000, 0.6 * (measured ?? 100_000));
              for (const n of o.flowCounts) {
                try {
                  record(await flowsRate(ctx, c, n, populatePps));
                } catch (e) {
                  cell(c.id, flowsId(n)).errors.push({ round: r, error: e instanceof Error ? e.message : String(e) });
                  log(`  ${c.id} ${flowsId(n)}: FAILED ${e instanceof Error ? e.message : String(e)}`);
                }
              }
            }
          } catch (e) {
            fail(w, e instanceof Error ? e.message : String(e));
          }
        }
      } finally {
        await c.stop(ctx).catch((e) => log(`  ${c.id} stop: ${e instanceof Error ? e.message : String(e)}`));
        currentLab = null;
        await bl.close();
      }
    }
  }

  // where the time goes: one profiled xvs run (and the C forwarder's, for comparison)
  let profile: BenchReport["profile"] = null;
  let micro: MicroRow[] = [];
  if (microWanted) {
    step("microbenchmarks");
    try {
      micro = runMicro(o.microSeconds, (s) => log(`  ${s}`));
    } catch (e) {
      log(`microbenchmarks FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }
  if (profiled && xvsNat) {
    log("profiled run (xvs worker phases; perf on the director CPU when available)");
    const perfOk = o.pin && !o.inGuest && (await perfWorks());
    type One = {
      rate: number | null;
      offered: number | null;
      window: [number, number];
      stats: Record<string, unknown> | null;
      perf: PerfSample | null;
      veth: Record<string, number>;
    };
    // each at the offered load of its peak (median over rounds), else under full load
    const peakOffered = (id: string): number => {
      const xs =
        cells
          .get(`${id}|udp64`)
          ?.samples.map((x) => Number(x.extra.offeredPps))
          .filter((x) => x > 0) ?? [];
      return xs.length ? xs.sort((a, b) => a - b)[xs.length >> 1] : 0;
    };
    const one = async (c: Contender, prof: boolean): Promise<One> => {
      step(`profiled run, ${c.id}`);
      const bl = await labFor(c);
      currentLab = bl;
      const ctx = ctxOf(bl);
      let rate: number | null = null,
        offered: number | null = null,
        stats: Record<string, unknown> | null = null,
        perf: PerfSample | null = null;
      let veth: Record<string, number> = {};
      let window: [number, number] = [0, 0];
      try {
        await c.start(ctx, prof);
        await warmUp(ctx, c, o.startWarmup);
        const before = await ifaceCounters(bl);
        const perfP = perfOk ? perfCpu(o.dirCpu, o.warmup + o.duration) : Promise.resolve(null);
        const res = await measureRate(ctx, c, 64, o.flows, peakOffered(c.id), o.warmup, o.duration);
        rate = res.pps;
        offered = res.offeredPps || null;
        window = [res.w0, res.w1];
        perf = await perfP;
        veth = counterDeltas(before, await ifaceCounters(bl));
      } catch (e) {
        log(`  profile ${c.id}: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        stats = await c.stop(ctx).catch(() => null);
        currentLab = null;
        await bl.close();
      }
      log(`  profile ${c.id}: ${rate === null ? "failed" : `${(rate / 1e6).toFixed(3)} Mpps`}`);
      return { rate, offered, window, stats, perf, veth };
    };
    const px = await one(xvsNat, true);
    const pk = xsk ? await one(xsk, false) : null;
    const worker = px.stats ? windowProfile(px.stats, px.window) : null;
    profile = {
      worker,
      xvsRate: px.rate,
      xvsOffered: px.offered,
      xvsVeth: px.veth,
      xskfwdRate: pk?.rate ?? null,
      xskfwdOffered: pk?.offered ?? null,
      xskfwdStats: pk?.stats ?? null,
      xskfwdVeth: pk?.veth ?? null,
      perfXvs: px.perf,
      perfXskfwd: pk?.perf ?? null,
      summary: profileSummary(worker?.frames ? worker : null, px.rate, pk?.rate ?? null, px.perf, pk?.perf ?? null, micro, o.dirCpu, {
        xvs: { offered: px.offered, veth: px.veth, xsk: (px.stats as { xsk?: Record<string, number> } | null)?.xsk ?? null },
        xskfwd: pk ? { offered: pk.offered, veth: pk.veth, xsk: (pk.stats as { xsk?: Record<string, number> } | null)?.xsk ?? null } : null,
      }),
    };
  }

  eta.stop(Date.now());
  const cinfo: ContenderInfo[] = contenders.map((c) => ({
    id: c.id,
    kind: c.kind,
    mode: c.mode,
    label: c.label,
    skipped: c.skipReason,
    workloads: c.workloads,
  }));
  const rows = buildRows(
    [...cells.values()],
    cinfo.filter((c) => !c.skipped),
  );
  const targets: Target[] = [];
  const row = (c: string, w: string) => rows.find((x) => x.contender === c && x.workload === w);
  const xv = row("xvs-nat", "udp64"),
    // the pure path (every packet through AF_XDP and TypeScript): the --flow-cache off contender
    // when it runs, else xvs-nat itself
    pure = row("xvs-nat-nocache", "udp64") ?? xv,
    xf = row("xskfwd", "udp64"),
    nf = row("nft", "udp64"),
    ce = row("ceiling", "udp64"),
    gn = row("gen", "udp64");
  const ratio = (a?: Row, b?: Row) => (a && b && a.median !== null && b.median ? a.median / b.median : null);
  const layout = o.pin && o.steer ? "one director core" : "director's receive work left on the sending CPU (--no-steer)";
  if (pure && xf) {
    const v = ratio(pure, xf);
    targets.push({
      name: `${pure.contender} / xskfwd, 64-byte UDP, ${layout}`,
      value: v,
      target: 0.9,
      pass: v === null ? null : v >= 0.9,
      detail: pure === xv ? `median of per-round ratios ${xf.roundRatioToXvs ? (1 / xf.roundRatioToXvs).toFixed(2) : "-"}` : "the pure path (--flow-cache off)",
    });
  }
  if (xv && nf) {
    const v = ratio(xv, nf);
    targets.push({
      name: `xvs-nat / nft, 64-byte UDP, ${layout}`,
      value: v,
      target: 4,
      pass: v === null ? null : v >= 4,
      detail: "flow cache on; where the generator's own rate is below 4x nftables, the generator bounds it (see xvs-nat / gen)",
    });
  }
  if (xv && ce) {
    const v = ratio(xv, ce);
    targets.push({
      name: `xvs-nat / ceiling (in-kernel XDP DNAT + redirect), 64-byte UDP, ${layout}`,
      value: v,
      target: 0.5,
      pass: v === null ? null : v >= 0.5,
      detail: `ceiling / gen ${ratio(ce, gn)?.toFixed(2) ?? "-"}: at ~1 the ceiling is the generator's rate`,
    });
  }
  // the same targets on flows the sink answered once (udp64 is one-way: its UDP NAT flows are never
  // cached, so the rows above are xvs-nat's AF_XDP path)
  const xr = row("xvs-nat", "udp64-replied"),
    nr = row("nft", "udp64-replied"),
    cr = row("ceiling", "udp64-replied");
  if (xr && nr) {
    const v = ratio(xr, nr);
    targets.push({
      name: `xvs-nat / nft, 64-byte UDP, flows answered once (udp64-replied), ${layout}`,
      value: v,
      target: 4,
      pass: v === null ? null : v >= 4,
      detail: "NAT flows cached by XDP",
    });
  }
  if (xr && cr) {
    const v = ratio(xr, cr);
    targets.push({
      name: `xvs-nat / ceiling, 64-byte UDP, flows answered once (udp64-replied), ${layout}`,
      value: v,
      target: 0.5,
      pass: v === null ? null : v >= 0.5,
      detail: "NAT flows cached by XDP",
    });
  }
  if (xv && gn) {
    const v = ratio(xv, gn);
    targets.push({
      name: "xvs-nat / gen (the lab's own ceiling)",
      value: v,
      target: 0.5,
      pass: v === null ? null : v >= 0.5,
      detail: "the generator alone into an XDP drop",
    });
  }

  const notes: string[] = [];
  if (o.inGuest)
    notes.push(
      "Run inside the ipvs-vm qemu guest under software emulation (TCG): absolute numbers mean nothing; only ratios between contenders of this run do.",
    );
  else
    notes.push(
      "Whatever else ran on this machine at the same time (the busiest processes are listed above) moves absolute numbers between runs, by 2-5x on a shared VM; ratios within one run are steadier. Each contender's rounds are interleaved with the others' so that load changes hit all of them.",
    );
  notes.push(
    "The generator is BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (native/bpf/xvs_gen.bpf.c via native/shim/xvs_gen.c), XDP_TX out of the generator's veth. Its own rate (row `gen`: frames into an XDP drop on the director) is the ceiling of what this lab can measure. Rates are counted by the sink program on the sink's interface (xvs_sink_tc at tc ingress: count and drop the benchmark port), read twice `duration` apart after `warmup` seconds.",
  );
  if (o.pin) {
    notes.push(
      `CPUs: generator, TCP clients and servers on CPU ${o.genCpu}; the director on CPU ${o.dirCpu} (the xvs daemon via taskset, the C forwarder via sched_setaffinity). ` +
        (o.steer
          ? `On veth a packet's receive processing runs on the CPU that sent it; here the director's two interfaces use threaded NAPI with their kernel threads pinned to CPU ${o.dirCpu}, so its receive work (XDP steering and the copy into the AF_XDP UMEM, or the kernel's skb building, GRO and forwarding) runs on the director's CPU too, and the generator's and sink's interfaces use threaded NAPI pinned to CPU ${o.genCpu} (a veth's NAPI otherwise runs on the CPU that queued the frame: the sink's skb building and GRO would be the director's): CPU ${o.dirCpu} does exactly the director's work, receive, balance, transmit, for every contender. Rate rows note each CPU's busy share over the window, the NAPI threads' share and CPU time per forwarded packet, and the load average.`
          : `Receive processing is left where veth puts it (--no-steer): on the sending CPU, so the director's receive work (XDP steering and the UMEM copy, or the kernel's skb building, GRO and forwarding) runs on the generator's CPU ${o.genCpu}.`),
    );
  } else notes.push("Nothing pinned (--no-pin): contenders and generator share the CPUs as the scheduler decides.");
  for (const c of contenders) if (c.skipReason && c.kind === "ipvs") notes.push(`Kernel IPVS: ${c.skipReason}.`);
  const nftFlows = rows.filter(
    (r) =>
      r.contender === "nft" && r.workload.startsWith("flows-") && typeof r.extra.memory === "string" && /nf_conntrack_max=(\d+)/.test(String(r.extra.memory)),
  );
  for (const r of nftFlows) {
    const max = Number(/nf_conntrack_max=(\d+)/.exec(String(r.extra.memory))![1]);
    const n = Number(/flows-(\d+)([kM]?)/.exec(r.workload)?.[1] ?? 0) * (r.workload.endsWith("M") ? 1e6 : r.workload.endsWith("k") ? 1e3 : 1);
    if (n > max)
      notes.push(
        `nftables at ${r.workload}: conntrack holds at most nf_conntrack_max=${max} entries (a global setting of the root namespace, read-only in a lab namespace, not changed by the benchmark): new flows beyond that are dropped.`,
      );
  }
  const outrun = outrunNote(rows, o.pin && o.steer);
  if (outrun) notes.push(outrun);
  if (sinkKinds.has("xdp"))
    notes.push(
      "tc BPF was not available (sch_ingress/cls_bpf), so the sink counted in XDP: on veth that makes the kernel copy every skb without XDP headroom, which AF_XDP copy-mode transmit skbs (xvs, xskfwd) are and forwarded skbs are not: the AF_XDP contenders pay one extra copy per packet on the director CPU in this run.",
    );
  machine["load average at end (1/5/15 min)"] = (await import("node:os"))
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  machine["busiest processes at end"] = await busyProcesses();
  const finishedAt = new Date().toISOString();
  const report: BenchReport = {
    schema: "xvs-bench/1",
    title: `xvs bench${o.inGuest ? " (ipvs-vm guest, emulated: ratios only)" : ""} — ${finishedAt.slice(0, 10)}`,
    startedAt,
    finishedAt,
    seconds: (Date.now() - t0) / 1000,
    machine,
    options: { ...o } as Record<string, unknown>,
    setup: [
      "Lab: gen (198.18.1.2) -> veth -> dir (c0 198.18.1.1, s0 198.18.2.1, VIP 198.18.0.100) -> veth -> sink (198.18.2.11-13), static neighbours; a fresh lab for every contender in every round.",
      `Services: UDP VIP:9000 (packet rates), UDP VIP:9001 (echo, latency), TCP VIP:80 (HTTP/1.0, connection rate); round robin over the sink's 3 addresses.`,
      `${o.rounds} rounds, contender order rotated each round; every contender gets ${o.startWarmup} s of 64-byte traffic after it starts (a fresh xvs runs in the JIT's lower tiers at first); ${o.warmup} s warm-up + ${o.duration} s window per measurement; ${o.flows} UDP flows in udp64/udp1514; udp64: the rate under the generator's full load, then evenly paced offered loads of ${PEAK_LEVELS.join("/")}x that rate for ${Math.max(0.5, o.duration * 0.35).toFixed(2)} s each, the peak being the most forwarded; TCP: ${o.tcpConcurrency} concurrent clients; latency: ${o.pingCount} round trips one at a time; flows workload: ${o.flowCounts.join(", ")} flows, in the first ${Math.min(o.flowsRounds, o.rounds)} rounds, created at 60% of the contender's 64-byte rate of that round, then measured at full offered load.`,
    ],
    contenders: cinfo,
    workloads: workloadOrder(rows).map(workloadInfo),
    rows,
    micro,
    profile,
    targets,
    notes,
  };
  const table = renderTable(report);
  if (!o.quiet) process.stdout.write(table);
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    const base = join(o.out, o.name);
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + "\n");
    writeFileSync(`${base}.svg`, renderSvg(report));
    writeFileSync(`${base}.md`, renderMarkdown(report, `${o.name}.svg`));
    log(`wrote ${base}.json, ${base}.md, ${base}.svg`);
  }
  const xvsFailed = rows.some((r) => r.contender.startsWith("xvs-") && (r.errors.length > 0 || r.n === 0));
  return o.check && (xvsFailed || active.every((c) => c.kind !== "xvs")) ? 1 : 0;
}
