/**
 * `xvs run`: the daemon. Restores the saved table (or loads `--config FILE`) before anything
 * touches the network, starts the dataplane on the given interfaces in the current network
 * namespace, serves the control API on loopback, saves the table on every change, runs the
 * rate estimator every 2 s, and shuts down cleanly on SIGTERM/SIGINT (workers stopped, sockets
 * closed, XDP detached).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { splitOptionValues } from "../argv.ts";
import { ErrorCode, LbError } from "../errors.ts";
import { checkHost, Dataplane, type DataplaneOptions } from "../dataplane/dataplane.ts";
import { FLOW_CACHE_MAX_ENTRIES } from "../dataplane/flowcache-control.ts";
import { log } from "../log.ts";
import { createApp } from "./app.ts";
import { metricsApp } from "./routes/metrics.ts";
import { applyConfig } from "./batch.ts";
import { Daemon } from "./daemon.ts";
import { HealthMonitor } from "../health/monitor.ts";
import { prepareStartTable } from "./start-table.ts";
import { attachKeepalivedConf, KeepalivedConf, keepalivedConfOf, loadKeepalivedConf } from "./keepalived/reload.ts";
import { DEFAULT_API_HOST, DEFAULT_API_PORT, ensureToken, stateDir, writeApiAddress } from "./runtime.ts";

/** How often the control thread looks whether an estimator tick is due, ms (ticks are 2 s apart). */
const ESTIMATOR_POLL_MS = 250;

export interface RunOptions extends DataplaneOptions {
  apiHost: string;
  apiPort: number;
  /** Declarative table for the start; whether it or the saved table wins: start-table.ts. */
  configFile?: string;
  /** keepalived.conf whose virtual_server blocks are the table; SIGHUP and POST /v1/reload re-read it (src/control/keepalived/). */
  keepalivedConf?: string;
  /** File holding the API token (instead of the generated one). */
  tokenFile?: string;
  /** A listener of its own for GET /metrics (routes/metrics.ts), besides the API's. */
  metrics?: { host: string; port: number };
}

/** Parse HOST:PORT (IPv6 in brackets) of --api and --metrics. @throws LbError(Invalid). */
function hostPort(option: string, s: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new LbError(ErrorCode.Invalid, `${option}: '${s}' is not HOST:PORT`);
  return { host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** Parse `xvs run` arguments. @throws LbError(Invalid) naming the bad argument. */
export function parseRunArgs(words: string[]): RunOptions {
  const argv = splitOptionValues(words, ["--copy", "--zerocopy"]); // --iface=eth0 as --iface eth0
  const o: RunOptions = { ifaces: [], connCapacity: 1 << 20, bindMode: "auto", idleMs: 1, apiHost: DEFAULT_API_HOST, apiPort: DEFAULT_API_PORT };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new LbError(ErrorCode.Invalid, `${a} needs a value`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const s = val();
      const n = Number(s);
      if (!/^\d+$/.test(s) || n < min || n > max) throw new LbError(ErrorCode.Invalid, `${a}: '${s}' is not a number in ${min}..${max}`);
      return n;
    };
    switch (a) {
      case "--iface":
      case "-i":
        o.ifaces.push(val());
        break;
      case "--workers": {
        // a whole number 1..XVS_MAX_QUEUES; more than the cores or the queues is clamped and
        // logged at start (dataplane/queues.ts), 0 or a fraction is refused here
        const s = val();
        if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 64)
          throw new LbError(ErrorCode.Invalid, `--workers: '${s}' is not a whole number of poll workers in 1..64 (default: the usable cores)`);
        o.workers = Number(s);
        break;
      }
      case "--queues":
        // removed: every rx queue gets a socket now; its old default (queue 0 only) left the
        // other queues' packets to the kernel
        throw new LbError(
          ErrorCode.Invalid,
          "--queues was removed: xvs now serves every rx queue of each interface; use --workers N to choose how many poll workers share them",
        );
      case "--conn-max":
        o.connCapacity = int(1, (1 << 24) - 2);
        break;
      case "--copy":
        o.bindMode = "copy";
        break;
      case "--zerocopy":
        o.bindMode = "zerocopy";
        break;
      case "--idle-ms":
        o.idleMs = int(0, 1000);
        break;
      case "--flow-cache": {
        const v = val();
        if (v !== "on" && v !== "off") throw new LbError(ErrorCode.Invalid, `--flow-cache: '${v}' is not on or off`);
        o.flowCache = v === "on";
        break;
      }
      case "--flow-cache-entries":
        o.flowCacheEntries = int(1, FLOW_CACHE_MAX_ENTRIES);
        break;
      case "--config":
        o.configFile = val();
        break;
      case "--keepalived-conf":
        o.keepalivedConf = val();
        break;
      case "--token-file":
        o.tokenFile = val();
        break;
      case "--api": {
        const hp = hostPort(a, val());
        o.apiHost = hp.host;
        o.apiPort = hp.port;
        break;
      }
      case "--metrics":
        o.metrics = hostPort(a, val());
        break;
      default:
        throw new LbError(ErrorCode.Invalid, `unknown option '${a}' (see xvs run --help)`);
    }
  }
  if (o.configFile && o.keepalivedConf) throw new LbError(ErrorCode.Invalid, "--config and --keepalived-conf both declare the table: give one of them");
  if (o.ifaces.length === 0) throw new LbError(ErrorCode.Invalid, "no interface given: use --iface IF (once per interface)");
  return o;
}

/** The API token: from --token-file (copied into the state directory for `xvs adm`), or generated once. */
function apiToken(o: RunOptions): string {
  if (!o.tokenFile) return ensureToken();
  let t: string;
  try {
    t = readFileSync(o.tokenFile, "utf8").trim();
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `--token-file ${o.tokenFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (t.length < 16 || /\s/.test(t))
    throw new LbError(ErrorCode.Invalid, `--token-file ${o.tokenFile}: the token must be at least 16 characters without blanks`);
  ensureToken();
  writeFileSync(join(stateDir(), "token"), `${t}\n`, { mode: 0o600 });
  return t;
}

/** Run the daemon until a signal stops it. Resolves with the exit code. */
export async function runDaemon(o: RunOptions): Promise<number> {
  // root and interfaces first (their messages say how to fix them), then the table: a broken
  // config file or saved table stops us before anything is attached
  checkHost(o.ifaces);
  const ka = o.keepalivedConf ? loadKeepalivedConf(o.keepalivedConf) : null;
  const { store, doc, source, announce } = prepareStartTable(stateDir(), ka ? { doc: ka.table, stamp: ka.stamp } : o.configFile);
  const token = apiToken(o);
  const daemon = new Daemon(null, store);
  // before the table is loaded, so that its checkers start (and `alpha` applies) with the first generation
  const health = new HealthMonitor(daemon);
  daemon.health = health;
  if (doc) {
    await daemon
      .mutate((m) => applyConfig(m, doc))
      .catch((e: unknown) => {
        const where = source === store.path ? `saved table ${store.path}` : `config file ${source}`;
        throw new LbError(e instanceof LbError ? e.code : ErrorCode.Invalid, `${where}: ${e instanceof Error ? e.message : String(e)}`);
      });
  }
  if (ka) attachKeepalivedConf(daemon, new KeepalivedConf(ka.stamp.path, daemon, store, ka.table, ka.stamp));
  const dp = await Dataplane.start(o, daemon.model);
  daemon.dataplane = dp;
  const app = createApp(daemon, token);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ hostname: o.apiHost, port: o.apiPort, fetch: app.fetch, maxRequestBodySize: 1 << 21 });
  } catch (e) {
    await dp.stop();
    throw new LbError(
      ErrorCode.Busy,
      `cannot listen on ${o.apiHost}:${o.apiPort} (${e instanceof Error ? e.message : e}): another xvs in this namespace? use --api HOST:PORT`,
    );
  }
  let metricsServer: ReturnType<typeof Bun.serve> | null = null;
  if (o.metrics) {
    try {
      metricsServer = Bun.serve({ hostname: o.metrics.host, port: o.metrics.port, fetch: metricsApp(daemon).fetch, maxRequestBodySize: 1 << 12 });
    } catch (e) {
      server.stop(true);
      await dp.stop();
      throw new LbError(ErrorCode.Busy, `--metrics: cannot listen on ${o.metrics.host}:${o.metrics.port} (${e instanceof Error ? e.message : e})`);
    }
  }
  writeApiAddress(o.apiHost.includes(":") ? `[${o.apiHost}]` : o.apiHost, server.port ?? o.apiPort);
  announce();
  log("info", "xvs running", {
    ifaces: o.ifaces,
    workers: dp.workers.length,
    api: `${o.apiHost}:${server.port}`,
    ...(metricsServer ? { metrics: `${o.metrics!.host}:${metricsServer.port}` } : {}),
    state: stateDir(),
    zeroCopy: dp.workers.map((w) => w.zeroCopy),
    services: daemon.model.services.length,
    table: source,
  });
  const purge = setInterval(() => daemon.purge(), 5000);
  const estimator = setInterval(() => daemon.tickEstimator(), ESTIMATOR_POLL_MS);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      log("info", "stopping", { signal: sig });
      clearInterval(purge);
      clearInterval(estimator);
      health.stop();
      server.stop(true);
      metricsServer?.stop(true);
      // a restart may follow: the table is saved and the program holds our packets (dataplane/restart.ts)
      const kept = await dp.stop({ handOver: true });
      log("info", kept ? "stopped: sockets closed, connections saved, XDP program left in hold mode" : "stopped: XDP detached, sockets closed");
      resolve(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
    // reload of --keepalived-conf (systemd ExecReload); errors are logged by reload itself
    process.on(
      "SIGHUP",
      () =>
        void (
          keepalivedConfOf(daemon)
            ?.reload("SIGHUP")
            .catch(() => undefined) ?? log("warn", "SIGHUP ignored: xvs was not started with --keepalived-conf")
        ),
    );
  });
}
