/**
 * ipvsadm 1.31's command line as data: the options popt knows (long name, short name, kind of
 * argument), the commands, and which options each command requires, allows or refuses
 * (`commands_v_options` in ipvsadm.c) and the same for tunnel types
 * (`tunnel_types_v_options`). The order of OPT_NAMES is ipvsadm's OPTC_* order: checks walk
 * it in that order, so the first offending option is the one ipvsadm names.
 */

/** Option classes (ipvsadm OPTC_*), in ipvsadm's order. */
export const OPT_NAMES = [
  "numeric",
  "connection",
  "service-address",
  "scheduler",
  "persistent",
  "netmask",
  "real-server",
  "forwarding-method",
  "weight",
  "u-threshold",
  "l-threshold",
  "mcast-interface",
  "timeout",
  "daemon",
  "stats",
  "rate",
  "thresholds",
  "persistent-conn",
  "nosort",
  "syncid",
  "exact",
  "ops",
  "pe",
  "sched-flags",
  "mcast-group",
  "mcast-port",
  "mcast-ttl",
  "sync-maxlen",
  "tun-info",
  "tun-type",
  "tun-port",
  "tun-nocsum",
  "tun-csum",
  "tun-remcsum",
] as const;
/** An option class name. */
export type OptName = (typeof OPT_NAMES)[number];

/** Index of an option class in OPT_NAMES. */
export const OPT = Object.fromEntries(OPT_NAMES.map((n, i) => [n, i])) as Record<OptName, number>;

/** Commands (ipvsadm CMD_*), named as ipvsadm's error messages name them. */
export const CMD_NAMES = [
  "add-service",
  "edit-service",
  "delete-service",
  "flush",
  "list",
  "add-server",
  "delete-server",
  "edit-server",
  "set",
  "start-daemon",
  "stop-daemon",
  "restore",
  "save",
  "zero",
] as const;
/** A command name. */
export type CmdName = (typeof CMD_NAMES)[number];

/**
 * Legality of each option class (columns, OPT_NAMES order) with each command:
 * '+' required, 'x' refused, '1' at most one of the '1' options, '.' optional.
 */
export const LEGALITY: Record<CmdName, string> = {
  //               -n -c svc -s -p -M -r fwd -w -x -y mc tmo dmn st rt thr pc srt sid ex ops pe -b grp prt ttl len tinf type tprt nocs csum remc
  "add-service": "xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx",
  "edit-service": "xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx",
  "delete-service": "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  flush: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  list: ".11xxxxxxxxx11.......xxxxxxx.xxxxx",
  "add-server": "xx+xxx+....xxxxxxxxxxxxxxxxxx.....",
  "delete-server": "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
  "edit-server": "xx+xxx+....xxxxxxxxxxxxxxxxxx.....",
  set: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  "start-daemon": "xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx",
  "stop-daemon": "xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx",
  restore: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  save: ".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  zero: "xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
};

/** Tunnel types by ipvsadm's number (IP_VS_CONN_F_TUNNEL_TYPE_*). */
export const TUN_NAMES = ["ipip", "gue", "gre"] as const;
/** Tunnel options checked per tunnel type, in ipvsadm's tunopts order. */
export const TUN_OPTS = [OPT["tun-port"], OPT["tun-nocsum"], OPT["tun-csum"], OPT["tun-remcsum"]];
/** Legality of TUN_OPTS per tunnel type (same key as LEGALITY). */
export const TUN_LEGALITY = ["xxxx", "+111", "x11x"];

/** How a popt option takes its argument. */
export type ArgKind = "none" | "required" | "optional";

/** One popt option. */
export interface OptionDef {
  long: string;
  short?: string;
  arg: ArgKind;
  /** What parse.ts switches on: the short name, or a tag for long-only options. */
  tag: string;
}

/** The popt option table of ipvsadm 1.31 (parse_options). */
export const OPTION_TABLE: OptionDef[] = [
  { long: "add-service", short: "A", arg: "none", tag: "A" },
  { long: "edit-service", short: "E", arg: "none", tag: "E" },
  { long: "delete-service", short: "D", arg: "none", tag: "D" },
  { long: "clear", short: "C", arg: "none", tag: "C" },
  { long: "list", short: "L", arg: "none", tag: "L" },
  { long: "list", short: "l", arg: "none", tag: "l" },
  { long: "zero", short: "Z", arg: "none", tag: "Z" },
  { long: "add-server", short: "a", arg: "none", tag: "a" },
  { long: "edit-server", short: "e", arg: "none", tag: "e" },
  { long: "delete-server", short: "d", arg: "none", tag: "d" },
  { long: "set", arg: "none", tag: "set" },
  { long: "help", short: "h", arg: "none", tag: "h" },
  { long: "version", short: "v", arg: "none", tag: "v" },
  { long: "restore", short: "R", arg: "none", tag: "R" },
  { long: "save", short: "S", arg: "none", tag: "S" },
  { long: "start-daemon", arg: "required", tag: "start-daemon" },
  { long: "stop-daemon", arg: "required", tag: "stop-daemon" },
  { long: "tcp-service", short: "t", arg: "required", tag: "t" },
  { long: "udp-service", short: "u", arg: "required", tag: "u" },
  { long: "sctp-service", arg: "required", tag: "sctp-service" },
  { long: "fwmark-service", short: "f", arg: "required", tag: "f" },
  { long: "scheduler", short: "s", arg: "required", tag: "s" },
  { long: "persistent", short: "p", arg: "optional", tag: "p" },
  { long: "netmask", short: "M", arg: "required", tag: "M" },
  { long: "real-server", short: "r", arg: "required", tag: "r" },
  { long: "masquerading", short: "m", arg: "none", tag: "m" },
  { long: "ipip", short: "i", arg: "none", tag: "i" },
  { long: "gatewaying", short: "g", arg: "none", tag: "g" },
  { long: "weight", short: "w", arg: "required", tag: "w" },
  { long: "u-threshold", short: "x", arg: "required", tag: "x" },
  { long: "l-threshold", short: "y", arg: "required", tag: "y" },
  { long: "numeric", short: "n", arg: "none", tag: "n" },
  { long: "connection", short: "c", arg: "none", tag: "c" },
  { long: "mcast-interface", arg: "required", tag: "mcast-interface" },
  { long: "syncid", arg: "required", tag: "syncid" },
  { long: "timeout", arg: "none", tag: "timeout" },
  { long: "daemon", arg: "none", tag: "daemon" },
  { long: "stats", arg: "none", tag: "stats" },
  { long: "rate", arg: "none", tag: "rate" },
  { long: "thresholds", arg: "none", tag: "thresholds" },
  { long: "persistent-conn", arg: "none", tag: "persistent-conn" },
  { long: "nosort", arg: "none", tag: "nosort" },
  { long: "sort", arg: "none", tag: "sort" },
  { long: "exact", short: "X", arg: "none", tag: "X" },
  { long: "ipv6", short: "6", arg: "none", tag: "6" },
  { long: "ops", short: "o", arg: "none", tag: "o" },
  { long: "pe", arg: "required", tag: "pe" },
  { long: "sched-flags", short: "b", arg: "required", tag: "b" },
  { long: "mcast-group", arg: "required", tag: "mcast-group" },
  { long: "mcast-port", arg: "required", tag: "mcast-port" },
  { long: "mcast-ttl", arg: "required", tag: "mcast-ttl" },
  { long: "sync-maxlen", arg: "required", tag: "sync-maxlen" },
  { long: "tun-info", arg: "none", tag: "tun-info" },
  { long: "tun-type", arg: "required", tag: "tun-type" },
  { long: "tun-port", arg: "required", tag: "tun-port" },
  { long: "tun-nocsum", arg: "none", tag: "tun-nocsum" },
  { long: "tun-csum", arg: "none", tag: "tun-csum" },
  { long: "tun-remcsum", arg: "none", tag: "tun-remcsum" },
];

/** The first option of an invocation must be one of these (parse_options' first switch). */
export const COMMAND_TAGS: Record<string, CmdName> = {
  A: "add-service",
  E: "edit-service",
  D: "delete-service",
  a: "add-server",
  e: "edit-server",
  d: "delete-server",
  C: "flush",
  L: "list",
  l: "list",
  Z: "zero",
  set: "set",
  R: "restore",
  S: "save",
  "start-daemon": "start-daemon",
  "stop-daemon": "stop-daemon",
};
