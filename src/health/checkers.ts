/**
 * One attempt of each checker kind, with real sockets (or a process) from the director's own
 * network namespace, as keepalived's check_tcp.c, check_http.c, check_udp.c, check_dns.c and
 * check_misc.c do. Every attempt ends within its timeout with exactly one result, and leaves
 * nothing behind: sockets are destroyed, a script's whole process group is killed on timeout,
 * bodies and outputs are bounded (a hostile real server or script costs a failed check, no more).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import net from "node:net";
import tls from "node:tls";
import { isIPv6 } from "node:net";
import {
  DEFAULT_STATUS_CODES,
  type CheckerT,
  type DnsCheckT,
  type HttpCheckT,
  type MiscCheckT,
  type SslCheckT,
  type StatusCodeT,
  type UdpCheckT,
} from "../config/health.ts";
import { encodeDnsQuery, parseDnsReplyHeader } from "./dns.ts";

/** Most body bytes read for a digest (keepalived reads the whole body; a bound keeps a huge one a failure). */
export const MAX_HTTP_BODY = 1 << 20;
/** Most header bytes before the body (status line and headers). */
export const MAX_HTTP_HEAD = 16 << 10;

/** What one attempt found: ok, the reason when not, and for misc_dynamic the weight the script set. */
export interface CheckResult {
  ok: boolean;
  reason: string;
  weight?: number;
}

/** Where a checker connects: the real server, unless connect_ip / connect_port say otherwise. */
export interface Target {
  address: string;
  port: number;
}

const ok = (reason: string, weight?: number): CheckResult => (weight === undefined ? { ok: true, reason } : { ok: true, reason, weight });
const fail = (reason: string): CheckResult => ({ ok: false, reason });

/** Run one attempt of `c` against `t`, ending within `timeoutMs`. Never throws. */
export function runCheck(c: CheckerT, t: Target, timeoutMs: number): Promise<CheckResult> {
  const target = { address: c.connect_ip ?? t.address, port: c.connect_port ?? t.port };
  let p: Promise<CheckResult>;
  switch (c.kind) {
    case "tcp":
      p = tcpCheck(c, target, timeoutMs);
      break;
    case "http":
    case "ssl":
      p = httpCheck(c, target, timeoutMs);
      break;
    case "udp":
      p = udpCheck(c, target, timeoutMs);
      break;
    case "dns":
      p = dnsCheck(c, target, timeoutMs);
      break;
    case "misc":
      p = miscCheck(c, timeoutMs);
      break;
  }
  return p.catch((e: unknown) => fail(`checker error: ${e instanceof Error ? e.message : String(e)}`));
}

/** A promise settled once, with a deadline and a cleanup that always runs. */
function bounded(timeoutMs: number, what: string, body: (done: (r: CheckResult) => void) => () => void): Promise<CheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    let cleanup: () => void = () => undefined;
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        cleanup();
      } catch {
        // a socket already closed: nothing left to free
      }
      resolve(r);
    };
    const timer = setTimeout(() => done(fail(`${what}: timeout after ${timeoutMs} ms`)), timeoutMs);
    cleanup = body(done);
    if (settled) cleanup();
  });
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ?? (err instanceof Error ? err.message : String(e));
}

function tcpOptions(c: CheckerT, t: Target): net.NetConnectOpts {
  return { host: t.address, port: t.port, ...(c.bindto ? { localAddress: c.bindto } : {}), ...(c.bind_port ? { localPort: c.bind_port } : {}) };
}

/** TCP_CHECK: the connection is established (check_tcp.c tcp_check_thread). */
function tcpCheck(c: CheckerT, t: Target, timeoutMs: number): Promise<CheckResult> {
  return bounded(timeoutMs, "connect", (done) => {
    const s = net.connect(tcpOptions(c, t));
    s.once("connect", () => done(ok("connected")));
    s.once("error", (e) => done(fail(`connect: ${errText(e)}`)));
    return () => s.destroy();
  });
}

/** Does `code` match the url's status_code list (default 200-299)? */
export function statusMatches(code: number, list: readonly StatusCodeT[] | undefined): boolean {
  return (list ?? DEFAULT_STATUS_CODES).some((s) => (typeof s === "number" ? s === code : code >= s.from && code <= s.to));
}

/** The request keepalived's HTTP_GET sends (check_http.c REQUEST_TEMPLATE), per http_protocol. */
export function httpRequest(path: string, host: string, protocol: HttpCheckT["http_protocol"]): string {
  const version = protocol === "1.1" ? "1.1" : "1.0";
  const conn = protocol === "1.0K" ? "Connection: keep-alive\r\n" : protocol === "1.0" ? "" : "Connection: close\r\n";
  return `GET ${path} HTTP/${version}\r\nUser-Agent: KeepAliveClient\r\nHost: ${host}\r\n${conn}\r\n`;
}

/** An HTTP response read so far: status, headers, body bytes; null status while the head is incomplete. */
export interface HttpParse {
  status: number | null;
  headers: Map<string, string>;
  bodyStart: number;
}

/** Parse the status line and headers of `buf`; `{status: null}` when the head is not complete yet. @throws on garbage. */
export function parseHttpHead(buf: Buffer): HttpParse {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) {
    if (buf.length > MAX_HTTP_HEAD) throw new Error("response head too large");
    if (buf.length >= 5 && !buf.subarray(0, 5).equals(Buffer.from("HTTP/"))) throw new Error("not an HTTP response");
    return { status: null, headers: new Map(), bodyStart: 0 };
  }
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]);
  if (!m) throw new Error("not an HTTP response");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status: Number(m[1]), headers, bodyStart: end + 4 };
}

/** The body of a chunked response, or null while it is incomplete. @throws on garbage. */
export function dechunk(buf: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf("\r\n", i);
    if (eol < 0) return null;
    const size = parseInt(buf.subarray(i, eol).toString("latin1").split(";")[0].trim(), 16);
    if (!Number.isFinite(size) || size < 0) throw new Error("bad chunk size");
    if (size === 0) return Buffer.concat(parts);
    if (eol + 2 + size + 2 > buf.length) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
}

/**
 * HTTP_GET / SSL_GET: every url in turn on its own connection; each must answer with a listed
 * status code and, when a digest is given, a body whose MD5 is that digest (check_http.c). TLS
 * certificates are not verified, as keepalived does not. The whole exchange shares one deadline.
 */
async function httpCheck(c: HttpCheckT | SslCheckT, t: Target, timeoutMs: number): Promise<CheckResult> {
  const deadline = Date.now() + timeoutMs;
  const hostText = isIPv6(t.address) ? `[${t.address}]` : t.address;
  const host = c.virtualhost ?? hostText;
  let last = fail("no url");
  for (const u of c.urls) {
    const left = deadline - Date.now();
    if (left <= 0) return fail(`GET ${u.path}: timeout after ${timeoutMs} ms`);
    last = await httpGet(c, t, u, host, left);
    if (!last.ok) return last;
  }
  return c.urls.length === 1 ? last : ok(`${c.urls.length} urls ok`);
}

function httpGet(c: HttpCheckT | SslCheckT, t: Target, u: HttpCheckT["urls"][number], host: string, timeoutMs: number): Promise<CheckResult> {
  const what = `GET ${u.path}`;
  return bounded(timeoutMs, what, (done) => {
    let s: net.Socket;
    if (c.kind === "ssl") {
      const sni = c.enable_sni ? (c.sni_name ?? c.virtualhost) : undefined;
      s = tls.connect({ ...tcpOptions(c, t), rejectUnauthorized: false, ...(sni && !net.isIP(sni) ? { servername: sni } : {}) });
      s.once("secureConnect", () => s.write(httpRequest(u.path, host, c.http_protocol)));
    } else {
      s = net.connect(tcpOptions(c, t));
      s.once("connect", () => s.write(httpRequest(u.path, host, c.http_protocol)));
    }
    let buf: Buffer = Buffer.alloc(0);
    let head: HttpParse | null = null;
    const finish = (complete: boolean) => {
      if (!head || head.status === null) return done(fail(`${what}: connection closed before a response`));
      if (!statusMatches(head.status, u.status_code)) return done(fail(`${what}: status ${head.status}`));
      if (!u.digest) return done(ok(`${what}: status ${head.status}`));
      let body: Buffer = buf.subarray(head.bodyStart);
      if (head.headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
        const d = dechunk(body);
        if (!d) return complete ? done(fail(`${what}: truncated chunked body`)) : undefined;
        body = d;
      } else {
        const len = head.headers.get("content-length");
        if (len !== undefined) {
          if (body.length < Number(len)) return complete ? done(fail(`${what}: truncated body`)) : undefined;
          body = body.subarray(0, Number(len));
        } else if (!complete) {
          return undefined;
        }
      }
      const md5 = createHash("md5").update(body).digest("hex");
      done(md5 === u.digest ? ok(`${what}: digest ok`) : fail(`${what}: digest ${md5} differs`));
    };
    s.on("data", (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      try {
        if (!head || head.status === null) head = parseHttpHead(buf);
        if (head.status === null) return;
        if (buf.length - head.bodyStart > MAX_HTTP_BODY) return done(fail(`${what}: body larger than ${MAX_HTTP_BODY} bytes`));
        // without a digest the status decides; with one, the body once it is whole
        if (!u.digest || head.headers.has("content-length") || head.headers.get("transfer-encoding")?.toLowerCase() === "chunked") finish(false);
      } catch (e) {
        done(fail(`${what}: ${errText(e)}`));
      }
    });
    s.once("end", () => {
      try {
        finish(true);
      } catch (e) {
        done(fail(`${what}: ${errText(e)}`));
      }
    });
    s.once("error", (e) => done(fail(`${what}: ${errText(e)}`)));
    return () => s.destroy();
  });
}

function hexBytes(h: string | undefined): Buffer {
  return Buffer.from(h ?? "", "hex");
}

/** A connected UDP socket (ICMP errors come back as ECONNREFUSED / EHOSTUNREACH) with an optional source. */
function udpSocket(c: CheckerT, t: Target, onReady: (s: dgram.Socket) => void, onError: (e: unknown) => void): dgram.Socket {
  const s = dgram.createSocket(isIPv6(t.address) ? "udp6" : "udp4");
  s.on("error", onError);
  const go = () => s.connect(t.port, t.address, () => onReady(s));
  if (c.bindto || c.bind_port) s.bind({ address: c.bindto, port: c.bind_port ?? 0 }, go);
  else go();
  return s;
}

/**
 * UDP_CHECK (check_udp.c): send the payload on a connected socket. Without require_reply the
 * check fails only on an ICMP error (port unreachable) within connect_timeout; with it, a reply
 * is needed (starting with the given bytes, within the length bounds).
 */
function udpCheck(c: UdpCheckT, t: Target, timeoutMs: number): Promise<CheckResult> {
  const needReply = c.require_reply !== false;
  return new Promise((resolve) => {
    let sock: dgram.Socket | null = null;
    let settled = false;
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        sock?.close();
      } catch {
        // already closed
      }
      resolve(r);
    };
    const timer = setTimeout(() => done(needReply ? fail(`udp: no reply within ${timeoutMs} ms`) : ok("no ICMP error")), timeoutMs);
    sock = udpSocket(
      c,
      t,
      (s) => {
        s.on("message", (m: Buffer) => {
          if (c.min_reply_length !== undefined && m.length < c.min_reply_length) return done(fail(`udp: reply of ${m.length} bytes is too short`));
          if (c.max_reply_length !== undefined && m.length > c.max_reply_length) return done(fail(`udp: reply of ${m.length} bytes is too long`));
          const want = typeof c.require_reply === "string" ? hexBytes(c.require_reply) : Buffer.alloc(0);
          if (!m.subarray(0, want.length).equals(want)) return done(fail("udp: reply does not match require_reply"));
          done(ok(`udp: reply of ${m.length} bytes`));
        });
        s.send(hexBytes(c.payload), (e) => {
          if (e) done(fail(`udp: send: ${errText(e)}`));
        });
      },
      (e) => done(fail(`udp: ${errText(e)}`)),
    );
  });
}

/** DNS_CHECK (check_dns.c): a query for type/name; a reply with the query's id passes. */
function dnsCheck(c: DnsCheckT, t: Target, timeoutMs: number): Promise<CheckResult> {
  const id = Math.floor(Math.random() * 0x10000);
  const query = encodeDnsQuery(id, c.name, c.type);
  return new Promise((resolve) => {
    let sock: dgram.Socket | null = null;
    let settled = false;
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        sock?.close();
      } catch {
        // already closed
      }
      resolve(r);
    };
    const timer = setTimeout(() => done(fail(`dns: no reply within ${timeoutMs} ms`)), timeoutMs);
    sock = udpSocket(
      c,
      t,
      (s) => {
        s.on("message", (m: Buffer) => {
          const h = parseDnsReplyHeader(m);
          if (!h || h.id !== id || !h.isReply) return; // not ours: keep waiting for the answer
          done(ok(`dns: reply rcode ${h.rcode}`));
        });
        s.send(query, (e) => {
          if (e) done(fail(`dns: send: ${errText(e)}`));
        });
      },
      (e) => done(fail(`dns: ${errText(e)}`)),
    );
  });
}

/** Split a misc_path into words as a shell would (quotes and backslashes), without running a shell. */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let cur = "",
    inWord = false,
    quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Process groups of the check scripts running now (killed when the monitor stops). */
const runningScripts = new Set<number>();

/** Kill every check script still running, with its process group (daemon shutdown). */
export function killRunningScripts(): void {
  for (const pid of runningScripts) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  runningScripts.clear();
}

/**
 * MISC_CHECK (check_misc.c): run the script in its own process group, output discarded; exit 0
 * passes, with misc_dynamic 2..255 passes with weight code - 2, anything else fails. On timeout
 * the whole group is killed (SIGKILL), so a script's children cannot outlive the check.
 */
function miscCheck(c: MiscCheckT, timeoutMs: number): Promise<CheckResult> {
  const argv = splitCommand(c.misc_path);
  if (argv.length === 0) return Promise.resolve(fail("misc: empty misc_path"));
  return new Promise((resolve) => {
    let settled = false;
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ["ignore", "ignore", "ignore"] });
    if (child.pid) runningScripts.add(child.pid);
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // the group is already gone
      }
    };
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid) runningScripts.delete(child.pid);
      resolve(r);
    };
    const timer = setTimeout(() => {
      killGroup();
      done(fail(`misc: timeout after ${timeoutMs} ms (process group killed)`));
    }, timeoutMs);
    child.once("error", (e) => done(fail(`misc: ${errText(e)}`)));
    child.once("exit", (code, signal) => {
      if (code === null) return done(fail(`misc: killed by ${signal}`));
      if (code === 0) return done(ok("misc: exit 0"));
      if (c.misc_dynamic && code >= 2) return done(ok(`misc: exit ${code}, weight ${code - 2}`, code - 2));
      done(fail(`misc: exit ${code}`));
    });
  });
}
