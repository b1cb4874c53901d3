/**
 * Where a daemon keeps its state, per network namespace: several daemons (one per namespace)
 * can run on one host, and `xvs adm` run in a namespace finds the daemon of that namespace.
 *
 *   /var/lib/xvs/net-<netns inode>/token       bearer token for mutating requests (0600)
 *   /var/lib/xvs/net-<netns inode>/api         host:port the daemon listens on
 *   /var/lib/xvs/net-<netns inode>/table.json  the saved table (restored on start)
 *   /var/lib/xvs/net-<netns inode>/pid         pid of the running daemon
 *
 * XVS_STATE_DIR overrides the directory.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Default API address: loopback only. */
export const DEFAULT_API_HOST = "127.0.0.1";
export const DEFAULT_API_PORT = 9172;

/** Return the inode number of this process's network namespace. */
export function netnsId(): string {
  try {
    const l = readlinkSync("/proc/self/ns/net");
    return /\[(\d+)\]/.exec(l)?.[1] ?? "default";
  } catch {
    return "default";
  }
}

/** Return the state directory of this network namespace. */
export function stateDir(): string {
  return process.env.XVS_STATE_DIR ?? join("/var/lib/xvs", `net-${netnsId()}`);
}

/** Read the token, creating it (root-only file) on first use. */
export function ensureToken(dir = stateDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = join(dir, "token");
  if (existsSync(p)) {
    const t = readFileSync(p, "utf8").trim();
    if (t.length >= 16) return t;
  }
  const t = randomBytes(24).toString("hex");
  writeFileSync(p, t + "\n", { mode: 0o600 });
  chmodSync(p, 0o600);
  return t;
}

/** Read the token if this user can; null otherwise. */
export function readToken(dir = stateDir()): string | null {
  try {
    return readFileSync(join(dir, "token"), "utf8").trim();
  } catch {
    return null;
  }
}

/** Record the address the daemon listens on. */
export function writeApiAddress(host: string, port: number, dir = stateDir()): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "api"), `${host}:${port}\n`);
}

/** Return the base URL of this namespace's daemon. */
export function apiBase(dir = stateDir()): string {
  if (process.env.XVS_API) return `http://${process.env.XVS_API}`;
  try {
    const a = readFileSync(join(dir, "api"), "utf8").trim();
    if (a) return `http://${a}`;
  } catch {
    // no daemon has run here yet: the default address
  }
  return `http://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`;
}
