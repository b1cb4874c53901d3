/**
 * Each checker against real sockets on loopback (servers in this process) and real scripts:
 * what passes, what fails, and the hostile targets of issue 14 (accepts and never answers,
 * answers garbage, a huge body, a script that hangs or prints megabytes): each is a failed check
 * within its timeout, and no socket or process is left behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { dechunk, httpRequest, killRunningScripts, runCheck, splitCommand, statusMatches } from "../../../src/health/checkers.ts";
import { encodeDnsQuery, parseDnsReplyHeader } from "../../../src/health/dns.ts";
import { attemptTimeoutSec } from "../../../src/config/health.ts";
import { Checker, type CheckerIn } from "../../../src/control/health-schemas.ts";
import { TEST_CERT, TEST_KEY } from "./tls-fixture.ts";

const LO = "127.0.0.1";
const T = 600; // attempt timeout, ms
const BODY = "hello from the real server\n";
const BODY_MD5 = createHash("md5").update(BODY).digest("hex");

/** What each path of the test HTTP server does. */
function handle(sock: net.Socket): void {
  let req = "";
  sock.on("error", () => undefined);
  sock.on("data", (d) => {
    req += d.toString("latin1");
    if (!req.includes("\r\n\r\n")) return;
    const path = req.split(" ")[1];
    const host = /\r\nHost: ([^\r]*)/.exec(req)?.[1];
    switch (path) {
      case "/ok":
        sock.end(`HTTP/1.0 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`);
        break;
      case "/noclose":
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`);
        break;
      case "/host":
        sock.end(`HTTP/1.0 ${host === "www.example.test" ? 200 : 404} X\r\n\r\n`);
        break;
      case "/500":
        sock.end("HTTP/1.0 500 Oops\r\n\r\n");
        break;
      case "/302":
        sock.end("HTTP/1.0 302 Found\r\nLocation: /\r\n\r\n");
        break;
      case "/chunked":
        sock.end(
          `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n${BODY.slice(0, 5)}\r\n${(BODY.length - 5).toString(16)}\r\n${BODY.slice(5)}\r\n0\r\n\r\n`,
        );
        break;
      case "/silent":
        break; // accepted, never answered
      case "/garbage":
        sock.write("\x00\x01\x02 this is not HTTP\r\n\r\n");
        break;
      case "/huge": {
        sock.write("HTTP/1.0 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
        const chunk = Buffer.alloc(64 << 10, 0x61);
        const pump = () => {
          while (!sock.destroyed && sock.write(chunk));
          if (!sock.destroyed) sock.once("drain", pump);
        };
        pump();
        break;
      }
      default:
        sock.end("HTTP/1.0 404 Not Found\r\n\r\n");
    }
  });
}

let http: net.Server, https: tls.Server, silentTcp: net.Server;
let httpPort = 0,
  httpsPort = 0,
  closedPort = 0;
const held: net.Socket[] = [];
let dir = "";

function listen(s: net.Server): Promise<number> {
  return new Promise((r) => s.listen(0, LO, () => r((s.address() as net.AddressInfo).port)));
}

beforeAll(async () => {
  http = net.createServer(handle);
  https = tls.createServer({ key: TEST_KEY, cert: TEST_CERT }, handle);
  silentTcp = net.createServer((s) => held.push(s));
  httpPort = await listen(http);
  httpsPort = await listen(https);
  const tmp = net.createServer();
  closedPort = await listen(tmp);
  await new Promise((r) => tmp.close(r));
  dir = mkdtempSync(join(tmpdir(), "xvs-health-"));
});

afterAll(() => {
  http.close();
  https.close();
  silentTcp.close();
  for (const s of held) s.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const check = (c: CheckerIn) => Checker.parse(c);

/** Run one attempt; the result and how long it took, ms. */
async function attempt(c: CheckerIn, port: number, timeout?: number) {
  const parsed = check(c);
  // the checker's own timeout when the test sets one (as the monitor computes it), else T
  const ms = timeout ?? ("connect_timeout" in c || c.kind === "misc" ? attemptTimeoutSec(parsed, undefined) * 1000 : T);
  const t0 = performance.now();
  const r = await runCheck(parsed, { address: LO, port }, ms);
  return { ...r, ms: performance.now() - t0 };
}

/** This process's open descriptors (sockets leak here first). */
function fds(): number {
  return readdirSync("/proc/self/fd").length;
}

describe("TCP_CHECK", () => {
  test("a listening port passes; a closed one fails at once", async () => {
    expect((await attempt({ kind: "tcp" }, httpPort)).ok).toBe(true);
    const r = await attempt({ kind: "tcp" }, closedPort);
    expect(r).toMatchObject({ ok: false, reason: "connect: ECONNREFUSED" });
    expect(r.ms).toBeLessThan(T);
  });

  test("connect_ip / connect_port check another address than the real server's", async () => {
    const r = await runCheck(check({ kind: "tcp", connect_ip: LO, connect_port: httpPort }), { address: "127.0.0.2", port: closedPort }, T);
    expect(r.ok).toBe(true);
  });
});

describe("HTTP_GET and SSL_GET", () => {
  const get = (path: string, extra: Record<string, unknown> = {}, url: Record<string, unknown> = {}) => ({
    kind: "http" as const,
    urls: [{ path, ...url }],
    ...extra,
  });

  test("status 200-299 by default; a status_code list and ranges as keepalived", async () => {
    expect((await attempt(get("/ok"), httpPort)).ok).toBe(true);
    expect(await attempt(get("/500"), httpPort)).toMatchObject({ ok: false, reason: "GET /500: status 500" });
    expect((await attempt(get("/302"), httpPort)).ok).toBe(false);
    expect((await attempt(get("/302", {}, { status_code: [{ from: 300, to: 399 }] }), httpPort)).ok).toBe(true);
    expect((await attempt(get("/500", {}, { status_code: [200, 500] }), httpPort)).ok).toBe(true);
    expect(statusMatches(204, undefined)).toBe(true);
    expect(statusMatches(300, undefined)).toBe(false);
  });

  test("digest: MD5 of the body, plain, kept open after Content-Length, and chunked", async () => {
    expect(await attempt(get("/ok", {}, { digest: BODY_MD5 }), httpPort)).toMatchObject({ ok: true, reason: "GET /ok: digest ok" });
    expect((await attempt(get("/noclose", { http_protocol: "1.1" }, { digest: BODY_MD5 }), httpPort)).ok).toBe(true);
    expect((await attempt(get("/chunked", { http_protocol: "1.1" }, { digest: BODY_MD5 }), httpPort)).ok).toBe(true);
    const wrong = await attempt(get("/ok", {}, { digest: "0".repeat(32) }), httpPort);
    expect(wrong.ok).toBe(false);
    expect(wrong.reason).toContain(BODY_MD5);
    expect(dechunk(Buffer.from("3\r\nabc\r\n0\r\n\r\n"))!.toString()).toBe("abc");
    expect(dechunk(Buffer.from("3\r\nab"))).toBeNull();
  });

  test("virtualhost is the Host header; without it, the address checked", async () => {
    expect((await attempt(get("/host", { virtualhost: "www.example.test" }), httpPort)).ok).toBe(true);
    expect((await attempt(get("/host"), httpPort)).ok).toBe(false);
    expect(httpRequest("/x", "h", "1.0")).toBe("GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: h\r\n\r\n");
    expect(httpRequest("/x", "h", "1.1")).toContain("HTTP/1.1\r\n");
  });

  test("every url must pass", async () => {
    const c = { kind: "http" as const, urls: [{ path: "/ok" }, { path: "/500" }] };
    expect((await attempt(c, httpPort)).ok).toBe(false);
  });

  test("SSL_GET: the same over TLS, a self-signed certificate accepted", async () => {
    expect(await attempt({ kind: "ssl", urls: [{ path: "/ok", digest: BODY_MD5 }] }, httpsPort)).toMatchObject({ ok: true });
    expect((await attempt({ kind: "ssl", enable_sni: true, virtualhost: "www.example.test", urls: [{ path: "/host" }] }, httpsPort)).ok).toBe(true);
    expect((await attempt({ kind: "ssl", urls: [{ path: "/500" }] }, httpsPort)).ok).toBe(false);
    // TLS to a plain HTTP port: a failure, not a hang
    const r = await attempt({ kind: "ssl", urls: [{ path: "/ok" }] }, httpPort);
    expect(r.ok).toBe(false);
    expect(r.ms).toBeLessThan(T + 200);
  });

  test("hostile servers: silent, garbage, a huge body: failures within the timeout, no socket left", async () => {
    const before = fds();
    const silentPort = await listen(silentTcp);
    const silent = await attempt(get("/x"), silentPort);
    expect(silent.ok).toBe(false);
    expect(silent.reason).toBe(`GET /x: timeout after ${T} ms`);
    expect(silent.ms).toBeLessThan(T + 200);
    const silentTls = await attempt({ kind: "ssl", urls: [{ path: "/x" }] }, silentPort);
    expect(silentTls.ok).toBe(false);
    expect(silentTls.ms).toBeLessThan(T + 200);
    const garbage = await attempt(get("/garbage"), httpPort);
    expect(garbage).toMatchObject({ ok: false, reason: "GET /garbage: not an HTTP response" });
    expect(garbage.ms).toBeLessThan(T);
    const huge = await attempt(get("/huge", {}, { digest: BODY_MD5 }), httpPort, 5000);
    expect(huge).toMatchObject({ ok: false, reason: "GET /huge: body larger than 1048576 bytes" });
    expect(huge.ms).toBeLessThan(5000);
    // without a digest the status decides, the body is not read
    expect((await attempt(get("/huge"), httpPort)).ok).toBe(true);
    for (const s of held) s.destroy(); // the test server's own ends
    await Bun.sleep(100);
    expect(fds()).toBeLessThanOrEqual(before + 1); // + the silent listener
  });
});

describe("UDP_CHECK", () => {
  let echo: dgram.Socket,
    mute: dgram.Socket,
    echoPort = 0,
    mutePort = 0;
  beforeAll(async () => {
    echo = dgram.createSocket("udp4");
    echo.on("message", (m, r) => echo.send(Buffer.concat([Buffer.from("OK"), m]), r.port, r.address));
    mute = dgram.createSocket("udp4");
    await new Promise<void>((r) => echo.bind(0, LO, () => r()));
    await new Promise<void>((r) => mute.bind(0, LO, () => r()));
    echoPort = echo.address().port;
    mutePort = mute.address().port;
  });
  afterAll(() => {
    echo.close();
    mute.close();
  });

  test("without require_reply: passes unless ICMP port unreachable comes back", async () => {
    expect((await attempt({ kind: "udp", connect_timeout: 0.3 }, mutePort)).ok).toBe(true);
    const r = await attempt({ kind: "udp", connect_timeout: 0.3, payload: "00" }, closedPort);
    expect(r).toMatchObject({ ok: false, reason: "udp: ECONNREFUSED" });
    expect(r.ms).toBeLessThan(300);
  });

  test("require_reply: a reply is needed, matching the given bytes and length bounds", async () => {
    expect((await attempt({ kind: "udp", payload: "6869", require_reply: true }, echoPort)).ok).toBe(true);
    expect((await attempt({ kind: "udp", payload: "6869", require_reply: "4f4b6869" }, echoPort)).ok).toBe(true);
    expect((await attempt({ kind: "udp", payload: "6869", require_reply: "ffff" }, echoPort)).ok).toBe(false);
    expect((await attempt({ kind: "udp", payload: "6869", require_reply: true, max_reply_length: 3 }, echoPort)).ok).toBe(false);
    const r = await attempt({ kind: "udp", connect_timeout: 0.3, require_reply: true }, mutePort);
    expect(r).toMatchObject({ ok: false, reason: "udp: no reply within 300 ms" });
  });
});

describe("DNS_CHECK", () => {
  let dns: dgram.Socket,
    port = 0;
  let mode: "answer" | "wrong-id" | "garbage" = "answer";
  beforeAll(async () => {
    dns = dgram.createSocket("udp4");
    dns.on("message", (q, r) => {
      const a = Buffer.from(q);
      if (mode === "garbage") return void dns.send(Buffer.from("xx"), r.port, r.address);
      if (mode === "wrong-id") a.writeUInt16BE((a.readUInt16BE(0) + 1) & 0xffff, 0);
      a.writeUInt16BE(0x8180, 2); // QR, RD, RA, NOERROR
      dns.send(a, r.port, r.address);
    });
    await new Promise<void>((r) => dns.bind(0, LO, () => r()));
    port = dns.address().port;
  });
  afterAll(() => dns.close());

  test("the query is RFC 1035 (header, labels, type, class IN); SOA . by default", () => {
    const q = encodeDnsQuery(0x1234, "www.example.test", "AAAA");
    expect(q.toString("hex")).toBe("123401000001000000000000" + "03777777" + "076578616d706c65" + "0474657374" + "00" + "001c0001");
    expect(encodeDnsQuery(1, ".", "SOA").toString("hex")).toBe("000101000001000000000000" + "00" + "00060001");
    expect(check({ kind: "dns" })).toMatchObject({ type: "SOA", name: ".", retry: 3 });
    expect(parseDnsReplyHeader(Buffer.from("000181830000000000000000", "hex"))).toEqual({ id: 1, isReply: true, rcode: 3 });
  });

  test("a reply with the query's id passes; a wrong id or garbage is a failure at the timeout", async () => {
    mode = "answer";
    expect(await attempt({ kind: "dns", name: "example.test", type: "A" }, port)).toMatchObject({ ok: true, reason: "dns: reply rcode 0" });
    mode = "wrong-id";
    expect((await attempt({ kind: "dns", connect_timeout: 0.3 }, port)).ok).toBe(false);
    mode = "garbage";
    const r = await attempt({ kind: "dns", connect_timeout: 0.3 }, port);
    expect(r).toMatchObject({ ok: false, reason: "dns: no reply within 300 ms" });
    expect((await attempt({ kind: "dns", connect_timeout: 0.3 }, closedPort)).reason).toBe("dns: ECONNREFUSED");
  });
});

describe("MISC_CHECK", () => {
  const script = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return p;
  };
  const misc = (path: string, extra: Record<string, unknown> = {}) => ({ kind: "misc" as const, misc_path: path, misc_timeout: 0.5, ...extra });
  /** Running (a zombie waiting for its reaper is dead: it holds no resources but its pid). */
  const alive = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
    } catch {
      return false;
    }
  };

  test("exit 0 passes, 1 fails; misc_dynamic turns 2..255 into weight code - 2; arguments are split as a shell would", async () => {
    expect((await attempt(misc(script("ok", "exit 0")), 0)).ok).toBe(true);
    expect(await attempt(misc(script("down", "exit 1")), 0)).toMatchObject({ ok: false, reason: "misc: exit 1" });
    expect(await attempt(misc(script("w", "exit 7")), 0)).toMatchObject({ ok: false, reason: "misc: exit 7" });
    expect(await attempt(misc(script("w", "exit 7"), { misc_dynamic: true }), 0)).toMatchObject({ ok: true, weight: 5 });
    expect(await attempt(misc(`${script("args", '[ "$1" = "a b" ] && [ "$2" = c ]')} "a b" c`), 0)).toMatchObject({ ok: true });
    expect(splitCommand(`/x 'a b' "c\\"d" e\\ f`)).toEqual(["/x", "a b", 'c"d', "e f"]);
    expect((await attempt(misc(join(dir, "missing")), 0)).reason).toBe("misc: ENOENT");
  });

  test("a hanging script and its children are killed at misc_timeout; megabytes of output cost nothing", async () => {
    const pids = join(dir, "pids");
    const hang = script("hang", `sleep 30 & echo $$ $! > ${pids}\nwait`);
    const r = await attempt(misc(hang), 0);
    expect(r).toMatchObject({ ok: false, reason: "misc: timeout after 500 ms (process group killed)" });
    expect(r.ms).toBeLessThan(700);
    await Bun.sleep(100);
    const [shPid, sleepPid] = readFileSync(pids, "utf8").trim().split(" ").map(Number);
    expect(alive(shPid)).toBe(false);
    expect(alive(sleepPid)).toBe(false);
    const flood = script("flood", "while :; do cat " + join(dir, "flood") + "; done");
    const noisy = await attempt(misc(flood), 0);
    expect(noisy.ok).toBe(false);
    expect(noisy.ms).toBeLessThan(700);
    // 16 MB printed, then exit 0: passes (the output goes nowhere)
    const big = script("big", "head -c 16777216 /dev/zero; exit 0");
    expect((await attempt(misc(big, { misc_timeout: 5 }), 0)).ok).toBe(true);
  });
});

describe("shutdown", () => {
  test("killRunningScripts ends a running check script's whole group at once", async () => {
    const d = mkdtempSync(join(tmpdir(), "xvs-health-kill-"));
    const pids = join(d, "pids");
    const p = join(d, "hang");
    writeFileSync(p, `#!/bin/sh\nsleep 30 & echo $$ $! > ${pids}\nwait\n`, { mode: 0o755 });
    const t0 = performance.now();
    const pending = runCheck(Checker.parse({ kind: "misc", misc_path: p, misc_timeout: 20 }), { address: LO, port: 0 }, 20_000);
    for (let i = 0; i < 50 && !existsSync(pids); i++) await Bun.sleep(20);
    const [shPid, sleepPid] = readFileSync(pids, "utf8").trim().split(" ").map(Number);
    killRunningScripts();
    const r = await pending;
    expect(r.ok).toBe(false);
    expect(performance.now() - t0).toBeLessThan(3000);
    await Bun.sleep(100);
    for (const pid of [shPid, sleepPid]) {
      let state = "gone";
      try {
        state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0];
      } catch {
        // gone
      }
      expect(["gone", "Z"]).toContain(state);
    }
    rmSync(d, { recursive: true, force: true });
  });
});
