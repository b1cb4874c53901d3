/**
 * `xvs decap`: the real-server decapsulation helper for TUN services (native/bpf/xvs_decap.bpf.c).
 * A real server whose kernel has no ipip, fou or ip_gre module (this machine's, for one) attaches
 * it to the interface the tunnel packets arrive on and holds the VIP on `lo`, as for DR:
 *
 *   xvs decap attach IFACE [--gue-port N ...] [--mode auto|native|generic]
 *   xvs decap detach IFACE
 *   xvs decap stats IFACE          counters as JSON
 *
 * The program stays attached when this command exits; `detach` removes it (only if it is still
 * the decap program). Commands throw LbError; src/main.ts prints and sets the exit code.
 */
import { splitOptionValues } from "../argv.ts";
import { ErrorCode, LbError } from "../errors.ts";
import { DEFAULT_GUE_PORT } from "../service/limits.ts";
import { DecapProgram } from "../ffi/bpf.ts";
import { operatorLink } from "../ffi/netlink.ts";
import * as abi from "../ffi/abi.ts";

export const DECAP_HELP = `usage:
  xvs decap attach IFACE [--gue-port N ...] [--mode auto|native|generic]
      open IPIP, GUE (UDP port ${DEFAULT_GUE_PORT}, or each --gue-port) and GRE packets arriving on IFACE
      and hand the inner packet to this host's stack (put the VIP on lo, arp_ignore=1, arp_announce=2)
  xvs decap detach IFACE
  xvs decap stats IFACE       print the helper's counters as JSON
`;

/** Names of the counters (XVS_DECAP_* order). */
export const DECAP_STAT_NAMES = ["ipip", "gue", "gre", "pass", "bad_gue", "bad_gre", "fragment", "malformed", "not_local", "ecn_drop"] as const;

export interface DecapArgs {
  cmd: "attach" | "detach" | "stats";
  iface: string;
  guePorts: number[];
  mode: "auto" | "native" | "generic";
}

/** Parse `xvs decap ...` arguments. @throws LbError(Invalid) with the usage. */
export function parseDecapArgs(argv: string[]): DecapArgs {
  const [cmd, iface, ...rest] = splitOptionValues(argv); // --gue-port=7080 as --gue-port 7080
  if (cmd !== "attach" && cmd !== "detach" && cmd !== "stats") throw new LbError(ErrorCode.Invalid, `decap: expected attach, detach or stats\n${DECAP_HELP}`);
  if (!iface || iface.startsWith("-")) throw new LbError(ErrorCode.Invalid, `decap ${cmd}: missing interface\n${DECAP_HELP}`);
  const ports: number[] = [];
  let mode: DecapArgs["mode"] = "auto";
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--gue-port" && cmd === "attach") {
      const v = rest[++i];
      const n = Number(v);
      if (!/^\d+$/.test(v ?? "") || n < 1 || n > 65535)
        throw new LbError(ErrorCode.Invalid, `decap attach: --gue-port wants a port 1..65535, got '${v ?? ""}'`);
      if (!ports.includes(n)) ports.push(n);
    } else if (a === "--mode" && cmd === "attach") {
      const v = rest[++i];
      if (v !== "auto" && v !== "native" && v !== "generic")
        throw new LbError(ErrorCode.Invalid, `decap attach: --mode is auto, native or generic, got '${v ?? ""}'`);
      mode = v;
    } else {
      throw new LbError(ErrorCode.Invalid, `decap ${cmd}: unexpected argument '${a}'\n${DECAP_HELP}`);
    }
  }
  if (ports.length === 0) ports.push(DEFAULT_GUE_PORT);
  if (ports.length > abi.XVS_DECAP_MAX_GUE_PORTS) throw new LbError(ErrorCode.Invalid, `decap attach: at most ${abi.XVS_DECAP_MAX_GUE_PORTS} GUE ports`);
  return { cmd, iface, guePorts: ports, mode };
}

/** Run `xvs decap ...`; returns the exit code. */
export async function runDecap(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    out(DECAP_HELP);
    return 0;
  }
  const a = parseDecapArgs(argv);
  if (process.getuid?.() !== 0) throw new LbError(ErrorCode.Permission, "xvs decap needs root (XDP needs CAP_NET_ADMIN and CAP_BPF): run it as root");
  const ifindex = operatorLink(a.iface).ifindex;
  switch (a.cmd) {
    case "attach": {
      const r = await DecapProgram.attach(ifindex, a.iface, a.guePorts, a.mode);
      out(`xvs decap attached to ${a.iface} (${r.mode} XDP, program ${r.progId}): IPIP, GRE and GUE on UDP ${a.guePorts.join(", ")}\n`);
      return 0;
    }
    case "detach":
      DecapProgram.detach(ifindex, a.iface);
      out(`xvs decap detached from ${a.iface}\n`);
      return 0;
    case "stats": {
      const v = DecapProgram.stats(ifindex, a.iface);
      const o: Record<string, number> = {};
      DECAP_STAT_NAMES.forEach((n, i) => {
        o[n] = v[i] ?? 0;
      });
      out(JSON.stringify(o) + "\n");
      return 0;
    }
  }
}
