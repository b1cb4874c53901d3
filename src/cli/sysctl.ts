/**
 * `xvs sysctl [NAME[=VALUE] ...]`: the IPVS sysctls xvs keeps (GET/PUT /v1/settings), read and
 * written under the kernel's names with sysctl(8)'s output, so that an operator's
 * `sysctl -w net.ipv4.vs.expire_nodest_conn=1` becomes `xvs sysctl net.ipv4.vs.expire_nodest_conn=1`.
 * A client of the daemon's HTTP API like `xvs adm`; all assignments of one line are sent in one
 * request (all or nothing).
 */
import type { SettingsT } from "../control/schemas.ts";
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

export const SYSCTL_HELP = `xvs sysctl [NAME[=VALUE] ...]

Read or set the IPVS sysctls xvs keeps, as sysctl(8) does for the kernel's net.ipv4.vs.*:
${Object.keys(NAMES)
  .map((n) => `  ${PREFIX}${n}`)
  .join("\n")}
No NAME: print them all. Values are integers (0/1; conn_reuse_mode 0..3). The settings are
saved with the table and survive a restart.

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
    const shown: string[] = [];
    for (const a of args) {
      const eq = a.indexOf("=");
      const name = (eq < 0 ? a : a.slice(0, eq)).trim();
      const f = field(name);
      if (eq >= 0) change[f] = settingValue(f, name, a.slice(eq + 1).trim());
      shown.push(shortName(name));
    }
    const now = Object.keys(change).length > 0 ? await api.call<SettingsT>("PUT", "/v1/settings", change) : await api.call<SettingsT>("GET", "/v1/settings");
    for (const short of shown.length ? shown : Object.keys(NAMES)) env.stdout.write(line(short, now[NAMES[short]]));
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
