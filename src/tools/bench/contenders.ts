/**
 * The contenders of `xvs bench`: what runs on the director, set up in a fresh lab for every
 * (round, contender), and torn down after. Each one says which traffic it takes part in, can be
 * skipped with a reason (not available here), and may explain a measurement that forwarded
 * nothing (`diagnose`).
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import * as abi from "../../ffi/abi.ts";
import { steerObjPath } from "../../ffi/assets.ts";
import { SinkReader } from "../../ffi/gen.ts";
import { startDaemon, startTimeoutS, type LabDaemon } from "../lab/daemon.ts";
import { sh } from "../lab/netns.ts";
import { agentJson, type BenchLab, GUE_PORT, PING_PORT, SINK_ADDRS, TCP_PORT, UDP_PORT, VIP } from "./lab.ts";
import { modeLabel, tunnelOf, type BenchOptions, type ContenderKind, type Mode, type WorkloadKind } from "./options.ts";
import xskfwdSource from "../../../bench/xskfwd.c" with { type: "text" };
import commonHeader from "../../../native/bpf/xvs_common.h" with { type: "text" };

export interface RunCtx {
  o: BenchOptions;
  bl: BenchLab;
  progress(msg: string): void;
}

/** Tracked flows and the memory they take, for the `flows` workload. */
export interface Tracked {
  flows: number;
  /** Bytes of memory attributed to the tracked flows (see `how`). */
  bytes: number;
  how: string;
}

export abstract class Contender {
  abstract readonly id: string;
  abstract readonly kind: ContenderKind;
  abstract readonly label: string;
  readonly mode: Mode = "nat";
  /** Destination of the generator's UDP frames, TCP clients, UDP pings. */
  udpDst = VIP;
  tcpHosts = [VIP];
  pingHost = VIP;
  abstract readonly workloads: WorkloadKind[];
  /** Null when it can run here, else why not. */
  skipReason: string | null = null;
  /** Check availability once, before the first round. */
  async prepare(_o: BenchOptions): Promise<void> {}
  abstract start(ctx: RunCtx, profile?: boolean): Promise<void>;
  abstract stop(ctx: RunCtx): Promise<Record<string, unknown> | null>;
  /** Counters to read instead of the sink's. */
  counter(ctx: RunCtx): SinkReader {
    return ctx.bl.sink;
  }
  async tracked(_ctx: RunCtx): Promise<Tracked | null> {
    return null;
  }
  async diagnose(_ctx: RunCtx): Promise<string> {
    return "";
  }
  /** Pid of the contender's own process on the director (its CPU time is the director's), 0: none (kernel paths). */
  processPid(): number {
    return 0;
  }
  /** Packets forwarded by XDP itself and packets that reached the contender's own path so far (xvs); null: not known. */
  async pathCounts(): Promise<{ xdp: number; ts: number } | null> {
    return null;
  }
}

/** Read a number from `/proc/slabinfo`: objsize of a slab cache (0 when unreadable). */
function slabObjSize(name: string): number {
  try {
    for (const line of readFileSync("/proc/slabinfo", "utf8").split("\n")) {
      const f = line.split(/\s+/);
      if (f[0] === name) return Number(f[3]);
    }
  } catch {
    // not readable
  }
  return 0;
}

/** The generator alone: frames into an XDP program that counts and drops them on the director. */
export class GenOnly extends Contender {
  readonly id = "gen";
  readonly kind = "gen" as const;
  readonly label = "generator alone (XDP drop on the director's c0): the ceiling of the lab";
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514"];
  private reader: SinkReader | null = null;
  async start(ctx: RunCtx): Promise<void> {
    const { mapId } = await agentJson<{ mapId: number }>(ctx.bl.lab, "dir", ["xdp", "--iface", "c0", "--prog", "sink", "--port", String(UDP_PORT)]);
    this.reader = new SinkReader(mapId);
  }
  override counter(): SinkReader {
    return this.reader!;
  }
  async stop(): Promise<null> {
    this.reader?.close();
    this.reader = null;
    return null;
  }
}

/** xvs itself: the daemon on the director, pinned to the director CPU, configured over its API. */
export class Xvs extends Contender {
  readonly id: string;
  readonly kind = "xvs" as const;
  readonly label: string;
  override readonly mode: Mode;
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514", "latency", "tcp", "flows", "udp64-replied"];
  private d: LabDaemon | null = null;
  private rssStart = 0;
  private connMax = 1 << 20;

  /** `--flow-cache on|off`: on, established flows are forwarded by the XDP program itself. */
  private readonly flowCache: boolean;

  /** `--workers N` (0: the daemon's default); bench/workers.bench.ts compares 1 and 2. */
  private readonly workers: number;
  /** The stopped daemon's log (its per-worker "xvs profile" lines), for bench/workers.bench.ts. */
  lastLog = "";

  constructor(mode: Mode, flowCache = true, workers = 0) {
    super();
    this.mode = mode;
    this.flowCache = flowCache;
    this.workers = workers;
    this.id = (flowCache ? `xvs-${mode}` : `xvs-${mode}-nocache`) + (workers > 0 ? `-w${workers}` : "");
    const w = workers > 1 ? `${workers} workers` : "one worker";
    this.label = flowCache
      ? `xvs ${modeLabel(mode)} (TypeScript fast path, established flows forwarded by the XDP flow cache), ${w}`
      : `xvs ${modeLabel(mode)} --flow-cache off (AF_XDP + TypeScript fast path for every packet), ${w}`;
  }

  override async prepare(o: BenchOptions): Promise<void> {
    if (o.workloads.includes("flows")) this.connMax = Math.max(1 << 20, Math.ceil(Math.max(...o.flowCounts) * 1.2));
  }

  async start(ctx: RunCtx, profile = false): Promise<void> {
    const { o, bl } = ctx;
    const wrap = o.pin ? ["taskset", "-c", String(o.dirCpu)] : [];
    const extra = ["--conn-max", String(this.connMax), "--flow-cache", this.flowCache ? "on" : "off"];
    if (this.workers > 0) extra.push("--workers", String(this.workers));
    if (process.env.XVS_BENCH_IDLE_MS) extra.push("--idle-ms", process.env.XVS_BENCH_IDLE_MS);
    this.d = await startDaemon(bl.lab, "dir", ["c0", "s0"], extra, undefined, { wrap, env: profile ? { XVS_PROFILE: "1" } : {} });
    const forward = this.mode === "nat" ? "masq" : this.mode === "dr" ? "route" : "tunnel";
    for (const [protocol, port] of [
      ["udp", UDP_PORT],
      ["udp", PING_PORT],
      ["tcp", TCP_PORT],
    ] as const) {
      await this.ok("POST", "/v1/services", { protocol, address: VIP, port, scheduler: "rr" });
      for (const a of SINK_ADDRS) {
        const dest: Record<string, unknown> = { address: a, port, forward, weight: 1 };
        const tunnel = tunnelOf(this.mode);
        if (tunnel === "gue") dest.tunnel = { type: tunnel, port: GUE_PORT };
        else if (tunnel) dest.tunnel = { type: tunnel };
        await this.ok("POST", `/v1/services/${protocol}:${VIP}:${port}/dests`, dest);
      }
    }
    this.rssStart = this.rss();
  }

  private async ok(method: string, path: string, body: unknown): Promise<void> {
    const r = await this.d!.api(method, path, body);
    if (r.status >= 300) throw new Error(`xvs API ${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  }

  private rss(): number {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.d!.proc.pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  /** GET /metrics as text, and the daemon's pid (bench/workers.bench.ts: busy shares, thread CPU time). */
  async metricsText(): Promise<string> {
    return String((await this.d!.api("GET", "/metrics")).json);
  }
  get pid(): number {
    return this.d?.proc.pid ?? 0;
  }
  override processPid(): number {
    return this.pid;
  }

  async verdicts(): Promise<Record<string, number>> {
    const r = await this.d!.api("GET", "/v1/stats");
    return (r.json as { verdicts: Record<string, number> }).verdicts ?? {};
  }

  /** The flow cache's forwarded packets (XDP_TX + redirect, /v1/stats xdp) and the frames the workers received (rx_packets). */
  override async pathCounts(): Promise<{ xdp: number; ts: number }> {
    const j = (await this.d!.api("GET", "/v1/stats")).json as { xdp: number[]; verdicts: Record<string, number> };
    const x = j.xdp ?? [];
    return { xdp: (x[abi.XVS_XDP_FLOW_TX] ?? 0) + (x[abi.XVS_XDP_FLOW_REDIRECT] ?? 0), ts: j.verdicts?.rx_packets ?? 0 };
  }

  override async tracked(): Promise<Tracked> {
    const v = await this.verdicts();
    const flows = (v.new_conns ?? 0) - (v.conns_expired ?? 0);
    return { flows, bytes: Math.max(0, this.rss() - this.rssStart), how: `daemon RSS growth (connection table preallocated for ${this.connMax} connections)` };
  }

  override async diagnose(): Promise<string> {
    try {
      const v = await this.verdicts();
      const nz = Object.entries(v)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}=${n}`);
      return `xvs counters: ${nz.join(" ") || "all zero"}`;
    } catch (e) {
      return `xvs counters unreadable: ${e instanceof Error ? e.message : e}`;
    }
  }

  async stop(): Promise<Record<string, unknown> | null> {
    if (!this.d) return null;
    const d = this.d;
    this.d = null;
    await d.stop();
    this.lastLog = d.log();
    const line = d
      .log()
      .split("\n")
      .find((l) => l.includes('"xvs profile"'));
    return line ? (JSON.parse(line) as Record<string, unknown>) : null;
  }
}

/**
 * The in-kernel ceiling (native/bpf/xvs_ceiling.bpf.c): a stateless XDP UDP DNAT that redirects
 * from c0 to s0 itself. No connection tracking, no counters: what an XDP flow-cache hit costs at
 * the least on this machine. UDP only (TCP and the echo pass to the kernel, which does not
 * balance them, so it takes part in the packet-rate workloads only).
 */
export class Ceiling extends Contender {
  readonly id = "ceiling";
  readonly kind = "ceiling" as const;
  readonly label = "in-kernel XDP ceiling: stateless UDP DNAT + redirect (native/bpf/xvs_ceiling.bpf.c)";
  // udp64-replied: the reference of the cached NAT rate (the sink's replies go back through the kernel)
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514", "udp64-replied"];
  async start(ctx: RunCtx): Promise<void> {
    const { bl } = ctx;
    await agentJson(bl.lab, "dir", [
      "ceiling",
      "--in",
      "c0",
      "--out",
      "s0",
      "--vip",
      VIP,
      "--port",
      String(UDP_PORT),
      "--backends",
      SINK_ADDRS.join(","),
      "--dst-mac",
      bl.mac.sink,
    ]);
  }
  async stop(ctx: RunCtx): Promise<null> {
    await agentJson(ctx.bl.lab, "dir", ["xdp-off", "--iface", "c0"]).catch(() => {});
    return null;
  }
}

/** Kernel IPVS, configured with ipvsadm in the director namespace. */
export class Ipvs extends Contender {
  readonly id: string;
  readonly kind = "ipvs" as const;
  readonly label: string;
  override readonly mode: Mode;
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514", "latency", "tcp", "flows", "udp64-replied"];

  constructor(mode: Mode) {
    super();
    this.mode = mode;
    this.id = `ipvs-${mode}`;
    this.label = `kernel IPVS ${modeLabel(mode)} (ipvsadm, rr)`;
  }

  override async prepare(): Promise<void> {
    const ipvsadm = await sh(["sh", "-c", "command -v ipvsadm"], true);
    const mp = await sh(["modprobe", "ip_vs"], true);
    await sh(["modprobe", "ip_vs_rr"], true);
    if (!existsSync("/proc/net/ip_vs") && mp.code !== 0) {
      this.skipReason =
        `this kernel has no IPVS (modprobe ip_vs: ${(mp.stderr.trim() || `exit ${mp.code}`).replace(/\s+/g, " ")}); ` +
        `run 'xvs bench --ipvs-vm' for a side-by-side in a qemu guest with kernel IPVS, or use a kernel with CONFIG_IP_VS and ipvsadm`;
    } else if (ipvsadm.code !== 0) {
      this.skipReason = "the kernel has IPVS but ipvsadm is not installed (apt-get install ipvsadm)";
    }
  }

  async start(ctx: RunCtx): Promise<void> {
    const lab = ctx.bl.lab;
    const tunnel = tunnelOf(this.mode);
    const flag =
      this.mode === "nat" ? ["-m"] : this.mode === "dr" ? ["-g"] : ["-i", "--tun-type", tunnel!, ...(tunnel === "gue" ? ["--tun-port", String(GUE_PORT)] : [])];
    for (const [p, port] of [
      ["-u", UDP_PORT],
      ["-u", PING_PORT],
      ["-t", TCP_PORT],
    ] as const) {
      await lab.exec("dir", ["ipvsadm", "-A", p, `${VIP}:${port}`, "-s", "rr"]);
      for (const a of SINK_ADDRS) await lab.exec("dir", ["ipvsadm", "-a", p, `${VIP}:${port}`, "-r", `${a}:${port}`, ...flag, "-w", "1"]);
    }
  }

  override async tracked(ctx: RunCtx): Promise<Tracked> {
    const r = await ctx.bl.lab.exec("dir", ["ipvsadm", "-Ln"], true);
    let flows = 0;
    for (const line of r.stdout.split("\n")) {
      const m = /^\s+->\s+\S+\s+\S+\s+\d+\s+(\d+)\s+(\d+)/.exec(line);
      if (m) flows += Number(m[1]) + Number(m[2]);
    }
    const obj = slabObjSize("ip_vs_conn");
    return { flows, bytes: flows * obj, how: obj ? `ip_vs_conn slab objects (${obj} B each)` : "slab size unknown" };
  }

  override async diagnose(ctx: RunCtx): Promise<string> {
    const r = await ctx.bl.lab.exec("dir", ["ipvsadm", "-Ln", "--stats"], true);
    return `ipvsadm -Ln --stats: ${r.stdout.replace(/\s+/g, " ").slice(0, 400)}`;
  }

  async stop(ctx: RunCtx): Promise<null> {
    await ctx.bl.lab.exec("dir", ["ipvsadm", "-C"], true);
    return null;
  }
}

/** nftables DNAT, kube-proxy's nftables layout: a service vmap, round-robin endpoint chains. */
export class Nft extends Contender {
  readonly id = "nft";
  readonly kind = "nft" as const;
  readonly label = "nftables DNAT, numgen inc mod 3 (round robin), conntrack, kube-proxy-style maps";
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514", "latency", "tcp", "flows", "udp64-replied"];

  override async prepare(): Promise<void> {
    const r = await sh(["sh", "-c", "command -v nft"], true);
    if (r.code !== 0) this.skipReason = "nft is not installed (apt-get install nftables)";
  }

  /** The ruleset, loaded into the director namespace only. */
  static ruleset(): string {
    const svcs = [
      ["udp", UDP_PORT, "udp"],
      ["udp", PING_PORT, "ping"],
      ["tcp", TCP_PORT, "tcp"],
    ] as const;
    const elems = svcs.map(([p, port, n]) => `${VIP} . ${p} . ${port} : goto svc-${n}`).join(", ");
    let chains = "";
    for (const [p, port, n] of svcs) {
      const eps = SINK_ADDRS.map((_, i) => `${i} : goto ep-${n}-${i + 1}`).join(", ");
      chains += `\tchain svc-${n} {\n\t\tnumgen inc mod ${SINK_ADDRS.length} vmap { ${eps} }\n\t}\n`;
      SINK_ADDRS.forEach((a, i) => {
        chains += `\tchain ep-${n}-${i + 1} {\n\t\tmeta l4proto ${p} dnat to ${a}:${port}\n\t}\n`;
      });
    }
    return `table ip xvsbench {
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { ${elems} }
\t}
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t}
${chains}}
`;
  }

  async start(ctx: RunCtx): Promise<void> {
    const lab = ctx.bl.lab;
    // a lab namespace is new, but be safe against a reused one
    await lab.exec("dir", ["nft", "delete", "table", "ip", "xvsbench"], true);
    const p = Bun.spawn(["ip", "netns", "exec", lab.ns("dir"), "nft", "-f", "-"], { stdin: new Blob([Nft.ruleset()]), stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`nft -f failed: ${err.trim()}`);
  }

  override async tracked(ctx: RunCtx): Promise<Tracked> {
    const r = await ctx.bl.lab.exec("dir", ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"], true);
    const max = await ctx.bl.lab.exec("dir", ["cat", "/proc/sys/net/netfilter/nf_conntrack_max"], true);
    const flows = Number(r.stdout.trim()) || 0;
    const obj = slabObjSize("nf_conntrack");
    return {
      flows,
      bytes: flows * obj,
      how: `${obj ? `nf_conntrack slab objects (${obj} B each)` : "slab size unknown"}; nf_conntrack_max=${max.stdout.trim()}`,
    };
  }

  override async diagnose(ctx: RunCtx): Promise<string> {
    const r = await ctx.bl.lab.exec("dir", ["nft", "list", "ruleset"], true);
    return `ruleset ${r.stdout.length} bytes; nf_conntrack_count ${(await this.tracked(ctx)).flows}`;
  }

  async stop(ctx: RunCtx): Promise<null> {
    await ctx.bl.lab.exec("dir", ["nft", "delete", "table", "ip", "xvsbench"], true);
    return null;
  }
}

/** Plain IP forwarding: the client addresses the real servers directly, routed by the director. */
export class Plain extends Contender {
  readonly id = "plain";
  readonly kind = "plain" as const;
  readonly label = "plain kernel IP forwarding, no balancing (the floor)";
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514", "latency", "tcp", "udp64-replied"];
  override udpDst = SINK_ADDRS[0];
  override tcpHosts = SINK_ADDRS;
  override pingHost = SINK_ADDRS[0];
  async start(): Promise<void> {}
  async stop(): Promise<null> {
    return null;
  }
}

/** The C AF_XDP reference forwarder (bench/xskfwd.c), built with gcc once per run. */
export class XskFwd extends Contender {
  readonly id = "xskfwd";
  readonly kind = "xskfwd" as const;
  readonly label = "C AF_XDP forwarder (bench/xskfwd.c): same steering, rings and per-packet work as xvs, in C";
  readonly workloads: WorkloadKind[] = ["udp64", "udp1514"];
  private bin = "";
  private steer = "";
  private proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private out: Promise<string> = Promise.resolve("");
  override processPid(): number {
    return this.proc?.exitCode === null ? this.proc.pid : 0;
  }

  override async prepare(o: BenchOptions): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "xvs-bench-xskfwd-"));
    this.steer = join(dir, "xvs_steer.bpf.o");
    writeFileSync(this.steer, await Bun.file(steerObjPath).bytes());
    if (o.xskfwdBin) {
      if (!existsSync(o.xskfwdBin)) this.skipReason = `--xskfwd-bin ${o.xskfwdBin} does not exist`;
      this.bin = o.xskfwdBin;
      return;
    }
    const gcc = await sh(["sh", "-c", "command -v gcc"], true);
    if (gcc.code !== 0) {
      this.skipReason = "needs a C compiler: gcc is not installed (apt-get install gcc libxdp-dev libbpf-dev), or pass --xskfwd-bin";
      return;
    }
    writeFileSync(join(dir, "xskfwd.c"), xskfwdSource);
    writeFileSync(join(dir, "xvs_common.h"), commonHeader);
    this.bin = join(dir, "xskfwd");
    const r = await sh(["gcc", "-O2", "-Wall", "-I", dir, "-o", this.bin, join(dir, "xskfwd.c"), "-lxdp", "-lbpf"], true);
    if (r.code !== 0) {
      this.skipReason = `gcc could not build bench/xskfwd.c (libxdp-dev and libbpf-dev installed?): ${r.stderr.trim().split("\n").slice(0, 3).join(" ")}`;
      return;
    }
    chmodSync(this.bin, 0o755);
  }

  async start(ctx: RunCtx): Promise<void> {
    const { o, bl } = ctx;
    const args = [
      this.bin,
      "--in",
      "c0",
      "--out",
      "s0",
      "--steer",
      this.steer,
      "--vip",
      VIP,
      "--port",
      String(UDP_PORT),
      "--backends",
      SINK_ADDRS.join(","),
      "--dst-mac",
      bl.mac.sink,
    ];
    if (o.pin) args.push("--cpu", String(o.dirCpu));
    const p = bl.lab.spawn("dir", args) as Subprocess<"ignore", "pipe", "pipe">;
    this.proc = p;
    let text = "";
    this.out = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of p.stdout) text += dec.decode(chunk);
      return text;
    })();
    const waitS = startTimeoutS(10);
    const deadline = performance.now() + waitS * 1000;
    while (!text.includes("ready") && p.exitCode === null && performance.now() < deadline) await Bun.sleep(20);
    if (!text.includes("ready")) {
      p.kill("SIGKILL");
      throw new Error(`xskfwd did not start: ${(await new Response(p.stderr).text()).trim().slice(-300) || `no ready line within ${waitS} s`}`);
    }
  }

  async stop(): Promise<Record<string, unknown> | null> {
    const p = this.proc;
    this.proc = null;
    if (!p) return null;
    p.kill("SIGTERM");
    await Promise.race([p.exited, Bun.sleep(3000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
    const text = await Promise.race([this.out, Bun.sleep(1000).then(() => "")]);
    const line = text.trim().split("\n").pop() ?? "";
    return line.startsWith("{") ? (JSON.parse(line) as Record<string, unknown>) : null;
  }
}

/** All contenders the options ask for, in a stable order. */
export function makeContenders(o: BenchOptions): Contender[] {
  const out: Contender[] = [];
  for (const k of o.contenders) {
    if (k === "gen") out.push(new GenOnly());
    if (k === "xvs") for (const m of o.modes) out.push(new Xvs(m));
    if (k === "xvs-nocache") for (const m of o.modes) out.push(new Xvs(m, false));
    if (k === "ipvs") for (const m of o.modes) out.push(new Ipvs(m));
    if (k === "nft") out.push(new Nft());
    if (k === "plain") out.push(new Plain());
    if (k === "xskfwd") out.push(new XskFwd());
    if (k === "ceiling") out.push(new Ceiling());
  }
  return out;
}
