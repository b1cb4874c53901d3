/**
 * What GET /metrics shows (docs/metrics.md lists every family): first node_exporter's ipvs
 * collector, under its names, types, help texts and labels, so that dashboards and alerts made
 * for kernel IPVS keep working; then xvs's own `xvs_*` families.
 *
 * node_exporter (collector/ipvs_linux.go, with procfs's ipvs.go) reads /proc/net/ip_vs_stats
 * for the five totals and /proc/net/ip_vs for one sample per real server, labelled:
 *   local_address  the virtual address as Go's net.IP.String() prints it (dotted quad; RFC 5952
 *                  IPv6; an IPv4-mapped IPv6 address as a dotted quad); "" for fwmark services
 *   local_port     decimal; 0 for fwmark services
 *   remote_address, remote_port   the real server, the same way
 *   proto          the service line's first word in /proc/net/ip_vs: ip_vs_proto_name ("TCP",
 *                  "UDP", "SCTP"), "FWM" for fwmark services
 *   local_mark     "" unless fwmark: the mark as /proc prints it ("FWM  %08X": 8 upper-case
 *                  hex digits)
 * (node_exporter itself mislabels SCTP services, which its parser skips; xvs labels them "SCTP".)
 *
 * Counters are raw: -Z (ipvsadm -Z, POST /v1/zero) zeroes listings, never a metric. Per
 * service and real server they count since the object appeared (stats-book.ts lifetime view);
 * the node_ipvs_* totals count every packet and connection since the daemon started, those of
 * services deleted since included, as the kernel's tot_stats does.
 */
import type { VethXdpState } from "../dataplane/veth-xdp.ts";
import { ipText, parseIp } from "../service/addr.ts";
import { MAX_SERVICES } from "../service/tables.ts";
import { TS_CONNS, TS_INBYTES, TS_INPKTS, TS_OUTBYTES, TS_OUTPKTS, TS_WORDS, WL_BUSY_NS, WL_LOOP_NS } from "../stats/counters.ts";
import type { Daemon, Traffic } from "./daemon.ts";
import { exposition, type Family, type MetricType, type Sample } from "./metrics-text.ts";
import { IPVS_VERSION, XVS_VERSION } from "./routes/system.ts";
import { syncFamilies } from "./sync-metrics.ts";

type Service = Daemon["model"]["services"][number];
type Dest = Service["dests"][number];
type Addr = Dest["addr"];

/** Names of the XDP program's counters, in XVS_XDP_* order (native/bpf/xvs_common.h). */
export const XDP_COUNTER_NAMES = [
  "pass_not_ip",
  "pass_malformed",
  "pass_not_ours",
  "pass_local",
  "redirect",
  "pass_no_socket",
  "flow_tx",
  "flow_redirect",
] as const;

/** Names of the flow stage's counters, in XVS_FLOW_* order (native/bpf/xvs_common.h; docs/flow-cache.md). */
export const FLOW_COUNTER_NAMES = [
  "fwd",
  "miss",
  "not_eligible",
  "bypass_malformed",
  "bypass_fragment",
  "bypass_ip_options",
  "bypass_tcp_flags",
  "bypass_ttl",
  "bypass_mtu",
  "bypass_partial_csum",
  "bypass_dest",
  "bypass_nexthop",
  "bypass_tunnel",
  "bypass_sctp_port",
  "bypass_tx",
  "bypass_port",
] as const;

/** Stat counters that get families of their own (their units differ from the verdicts'). */
const RING_COUNTERS: Record<string, [string, string]> = {
  rx_packets: ["xvs_rx_packets_total", "Frames received from the AF_XDP rings, all interfaces and queues."],
  rx_bytes: ["xvs_rx_bytes_total", "Bytes of the frames received from the AF_XDP rings."],
  tx_packets: ["xvs_tx_packets_total", "Frames handed to the AF_XDP tx rings."],
  tx_bytes: ["xvs_tx_bytes_total", "Bytes of the frames handed to the AF_XDP tx rings."],
};

const PROTO_NAMES: Record<number, string> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

/** An address as Go's net.IP.String() prints it (what node_exporter puts in its labels). */
export function goIpText(a: Addr): string {
  const w = a.words;
  const quad = (x: number) => `${(x >>> 24) & 0xff}.${(x >>> 16) & 0xff}.${(x >>> 8) & 0xff}.${x & 0xff}`;
  if (a.family === 4) return quad(w[0]);
  // an IPv4-mapped address is printed as the IPv4 address (net.IP.To4 succeeds on it)
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return quad(w[3]);
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((w[i] >>> 16) & 0xffff, w[i] & 0xffff);
  // RFC 5952 as netip does it: the first longest run of two or more zero groups becomes "::",
  // and no dotted tail (net.IP prints ::102:304, not ::1.2.3.4)
  let at = -1,
    len = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > len) {
      at = i;
      len = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  return at < 0 ? hex(g) : `${hex(g.slice(0, at))}::${hex(g.slice(at + len))}`;
}

/** node_exporter's labels of a service (the four that name it). */
export function serviceLabels(s: Service): Record<string, string> {
  if (s.fwmark) return { local_address: "", local_port: "0", proto: "FWM", local_mark: s.fwmark.toString(16).toUpperCase().padStart(8, "0") };
  return { local_address: s.addr ? goIpText(s.addr) : "", local_port: String(s.port), proto: PROTO_NAMES[s.proto] ?? `IP_${s.proto}`, local_mark: "" };
}

/** node_exporter's six labels of a real server of a service, in its order. */
export function backendLabels(s: Service, d: Dest): Record<string, string> {
  const l = serviceLabels(s);
  return {
    local_address: l.local_address,
    local_port: l.local_port,
    remote_address: goIpText(d.addr),
    remote_port: String(d.port),
    proto: l.proto,
    local_mark: l.local_mark,
  };
}

/** Packets, bytes and connections of every service id ever used, since the daemon started. */
function directorTotals(daemon: Daemon): Traffic {
  const t: Traffic = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
  for (const w of daemon.dataplane?.workers ?? []) {
    const a = w.counters.traffic;
    for (let id = 0; id < MAX_SERVICES; id++) {
      const o = id * TS_WORDS;
      t.conns += a[o + TS_CONNS];
      t.inpkts += a[o + TS_INPKTS];
      t.outpkts += a[o + TS_OUTPKTS];
      t.inbytes += a[o + TS_INBYTES];
      t.outbytes += a[o + TS_OUTBYTES];
    }
  }
  return t;
}

/** Busy and loop seconds of each worker (its shared Counters.loop, written once per round). */
function workerTimes(daemon: Daemon): Family[] {
  const rows = (daemon.dataplane?.workers ?? []).map((w, index) => ({
    // a worker serves a set of rx queues (queue q of each interface: worker q mod N), which may
    // grow under it (ethtool -L): labelled by its index alone, not by a queue
    labels: { worker: String(index) },
    busy: w.counters.loop[WL_BUSY_NS] / 1e9,
    loop: w.counters.loop[WL_LOOP_NS] / 1e9,
  }));
  return [
    family(
      "xvs_worker_busy_seconds_total",
      "counter",
      "Time the worker spent on bursts that carried frames (ring work, fast path, timers; not waiting in poll). rate(busy) / rate(loop) is its busy share.",
      rows.map((r) => ({ labels: r.labels, value: r.busy })),
    ),
    family(
      "xvs_worker_loop_seconds_total",
      "counter",
      "Time the worker's loop has run (busy, idle polls and event-loop turns).",
      rows.map((r) => ({ labels: r.labels, value: r.loop })),
    ),
  ];
}

/**
 * Health-check state (health/monitor.ts, when the daemon runs checks): every checked real server,
 * those in the table and those the checks took out of it (the latter have no Dest any more, so
 * their labels come from the monitor's address), and each checked service's quorum and sorry server.
 */
function healthFamilies(daemon: Daemon, services: readonly Service[], backends: readonly { s: Service; d: Dest; labels: Record<string, string> }[]): Family[] {
  const h = daemon.health;
  if (!h) return [];
  const up: Sample[] = [],
    checks: Sample[] = [];
  const checked = (s: Service, address: string, port: number, labels: Record<string, string>, state: "up" | "down") => {
    up.push({ labels, value: state === "up" ? 1 : 0 });
    const n = h.checkCounts(s, address, port);
    if (n) checks.push({ labels: { ...labels, result: "ok" }, value: n.ok }, { labels: { ...labels, result: "fail" }, value: n.fail });
  };
  for (const b of backends) {
    const address = ipText(b.d.addr);
    const v = h.destHealth(b.s, address, b.d.port);
    if (v) checked(b.s, address, b.d.port, b.labels, v.state);
  }
  const quorum: Sample[] = [],
    sorry: Sample[] = [];
  for (const s of services) {
    const sh = h.serviceHealth(s);
    if (!sh) continue;
    const labels = serviceLabels(s);
    quorum.push({ labels, value: sh.quorum === "up" ? 1 : 0 });
    sorry.push({ labels, value: sh.sorry_server_active ? 1 : 0 });
    for (const r of sh.removed) {
      const addr = parseIp(r.address);
      if (!addr) continue;
      checked(
        s,
        r.address,
        r.port,
        {
          local_address: labels.local_address,
          local_port: labels.local_port,
          remote_address: goIpText(addr),
          remote_port: String(r.port),
          proto: labels.proto,
          local_mark: labels.local_mark,
        },
        r.health.state,
      );
    }
  }
  return [
    family(
      "xvs_backend_health_up",
      "gauge",
      "1 while the real server's health checks pass, 0 while they fail (checked real servers only, those the checks removed from the table included).",
      up,
    ),
    family(
      "xvs_backend_health_checks_total",
      "counter",
      "Health-check attempts on the real server that ended, all its checkers together, by result (ok, fail), since it got checkers.",
      checks,
    ),
    family(
      "xvs_service_quorum_up",
      "gauge",
      "1 while the service's quorum of healthy weight is met, 0 while it is lost (services with health checks).",
      quorum,
    ),
    family(
      "xvs_service_sorry_server_active",
      "gauge",
      "1 while the service's sorry server is in the table in place of its real servers (services with health checks).",
      sorry,
    ),
  ];
}

function family(name: string, type: MetricType, help: string, samples: Sample[]): Family {
  return { name, type, help, samples };
}

/** The five traffic counters of `rows` (services or real servers) under `prefix` (xvs_service_ / xvs_backend_). */
function trafficFamilies(prefix: string, what: string, rows: { labels: Record<string, string>; t: Traffic }[]): Family[] {
  const f = (suffix: string, help: string, get: (t: Traffic) => number) =>
    family(
      `${prefix}${suffix}`,
      "counter",
      `${help} ${what}, since it was added (ipvsadm -Z does not reset it).`,
      rows.map((r) => ({ labels: r.labels, value: get(r.t) })),
    );
  return [
    f("connections_total", "Connections scheduled to each", (t) => t.conns),
    f("incoming_packets_total", "Packets from clients to each", (t) => t.inpkts),
    f("outgoing_packets_total", "Packets from real servers to clients through each", (t) => t.outpkts),
    f("incoming_bytes_total", "Bytes from clients to each", (t) => t.inbytes),
    f("outgoing_bytes_total", "Bytes from real servers to clients through each", (t) => t.outbytes),
  ];
}

/** The flow cache's veth check (dataplane/veth-xdp.ts; docs/flow-cache.md "veth peers"). */
function vethXdpFamilies(veths: VethXdpState[]): Family[] {
  return [
    family(
      "xvs_flow_cache_port_no_xdp",
      "gauge",
      "1 while the veth's peer does not take XDP frames (no NAPI: GRO off, no XDP program): the flows leaving through it go through AF_XDP, not the XDP flow cache.",
      veths.map((v) => ({ labels: { iface: v.iface }, value: v.noXdp ? 1 : 0 })),
    ),
    family(
      "xvs_flow_cache_port_no_xdp_marks_total",
      "counter",
      "Times the veth was marked as not taking XDP frames.",
      veths.map((v) => ({ labels: { iface: v.iface }, value: v.marks })),
    ),
    family(
      "xvs_flow_cache_veth_xdp_lost_total",
      "counter",
      "XDP_TX frames of the flow cache the veth dropped because its peer had no NAPI (its ethtool xdp_tx_errors while no XDP_TX succeeded).",
      veths.map((v) => ({ labels: { iface: v.iface }, value: v.lost })),
    ),
  ];
}

/**
 * The XDP flow cache's counters (`flow_stats`, summed over CPUs): one sample per reason, none
 * with `--flow-cache off` (`stats` empty).
 */
export function flowCacheFamilies(stats: readonly number[]): Family[] {
  return [
    family(
      "xvs_flow_cache_packets_total",
      "counter",
      "Packets the XDP flow cache looked at, by reason: fwd (forwarded by XDP), miss and not_eligible (no entry, no ports), bypass_* (a cached flow's packet left to xvs).",
      stats.map((v, i) => ({ labels: { reason: FLOW_COUNTER_NAMES[i] ?? `flow_${i}` }, value: v })),
    ),
  ];
}

/** Every metric family of a daemon, node_exporter's first. */
export function collectMetrics(daemon: Daemon): Family[] {
  const services = daemon.model.services;
  const backends = services.flatMap((s) => s.dests.map((d) => ({ s, d, labels: backendLabels(s, d), conns: daemon.destConns(d.id) })));
  const tot = directorTotals(daemon);
  const verdicts = daemon.verdicts();
  const xdp = daemon.dataplane?.xdpStats() ?? [];
  const out: Family[] = [
    // node_exporter's ipvs collector: names, types and help texts as it writes them
    family("node_ipvs_connections_total", "counter", "The total number of connections made.", [{ value: tot.conns }]),
    family("node_ipvs_incoming_packets_total", "counter", "The total number of incoming packets.", [{ value: tot.inpkts }]),
    family("node_ipvs_outgoing_packets_total", "counter", "The total number of outgoing packets.", [{ value: tot.outpkts }]),
    family("node_ipvs_incoming_bytes_total", "counter", "The total amount of incoming data.", [{ value: tot.inbytes }]),
    family("node_ipvs_outgoing_bytes_total", "counter", "The total amount of outgoing data.", [{ value: tot.outbytes }]),
    family(
      "node_ipvs_backend_connections_active",
      "gauge",
      "The current active connections by local and remote address.",
      backends.map((b) => ({ labels: b.labels, value: b.conns.active })),
    ),
    family(
      "node_ipvs_backend_connections_inactive",
      "gauge",
      "The current inactive connections by local and remote address.",
      backends.map((b) => ({ labels: b.labels, value: b.conns.inactive })),
    ),
    family(
      "node_ipvs_backend_weight",
      "gauge",
      "The current backend weight by local and remote address.",
      backends.map((b) => ({ labels: b.labels, value: b.d.spec.weight })),
    ),
    // xvs's own
    ...trafficFamilies(
      "xvs_service_",
      "virtual service",
      services.map((s) => ({ labels: serviceLabels(s), t: daemon.stats.serviceLifetime(s) })),
    ),
    ...trafficFamilies(
      "xvs_backend_",
      "real server of a virtual service",
      backends.map((b) => ({ labels: b.labels, t: daemon.stats.destLifetime(b.d) })),
    ),
    family(
      "xvs_backend_connections_persistent",
      "gauge",
      "Persistence templates naming the real server (ipvsadm's PersistConn).",
      backends.map((b) => ({ labels: b.labels, value: b.conns.persist })),
    ),
  ];
  for (const [stat, [name, help]] of Object.entries(RING_COUNTERS)) out.push(family(name, "counter", help, [{ value: verdicts[stat] ?? 0 }]));
  out.push(
    family(
      "xvs_verdicts_total",
      "counter",
      "Dataplane verdicts, drop reasons and events, by their /v1/stats name (forwarded: fwd_*, dropped: drop_*).",
      Object.entries(verdicts)
        .filter(([k]) => !(k in RING_COUNTERS))
        .map(([k, v]) => ({ labels: { verdict: k }, value: v })),
    ),
    family(
      "xvs_xdp_packets_total",
      "counter",
      "Packets the XDP steering program passed to the kernel or redirected to xvs, by reason.",
      xdp.map((v, i) => ({ labels: { action: XDP_COUNTER_NAMES[i] ?? `xdp_${i}` }, value: v })),
    ),
    ...workerTimes(daemon),
    // the stand-in dataplane of the CLI tests has no flow cache: hence the optional call
    ...flowCacheFamilies(daemon.dataplane?.flowCache?.stats() ?? []),
    ...vethXdpFamilies(daemon.dataplane?.vethXdp?.state() ?? []),
    ...healthFamilies(daemon, services, backends),
    ...syncFamilies(daemon),
    family("xvs_services", "gauge", "Virtual services in the table.", [{ value: services.length }]),
    family("xvs_backends", "gauge", "Real servers in the table (over all services).", [{ value: backends.length }]),
    family("xvs_workers", "gauge", "Dataplane poll workers (--workers; each serves a set of rx queues).", [{ value: daemon.dataplane?.workers.length ?? 0 }]),
    family("xvs_table_generation", "gauge", "Generation of the table the dataplane runs (grows with every change).", [{ value: daemon.tables().generation }]),
    family("xvs_start_time_seconds", "gauge", "When the daemon started, seconds since the Unix epoch.", [{ value: daemon.startedMs / 1000 }]),
    family("xvs_build_info", "gauge", "Always 1: the xvs version, the IPVS version it behaves as, and the Bun runtime.", [
      { labels: { version: XVS_VERSION, ipvs_version: IPVS_VERSION, bun_version: Bun.version }, value: 1 },
    ]),
  );
  return out;
}

/** The exposition page of a daemon. */
export function renderMetrics(daemon: Daemon): string {
  return exposition(collectMetrics(daemon));
}
