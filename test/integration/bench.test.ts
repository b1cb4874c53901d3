/**
 * `xvs bench` keeps working: the whole harness in a tiny configuration (one short
 * round, every workload, every contender this machine has), as a user runs it. Not a benchmark:
 * the numbers are not judged, only that every part produced them, that a contender that cannot
 * start is reported and does not stop the others, and that leftovers of an interrupted run are
 * cleaned up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sh } from "../../src/tools/lab/netns.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import type { BenchReport } from "../../src/tools/bench/report.ts";
import { requireRoot } from "./helpers.ts";

let dir: string;
let report: BenchReport;
let code: number;
let stderr: string;
let stdout: string;
let md: string;
let svg: string;
/** A namespace that looks left behind by a crashed run (its pid is gone), with nftables rules inside. */
let staleNs: string;
let benchPid = 0;

async function deadPid(): Promise<number> {
  const p = Bun.spawn(["true"]);
  await p.exited;
  return p.pid;
}

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), "xvs-bench-test-"));
  staleNs = `xvst-${await deadPid()}-bench-gen`;
  await sh(["ip", "netns", "add", staleNs]);
  await sh(["ip", "netns", "exec", staleNs, "nft", "add", "table", "ip", "xvsbench"]);
  const p = Bun.spawn(
    [
      ...selfCommand(),
      "bench",
      "--quick",
      "--check",
      "--out",
      dir,
      "--name",
      "t",
      // a C forwarder that exits at once: it must be reported as failed, and the others must still run
      "--xskfwd-bin",
      "/bin/false",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  benchPid = p.pid;
  const [out, err, rc] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  code = rc;
  stderr = err;
  stdout = out;
  if (existsSync(join(dir, "t.json"))) report = JSON.parse(readFileSync(join(dir, "t.json"), "utf8"));
  if (existsSync(join(dir, "t.md"))) md = readFileSync(join(dir, "t.md"), "utf8");
  if (existsSync(join(dir, "t.svg"))) svg = readFileSync(join(dir, "t.svg"), "utf8");
  if (code !== 0 || !report) console.error(`xvs bench exited ${code}\n--- stdout\n${out}\n--- stderr\n${err}`);
  // every contender started and measured on every workload: with other labs loading the 2-core
  // machine (load 15) it had reached only the 5th of 8 steps when the old 240 s ran out; the
  // budget bounds a hang, it does not judge speed
}, 480_000);

afterAll(async () => {
  await sh(["ip", "netns", "del", staleNs], true);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const row = (c: string, w: string) => report.rows.find((r) => r.contender === c && r.workload === w);

describe("xvs bench --quick", () => {
  test("exits 0 with --check (every xvs measurement succeeded) and writes JSON, markdown and SVG", () => {
    expect(code).toBe(0);
    expect(report.schema).toBe("xvs-bench/1");
    expect(md).toContain("## Machine");
    expect(md).toContain("## Results");
    expect(svg.startsWith("<svg")).toBe(true);
  });

  test("xvs produced a value for every workload: packet rates, latency, connection rate, tracked flows", () => {
    for (const w of ["udp64", "udp1514", "latency-p50", "latency-p99", "tcp", "flows-20k"]) {
      const r = row("xvs-nat", w)!;
      expect(r, w).toBeDefined();
      expect(r.errors, w).toEqual([]);
      expect(r.n, w).toBe(1);
      expect(r.median!, w).toBeGreaterThan(0);
      expect(r.ratioToXvs, w).toBe(1);
    }
    expect(Number(row("xvs-nat", "flows-20k")!.extra.tracked)).toBeGreaterThan(15_000);
  });

  test("udp64-replied: the sink answered every flow once and xvs-nat's UDP NAT flows were then forwarded by XDP", () => {
    for (const c of ["xvs-nat", "nft"]) {
      const r = row(c, "udp64-replied")!;
      expect(r, c).toBeDefined();
      expect(r.errors, c).toEqual([]);
      expect(r.median!, c).toBeGreaterThan(0);
      // --flows 256 (the default): every flow answered (the sink remembers them, so once as a
      // rule). At least 256, not exactly: runs since the sink's NAPI got its own thread (3d91626)
      // saw 512 (nft, xvs-nat; also at load 2) and 1792 (xvs-nat, load 30), every flow answered
      // more than once although the sink's LRU of answered flows (65536) is far from full; the
      // cause is not found (bench/README.md, udp64-replied). What the row needs is that every
      // flow got a reply, so that its NAT flow could be cached.
      expect(Number(r.extra.replied), c).toBeGreaterThanOrEqual(256);
    }
    // cached at the first reply: the workers saw each flow's first packets, XDP forwarded the rest
    const x = row("xvs-nat", "udp64-replied")!.extra;
    expect(Number(x.xdpForwarded)).toBeGreaterThan(Number(x.tsPackets));
    expect(Number(x.xdpShare)).toBeGreaterThan(0.5);
  });

  test("the generator's own rate, plain forwarding and nftables were measured, with ratios to xvs", () => {
    for (const [c, w] of [
      ["gen", "udp64"],
      ["plain", "udp64"],
      ["plain", "tcp"],
      ["nft", "udp64"],
      ["nft", "tcp"],
      ["nft", "flows-20k"],
    ]) {
      const r = row(c, w)!;
      expect(r, `${c} ${w}`).toBeDefined();
      expect(r.errors, `${c} ${w}`).toEqual([]);
      expect(r.median!, `${c} ${w}`).toBeGreaterThan(0);
      expect(r.ratioToXvs!, `${c} ${w}`).toBeGreaterThan(0);
    }
  });

  test("kernel IPVS is measured when this kernel has it; when it has not, every output says so, with the way to get it", async () => {
    // judged independently of the bench: the kernel has IPVS when /proc/net/ip_vs exists once
    // ip_vs is loaded (as ip_vs_init creates it), and ipvsadm is what drives it
    await sh(["modprobe", "ip_vs"], true);
    const kernelHasIpvs = existsSync("/proc/net/ip_vs");
    const hasIpvsadm = (await sh(["sh", "-c", "command -v ipvsadm"], true)).code === 0;
    const ipvs = report.contenders.find((c) => c.id === "ipvs-nat");
    expect(ipvs?.id).toBe("ipvs-nat");
    const rows = report.rows.filter((r) => r.contender === "ipvs-nat");
    if (kernelHasIpvs && hasIpvsadm) {
      expect(ipvs!.skipped).toBeNull();
      const r = row("ipvs-nat", "udp64")!;
      expect(r.errors).toEqual([]);
      expect(r.median!).toBeGreaterThan(0);
      expect(r.ratioToXvs!).toBeGreaterThan(0);
      return;
    }
    const reason = kernelHasIpvs ? "the kernel has IPVS but ipvsadm is not installed" : "this kernel has no IPVS";
    expect(ipvs!.skipped).toStartWith(reason);
    if (!kernelHasIpvs) expect(ipvs!.skipped).toContain("xvs bench --ipvs-vm");
    // nothing was measured for it, and the JSON, the markdown, the summary and the log all say why
    expect(rows.filter((r) => r.n > 0 || r.median !== null)).toEqual([]);
    expect(md).toContain(`- **ipvs-nat**: ${ipvs!.label} — **skipped**: ${reason}`);
    expect(stdout).toContain(`skipped ipvs-nat: ${reason}`);
    expect(stderr).toContain(`skip ipvs-nat: ${reason}`);
  });

  test("a contender that fails to start is reported as failed with its error, and the rest still ran", () => {
    const r = row("xskfwd", "udp64")!;
    expect(r.n).toBe(0);
    expect(r.errors.length).toBe(1);
    expect(r.errors[0].error).toMatch(/xskfwd did not start/);
    expect(stderr).toContain("xskfwd udp64: FAILED");
  });

  test("microbenchmarks ran, with the baseline copy loop, 4K and 1M flows, and the full fast path forwarded", () => {
    const ids = report.micro.map((m) => m.id);
    for (const id of ["copy", "parse", "rewrite", "lookup-4K", "fastpath-4K", "lookup-1M", "fastpath-1M", "new-conns"]) expect(ids).toContain(id);
    for (const m of report.micro) {
      expect(m.error, m.id).toBeUndefined();
      expect(m.nsPerPacket, m.id).toBeGreaterThan(0);
    }
  });

  test("the machine is described and the pinning is stated", async () => {
    expect(String(report.machine.cpu)).toMatch(/\d+ x /);
    // the kernel it ran on, as uname -r says it (String(undefined) would have been truthy too)
    expect(report.machine.kernel).toBe((await sh(["uname", "-r"])).stdout.trim());
    expect(report.notes.join(" ")).toMatch(/CPU 0.*CPU 1/);
  });

  test("leftovers of an interrupted run were removed, and the run left nothing behind", async () => {
    const list = (await sh(["ip", "netns", "list"])).stdout;
    expect(list).not.toContain(staleNs);
    expect(stderr).toContain(staleNs);
    const mine = list.split("\n").filter((l) => l.startsWith(`xvst-${benchPid}-`));
    expect(mine).toEqual([]);
  });
});
