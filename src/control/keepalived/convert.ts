/**
 * keepalived.conf statements (read.ts) to xvs's own config document: the `virtual_server`
 * blocks become services (schemas.ts ServiceConfig) with their real servers, plus the health
 * settings of each service (`health`, health-schemas.ts ServiceHealth) and the checkers of
 * each real server (`checkers`, `inhibit_on_failure`: health-schemas.ts destHealthFields).
 *
 * keepalived's rules kept here (keepalived/check/check_parser.c, check_data.c, check_api.c):
 * - keyword aliases: lb_algo = lvs_sched, lb_kind = lvs_method, nb_get_retry = retry;
 * - defaults: protocol UDP when none is given (check_data.c: "the kernel defaults to UDP, so set
 *   it explicitly"; logged as a warning here as keepalived does), forwarding NAT, scheduler wlc,
 *   weight 1, persistence_timeout without a value or with only persistence_granularity 360 s;
 * - retry, delay_before_retry, warmup, delay_loop, connect_timeout, virtualhost and
 *   inhibit_on_failure written on a virtual server or a real server are inherited by every
 *   checker below it that does not set its own (the converter writes them into each checker);
 * - `virtual_server group NAME` takes its addresses from `virtual_server_group NAME`, where
 *   `A.B.C.X-Y PORT` is the range of last bytes X..Y (IPv6: of the last 16-bit group, hex): each
 *   address becomes a service of its own with the group's options and real servers.
 *
 * `global_defs` and the VRRP side (`vrrp_*`, `static_*`, `track_*`, `garp_group`,
 * `linkbeat_interfaces`) are left to keepalived with one log line each. Everything else xvs does
 * not implement is an error naming file and line: nothing is silently ignored. Firewall-mark
 * virtual servers are refused (schemas.ts FWMARK_UNSUPPORTED_MESSAGE).
 */
import type { z } from "zod";
import { log } from "../../log.ts";
import { type IpAddr, parseIp, ipText } from "../../service/addr.ts";
import { schedulerByName } from "../../sched/registry.ts";
import type { CheckerT, ServiceHealthT, StatusCodeT } from "../../config/health.ts";
import { Checker, ServiceHealth } from "../health-schemas.ts";
import {
  DestSpec,
  type DestSpecT,
  FWMARK_UNSUPPORTED_MESSAGE,
  SCHEDULERS,
  ServiceSpec,
  type ServiceSpecT,
  CONFIG_VERSION,
  DEFAULT_PERSISTENT_TIMEOUT_SEC,
} from "../schemas.ts";
import { ConfError, type Stmt } from "./read.ts";

/** A real server as converted: its table spec, its checkers, inhibit_on_failure. */
export type KaDest = DestSpecT & { checkers?: CheckerT[]; inhibit_on_failure?: boolean };
/** A service by address (the only kind xvs takes: fwmark services are refused). */
export type AddrServiceSpecT = Extract<ServiceSpecT, { address: string }>;
/** A service as converted: its table spec, its health settings, its real servers (file order). */
export type KaService = AddrServiceSpecT & { health: ServiceHealthT; dests: KaDest[] };
/** The converted document: xvs's config document with health settings and checkers. */
export interface KaDoc {
  version: typeof CONFIG_VERSION;
  services: KaService[];
}

/** Root blocks left to the keepalived that keeps running next to xvs (VRRP side, global settings). */
const SKIPPED_ROOT = /^(global_defs|vrrp_.*|static_ipaddress|static_routes|static_rules|track_file|track_process|garp_group|linkbeat_interfaces)$/;

const fail = (s: Stmt, why: string): never => {
  throw new ConfError(s.file, s.line, why);
};
const unsupported = (s: Stmt, where: string, why = "xvs does not implement it"): never => fail(s, `'${s.keyword}' in ${where} is not supported: ${why}`);

function noBlock(s: Stmt): void {
  if (s.block) fail(s, `'${s.keyword}' takes no block`);
}
function needBlock(s: Stmt): Stmt[] {
  if (!s.block) fail(s, `'${s.keyword}' needs a block { ... }`);
  return s.block!;
}
function args(s: Stmt, min: number, max: number): string[] {
  noBlock(s);
  if (s.args.length < min || s.args.length > max) {
    fail(
      s,
      min === max
        ? `'${s.keyword}' takes ${min} value${min === 1 ? "" : "s"}, not ${s.args.length}`
        : `'${s.keyword}' takes ${min} to ${max} values, not ${s.args.length}`,
    );
  }
  return s.args;
}
function one(s: Stmt): string {
  return args(s, 1, 1)[0];
}
function int(s: Stmt, min: number, max: number, text = one(s)): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) fail(s, `'${s.keyword}': '${text}' is not a whole number in ${min}..${max}`);
  return n;
}
/** A time in seconds; keepalived's read_timer takes decimals. */
function seconds(s: Stmt, allowZero = false): number {
  const text = one(s);
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n > 86400 || (!allowZero && n === 0)) fail(s, `'${s.keyword}': '${text}' is not a time in seconds (0 < t <= 86400)`);
  return n;
}
/** A flag: no value means true; keepalived's check_true_false words otherwise. */
function flag(s: Stmt): boolean {
  const a = args(s, 0, 1);
  if (a.length === 0) return true;
  const v = a[0].toLowerCase();
  if (["true", "on", "yes"].includes(v)) return true;
  if (["false", "off", "no"].includes(v)) return false;
  return fail(s, `'${s.keyword}': '${a[0]}' is not true/false/on/off/yes/no`);
}
function address(s: Stmt, text: string): string {
  const a = parseIp(text);
  if (!a) fail(s, `'${text}' is not an IPv4 or IPv6 address`);
  return ipText(a!);
}
function port(s: Stmt, text: string): number {
  return int(s, 0, 65535, text);
}

/** Check a value with a zod schema; the first issue becomes an error at `s`. */
function check<S extends z.ZodType>(schema: S, value: unknown, s: Stmt, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    fail(s, `${what}: ${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`);
  }
  return r.data as z.output<S>;
}

const FORWARD_OF: Record<string, DestSpecT["forward"]> = { NAT: "masq", DR: "route", TUN: "tunnel" };

/** `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]` (keepalived 2.2). */
function forwarding(s: Stmt): { forward: DestSpecT["forward"]; tunnel?: DestSpecT["tunnel"] } {
  noBlock(s);
  const [method, ...rest] = s.args;
  const forward = method === undefined ? undefined : FORWARD_OF[method];
  if (!forward) return fail(s, `'${s.keyword}': '${method ?? ""}' is not NAT, DR or TUN`);
  if (rest.length === 0) return { forward };
  if (forward !== "tunnel") return fail(s, `'${s.keyword} ${method}' takes no options`);
  const tunnel: Record<string, unknown> = {};
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i];
    if (w === "type" && rest[i + 1] !== undefined) tunnel.type = rest[++i];
    else if (w === "port" && rest[i + 1] !== undefined) tunnel.port = port(s, rest[++i]);
    else if (w === "nocsum" || w === "csum" || w === "remcsum") tunnel.csum = w;
    else fail(s, `'${s.keyword} TUN': unknown option '${w}'`);
  }
  return { forward, tunnel: tunnel as DestSpecT["tunnel"] };
}

/** Settings a virtual server or real server passes down to its checkers when they set none. */
interface Inherited {
  retry?: number;
  delay_before_retry?: number;
  warmup?: number;
  delay_loop?: number;
  connect_timeout?: number;
  virtualhost?: string;
  inhibit?: boolean;
}

/** Keywords every checker, real server and virtual server understand the same way. */
function inheritedKeyword(s: Stmt, into: Inherited): boolean {
  switch (s.keyword) {
    case "retry":
    case "nb_get_retry":
      into.retry = int(s, 0, 1000);
      return true;
    case "delay_before_retry":
      into.delay_before_retry = seconds(s);
      return true;
    case "warmup":
      into.warmup = seconds(s, true);
      return true;
    case "delay_loop":
      into.delay_loop = seconds(s);
      return true;
    case "connect_timeout":
      into.connect_timeout = seconds(s);
      return true;
    case "virtualhost":
      into.virtualhost = one(s);
      return true;
    case "inhibit_on_failure":
      into.inhibit = flag(s);
      return true;
    default:
      return false;
  }
}

const CHECKER_KIND: Record<string, CheckerT["kind"]> = {
  TCP_CHECK: "tcp",
  HTTP_GET: "http",
  SSL_GET: "ssl",
  UDP_CHECK: "udp",
  DNS_CHECK: "dns",
  MISC_CHECK: "misc",
};
const OTHER_CHECKERS = new Set(["SMTP_CHECK", "BFD_CHECK", "PING_CHECK", "FILE_CHECK"]);

/** `status_code 200-299 301`. */
function statusCodes(s: Stmt): StatusCodeT[] {
  args(s, 1, 64);
  return s.args.map((w) => {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(w);
    if (!m) return fail(s, `'status_code': '${w}' is not a status code or a range of them (200-299)`);
    return m[2] === undefined ? Number(m[1]) : { from: Number(m[1]), to: Number(m[2]) };
  });
}

/** One `url { }` block; a url's own virtualhost is lifted to the checker (xvs has one per checker). */
function url(b: Stmt, checker: Record<string, unknown>): Record<string, unknown> {
  const u: Record<string, unknown> = {};
  for (const s of needBlock(b)) {
    switch (s.keyword) {
      case "path":
        u.path = one(s);
        break;
      case "digest":
        u.digest = one(s);
        break;
      case "status_code":
        u.status_code = statusCodes(s);
        break;
      case "virtualhost": {
        const v = one(s);
        if (checker.virtualhost !== undefined && checker.virtualhost !== v)
          fail(s, "'virtualhost' differs between urls of one checker: xvs sends one Host per checker (use one checker per virtual host)");
        checker.virtualhost = v;
        break;
      }
      case "regex":
      case "regex_no_match":
      case "regex_options":
      case "regex_stack":
      case "regex_min_offset":
      case "regex_max_offset":
        unsupported(s, "url", "xvs checks the status code and the MD5 digest of the body, not regular expressions");
        break;
      default:
        fail(s, `unknown keyword '${s.keyword}' in url`);
    }
  }
  if (u.path === undefined) fail(b, "url needs a path");
  return u;
}

/** One checker block of a real server, with what the real server and virtual server pass down. */
function checker(b: Stmt, kind: CheckerT["kind"], up: Inherited[]): CheckerT {
  const c: Record<string, unknown> = { kind };
  const own: Inherited = {};
  const urls: Record<string, unknown>[] = [];
  const conn = kind !== "misc"; // MISC_CHECK has no connection keywords (install_checker_common_keywords(false))
  for (const s of needBlock(b)) {
    if (s.keyword !== "inhibit_on_failure" && inheritedKeyword(s, own)) {
      if (!conn && s.keyword === "connect_timeout") fail(s, `unknown keyword 'connect_timeout' in ${b.keyword} (use misc_timeout)`);
      if (s.keyword === "virtualhost" && kind !== "http" && kind !== "ssl") fail(s, `unknown keyword 'virtualhost' in ${b.keyword}`);
      continue;
    }
    switch (`${conn ? "conn:" : ""}${s.keyword}`) {
      case "conn:connect_ip":
        c.connect_ip = address(s, one(s));
        continue;
      case "conn:connect_port":
        c.connect_port = port(s, one(s));
        continue;
      case "conn:bindto":
        c.bindto = address(s, one(s));
        continue;
      case "conn:bind_port":
        c.bind_port = port(s, one(s));
        continue;
      case "conn:bind_if":
      case "conn:fwmark":
        unsupported(s, b.keyword);
        continue;
      case "alpha":
      case `conn:alpha`:
        unsupported(s, b.keyword, "xvs has alpha per virtual server only");
        continue;
      case "log_all_failures":
      case "conn:log_all_failures":
        unsupported(s, b.keyword, "xvs logs every state change, not every failure");
        continue;
    }
    if (kind === "http" || kind === "ssl") {
      switch (s.keyword) {
        case "url":
          urls.push(url(s, c));
          continue;
        case "http_protocol":
          c.http_protocol = one(s);
          continue;
        case "fast_recovery":
          unsupported(s, b.keyword);
          continue;
        case "enable_sni":
          if (kind === "ssl") {
            c.enable_sni = flag(s);
            continue;
          }
          break;
        case "sni_name":
          if (kind === "ssl") {
            c.sni_name = one(s);
            continue;
          }
          break;
      }
    } else if (kind === "udp") {
      switch (s.keyword) {
        case "payload":
          c.payload = one(s);
          continue;
        case "require_reply": {
          const a = args(s, 0, 1);
          c.require_reply = a.length === 0 ? true : a[0];
          continue;
        }
        case "min_reply_length":
          c.min_reply_length = int(s, 0, 65535);
          continue;
        case "max_reply_length":
          c.max_reply_length = int(s, 0, 65535);
          continue;
      }
    } else if (kind === "dns") {
      switch (s.keyword) {
        case "type":
          c.type = one(s).toUpperCase();
          continue;
        case "name":
          c.name = one(s);
          continue;
      }
    } else if (kind === "misc") {
      switch (s.keyword) {
        case "misc_path":
          noBlock(s);
          if (s.args.length === 0) fail(s, "'misc_path' needs a command");
          c.misc_path = s.args.join(" ");
          continue;
        case "misc_timeout":
          c.misc_timeout = seconds(s);
          continue;
        case "misc_dynamic":
          c.misc_dynamic = flag(s);
          continue;
        case "user":
          unsupported(s, b.keyword, "xvs runs check scripts as its own user");
          continue;
      }
    }
    fail(s, `unknown keyword '${s.keyword}' in ${b.keyword}`);
  }
  if (kind === "http" || kind === "ssl") {
    if (urls.length === 0) fail(b, `${b.keyword} needs at least one url { path ... }`);
    c.urls = urls;
  }
  // the checker's own value, else the real server's, else the virtual server's (check_api.c)
  const pick = <K extends keyof Inherited>(k: K): Inherited[K] => own[k] ?? up.find((u) => u[k] !== undefined)?.[k];
  for (const k of ["retry", "delay_before_retry", "warmup", "delay_loop", "connect_timeout"] as const) {
    const v = pick(k);
    if (v !== undefined && (conn || k !== "connect_timeout")) c[k] = v;
  }
  if (kind === "http" || kind === "ssl") {
    const vh = c.virtualhost ?? pick("virtualhost");
    if (vh !== undefined) c.virtualhost = vh;
  }
  return check(Checker, c, b, b.keyword);
}

/** One `real_server IP [PORT] { }` block. */
function realServer(b: Stmt, vs: { forward: DestSpecT["forward"]; tunnel?: DestSpecT["tunnel"]; inherited: Inherited }): KaDest {
  const a = args({ ...b, block: null }, 1, 2);
  const d: Record<string, unknown> = { address: address(b, a[0]), forward: vs.forward, ...(vs.tunnel ? { tunnel: vs.tunnel } : {}) };
  if (a[1] !== undefined) d.port = port(b, a[1]);
  const own: Inherited = {};
  const checkerBlocks: { s: Stmt; kind: CheckerT["kind"] }[] = [];
  for (const s of b.block ?? []) {
    if (inheritedKeyword(s, own)) continue;
    const kind = CHECKER_KIND[s.keyword];
    if (kind) {
      checkerBlocks.push({ s, kind });
      continue;
    }
    switch (s.keyword) {
      case "weight":
        d.weight = int(s, 0, 2147483647);
        continue;
      case "lvs_method":
      case "lb_kind": {
        const f = forwarding(s);
        d.forward = f.forward;
        if (f.tunnel) d.tunnel = f.tunnel;
        else delete d.tunnel;
        continue;
      }
      case "uthreshold":
        d.upperThreshold = int(s, 0, 2147483647);
        continue;
      case "lthreshold":
        d.lowerThreshold = int(s, 0, 2147483647);
        continue;
      case "alpha":
        unsupported(s, "real_server", "xvs has alpha per virtual server only");
        continue;
      case "notify_up":
      case "notify_down":
      case "smtp_alert":
        unsupported(s, "real_server", "xvs logs each state change; it runs no notify scripts and sends no mail");
        continue;
    }
    if (OTHER_CHECKERS.has(s.keyword)) unsupported(s, "real_server", "xvs implements TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK and MISC_CHECK");
    fail(s, `unknown keyword '${s.keyword}' in real_server`);
  }
  const spec = check(DestSpec, d, b, `real_server ${a.join(" ")}`) as KaDest;
  const checkers = checkerBlocks.map(({ s, kind }) => checker(s, kind, [own, vs.inherited]));
  if (checkers.length > 0) spec.checkers = checkers;
  const inhibit = own.inhibit ?? vs.inherited.inhibit;
  if (inhibit) spec.inhibit_on_failure = true;
  return spec;
}

/** `virtual_server_group NAME { IP[-LAST] PORT ... }`: the (address, port) pairs it names. */
function groupEntries(b: Stmt): { address: string; port: number }[] {
  const out: { address: string; port: number }[] = [];
  for (const s of needBlock(b)) {
    if (s.keyword === "fwmark") fail(s, `virtual_server_group ${b.args[0]}: fwmark entries: ${FWMARK_UNSUPPORTED_MESSAGE}`);
    const where = `virtual_server_group ${b.args[0]}`;
    noBlock(s);
    if (s.args.length > 1) fail(s, `${where}: an entry is 'IP[-LAST] [PORT]'`);
    const p = s.args.length === 1 ? port(s, s.args[0]) : 0;
    const m = /^(.*?)(?:-([0-9a-fA-F]+))?$/.exec(s.keyword)!;
    const first = parseIp(m[1]);
    if (!first) fail(s, `${where}: '${m[1]}' is not an IPv4 or IPv6 address`);
    if (m[2] === undefined) {
      out.push({ address: ipText(first!), port: p });
      continue;
    }
    // the range runs over the last byte (IPv4) or the last 16-bit group (IPv6, hex), as keepalived
    const v4 = first!.family === 4;
    const last = v4 ? Number(m[2]) : parseInt(m[2], 16);
    const words = [...first!.words];
    const lo = v4 ? words[0] & 0xff : words[3] & 0xffff;
    if (!(v4 ? /^\d{1,3}$/.test(m[2]) && last <= 255 : m[2].length <= 4) || last < lo) fail(s, `${where}: '${s.keyword}' is not a range up from ${m[1]}`);
    if (last - lo >= 256) fail(s, `${where}: '${s.keyword}' names more than 256 addresses`);
    for (let x = lo; x <= last; x++) {
      const w = [...words] as IpAddr["words"];
      if (v4) w[0] = (w[0] & ~0xff) | x;
      else w[3] = (w[3] & ~0xffff) | x;
      out.push({ address: ipText({ family: first!.family, words: w }), port: p });
    }
  }
  if (out.length === 0) fail(b, `virtual_server_group ${b.args[0]} has no entries`);
  return out;
}

/** One `virtual_server` block as services (one, or one per address of its group). */
function virtualServer(b: Stmt, groups: Map<string, { address: string; port: number }[]>): KaService[] {
  const a = b.args;
  if (a[0] === "fwmark") fail(b, `virtual_server fwmark ${a[1] ?? ""}: ${FWMARK_UNSUPPORTED_MESSAGE}`);
  let keys: { address: string; port: number }[];
  let name: string;
  if (a[0] === "group") {
    if (a.length !== 2) fail(b, "'virtual_server group' takes the name of a virtual_server_group");
    const g = groups.get(a[1]);
    if (!g) fail(b, `virtual_server group ${a[1]}: no virtual_server_group ${a[1]} is defined`);
    keys = g!;
    name = `virtual_server group ${a[1]}`;
  } else {
    if (a.length < 1 || a.length > 2) fail(b, "'virtual_server' takes IP PORT (or group NAME; fwmark is refused)");
    keys = [{ address: address(b, a[0]), port: a.length === 2 ? port(b, a[1]) : 0 }];
    name = `virtual_server ${a.join(" ")}`;
  }
  const svc: Record<string, unknown> = { schedFlags: [] };
  const health: Record<string, unknown> = {};
  const sorry: Record<string, unknown> = {};
  let sorryStmt: Stmt | null = null;
  let fwd: { forward: DestSpecT["forward"]; tunnel?: DestSpecT["tunnel"] } = { forward: "masq" };
  let family: 4 | 6 | null = null;
  const inherited: Inherited = {};
  const rsBlocks: Stmt[] = [];
  let timeout: number | undefined;
  let netmask: string | undefined;
  let protocolSet = false;
  for (const s of needBlock(b)) {
    if (s.keyword === "delay_loop") {
      health.delay_loop = seconds(s);
      continue;
    }
    if (inheritedKeyword(s, inherited)) continue;
    switch (s.keyword) {
      case "real_server":
        rsBlocks.push(s);
        continue;
      case "lb_algo":
      case "lvs_sched": {
        const v = one(s);
        if (!(SCHEDULERS as readonly string[]).includes(v) || !schedulerByName(v))
          fail(s, `'${s.keyword}': scheduler '${v}' is not one xvs implements (${SCHEDULERS.filter((x) => schedulerByName(x)).join(" ")})`);
        svc.scheduler = v;
        continue;
      }
      case "lb_kind":
      case "lvs_method":
        fwd = forwarding(s);
        continue;
      case "protocol": {
        const v = one(s).toLowerCase();
        if (v !== "tcp" && v !== "udp" && v !== "sctp") fail(s, `'protocol': '${s.args[0]}' is not TCP, UDP or SCTP`);
        svc.protocol = v;
        protocolSet = true;
        continue;
      }
      case "persistence_timeout": {
        const v = args(s, 0, 1);
        timeout = v.length === 0 ? DEFAULT_PERSISTENT_TIMEOUT_SEC : int(s, 1, 86400 * 31);
        continue;
      }
      case "persistence_granularity":
        netmask = one(s);
        continue;
      case "persistence_engine":
        svc.pe = one(s);
        continue;
      case "ops":
        args(s, 0, 0);
        svc.onePacket = true;
        continue;
      case "flag-1":
      case "flag-2":
      case "flag-3":
      case "sh-port":
      case "sh-fallback":
      case "mh-port":
      case "mh-fallback":
        args(s, 0, 0);
        (svc.schedFlags as string[]).push(s.keyword);
        continue;
      case "ip_family": {
        const v = one(s);
        if (v !== "inet" && v !== "inet6") fail(s, `'ip_family': '${v}' is not inet or inet6`);
        family = v === "inet" ? 4 : 6;
        continue;
      }
      case "alpha":
        health.alpha = flag(s);
        continue;
      case "omega":
        health.omega = flag(s);
        continue;
      case "ha_suspend":
        health.ha_suspend = flag(s);
        continue;
      case "quorum":
        health.quorum = int(s, 1, 2147483647);
        continue;
      case "hysteresis":
        health.hysteresis = int(s, 0, 2147483647);
        continue;
      case "sorry_server": {
        const v = args(s, 1, 2);
        sorry.address = address(s, v[0]);
        if (v[1] !== undefined) sorry.port = port(s, v[1]);
        sorryStmt = s;
        continue;
      }
      case "sorry_server_inhibit":
        if (!sorryStmt) fail(s, "'sorry_server_inhibit' before (or without) sorry_server");
        sorry.inhibit = flag(s);
        continue;
      case "sorry_server_lvs_method":
        if (!sorryStmt) fail(s, "'sorry_server_lvs_method' before (or without) sorry_server");
        {
          const f = forwarding(s);
          if (f.tunnel) fail(s, "'sorry_server_lvs_method': tunnel options are not supported for the sorry server");
          sorry.forward = f.forward;
        }
        continue;
      case "hashed":
        unsupported(s, "virtual_server", "the IPVS 'hashed' flag has no meaning in xvs");
        continue;
      case "quorum_up":
      case "quorum_down":
      case "smtp_alert":
      case "weight":
        unsupported(s, "virtual_server", "xvs runs no notify scripts, sends no mail and is not tracked by VRRP weight");
        continue;
    }
    if (CHECKER_KIND[s.keyword] || OTHER_CHECKERS.has(s.keyword)) fail(s, `'${s.keyword}' belongs in a real_server block`);
    fail(s, `unknown keyword '${s.keyword}' in virtual_server`);
  }
  if (!protocolSet) {
    svc.protocol = "udp";
    log("warn", "keepalived config: virtual_server without protocol: UDP, as keepalived defaults to it", { at: `${b.file}:${b.line}`, virtualServer: name });
  }
  if (timeout !== undefined || netmask !== undefined)
    svc.persistence = { timeout: timeout ?? DEFAULT_PERSISTENT_TIMEOUT_SEC, ...(netmask !== undefined ? { netmask } : {}) };
  if (sorryStmt) health.sorry_server = sorry;
  const q = (health.quorum as number | undefined) ?? 1;
  if (health.hysteresis !== undefined && (health.hysteresis as number) >= q) {
    // check_data.c: "hysteresis %u >= quorum %u; setting hysteresis to %u"
    log("warn", "keepalived config: hysteresis not below quorum: lowered to quorum - 1, as keepalived does", {
      at: `${b.file}:${b.line}`,
      virtualServer: name,
      hysteresis: health.hysteresis,
      quorum: q,
    });
    health.hysteresis = q - 1;
  }
  const h = check(ServiceHealth, health, b, name);
  const dests = rsBlocks.map((r) => realServer(r, { ...fwd, inherited }));
  return keys.map((k) => {
    const v6 = parseIp(k.address)!.family === 6;
    // a real server without a port has the service's (which differs between a group's entries)
    const seen = new Map<string, Stmt>();
    rsBlocks.forEach((r, i) => {
      const id = `${dests[i].address}|${dests[i].port ?? k.port}`;
      const prev = seen.get(id);
      if (prev) fail(r, `real_server ${r.args.join(" ")} is already defined at ${prev.file}:${prev.line}`);
      seen.set(id, r);
      // check_parser.c rs_end_handler: only tunnelled real servers may be of another family
      if (dests[i].forward !== "tunnel" && parseIp(dests[i].address)!.family !== (v6 ? 6 : 4)) {
        fail(r, `real_server ${dests[i].address}: address family differs from the virtual server's ${k.address} (only TUN real servers may differ)`);
      }
    });
    if (family !== null && (family === 6) !== v6) fail(b, `${name}: ip_family ${family === 6 ? "inet6" : "inet"} does not match address ${k.address}`);
    const spec = check(ServiceSpec, { ...svc, address: k.address, port: k.port }, b, `${name} (${k.address} ${k.port})`) as AddrServiceSpecT;
    return { ...spec, health: structuredClone(h), dests: structuredClone(dests) };
  });
}

/**
 * Convert statements to xvs's document. Skipped blocks are logged (one line each).
 * @throws ConfError naming file and line of the first problem.
 */
export function convertKeepalived(stmts: Stmt[]): KaDoc {
  const groups = new Map<string, { address: string; port: number }[]>();
  for (const s of stmts) {
    if (s.keyword !== "virtual_server_group") continue;
    if (s.args.length !== 1) fail(s, "'virtual_server_group' takes a name");
    if (groups.has(s.args[0])) fail(s, `virtual_server_group ${s.args[0]} is defined twice`);
    groups.set(s.args[0], groupEntries(s));
  }
  const services: KaService[] = [];
  const where = new Map<string, Stmt>();
  for (const s of stmts) {
    if (SKIPPED_ROOT.test(s.keyword)) {
      log("info", "keepalived config: block left to keepalived", { block: [s.keyword, ...s.args].join(" "), at: `${s.file}:${s.line}` });
      continue;
    }
    if (s.keyword === "virtual_server_group") continue;
    if (s.keyword === "virtual_server") {
      for (const svc of virtualServer(s, groups)) {
        const k = `${svc.protocol} ${svc.address} ${svc.port}`;
        const prev = where.get(k);
        if (prev) fail(s, `virtual service ${k} is already defined at ${prev.file}:${prev.line}`);
        where.set(k, s);
        services.push(svc);
      }
      continue;
    }
    if (s.keyword === "SSL") unsupported(s, "the configuration", "SSL_GET checks run without client certificates");
    fail(s, `unknown keyword '${s.keyword}' at the top level`);
  }
  return { version: CONFIG_VERSION, services };
}
