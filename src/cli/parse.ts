/**
 * ipvsadm's parse_options and the checks of process_options, step for step: the first option
 * must be a command; every other option is parsed in command-line order, and a bad value stops
 * at once with ipvsadm's message (exit 2); then the command/option legality table, the service
 * checks, the real server checks and the list conflicts run in ipvsadm's order. The result is
 * an `Entry` (ipvsadm's `struct ipvs_command_entry`) that commands.ts turns into API calls.
 */
import { COMMAND_TAGS, LEGALITY, OPT, OPT_NAMES, TUN_LEGALITY, TUN_NAMES, TUN_OPTS, type CmdName } from "./options.ts";
import { atoi, inetAton, inetPton4, inetPton6, stringToNumber, strtol } from "./libc.ts";
import type { NameDb } from "./names.ts";
import { Popt, POPT_ERRORS } from "./popt.ts";
import { usageText, VERSION_LINE } from "./help.ts";
import { PROTO_SCTP as IPPROTO_SCTP, PROTO_TCP as IPPROTO_TCP, PROTO_UDP as IPPROTO_UDP } from "../wire/fields.ts";
import { FWD_LOCAL, FWD_MASQ, FWD_ROUTE, FWD_TUNNEL } from "../service/tables.ts";
import { DEFAULT_PERSISTENT_TIMEOUT_SEC, DEFAULT_WEIGHT, MAX_TIMEOUT_SEC, MAX_WEIGHT } from "../service/limits.ts";
import { DEFAULT_SCHEDULER } from "../service/schedulers.ts";

/** Ends an invocation: what to print and the exit code (2 for option errors, 255 for the rest). */
export class AdmExit extends Error {
  constructor(
    readonly code: number,
    readonly stderr = "",
    readonly stdout = "",
  ) {
    super(stderr || stdout || `exit ${code}`);
  }
}

/** ipvsadm's fail(2, ...): the message and a newline on stderr, exit 2. */
export function fail(message: string): never {
  throw new AdmExit(2, `${message}\n`);
}

/** ipvsadm's tryhelp_exit(argv[0], -1). */
export function tryHelp(program: string): never {
  throw new AdmExit(255, `Try \`${program} -h' or '${program} --help' for more information.\n`);
}

// IPPROTO_* and the forwarding codes are the daemon's own (wire/fields.ts, service/tables.ts),
// under the names the listing code uses; the limits and defaults are service/limits.ts's.
export { FWD_LOCAL, FWD_MASQ, FWD_ROUTE, FWD_TUNNEL, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP };
// the service and tunnel flag bits of ipvsadm's own structures (IP_VS_SVC_F_*, IP_VS_TUNNEL_ENCAP_FLAG_*)
export const SVC_F_PERSISTENT = 0x1,
  SVC_F_ONEPACKET = 0x4,
  SVC_F_SCHED1 = 0x8,
  SVC_F_SCHED2 = 0x10,
  SVC_F_SCHED3 = 0x20;
export const TUN_FLAG_CSUM = 1,
  TUN_FLAG_REMCSUM = 2;
/** IP_VS_SCHEDNAME_MAXLEN - 1 characters of -s are kept. */
const SCHED_NAME_MAX = 15;
/** IP_VS_PENAME_MAXLEN characters of --pe are kept. */
const PE_NAME_MAX = 32;

// listing formats (FMT_*)
export const FMT_NUMERIC = 0x1,
  FMT_RULE = 0x2,
  FMT_STATS = 0x4,
  FMT_RATE = 0x8,
  FMT_THRESHOLDS = 0x10,
  FMT_PERSISTENTCONN = 0x20,
  FMT_NOSORT = 0x40,
  FMT_EXACT = 0x80,
  FMT_TUN_INFO = 0x100;

const SERVICE_ADDR = 1,
  SERVICE_PORT = 2;

/** The service part of a command line (ipvs_service_t). */
export interface SvcEntry {
  /** 0 until an address or -f sets it. */
  af: 0 | 4 | 6;
  protocol: number;
  /** Four big-endian words (IPv4 in the first). */
  addr: [number, number, number, number];
  port: number;
  fwmark: number;
  sched: string;
  flags: number;
  timeout: number;
  /** IPv4: the mask as an unsigned number; IPv6: a prefix length. */
  netmask: number;
  pe: string;
}

/** The real server part of a command line (ipvs_dest_t). */
export interface DestEntry {
  af: 0 | 4 | 6;
  addr: [number, number, number, number];
  port: number;
  fwd: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

/** A parsed, checked command line (struct ipvs_command_entry). */
export interface Entry {
  cmd: CmdName;
  svc: SvcEntry;
  dest: DestEntry;
  timeouts: { tcp: number; tcpfin: number; udp: number };
  daemonState: "master" | "backup" | null;
  /** --start-daemon's options (struct ipvs_daemon_user): 0 / "" mean the kernel's defaults. */
  daemon: { mcastInterface: string; syncId: number; syncMaxlen: number; mcastGroup: string; mcastPort: number; mcastTtl: number };
  /** Option classes given (OPT indices). */
  options: Set<number>;
  /** FMT_* bits. */
  format: number;
}

/** ipvsadm's parse_service: fills `svc` (af, addr, port) and returns SERVICE_* bits (0: refused). */
export function parseService(buf: string, svc: SvcEntry, names: NameDb): number {
  if (/^\d*$/.test(buf)) return 0; // str_is_digit: a bare number is no address
  let s = buf;
  let portText: string | null = null;
  if (s[0] === "[") {
    const close = s.indexOf("]");
    if (close < 0) return 0;
    if (s[close + 1] !== ":") return 0;
    portText = s.slice(close + 2);
    s = s.slice(1, close);
  }
  const v6 = inetPton6(s);
  if (v6) {
    svc.addr = v6;
    svc.af = 6;
    svc.netmask = 128;
  } else {
    // the IPv4 branch looks for the port again, inside what the brackets held
    const colon = s.lastIndexOf(":");
    portText = colon >= 0 ? s.slice(colon + 1) : null;
    if (colon >= 0) s = s.slice(0, colon);
    const v4 = inetAton(s) ?? names.hostToAddr(s);
    if (v4 === null) return 0;
    svc.addr = [v4 | 0, 0, 0, 0];
    svc.af = 4;
  }
  let result = SERVICE_ADDR;
  if (portText !== null) {
    result |= SERVICE_PORT;
    let p = stringToNumber(portText, 0, 65535);
    if (p === -1) p = names.serviceToPort(portText, svc.protocol);
    if (p === -1) return 0;
    svc.port = p;
  }
  return result;
}

function parseTimeout(arg: string | null, min: number, max: number): number {
  if (arg === null) return DEFAULT_PERSISTENT_TIMEOUT_SEC;
  const v = stringToNumber(arg, min, max);
  if (v === -1) fail(`invalid timeout value \`${arg}' specified`);
  return v;
}

function parseFwmark(arg: string): number {
  const r = strtol(arg, 10);
  // strtol into an unsigned long: "-1" wraps to ULONG_MAX and is refused as > UINT_MAX
  if (r.end === 0 || r.end !== arg.length || r.value <= 0n || r.value > 0xffffffffn) fail(`invalid fwmark value \`${arg}' specified`);
  return Number(r.value);
}

function parseSchedFlags(sched: string, arg: string): number {
  const s = sched || DEFAULT_SCHEDULER;
  let flags = 0;
  for (const f of arg.split(",").filter((x) => x !== "")) {
    if (f === "flag-1") flags |= SVC_F_SCHED1;
    else if (f === "flag-2") flags |= SVC_F_SCHED2;
    else if (f === "flag-3") flags |= SVC_F_SCHED3;
    else if (f === "sh-fallback" || f === "sh-port" || f === "mh-fallback" || f === "mh-port") {
      flags |= f.endsWith("fallback") ? SVC_F_SCHED1 : SVC_F_SCHED2;
      if (s !== f.slice(0, 2)) fail(`incompatible scheduler flag \`${f}'`);
    } else {
      fail(`invalid scheduler flag \`${f}'`);
    }
  }
  return flags;
}

function setOption(options: Set<number>, opt: number): void {
  if (options.has(opt)) fail(`multiple '${OPT_NAMES[opt]}' options specified`);
  options.add(opt);
}

/** Check the options against the command's legality row (generic_opt_check). */
function genericOptCheck(cmd: CmdName, options: Set<number>): void {
  const row = LEGALITY[cmd];
  let last = -1;
  for (let j = 0; j < OPT_NAMES.length; j++) {
    const rule = row[j];
    if (!options.has(j)) {
      if (rule === "+") fail(`You need to supply the '${OPT_NAMES[j]}' option for the '${cmd}' command`);
    } else {
      if (rule === "x") fail(`Illegal '${OPT_NAMES[j]}' option with the '${cmd}' command`);
      if (rule === "1") {
        if (last < 0) last = j;
        else fail(`The option '${OPT_NAMES[j]}' conflicts with the '${OPT_NAMES[last]}' option in the '${cmd}' command`);
      }
    }
  }
}

/** Check tunnel options against the tunnel type (tunnel_opt_check). */
function tunnelOptCheck(tunType: number, options: Set<number>): void {
  const row = TUN_LEGALITY[tunType];
  let last = -1;
  for (let j = 0; j < TUN_OPTS.length; j++) {
    const k = TUN_OPTS[j];
    if (!options.has(k)) {
      if (row[j] === "+") fail(`You need to supply the '${OPT_NAMES[k]}' option for the '${TUN_NAMES[tunType]}' tunnel type`);
    } else {
      if (row[j] === "x") fail(`Illegal '${OPT_NAMES[k]}' option with the '${TUN_NAMES[tunType]}' tunnel type`);
      if (row[j] === "1") {
        if (last < 0) last = k;
        else fail(`The option '${OPT_NAMES[k]}' conflicts with the '${OPT_NAMES[last]}' option in the '${TUN_NAMES[tunType]}' tunnel type`);
      }
    }
  }
}

function emptyEntry(cmd: CmdName): Entry {
  return {
    cmd,
    svc: { af: 0, protocol: 0, addr: [0, 0, 0, 0], port: 0, fwmark: 0, sched: "", flags: 0, timeout: 0, netmask: 0xffffffff, pe: "" },
    // ipvsadm's defaults: weight 1, direct routing, ipip, no thresholds
    dest: { af: 0, addr: [0, 0, 0, 0], port: 0, fwd: FWD_ROUTE, weight: DEFAULT_WEIGHT, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0 },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
    daemonState: null,
    daemon: { mcastInterface: "", syncId: 0, syncMaxlen: 0, mcastGroup: "", mcastPort: 0, mcastTtl: 0 },
    options: new Set(),
    format: 0,
  };
}

/**
 * Parse one ipvsadm command line (without the program name) and run every check ipvsadm runs
 * before talking to the kernel. @throws AdmExit with ipvsadm's message and exit code.
 */
export function parseCommand(argv: string[], program: string, names: NameDb): Entry {
  const popt = new Popt(argv);
  const first = popt.next();
  if (first.kind !== "opt") tryHelp(program);
  const tag = first.def.tag;
  if (tag === "h") throw new AdmExit(0, "", usageText(program));
  if (tag === "v") throw new AdmExit(0, "", `${VERSION_LINE}\n`);
  const cmd = COMMAND_TAGS[tag];
  if (!cmd) tryHelp(program);
  const ce = emptyEntry(cmd);
  if (cmd === "start-daemon" || cmd === "stop-daemon") {
    if (first.arg === "master" || first.arg === "backup") ce.daemonState = first.arg;
    else fail(cmd === "start-daemon" ? "illegal start-daemon parameter specified" : "illegal start_daemon specified");
  }
  const { svc, dest, options } = ce;
  let schedFlagsArg = "";

  for (;;) {
    const r = popt.next();
    if (r.kind === "end") break;
    if (r.kind === "error") {
      // parse_options returns -1: ipvsadm prints popt's words and exits 255
      throw new AdmExit(255, `${r.word}: ${POPT_ERRORS[r.error]}\n`);
    }
    const arg = r.arg ?? "";
    switch (r.def.tag) {
      case "t":
      case "u":
      case "sctp-service": {
        setOption(options, OPT["service-address"]);
        svc.protocol = r.def.tag === "t" ? IPPROTO_TCP : r.def.tag === "u" ? IPPROTO_UDP : IPPROTO_SCTP;
        if (!(parseService(arg, svc, names) & SERVICE_ADDR)) fail("illegal virtual server address[:port] specified");
        break;
      }
      case "f":
        setOption(options, OPT["service-address"]);
        // placeholder family and protocol, as ipvsadm sets them
        svc.af = 4;
        svc.protocol = IPPROTO_TCP;
        svc.fwmark = parseFwmark(arg);
        break;
      case "s":
        setOption(options, OPT.scheduler);
        svc.sched = arg.slice(0, SCHED_NAME_MAX);
        break;
      case "p":
        setOption(options, OPT.persistent);
        svc.flags |= SVC_F_PERSISTENT;
        svc.timeout = parseTimeout(r.arg, 1, MAX_TIMEOUT_SEC);
        break;
      case "M":
        setOption(options, OPT.netmask);
        if (svc.af !== 6) {
          const m = inetAton(arg) ?? names.hostToAddr(arg);
          if (m === null) fail("illegal virtual server persistent mask specified");
          svc.netmask = m >>> 0;
        } else {
          svc.netmask = atoi(arg);
          if (svc.netmask < 1 || svc.netmask > 128) fail("illegal ipv6 netmask specified");
        }
        break;
      case "r": {
        setOption(options, OPT["real-server"]);
        // parsed into a copy of the service: the port name is looked up with its protocol
        const t: SvcEntry = { ...svc, addr: [...svc.addr] as SvcEntry["addr"] };
        const parsed = parseService(arg, t, names);
        dest.af = t.af;
        dest.addr = t.addr;
        dest.port = t.port;
        if (!(parsed & SERVICE_ADDR)) fail("illegal real server address[:port] specified");
        if (parsed === SERVICE_ADDR) dest.port = svc.port;
        break;
      }
      case "i":
        setOption(options, OPT["forwarding-method"]);
        dest.fwd = FWD_TUNNEL;
        break;
      case "g":
        setOption(options, OPT["forwarding-method"]);
        dest.fwd = FWD_ROUTE;
        break;
      case "m":
        setOption(options, OPT["forwarding-method"]);
        dest.fwd = FWD_MASQ;
        break;
      case "w":
        setOption(options, OPT.weight);
        // ipvsadm 1.31 as Debian ships it takes 0..INT_MAX (the guest accepts 65536)
        dest.weight = stringToNumber(arg, 0, MAX_WEIGHT);
        if (dest.weight === -1) fail("illegal weight specified");
        break;
      case "x":
        setOption(options, OPT["u-threshold"]);
        dest.uThreshold = stringToNumber(arg, 0, MAX_WEIGHT);
        if (dest.uThreshold === -1) fail("illegal u_threshold specified");
        break;
      case "y":
        setOption(options, OPT["l-threshold"]);
        dest.lThreshold = stringToNumber(arg, 0, MAX_WEIGHT);
        if (dest.lThreshold === -1) fail("illegal l_threshold specified");
        break;
      case "c":
        setOption(options, OPT.connection);
        break;
      case "n":
        setOption(options, OPT.numeric);
        ce.format |= FMT_NUMERIC;
        break;
      case "mcast-interface":
        setOption(options, OPT["mcast-interface"]);
        // IP_VS_IFNAME_MAXLEN 16: strncpy'd into the 16-byte field
        ce.daemon.mcastInterface = arg.slice(0, 15);
        break;
      case "syncid":
        setOption(options, OPT.syncid);
        if (stringToNumber(arg, 0, 255) === -1) fail("illegal syncid specified");
        ce.daemon.syncId = stringToNumber(arg, 0, 255);
        break;
      case "timeout":
        setOption(options, OPT.timeout);
        break;
      case "daemon":
        setOption(options, OPT.daemon);
        break;
      case "stats":
        setOption(options, OPT.stats);
        ce.format |= FMT_STATS;
        break;
      case "rate":
        setOption(options, OPT.rate);
        ce.format |= FMT_RATE;
        break;
      case "thresholds":
        setOption(options, OPT.thresholds);
        ce.format |= FMT_THRESHOLDS;
        break;
      case "persistent-conn":
        setOption(options, OPT["persistent-conn"]);
        ce.format |= FMT_PERSISTENTCONN;
        break;
      case "nosort":
        setOption(options, OPT.nosort);
        ce.format |= FMT_NOSORT;
        break;
      case "sort":
        break; // the default; accepted for compatibility
      case "X":
        setOption(options, OPT.exact);
        ce.format |= FMT_EXACT;
        break;
      case "6":
        if (!svc.fwmark) fail("-6 used before -f\n");
        svc.af = 6;
        svc.netmask = 128;
        break;
      case "o":
        setOption(options, OPT.ops);
        svc.flags |= SVC_F_ONEPACKET;
        break;
      case "pe":
        setOption(options, OPT.pe);
        svc.pe = arg.slice(0, PE_NAME_MAX);
        break;
      case "b":
        setOption(options, OPT["sched-flags"]);
        schedFlagsArg = arg.slice(0, 127);
        break;
      case "mcast-group": {
        setOption(options, OPT["mcast-group"]);
        const v6 = arg.includes(":");
        // IN6_IS_ADDR_MULTICAST / IN_MULTICAST: ff00::/8, 224.0.0.0/4
        const ok = v6 ? (inetPton6(arg)?.[0] ?? 0) >>> 24 === 0xff : (inetPton4(arg) ?? 0) >>> 28 === 0xe;
        if (!ok) fail(`invalid IPv${v6 ? 6 : 4} mcast-group \`${arg}'`);
        ce.daemon.mcastGroup = arg;
        break;
      }
      case "mcast-port":
        setOption(options, OPT["mcast-port"]);
        if (stringToNumber(arg, 1, 65535) === -1) fail("illegal mcast-port specified");
        ce.daemon.mcastPort = stringToNumber(arg, 1, 65535);
        break;
      case "mcast-ttl":
        setOption(options, OPT["mcast-ttl"]);
        if (stringToNumber(arg, 1, 255) === -1) fail("illegal mcast-ttl specified");
        ce.daemon.mcastTtl = stringToNumber(arg, 1, 255);
        break;
      case "sync-maxlen":
        setOption(options, OPT["sync-maxlen"]);
        if (stringToNumber(arg, 1, 65535 - 20 - 8) === -1) fail("illegal sync-maxlen specified");
        ce.daemon.syncMaxlen = stringToNumber(arg, 1, 65535 - 20 - 8);
        break;
      case "tun-info":
        setOption(options, OPT["tun-info"]);
        ce.format |= FMT_TUN_INFO;
        break;
      case "tun-type": {
        setOption(options, OPT["tun-type"]);
        const t = (TUN_NAMES as readonly string[]).indexOf(arg);
        if (t < 0) fail("illegal tunnel type specified");
        dest.tunType = t;
        break;
      }
      case "tun-port": {
        setOption(options, OPT["tun-port"]);
        const p = stringToNumber(arg, 1, 65535);
        if (p === -1) fail("illegal tunnel port specified");
        dest.tunPort = p;
        break;
      }
      case "tun-nocsum":
        setOption(options, OPT["tun-nocsum"]);
        break;
      case "tun-csum":
        setOption(options, OPT["tun-csum"]);
        dest.tunFlags |= TUN_FLAG_CSUM;
        break;
      case "tun-remcsum":
        setOption(options, OPT["tun-remcsum"]);
        dest.tunFlags |= TUN_FLAG_REMCSUM;
        break;
      default:
        // a second command, -h or -v after the command
        fail(`invalid option \`${r.word}'`);
    }
  }

  if (cmd === "set") {
    const a = popt.arg(),
      b = popt.arg(),
      c = popt.arg();
    if (a === null || b === null || c === null) fail("--set option requires 3 timeout values");
    ce.timeouts = { tcp: parseTimeout(a, 0, MAX_TIMEOUT_SEC), tcpfin: parseTimeout(b, 0, MAX_TIMEOUT_SEC), udp: parseTimeout(c, 0, MAX_TIMEOUT_SEC) };
  }
  const extra = popt.arg();
  if (extra !== null) fail(`unexpected argument ${extra}`);
  if (schedFlagsArg) {
    svc.flags &= ~(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
    svc.flags |= parseSchedFlags(svc.sched, schedFlagsArg);
  }

  // ---- process_options ----
  genericOptCheck(cmd, options);
  if (cmd === "add-service" || cmd === "edit-service") {
    if (!svc.fwmark && !svc.port && !(svc.flags & SVC_F_PERSISTENT)) fail("Zero port specified for non-persistent service");
    if (svc.flags & SVC_F_ONEPACKET && !svc.fwmark && svc.protocol !== IPPROTO_UDP) fail("One-Packet Scheduling is only for UDP virtual services");
    if (!svc.sched) svc.sched = DEFAULT_SCHEDULER;
  }
  if (cmd === "add-server" || cmd === "edit-server") {
    // DR and tunnels keep the virtual port (not for fwmark services)
    if (!svc.fwmark && (dest.fwd === FWD_TUNNEL || dest.fwd === FWD_ROUTE)) dest.port = svc.port;
    if (dest.af !== svc.af && dest.fwd !== FWD_TUNNEL) fail("Different address family is allowed only for tunneling servers");
    const tunOpts = [OPT["tun-type"], OPT["tun-port"], OPT["tun-nocsum"], OPT["tun-csum"], OPT["tun-remcsum"]];
    if (tunOpts.some((o) => options.has(o)) && dest.fwd !== FWD_TUNNEL) fail("Tunnel options conflict with forward method");
    tunnelOptCheck(dest.tunType, options);
  }
  if (cmd === "list") {
    const has = (n: (typeof OPT_NAMES)[number]) => options.has(OPT[n]);
    if (
      ((has("connection") || has("timeout") || has("daemon")) && (has("stats") || has("rate") || has("thresholds"))) ||
      ((has("timeout") || has("daemon")) && has("persistent-conn"))
    ) {
      fail("options conflicts in the list command");
    }
  }
  return ce;
}
