/**
 * What health checks cost the daemon's main thread (do 1000 real servers checked every second
 * cost a bounded share of a core?): an offline daemon (tables compiled, no dataplane) with
 * N real servers, each with one checker at delay_loop 1 s, all pointed (connect_ip/connect_port)
 * at one loopback listener in this process: a TCP listener for `tcp`, a Bun.serve HTTP server
 * answering 200 for `http`. After a warm-up, this process's CPU time (process.cpuUsage, user +
 * system) over the measured window, as a share of one core, and the attempts per second.
 * The listener's own work is in the same process, so the figure is an upper bound for the
 * checker side. Prints one JSON line per kind.
 *
 *   bun run bench/health.bench.ts [--servers N] [--seconds S] [--kinds tcp,http]
 */
import net from "node:net";
import { Daemon } from "../src/control/daemon.ts";
import { runCheck } from "../src/health/checkers.ts";
import { HealthMonitor } from "../src/health/monitor.ts";
import { Checker, ServiceHealth } from "../src/control/health-schemas.ts";

function arg(name: string, d: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : d;
}
const SERVERS = Number(arg("--servers", "1000"));
const SECONDS = Number(arg("--seconds", "10"));
const KINDS = arg("--kinds", "tcp,http").split(",");
const PER_SERVICE = 250;

async function listener(kind: string): Promise<{ port: number; close: () => void }> {
  if (kind === "http") {
    const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok\n") });
    return { port: s.port!, close: () => s.stop(true) };
  }
  const srv = net.createServer((c) => {
    c.on("error", () => undefined);
    c.end();
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

async function measure(kind: string): Promise<Record<string, unknown>> {
  const l = await listener(kind);
  const daemon = new Daemon(null, null);
  let attempts = 0,
    failures = 0,
    busyMs = 0;
  const monitor = new HealthMonitor(daemon, {
    run: async (c, t, ms) => {
      attempts++;
      const t0 = performance.now();
      const r = await runCheck(c, t, ms);
      busyMs += performance.now() - t0;
      if (!r.ok) failures++;
      return r;
    },
  });
  daemon.health = monitor;
  const checker = Checker.parse(
    kind === "http"
      ? { kind: "http", connect_ip: "127.0.0.1", connect_port: l.port, delay_loop: 1, connect_timeout: 2, urls: [{ path: "/" }] }
      : { kind: "tcp", connect_ip: "127.0.0.1", connect_port: l.port, delay_loop: 1, connect_timeout: 2 },
  );
  await daemon.mutate((m) => {
    for (let s = 0; s * PER_SERVICE < SERVERS; s++) {
      const key = { protocol: "tcp" as const, address: `198.18.0.${100 + s}`, port: 80 };
      m.addService({ ...key, scheduler: "wlc", onePacket: false, schedFlags: [], health: ServiceHealth.parse({ delay_loop: 1 }) });
      for (let i = 0; i < PER_SERVICE && s * PER_SERVICE + i < SERVERS; i++) {
        m.addDest(key, { address: `198.18.${8 + s}.${i}`, port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0, checkers: [checker] });
      }
    }
  });
  await Bun.sleep(2000); // warm-up: every checker has started
  const a0 = attempts;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000);
  const cpu = process.cpuUsage(c0);
  const wall = (performance.now() - t0) / 1000;
  monitor.stop();
  await Bun.sleep(500);
  l.close();
  return {
    kind,
    servers: SERVERS,
    delayLoopSec: 1,
    seconds: Math.round(wall * 10) / 10,
    attemptsPerSec: Math.round((attempts - a0) / wall),
    failures,
    meanAttemptMs: Math.round((busyMs / attempts) * 10) / 10,
    cpuShareOfOneCore: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 1000) / 1000,
  };
}

for (const k of KINDS) console.log(JSON.stringify(await measure(k)));
