/**
 * Helper programs `xvs bench` runs inside its lab namespaces, reached as `xvs __bench MODE ...`:
 *
 *   gen --iface IF --dst-mac M --src A --dst A --dport P --size N --flows F --seconds S [--pps R] [--cpu C]
 *       live-frames UDP generator (BPF_PROG_RUN): prints "running" when it starts sending, and
 *       {"sent","secs","pps"} when it stops (after S seconds or on SIGTERM)
 *   xdp --iface IF --prog sink|sink-tc|pass [--port P] [--tun-port P]
 *       attach the counting sink (XDP, or tc ingress with sink-tc) or XDP_PASS, and print
 *       {"mapId"} of the sink's counters; the program stays attached
 *   xdp-off --iface IF
 *       detach the interface's XDP program
 *   tcp-srv --port P
 *       answer every request with a short HTTP/1.0 response and close (server closes first)
 *   tcp-cli --hosts A[,B...] --port P --seconds S --concurrency C [--warmup S]
 *       new connection per request, round robin over the hosts: prints {"conns","errors","secs","cps"}
 *       (connections started in the first --warmup seconds are not counted)
 *   udp-echo --port P
 *       echo every datagram
 *   udp-ping --host A --port P --count N
 *       one datagram at a time, waits for the echo: prints RTT percentiles in microseconds
 *
 * Every mode takes --cpu N (pin the agent). Each agent prints one JSON line on stdout (servers
 * print "ready") and nothing else there.
 */
import { linkInfo } from "../ffi/netlink.ts";
import { detachXdp, GenObject, pinCpu } from "../ffi/gen.ts";
import { parseAddr } from "../wire/ipv4.ts";
import { buildFrame, parseMac } from "./frames.ts";

interface Args {
  [k: string]: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) a[argv[i].slice(2)] = argv[i + 1] !== undefined && !argv[i + 1].startsWith("--") ? argv[++i] : "1";
  }
  return a;
}

function need(a: Args, k: string): string {
  const v = a[k];
  if (v === undefined) throw new Error(`--${k} is required`);
  return v;
}

function num(a: Args, k: string, d: number): number {
  const v = a[k];
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${k}: '${v}' is not a number`);
  return n;
}

function out(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + "\n");
}

async function gen(a: Args): Promise<number> {
  const link = linkInfo(need(a, "iface"));
  const obj = await GenObject.load();
  try {
    const flows = Math.max(1, num(a, "flows", 1));
    const portsPerAddr = Math.min(flows, num(a, "ports-per-addr", 50000));
    const src = need(a, "src");
    const frame = buildFrame({
      srcMac: link.mac,
      dstMac: parseMac(need(a, "dst-mac")),
      src,
      dst: need(a, "dst"),
      sport: num(a, "sport", 10000),
      dport: num(a, "dport", 9000),
      size: num(a, "size", 64),
    });
    const flowCfg = { flows, portsPerAddr, portBase: num(a, "sport", 10000), addrBase: parseAddr(src)! };
    const seconds = num(a, "seconds", 1);
    const batch = num(a, "batch", 64);
    // --pps R: about R frames/s, evenly paced: the program sends one frame in N and drops the
    // rest (measure how many frames/s the kernel makes when dropping, then pick N)
    const pps = num(a, "pps", 0);
    let txEvery = 1;
    if (pps > 0) {
      obj.setTemplate(frame, { ...flowCfg, txEvery: 1 << 30 });
      const c0 = obj.counts().decided, t = performance.now();
      obj.run(link.ifindex, frame, 1 << 22, batch);
      const made = (obj.counts().decided - c0) / ((performance.now() - t) / 1000);
      txEvery = Math.max(1, Math.round(made / pps));
    }
    obj.setTemplate(frame, { ...flowCfg, txEvery });
    // SIGTERM interrupts the kernel's loop at once (EINTR) and ends the run; counts stay exact
    let stopping = false;
    process.on("SIGTERM", () => {
      stopping = true;
    });
    const sent0 = obj.counts().sent;
    let decidedRate = 2e6; // frames/s the kernel loop makes; measured after each call
    process.stdout.write("running\n"); // the harness starts its clocks on this line
    const t0 = performance.now();
    for (;;) {
      const c0 = performance.now();
      const left = seconds - (c0 - t0) / 1000;
      if (stopping || left <= 0) break;
      // long kernel calls: each call costs a fixed ~20 ms of set-up and tear-down during which
      // nothing is sent, so a call covers up to 1 s (a stop request interrupts it at once);
      // paced runs use 0.25 s calls and correct the decimation after each
      const span = pps > 0 ? 0.25 : 1;
      const chunk = Math.max(4096, Math.round(decidedRate * Math.min(span, left)));
      const d0 = obj.counts().decided, s0 = obj.counts().sent;
      if (!obj.run(link.ifindex, frame, chunk, batch)) break;
      const dt = (performance.now() - c0) / 1000;
      decidedRate = Math.max(1e4, (obj.counts().decided - d0) / dt);
      if (pps > 0) {
        const got = (obj.counts().sent - s0) / dt;
        const next = Math.max(1, Math.round(txEvery * Math.min(4, Math.max(0.25, got / pps))));
        if (next !== txEvery) {
          txEvery = next;
          obj.setTemplate(frame, { ...flowCfg, txEvery });
        }
      }
      await Bun.sleep(0);
    }
    const sent = obj.counts().sent - sent0;
    const secs = (performance.now() - t0) / 1000;
    out({ sent, secs, pps: sent / secs, txEvery });
    return 0;
  } finally {
    obj.close();
  }
}

async function xdp(a: Args): Promise<number> {
  const name = need(a, "iface");
  const link = linkInfo(name);
  const obj = await GenObject.load();
  try {
    obj.setSinkPorts(num(a, "port", 9000), num(a, "tun-port", 0));
    if (a.prog === "sink-tc") obj.attachTc(link.ifindex, name);
    else obj.attach(link.ifindex, name, a.prog === "pass" ? "xvs_pass" : "xvs_sink");
    out({ mapId: obj.mapId("sink_stats") });
    return 0;
  } finally {
    obj.close();
  }
}

function xdpOff(a: Args): number {
  detachXdp(linkInfo(need(a, "iface")).ifindex);
  out({ ok: true });
  return 0;
}

const RESPONSE = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

async function tcpSrv(a: Args): Promise<number> {
  Bun.listen({
    hostname: a.addr ?? "0.0.0.0",
    port: num(a, "port", 80),
    socket: {
      data(s) {
        s.end(RESPONSE);
      },
      error() {},
    },
  });
  process.stdout.write("ready\n");
  await new Promise(() => {});
  return 0;
}

async function tcpCli(a: Args): Promise<number> {
  const hosts = need(a, "hosts").split(",");
  const port = num(a, "port", 80);
  const seconds = num(a, "seconds", 2);
  const conc = num(a, "concurrency", 16);
  const timeoutMs = num(a, "timeout", 3000);
  const warmup = num(a, "warmup", 0);
  let conns = 0, errors = 0, next = 0;
  const firstErrors: string[] = [];
  // connections started during the warm-up are made but not counted
  const t0 = performance.now() + warmup * 1000;
  const stopAt = t0 + seconds * 1000;
  const once = (host: string): Promise<boolean> =>
    new Promise((resolve) => {
      let got = 0;
      let done = false;
      const finish = (ok: boolean, why?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (!ok && why && firstErrors.length < 5) firstErrors.push(why);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false, "timeout"), timeoutMs);
      Bun.connect({
        hostname: host,
        port,
        socket: {
          open(s) {
            s.write("GET / HTTP/1.0\r\n\r\n");
          },
          data(_s, d) {
            got += d.length;
          },
          close() {
            finish(got > 0, got > 0 ? undefined : "closed without a response");
          },
          error(_s, e) {
            finish(false, String(e));
          },
          connectError(_s, e) {
            finish(false, String(e));
          },
        },
      }).catch((e) => finish(false, String(e)));
    });
  const worker = async () => {
    while (performance.now() < stopAt) {
      const host = hosts[next++ % hosts.length];
      const counted = performance.now() >= t0;
      const ok = await once(host);
      if (counted) {
        if (ok) conns++;
        else errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const secs = (performance.now() - t0) / 1000;
  out({ conns, errors, secs, cps: conns / secs, firstErrors });
  return 0;
}

async function udpEcho(a: Args): Promise<number> {
  await Bun.udpSocket({
    hostname: a.addr ?? "0.0.0.0",
    port: num(a, "port", 9001),
    socket: {
      data(sock, buf, port, addr) {
        sock.send(buf, port, addr);
      },
    },
  });
  process.stdout.write("ready\n");
  await new Promise(() => {});
  return 0;
}

async function udpPing(a: Args): Promise<number> {
  const host = need(a, "host"), port = num(a, "port", 9001), count = num(a, "count", 1000), warm = num(a, "warm", 50);
  const timeoutMs = num(a, "timeout", 200);
  const rtts: number[] = [];
  let lost = 0, warmLost = 0;
  let waiting: ((t: number) => void) | null = null;
  let refused = 0;
  const sock = await Bun.udpSocket({
    socket: {
      data() {
        const t = Bun.nanoseconds();
        const w = waiting;
        waiting = null;
        w?.(t);
      },
      // ICMP port unreachable: counted as lost (the timeout ends the wait)
      error() {
        refused++;
      },
    },
  });
  const payload = new Uint8Array(32);
  for (let i = 0; i < warm + count; i++) {
    const t0 = Bun.nanoseconds();
    const got = await new Promise<number>((resolve) => {
      const timer = setTimeout(() => {
        waiting = null;
        resolve(-1);
      }, timeoutMs);
      waiting = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
      sock.send(payload, port, host);
    });
    if (i < warm) {
      // nothing comes back at all: stop early instead of waiting out every timeout
      if (got < 0 && ++warmLost >= 20 && warmLost === i + 1) break;
      continue;
    }
    if (got < 0) lost++;
    else rtts.push((got - t0) / 1000);
  }
  sock.close();
  rtts.sort((x, y) => x - y);
  const q = (p: number) => (rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] : NaN);
  out({ samples: rtts.length, lost, refused, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: rtts[rtts.length - 1] ?? NaN });
  return 0;
}

/** Run a bench agent; `argv` starts with the mode. */
export async function runBenchAgent(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  const a = parseArgs(rest);
  // --cpu N: pin this agent's main thread (threads it starts later inherit the mask)
  if (a.cpu !== undefined) pinCpu(num(a, "cpu", 0));
  switch (mode) {
    case "gen": return gen(a);
    case "xdp": return xdp(a);
    case "xdp-off": return xdpOff(a);
    case "tcp-srv": return tcpSrv(a);
    case "tcp-cli": return tcpCli(a);
    case "udp-echo": return udpEcho(a);
    case "udp-ping": return udpPing(a);
    default:
      process.stderr.write(`xvs __bench: unknown mode ${mode}\n`);
      return 2;
  }
}
