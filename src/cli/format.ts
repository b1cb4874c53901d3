/**
 * ipvsadm's output, byte for byte (ipvsadm.c print_title, print_service_entry, print_largenum,
 * print_conn, list_timeout): the same printf widths and the trailing spaces they leave, the
 * 33- and 28-character truncation of IPv4 names, K/M/G/T rounding, names from /etc/hosts and
 * /etc/services without -n, and the save (-S) rule format.
 */
import { ipText, parseIp } from "../service/addr.ts";
import { FORWARD_CODE } from "../service/forwarding.ts";
import { PROTOCOL_NUMBER } from "../service/protocols.ts";
import { TUN_NAMES } from "./options.ts";
import type { ConnViewT, DestViewT, ServiceViewT } from "../control/schemas.ts";
import type { NameDb } from "./names.ts";
import {
  FMT_EXACT,
  FMT_NOSORT,
  FMT_NUMERIC,
  FMT_PERSISTENTCONN,
  FMT_RATE,
  FMT_RULE,
  FMT_STATS,
  FMT_THRESHOLDS,
  FMT_TUN_INFO,
  FWD_LOCAL,
  FWD_MASQ,
  FWD_ROUTE,
  FWD_TUNNEL,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
} from "./parse.ts";
import { cmpDests, cmpServices, glibcMergeSort } from "./sort.ts";

/** A service as the listing code sees it (ipvs_service_entry_t). */
export interface SvcRow {
  af: 4 | 6;
  protocol: number;
  addr: number[];
  port: number;
  fwmark: number;
  sched: string;
  flags: number;
  timeout: number;
  netmask: number;
  pe: string;
  view: ServiceViewT;
  dests: DestRow[];
}

/** A real server as the listing code sees it (ipvs_dest_entry_t). */
export interface DestRow {
  af: 4 | 6;
  addr: number[];
  port: number;
  fwd: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
  view: DestViewT;
}

/** Turn an API view into the row ipvsadm would have received from the kernel. */
export function svcRow(v: ServiceViewT): SvcRow {
  const spec = v.spec;
  const fw = "fwmark" in spec;
  const af = v.family === "ipv6" ? 6 : 4;
  let flags = 0;
  if (spec.persistence) flags |= SVC_F_PERSISTENT;
  if (spec.onePacket) flags |= SVC_F_ONEPACKET;
  for (const f of spec.schedFlags) {
    if (f === "flag-1" || f.endsWith("-fallback")) flags |= SVC_F_SCHED1;
    else if (f === "flag-2" || f.endsWith("-port")) flags |= SVC_F_SCHED2;
    else if (f === "flag-3") flags |= SVC_F_SCHED3;
  }
  const mask = spec.persistence?.netmask;
  const netmask = af === 6 ? (mask ? Number(mask) : 128) : mask ? parseIp(mask)!.words[0] >>> 0 : 0xffffffff;
  return {
    af,
    // ipvsadm registers fwmark services as TCP: their real server ports are named as tcp
    protocol: fw ? IPPROTO_TCP : PROTOCOL_NUMBER[spec.protocol],
    addr: fw ? [0, 0, 0, 0] : parseIp(spec.address)!.words,
    port: fw ? 0 : spec.port,
    fwmark: fw ? spec.fwmark : 0,
    sched: spec.scheduler,
    flags,
    timeout: spec.persistence?.timeout ?? 0,
    netmask,
    pe: spec.pe ?? "",
    view: v,
    dests: v.dests.map((d) => ({
      af: d.family === "ipv6" ? 6 : 4,
      addr: parseIp(d.address)!.words,
      port: d.port,
      fwd: FORWARD_CODE[d.forward],
      tunType: d.tunnel ? TUN_NAMES.indexOf(d.tunnel.type) : 0,
      tunPort: d.tunnel?.port ?? 0,
      tunFlags: d.tunnel?.csum === "csum" ? 1 : d.tunnel?.csum === "remcsum" ? 2 : 0,
      view: d,
    })),
  };
}

/** Sort services the way `ipvsadm -L` does (unless --nosort). */
export function sortServices(rows: SvcRow[], format: number): SvcRow[] {
  return format & FMT_NOSORT ? rows : glibcMergeSort(rows, cmpServices);
}

const l = (s: string | number, w: number) => String(s).padEnd(w);
const r = (s: string | number, w: number) => String(s).padStart(w);

function v4Text(w: number): string {
  return `${(w >>> 24) & 255}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
}

/** inet_ntop's text of an address given as words. */
function ipTextOf(af: 4 | 6, w: readonly number[]): string {
  return af === 4 ? v4Text(w[0]) : ipText({ family: 6, words: [w[0], w[1], w[2], w[3]] });
}

/** addrport_to_anyname: "a.b.c.d:port" / "[v6]:port", or names without -n (59 characters at most). */
export function addrPortName(af: 4 | 6, addr: readonly number[], port: number, protocol: number, format: number, names: NameDb): string {
  const open = af === 4 ? "" : "[",
    close = af === 4 ? "" : "]";
  let s: string;
  if (format & FMT_NUMERIC) {
    s = `${open}${ipTextOf(af, addr)}${close}:${port}`;
  } else {
    const host = names.addrToHost({ family: af, words: [addr[0], addr[1], addr[2], addr[3]] }) ?? ipTextOf(af, addr);
    const service = names.portToService(port, protocol) ?? String(port);
    s = `${open}${host}${close}:${service}`;
  }
  return s.slice(0, 59); // snprintf(buf, 60, ...)
}

/** print_largenum: 9 columns; K/M/G/T above 10^8, or every digit with --exact. */
export function largeNum(n: number, format: number): string {
  const v = BigInt(Math.floor(n));
  if (format & FMT_EXACT) {
    const s = v.toString();
    return r(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (v < 100000000n) return r(v.toString(), 9);
  if (v < 1000000000n) return `${r((v / 1000n).toString(), 8)}K`;
  if (v < 100000000000n) return `${r((v / 1000000n).toString(), 8)}M`;
  if (v < 100000000000000n) return `${r((v / 1000000000n).toString(), 8)}G`;
  return `${r((v / 1000000000000n).toString(), 8)}T`;
}

/** The header of a full listing. */
export function listHeader(version: string, size: number): string {
  return `IP Virtual Server version ${version} (size=${size})\n`;
}

/** print_title. */
export function title(format: number): string {
  const head = l("Prot LocalAddress:Port", 33);
  if (format & FMT_STATS)
    return `${head} ${r("Conns", 8)} ${r("InPkts", 8)} ${r("OutPkts", 8)} ${r("InBytes", 8)} ${r("OutBytes", 8)}\n  -> RemoteAddress:Port\n`;
  if (format & FMT_RATE) return `${head} ${r("CPS", 8)} ${r("InPPS", 8)} ${r("OutPPS", 8)} ${r("InBPS", 8)} ${r("OutBPS", 8)}\n  -> RemoteAddress:Port\n`;
  if (format & FMT_THRESHOLDS)
    return `${head} ${l("Uthreshold", 10)} ${l("Lthreshold", 10)} ${l("ActiveConn", 10)} ${l("InActConn", 10)}\n  -> RemoteAddress:Port\n`;
  if (format & FMT_PERSISTENTCONN)
    return `${head} ${l("Weight", 9)} ${l("PersistConn", 11)} ${l("ActiveConn", 10)} ${l("InActConn", 10)}\n  -> RemoteAddress:Port\n`;
  if (format & FMT_TUN_INFO)
    return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n";
  if (!(format & FMT_RULE)) return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
  return "";
}

/** print_sched_flags: the flag names the scheduler knows, comma-separated. */
function schedFlags(s: SvcRow): string {
  const f: string[] = [];
  if (s.sched === "sh" || s.sched === "mh") {
    if (s.flags & SVC_F_SCHED1) f.push(`${s.sched}-fallback`);
    if (s.flags & SVC_F_SCHED2) f.push(`${s.sched}-port`);
  } else {
    if (s.flags & SVC_F_SCHED1) f.push("flag-1");
    if (s.flags & SVC_F_SCHED2) f.push("flag-2");
    if (s.flags & SVC_F_SCHED3) f.push("flag-3");
  }
  return f.join(",");
}

const PROTO_NAME: Record<number, string> = { [IPPROTO_TCP]: "TCP", [IPPROTO_UDP]: "UDP", [IPPROTO_SCTP]: "SCTP" };
const PROTO_OPT: Record<number, string> = { [IPPROTO_TCP]: "-t", [IPPROTO_UDP]: "-u", [IPPROTO_SCTP]: "--sctp-service" };
const FWD_NAME: Record<number, string> = { [FWD_MASQ]: "Masq", [FWD_LOCAL]: "Local", [FWD_TUNNEL]: "Tunnel", [FWD_ROUTE]: "Route" };
const FWD_SWITCH: Record<number, string> = { [FWD_MASQ]: "-m", [FWD_TUNNEL]: "-i", [FWD_LOCAL]: "-g", [FWD_ROUTE]: "-g" };
const TUN_FLAG_TEXT = ["-c", "+c", "r+c"];
const TUN_FLAG_OPT = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

function maskText(s: SvcRow): string | null {
  if (s.af === 4) return s.netmask !== 0xffffffff ? v4Text(s.netmask) : null;
  return s.netmask !== 128 ? String(s.netmask) : null;
}

/** print_service_entry: the service line and its real servers' lines. */
export function serviceEntry(s: SvcRow, format: number, names: NameDb): string {
  const rule = (format & FMT_RULE) !== 0;
  let svcName: string;
  if (s.fwmark) {
    // ipvsadm prints the mark with %u, but Debian's 1.31 shows 4294967295 as -1 (%d): the guest wins
    const mark = s.fwmark | 0;
    svcName = rule ? `-f ${mark}${s.af === 6 ? " -6" : ""}` : `FWM  ${mark}${s.af === 6 ? " IPv6" : ""}`;
  } else {
    const vname = addrPortName(s.af, s.addr, s.port, s.protocol, format, names);
    if (rule) svcName = `${PROTO_OPT[s.protocol] ?? "--xxx-service"} ${vname}`;
    else {
      svcName = `${l(PROTO_NAME[s.protocol] ?? "?", 4)} ${vname}`;
      if (s.af !== 6) svcName = svcName.slice(0, 33);
    }
  }
  const stats = s.view.stats,
    rates = s.view.rates;
  let out: string;
  if (rule) {
    out = `-A ${svcName} -s ${s.sched}`;
    if (s.flags & SVC_F_PERSISTENT) {
      out += ` -p ${s.timeout}`;
      const m = maskText(s);
      if (m !== null) out += ` -M ${m}`;
    }
    if (s.pe) out += ` --pe ${s.pe}`;
    if (s.flags & SVC_F_ONEPACKET) out += " -o";
    if (s.flags & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) out += ` -b ${schedFlags(s)}`;
  } else if (format & FMT_STATS) {
    out = l(svcName, 33) + [stats.conns, stats.inpkts, stats.outpkts, stats.inbytes, stats.outbytes].map((n) => largeNum(n, format)).join("");
  } else if (format & FMT_RATE) {
    out = l(svcName, 33) + [rates.cps, rates.inpps, rates.outpps, rates.inbps, rates.outbps].map((n) => largeNum(n, format)).join("");
  } else {
    out = `${svcName} ${s.sched}`;
    if (s.flags & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) out += ` (${schedFlags(s)})`;
    if (s.flags & SVC_F_PERSISTENT) {
      out += ` persistent ${s.timeout}`;
      const m = maskText(s);
      if (m !== null) out += ` mask ${m}`;
      if (s.pe) out += ` pe ${s.pe}`;
    }
    if (s.flags & SVC_F_ONEPACKET) out += " ops";
  }
  out += "\n";

  const dests = format & FMT_NOSORT ? s.dests : glibcMergeSort(s.dests, cmpDests);
  for (const e of dests) {
    let dname = addrPortName(e.af, e.addr, e.port, s.protocol, format, names);
    if (!rule && e.af !== 6) dname = dname.slice(0, 28);
    const v = e.view;
    if (rule) {
      out += `-a ${svcName} -r ${dname} ${FWD_SWITCH[e.fwd]} -w ${v.weight}`;
      if (e.fwd === FWD_TUNNEL) {
        if (e.tunType === 2) out += ` --tun-type gre ${TUN_FLAG_OPT[e.tunFlags]}`;
        else if (e.tunType === 1) out += ` --tun-type gue --tun-port ${e.tunPort} ${TUN_FLAG_OPT[e.tunFlags]}`;
        else out += " --tun-type ipip";
      }
      out += "\n";
    } else if (format & FMT_STATS) {
      out += `  -> ${l(dname, 28)}${[v.stats.conns, v.stats.inpkts, v.stats.outpkts, v.stats.inbytes, v.stats.outbytes].map((n) => largeNum(n, format)).join("")}\n`;
    } else if (format & FMT_RATE) {
      out += `  -> ${l(dname, 28)} ${r(v.rates.cps, 8)} ${r(v.rates.inpps, 8)} ${r(v.rates.outpps, 8)}${largeNum(v.rates.inbps, format)}${largeNum(v.rates.outbps, format)}\n`;
    } else if (format & FMT_THRESHOLDS) {
      out += `  -> ${l(dname, 28)} ${l(v.upperThreshold, 10)} ${l(v.lowerThreshold, 10)} ${l(v.activeConns, 10)} ${l(v.inactiveConns, 10)}\n`;
    } else if (format & FMT_PERSISTENTCONN) {
      out += `  -> ${l(dname, 28)} ${l(v.weight, 9)} ${l(v.persistentConns, 11)} ${l(v.activeConns, 10)} ${l(v.inactiveConns, 10)}\n`;
    } else if (format & FMT_TUN_INFO) {
      out += `  -> ${l(dname, 28)} ${l(FWD_NAME[e.fwd], 7)} ${l(tunInfo(e), 13)} ${l(v.weight, 6)} ${l(v.activeConns, 10)} ${l(v.inactiveConns, 10)}\n`;
    } else {
      out += `  -> ${l(dname, 28)} ${l(FWD_NAME[e.fwd], 7)} ${l(v.weight, 6)} ${l(v.activeConns, 10)} ${l(v.inactiveConns, 10)}\n`;
    }
  }
  return out;
}

/** fwd_tun_info: "ipip", "gue:PORT:FLAG", "gre:FLAG", or "n/a" when not tunnelling. */
function tunInfo(e: DestRow): string {
  if (e.fwd !== FWD_TUNNEL) return "n/a";
  if (e.tunType === 1) return `gue:${e.tunPort}:${TUN_FLAG_TEXT[e.tunFlags]}`;
  if (e.tunType === 2) return `gre:${TUN_FLAG_TEXT[e.tunFlags]}`;
  return "ipip";
}

/** The title of a connection listing (list_conn). */
export function connTitle(format: number): string {
  return format & FMT_PERSISTENTCONN
    ? `IPVS connection entries\npro expire ${l("state", 11)} ${l("source", 18)} ${l("virtual", 18)} ${l("destination", 18)} ${l("pe name", 16)} pe_data\n`
    : `IPVS connection entries\npro expire ${l("state", 11)} ${l("source", 18)} ${l("virtual", 18)} destination\n`;
}

const CONN_PROTO: Record<string, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP, SCTP: IPPROTO_SCTP };

/** print_conn: one connection row (xvs has no persistence engine data, so never the pe columns). */
export function connRow(c: ConnViewT, format: number, names: NameDb): string {
  const proto = CONN_PROTO[c.protocol] ?? 0;
  const name = (e: { address: string; port: number }) => {
    const a = parseIp(e.address)!;
    return addrPortName(a.family, a.words, e.port, proto, format, names);
  };
  const mm = Math.floor(c.expiresSec / 60),
    ss = c.expiresSec % 60;
  const expire = `${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`;
  return `${l(c.protocol, 3)} ${l(expire, 6)} ${l(c.state, 11)} ${l(name(c.client), 18)} ${l(name(c.virtual), 18)} ${name(c.dest)}\n`;
}

/** list_timeout. */
export function timeoutLine(t: { tcp: number; tcpfin: number; udp: number }): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}
