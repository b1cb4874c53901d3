/**
 * Helper programs `xvs bench` runs inside its lab namespaces, reached as `xvs __bench MODE ...`:
 *
 *   gen --iface IF --dst-mac M --src A --dst A --dport P --size N --flows F --seconds S [--pps R] [--cpu C]
 *       live-frames UDP generator (BPF_PROG_RUN): prints "running" when it starts sending, and
 *       {"sent","secs","pps"} when it stops (after S seconds or on SIGTERM)
 *   xdp --iface IF --prog sink|sink-tc|pass [--port P] [--tun-port P]
 *       attach the counting sink (XDP, or tc ingress with sink-tc) or XDP_PASS, and print
 *       {"mapId"} of the sink's counters; the program stays attached
 *   ceiling --in IF --out IF --vip A --port P --backends A[,B...] --dst-mac M
 *       attach the in-kernel ceiling (native/bpf/xvs_ceiling.bpf.c: stateless UDP DNAT and
 *       redirect in XDP) to --in, forwarding out of --out; prints {"ok":true}; stays attached
 *   xdp-off --iface IF
 *       detach the interface's XDP program
 *   tcp-srv --port P [--addr A]
 *       answer every request with a short HTTP/1.0 response and close (server closes first)
 *   tcp-cli --hosts A[,B...] --port P --seconds S --concurrency C [--warmup S] [--timeout MS]
 *       new connection per request, round robin over the hosts: prints {"conns","errors","secs","cps"}
 *       (connections started in the first --warmup seconds are not counted)
 *   udp-echo --port P [--addr A]
 *       echo every datagram
 *   udp-ping --host A --port P --count N [--warm N] [--timeout MS]
 *       one datagram at a time, waits for the echo: prints RTT percentiles in microseconds
 *
 * Every mode takes --cpu N (pin the agent). Each agent prints one JSON line on stdout (servers
 * print "ready") and nothing else there. Arguments are checked by lab/agent-args.ts before a
 * mode starts (as `xvs __lab`'s are): a bad one prints a line naming it and exits with code 2.
 */
import { linkInfo } from "../../ffi/netlink.ts";
import { attachCeiling } from "../../ffi/ceiling.ts";
import { detachXdp, GenObject, pinCpu } from "../../ffi/gen.ts";
import { parseAddr } from "../../wire/ipv4.ts";
import { AMOUNT, type AgentMode, COUNT, mode, type ParsedOptions, PORT, runAgent, TEXT } from "../lab/agent-args.ts";
import { buildFrame, parseMac } from "./frames.ts";

/** --cpu N, which every mode takes: pin the agent's main thread (threads it starts later inherit the mask). */
const CPU = { cpu: { type: "number", integer: true, min: 0, max: 4095 } } as const;
const REQUIRED = { type: "string", required: true } as const;

/** Options of each mode (parsed and checked by lab/agent-args.ts before the mode starts). */
const GEN = {
  ...CPU,
  iface: REQUIRED,
  "dst-mac": REQUIRED,
  src: REQUIRED,
  dst: REQUIRED,
  sport: PORT,
  dport: PORT,
  size: COUNT,
  flows: COUNT,
  "ports-per-addr": COUNT,
  seconds: AMOUNT,
  batch: { ...COUNT, min: 1 },
  pps: AMOUNT,
} as const;
const XDP = { ...CPU, iface: REQUIRED, prog: { type: "string", choices: ["sink", "sink-tc", "pass"] }, port: PORT, "tun-port": PORT } as const;
const CEILING = { ...CPU, in: REQUIRED, out: REQUIRED, vip: REQUIRED, port: PORT, backends: REQUIRED, "dst-mac": REQUIRED } as const;
const XDP_OFF = { ...CPU, iface: REQUIRED } as const;
const TCP_SRV = { ...CPU, addr: TEXT, port: PORT } as const;
const TCP_CLI = { ...CPU, hosts: REQUIRED, port: PORT, seconds: AMOUNT, concurrency: { ...COUNT, min: 1 }, timeout: AMOUNT, warmup: AMOUNT } as const;
const UDP_ECHO = { ...CPU, addr: TEXT, port: PORT } as const;
const UDP_PING = { ...CPU, host: REQUIRED, port: PORT, count: COUNT, warm: COUNT, timeout: AMOUNT } as const;

function out(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + "\n");
}

async function gen(a: ParsedOptions<typeof GEN>): Promise<number> {
  const link = linkInfo(a.iface);
  const obj = await GenObject.load();
  try {
    const flows = Math.max(1, a.flows ?? 1);
    const portsPerAddr = Math.min(flows, a["ports-per-addr"] ?? 50000);
    const src = a.src;
    const frame = buildFrame({
      srcMac: link.mac,
      dstMac: parseMac(a["dst-mac"]),
      src,
      dst: a.dst,
      sport: a.sport ?? 10000,
      dport: a.dport ?? 9000,
      size: a.size ?? 64,
    });
    const flowCfg = { flows, portsPerAddr, portBase: a.sport ?? 10000, addrBase: parseAddr(src)! };
    const seconds = a.seconds ?? 1;
    const batch = a.batch ?? 64;
    // --pps R: about R frames/s, evenly paced: the program sends one frame in N and drops the
    // rest (measure how many frames/s the kernel makes when dropping, then pick N)
    const pps = a.pps ?? 0;
    let txEvery = 1;
    if (pps > 0) {
      obj.setTemplate(frame, { ...flowCfg, txEvery: 1 << 30 });
      const c0 = obj.counts().decided,
        t = performance.now();
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
      const d0 = obj.counts().decided,
        s0 = obj.counts().sent;
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

async function xdp(a: ParsedOptions<typeof XDP>): Promise<number> {
  const name = a.iface;
  const link = linkInfo(name);
  const obj = await GenObject.load();
  try {
    obj.setSinkPorts(a.port ?? 9000, a["tun-port"] ?? 0);
    if (a.prog === "sink-tc") obj.attachTc(link.ifindex, name);
    else obj.attach(link.ifindex, name, a.prog === "pass" ? "xvs_pass" : "xvs_sink");
    out({ mapId: obj.mapId("sink_stats"), cfgMapId: obj.mapId("sink_cfg") });
    return 0;
  } finally {
    obj.close();
  }
}

async function ceiling(a: ParsedOptions<typeof CEILING>): Promise<number> {
  const inLink = linkInfo(a.in);
  const outLink = linkInfo(a.out);
  const v4 = (s: string) => {
    const n = parseAddr(s);
    if (n === null) throw new Error(`not an IPv4 address: ${s}`);
    return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  };
  await attachCeiling(inLink.ifindex, a.in, {
    vip: v4(a.vip),
    port: a.port ?? 9000,
    realServers: a.backends.split(",").map(v4),
    srcMac: outLink.mac,
    dstMac: parseMac(a["dst-mac"]),
    outIfindex: outLink.ifindex,
  });
  out({ ok: true });
  return 0;
}

function xdpOff(a: ParsedOptions<typeof XDP_OFF>): number {
  detachXdp(linkInfo(a.iface).ifindex);
  out({ ok: true });
  return 0;
}

const RESPONSE = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

async function tcpSrv(a: ParsedOptions<typeof TCP_SRV>): Promise<number> {
  Bun.listen({
    hostname: a.addr ?? "0.0.0.0",
    port: a.port ?? 80,
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

async function tcpCli(a: ParsedOptions<typeof TCP_CLI>): Promise<number> {
  const hosts = a.hosts.split(",");
  const port = a.port ?? 80;
  const seconds = a.seconds ?? 2;
  const conc = a.concurrency ?? 16;
  const timeoutMs = a.timeout ?? 3000;
  const warmup = a.warmup ?? 0;
  let conns = 0,
    errors = 0,
    next = 0;
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

async function udpEcho(a: ParsedOptions<typeof UDP_ECHO>): Promise<number> {
  await Bun.udpSocket({
    hostname: a.addr ?? "0.0.0.0",
    port: a.port ?? 9001,
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

async function udpPing(a: ParsedOptions<typeof UDP_PING>): Promise<number> {
  const host = a.host,
    port = a.port ?? 9001,
    count = a.count ?? 1000,
    warm = a.warm ?? 50;
  const timeoutMs = a.timeout ?? 200;
  const rtts: number[] = [];
  let lost = 0,
    warmLost = 0;
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

/** A mode that first pins itself to --cpu when given. */
function pinned<const S extends typeof CPU>(options: S, run: (a: ParsedOptions<S>) => Promise<number> | number): AgentMode {
  return mode(options, (a) => {
    const { cpu } = a as ParsedOptions<typeof CPU>;
    if (cpu !== undefined) pinCpu(cpu);
    return run(a);
  });
}

const MODES = {
  gen: pinned(GEN, gen),
  xdp: pinned(XDP, xdp),
  ceiling: pinned(CEILING, ceiling),
  "xdp-off": pinned(XDP_OFF, xdpOff),
  "tcp-srv": pinned(TCP_SRV, tcpSrv),
  "tcp-cli": pinned(TCP_CLI, tcpCli),
  "udp-echo": pinned(UDP_ECHO, udpEcho),
  "udp-ping": pinned(UDP_PING, udpPing),
};

/**
 * Run a bench agent; `argv` starts with the mode. A bad mode or argument: one line on stderr
 * naming it, exit code 2.
 */
export function runBenchAgent(argv: string[], err?: (s: string) => void): Promise<number> {
  return runAgent("__bench", MODES, argv, err);
}
