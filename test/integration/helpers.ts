/** Shared pieces of the namespace-lab tests. */
import { expect } from "bun:test";
import type { Lab } from "../../src/lab/netns.ts";
import { selfCommand } from "../../src/lab/self.ts";

/** Namespace labs need root: fail (not skip) when it is missing, with the reason. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("namespace-lab tests need root (network namespaces, XDP): run bun test as root");
}

/** Start the lab agent `serve` in each real server; resolves when all are listening. */
export async function startServers(lab: Lab, hosts: string[], opts: { http?: number; tcp?: number; udp?: number } = { http: 80, tcp: 7000, udp: 9000 }): Promise<void> {
  await Promise.all(hosts.map(async (h) => {
    const args = [...selfCommand(), "__lab", "serve", "--name", h];
    if (opts.http) args.push("--http", String(opts.http));
    if (opts.tcp) args.push("--tcp", String(opts.tcp));
    if (opts.udp) args.push("--udp", String(opts.udp));
    const p = lab.spawn(h, args);
    const reader = p.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    expect(new TextDecoder().decode(value)).toContain("ready");
  }));
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
  const r = await lab.exec(host, [...selfCommand(), "__lab", "http-get", "--host", target, "--port", String(port), "--count", String(count), "--concurrency", String(concurrency), "--path", path, "--bodies", "1"]);
  return JSON.parse(r.stdout.trim()) as HttpSummary;
}

/** Send `count` UDP datagrams, each from a new source port. */
export async function udpAsk(lab: Lab, host: string, target: string, port: number, count: number): Promise<{ ok: number; failed: number; byServer: Record<string, number> }> {
  const r = await lab.exec(host, [...selfCommand(), "__lab", "udp-ask", "--host", target, "--port", String(port), "--count", String(count)]);
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
    expect(await c.line()).toBe("connected");
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

/** Sum of the kernel's checksum-error counters in a lab host (nstat). */
export async function checksumErrors(lab: Lab, host: string): Promise<number> {
  const s = await lab.snmp(host);
  let n = 0;
  for (const k of ["TcpInCsumErrors", "UdpInCsumErrors", "IcmpInCsumErrors", "IpInHdrErrors", "Ip6InHdrErrors", "Udp6InCsumErrors", "Icmp6InCsumErrors"]) n += s[k] ?? 0;
  return n;
}
