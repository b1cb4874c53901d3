/**
 * GET /metrics: the exposition writer (escaping, numbers, HELP/TYPE, label sets), node_exporter's
 * label values, and the values after traffic folded into a stand-in dataplane's counters,
 * held against `ipvsadm -Ln --stats --exact` and kept through -Z. The access log and the
 * log lines' priority prefixes are here too (they share the request path).
 */
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { SUMMARY_MAX, summarizeBody } from "../../../src/control/access-log.ts";
import { backendLabels, FLOW_COUNTER_NAMES, goIpText, serviceLabels, XDP_COUNTER_NAMES } from "../../../src/control/metrics.ts";
import * as abi from "../../../src/ffi/abi.ts";
import { escapeHelp, escapeLabelValue, exposition, EXPOSITION_CONTENT_TYPE, formatValue } from "../../../src/control/metrics-text.ts";
import { metricsApp } from "../../../src/control/routes/metrics.ts";
import { workerSnapshots } from "../../../src/control/ui/snapshot.ts";
import { parseRunArgs } from "../../../src/control/serve.ts";
import { log, parseLogLine, stripPriorities } from "../../../src/log.ts";
import { parseIp } from "../../../src/service/addr.ts";
import { ConnTable } from "../../../src/conn/table.ts";
import type { HealthMonitor } from "../../../src/health/monitor.ts";
import { Counters, DEST_TRAFFIC_BASE, TS_WORDS, WL_BUSY_NS, WL_LOOP_NS } from "../../../src/stats/counters.ts";
import { parseExposition } from "../../util/prom.ts";
import { endpoint, parseStatsListing } from "../../util/stats-listing.ts";
import { startXvs, TOKEN, type Xvs } from "../cli/fixture.ts";

const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

describe("exposition text", () => {
  test("HELP and TYPE once per family, before its samples; labels in the given order; a family without samples is left out", () => {
    const page = exposition([
      { name: "a_total", help: "A things.", type: "counter", samples: [{ value: 3 }] },
      { name: "empty", help: "Nothing.", type: "gauge", samples: [] },
      {
        name: "b",
        help: "B by x and y.",
        type: "gauge",
        samples: [
          { labels: { y: "2", x: "1" }, value: 1.5 },
          { labels: { y: "3", x: "1" }, value: -2 },
        ],
      },
    ]);
    expect(page).toBe(
      [
        "# HELP a_total A things.",
        "# TYPE a_total counter",
        "a_total 3",
        "# HELP b B by x and y.",
        "# TYPE b gauge",
        'b{y="2",x="1"} 1.5',
        'b{y="3",x="1"} -2',
        "",
      ].join("\n"),
    );
    expect(exposition([])).toBe("");
  });

  test("label values escape backslash, double quote and newline; HELP escapes backslash and newline only", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(escapeHelp('a\\b"c\nd')).toBe('a\\\\b"c\\nd');
    const page = exposition([{ name: "x", help: 'two\nlines \\ and "quotes"', type: "untyped", samples: [{ labels: { v: 'q"\\\n' }, value: 1 }] }]);
    expect(page).toBe('# HELP x two\\nlines \\\\ and "quotes"\n# TYPE x untyped\nx{v="q\\"\\\\\\n"} 1\n');
    // and the reader gets the original value back
    const read = parseExposition(page);
    expect(read.find("x")[0].labels.v).toBe('q"\\\n');
    expect(read.help.get("x")).toBe('two\nlines \\ and "quotes"');
  });

  test("numbers: integers in full up to 2^53, floats, NaN and infinities in the format's words", () => {
    expect(formatValue(0)).toBe("0");
    expect(formatValue(2 ** 53)).toBe("9007199254740992");
    expect(formatValue(123456789012)).toBe("123456789012");
    expect(formatValue(0.25)).toBe("0.25");
    expect(formatValue(1e21)).toBe("1e+21");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(Infinity)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(-0)).toBe("0");
  });

  test("bad names, a family twice and a label set twice are refused, not written", () => {
    expect(() => exposition([{ name: "1bad", help: "", type: "gauge", samples: [{ value: 1 }] }])).toThrow(/not a valid metric name/);
    expect(() => exposition([{ name: "ok", help: "", type: "gauge", samples: [{ labels: { "bad-label": "1" }, value: 1 }] }])).toThrow(
      /not a valid label name/,
    );
    expect(() => exposition([{ name: "ok", help: "", type: "gauge", samples: [{ labels: { __reserved: "1" }, value: 1 }] }])).toThrow(/not a valid label name/);
    expect(() =>
      exposition([
        { name: "ok", help: "", type: "gauge", samples: [] },
        { name: "ok", help: "", type: "gauge", samples: [] },
      ]),
    ).toThrow(/twice/);
    expect(() =>
      exposition([
        {
          name: "ok",
          help: "",
          type: "gauge",
          samples: [
            { labels: { a: "1" }, value: 1 },
            { labels: { a: "1" }, value: 2 },
          ],
        },
      ]),
    ).toThrow(/label set .* twice/);
  });
});

describe("node_exporter's label values", () => {
  const ip = (t: string) => {
    const a = parseIp(t);
    if (!a) throw new Error(t);
    return a;
  };
  test("addresses as Go's net.IP.String() prints them", () => {
    expect(goIpText(ip("198.18.0.100"))).toBe("198.18.0.100");
    expect(goIpText(ip("0.0.0.0"))).toBe("0.0.0.0");
    expect(goIpText(ip("255.255.255.255"))).toBe("255.255.255.255");
    expect(goIpText(ip("2001:0db8:0000:0000:0000:0000:0000:0001"))).toBe("2001:db8::1");
    expect(goIpText(ip("::"))).toBe("::");
    expect(goIpText(ip("::1"))).toBe("::1");
    expect(goIpText(ip("2001:db8::"))).toBe("2001:db8::");
    // one zero group stays; the first of two equally long runs is the one compressed
    expect(goIpText(ip("2001:db8:0:1:1:1:1:1"))).toBe("2001:db8:0:1:1:1:1:1");
    expect(goIpText(ip("2001:0:0:1:0:0:1:1"))).toBe("2001::1:0:0:1:1");
    expect(goIpText(ip("2001:db8:0:0:1:0:0:0"))).toBe("2001:db8:0:0:1::");
    expect(goIpText(ip("2001:DB8:ABCD::FFFF"))).toBe("2001:db8:abcd::ffff");
    // IPv4-mapped: the IPv4 address (To4 succeeds); IPv4-compatible: plain hex, no dotted tail
    expect(goIpText(ip("::ffff:198.18.0.1"))).toBe("198.18.0.1");
    expect(goIpText(ip("::1.2.3.4"))).toBe("::102:304");
  });

  test("service and backend labels: node_exporter's six in its order, proto upper case, local_mark empty unless fwmark", () => {
    const d = { addr: ip("2001:db8::11"), port: 53 } as Parameters<typeof backendLabels>[1];
    const udp6 = { fwmark: 0, addr: ip("2001:db8::100"), port: 53, proto: 17 } as Parameters<typeof serviceLabels>[0];
    expect(serviceLabels(udp6)).toEqual({ local_address: "2001:db8::100", local_port: "53", proto: "UDP", local_mark: "" });
    const b = backendLabels(udp6, d);
    expect(Object.keys(b)).toEqual(["local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"]);
    expect(b).toEqual({ local_address: "2001:db8::100", local_port: "53", remote_address: "2001:db8::11", remote_port: "53", proto: "UDP", local_mark: "" });
    expect(serviceLabels({ ...udp6, proto: 132 }).proto).toBe("SCTP");
    expect(serviceLabels({ ...udp6, proto: 6 }).proto).toBe("TCP");
    // fwmark services (which xvs refuses, as XDP sees no mark) would read as /proc/net/ip_vs prints them: "FWM  %08X"
    expect(serviceLabels({ ...udp6, fwmark: 0x1a, addr: null, port: 0 })).toEqual({ local_address: "", local_port: "0", proto: "FWM", local_mark: "0000001A" });
  });
});

/** The stand-in dataplane's counters: what the fast path adds for `n` packets of a connection. */
function fold(x: Xvs, svcId: number, destId: number, t: { conns?: number; inpkts?: number; outpkts?: number; inbytes?: number; outbytes?: number }): void {
  const tr = x.dataplane.workers[0].counters.traffic;
  const v = [t.conns ?? 0, t.inpkts ?? 0, t.outpkts ?? 0, t.inbytes ?? 0, t.outbytes ?? 0];
  for (let k = 0; k < 5; k++) {
    tr[svcId * TS_WORDS + k] += v[k];
    tr[DEST_TRAFFIC_BASE + destId * TS_WORDS + k] += v[k];
  }
}

async function scrape(x: Xvs) {
  const r = await x.app.request("/metrics");
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toBe(EXPOSITION_CONTENT_TYPE);
  return parseExposition(await r.text());
}

/** Every xvs_backend_* traffic counter equals the listing's real-server row, value for value. */
async function expectListingAgrees(x: Xvs): Promise<number> {
  const page = await scrape(x);
  const rows = parseStatsListing((await x.adm(["-L", "-n", "--stats", "--exact"])).stdout);
  let checked = 0;
  for (const r of rows) {
    const fam = r.dest === null ? "xvs_service_" : "xvs_backend_";
    const samples = page
      .find(`${fam}connections_total`)
      .filter(
        (s) =>
          `${s.labels.proto} ${endpoint(s.labels.local_address, s.labels.local_port)}` === r.service &&
          (r.dest === null || endpoint(s.labels.remote_address, s.labels.remote_port) === r.dest),
      );
    expect(samples.length).toBe(1);
    const l = samples[0].labels;
    expect([
      page.value(`${fam}connections_total`, l),
      page.value(`${fam}incoming_packets_total`, l),
      page.value(`${fam}outgoing_packets_total`, l),
      page.value(`${fam}incoming_bytes_total`, l),
      page.value(`${fam}outgoing_bytes_total`, l),
    ]).toEqual([r.conns, r.inpkts, r.outpkts, r.inbytes, r.outbytes]);
    checked++;
  }
  return checked;
}

describe("GET /metrics over a stand-in dataplane", () => {
  async function lab(): Promise<Xvs> {
    const x = startXvs();
    for (const argv of [
      ["-A", "-t", "198.18.0.100:80", "-s", "rr"],
      ["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.11:8080", "-m", "-w", "2"],
      ["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.12:8080", "-m", "-w", "5"],
      ["-A", "-u", "[2001:db8::100]:53", "-s", "wrr"],
      ["-a", "-u", "[2001:db8::100]:53", "-r", "[2001:db8::11]:5353", "-m", "-w", "0"],
    ])
      expect((await x.adm(argv)).exit).toBe(0);
    return x;
  }
  const ids = (x: Xvs) => {
    const [tcp, udp] = x.daemon.model.services;
    const byPort = (s: typeof tcp, a: string) => s.dests.find((d) => goIpText(d.addr) === a)!.id;
    return { tcp: tcp.id, udp: udp.id, rs1: byPort(tcp, "198.18.1.11"), rs2: byPort(tcp, "198.18.1.12"), rs6: byPort(udp, "2001:db8::11") };
  };
  const RS1 = { local_address: "198.18.0.100", local_port: "80", remote_address: "198.18.1.11", remote_port: "8080", proto: "TCP", local_mark: "" };
  const RS2 = { ...RS1, remote_address: "198.18.1.12" };
  const RS6 = { local_address: "2001:db8::100", local_port: "53", remote_address: "2001:db8::11", remote_port: "5353", proto: "UDP", local_mark: "" };

  test("node_exporter's families: names, types, help, labels; totals over the director; active/inactive/weight per real server", async () => {
    const x = await lab();
    const i = ids(x);
    fold(x, i.tcp, i.rs1, { conns: 3, inpkts: 30, outpkts: 20, inbytes: 3000, outbytes: 90_000 });
    fold(x, i.tcp, i.rs2, { conns: 1, inpkts: 7, outpkts: 5, inbytes: 700, outbytes: 5000 });
    fold(x, i.udp, i.rs6, { conns: 4, inpkts: 4, outpkts: 4, inbytes: 400, outbytes: 2 ** 40 });
    const c = x.dataplane.workers[0].counters;
    c.active[i.rs1] = 2;
    c.inactive[i.rs1] = 1;
    c.active[i.rs2] = 0;
    c.inactive[i.rs2] = 1;
    c.inactive[i.rs6] = 4;
    c.persist[i.rs6] = 1;
    const page = await scrape(x);
    const totals = { connections: 8, incoming_packets: 41, outgoing_packets: 29, incoming_bytes: 4100, outgoing_bytes: 95_000 + 2 ** 40 };
    for (const [k, v] of Object.entries(totals)) {
      expect(page.type.get(`node_ipvs_${k}_total`)).toBe("counter");
      expect(page.find(`node_ipvs_${k}_total`)).toEqual([{ name: `node_ipvs_${k}_total`, labels: {}, value: v }]);
    }
    expect(page.help.get("node_ipvs_connections_total")).toBe("The total number of connections made.");
    expect(page.help.get("node_ipvs_incoming_bytes_total")).toBe("The total amount of incoming data.");
    expect(page.help.get("node_ipvs_backend_connections_active")).toBe("The current active connections by local and remote address.");
    expect(page.help.get("node_ipvs_backend_connections_inactive")).toBe("The current inactive connections by local and remote address.");
    expect(page.help.get("node_ipvs_backend_weight")).toBe("The current backend weight by local and remote address.");
    for (const g of ["active", "inactive"]) expect(page.type.get(`node_ipvs_backend_connections_${g}`)).toBe("gauge");
    expect(page.type.get("node_ipvs_backend_weight")).toBe("gauge");
    for (const s of page.find("node_ipvs_backend_weight")) expect(Object.keys(s.labels)).toEqual(Object.keys(RS1));
    expect(page.find("node_ipvs_backend_weight").map((s) => s.labels)).toContainEqual(RS6);
    expect([RS1, RS2, RS6].map((l) => page.value("node_ipvs_backend_connections_active", l))).toEqual([2, 0, 0]);
    expect([RS1, RS2, RS6].map((l) => page.value("node_ipvs_backend_connections_inactive", l))).toEqual([1, 1, 4]);
    expect([RS1, RS2, RS6].map((l) => page.value("node_ipvs_backend_weight", l))).toEqual([2, 5, 0]);
    expect(page.value("xvs_backend_connections_persistent", RS6)).toBe(1);
    expect(page.value("xvs_backend_outgoing_bytes_total", RS6)).toBe(2 ** 40);
    expect(page.value("xvs_service_incoming_packets_total", { proto: "TCP", local_address: "198.18.0.100", local_port: "80" })).toBe(37);
    expect(await expectListingAgrees(x)).toBe(5);
    expect(page.value("xvs_build_info")).toBe(1);
    expect(page.find("xvs_build_info")[0].labels.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("every verdict and drop reason is a sample of xvs_verdicts_total; rx/tx have families of their own", async () => {
    const x = await lab();
    const v = x.dataplane.workers[0].counters.verdicts;
    const names = Object.keys(x.daemon.verdicts());
    names.forEach((_, k) => {
      v[k] = 100 + k;
    });
    const page = await scrape(x);
    const own = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"];
    for (const [k, name] of names.entries()) {
      if (own.includes(name)) expect(page.value(`xvs_${name}_total`)).toBe(100 + k);
      else expect(page.value("xvs_verdicts_total", { verdict: name })).toBe(100 + k);
    }
    expect(page.find("xvs_verdicts_total").length).toBe(names.length - own.length);
    expect(page.value("xvs_verdicts_total", { verdict: "drop_no_dest" })).toBeGreaterThan(0);
  });

  test("the steering program's counters have a name each, in XVS_XDP_* order (no xdp_N label)", () => {
    expect(XDP_COUNTER_NAMES.length).toBe(abi.XVS_XDP_STAT_COUNT);
    expect(XDP_COUNTER_NAMES[abi.XVS_XDP_PASS_NO_SOCKET]).toBe("pass_no_socket");
    expect(XDP_COUNTER_NAMES[abi.XVS_XDP_FLOW_TX]).toBe("flow_tx");
    expect(XDP_COUNTER_NAMES[abi.XVS_XDP_FLOW_REDIRECT]).toBe("flow_redirect");
  });

  test("the XDP flow cache's counters: one xvs_flow_cache_packets_total sample per reason, in XVS_FLOW_* order; none while the cache is off", async () => {
    expect(FLOW_COUNTER_NAMES.length).toBe(abi.XVS_FLOW_STAT_COUNT);
    expect(FLOW_COUNTER_NAMES[abi.XVS_FLOW_FWD]).toBe("fwd");
    expect(FLOW_COUNTER_NAMES[abi.XVS_FLOW_MISS]).toBe("miss");
    expect(FLOW_COUNTER_NAMES[abi.XVS_FLOW_BYPASS_MTU]).toBe("bypass_mtu");
    expect(FLOW_COUNTER_NAMES[abi.XVS_FLOW_BYPASS_PORT]).toBe("bypass_port");
    const x = await lab();
    // the stand-in dataplane has no flow cache: no samples, so no family
    expect((await scrape(x)).find("xvs_flow_cache_packets_total").length).toBe(0);
    const stats = FLOW_COUNTER_NAMES.map((_, i) => 1000 + i);
    Object.assign(x.dataplane, { flowCache: { stats: () => stats } });
    const page = await scrape(x);
    expect(page.find("xvs_flow_cache_packets_total").length).toBe(abi.XVS_FLOW_STAT_COUNT);
    expect(page.value("xvs_flow_cache_packets_total", { reason: "fwd" })).toBe(1000);
    expect(page.value("xvs_flow_cache_packets_total", { reason: "bypass_port" })).toBe(1000 + abi.XVS_FLOW_BYPASS_PORT);
    expect(page.value("xvs_flow_cache_packets_total", { reason: "bypass_mtu" })).toBe(1000 + abi.XVS_FLOW_BYPASS_MTU);
  });

  test("-Z zeroes the listing, never a metric; deleted services stay in the totals; a new real server on a reused id starts at 0", async () => {
    const x = await lab();
    const i = ids(x);
    fold(x, i.tcp, i.rs1, { conns: 10, inpkts: 100, outpkts: 50, inbytes: 10_000, outbytes: 200_000 });
    expect(await expectListingAgrees(x)).toBe(5);
    expect((await x.adm(["-Z"])).exit).toBe(0);
    fold(x, i.tcp, i.rs1, { conns: 1, inpkts: 2, outpkts: 3, inbytes: 4, outbytes: 5 });
    const rows = parseStatsListing((await x.adm(["-L", "-n", "--stats", "--exact"])).stdout);
    expect(rows.find((r) => r.dest === "198.18.1.11:8080")).toMatchObject({ conns: 1, inpkts: 2, outpkts: 3, inbytes: 4, outbytes: 5 });
    let page = await scrape(x);
    expect(page.value("xvs_backend_connections_total", RS1)).toBe(11);
    expect(page.value("xvs_backend_outgoing_bytes_total", RS1)).toBe(200_005);
    expect(page.value("node_ipvs_connections_total")).toBe(11);
    expect(page.value("xvs_service_incoming_bytes_total", { proto: "TCP", local_port: "80" })).toBe(10_004);

    // remove the real server (nothing refers to it: freed at once) and add another, which takes its id
    const oldId = i.rs1;
    expect((await x.adm(["-d", "-t", "198.18.0.100:80", "-r", "198.18.1.11:8080"])).exit).toBe(0);
    x.daemon.purge(Number.MAX_SAFE_INTEGER);
    await x.daemon.mutate(() => undefined);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.13:8080", "-m"])).exit).toBe(0);
    const rs3 = x.daemon.model.services[0].dests.find((d) => goIpText(d.addr) === "198.18.1.13")!;
    expect(rs3.id).toBe(oldId); // the id's raw counters hold the old server's traffic...
    expect(x.daemon.destTraffic(rs3.id).conns).toBe(11);
    page = await scrape(x);
    expect(page.value("xvs_backend_connections_total", { ...RS1, remote_address: "198.18.1.13" })).toBe(0); // ...the new one starts at 0
    expect(page.find("xvs_backend_connections_total", RS1)).toEqual([]);

    // delete the TCP service: its samples go, the director's totals keep its traffic (tot_stats)
    expect((await x.adm(["-D", "-t", "198.18.0.100:80"])).exit).toBe(0);
    page = await scrape(x);
    expect(page.find("xvs_service_connections_total").map((s) => s.labels.proto)).toEqual(["UDP"]);
    expect(page.find("node_ipvs_backend_weight").length).toBe(1);
    expect(page.value("node_ipvs_connections_total")).toBe(11);
    expect(page.value("node_ipvs_outgoing_bytes_total")).toBe(200_005);
  });

  test("workers' busy and loop seconds: counters per worker (label worker, no queue: a worker serves a set of queues), from each worker's shared loop words", async () => {
    const x = await lab();
    x.dataplane.workers.push({ counters: new Counters(), conns: new ConnTable(64) });
    for (const w of x.dataplane.workers) Object.assign(w, { zeroCopy: [false] }); // what the snapshot reads of a real worker
    const [w0, w1] = x.dataplane.workers.map((w) => w.counters.loop);
    w0[WL_BUSY_NS] = 1.5e9;
    w0[WL_LOOP_NS] = 6e9;
    w1[WL_BUSY_NS] = 0;
    w1[WL_LOOP_NS] = 250e6;
    const page = await scrape(x);
    expect(page.type.get("xvs_worker_busy_seconds_total")).toBe("counter");
    expect(page.type.get("xvs_worker_loop_seconds_total")).toBe("counter");
    expect(page.find("xvs_worker_busy_seconds_total").map((s) => s.labels)).toEqual([{ worker: "0" }, { worker: "1" }]);
    expect(page.value("xvs_worker_busy_seconds_total", { worker: "0" })).toBe(1.5);
    expect(page.value("xvs_worker_loop_seconds_total", { worker: "0" })).toBe(6);
    expect(page.value("xvs_worker_busy_seconds_total", { worker: "1" })).toBe(0);
    expect(page.value("xvs_worker_loop_seconds_total", { worker: "1" })).toBe(0.25);
    expect(page.value("xvs_workers")).toBe(2);
    // the dashboard's workers panel reads the same words
    expect(workerSnapshots(x.daemon).map((w) => [w.worker, w.busySec, w.loopSec])).toEqual([
      [0, 1.5, 6],
      [1, 0, 0.25],
    ]);
  });

  test("health state: up/down per checked real server (removed ones too), quorum and sorry server per checked service; none without checks", async () => {
    const x = await lab();
    expect((await scrape(x)).find("xvs_backend_health_up")).toEqual([]);
    const view = (state: "up" | "down") => ({ state, last_result: null, last_change: null, reason: "" });
    // a stand-in monitor: 198.18.1.11 up, 198.18.1.12 unchecked, 2001:db8::12 removed by its checks
    // (not in the table), the UDP service's quorum lost and its sorry server in
    x.daemon.health = {
      destHealth: (s: { port: number }, address: string, port: number) =>
        s.port === 80 && address === "198.18.1.11" && port === 8080 ? view("up") : s.port === 53 && address === "2001:db8::11" ? view("down") : undefined,
      serviceHealth: (s: { port: number }) =>
        s.port === 80
          ? { quorum: "up", sorry_server_active: false, removed: [] }
          : { quorum: "down", sorry_server_active: true, removed: [{ address: "2001:db8:0::12", port: 5353, weight: 3, health: view("down") }] },
      checkCounts: (_s: unknown, address: string) =>
        address === "198.18.1.11" ? { ok: 40, fail: 2 } : address === "2001:db8:0::12" ? { ok: 1, fail: 9 } : undefined,
    } as unknown as HealthMonitor;
    const page = await scrape(x);
    expect(page.type.get("xvs_backend_health_up")).toBe("gauge");
    expect(page.find("xvs_backend_health_up").map((s) => [s.labels, s.value])).toEqual([
      [RS1, 1],
      [RS6, 0],
      [{ ...RS6, remote_address: "2001:db8::12" }, 0],
    ]);
    for (const s of page.find("xvs_backend_health_up")) expect(Object.keys(s.labels)).toEqual(Object.keys(RS1));
    expect(page.type.get("xvs_backend_health_checks_total")).toBe("counter");
    expect(page.find("xvs_backend_health_checks_total").map((s) => [s.labels, s.value])).toEqual([
      [{ ...RS1, result: "ok" }, 40],
      [{ ...RS1, result: "fail" }, 2],
      [{ ...RS6, remote_address: "2001:db8::12", result: "ok" }, 1],
      [{ ...RS6, remote_address: "2001:db8::12", result: "fail" }, 9],
    ]);
    const tcp = { local_address: "198.18.0.100", local_port: "80", proto: "TCP", local_mark: "" };
    const udp = { local_address: "2001:db8::100", local_port: "53", proto: "UDP", local_mark: "" };
    expect([page.value("xvs_service_quorum_up", tcp), page.value("xvs_service_quorum_up", udp)]).toEqual([1, 0]);
    expect([page.value("xvs_service_sorry_server_active", tcp), page.value("xvs_service_sorry_server_active", udp)]).toEqual([0, 1]);
  });

  test("/metrics needs no token, is not writable; the separate listener serves it and nothing else", async () => {
    const x = await lab();
    expect((await x.app.request("/metrics")).status).toBe(200);
    expect((await x.app.request("/metrics", { method: "POST" })).status).toBe(401);
    expect((await x.app.request("/metrics", { method: "HEAD" })).status).toBe(200);
    const alone = metricsApp(x.daemon);
    const r = await alone.request("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe(EXPOSITION_CONTENT_TYPE);
    const a = parseExposition(await r.text()),
      b = await scrape(x);
    expect(a.samples.filter((s) => s.name.startsWith("node_ipvs_"))).toEqual(b.samples.filter((s) => s.name.startsWith("node_ipvs_")));
    expect((await alone.request("/v1/services")).status).toBe(404);
    expect((await alone.request("/v1/zero", { method: "POST", headers: AUTH })).status).toBe(404);
  });
});

describe("access log and priority prefixes", () => {
  let lines: string[] = [];
  let spy: ReturnType<typeof spyOn> | null = null;
  const capture = () => {
    lines = [];
    spy = spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
      lines.push(String(s));
      return true;
    });
  };
  afterEach(() => {
    spy?.mockRestore();
    spy = null;
  });
  const accessLines = () =>
    lines
      .join("")
      .split("\n")
      .filter((l) => l.includes('"api access"'));

  test("every mutating request, refused ones included, is one line: who, what, result; reads are not logged", async () => {
    const x = startXvs();
    capture();
    const svc = { protocol: "tcp", address: "198.18.0.100", port: 80, scheduler: "rr" };
    await x.app.request("/v1/services", { method: "POST", headers: AUTH, body: JSON.stringify(svc) });
    await x.app.request("/v1/services", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(svc) });
    await x.app.request("/v1/services", { method: "POST", headers: { ...AUTH, authorization: "Bearer not-the-token" }, body: JSON.stringify(svc) });
    await x.app.request("/v1/services/tcp:198.18.0.100:80", { method: "DELETE", headers: AUTH });
    await x.app.request("/v1/services/tcp:198.18.0.100:80", { method: "DELETE", headers: AUTH });
    await x.app.request("/v1/services");
    await x.app.request("/metrics");
    const raw = accessLines();
    expect(raw.length).toBe(5);
    const recs = raw.map((l) => parseLogLine(l)!);
    expect(recs.map((r) => [r.method, r.path, r.token, r.status])).toEqual([
      ["POST", "/v1/services", "valid", 201],
      ["POST", "/v1/services", "missing", 401],
      ["POST", "/v1/services", "wrong", 401],
      ["DELETE", "/v1/services/tcp:198.18.0.100:80", "valid", 204],
      ["DELETE", "/v1/services/tcp:198.18.0.100:80", "valid", 404],
    ]);
    expect(recs[0].summary).toBe("protocol=tcp address=198.18.0.100 port=80 scheduler=rr");
    // a stranger's body is never read for the log
    expect(recs[1].summary).toBe("");
    expect(recs[2].summary).toBe("");
    // app.request has no socket: the peer is unknown here (the lab test sees 127.0.0.1)
    expect(recs[0].peer).toBe("");
    expect(typeof recs[0].ms).toBe("number");
    // success is info (<6>), a refused or failed change a warning (<4>)
    expect(raw.map((l) => l.slice(0, 3))).toEqual(["<6>", "<4>", "<4>", "<6>", "<4>"]);
    expect(recs.map((r) => r.level)).toEqual(["info", "warn", "warn", "info", "warn"]);
    expect(lines.join("")).not.toContain(TOKEN);
  });

  test("summaries: top-level fields, list sizes, odd strings quoted, cut at SUMMARY_MAX", () => {
    expect(summarizeBody("")).toBe("");
    expect(summarizeBody("{not json")).toBe("9 bytes, not JSON");
    expect(summarizeBody('{"address":"198.18.1.11","weight":2,"tunnel":{"type":"gue"},"services":[1,2,3],"x":null}')).toBe(
      "address=198.18.1.11 weight=2 tunnel={...} services=[3] x=null",
    );
    expect(summarizeBody('{"name":"a b\\"c"}')).toBe('name="a b\\"c"');
    const long = summarizeBody(JSON.stringify(Object.fromEntries(Array.from({ length: 50 }, (_, k) => [`field${k}`, k]))));
    expect(long.length).toBe(SUMMARY_MAX);
    expect(long.endsWith("...")).toBe(true);
  });

  test("every level's line starts with its sd-daemon priority; parseLogLine reads lines with or without it", () => {
    capture();
    log("error", "e");
    log("warn", "w");
    log("info", "i", { k: 1 });
    log("debug", "d"); // below the default threshold: not written
    const out = lines.join("");
    expect(
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => l.slice(0, 3)),
    ).toEqual(["<3>", "<4>", "<6>"]);
    expect(
      stripPriorities(out)
        .split("\n")
        .filter(Boolean)
        .every((l) => l.startsWith('{"ts":')),
    ).toBe(true);
    expect(parseLogLine(out.split("\n")[2])).toMatchObject({ level: "info", msg: "i", k: 1 });
    expect(parseLogLine('{"level":"info","msg":"x"}')).toEqual({ level: "info", msg: "x" });
    expect(parseLogLine("xvs: not json")).toBeNull();
  });
});

describe("xvs run --metrics", () => {
  test("HOST:PORT (IPv6 in brackets, --metrics=value too) or a one-line refusal; none by default", () => {
    expect(parseRunArgs(["--iface", "x0"]).metrics).toBeUndefined();
    expect(parseRunArgs(["--iface", "x0", "--metrics", "0.0.0.0:9100"]).metrics).toEqual({ host: "0.0.0.0", port: 9100 });
    expect(parseRunArgs(["--iface", "x0", "--metrics=[2001:db8::1]:9100"]).metrics).toEqual({ host: "2001:db8::1", port: 9100 });
    expect(() => parseRunArgs(["--iface", "x0", "--metrics", "9100"])).toThrow("--metrics: '9100' is not HOST:PORT");
    expect(() => parseRunArgs(["--iface", "x0", "--metrics"])).toThrow("--metrics needs a value");
    expect(parseRunArgs(["--iface", "x0", "--api", "127.0.0.1:9300"])).toMatchObject({ apiHost: "127.0.0.1", apiPort: 9300 });
  });
});
