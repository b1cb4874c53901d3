/**
 * Control-thread side of next hops: reads the kernel's neighbour and routing tables over
 * rtnetlink, keeps the shared next-hop table (stable ids, MACs updated in place), and produces
 * the route words compiled into each `Tables` generation. Missing neighbours are resolved by
 * the kernel itself (RTM_NEWNEIGH with NTF_USE): xvs never hand-configures a MAC.
 */
import { macWords } from "../wire/eth.ts";
import { dumpAddrs, dumpNeighs, dumpRoutes, resolveNeigh, routeGet, RTN_UNICAST, type IfAddrInfo } from "../ffi/netlink.ts";
import {
  buildNeighIndex,
  FIB_ADDR,
  FIB_FAMILY,
  FIB_MTU,
  FIB_NEXTHOP,
  FIB_PORT,
  FIB_PREFIX_LEN,
  FIB_WORDS,
  maskWord,
  MAX_NEXTHOPS,
  NH_FLAGS,
  NH_MAC_HI,
  NH_MAC_LO,
  NH_PORT,
  NH_WORDS,
  NHF_VALID,
  PORT_IFINDEX,
  PORT_MAC_HI,
  PORT_MAC_LO,
  PORT_MTU,
  PORT_WORDS,
} from "./table.ts";

/** An interface owned by the daemon; its index in the list is its port number. */
export interface PortInfo {
  name: string;
  ifindex: number;
  mac: Uint8Array;
  mtu: number;
}

/** What the dataplane needs to reach one real server. */
export interface DestRoute {
  nexthop: number;
  mtu: number;
  /** Source address for tunnel headers (the route's preferred source), 4 words. */
  src: [number, number, number, number];
}

/** Route words for one generation. */
export interface RouteSnapshot {
  ports: Int32Array;
  fib: Int32Array;
  fibRows: number;
  neigh: Int32Array;
  dests: Map<number, DestRoute>;
  /** The director's own addresses (their traffic stays with the kernel). */
  localAddrs: IfAddrInfo[];
}

/** NUD states whose link-layer address can be used (linux/neighbour.h). */
const NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;

function words(b: Uint8Array): [number, number, number, number] {
  const w: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < b.length; i += 4) w[i >> 2] = (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3] | 0;
  return w;
}

function bytes(family: 4 | 6, w: readonly number[]): Uint8Array {
  const out = new Uint8Array(family === 6 ? 16 : 4);
  for (let i = 0; i < out.length; i++) out[i] = (w[i >> 2] >>> (24 - 8 * (i & 3))) & 0xff;
  return out;
}

interface NhEntry {
  id: number;
  port: number;
  family: 4 | 6;
  addr: Uint8Array;
}

export class NextHopResolver {
  readonly nhBuffer = new SharedArrayBuffer(MAX_NEXTHOPS * NH_WORDS * 4);
  readonly nh = new Int32Array(this.nhBuffer);
  private readonly byKey = new Map<string, NhEntry>();
  private readonly byId: NhEntry[] = [];
  private readonly byIfindex = new Map<number, number>();
  private nextId = 0;
  /** Last time each next hop was asked to resolve (ms), to avoid asking in a tight loop. */
  private readonly asked = new Map<number, number>();
  /** How many times the kernel was asked to resolve a neighbour (the dataplane watches it). */
  asks = 0;

  constructor(readonly ports: PortInfo[]) {
    ports.forEach((p, i) => {
      this.byIfindex.set(p.ifindex, i);
    });
  }

  private key(port: number, addr: Uint8Array): string {
    return `${port}|${addr.join(".")}`;
  }

  /** Return the id of the next hop (port, addr), creating it (invalid until resolved). */
  private idOf(port: number, family: 4 | 6, addr: Uint8Array): number {
    const k = this.key(port, addr);
    let e = this.byKey.get(k);
    if (!e) {
      if (this.nextId >= MAX_NEXTHOPS) return -1;
      e = { id: this.nextId++, port, family, addr };
      this.byKey.set(k, e);
      this.byId[e.id] = e;
      this.nh[e.id * NH_WORDS + NH_PORT] = port;
    }
    return e.id;
  }

  private setMac(id: number, mac: Uint8Array | null): void {
    const o = id * NH_WORDS;
    if (!mac) {
      Atomics.store(this.nh, o + NH_FLAGS, 0);
      return;
    }
    const [hi, lo] = macWords(mac);
    if ((Atomics.load(this.nh, o + NH_FLAGS) & NHF_VALID) !== 0 && this.nh[o + NH_MAC_HI] === hi && this.nh[o + NH_MAC_LO] === lo) return;
    Atomics.store(this.nh, o + NH_FLAGS, 0);
    this.nh[o + NH_MAC_HI] = hi;
    this.nh[o + NH_MAC_LO] = lo;
    Atomics.store(this.nh, o + NH_FLAGS, NHF_VALID);
  }

  private isValid(id: number): boolean {
    return (Atomics.load(this.nh, id * NH_WORDS + NH_FLAGS) & NHF_VALID) !== 0;
  }

  /** Ask the kernel to resolve a next hop, at most once a second per next hop. */
  private ask(id: number): void {
    const now = Date.now();
    if ((this.asked.get(id) ?? 0) > now - 1000) return;
    this.asked.set(id, now);
    this.asks++;
    const e = this.byId[id];
    if (e) resolveNeigh(this.ports[e.port].ifindex, e.family, e.addr);
  }

  /** Handle a worker's request to resolve an on-link address. */
  requestResolve(port: number, family: 4 | 6, w: readonly number[]): void {
    if (port < 0 || port >= this.ports.length) return;
    const id = this.idOf(port, family, bytes(family, w));
    if (id >= 0 && !this.isValid(id)) this.ask(id);
  }

  /**
   * Read the kernel's tables and return the route words for a new generation, resolving the
   * route of every real server in `dests`.
   */
  snapshot(dests: { id: number; family: 4 | 6; words: readonly number[] }[]): RouteSnapshot {
    // neighbours on our interfaces: every one gets a next hop id (on-link clients use them)
    const seen = new Set<number>();
    for (const fam of [4, 6] as const) {
      for (const n of dumpNeighs(fam)) {
        const port = this.byIfindex.get(n.ifindex);
        if (port === undefined) continue;
        const id = this.idOf(port, fam, n.addr);
        if (id < 0) continue;
        seen.add(id);
        this.setMac(id, (n.state & NUD_USABLE) !== 0 ? n.mac : null);
      }
    }
    for (const e of this.byKey.values()) if (!seen.has(e.id)) this.setMac(e.id, null);

    // routes through our interfaces, longest prefix first, then lowest metric
    const rows: { fam: 4 | 6; len: number; w: number[]; nh: number; port: number; mtu: number; prio: number }[] = [];
    for (const fam of [4, 6] as const) {
      for (const r of dumpRoutes(fam)) {
        if (r.type !== RTN_UNICAST) continue;
        const port = this.byIfindex.get(r.oif);
        if (port === undefined) continue;
        let nh = -1;
        if (r.gateway) {
          nh = this.idOf(port, fam, r.gateway);
          if (nh >= 0 && !this.isValid(nh)) this.ask(nh);
        }
        const w = words(r.dst);
        rows.push({ fam, len: r.dstLen, w: w.map((x, i) => x & maskWord(r.dstLen, i)), nh, port, mtu: r.mtu, prio: r.priority });
      }
    }
    rows.sort((a, b) => b.len - a.len || a.prio - b.prio);
    const fib = new Int32Array(new SharedArrayBuffer(Math.max(1, rows.length) * FIB_WORDS * 4));
    rows.forEach((r, i) => {
      const o = i * FIB_WORDS;
      fib[o + FIB_FAMILY] = r.fam;
      fib[o + FIB_PREFIX_LEN] = r.len;
      for (let k = 0; k < 4; k++) fib[o + FIB_ADDR + k] = r.w[k] ?? 0;
      fib[o + FIB_NEXTHOP] = r.nh;
      fib[o + FIB_PORT] = r.port;
      fib[o + FIB_MTU] = r.mtu;
    });

    // real servers: the kernel's own route lookup, then the neighbour it names
    const destRoutes = new Map<number, DestRoute>();
    for (const d of dests) {
      const r = routeGet(d.family, bytes(d.family, d.words));
      const port = r ? this.byIfindex.get(r.oif) : undefined;
      if (!r || r.type !== RTN_UNICAST || port === undefined) {
        destRoutes.set(d.id, { nexthop: -1, mtu: 0, src: [0, 0, 0, 0] });
        continue;
      }
      const nh = this.idOf(port, d.family, r.gateway ?? bytes(d.family, d.words));
      if (nh >= 0 && !this.isValid(nh)) this.ask(nh);
      destRoutes.set(d.id, { nexthop: nh, mtu: r.mtu || this.ports[port].mtu, src: r.prefsrc ? words(r.prefsrc) : [0, 0, 0, 0] });
    }

    const ports = new Int32Array(new SharedArrayBuffer(Math.max(1, this.ports.length) * PORT_WORDS * 4));
    this.ports.forEach((p, i) => {
      const [hi, lo] = macWords(p.mac);
      ports[i * PORT_WORDS + PORT_MAC_HI] = hi;
      ports[i * PORT_WORDS + PORT_MAC_LO] = lo;
      ports[i * PORT_WORDS + PORT_MTU] = p.mtu;
      ports[i * PORT_WORDS + PORT_IFINDEX] = p.ifindex;
    });

    const neigh = buildNeighIndex([...this.byKey.values()].map((e) => ({ port: e.port, words: words(e.addr), nh: e.id })));
    return { ports, fib, fibRows: rows.length, neigh, dests: destRoutes, localAddrs: dumpAddrs() };
  }
}
