/**
 * Small programs the labs run inside their namespaces, reached as `xvs __lab MODE ...`:
 *
 *   serve --name N [--http P] [--tcp P] [--udp P] [--addr A]
 *       real server: HTTP answers "N <path>\n" (and /bytes/K with K bytes), the TCP line
 *       server answers each line with "N <line>\n", UDP echoes "N <payload>"; prints "ready".
 *   http-get --host H --port P --count N [--concurrency C] [--path /p] [--sources A,B,...]
 *            [--timeout MS] [--bodies]
 *       N HTTP/1.0 requests, one new TCP connection each (from the --sources addresses in
 *       turn); prints a JSON summary.
 *   tcp-hold --host H --port P
 *       one long-lived connection: each stdin line is sent, each reply line printed.
 *   udp-ask --host H --port P --count N [--size B] [--timeout MS]
 *       N datagrams (padded to B bytes), each from a new socket on a source port not used
 *       before in this run; prints a JSON summary.
 *   tcp-chat, http-loop: see their functions below.
 *
 * Arguments are checked by agent-args.ts before a mode starts (as `xvs __bench`'s are): a bad
 * one prints a line naming it and exits with code 2.
 */
import { createConnection } from "node:net";
import { AMOUNT, COUNT, FLAG, mode, type ParsedOptions, PORT, runAgent, TEXT } from "./agent-args.ts";

/** Options of each mode (parsed and checked by agent-args.ts before the mode starts). */
const SERVE = { name: TEXT, addr: TEXT, http: PORT, tcp: PORT, udp: PORT } as const;
const HTTP_GET = {
  host: { type: "string", required: true },
  port: PORT,
  count: COUNT,
  concurrency: { ...COUNT, min: 1 },
  path: TEXT,
  sources: TEXT,
  timeout: AMOUNT,
  bodies: FLAG,
} as const;
const TCP_HOLD = { host: { type: "string", required: true }, port: PORT } as const;
const UDP_ASK = { host: { type: "string", required: true }, port: PORT, count: COUNT, timeout: AMOUNT, size: COUNT } as const;
const TCP_CHAT = { host: { type: "string", required: true }, port: PORT, conns: COUNT, seconds: AMOUNT, interval: AMOUNT } as const;
const HTTP_LOOP = { host: { type: "string", required: true }, port: PORT, seconds: AMOUNT, concurrency: { ...COUNT, min: 1 }, timeout: AMOUNT } as const;

async function serve(a: ParsedOptions<typeof SERVE>): Promise<number> {
  const name = a.name ?? "rs";
  const hostname = a.addr ?? "0.0.0.0";
  if (a.http !== undefined) {
    Bun.serve({
      hostname,
      port: a.http,
      fetch(req) {
        const path = new URL(req.url).pathname;
        const m = /^\/bytes\/(\d+)$/.exec(path);
        if (m) return new Response("x".repeat(Math.min(Number(m[1]), 1 << 24)), { headers: { "x-server": name } });
        return new Response(`${name} ${path}\n`, { headers: { "x-server": name } });
      },
    });
  }
  if (a.tcp !== undefined) {
    Bun.listen<{ buf: string }>({
      hostname,
      port: a.tcp,
      socket: {
        open(s) {
          s.data = { buf: "" };
        },
        data(s, chunk) {
          s.data.buf += chunk.toString();
          for (let i = s.data.buf.indexOf("\n"); i >= 0; i = s.data.buf.indexOf("\n")) {
            const line = s.data.buf.slice(0, i);
            s.data.buf = s.data.buf.slice(i + 1);
            s.write(`${name} ${line}\n`);
          }
        },
      },
    });
  }
  if (a.udp !== undefined) {
    await Bun.udpSocket({
      hostname,
      port: a.udp,
      socket: {
        data(sock, buf, port, addr) {
          sock.send(`${name} ${buf.toString()}`, port, addr);
        },
      },
    });
  }
  process.stdout.write("ready\n");
  await new Promise(() => {});
  return 0;
}

/**
 * One HTTP/1.0 request over a fresh connection (from `localAddress` when given: several client
 * addresses for the source-hashing schedulers); resolves with the body or an error.
 */
function httpOnce(host: string, port: number, path: string, timeoutMs: number, localAddress?: string): Promise<{ ok: boolean; body: string; error?: string }> {
  return new Promise((resolve) => {
    let data = "";
    let settled = false;
    const done = (r: { ok: boolean; body: string; error?: string }) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      }
    };
    const timer = setTimeout(() => done({ ok: false, body: data, error: "timeout" }), timeoutMs);
    const sock = createConnection({ host, port, ...(localAddress ? { localAddress } : {}) });
    sock.on("connect", () => sock.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    sock.on("data", (chunk) => {
      data += chunk.toString();
    });
    sock.on("end", () => {
      const i = data.indexOf("\r\n\r\n");
      const status = /^HTTP\/1\.[01] (\d+)/.exec(data)?.[1];
      if (i < 0 || status !== "200") done({ ok: false, body: data, error: `bad response: ${data.slice(0, 80)}` });
      else done({ ok: true, body: data.slice(i + 4) });
    });
    sock.on("error", (e) => done({ ok: false, body: data, error: String(e) }));
  });
}

async function httpGet(a: ParsedOptions<typeof HTTP_GET>): Promise<number> {
  const host = a.host,
    port = a.port ?? 80,
    count = a.count ?? 1,
    conc = a.concurrency ?? 1,
    timeout = a.timeout ?? 5000;
  const path = a.path ?? "/";
  const sources = a.sources ? a.sources.split(",") : [];
  const byServer: Record<string, number> = {};
  const bodies: string[] = [];
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const r = await httpOnce(host, port, path, timeout, sources.length ? sources[i % sources.length] : undefined);
      if (r.ok) {
        const name = r.body.split(" ")[0];
        byServer[name] = (byServer[name] ?? 0) + 1;
        bodies[i] = r.body;
      } else errors.push(r.error ?? "error");
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  process.stdout.write(
    JSON.stringify({ ok: count - errors.length, failed: errors.length, byServer, errors: errors.slice(0, 10), bodies: a.bodies ? bodies : undefined }) + "\n",
  );
  return 0;
}

async function tcpHold(a: ParsedOptions<typeof TCP_HOLD>): Promise<number> {
  const host = a.host,
    port = a.port ?? 7;
  let buf = "";
  const sock = await Bun.connect({
    hostname: host,
    port,
    socket: {
      data(_s, chunk) {
        buf += chunk.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          process.stdout.write(buf.slice(0, i + 1));
          buf = buf.slice(i + 1);
        }
      },
      close() {
        process.stdout.write("closed\n");
        process.exit(0);
      },
    },
  });
  process.stdout.write("connected\n");
  for await (const chunk of Bun.stdin.stream()) sock.write(chunk);
  sock.end();
  return 0;
}

/** An unconnected UDP socket on an ephemeral port, handing every datagram to `onData`. */
function openUdp(onData: (buf: Buffer, rport: number, raddr: string) => void) {
  return Bun.udpSocket({
    socket: {
      data(_s, buf, rport, raddr) {
        onData(buf, rport, raddr);
      },
    },
  });
}

async function udpAsk(a: ParsedOptions<typeof UDP_ASK>): Promise<number> {
  const host = a.host,
    port = a.port ?? 9000,
    count = a.count ?? 1,
    timeoutMs = a.timeout ?? 2000;
  // --size past the MTU makes both the question and the echoed answer travel as IP fragments
  const size = a.size ?? 0;
  const byServer: Record<string, number> = {};
  let ok = 0,
    failed = 0;
  // every datagram from a source port of its own: a port the kernel hands out again would
  // reach the connection the balancer already has for it, not a new one
  const used = new Set<number>();
  for (let i = 0; i < count; i++) {
    const payload = `q${i}`.padEnd(size, "x");
    let onReply: (r: string) => void = () => {};
    let sock: Awaited<ReturnType<typeof openUdp>>;
    for (;;) {
      // a reply counts only when it comes from the address and port that were asked
      sock = await openUdp((buf, rport, raddr) => onReply(raddr === host && rport === port ? buf.toString() : `wrong-source ${raddr}:${rport}`));
      if (!used.has(sock.port)) break;
      sock.close();
    }
    used.add(sock.port);
    const reply = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      onReply = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      sock.send(payload, port, host);
    });
    sock.close();
    if (reply?.endsWith(` ${payload}`)) {
      ok++;
      const name = reply.split(" ")[0];
      byServer[name] = (byServer[name] ?? 0) + 1;
    } else failed++;
  }
  process.stdout.write(JSON.stringify({ ok, failed, byServer }) + "\n");
  return 0;
}

/**
 * tcp-chat --host H --port P --conns N --seconds S [--interval MS]: N long-lived connections to
 * a line server, each sending a numbered line every MS ms for S seconds and checking that every
 * reply comes back, complete and in order. Prints a JSON summary (the flood tests: established
 * connections keep exchanging data without loss during a flood).
 */
async function tcpChat(a: ParsedOptions<typeof TCP_CHAT>): Promise<number> {
  const host = a.host,
    port = a.port ?? 7000,
    n = a.conns ?? 100,
    secs = a.seconds ?? 10,
    interval = a.interval ?? 100;
  const s = { conns: 0, sent: 0, received: 0, outOfOrder: 0, closed: 0, errors: [] as string[], maxRttMs: 0, byServer: {} as Record<string, number> };
  interface Chat {
    id: number;
    sock: { write(t: string): unknown; end(): unknown };
    next: number;
    expect: number;
    sentAt: number[];
    buf: string;
  }
  const socks: Chat[] = [];
  let ending = false;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const st: Chat = { id: i, sock: { write: () => 0, end: () => 0 }, next: 0, expect: 0, sentAt: [], buf: "" };
      st.sock = await Bun.connect({
        hostname: host,
        port,
        socket: {
          data(_s, chunk) {
            st.buf += chunk.toString();
            for (let k = st.buf.indexOf("\n"); k >= 0; k = st.buf.indexOf("\n")) {
              const line = st.buf.slice(0, k);
              st.buf = st.buf.slice(k + 1);
              const [server, conn, seq] = line.split(" ");
              if (Number(conn) !== st.id || Number(seq) !== st.expect) s.outOfOrder++;
              s.byServer[server] = (s.byServer[server] ?? 0) + (st.expect === 0 ? 1 : 0);
              s.maxRttMs = Math.max(s.maxRttMs, Date.now() - (st.sentAt[st.expect] ?? Date.now()));
              st.expect++;
              s.received++;
            }
          },
          close() {
            if (!ending) s.closed++;
          },
          error(_s, e) {
            s.errors.push(String(e));
          },
        },
      });
      s.conns++;
      socks.push(st);
    }),
  );
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    for (let i = 0; i < socks.length; i++) {
      const st = socks[i];
      st.sentAt[st.next] = Date.now();
      st.sock.write(`${st.id} ${st.next++}\n`);
      s.sent++;
    }
    await Bun.sleep(interval);
  }
  // let the last replies come in
  for (let w = 0; w < 50 && s.received < s.sent; w++) await Bun.sleep(100);
  ending = true;
  for (const st of socks) st.sock.end();
  process.stdout.write(JSON.stringify({ ...s, errors: s.errors.slice(0, 10) }) + "\n");
  return 0;
}

/**
 * http-loop --host H --port P --seconds S [--concurrency C] [--timeout MS]: new HTTP connections
 * back to back for S seconds; prints one JSON line per request: {t (ms since start), ok, ms}.
 */
async function httpLoop(a: ParsedOptions<typeof HTTP_LOOP>): Promise<number> {
  const host = a.host,
    port = a.port ?? 80,
    secs = a.seconds ?? 10,
    conc = a.concurrency ?? 2,
    timeout = a.timeout ?? 500;
  const t0 = Date.now(),
    end = t0 + secs * 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (Date.now() < end) {
        const start = Date.now();
        const r = await httpOnce(host, port, "/", timeout);
        process.stdout.write(JSON.stringify({ t: start - t0, ok: r.ok, ms: Date.now() - start }) + "\n");
        if (!r.ok) await Bun.sleep(20);
      }
    }),
  );
  return 0;
}

const MODES = {
  serve: mode(SERVE, serve),
  "http-get": mode(HTTP_GET, httpGet),
  "tcp-hold": mode(TCP_HOLD, tcpHold),
  "udp-ask": mode(UDP_ASK, udpAsk),
  "tcp-chat": mode(TCP_CHAT, tcpChat),
  "http-loop": mode(HTTP_LOOP, httpLoop),
};

/**
 * Run a lab agent; `argv` starts with the mode. A bad mode or argument: one line on stderr
 * naming it, exit code 2.
 */
export function runLabAgent(argv: string[], err?: (s: string) => void): Promise<number> {
  return runAgent("__lab", MODES, argv, err);
}
