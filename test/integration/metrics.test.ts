/**
 * GET /metrics in a lab: after real NAT traffic (TCP and UDP over IPv4, TCP over
 * IPv6) through xvs, the exposition agrees with `xvs adm -Ln --stats --exact` and `-Ln` value for
 * value; node_exporter, reading the same table from /proc files written in the kernel's format,
 * writes the same node_ipvs_* samples; promtool accepts it; -Z leaves it alone; the --metrics listener serves the same; a real
 * Prometheus server scrapes it and answers node_ipvs_backend_connections_active for every real
 * server; every mutating API call is in the access log with its priority prefix.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, LAB_VIP6, realAddr, realAddr6, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { parseLogLine } from "../../src/log.ts";
import { apiOk, curlCount, HeldConnection, httpGet, requireRoot, serveOn, startServers, stopLab, udpAsk } from "./helpers.ts";
import { parseExposition, type PromPage } from "../util/prom.ts";
import { endpoint, parseStatsListing } from "../util/stats-listing.ts";

let L: DirectorLab;
let xvs: LabDaemon;
/** Where --metrics listens, inside the director namespace. */
const METRICS_ADDR = "127.0.0.1:9100";
const PROM_ADDR = "127.0.0.1:9090";
const NODE_EXPORTER_ADDR = "127.0.0.1:9199";

const SERVICES = [
  { protocol: "tcp", address: LAB_VIP, port: 80, dests: [1, 2, 3].map((i) => realAddr(i)), destPort: 80 },
  { protocol: "udp", address: LAB_VIP, port: 9000, dests: [1, 2, 3].map((i) => realAddr(i)), destPort: 9000 },
  { protocol: "tcp", address: LAB_VIP, port: 7000, dests: [1, 2, 3].map((i) => realAddr(i)), destPort: 7000 },
  { protocol: "tcp", address: LAB_VIP6, port: 8080, dests: [1, 2].map((i) => realAddr6(i)), destPort: 8080 },
] as const;
const BACKENDS = SERVICES.reduce((n, s) => n + s.dests.length, 0);

async function curl(url: string): Promise<{ status: number; body: string }> {
  const r = await L.lab.exec(L.director, ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", url], true);
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}

async function scrape(base = `http://${apiAddr()}`): Promise<{ text: string; page: PromPage }> {
  const r = await curl(`${base}/metrics`);
  expect(r.status).toBe(200);
  return { text: r.body, page: parseExposition(r.body) };
}

function apiAddr(): string {
  return readFileSync(join(xvs.stateDir, "api"), "utf8").trim();
}

async function adm(args: string[]): Promise<string> {
  const r = await xvs.adm(args);
  if (r.code !== 0) throw new Error(`xvs adm ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Wait until the dataplane has seen no packet for a while: counters read twice then agree. */
async function quiescent(): Promise<void> {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    const r = await xvs.api("GET", "/v1/stats");
    const rx = (r.json as { verdicts: Record<string, number> }).verdicts.rx_packets;
    if (rx === last) return;
    last = rx;
    await Bun.sleep(300);
  }
  throw new Error("traffic did not stop");
}

/** An address as the kernel prints it in /proc/net/ip_vs: %08X for IPv4, [%pI6] (8 groups of 4 hex digits) for IPv6. */
function procAddr(text: string): string {
  if (!text.includes(":"))
    return text
      .split(".")
      .map((b) => Number(b).toString(16).toUpperCase().padStart(2, "0"))
      .join("");
  const [head, tail] = text.split("::");
  const h = head ? head.split(":") : [],
    t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return `[${groups.map((g) => g.toLowerCase().padStart(4, "0")).join(":")}]`;
}

const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, "0");

/**
 * Write what kernel IPVS would show for this table under DIR/net and DIR/self/net (procfs reads
 * either, by version): ip_vs as ip_vs_info_seq_show prints it, ip_vs_stats as ip_vs_stats_show
 * does, the totals taken from xvs's page.
 */
function writeKernelProc(
  dir: string,
  view: {
    services: {
      spec: { protocol: string; address: string; port: number; scheduler: string };
      dests: { address: string; port: number; weight: number; activeConns: number; inactiveConns: number }[];
    }[];
  },
  page: PromPage,
): void {
  const L1 = [
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn",
  ];
  for (const s of view.services) {
    L1.push(`${s.spec.protocol.toUpperCase()}  ${procAddr(s.spec.address)}:${hex(s.spec.port, 4)} ${s.spec.scheduler} `);
    for (const d of s.dests)
      L1.push(
        `  -> ${procAddr(d.address)}:${hex(d.port, 4)}      ${"Masq".padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.activeConns).padEnd(10)} ${String(d.inactiveConns).padEnd(10)}`,
      );
  }
  const t = ["connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"].map((k) => page.value(`node_ipvs_${k}_total`));
  const stats = [
    "   Total Incoming Outgoing         Incoming         Outgoing",
    "   Conns  Packets  Packets            Bytes            Bytes",
    `${hex(t[0], 8)} ${hex(t[1], 8)} ${hex(t[2], 8)} ${hex(t[3], 16)} ${hex(t[4], 16)}`,
    "",
    " Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s",
    "       0        0        0                0                0",
  ];
  for (const sub of ["net", "self/net"]) {
    mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, sub, "ip_vs"), L1.join("\n") + "\n");
    writeFileSync(join(dir, sub, "ip_vs_stats"), stats.join("\n") + "\n");
  }
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("metrics", { reals: 3, ipv6: true });
  await startServers(L.lab, L.reals);
  for (const h of L.reals.slice(0, 2)) await serveOn(L.lab, h, ["--http", "8080", "--addr", "::"]);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--metrics", METRICS_ADDR]);
  for (const s of SERVICES) {
    await apiOk(xvs, "POST", "/v1/services", { protocol: s.protocol, address: s.address, port: s.port, scheduler: "rr" });
    const id = `${s.protocol}:${s.address.includes(":") ? `[${s.address}]` : s.address}:${s.port}`;
    for (const [k, d] of s.dests.entries())
      await apiOk(xvs, "POST", `/v1/services/${id}/dests`, { address: d, port: s.destPort, forward: "masq", weight: k + 1 });
  }
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("GET /metrics after real traffic", () => {
  test("traffic over IPv4 TCP and UDP and IPv6 TCP reaches every real server", async () => {
    const h = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 3);
    expect(h.ok).toBe(60);
    const u = await udpAsk(L.lab, L.client, LAB_VIP, 9000, 30);
    expect(u.ok).toBe(30);
    // curl, not the http-get agent: it takes IPv6 literals
    expect(await curlCount(L.lab, L.client, `http://[${LAB_VIP6}]:8080/`, 12)).toEqual({ rs1: 6, rs2: 6 });
  }, 60_000);

  test("per service and real server, connections, packets and bytes equal xvs adm -Ln --stats --exact, value for value", async () => {
    await quiescent();
    const { page } = await scrape();
    const rows = parseStatsListing(await adm(["-L", "-n", "--stats", "--exact"]));
    expect(rows.length).toBe(SERVICES.length + BACKENDS);
    let moved = 0;
    for (const r of rows) {
      const fam = r.dest === null ? "xvs_service_" : "xvs_backend_";
      const mine = page
        .find(`${fam}connections_total`)
        .filter(
          (s) =>
            `${s.labels.proto} ${endpoint(s.labels.local_address, s.labels.local_port)}` === r.service &&
            (r.dest === null || endpoint(s.labels.remote_address, s.labels.remote_port) === r.dest),
        );
      expect(mine.length).toBe(1);
      const l = mine[0].labels;
      const got = ["connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"].map((k) => page.value(`${fam}${k}_total`, l));
      expect({ row: `${r.service} ${r.dest ?? ""}`, v: got }).toEqual({
        row: `${r.service} ${r.dest ?? ""}`,
        v: [r.conns, r.inpkts, r.outpkts, r.inbytes, r.outbytes],
      });
      if (r.dest !== null && r.conns > 0) moved++;
    }
    // the traffic reached every real server of the three services it was sent to (7000 had none)
    expect(moved).toBe(3 + 3 + 2);
    // the director's totals: every service's traffic
    const svcRows = rows.filter((r) => r.dest === null);
    const sum = (k: "conns" | "inpkts" | "outpkts" | "inbytes" | "outbytes") => svcRows.reduce((n, r) => n + r[k], 0);
    expect(page.value("node_ipvs_connections_total")).toBe(sum("conns"));
    expect(page.value("node_ipvs_incoming_packets_total")).toBe(sum("inpkts"));
    expect(page.value("node_ipvs_outgoing_packets_total")).toBe(sum("outpkts"));
    expect(page.value("node_ipvs_incoming_bytes_total")).toBe(sum("inbytes"));
    expect(page.value("node_ipvs_outgoing_bytes_total")).toBe(sum("outbytes"));
    expect(sum("conns")).toBe(60 + 30 + 12);
  }, 60_000);

  test("node_ipvs_backend_* equal the weight, ActiveConn and InActConn columns of xvs adm -Ln, with node_exporter's labels", async () => {
    await quiescent();
    const { page } = await scrape();
    const listing = await adm(["-L", "-n"]);
    let service = "";
    let n = 0;
    for (const line of listing.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (/^(TCP|UDP|SCTP)$/.test(f[0])) service = `${f[0]} ${f[1]}`;
      if (f[0] !== "->" || f[1] === "RemoteAddress:Port") continue;
      const [proto, vip] = service.split(" ");
      const lv = /^\[?(.*?)\]?:(\d+)$/.exec(vip)!,
        rv = /^\[?(.*?)\]?:(\d+)$/.exec(f[1])!;
      const labels = { local_address: lv[1], local_port: lv[2], remote_address: rv[1], remote_port: rv[2], proto, local_mark: "" };
      expect(page.find("node_ipvs_backend_weight", labels).map((s) => s.labels)).toEqual([labels]);
      expect([
        page.value("node_ipvs_backend_weight", labels),
        page.value("node_ipvs_backend_connections_active", labels),
        page.value("node_ipvs_backend_connections_inactive", labels),
      ]).toEqual([Number(f[3]), Number(f[4]), Number(f[5])]);
      n++;
    }
    expect(n).toBe(BACKENDS);
    // the 60 + 12 closed TCP connections wait out their TIME_WAIT as inactive, the 30 UDP ones too
    expect(page.find("node_ipvs_backend_connections_inactive").reduce((s, x) => s + x.value, 0)).toBeGreaterThan(0);
    expect(page.find("node_ipvs_backend_weight", { proto: "TCP", local_address: LAB_VIP6 }).length).toBe(2);
  }, 30_000);

  test("promtool check metrics accepts the page (and rejects a broken one: the check can fail)", async () => {
    const { text } = await scrape();
    expect(text).toContain("node_ipvs_backend_connections_active{");
    const check = async (page: string) => {
      const p = Bun.spawn(["promtool", "check", "metrics"], { stdin: new Blob([page]), stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { code, out: (out + err).trim() };
    };
    expect(await check(text)).toEqual({ code: 0, out: "" });
    const broken = await check(`${text}# TYPE xvs_made_up counter\nxvs_made_up 1\n`);
    expect(broken.code).not.toBe(0);
    expect(broken.out).toContain("xvs_made_up");
  }, 30_000);

  test("node_exporter itself, reading the same table from /proc files in the kernel's format, writes the same node_ipvs_* samples", async () => {
    await quiescent();
    // the table and the connection counts, read twice around the scrape so that they held still
    type View = {
      services: {
        spec: { protocol: string; address: string; port: number; scheduler: string };
        dests: { address: string; port: number; weight: number; activeConns: number; inactiveConns: number }[];
      }[];
    };
    let view: View | null = null,
      page: PromPage | null = null;
    for (let i = 0; i < 5 && !page; i++) {
      const a = (await xvs.api("GET", "/v1/services")).json as View;
      const p = (await scrape()).page;
      const b = (await xvs.api("GET", "/v1/services")).json as View;
      if (JSON.stringify(a) === JSON.stringify(b)) [view, page] = [a, p];
    }
    if (!view || !page) throw new Error("the table kept changing");
    const dir = mkdtempSync(join(tmpdir(), "xvs-procfs-"));
    try {
      writeKernelProc(dir, view, page);
      const ne = L.lab.spawn(L.director, [
        "prometheus-node-exporter",
        `--path.procfs=${dir}`,
        "--collector.disable-defaults",
        "--collector.ipvs",
        `--web.listen-address=${NODE_EXPORTER_ADDR}`,
      ]);
      try {
        void new Response(ne.stdout as ReadableStream<Uint8Array>).text();
        void new Response(ne.stderr as ReadableStream<Uint8Array>).text();
        let theirs: PromPage | null = null;
        for (let i = 0; i < 100 && !theirs; i++) {
          const r = await curl(`http://${NODE_EXPORTER_ADDR}/metrics`);
          if (r.status === 200) theirs = parseExposition(r.body);
          else await Bun.sleep(100);
        }
        if (!theirs) throw new Error("node_exporter did not answer");
        expect(theirs.value("node_scrape_collector_success", { collector: "ipvs" })).toBe(1);
        const ipvs = (p: PromPage) =>
          p.samples
            .filter((x) => x.name.startsWith("node_ipvs_"))
            .map(
              (x) =>
                `${x.name}{${Object.entries(x.labels)
                  .sort()
                  .map(([k, v]) => `${k}=${v}`)
                  .join(",")}} ${x.value}`,
            )
            .sort();
        const ours = ipvs(page);
        expect(ours.length).toBe(5 + 3 * BACKENDS);
        expect(ipvs(theirs)).toEqual(ours);
        for (const name of new Set(page.samples.filter((x) => x.name.startsWith("node_ipvs_")).map((x) => x.name))) {
          expect([name, page.help.get(name), page.type.get(name)]).toEqual([name, theirs.help.get(name), theirs.type.get(name)]);
        }
      } finally {
        ne.kill("SIGTERM");
        await Promise.race([ne.exited, Bun.sleep(3000)]);
        if (ne.exitCode === null) ne.kill("SIGKILL");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("ipvsadm -Z zeroes the listing, not the metrics; the --metrics listener serves the same page and nothing else", async () => {
    await quiescent();
    const before = (await scrape()).page;
    await adm(["-Z"]);
    const rows = parseStatsListing(await adm(["-L", "-n", "--stats", "--exact"]));
    expect(rows.every((r) => r.conns === 0 && r.inpkts === 0 && r.outbytes === 0)).toBe(true);
    const after = (await scrape()).page;
    const counters = (p: PromPage) => p.samples.filter((s) => /^(node_ipvs_|xvs_(service|backend)_).*_total$/.test(s.name));
    expect(counters(after)).toEqual(counters(before));
    expect(after.value("node_ipvs_connections_total")).toBe(102);
    const alone = await scrape(`http://${METRICS_ADDR}`);
    expect(counters(alone.page)).toEqual(counters(after));
    expect((await curl(`http://${METRICS_ADDR}/v1/services`)).status).toBe(404);
  }, 30_000);

  test("the access log: one line per mutating call with peer, token check, summary and status, each with its priority prefix", async () => {
    const r = await L.lab.exec(
      L.director,
      ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", "{}", `http://${apiAddr()}/v1/zero`],
      true,
    );
    expect(r.stdout).toBe("401");
    const raw = xvs
      .rawLog()
      .split("\n")
      .filter((l) => l.includes('"api access"'));
    const recs = raw.map((l) => parseLogLine(l)!);
    // the setup's 4 services and 11 real servers, -Z (xvs adm), the refused POST
    expect(recs.length).toBe(SERVICES.length + BACKENDS + 2);
    const add = recs.find((x) => x.path === "/v1/services" && String(x.summary).includes("port=9000"))!;
    expect(add).toMatchObject({
      level: "info",
      method: "POST",
      token: "valid",
      status: 201,
      summary: `protocol=udp address=${LAB_VIP} port=9000 scheduler=rr`,
    });
    expect(String(add.peer)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(recs.find((x) => x.path === "/v1/zero" && x.token === "valid")).toMatchObject({ method: "POST", status: 204 });
    const refused = recs[recs.length - 1];
    expect(refused).toMatchObject({ level: "warn", method: "POST", path: "/v1/zero", token: "missing", status: 401, summary: "" });
    expect(raw[raw.length - 1].startsWith("<4>{")).toBe(true);
    expect(raw.slice(0, -1).every((l) => l.startsWith("<6>{"))).toBe(true);
    expect(
      xvs
        .rawLog()
        .split("\n")
        .find((l) => l.includes('"xvs running"')),
    ).toStartWith("<6>{");
    expect(xvs.log()).not.toMatch(/^<\d>/m);
  }, 30_000);

  test("workers' busy seconds rise under traffic and stay put while idle; never above the loop's seconds", async () => {
    const sum = (p: PromPage, name: string) => p.find(name).reduce((a, s) => a + s.value, 0);
    const times = async () => {
      const { page } = await scrape();
      expect(page.find("xvs_worker_busy_seconds_total").length).toBe(page.value("xvs_workers"));
      for (const s of page.find("xvs_worker_busy_seconds_total")) expect(s.value).toBeLessThanOrEqual(page.value("xvs_worker_loop_seconds_total", s.labels));
      return { busy: sum(page, "xvs_worker_busy_seconds_total"), loop: sum(page, "xvs_worker_loop_seconds_total") };
    };
    await quiescent();
    const idle0 = await times();
    await Bun.sleep(1000);
    const idle1 = await times();
    expect(idle1.loop - idle0.loop).toBeGreaterThan(0.5); // the loop runs (and its counter is written) while idle
    // no frame, no busy time (a stray late segment may still arrive: a tenth of the loop is plenty)
    expect(idle1.busy - idle0.busy).toBeLessThan((idle1.loop - idle0.loop) / 10);
    const h = await httpGet(L.lab, L.client, LAB_VIP, 80, 200, 4);
    expect(h.ok).toBe(200);
    const after = await times();
    expect(after.busy).toBeGreaterThan(idle1.busy);
    const share = (a: { busy: number; loop: number }, b: { busy: number; loop: number }) => `${((100 * (b.busy - a.busy)) / (b.loop - a.loop)).toFixed(2)} %`;
    process.stdout.write(`  busy share: idle ${share(idle0, idle1)}, under 200 HTTP requests ${share(idle1, after)}\n`);
  }, 60_000);
});

describe("a real Prometheus server scrapes xvs", () => {
  let prom: Subprocess | null = null;
  let dir = "";
  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill("SIGTERM");
      await Promise.race([prom.exited, Bun.sleep(5000)]);
      if (prom.exitCode === null) prom.kill("SIGKILL");
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 15_000);

  test("its query API returns node_ipvs_backend_connections_active for every real server, with the live value", async () => {
    dir = mkdtempSync(join(tmpdir(), "xvs-prom-"));
    writeFileSync(
      join(dir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: xvs",
        "    static_configs:",
        `      - targets: ["${METRICS_ADDR}"]`,
        "",
      ].join("\n"),
    );
    // three connections held open on the :7000 service: rr gives each real server one active
    const held = await Promise.all([0, 1, 2].map(() => HeldConnection.open(L.lab, L.client, LAB_VIP, 7000)));
    try {
      const p = L.lab.spawn(L.director, [
        "prometheus",
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=${PROM_ADDR}`,
        "--log.level=warn",
      ]);
      prom = p;
      let log = "";
      void (async () => {
        const dec = new TextDecoder();
        for await (const c of p.stderr as ReadableStream<Uint8Array>) log += dec.decode(c);
      })();
      void new Response(p.stdout as ReadableStream<Uint8Array>).text();

      type Result = { metric: Record<string, string>; value: [number, string] }[];
      let result: Result = [];
      const query = encodeURIComponent("node_ipvs_backend_connections_active");
      const deadline = Date.now() + 45_000;
      while (Date.now() < deadline) {
        if (p.exitCode !== null) throw new Error(`prometheus exited with ${p.exitCode}: ${log}`);
        const r = await curl(`http://${PROM_ADDR}/api/v1/query?query=${query}`);
        if (r.status === 200) {
          const j = JSON.parse(r.body) as { status: string; data: { result: Result } };
          result = j.data.result;
          if (result.length === BACKENDS) break;
        }
        await Bun.sleep(500);
      }
      expect(result.length).toBe(BACKENDS);
      for (const s of SERVICES) {
        for (const d of s.dests) {
          const found = result.filter(
            (x) =>
              x.metric.local_address === s.address &&
              x.metric.local_port === String(s.port) &&
              x.metric.remote_address === d &&
              x.metric.remote_port === String(s.destPort) &&
              x.metric.proto === s.protocol.toUpperCase(),
          );
          expect(found.length).toBe(1);
          expect(found[0].metric).toMatchObject({ __name__: "node_ipvs_backend_connections_active", job: "xvs", instance: METRICS_ADDR });
          if (s.port === 7000) expect(found[0].value[1]).toBe("1");
        }
      }
      // and the scrape itself is healthy
      const up = JSON.parse((await curl(`http://${PROM_ADDR}/api/v1/query?query=up`)).body) as { data: { result: Result } };
      expect(up.data.result.map((x) => x.value[1])).toEqual(["1"]);
    } finally {
      for (const h of held) h.close();
    }
  }, 90_000);
});
