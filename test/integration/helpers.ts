/** Shared pieces of the namespace-lab tests. */
import { expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Lab } from "../../src/tools/lab/netns.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { checksum, pseudoSumV4, pseudoSumV6 } from "../../src/wire/checksum.ts";
import { addrText as addr4Text } from "../../src/wire/ipv4.ts";
import { addrText as addr6Text } from "../../src/wire/ipv6.ts";

/** Namespace labs need root: fail (not skip) when it is missing, with the reason. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("namespace-lab tests need root (network namespaces, XDP): run bun test as root");
}

/** Start the lab agent `serve` in each real server; resolves when all are listening. */
export async function startServers(
  lab: Lab,
  hosts: string[],
  opts: { http?: number; tcp?: number; udp?: number } = { http: 80, tcp: 7000, udp: 9000 },
): Promise<void> {
  const args: string[] = [];
  if (opts.http) args.push("--http", String(opts.http));
  if (opts.tcp) args.push("--tcp", String(opts.tcp));
  if (opts.udp) args.push("--udp", String(opts.udp));
  await Promise.all(hosts.map((h) => serveOn(lab, h, args)));
}

/** Start one lab real server (`xvs __lab serve --name HOST ARGS`) and wait until it is ready. */
export async function serveOn(lab: Lab, host: string, args: string[]): Promise<void> {
  const p = lab.spawn(host, [...selfCommand(), "__lab", "serve", "--name", host, ...args]);
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  expect(new TextDecoder().decode(value)).toContain("ready");
}

/** The afterAll of a lab test file: stop the daemon, then remove every namespace. */
export async function stopLab(xvs: { stop(): Promise<unknown> } | undefined, L: { lab: Lab } | undefined): Promise<void> {
  await xvs?.stop();
  await L?.lab.teardown();
}

export interface HttpSummary {
  ok: number;
  failed: number;
  byServer: Record<string, number>;
  errors: string[];
  bodies?: string[];
}

/** Run `count` HTTP requests (a new connection each) from a lab host. */
export async function httpGet(lab: Lab, host: string, target: string, port: number, count: number, concurrency = 4, path = "/"): Promise<HttpSummary> {
  const r = await lab.exec(host, [
    ...selfCommand(),
    "__lab",
    "http-get",
    "--host",
    target,
    "--port",
    String(port),
    "--count",
    String(count),
    "--concurrency",
    String(concurrency),
    "--path",
    path,
    "--bodies",
    "1",
  ]);
  return JSON.parse(r.stdout.trim()) as HttpSummary;
}

/** Send `count` UDP datagrams (padded to `size` bytes), each from a new source port. */
export async function udpAsk(
  lab: Lab,
  host: string,
  target: string,
  port: number,
  count: number,
  size = 0,
): Promise<{ ok: number; failed: number; byServer: Record<string, number> }> {
  const r = await lab.exec(host, [
    ...selfCommand(),
    "__lab",
    "udp-ask",
    "--host",
    target,
    "--port",
    String(port),
    "--count",
    String(count),
    "--size",
    String(size),
  ]);
  return JSON.parse(r.stdout.trim());
}

/** A long-lived TCP connection from a lab host: send a line, read the reply line. */
export class HeldConnection {
  private buf = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private constructor(private readonly proc: ReturnType<Lab["spawn"]>) {
    this.reader = (proc.stdout as ReadableStream<Uint8Array>).getReader() as ReadableStreamDefaultReader<Uint8Array>;
  }
  static async open(lab: Lab, host: string, target: string, port: number): Promise<HeldConnection> {
    const p = lab.spawn(host, [...selfCommand(), "__lab", "tcp-hold", "--host", target, "--port", String(port)], { stdin: "pipe" });
    const c = new HeldConnection(p);
    // "connected" comes after the agent process has started (bun loading the source tree, ~0.25 s
    // of CPU each): tests open 30 at once on 2 cores, so this wait covers start-up, not the network
    expect(await c.line(30_000)).toBe("connected");
    return c;
  }
  async line(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.buf.includes("\n")) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no reply line in time");
      const r = await Promise.race([this.reader.read(), Bun.sleep(left).then(() => null)]);
      if (r === null) throw new Error("no reply line in time");
      if (r.done) throw new Error(`connection helper ended: ${this.buf}`);
      this.buf += new TextDecoder().decode(r.value);
    }
    const i = this.buf.indexOf("\n");
    const l = this.buf.slice(0, i);
    this.buf = this.buf.slice(i + 1);
    return l;
  }
  /** Send a line and return the reply ("<server> <line>"). */
  async ask(text: string): Promise<string> {
    const stdin = this.proc.stdin as unknown as { write(s: string): void; flush(): void };
    stdin.write(text + "\n");
    stdin.flush();
    return this.line();
  }
  close(): void {
    (this.proc.stdin as unknown as { end(): void }).end();
  }
}

/** The kernel counters of bad checksums and bad IP headers that checksumErrors() sums. */
export const CHECKSUM_ERROR_COUNTERS = [
  "TcpInCsumErrors",
  "UdpInCsumErrors",
  "IcmpInCsumErrors",
  "IpInHdrErrors",
  "IpExtInCsumErrors",
  "Ip6InHdrErrors",
  "Udp6InCsumErrors",
  "Icmp6InCsumErrors",
] as const;

/**
 * Sum of the kernel's checksum-error counters in a lab host (nstat). Strict: throws when nstat
 * did not run or did not report every one of the counters, so that a lab which cannot verify
 * checksums fails instead of reading 0.
 */
export async function checksumErrors(lab: Lab, host: string): Promise<number> {
  const s = await lab.snmp(host);
  const missing = CHECKSUM_ERROR_COUNTERS.filter((k) => typeof s[k] !== "number" || !Number.isFinite(s[k]));
  if (missing.length > 0) throw new Error(`nstat in ${host} did not report ${missing.join(", ")}: checksums cannot be verified there`);
  let n = 0;
  for (const k of CHECKSUM_ERROR_COUNTERS) n += s[k];
  return n;
}

// ---- DR / TUN labs ----

/** `xvs decap ARGS` in a lab host; returns stdout. @throws when it fails. */
export async function decap(lab: Lab, host: string, args: string[]): Promise<string> {
  const r = await lab.exec(host, [...selfCommand(), "decap", ...args], true);
  if (r.code !== 0) throw new Error(`xvs decap ${args.join(" ")} in ${host}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The decap helper's counters on a lab host's interface. */
export async function decapStats(lab: Lab, host: string, iface = "eth0"): Promise<Record<string, number>> {
  return JSON.parse(await decap(lab, host, ["stats", iface])) as Record<string, number>;
}

/** Frames read from a classic pcap file (little-endian, Ethernet). */
export function readPcap(bytes: Uint8Array): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || dv.getUint32(0, true) !== 0xa1b2c3d4) throw new Error("not a little-endian pcap file");
  const out: Uint8Array[] = [];
  for (let off = 24; off + 16 <= bytes.length; ) {
    const incl = dv.getUint32(off + 8, true);
    out.push(bytes.slice(off + 16, off + 16 + incl));
    off += 16 + incl;
  }
  return out;
}

/** tcpdump on a lab host's interface, writing every frame to a file read back by stop(). */
export class Capture {
  private constructor(
    private readonly proc: ReturnType<Lab["spawn"]>,
    private readonly dir: string,
  ) {}

  static async start(lab: Lab, host: string, iface: string, filter: string[] = []): Promise<Capture> {
    const dir = mkdtempSync(join(tmpdir(), "xvs-cap-"));
    // -s/-B: with the defaults (262144-byte snapshots, 2 MiB buffer) tcpdump's kernel ring
    // overflowed in bursts here ("N packets dropped by kernel") and frames went missing; ring
    // slots are sized from the snapshot length, and lab frames are at most 1514 bytes.
    const p = lab.spawn(host, ["tcpdump", "--immediate-mode", "-U", "-n", "-s", "4096", "-B", "16384", "-i", iface, "-w", join(dir, "c.pcap"), ...filter]);
    const reader = (p.stderr as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes("listening on")) {
      const r = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
      if (r === null || r.done) throw new Error(`tcpdump on ${host}:${iface} did not start: ${text}`);
      text += new TextDecoder().decode(r.value);
    }
    reader.releaseLock();
    // a short settle after "listening" (immediate mode: frames are handed over as they come, so
    // stop() finds every one in the file; without it they wait for a ring block to fill)
    await Bun.sleep(200);
    return new Capture(p, dir);
  }

  /** Stop (after a short settle) and return the frames captured. */
  async stop(): Promise<Uint8Array[]> {
    await Bun.sleep(300);
    this.proc.kill("SIGINT");
    await Promise.race([this.proc.exited, Bun.sleep(3000)]);
    // tcpdump's closing words: a capture that lost frames cannot back a per-frame check
    const rd = (this.proc.stderr as ReadableStream<Uint8Array>).getReader();
    let tail = "";
    for (;;) {
      const x = await Promise.race([rd.read(), Bun.sleep(1000).then(() => null)]);
      if (x === null || x.done) break;
      tail += new TextDecoder().decode(x.value);
    }
    const dropped = Number(/(\d+) packets? dropped by kernel/.exec(tail)?.[1] ?? 0);
    try {
      if (dropped > 0) throw new Error(`the capture lost ${dropped} frames (tcpdump: ${tail.trim().replace(/\s+/g, " ")})`);
      return readPcap(new Uint8Array(readFileSync(join(this.dir, "c.pcap"))));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** One IP header of a decoded frame. */
export interface IpView {
  version: 4 | 6;
  /** Offset of the header in the frame. */
  off: number;
  /** IPv4 TOS / IPv6 traffic class. */
  tos: number;
  ttl: number;
  /** IPv4 only (0 for IPv6). */
  id: number;
  df: boolean;
  proto: number;
  src: string;
  dst: string;
  /** Header + payload bytes. */
  length: number;
  /** IPv6 flow label (0 for IPv4). */
  flowLabel: number;
  /** IPv4 header checksum verifies (always true for IPv6). */
  headerOk: boolean;
  /** Offset of the payload (L4 or tunnel header). */
  payload: number;
}

function ipAt(f: Uint8Array, off: number): IpView | null {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (off + 20 > f.length) return null;
  const v = f[off] >>> 4;
  if (v === 4) {
    const ihl = (f[off] & 15) * 4;
    return {
      version: 4,
      off,
      tos: f[off + 1],
      ttl: f[off + 8],
      id: dv.getUint16(off + 4),
      df: (dv.getUint16(off + 6) & 0x4000) !== 0,
      proto: f[off + 9],
      src: addr4Text(dv.getInt32(off + 12)),
      dst: addr4Text(dv.getInt32(off + 16)),
      length: dv.getUint16(off + 2),
      flowLabel: 0,
      headerOk: checksum(f, off, ihl) === 0,
      payload: off + ihl,
    };
  }
  if (v === 6 && off + 40 <= f.length) {
    const w = (o: number) => [dv.getInt32(o), dv.getInt32(o + 4), dv.getInt32(o + 8), dv.getInt32(o + 12)];
    return {
      version: 6,
      off,
      tos: (dv.getUint16(off) >>> 4) & 0xff,
      ttl: f[off + 7],
      id: 0,
      df: false,
      proto: f[off + 6],
      src: addr6Text(w(off + 8)),
      dst: addr6Text(w(off + 24)),
      length: 40 + dv.getUint16(off + 4),
      flowLabel: dv.getUint32(off) & 0xfffff,
      headerOk: true,
      payload: off + 40,
    };
  }
  return null;
}

/** A decoded frame: Ethernet, the outer IP header, the tunnel (if any) and the inner IP header. */
export interface FrameView {
  dstMac: string;
  srcMac: string;
  outer: IpView;
  tunnel: null | {
    kind: "ipip" | "gue" | "gre";
    sport?: number;
    dport?: number;
    udpChecksum?: number;
    greFlags?: number;
    greChecksumOk?: boolean;
    udpChecksumOk?: boolean;
    headerBytes: number[];
  };
  /** The client's packet: the inner header of a tunnel, else the outer one. */
  inner: IpView;
  /** Ports of the innermost TCP/UDP header, and whether its checksum verifies. */
  sport: number;
  dport: number;
  l4ChecksumOk: boolean;
}

function mac(f: Uint8Array, off: number): string {
  return Array.from(f.subarray(off, off + 6), (b) => b.toString(16).padStart(2, "0")).join(":");
}

function l4Ok(f: Uint8Array, ip: IpView): boolean {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const len = ip.length - (ip.payload - ip.off);
  if (ip.payload + len > f.length) return false;
  if (ip.proto === 17 && dv.getUint16(ip.payload + 6) === 0 && ip.version === 4) return true;
  if (ip.proto !== 6 && ip.proto !== 17) return true;
  const pseudo =
    ip.version === 4 ? pseudoSumV4(dv.getInt32(ip.off + 12), dv.getInt32(ip.off + 16), ip.proto, len) : pseudoSumV6(f, ip.off + 8, ip.off + 24, ip.proto, len);
  return checksum(f, ip.payload, len, pseudo) === 0;
}

/**
 * Decode a captured frame; `guePorts` says which UDP ports carry GUE. Returns null for frames
 * that are not IP (ARP, NDP are IP: callers filter on addresses).
 */
export function decodeFrame(f: Uint8Array, guePorts: number[] = [6080]): FrameView | null {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (f.length < 34) return null;
  const et = dv.getUint16(12);
  if (et !== 0x0800 && et !== 0x86dd) return null;
  const outer = ipAt(f, 14);
  if (!outer) return null;
  let inner = outer;
  let tunnel: FrameView["tunnel"] = null;
  const p = outer.payload;
  if (outer.proto === 4 || outer.proto === 41) {
    const i = ipAt(f, p);
    if (i) {
      inner = i;
      tunnel = { kind: "ipip", headerBytes: [] };
    }
  } else if (outer.proto === 47 && p + 4 <= f.length) {
    const flags = dv.getUint16(p);
    const hl = flags & 0x8000 ? 8 : 4;
    const i = ipAt(f, p + hl);
    if (i) {
      inner = i;
      const len = outer.length - (p - outer.off);
      tunnel = {
        kind: "gre",
        greFlags: flags,
        greChecksumOk: (flags & 0x8000) === 0 || checksum(f, p, len) === 0,
        headerBytes: Array.from(f.subarray(p, p + hl)),
      };
    }
  } else if (outer.proto === 17 && p + 12 <= f.length && guePorts.includes(dv.getUint16(p + 2))) {
    const hl = 12 + (f[p + 8] & 0x1f) * 4;
    const i = ipAt(f, p + hl);
    if (i) {
      inner = i;
      tunnel = {
        kind: "gue",
        sport: dv.getUint16(p),
        dport: dv.getUint16(p + 2),
        udpChecksum: dv.getUint16(p + 6),
        udpChecksumOk: l4Ok(f, outer),
        headerBytes: Array.from(f.subarray(p + 8, p + hl)),
      };
    }
  }
  const hasPorts = (inner.proto === 6 || inner.proto === 17) && inner.payload + 4 <= f.length;
  return {
    dstMac: mac(f, 0),
    srcMac: mac(f, 6),
    outer,
    tunnel,
    inner,
    sport: hasPorts ? dv.getUint16(inner.payload) : 0,
    dport: hasPorts ? dv.getUint16(inner.payload + 2) : 0,
    l4ChecksumOk: l4Ok(f, inner),
  };
}

/** MAC address of a lab host's interface. */
export async function macOf(lab: Lab, host: string, iface: string): Promise<string> {
  const r = await lab.exec(host, ["cat", `/sys/class/net/${iface}/address`]);
  return r.stdout.trim();
}

/** Send raw IP payload bytes (protocol `proto`) from a lab host to `dst` with socat (the kernel writes the IP header). */
export async function injectIp(lab: Lab, host: string, dst: string, proto: number, bytes: Uint8Array): Promise<void> {
  const addr = dst.includes(":") ? `IP6-SENDTO:[${dst}]:${proto}` : `IP4-SENDTO:${dst}:${proto}`;
  const p = Bun.spawn(["ip", "netns", "exec", lab.ns(host), "socat", "-u", "STDIN", addr], { stdin: new Blob([bytes]), stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`socat ${addr} in ${host}: ${err.trim()}`);
}

/** The daemon's verdict counters. */
export async function verdictsOf(xvs: { api(m: string, p: string, b?: unknown): Promise<{ status: number; json: unknown }> }): Promise<Record<string, number>> {
  const r = await xvs.api("GET", "/v1/stats");
  return (r.json as { verdicts: Record<string, number> }).verdicts;
}

/** Call the daemon's API and fail on a non-2xx answer. */
export async function apiOk(
  xvs: { api(m: string, p: string, b?: unknown): Promise<{ status: number; json: unknown }> },
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const r = await xvs.api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Send `count` UDP datagrams (each from a new socket) with socat, expecting no answer. */
export async function udpSend(lab: Lab, host: string, dst: string, port: number, count: number, payload = "xvs"): Promise<void> {
  const target = dst.includes(":") ? `UDP6-SENDTO:[${dst}]:${port}` : `UDP4-SENDTO:${dst}:${port}`;
  for (let i = 0; i < count; i++) {
    const p = Bun.spawn(["ip", "netns", "exec", lab.ns(host), "socat", "-u", "STDIN", target], {
      stdin: new Blob([payload]),
      stdout: "ignore",
      stderr: "pipe",
    });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`socat ${target}: ${err.trim()}`);
  }
}

/**
 * `count` HTTP GETs with curl (one connection each) from a lab host, counted by the answering
 * server's name (the lab server's body starts with it). curl takes IPv6 literals, which the
 * http-get agent does not put in a Host header correctly.
 */
export async function curlCount(lab: Lab, host: string, url: string, count: number): Promise<Record<string, number>> {
  const r = await lab.exec(host, ["bash", "-c", `for i in $(seq ${count}); do curl -s -g -m 5 '${url}'; echo; done`], true);
  const by: Record<string, number> = {};
  for (const line of r.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (name) by[name] = (by[name] ?? 0) + 1;
  }
  return by;
}

/**
 * Poll `get` (every 100 ms) until `ok` holds of its value and return that value; after `ms`,
 * return the last value anyway, so that the caller's own expect says what was seen. For what a
 * lab waits on (a counter moving, a state changing): a fixed sleep is either too short on a
 * loaded machine or a waste on an idle one.
 */
export async function eventually<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > deadline) return v;
    await Bun.sleep(100);
  }
}

/**
 * Poll `get` (every 200 ms) until `ok` holds of its value and return it; after `timeoutMs`, throw
 * "`what`: still <value>" (the failover labs: a step that must happen before the next one runs).
 */
export async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await Bun.sleep(200);
  }
}

/** XDP packets seen per rx queue of a director interface (veth's ethtool statistics). */
export async function xdpPacketsPerQueue(L: { lab: Lab; director: string }, iface: string): Promise<number[]> {
  const r = await L.lab.exec(L.director, ["ethtool", "-S", iface]);
  const per: number[] = [];
  for (const m of r.stdout.matchAll(/rx_queue_(\d+)_xdp_packets: (\d+)/g)) per[Number(m[1])] = Number(m[2]);
  return per;
}

/** The XDP program's count of our packets passed to the kernel for lack of a socket (GET /metrics). */
export async function passNoSocket(d: { api(method: string, path: string): Promise<{ json: unknown }> }): Promise<number> {
  const r = await d.api("GET", "/metrics");
  const m = /^xvs_xdp_packets_total\{action="pass_no_socket"\} (\d+)$/m.exec(String(r.json));
  if (!m) throw new Error("GET /metrics has no pass_no_socket counter");
  return Number(m[1]);
}

/**
 * failover-client.ts in a lab host, holding `conns` connections to host:port; `ask(tag)` sends a
 * line on every connection and returns what came back (the failover labs).
 */
export class FailoverClient {
  out = "";
  readonly proc: ReturnType<Lab["spawn"]>;
  constructor(lab: Lab, host: string, target: string, port: number, conns: number) {
    const proc = lab.spawn(
      host,
      [process.execPath, join(import.meta.dir, "failover-client.ts"), "--host", target, "--port", String(port), "--conns", String(conns)],
      { stdin: "pipe" },
    );
    this.proc = proc;
    void (async () => {
      const dec = new TextDecoder();
      for await (const c of proc.stdout as ReadableStream<Uint8Array>) this.out += dec.decode(c);
    })();
  }
  async line(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.out.includes("\n")) {
      if (Date.now() > deadline) throw new Error(`client said nothing in time (so far: ${this.out})`);
      await Bun.sleep(20);
    }
    const i = this.out.indexOf("\n");
    const l = this.out.slice(0, i);
    this.out = this.out.slice(i + 1);
    return l;
  }
  async ask(tag: string): Promise<{ answered: number; failed: number; servers: (string | null)[] }> {
    const stdin = this.proc.stdin as unknown as { write(s: string): void; flush(): void };
    stdin.write(`ask ${tag}\n`);
    stdin.flush();
    return JSON.parse(await this.line(20_000));
  }
}
