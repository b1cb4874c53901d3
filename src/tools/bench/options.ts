/**
 * `xvs bench` options: what to race, how long, where the CPUs go, where the results land.
 */
import { splitOptionValues } from "../../argv.ts";
import { ErrorCode, LbError } from "../../errors.ts";

export const CONTENDER_KINDS = ["gen", "xvs", "xvs-nocache", "ipvs", "nft", "plain", "xskfwd", "ceiling"] as const;
export type ContenderKind = (typeof CONTENDER_KINDS)[number];
/** Forwarding modes: "tun" is IPIP (ipvsadm's default tunnel), "tun-gue" and "tun-gre" the others. */
export const MODES = ["nat", "dr", "tun", "tun-gue", "tun-gre"] as const;
export type Mode = (typeof MODES)[number];

/** How reports name a mode: NAT, DR, TUN (IPIP), TUN (GUE), TUN (GRE). */
export function modeLabel(m: Mode): string {
  const t = tunnelOf(m);
  return t ? `TUN (${t.toUpperCase()})` : m.toUpperCase();
}

/** The tunnel type of a tunnel mode, null for NAT and DR. */
export function tunnelOf(m: Mode): "ipip" | "gue" | "gre" | null {
  return m === "tun" ? "ipip" : m === "tun-gue" ? "gue" : m === "tun-gre" ? "gre" : null;
}
// udp64-replied runs after the other packet-rate workloads of a contender (run.ts takes them in
// this order): the replies it has the sink send leave NAT flows cached (xvs) or conntrack entries
// ASSURED, which would change what later workloads over the same flows measure
export const WORKLOADS = ["udp64", "udp1514", "latency", "tcp", "flows", "udp64-replied", "micro"] as const;
export type WorkloadKind = (typeof WORKLOADS)[number];

export interface BenchOptions {
  rounds: number;
  /** Seconds measured per packet-rate / connection-rate measurement. */
  duration: number;
  /** Seconds of traffic before a measurement window opens. */
  warmup: number;
  /** Seconds of traffic right after a contender starts, before its first measurement. */
  startWarmup: number;
  contenders: ContenderKind[];
  /** Forwarding modes of the balancers (xvs, kernel IPVS): one contender per mode. */
  modes: Mode[];
  workloads: WorkloadKind[];
  /** CPU of the generator, clients and servers. */
  genCpu: number;
  /** CPU of the director (the contender). */
  dirCpu: number;
  /** Pin at all (false: nothing pinned, no NAPI threads moved). */
  pin: boolean;
  /**
   * Put all of the director's kernel receive work on dirCpu (threaded NAPI on its interfaces,
   * pinned) and the generator's and sink's on genCpu (threaded NAPI, pinned), instead of
   * leaving it on whichever CPU sent the packet (veth's default).
   */
  steer: boolean;
  /** Flows of the UDP packet-rate workloads. */
  flows: number;
  /** Tracked-flow counts of the `flows` workload. */
  flowCounts: number[];
  /** Rounds that include the `flows` workload (the first N; it is the slowest). */
  flowsRounds: number;
  tcpConcurrency: number;
  pingCount: number;
  /** Seconds per microbenchmark row. */
  microSeconds: number;
  /** Output directory (null: no files). */
  out: string | null;
  /** Base name of the result files. */
  name: string;
  /** Extra profiled xvs run (poll-loop phases, perf sampling when it works). */
  profile: boolean;
  /** Free text describing the machine's situation, put in the report. */
  note: string;
  /** Running inside the ipvs-vm guest (emulated: ratios only). */
  inGuest: boolean;
  /** Host side: run the comparison inside the ipvs-vm guest. */
  ipvsVm: boolean;
  /** The ipvs-vm tools directory (prepare.sh, boot.sh). */
  ipvsVmTools: string | null;
  /** Prebuilt C forwarder (else built with gcc). */
  xskfwdBin: string | null;
  /** Exit 1 unless every xvs measurement succeeded. */
  check: boolean;
  /** Only render an existing JSON result again (table, markdown, SVG). */
  render: string | null;
  /** Machine-readable progress only (no table). */
  quiet: boolean;
}

export const BENCH_HELP = `xvs bench [OPTIONS]

Race xvs against the kernel's own balancers on this machine, in a network-namespace lab
(generator -> director -> sink): the same traffic through each contender in turn, interleaved
over several rounds. Prints a table (median, min..max, ratio to xvs) and writes JSON, markdown
and an SVG plot. Needs root. Default run: under 5 minutes on 2 CPUs.

contenders (--contenders, comma-separated; default all):
  gen      the generator alone into an XDP drop on the director (its own rate: the ceiling)
  xvs      xvs in each --modes (NAT; DR and TUN when the dataplane has them), flow cache on
  xvs-nocache  the same with --flow-cache off (every packet through AF_XDP and TypeScript)
  ipvs     kernel IPVS (ipvsadm) in each --modes, when this kernel has ip_vs
  nft      nftables DNAT round robin (numgen inc) with conntrack, kube-proxy style maps
  plain    plain kernel IP forwarding, no balancing (the floor)
  xskfwd   the C AF_XDP reference forwarder (bench/xskfwd.c; needs gcc, or --xskfwd-bin)
  ceiling  a stateless in-kernel XDP UDP DNAT + redirect (native/bpf/xvs_ceiling.bpf.c): the
           most an XDP flow cache could forward here

workloads (--workloads; default all):
  udp64    64-byte UDP frames/s (live-frames generator, --flows flows)
  udp1514  1514-byte frames (1500-byte IP packets)/s
  latency  UDP echo round trips, p50/p99 (one at a time)
  tcp      new TCP connections/s, one short request/response each
  flows    packet rate and memory with --flow-counts tracked flows (default 100000,1000000)
  udp64-replied  udp64 where the sink answers the first packet of each flow (a UDP NAT flow
           is cached by xvs only at its first reply; udp64 is one-way)
  micro    pure-CPU microbenchmarks of the fast path (synthetic frames, 4K and 1M flows)

options:
  --rounds N            rounds, contender order rotated every round (default 3)
  --duration S          seconds per measurement window (default 2)
  --warmup S            seconds of traffic before each window (default 0.7)
  --start-warmup S      seconds of traffic after a contender starts, before its first window
                        (default 1.5: a fresh xvs is still being compiled by the JIT)
  --modes M[,M]         forwarding modes: nat,dr,tun,tun-gue,tun-gre (default nat; tun is
                        IPIP; GUE on port 6080 without checksums; GRE without checksums)
  --gen-cpu N           CPU of the generator, clients and servers (default 0)
  --dir-cpu N           CPU of the director (default 1)
  --no-pin              pin nothing and leave receive processing where veth puts it
  --no-steer            leave each veth's receive processing on the sending CPU (veth's default)
                        instead of moving the director's to --dir-cpu (threaded NAPI, pinned)
                        and the generator's and sink's to --gen-cpu (threaded NAPI)
  --flows N             flows in the UDP workloads (default 256)
  --flow-counts N[,N]   tracked flows for the flows workload (default 100000,1000000)
  --flows-rounds N      rounds that include the flows workload, the slowest (default 2)
  --tcp-concurrency N   parallel TCP clients (default 32)
  --ping-count N        latency samples per measurement (default 500)
  --micro-seconds S     seconds per microbenchmark row (default 0.3)
  --out DIR             write DIR/NAME.{json,md,svg} (default: no files; bench/results in the repo)
  --name NAME           base name of the files (default bench-<date>)
  --no-profile          skip the profiled xvs run
  --note TEXT           describe the machine's situation in the report
  --xskfwd-bin PATH     use a prebuilt C forwarder
  --ipvs-vm             run the comparison with kernel IPVS inside the ipvs-vm qemu guest
  --ipvs-vm-tools DIR   the ipvs-vm guest's tools (prepare.sh, boot.sh); default: $IPVSVM_TOOLS
  --check               exit 1 unless every xvs measurement succeeded
  --render FILE.json    print the table of an earlier run and write its .md and .svg again
  --quick               one short round: --rounds 1 --duration 0.5 --warmup 0.3 --start-warmup 0.3
                        --flow-counts 20000 --ping-count 200 --micro-seconds 0.1 --no-profile

On veth the receiver's processing runs on the sender's CPU: the generator and the director are
pinned to different CPUs, the director's receive processing is moved to the director's CPU
(threaded NAPI), and the report says which CPU does what.
`;

function list<T extends string>(v: string, allowed: readonly T[], what: string): T[] {
  const out = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const x of out) if (!allowed.includes(x as T)) throw new LbError(ErrorCode.Invalid, `${what}: unknown '${x}' (one of ${allowed.join(", ")})`);
  return out as T[];
}

export function defaultOptions(): BenchOptions {
  const d = new Date();
  const stamp = `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}${String(d.getDate()).padStart(2, "0")}-${String(d.getHours()).padStart(2, "0")}${String(d.getMinutes()).padStart(2, "0")}`;
  return {
    rounds: 3,
    duration: 2,
    warmup: 0.7,
    startWarmup: 1.5,
    contenders: [...CONTENDER_KINDS],
    modes: ["nat"],
    workloads: [...WORKLOADS],
    genCpu: 0,
    dirCpu: 1,
    pin: true,
    steer: true,
    flows: 256,
    flowCounts: [100_000, 1_000_000],
    flowsRounds: 2,
    tcpConcurrency: 32,
    pingCount: 500,
    microSeconds: 0.3,
    out: null,
    name: `bench-${stamp}`,
    profile: true,
    note: "",
    inGuest: false,
    ipvsVm: false,
    ipvsVmTools: null,
    xskfwdBin: null,
    check: false,
    quiet: false,
    render: null,
  };
}

/** Options of `xvs bench` that take no value (`--check=x` is refused, not split). */
const BENCH_FLAGS = ["--no-pin", "--no-steer", "--no-rps", "--no-profile", "--profile", "--in-guest", "--ipvs-vm", "--check", "--quiet", "--quick"];

/** Parse `xvs bench` arguments. @throws LbError(Invalid) naming the bad argument. */
export function parseBenchArgs(words: string[]): BenchOptions {
  const argv = splitOptionValues(words, BENCH_FLAGS); // --rounds=3 as --rounds 3
  const o = defaultOptions();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new LbError(ErrorCode.Invalid, `${a} needs a value`);
      return v;
    };
    const number = (min: number, max: number, int = false): number => {
      const s = val();
      const n = Number(s);
      if (s.trim() === "" || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
        throw new LbError(ErrorCode.Invalid, `${a}: '${s}' is not a number in ${min}..${max}`);
      }
      return n;
    };
    switch (a) {
      case "--rounds":
        o.rounds = number(1, 100, true);
        break;
      case "--duration":
        o.duration = number(0.1, 600);
        break;
      case "--warmup":
        o.warmup = number(0, 60);
        break;
      case "--start-warmup":
        o.startWarmup = number(0, 600);
        break;
      case "--contenders":
        o.contenders = list(val(), CONTENDER_KINDS, a);
        break;
      case "--modes":
        o.modes = list(val(), MODES, a);
        break;
      case "--workloads":
        o.workloads = list(val(), WORKLOADS, a);
        break;
      case "--gen-cpu":
        o.genCpu = number(0, 4095, true);
        break;
      case "--dir-cpu":
        o.dirCpu = number(0, 4095, true);
        break;
      case "--no-pin":
        o.pin = false;
        break;
      case "--no-steer":
      case "--no-rps":
        o.steer = false;
        break;
      case "--flows":
        o.flows = number(1, 16_000_000, true);
        break;
      case "--flow-counts":
        o.flowCounts = val()
          .split(",")
          .map((s) => {
            const n = Number(s);
            if (!Number.isInteger(n) || n < 1 || n > 8_000_000) throw new LbError(ErrorCode.Invalid, `${a}: '${s}' is not a flow count in 1..8000000`);
            return n;
          });
        break;
      case "--flows-rounds":
        o.flowsRounds = number(1, 100, true);
        break;
      case "--tcp-concurrency":
        o.tcpConcurrency = number(1, 4096, true);
        break;
      case "--ping-count":
        o.pingCount = number(10, 1_000_000, true);
        break;
      case "--micro-seconds":
        o.microSeconds = number(0.01, 60);
        break;
      case "--out":
        o.out = val();
        break;
      case "--name": {
        o.name = val();
        if (!/^[A-Za-z0-9._-]+$/.test(o.name)) throw new LbError(ErrorCode.Invalid, `--name: use letters, digits, '.', '_' and '-'`);
        break;
      }
      case "--no-profile":
        o.profile = false;
        break;
      case "--profile":
        o.profile = true;
        break;
      case "--note":
        o.note = val();
        break;
      case "--in-guest":
        o.inGuest = true;
        break;
      case "--ipvs-vm":
        o.ipvsVm = true;
        break;
      case "--ipvs-vm-tools":
        o.ipvsVmTools = val();
        break;
      case "--xskfwd-bin":
        o.xskfwdBin = val();
        break;
      case "--check":
        o.check = true;
        break;
      case "--render":
        o.render = val();
        break;
      case "--quiet":
        o.quiet = true;
        break;
      case "--quick":
        Object.assign(o, { rounds: 1, duration: 0.5, warmup: 0.3, startWarmup: 0.3, flowCounts: [20_000], pingCount: 200, microSeconds: 0.1, profile: false });
        break;
      default:
        throw new LbError(ErrorCode.Invalid, `unknown option '${a}' (see xvs bench --help)`);
    }
  }
  if (o.pin && o.genCpu === o.dirCpu)
    throw new LbError(ErrorCode.Invalid, "--gen-cpu and --dir-cpu must differ (on veth the receiver's work runs on the sender's CPU)");
  return o;
}
