/**
 * The benchmark lab: three namespaces in a line, the same for every contender.
 *
 *   gen  eth0 198.18.1.2/24 ──veth── c0 198.18.1.1/24  dir  s0 198.18.2.1/24 ──veth── eth0  sink
 *                                    VIP 198.18.0.100/32 on lo, ip_forward=1          198.18.2.11-13/24
 *
 * - gen: the traffic source (live-frames UDP generator, TCP client, UDP ping);
 * - dir: the director, where the contender runs (xvs, kernel IPVS, nftables, plain routing,
 *   the C forwarder);
 * - sink: the real servers: three addresses on one interface (a TCP server on 0.0.0.0, a UDP
 *   echo on each address), and the counting sink (xvs_sink_tc at tc ingress), which counts and
 *   drops the UDP benchmark port and passes everything else. tc, not XDP: see xvs_gen.bpf.c.
 *
 * In DR and TUN modes the sink also holds the VIP on lo (arp_ignore/arp_announce), and for TUN
 * runs `xvs decap` (the real-server decapsulation helper, XDP) on its eth0.
 *
 * Neighbours are static (no ARP in the measurements). The director's interfaces keep GRO on
 * so that they take XDP-redirected frames from the generator even with no XDP program of their
 * own (kernel contenders), and have a NAPI context.
 *
 * CPUs (`steer`): on veth a packet's receive processing runs on the CPU that sent it, so by
 * default the director's receive work (XDP steering and the copy into the AF_XDP UMEM, or the
 * kernel's skb building, GRO and forwarding) would run on the generator's CPU, and the sink's on
 * the director's. With `steer`, the director's two interfaces use threaded NAPI with their
 * kernel threads pinned to `dirCpu`, and the generator's and sink's interfaces threaded NAPI
 * pinned to `genCpu` and RPS to `genCpu`: the director's CPU does exactly the director's work
 * (receive, balance, transmit).
 */
import { Lab, sh, type ExecResult } from "../lab/netns.ts";
import { selfCommand } from "../lab/self.ts";
import { SinkReader } from "../../ffi/gen.ts";
import { tunnelOf, type Mode } from "./options.ts";

export const VIP = "198.18.0.100";
export const GEN_ADDR = "198.18.1.2";
export const DIR_CLIENT_ADDR = "198.18.1.1";
export const DIR_SERVER_ADDR = "198.18.2.1";
export const SINK_ADDRS = ["198.18.2.11", "198.18.2.12", "198.18.2.13"];
/** UDP port of the packet-rate workloads (counted and dropped by the sink). */
export const UDP_PORT = 9000;
/** UDP echo port (latency). */
export const PING_PORT = 9001;
/** TCP port (connection rate). */
export const TCP_PORT = 80;
/** GUE port for tunnel modes. */
export const GUE_PORT = 6080;

export interface BenchLabOptions {
  /** Forwarding mode the sink must accept: DR/TUN need the VIP on the sink. */
  mode: Mode;
  /** Director CPU and generator/sink CPU for receive processing (see above); null: leave it. */
  steer: { dirCpu: number; genCpu: number } | null;
  /** CPU for the sink's servers (TCP, UDP echo); null: unpinned. */
  serverCpu: number | null;
  /** Rx/tx queues of every veth (default 1): bench/workers.bench.ts runs several workers. */
  queues?: number;
}

export interface BenchLab {
  lab: Lab;
  mac: { gen: string; c0: string; s0: string; sink: string };
  /** Counters of the sink program on the sink's eth0. */
  sink: SinkReader;
  /** Map id of those counters. */
  sinkMapId: number;
  /**
   * The sink sends the first packet of each flow back as its reply (workload udp64-replied), or
   * stops doing so. Throws with the XDP sink (no tc BPF here).
   */
  sinkReplies(on: boolean): void;
  /** Where the sink counts: "tc" (normal), or "xdp" when tc BPF is unavailable (see xvs_gen.bpf.c). */
  sinkKind: "tc" | "xdp";
  /** Pids of the director's NAPI kernel threads (pinned to the director CPU), when steered. */
  napiThreads: number[];
  /** Pids of the sink's and the generator's NAPI kernel threads (pinned to the generator's CPU), when steered. */
  sideNapiThreads: number[];
  close(): Promise<void>;
}

async function macOf(lab: Lab, host: string, ifname: string): Promise<string> {
  const r = await lab.exec(host, ["ip", "-j", "link", "show", ifname]);
  return (JSON.parse(r.stdout) as { address: string }[])[0].address;
}

/** Run a bench agent in a lab host and parse its one JSON line. @throws on failure. */
export async function agentJson<T>(lab: Lab, host: string, args: string[]): Promise<T> {
  const r: ExecResult = await lab.exec(host, [...selfCommand(), "__bench", ...args], true);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !line.startsWith("{"))
    throw new Error(`xvs __bench ${args[0]} in ${host} failed (${r.code}): ${(r.stderr.trim() || r.stdout.trim()).slice(-400)}`);
  return JSON.parse(line) as T;
}

/** Start a long-running bench server agent and wait for its "ready" line. */
export async function startServer(lab: Lab, host: string, args: string[]): Promise<void> {
  const p = lab.spawn(host, [...selfCommand(), "__bench", ...args]);
  const reader = p.stdout.getReader();
  const timeout = Bun.sleep(20000).then(() => null);
  const r = await Promise.race([reader.read(), timeout]);
  reader.releaseLock();
  const text = r && !r.done ? new TextDecoder().decode(r.value) : "";
  if (!text.includes("ready")) {
    const err = p.exitCode !== null ? await new Response(p.stderr).text() : "no ready line within 20 s";
    throw new Error(`xvs __bench ${args[0]} in ${host}: ${err.trim().slice(-300)}`);
  }
}

/** Write a sysfs file inside a lab host (sysfs is per namespace under `ip netns exec`). */
async function sysfs(lab: Lab, host: string, path: string, value: string): Promise<void> {
  await lab.exec(host, ["sh", "-c", `echo ${value} > ${path}`]);
}

/** Pids of the kernel's NAPI threads ("napi/<if>-<id>"). */
async function napiThreadPids(): Promise<Map<number, string>> {
  const r = await sh(["ps", "-eo", "pid=,comm="], true);
  const out = new Map<number, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(napi\/\S+)/.exec(line);
    if (m) out.set(Number(m[1]), m[2]);
  }
  return out;
}

/**
 * Switch interfaces of a lab host to threaded NAPI and pin the new kernel threads to `cpu`.
 * Thread names are not per namespace: the threads are the ones that appear with our interface
 * names when threading is turned on. @throws when no thread appeared.
 */
async function threadedNapi(lab: Lab, host: string, ifaces: string[], cpu: number): Promise<number[]> {
  const before = await napiThreadPids();
  for (const i of ifaces) await sysfs(lab, host, `/sys/class/net/${i}/threaded`, "1");
  const pids: number[] = [];
  for (let tries = 0; tries < 50 && pids.length < ifaces.length; tries++) {
    pids.length = 0;
    for (const [pid, name] of await napiThreadPids()) {
      if (!before.has(pid) && ifaces.some((i) => name.startsWith(`napi/${i}-`))) pids.push(pid);
    }
    if (pids.length < ifaces.length) await Bun.sleep(20);
  }
  if (pids.length < ifaces.length) throw new Error(`threaded NAPI: expected kernel threads for ${ifaces.join(", ")}, found ${pids.length}`);
  for (const pid of pids) await sh(["taskset", "-p", "-c", String(cpu), String(pid)]);
  return pids;
}

/** Build the lab; on failure everything made so far is torn down before the error is thrown. */
export async function buildBenchLab(tag: string, o: BenchLabOptions): Promise<BenchLab> {
  const lab = new Lab(tag);
  let sink: SinkReader | null = null;
  try {
    await lab.addNs("gen");
    await lab.addNs("dir");
    await lab.addNs("sink");
    await lab.veth("gen", "eth0", "dir", "c0", 1500, o.queues ?? 1);
    await lab.veth("dir", "s0", "sink", "eth0", 1500, o.queues ?? 1);
    await lab.ip("gen", "addr", "add", `${GEN_ADDR}/24`, "dev", "eth0");
    await lab.ip("gen", "route", "add", "default", "via", DIR_CLIENT_ADDR);
    await lab.ip("dir", "addr", "add", `${DIR_CLIENT_ADDR}/24`, "dev", "c0");
    await lab.ip("dir", "addr", "add", `${DIR_SERVER_ADDR}/24`, "dev", "s0");
    await lab.ip("dir", "addr", "add", `${VIP}/32`, "dev", "lo");
    for (const a of SINK_ADDRS) await lab.ip("sink", "addr", "add", `${a}/24`, "dev", "eth0");
    await lab.ip("sink", "route", "add", "default", "via", DIR_SERVER_ADDR);
    await lab.sysctl("dir", "net.ipv4.ip_forward", 1);
    for (const k of ["all", "default", "c0", "s0"]) await lab.sysctl("dir", `net.ipv4.conf.${k}.rp_filter`, 0);
    await lab.sysctl("gen", "net.ipv4.ip_local_port_range", "1024 65535");
    await lab.sysctl("gen", "net.ipv4.tcp_tw_reuse", 1);
    await lab.sysctl("sink", "net.core.somaxconn", 4096);
    await lab.sysctl("sink", "net.ipv4.tcp_max_syn_backlog", 4096);
    if (o.mode !== "nat") {
      // DR/TUN real servers hold the VIP without answering ARP for it; their replies leave
      // through the director, which must not drop them as martians (source = its own VIP)
      await lab.ip("sink", "addr", "add", `${VIP}/32`, "dev", "lo");
      for (const [k, v] of [
        ["arp_ignore", 1],
        ["arp_announce", 2],
      ] as const) {
        await lab.sysctl("sink", `net.ipv4.conf.all.${k}`, v);
        await lab.sysctl("sink", `net.ipv4.conf.eth0.${k}`, v);
      }
      for (const k of ["all", "default", "eth0"]) await lab.sysctl("sink", `net.ipv4.conf.${k}.rp_filter`, 0);
      for (const k of ["all", "s0", "c0"]) await lab.sysctl("dir", `net.ipv4.conf.${k}.accept_local`, 1);
      if (tunnelOf(o.mode)) {
        // decapsulation by xvs's real-server helper (XDP), whatever modules the kernel has; the
        // tc sink then counts the inner packets (without it, the encapsulated ones)
        await lab.exec("sink", [...selfCommand(), "decap", "attach", "eth0", "--gue-port", String(GUE_PORT)], true);
      }
    }
    const mac = {
      gen: await macOf(lab, "gen", "eth0"),
      c0: await macOf(lab, "dir", "c0"),
      s0: await macOf(lab, "dir", "s0"),
      sink: await macOf(lab, "sink", "eth0"),
    };
    await lab.ip("gen", "neigh", "replace", DIR_CLIENT_ADDR, "lladdr", mac.c0, "dev", "eth0", "nud", "permanent");
    await lab.ip("dir", "neigh", "replace", GEN_ADDR, "lladdr", mac.gen, "dev", "c0", "nud", "permanent");
    for (const a of SINK_ADDRS) await lab.ip("dir", "neigh", "replace", a, "lladdr", mac.sink, "dev", "s0", "nud", "permanent");
    await lab.ip("sink", "neigh", "replace", DIR_SERVER_ADDR, "lladdr", mac.s0, "dev", "eth0", "nud", "permanent");
    await lab.exec("dir", ["ethtool", "-K", "c0", "gro", "on"], true);
    await lab.exec("dir", ["ethtool", "-K", "s0", "gro", "on"], true);
    // frames the director redirects in XDP (the flow cache, the in-kernel ceiling) are queued on
    // the sink's NAPI, which a veth only has with GRO on or an XDP program (veth_xdp_xmit); for
    // every contender alike (the sink's receive work is on the generator's CPU). A departure from
    // the default veth peers the labs keep (lab/topology.ts): with them xvs would see no NDO_XMIT
    // on s0/c0 and leave every flow to AF_XDP (dataplane/veth-xdp.ts), and the bench is here to
    // measure the XDP path
    await lab.exec("sink", ["ethtool", "-K", "eth0", "gro", "on"], true);
    await lab.exec("gen", ["ethtool", "-K", "eth0", "gro", "on"], true);
    let napiThreads: number[] = [];
    let sideNapiThreads: number[] = [];
    if (o.steer) {
      napiThreads = await threadedNapi(lab, "dir", ["c0", "s0"], o.steer.dirCpu);
      // the sink's and the generator's receive work on genCpu, both ways it arrives. A frame the
      // director redirects in XDP (the flow cache, the ceiling) is queued on the peer's NAPI,
      // which runs on the CPU that queued it, the director's: an skb built for every frame, and
      // GRO, over a third of what the in-kernel ceiling cost there (perf); so that NAPI gets a
      // thread of its own, pinned. An skb the director transmits (forwarded by the kernel, or
      // an AF_XDP transmit) mostly takes veth's netif_rx path instead (not eligible for the
      // peer's GRO), into the backlog of the sending CPU: RPS moves that. One NAPI at a time:
      // both interfaces are called eth0, and so are their threads
      sideNapiThreads = [...(await threadedNapi(lab, "sink", ["eth0"], o.steer.genCpu)), ...(await threadedNapi(lab, "gen", ["eth0"], o.steer.genCpu))];
      // ahead of the generator on its CPU (SCHED_FIFO): the netif_rx path's backlog is processed
      // in softirq, which preempts the generator, and a thread at the generator's priority would
      // get half the CPU, so the XDP-redirecting contenders' frames would be dropped at the
      // sink's full ring (the ceiling, one run: 58% of its frames, against 2.7% with FIFO)
      for (const pid of sideNapiThreads) await sh(["chrt", "-f", "-p", "50", String(pid)]);
      const mask = (1 << o.steer.genCpu).toString(16);
      await sysfs(lab, "gen", "/sys/class/net/eth0/queues/rx-0/rps_cpus", mask);
      await sysfs(lab, "sink", "/sys/class/net/eth0/queues/rx-0/rps_cpus", mask);
    }
    const sinkArgs = ["--iface", "eth0", "--port", String(UDP_PORT), "--tun-port", String(GUE_PORT)];
    let sinkKind: "tc" | "xdp" = "tc";
    let mapId: number;
    let cfgMapId = 0;
    try {
      ({ mapId, cfgMapId } = await agentJson<{ mapId: number; cfgMapId: number }>(lab, "sink", ["xdp", "--prog", "sink-tc", ...sinkArgs]));
    } catch (e) {
      // no tc BPF here (sch_ingress/cls_bpf missing): count in XDP instead, and say so
      if (!/clsact|tc program/.test(String(e))) throw e;
      sinkKind = "xdp";
      ({ mapId } = await agentJson<{ mapId: number }>(lab, "sink", ["xdp", "--prog", "sink", ...sinkArgs]));
    }
    sink = new SinkReader(mapId, sinkKind === "tc" ? cfgMapId : 0);
    const cpu = o.serverCpu !== null ? ["--cpu", String(o.serverCpu)] : [];
    await startServer(lab, "sink", ["tcp-srv", "--port", String(TCP_PORT), ...cpu]);
    // one echo socket per address: a reply must leave from the address the request went to
    // (a socket on 0.0.0.0 answers from the interface's primary address, which NAT would not match)
    for (const a of SINK_ADDRS) await startServer(lab, "sink", ["udp-echo", "--addr", a, "--port", String(PING_PORT), ...cpu]);
    // DR/TUN real servers get the VIP itself as destination, and answer from it
    if (o.mode !== "nat") await startServer(lab, "sink", ["udp-echo", "--addr", VIP, "--port", String(PING_PORT), ...cpu]);
    const reader = sink;
    return {
      lab,
      mac,
      sink: reader,
      sinkMapId: mapId,
      sinkKind,
      sinkReplies(on: boolean) {
        reader.setReplyFirst(on, UDP_PORT, GUE_PORT);
      },
      napiThreads,
      sideNapiThreads,
      async close() {
        reader.close();
        await lab.teardown();
      },
    };
  } catch (e) {
    sink?.close();
    await lab.teardown();
    throw e;
  }
}

/** Every numeric `ethtool -S` counter of the lab's four veth ends, keyed "host/if counter". */
export async function ifaceCounters(bl: BenchLab): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [host, ifname] of [
    ["gen", "eth0"],
    ["dir", "c0"],
    ["dir", "s0"],
    ["sink", "eth0"],
  ]) {
    const r = await bl.lab.exec(host, ["ethtool", "-S", ifname], true);
    for (const line of r.stdout.split("\n")) {
      const m = /^\s+([\w.]+):\s+(\d+)$/.exec(line);
      if (m && m[1] !== "peer_ifindex") out[`${host}/${ifname} ${m[1]}`] = Number(m[2]);
    }
  }
  return out;
}

/** Counters that grew between two snapshots (drops and errors first). */
export function counterDeltas(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const d: [string, number][] = [];
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) d.push([k, v - (a[k] ?? 0)]);
  d.sort((x, y) => Number(/drop|err|full/.test(y[0])) - Number(/drop|err|full/.test(x[0])) || y[1] - x[1]);
  return Object.fromEntries(d);
}
