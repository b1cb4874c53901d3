/**
 * Run an xvs daemon inside a lab host and talk to it the way an operator does: `xvs adm` and
 * curl on the namespace's loopback. Used by `xvs demo`, `xvs bench` and the tests.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { stripPriorities } from "../../log.ts";
import { type ExecResult, type Lab, LabError } from "./netns.ts";
import { selfCommand } from "./self.ts";

export interface LabDaemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  stateDir: string;
  /** Everything the daemon wrote on stderr so far (its JSON log lines), priority prefixes removed. */
  log(): string;
  /** The same as written, each line with its `<N>` priority prefix (log.ts). */
  rawLog(): string;
  /** Call the HTTP API from inside the namespace; returns status and parsed JSON (or text). */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  /** Run `xvs adm ARGS` inside the namespace. */
  adm(args: string[], stdin?: string): Promise<ExecResult>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
}

/** How to start the daemon beyond its `xvs run` arguments (all optional). */
export interface DaemonLaunch {
  /** Command words put before the daemon's own (e.g. `taskset -c 1` to pin it). */
  wrap?: string[];
  /** Extra environment (e.g. XVS_PROFILE=1). */
  env?: Record<string, string>;
}

/**
 * How long a lab waits for something it started (a daemon, a bench agent) to say it is ready:
 * `defaultS`, or XVS_LAB_START_TIMEOUT_S when set. An emulated guest on a busy host
 * (`xvs bench --ipvs-vm`) starts the 100 MB executable far slower than the defaults allow.
 */
export function startTimeoutS(defaultS: number): number {
  const v = Number(process.env.XVS_LAB_START_TIMEOUT_S);
  return v > 0 ? v : defaultS;
}

/** Start `xvs run --iface ...` in `host` and wait until its API answers. */
export async function startDaemon(
  lab: Lab,
  host: string,
  ifaces: string[],
  extra: string[] = [],
  stateDir?: string,
  launch: DaemonLaunch = {},
): Promise<LabDaemon> {
  const dir = stateDir ?? mkdtempSync(join(tmpdir(), "xvs-state-"));
  // XVS_LAB_FLOW_CACHE=off|on: every lab's daemon with that --flow-cache, unless the lab sets one
  const cache = process.env.XVS_LAB_FLOW_CACHE;
  const flowCache = cache && !extra.includes("--flow-cache") ? ["--flow-cache", cache] : [];
  const args = [...(launch.wrap ?? []), ...selfCommand(), "run", ...ifaces.flatMap((i) => ["--iface", i]), ...extra, ...flowCache];
  const proc = lab.spawn(host, args, { env: { ...launch.env, XVS_STATE_DIR: dir } }) as Subprocess<"ignore", "pipe", "pipe">;
  let stderr = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += dec.decode(chunk);
  })();
  const curl = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const api = readFileSync(join(dir, "api"), "utf8").trim();
    const token = readFileSync(join(dir, "token"), "utf8").trim();
    const cmd = [
      "curl",
      "-s",
      "-m",
      "10",
      "-X",
      method,
      "-H",
      `Authorization: Bearer ${token}`,
      "-H",
      "content-type: application/json",
      "-w",
      "\n%{http_code}",
    ];
    if (body !== undefined) cmd.push("--data-binary", JSON.stringify(body));
    cmd.push(`http://${api}${path}`);
    const r = await lab.exec(host, cmd, true);
    const nl = r.stdout.lastIndexOf("\n");
    const text = r.stdout.slice(0, nl);
    const status = Number(r.stdout.slice(nl + 1));
    let json: unknown = text;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status, json };
  };
  // the daemon's start (bun loading the source, the XDP program, the sockets) took more than 15 s
  // when other labs loaded the 2-core machine (load 20): this bounds a hang, it does not judge speed
  const startS = startTimeoutS(45);
  const deadline = Date.now() + startS * 1000;
  for (;;) {
    if (proc.exitCode !== null) throw new LabError(`xvs run exited with ${proc.exitCode}: ${stderr.trim()}`);
    try {
      const r = await curl("GET", "/v1/health");
      if (r.status === 200) break;
    } catch {
      // api file not written yet
    }
    if (Date.now() > deadline) throw new LabError(`xvs run did not answer within ${startS} s: ${stderr.trim()}`);
    await Bun.sleep(100);
  }
  return {
    proc,
    stateDir: dir,
    log: () => stripPriorities(stderr),
    rawLog: () => stderr,
    api: curl,
    adm: (a: string[], stdin?: string) => {
      if (stdin === undefined) return lab.exec(host, ["env", `XVS_STATE_DIR=${dir}`, ...selfCommand(), "adm", ...a], true);
      const p = Bun.spawn(["ip", "netns", "exec", lab.ns(host), "env", `XVS_STATE_DIR=${dir}`, ...selfCommand(), "adm", ...a], {
        stdin: new Blob([stdin]),
        stdout: "pipe",
        stderr: "pipe",
      });
      return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr2, code]) => ({
        code,
        stdout,
        stderr: stderr2,
      }));
    },
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(5000).then(() => -1)]);
      if (code === -1) proc.kill("SIGKILL");
      if (!stateDir) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
