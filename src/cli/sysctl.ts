/**
 * `xvs sysctl [NAME[=VALUE] ...]`: the IPVS sysctls xvs keeps (GET/PUT /v1/settings), read and
 * written under the kernel's names with sysctl(8)'s output, so that an operator's
 * `sysctl -w net.ipv4.vs.expire_nodest_conn=1` becomes `xvs sysctl net.ipv4.vs.expire_nodest_conn=1`.
 * A client of the daemon's HTTP API like `xvs adm`; all assignments of one line are sent in one
 * request per group (all or nothing within it): the table's settings (PUT /v1/settings, saved with
 * the table) and the sync daemons' (PUT /v1/sync/settings, kept while the daemon runs, like the
 * kernel's sysctls).
 */
import type { SettingsT } from "../control/schemas.ts";
import type { SyncSysctls } from "../control/sync-daemon.ts";
import { ApiClient, ApiError } from "./client.ts";
import type { AdmEnv } from "./main.ts";
import { AdmExit } from "./parse.ts";

/** What the command needs from the outside world: what `xvs adm` needs, less (tests pass app.request). */
export type SysctlEnv = Pick<AdmEnv, "stdout" | "stderr" | "fetch" | "apiBase" | "token">;

const PREFIX = "net.ipv4.vs.";

/** sysctl name (without the prefix) -> settings field; the kernel's sysctls are integers. */
const NAMES: Record<string, keyof SettingsT> = {
  conn_reuse_mode: "connReuseMode",
  expire_nodest_conn: "expireNodestConn",
  expire_quiescent_template: "expireQuiescentTemplate",
  sloppy_tcp: "sloppyTcp",
};

/** The sync daemons' sysctls -> GET/PUT /v1/sync/settings fields. sync_threshold is two numbers (threshold, period). */
const SYNC_NAMES: Record<string, keyof SyncSysctls> = {
  backup_only: "backupOnly",
  sync_persist_mode: "syncPersistMode",
  sync_ports: "syncPorts",
  sync_qlen_max: "syncQlenMax",
  sync_refresh_period: "syncRefreshPeriod",
  sync_retries: "syncRetries",
  sync_sock_size: "syncSockSize",
  sync_threshold: "syncThreshold",
  sync_version: "syncVersion",
};

/** Largest value of each sync sysctl the kernel takes (proc_do_sync_* handlers), 2^31-1 otherwise. */
const SYNC_MAX: Partial<Record<keyof SyncSysctls, number>> = {
  backupOnly: 1,
  syncPersistMode: 1,
  syncPorts: 1 << 30,
  syncRetries: 3,
  syncVersion: 1,
  syncRefreshPeriod: 2147483,
};

/** Every name, in the order `sysctl -a` lists them. */
const ALL_NAMES = [...Object.keys(NAMES), ...Object.keys(SYNC_NAMES)].sort();

export const SYSCTL_HELP = `xvs sysctl [NAME[=VALUE] ...]

Read or set the IPVS sysctls xvs keeps, as sysctl(8) does for the kernel's net.ipv4.vs.*:
${ALL_NAMES.map((n) => `  ${PREFIX}${n}`).join("\n")}
No NAME: print them all. Values are integers (0/1; conn_reuse_mode 0..3; sync_threshold is two,
threshold and period: "3 50"). The table's settings are saved with it and survive a restart; the
sync ones (backup_only, sync_*) last while the daemon runs, as the kernel's do.

examples:
  xvs sysctl
  xvs sysctl net.ipv4.vs.expire_nodest_conn=1
  xvs sysctl net.ipv4.vs.sloppy_tcp
`;

/** The name without `net.ipv4.vs.` (both spellings are accepted, as the kernel's short names). */
function shortName(name: string): string {
  return name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
}

function field(name: string): keyof SettingsT {
  const f = NAMES[shortName(name)];
  // sysctl(8)'s words for a name it does not know
  if (!f && SYNC_NAMES[shortName(name)]) return "" as keyof SettingsT;
  if (!f) throw new AdmExit(255, `sysctl: cannot stat /proc/sys/${name.replaceAll(".", "/")}: No such file or directory\n`);
  return f;
}

function settingValue(f: keyof SettingsT, name: string, text: string): SettingsT[keyof SettingsT] {
  if (!/^\d+$/.test(text)) throw new AdmExit(255, `sysctl: setting key "${name}": Invalid argument\n`);
  const n = Number(text);
  if (f === "connReuseMode") return n;
  if (n > 1) throw new AdmExit(255, `sysctl: setting key "${name}": Invalid argument\n`);
  return n === 1;
}

function line(short: string, v: SettingsT[keyof SettingsT]): string {
  return `${PREFIX}${short} = ${typeof v === "boolean" ? (v ? 1 : 0) : v}\n`;
}

/** A sync sysctl's new value(s): sync_threshold takes "T P" (0 <= T < P, or P = 0), the others one integer. */
function syncValue(short: string, text: string): Partial<SyncSysctls> {
  const name = `${PREFIX}${short}`;
  const f = SYNC_NAMES[short];
  const parts = text.trim().split(/\s+/);
  const invalid = () => new AdmExit(255, `sysctl: setting key "${name}": Invalid argument\n`);
  if (!parts.every((p) => /^\d+$/.test(p))) throw invalid();
  const n = parts.map(Number);
  if (f === "syncThreshold") {
    // proc_do_sync_threshold: threshold < period unless period is 0
    if (n.length !== 2 || (n[1] !== 0 && n[0] >= n[1]) || n[0] > 2147483647 || n[1] > 2147483647) throw invalid();
    return { syncThreshold: n[0], syncPeriod: n[1] };
  }
  if (n.length !== 1 || n[0] > (SYNC_MAX[f] ?? 2147483647)) throw invalid();
  // proc_do_sync_ports: a power of 2 (1, 2, 4 ...)
  if (f === "syncPorts" && (n[0] < 1 || (n[0] & (n[0] - 1)) !== 0)) throw invalid();
  return { [f]: n[0] };
}

function syncLine(short: string, v: SyncSysctls): string {
  const f = SYNC_NAMES[short];
  // the kernel prints the threshold vector tab-separated (sysctl.txt)
  return `${PREFIX}${short} = ${f === "syncThreshold" ? `${v.syncThreshold}\t${v.syncPeriod}` : v[f]}\n`;
}

/** Run `xvs sysctl ARGS`; resolves with the exit code. */
export async function runSysctl(argv: string[], env: SysctlEnv): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    env.stdout.write(SYSCTL_HELP);
    return 0;
  }
  const api = new ApiClient(env.fetch, env.apiBase, env.token);
  try {
    // sysctl -w is accepted and means nothing more (every NAME=VALUE is a write)
    const args = argv.filter((a) => a !== "-w");
    const change: Partial<Record<keyof SettingsT, SettingsT[keyof SettingsT]>> = {};
    let syncChange: Partial<SyncSysctls> = {};
    const shown: string[] = [];
    for (const a of args) {
      const eq = a.indexOf("=");
      const name = (eq < 0 ? a : a.slice(0, eq)).trim();
      const f = field(name);
      const short = shortName(name);
      if (eq >= 0 && SYNC_NAMES[short]) syncChange = { ...syncChange, ...syncValue(short, a.slice(eq + 1)) };
      else if (eq >= 0) change[f] = settingValue(f, name, a.slice(eq + 1).trim());
      shown.push(short);
    }
    const list = shown.length ? shown : ALL_NAMES;
    const wantTable = list.some((n) => NAMES[n]);
    const wantSync = list.some((n) => SYNC_NAMES[n]);
    const now =
      Object.keys(change).length > 0
        ? await api.call<SettingsT>("PUT", "/v1/settings", change)
        : wantTable
          ? await api.call<SettingsT>("GET", "/v1/settings")
          : null;
    const sync =
      Object.keys(syncChange).length > 0
        ? await api.call<SyncSysctls>("PUT", "/v1/sync/settings", syncChange)
        : wantSync
          ? await api.call<SyncSysctls>("GET", "/v1/sync/settings")
          : null;
    for (const short of list) env.stdout.write(SYNC_NAMES[short] ? syncLine(short, sync!) : line(short, now![NAMES[short]]));
    return 0;
  } catch (e) {
    if (e instanceof AdmExit) {
      env.stderr.write(e.stderr);
      return e.code;
    }
    if (e instanceof ApiError) {
      env.stderr.write(`sysctl: ${e.status === 401 ? "permission denied (the daemon's token is readable by root only)" : e.message}\n`);
      return 255;
    }
    throw e;
  }
}
