/**
 * Network labs made of namespaces and veth pairs, for `xvs demo`, `xvs bench` and the tests.
 *
 * Every namespace is named `xvst-<pid>-<tag>-<name>`: unique per run, and recognisable, so
 * that leftovers of a crashed run (whose pid is gone) are removed by `Lab.cleanupStale()`.
 * `teardown()` kills what the lab started (by pid) and deletes its namespaces, with each one's
 * xvs run directory (below); call it in a finally block. Nothing here touches the root
 * namespace's interfaces or routes.
 *
 * An xvs stopped with connections leaves /run/xvs/net-<netns inode>/conns.bin for its next start
 * (dataplane/restart.ts). The kernel reuses namespace inodes, so a later namespace, a lab's or
 * a container's, would find it and log a "foreign" table: a lab removes the directory of every
 * namespace it deletes, while the namespace still exists (its inode is then its own), and no other.
 */
import type { Subprocess } from "bun";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Prefix of every lab namespace. */
export const LAB_PREFIX = "xvst";

export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LabError";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Run a command in the current namespace. */
export async function sh(cmd: string[], allowFail = false): Promise<ExecResult> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0 && !allowFail) throw new LabError(`${cmd.join(" ")} failed (${code}): ${stderr.trim() || stdout.trim()}`);
  return { code, stdout, stderr };
}

export class Lab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs: Subprocess[] = [];
  private torn = false;

  /** `tag`: a few characters naming the user (test file, demo, bench). */
  constructor(tag: string) {
    if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new LabError(`lab tag must be 1-8 of [a-z0-9]: ${tag}`);
    this.prefix = `${LAB_PREFIX}-${process.pid}-${tag}`;
  }

  /** Delete namespaces left by lab runs whose process is gone. */
  static async cleanupStale(): Promise<string[]> {
    const list = await sh(["ip", "netns", "list"], true);
    const removed: string[] = [];
    for (const line of list.stdout.split("\n")) {
      const name = line.split(" ")[0];
      const m = new RegExp(`^${LAB_PREFIX}-(\\d+)-`).exec(name);
      if (!m || alive(Number(m[1]))) continue;
      await killNamespacePids(name);
      removeRunDir(name);
      await sh(["ip", "netns", "del", name], true);
      removed.push(name);
    }
    return removed;
  }

  /** Return the full namespace name of a lab host. */
  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  /** Create a namespace with loopback up. */
  async addNs(name: string): Promise<string> {
    const ns = this.ns(name);
    await sh(["ip", "netns", "add", ns]);
    this.namespaces.push(ns);
    await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /**
   * Create a veth pair between two lab hosts, both ends up, with veth's default offloads, as
   * every user's `ip link add ... type veth` (and containers and VMs on a host) has them: a local
   * sender leaves its TCP/UDP checksum partial (CHECKSUM_PARTIAL), and xvs must complete it
   * (wire/partial-csum.ts). Turning offloads off here would hide exactly those frames. Receivers
   * still verify every frame xvs transmits: it arrives from an AF_XDP socket as a plain frame
   * with no checksum state, so their kernels check every sum and count bad ones (nstat).
   */
  async veth(aHost: string, aIf: string, bHost: string, bIf: string, mtu = 1500, queues = 1): Promise<void> {
    const a = this.ns(aHost),
      b = this.ns(bHost);
    // several queues: a sender's flow hash picks its tx queue, which is the peer's rx queue
    const q = queues > 1 ? ["numtxqueues", String(queues), "numrxqueues", String(queues)] : [];
    await sh(["ip", "-n", a, "link", "add", aIf, "mtu", String(mtu), ...q, "type", "veth", "peer", "name", bIf, "netns", b, "mtu", String(mtu), ...q]);
    for (const [ns, ifn] of [
      [a, aIf],
      [b, bIf],
    ])
      await sh(["ip", "-n", ns, "link", "set", ifn, "up"]);
  }

  /** Run a command inside a lab host. @throws LabError on failure unless allowFail. */
  exec(host: string, cmd: string[], allowFail = false): Promise<ExecResult> {
    return sh(["ip", "netns", "exec", this.ns(host), ...cmd], allowFail);
  }

  /** `ip` inside a lab host. */
  ip(host: string, ...args: string[]): Promise<ExecResult> {
    return sh(["ip", "-n", this.ns(host), ...args]);
  }

  /** Set a sysctl inside a lab host. */
  sysctl(host: string, key: string, value: string | number): Promise<ExecResult> {
    return this.exec(host, ["sysctl", "-qw", `${key}=${value}`]);
  }

  /** Start a long-running process inside a lab host; teardown() ends it. */
  spawn(host: string, cmd: string[], opts: { stdin?: "pipe" | "ignore"; env?: Record<string, string> } = {}): Subprocess<"pipe" | "ignore", "pipe", "pipe"> {
    const p = Bun.spawn(["ip", "netns", "exec", this.ns(host), ...cmd], {
      stdin: opts.stdin ?? "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...opts.env },
    });
    this.procs.push(p as Subprocess);
    return p as Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  }

  /**
   * Return the kernel's SNMP counters of a lab host, by name (`nstat -asz --json`: absolute
   * values, zeros included, nstat's history file left alone). @throws LabError when nstat fails
   * or prints no counters: a test reading counters must never see a silent empty set.
   */
  async snmp(host: string): Promise<Record<string, number>> {
    const r = await this.exec(host, ["nstat", "-asz", "--json"]);
    const out: Record<string, number> = {};
    try {
      const j = JSON.parse(r.stdout) as Record<string, Record<string, number>>;
      for (const v of Object.values(j)) Object.assign(out, v);
    } catch (e) {
      throw new LabError(`nstat in ${host} printed no JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
    }
    if (Object.keys(out).length === 0) throw new LabError(`nstat in ${host} reported no counters`);
    return out;
  }

  /** Stop everything the lab started and delete its namespaces. Safe to call twice. */
  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    }
    await Promise.race([Promise.all(this.procs.map((p) => p.exited)), Bun.sleep(3000)]);
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    }
    for (const ns of this.namespaces.reverse()) {
      await killNamespacePids(ns);
      removeRunDir(ns);
      await sh(["ip", "netns", "del", ns], true);
    }
  }
}

/**
 * The xvs run directory of lab namespace `ns` (dataplane/restart.ts runDir: XVS_RUN_DIR or
 * /run/xvs, then net-<inode>), or null when the namespace is gone. `ip netns add` bind-mounts
 * the namespace on /run/netns/<ns>: its inode is the namespace's.
 */
export function labRunDir(ns: string): string | null {
  let ino: number;
  try {
    const st = statSync(join("/run/netns", ns));
    // a namespace file (nsfs, as /proc/self/ns/net), not the empty file a failed `ip netns add` leaves
    if (st.dev !== statSync("/proc/self/ns/net").dev) return null;
    ino = st.ino;
  } catch {
    return null;
  }
  return join(process.env.XVS_RUN_DIR ?? "/run/xvs", `net-${ino}`);
}

/** Remove lab namespace `ns`'s xvs run directory; call it after its processes are gone, before the namespace is. */
function removeRunDir(ns: string): void {
  const dir = labRunDir(ns);
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
}

/** Kill processes still running inside a lab namespace (children the lab did not track). */
async function killNamespacePids(ns: string): Promise<void> {
  const r = await sh(["ip", "netns", "pids", ns], true);
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
