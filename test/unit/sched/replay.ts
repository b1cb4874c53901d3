/**
 * Replays an oracle scenario (test/kernel/oracle/scenarios.ts) through the xvs fast path
 * in process: ipvsadm command lines become Model operations (a small parser for the options the
 * scenarios use), packets become frames through test/util/harness.ts, and every step yields an
 * observation in the guest runner's vocabulary, so the two can be compared step by step.
 */
import { ACK, FIN, PSH, PacketBuilder, RST, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, HEADROOM, Harness, PORT_MACS, realMac, type Out } from "../../util/harness.ts";
import { macText } from "../../../src/wire/eth.ts";
import * as abi from "../../../src/ffi/abi.ts";
import { Classified, classify } from "../../../src/dataplane/classify.ts";
import { newConnection } from "../../../src/dataplane/schedule.ts";
import { parseAddr } from "../../../src/wire/ipv4.ts";
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, hashFlow } from "../../../src/wire/flow.ts";
import { DestSpec, IpvsServiceSpec, type ServiceKeyT } from "../../../src/control/schemas.ts";
import type { Service } from "../../../src/config/model.ts";
import { LbError } from "../../../src/errors.ts";
import {
  CF_ASSURED,
  CF_TEMPLATE,
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
  HDR_HIGH,
  TICKS_PER_SEC,
} from "../../../src/conn/table.ts";
import { TCP_STATE_NAMES } from "../../../src/conn/state.ts";
import { addrText } from "../../../src/wire/ipv4.ts";
import type { Pkt, Scenario, Step } from "../../kernel/oracle/scenarios.ts";

/** What left the director for a packet (guest vocabulary), plus xvs's drop counters that moved. */
export interface PacketObs {
  out: string[];
  rx: string[];
  drops?: string[];
}
export interface AdmObs {
  rc: number;
  err: string;
}
export interface SnapObs {
  dests: Record<string, string>;
  conns: string[];
}
export type Obs = PacketObs | AdmObs | SnapObs | Record<string, never>;

const FLAG_BITS: Record<string, number> = { F: FIN, S: SYN, R: RST, P: PSH, A: ACK };

/** Parse "a.b.c.d[:port]". */
function hostPort(s: string): { address: string; port?: number } {
  const i = s.lastIndexOf(":");
  return i < 0 ? { address: s } : { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/** Apply one ipvsadm command line to the harness model (and compile it, unless `batch`); returns the exit code and message. */
export function ipvsadm(h: Harness, line: string, batch = false): AdmObs {
  const a = line.trim().split(/\s+/);
  const cmd = a[0];
  let key: ServiceKeyT | null = null;
  const svc: Record<string, unknown> = { onePacket: false, schedFlags: [] };
  const dest: Record<string, unknown> = { forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 };
  let rs: { address: string; port?: number } | null = null;
  for (let i = 1; i < a.length; i++) {
    const o = a[i];
    const next = () => a[++i];
    if (o === "-t" || o === "-u") {
      const hp = hostPort(next());
      key = { protocol: o === "-t" ? "tcp" : "udp", address: hp.address, port: hp.port ?? 0 };
    } else if (o === "-f") key = { fwmark: Number(next()), family: "ipv4" };
    else if (o === "-s") svc.scheduler = next();
    else if (o === "-p") {
      const v = a[i + 1];
      svc.persistence = v !== undefined && /^-?\d+$/.test(v) ? { timeout: Number(next()) } : {};
    } else if (o === "-M") (svc.persistence as Record<string, unknown>).netmask = next();
    else if (o === "-b") svc.schedFlags = next().split(",");
    else if (o === "-o") svc.onePacket = true;
    else if (o === "-r") rs = hostPort(next());
    else if (o === "-m") dest.forward = "masq";
    else if (o === "-g") dest.forward = "route";
    else if (o === "-i") dest.forward = "tunnel";
    else if (o === "-w") dest.weight = Number(next());
    else if (o === "-x") dest.upperThreshold = Number(next());
    else if (o === "-y") dest.lowerThreshold = Number(next());
    else throw new Error(`replay: unsupported ipvsadm option ${o} in "${line}"`);
  }
  try {
    const m = h.model;
    if (cmd === "-A" || cmd === "-E") {
      // IpvsServiceSpec: the replay drives the fast path's fwmark code, which the API refuses to configure
      const r = IpvsServiceSpec.safeParse({ ...key, ...svc });
      if (!r.success) return { rc: 2, err: r.error.issues[0].message };
      if (cmd === "-A") m.addService(r.data);
      else m.editService(r.data);
    } else if (cmd === "-a" || cmd === "-e") {
      const r = DestSpec.safeParse({ ...dest, address: rs!.address, ...(rs!.port !== undefined ? { port: rs!.port } : {}) });
      if (!r.success) return { rc: 2, err: r.error.issues[0].message };
      if (cmd === "-a") m.addDest(key!, r.data);
      else m.editDest(key!, r.data);
    } else if (cmd === "-d") m.deleteDest(key!, rs!.address, rs!.port);
    else if (cmd === "-D") m.deleteService(key!);
    else throw new Error(`replay: unsupported ipvsadm command ${cmd}`);
  } catch (e) {
    if (e instanceof LbError) return { rc: 255, err: e.message };
    throw e;
  }
  if (!batch) h.apply();
  return { rc: 0, err: "" };
}

const SYSCTL: Record<string, (v: number) => object> = {
  expire_nodest_conn: (v) => ({ expireNodestConn: v === 1 }),
  expire_quiescent_template: (v) => ({ expireQuiescentTemplate: v === 1 }),
  sloppy_tcp: (v) => ({ sloppyTcp: v === 1 }),
  conn_reuse_mode: (v) => ({ connReuseMode: v }),
};

/** Lab real server index of an address 198.18.(16+i).2, or 0. */
function rsIndex(addr: string): number {
  const m = /^198\.18\.(\d+)\.2$/.exec(addr);
  return m ? Number(m[1]) - 16 : 0;
}

/** Lab real server a frame sent on the server port goes to, by its destination MAC (NAT and DR alike). */
function rsOfFrame(h: Harness, f: Uint8Array): number {
  const mac = macText(new DataView(f.buffer, f.byteOffset).getUint16(0), new DataView(f.buffer, f.byteOffset).getInt32(2));
  const d = h.model.allDests().find((x) => realMac(x.id) === mac);
  return d ? rsIndex(addrText(d.addr.words[0])) : 0;
}

function frame(p: Pkt, fromClient: boolean): Uint8Array {
  const [src, sport, dst, dport, proto, flags] = p;
  const b = new PacketBuilder().eth(PORT_MACS[fromClient ? 0 : 1], GATEWAY_MAC).ipv4({ src, dst, df: true });
  if (proto === "t") {
    let f = 0;
    for (const ch of flags) f |= FLAG_BITS[ch];
    b.tcp({ sport, dport, flags: f });
  } else {
    b.udp({ sport, dport }).payload("xvs-oracle");
  }
  return b.build();
}

/** Describe what reached the client the way guest-runner.py does ("icmp 3/3 a>b", "tcp a:p>b:q FA"). */
function describeToClient(f: Uint8Array): string {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const ihl = (f[14] & 15) * 4,
    proto = f[23],
    l4 = 14 + ihl;
  const src = addrText(dv.getInt32(26)),
    dst = addrText(dv.getInt32(30));
  if (proto === 1) return `icmp ${f[l4]}/${f[l4 + 1]} ${src}>${dst}`;
  const sp = dv.getUint16(l4),
    dp = dv.getUint16(l4 + 2);
  if (proto === 6) {
    const fl = [
      ["F", FIN],
      ["S", SYN],
      ["R", RST],
      ["P", PSH],
      ["A", ACK],
    ]
      .filter(([, b]) => f[l4 + 13] & (b as number))
      .map(([c]) => c)
      .join("");
    return `tcp ${src}:${sp}>${dst}:${dp} ${fl}`;
  }
  return `udp ${src}:${sp}>${dst}:${dp}`;
}

const hex8 = (w: number) => (w >>> 0).toString(16).toUpperCase().padStart(8, "0");
const hex4 = (p: number) => (p & 0xffff).toString(16).toUpperCase().padStart(4, "0");
const PROTO_NAMES: Record<number, string> = { 0: "IP", 6: "TCP", 17: "UDP", 132: "SCTP" };

/** The connection table as /proc/net/ip_vs_conn rows (IPv4), without the expiry column, plus the seconds left. */
export function connRows(h: Harness): { row: string; secs: number }[] {
  const t = h.conns,
    r = t.rec,
    out: { row: string; secs: number }[] = [];
  for (let id = 0; id < t.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS,
      fl = r[o + CONN_FLAGS];
    if ((fl & CF_USED) === 0) continue;
    const proto = r[o + CONN_PROTO_STATE] >>> 8,
      st = r[o + CONN_PROTO_STATE] & 0xff;
    const state = fl & CF_TEMPLATE ? (fl & CF_ASSURED ? "ASSURED" : "NONE") : proto === 6 ? TCP_STATE_NAMES[st] : "UDP";
    const cv = r[o + CONN_CPORT_VPORT];
    const row = [
      PROTO_NAMES[proto].padEnd(3),
      hex8(r[o + CONN_CADDR]),
      hex4(cv >>> 16),
      hex8(r[o + CONN_VADDR]),
      hex4(cv),
      hex8(r[o + CONN_DADDR]),
      hex4(r[o + CONN_DPORT]),
      state,
    ].join(" ");
    out.push({ row, secs: Math.ceil(((r[o + CONN_EXPIRES] - h.fp.now) | 0) / TICKS_PER_SEC) });
  }
  return out.sort((a, b) => (a.row < b.row ? -1 : 1));
}

/** Per dest "svc|addr:port" -> "weight active inactive persist", as ipvsadm -Ln / --persistent-conn show them. */
export function destRows(h: Harness): Record<string, string> {
  const out: Record<string, string> = {};
  const c = h.counters;
  for (const s of h.model.services) {
    const name = svcName(s);
    for (const d of s.dests) {
      out[`${name}|${addrText(d.addr.words[0])}:${d.port}`] = `${d.spec.weight} ${c.active[d.id]} ${c.inactive[d.id]} ${c.persist[d.id]}`;
    }
  }
  return out;
}

function svcName(s: Service): string {
  if (s.fwmark) return `FWM ${s.fwmark}`;
  return `${s.proto === 6 ? "TCP" : "UDP"} ${addrText(s.addr!.words[0])}:${s.port}`;
}

/** The guest's snapshot in the same shape as destRows / connRows. */
export function guestSnap(o: { ln: string; persist: string; conns: string[] }): { dests: Record<string, string>; conns: { row: string; secs: number }[] } {
  const dests: Record<string, string> = {};
  const persist: Record<string, string> = {};
  for (const [text, target] of [
    [o.ln, dests],
    [o.persist, persist],
  ] as const) {
    let svc = "";
    for (const l of text.split("\n")) {
      if (/^(TCP|UDP|FWM) /.test(l)) svc = l.split(/\s+/).slice(0, 2).join(" ");
      const m = /^ {2}-> (\S+)\s+(.*)$/.exec(l);
      if (m && svc && m[1] !== "RemoteAddress:Port") target[`${svc}|${m[1]}`] = m[2].trim();
    }
  }
  for (const k of Object.keys(dests)) {
    // -Ln: Forward Weight Active InAct; --persistent-conn: Weight Persist Active InAct
    const [, w, act, inact] = dests[k].split(/\s+/);
    const p = (persist[k] ?? "").split(/\s+/)[1] ?? "?";
    dests[k] = `${w} ${act} ${inact} ${p}`;
  }
  const conns = o.conns
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { row: [f[0].padEnd(3), ...f.slice(1, 8)].join(" "), secs: Number(f[8]) };
    })
    .sort((a, b) => (a.row < b.row ? -1 : 1));
  return { dests, conns };
}

/**
 * The fwmark service a client packet belongs to, when the scenario marks its destination
 * (the guest's nft rule), or -1. xvs cannot see packet marks (an XDP frame has none), so these
 * packets are handed to the same scheduling code directly, as if a mark had matched.
 */
function markedService(h: Harness, sc: Scenario, dst: string): number {
  for (const fm of sc.fwmarks ?? []) {
    const [net, len] = fm.net.split("/");
    const mask = Number(len) === 0 ? 0 : (~0 << (32 - Number(len))) | 0;
    if (((parseAddr(dst)! ^ parseAddr(net)!) & mask) !== 0) continue;
    const svc = h.model.services.find((s) => s.fwmark === fm.mark);
    if (svc) return svc.id;
  }
  return -1;
}

/** Run a frame the way Harness.one does, but for a new connection go straight to newConnection(svc). */
function oneMarked(h: Harness, f: Uint8Array, svc: number): Out {
  const fp = h.fp;
  h.buf.set(f, HEADROOM);
  h.descs[abi.XVS_DESC_ADDR] = HEADROOM;
  h.descs[abi.XVS_DESC_LEN] = f.length;
  h.descs[abi.XVS_DESC_IN_PORT] = 0;
  h.descs[abi.XVS_DESC_OUT_PORT] = abi.XVS_OUT_DROP;
  if (classify(h.buf, fp.dv, HEADROOM, f.length, fp.flows, 0, fp.l3Len, 0) !== Classified.Continue) throw new Error("replay: bad frame");
  const fl = fp.flows,
    c = h.conns;
  const found = c.lookup(hashFlow(c.seedConn, fl, 0), 0, fl[FLOW_SRC], 0, 0, 0, fl[FLOW_DST], 0, 0, 0, fl[FLOW_PORTS], (fl[FLOW_META] >>> 8) & 0xff);
  if (found >= 0) return h.one(f);
  h.descs[abi.XVS_DESC_OUT_PORT] = newConnection(fp, h.descs, 0, 0, 0, svc, (fl[FLOW_META] >>> 8) & 0xff, 0, fl[FLOW_META] & 0xff);
  const out = h.descs[abi.XVS_DESC_OUT_PORT];
  const addr = h.descs[abi.XVS_DESC_ADDR],
    len = h.descs[abi.XVS_DESC_LEN];
  return { port: out === abi.XVS_OUT_DROP ? -1 : out, frame: h.buf.slice(addr, addr + len) };
}

/** Replay one scenario; returns one observation per step. */
export function replay(sc: Scenario, h = new Harness(65536)): { h: Harness; obs: Obs[] } {
  const obs: Obs[] = [];
  h.apply();
  for (const st of sc.steps as Step[]) {
    if ("ipvsadm" in st) obs.push(ipvsadm(h, st.ipvsadm));
    else if ("restore" in st) {
      // ipvsadm -R: the exit status of the last line; xvs compiles the batch as one generation
      let last: AdmObs = { rc: 0, err: "" };
      for (const l of st.restore) last = ipvsadm(h, l, true);
      h.apply();
      obs.push(last);
    } else if ("sysctl" in st) {
      h.model.setSettings(SYSCTL[st.sysctl](st.value));
      h.apply();
      obs.push({ rc: 0, err: "" });
    } else if ("sleep" in st) {
      h.advance(st.sleep * 1000);
      obs.push({});
    } else if ("snap" in st) {
      obs.push({ dests: destRows(h), conns: connRows(h).map((x) => `${x.row} ${x.secs}`) });
    } else {
      const fromClient = "c" in st;
      const p = fromClient ? st.c : st.r;
      const marked = fromClient ? markedService(h, sc, p[2]) : -1;
      const before = h.stats();
      const out = marked >= 0 ? oneMarked(h, frame(p, true), marked) : h.one(frame(p, fromClient), fromClient ? 0 : 1);
      const after = h.stats();
      const drops = Object.keys(after).filter((k) => k.startsWith("drop_") && after[k] !== before[k]);
      if (out.port < 0) obs.push({ out: [], rx: [], drops });
      else if (out.port === 0) obs.push({ out: ["c0"], rx: [describeToClient(out.frame)] });
      else {
        obs.push({ out: [`b${rsOfFrame(h, out.frame)}`], rx: [] });
      }
      // the guest's clock runs while it works; keep timers moving a little between packets
      h.advance(10);
    }
  }
  return { h, obs };
}
