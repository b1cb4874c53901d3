/**
 * Process entry: `xvs <command>`, or ipvsadm's own syntax when invoked as `ipvsadm`.
 * Only this file prints errors and sets the exit code.
 */
import { basename } from "node:path";
import { LbError } from "./errors.ts";
import { parseRunArgs, runDaemon } from "./control/serve.ts";

const VERSION = "0.1.0";

const HELP = `xvs ${VERSION}: the XDP Virtual Server (IPVS in userspace, AF_XDP + TypeScript)

usage:
  xvs run --iface IF [--iface IF ...] [--config FILE] [--api HOST:PORT] [OPTIONS]
      start the daemon (dataplane + control API) in the current network namespace (xvs run --help)
  xvs adm ARGS...        ipvsadm-compatible client of the local daemon (same as 'ipvsadm ARGS')
  xvs sysctl [NAME[=VALUE] ...]
                         the daemon's IPVS sysctls (net.ipv4.vs.expire_nodest_conn, sloppy_tcp, ...)
  xvs demo [--check]     build a namespace lab and show xvs balancing real HTTP traffic live
  xvs bench [OPTIONS]    race xvs against kernel IPVS, nftables, plain forwarding and a C AF_XDP
                         forwarder in a namespace lab (xvs bench --help)
  xvs decap attach|detach|stats IFACE [--gue-port N ...]
                         real-server helper for TUN services: open IPIP/GUE/GRE in XDP (xvs decap --help)
  xvs version            print the version

Options of run, demo, bench and decap take their value as --opt VALUE or --opt=VALUE.

examples:
  xvs run --iface eth0 --iface eth1
  xvs adm -A -t 198.18.0.100:80 -s rr
  xvs adm -a -t 198.18.0.100:80 -r 198.18.11.2:80 -m -w 1
  xvs adm -Ln
`;

const RUN_HELP = `xvs run --iface IF [--iface IF ...] [OPTIONS]

Start the daemon in the current network namespace: the XDP steering program on each
interface, an AF_XDP socket on every rx queue served by --workers poll workers, and the
control API on loopback. The table is saved on every change in the state directory
(/var/lib/xvs/net-<netns inode>/table.json) and restored at start if this network namespace
saved it (another namespace's is set aside). SIGTERM or SIGINT stops it cleanly (sockets
closed; the connections saved for the next start, which keeps them: docs/operations.md,
Restarts); SIGHUP reloads --keepalived-conf.

  --iface IF, -i IF    an interface to balance on (repeat for each; at most 8)
  --config FILE        a declarative JSON table (services, real servers, timeouts): applied at
                       start if it changed since it was last applied, else the saved table
                       (with its xvs adm changes) wins
  --keepalived-conf FILE
                       take the table from keepalived.conf's virtual_server blocks (with their
                       checkers) instead of --config; SIGHUP or POST /v1/reload re-reads it and
                       applies only the difference (docs/keepalived.md)
  --api HOST:PORT      where the control API listens (default 127.0.0.1:9172); it serves
                       Prometheus metrics at GET /metrics (no token; docs/metrics.md)
  --metrics HOST:PORT  also serve GET /metrics alone on this address (e.g. for a scraper
                       on another host; default: none)
  --token-file FILE    the bearer token for mutating API requests (default: generated in the state dir)
  --workers N          poll workers; every rx queue of every interface gets a socket and queue q
                       goes to worker q mod N (default: the usable cores, at most the fewest
                       queues of an interface; more is lowered with a log line)
  --conn-max N         connection table size of the daemon, split evenly over the workers
                       (each worker's table is its own: with W workers each holds N/W; the
                       listing's (size=N) shows the total; 124 bytes a connection;
                       default 1048576)
  --copy | --zerocopy  force the AF_XDP bind mode (default: the kernel picks)
  --idle-ms N          poll() timeout of an idle worker in ms, 0 to spin (default 1)
  --flow-cache on|off  established connections forwarded by the XDP program itself, from a
                       map the fast path fills (default on; docs/flow-cache.md)
  --flow-cache-entries N
                       size of that map, shared by all workers (default 262144)
  (each value may also follow an '=': --iface=eth0, --workers=2)

environment: XVS_STATE_DIR (state directory), XVS_RUN_DIR (/run/xvs: the connections a
stop saved), XVS_LIB_DIR (where the shim is unpacked), XVS_LOG_LEVEL (debug|info|warn|error),
XVS_LOG_PRIORITY=0 (log lines without their <N> syslog priority prefix),
XVS_SYN_DEFENCE (oldest|drop_entry|drop_packet|off, see docs/robustness.md)

examples:
  xvs run --iface eth0 --iface eth1
  xvs run --iface eth0 --config /etc/xvs/xvs.json --api 127.0.0.1:9300
`;

async function main(argv: string[]): Promise<number> {
  // compiled: argv0 is the name the executable was started by (a symlink named ipvsadm);
  // from source: the script path (`bun path/to/ipvsadm`, a symlink to src/main.ts)
  const compiled = import.meta.url.startsWith("file:///$bunfs/");
  const invokedAs = basename(compiled ? process.argv0 : (process.argv[1] ?? ""));
  if (invokedAs === "ipvsadm") {
    const { runAdm } = await import("./cli/main.ts");
    return runAdm(argv);
  }
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "run":
      if (rest.includes("--help") || rest.includes("-h")) {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      return runDaemon(parseRunArgs(rest));
    case "adm": {
      const { runAdm } = await import("./cli/main.ts");
      return runAdm(rest);
    }
    case "sysctl": {
      const { runSysctl } = await import("./cli/sysctl.ts");
      const { apiBase, readToken } = await import("./control/runtime.ts");
      return runSysctl(rest, { stdout: process.stdout, stderr: process.stderr, fetch: (i, init) => fetch(i, init), apiBase: apiBase(), token: readToken() });
    }
    case "demo": {
      const { DEMO_HELP, parseDemoArgs, runDemo } = await import("./tools/demo/demo.ts");
      if (rest.includes("--help") || rest.includes("-h")) {
        process.stdout.write(DEMO_HELP);
        return 0;
      }
      return runDemo(parseDemoArgs(rest));
    }
    case "bench": {
      const { BENCH_HELP, parseBenchArgs, runBench } = await import("./tools/bench/run.ts");
      if (rest.includes("--help") || rest.includes("-h")) {
        process.stdout.write(BENCH_HELP);
        return 0;
      }
      return runBench(parseBenchArgs(rest));
    }
    case "__bench": {
      const { runBenchAgent } = await import("./tools/bench/agents.ts");
      return runBenchAgent(rest);
    }
    case "decap": {
      const { runDecap } = await import("./decap/cli.ts");
      return runDecap(rest);
    }
    case "__lab": {
      const { runLabAgent } = await import("./tools/lab/agents.ts");
      return runLabAgent(rest);
    }
    case "version":
    case "--version":
      process.stdout.write(`xvs ${VERSION}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`xvs: unknown command '${cmd}'\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof LbError) process.stderr.write(`xvs: ${e.message}\n`);
    else process.stderr.write(`xvs: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
