/**
 * An in-process fast path for unit, golden and fuzz tests: a model compiled into Tables with
 * hand-made routes (two ports, every real server on port 1 with a known MAC and route, clients
 * behind a gateway on port 0, or on-link), a frame buffer laid out like UMEM (4 KiB frames, 512 bytes headroom), and
 * `run()` that pushes frames through FastPath.processBurst and returns what came out.
 */
import * as abi from "../../src/ffi/abi.ts";
import { ConnTable } from "../../src/conn/table.ts";
import { FastPath } from "../../src/dataplane/fastpath.ts";
import { NextHopView } from "../../src/dataplane/route.ts";
import { Stat, STAT_NAMES } from "../../src/dataplane/verdict.ts";
import {
  FIB_ADDR,
  FIB_FAMILY,
  FIB_NEXTHOP,
  FIB_PORT,
  FIB_PREFIX_LEN,
  FIB_WORDS,
  MAX_NEXTHOPS,
  NH_FLAGS,
  NH_MAC_HI,
  NH_MAC_LO,
  NH_PORT,
  NH_WORDS,
  NHF_VALID,
  newResolveRing,
  PORT_MAC_HI,
  PORT_MAC_LO,
  PORT_MTU,
  PORT_WORDS,
  buildNeighIndex,
} from "../../src/nexthop/table.ts";
import type { DestRoute, RouteSnapshot } from "../../src/nexthop/resolver.ts";
import { parseIp } from "../../src/service/addr.ts";
import { compile } from "../../src/config/compile.ts";
import { Model } from "../../src/config/model.ts";
import type { Tables } from "../../src/service/tables.ts";
import { Counters, type SharedCountBuffers } from "../../src/stats/counters.ts";
import { macWords } from "../../src/wire/eth.ts";

export const FRAME_SIZE = 4096;
export const HEADROOM = 512;
/** MAC of port 0 (client side) and port 1 (server side). */
export const PORT_MACS = ["02:00:00:00:0a:00", "02:00:00:00:0a:01"];
/** MAC of the client-side gateway (next hop 0) and of every real server (next hop 1 + dest id). */
export const GATEWAY_MAC = "02:00:00:00:00:fe";
export function realMac(destId: number): string {
  return `02:00:00:00:01:${(destId & 0xff).toString(16).padStart(2, "0")}`;
}

/** How the director reaches one real server (what the resolver would find in the kernel). */
export interface RsRoute {
  mac: string;
  mtu: number;
  /** Tunnel source (route preferred source); "" for none. */
  src: string;
  /** false: no route through our interfaces. */
  routed: boolean;
}

export interface HarnessOptions {
  connCapacity?: number;
  seed?: number;
  /** MACs of port 0 and port 1. */
  portMacs?: string[];
  /** MAC of next hop 0, the client side's gateway. */
  gatewayMac?: string;
  /** Default MAC of a real server by dest id. */
  realMac?: (destId: number) => string;
  /** Connection counts and scheduler state shared with other fast paths (several workers' worth). */
  shared?: SharedCountBuffers;
}

export interface Out {
  /** Port the frame leaves on, or -1 for a drop. */
  port: number;
  frame: Uint8Array;
}

export class Harness {
  readonly model = new Model();
  readonly counters: Counters;
  readonly nhBuffer = new SharedArrayBuffer(MAX_NEXTHOPS * NH_WORDS * 4);
  readonly ring = newResolveRing();
  readonly buf: Uint8Array;
  readonly descs = new Uint32Array(abi.XVS_MAX_BURST * abi.XVS_DESC_WORDS);
  readonly conns: ConnTable;
  fp!: FastPath;
  private gen = 0;
  /** Default MTU towards real servers (DEST_MTU). */
  destMtu = 1500;
  /** Per real-server address overrides of the default route. */
  readonly rs = new Map<string, Partial<RsRoute>>();
  /** Clients on-link on port 0 with no neighbour entry (instead of behind the gateway). */
  onLinkClients = false;
  readonly portMacs: string[];
  private readonly realMacOf: (destId: number) => string;

  constructor(connCapacityOrOptions: number | HarnessOptions = 4096) {
    const o = typeof connCapacityOrOptions === "number" ? { connCapacity: connCapacityOrOptions } : connCapacityOrOptions;
    this.buf = new Uint8Array(abi.XVS_MAX_BURST * FRAME_SIZE);
    this.conns = new ConnTable(o.connCapacity ?? 4096, o.seed ?? 12345);
    this.counters = new Counters(Counters.allocate(o.shared));
    this.portMacs = o.portMacs ?? PORT_MACS;
    this.realMacOf = o.realMac ?? realMac;
    this.setNextHop(0, 0, o.gatewayMac ?? GATEWAY_MAC);
  }

  /** Set next hop `id` on `port` to `mac` (valid). */
  setNextHop(id: number, port: number, mac: string): void {
    const nh = new Int32Array(this.nhBuffer);
    const [hi, lo] = macWords(mac);
    nh[id * NH_WORDS + NH_MAC_HI] = hi;
    nh[id * NH_WORDS + NH_MAC_LO] = lo;
    nh[id * NH_WORDS + NH_PORT] = port;
    nh[id * NH_WORDS + NH_FLAGS] = NHF_VALID;
  }

  private routes(): RouteSnapshot {
    const ports = new Int32Array(new SharedArrayBuffer(2 * PORT_WORDS * 4));
    this.portMacs.forEach((m, i) => {
      const [hi, lo] = macWords(m);
      ports[i * PORT_WORDS + PORT_MAC_HI] = hi;
      ports[i * PORT_WORDS + PORT_MAC_LO] = lo;
      ports[i * PORT_WORDS + PORT_MTU] = 1500;
    });
    // default route (v4 and v6) via the gateway on port 0, or on-link there
    const fib = new Int32Array(new SharedArrayBuffer(2 * FIB_WORDS * 4));
    [4, 6].forEach((fam, row) => {
      fib[row * FIB_WORDS + FIB_FAMILY] = fam;
      fib[row * FIB_WORDS + FIB_PREFIX_LEN] = 0;
      for (let k = 0; k < 4; k++) fib[row * FIB_WORDS + FIB_ADDR + k] = 0;
      fib[row * FIB_WORDS + FIB_NEXTHOP] = this.onLinkClients ? -1 : 0;
      fib[row * FIB_WORDS + FIB_PORT] = 0;
    });
    const dests = new Map<number, DestRoute>();
    for (const d of this.model.allDests()) {
      const v6 = d.addr.family === 6;
      const r: RsRoute = {
        mac: this.realMacOf(d.id),
        mtu: this.destMtu,
        src: v6 ? "2001:db8:2::1" : "198.18.2.1",
        routed: true,
        ...this.rs.get(d.spec.address),
      };
      if (!r.routed) {
        dests.set(d.id, { nexthop: -1, mtu: 0, src: [0, 0, 0, 0] });
        continue;
      }
      this.setNextHop(1 + d.id, 1, r.mac);
      const w = r.src ? parseIp(r.src)!.words : [0, 0, 0, 0];
      dests.set(d.id, { nexthop: 1 + d.id, mtu: r.mtu, src: [w[0], w[1], w[2], w[3]] });
    }
    return { ports, fib, fibRows: 2, neigh: buildNeighIndex([]), dests, localAddrs: [] };
  }

  /** Recompile after model changes and hand the generation to the fast path. */
  apply(): Tables {
    const t = compile(this.model, this.routes(), ++this.gen);
    if (!this.fp) this.fp = new FastPath(this.buf, t, this.conns, this.counters, new NextHopView(this.nhBuffer, this.ring));
    else this.fp.setTables(t);
    return t;
  }

  /** Push frames through one burst (at most XVS_MAX_BURST); returns what came out. */
  run(frames: Uint8Array[], inPort = 0): Out[] {
    if (frames.length > abi.XVS_MAX_BURST) throw new Error("too many frames for one burst");
    const D = abi.XVS_DESC_WORDS;
    frames.forEach((f, i) => {
      const addr = i * FRAME_SIZE + HEADROOM;
      this.buf.fill(0xa5, i * FRAME_SIZE, (i + 1) * FRAME_SIZE);
      this.buf.set(f.subarray(0, Math.min(f.length, FRAME_SIZE - HEADROOM)), addr);
      this.descs[i * D + abi.XVS_DESC_ADDR] = addr;
      this.descs[i * D + abi.XVS_DESC_LEN] = Math.min(f.length, FRAME_SIZE - HEADROOM);
      this.descs[i * D + abi.XVS_DESC_IN_PORT] = inPort;
      this.descs[i * D + abi.XVS_DESC_OUT_PORT] = abi.XVS_OUT_DROP;
    });
    this.fp.processBurst(this.descs, frames.length);
    return frames.map((_, i) => {
      const out = this.descs[i * D + abi.XVS_DESC_OUT_PORT];
      const addr = this.descs[i * D + abi.XVS_DESC_ADDR],
        len = this.descs[i * D + abi.XVS_DESC_LEN];
      return { port: out === abi.XVS_OUT_DROP ? -1 : out, frame: this.buf.slice(addr, addr + len) };
    });
  }

  /** Run one frame. */
  one(frame: Uint8Array, inPort = 0): Out {
    return this.run([frame], inPort)[0];
  }

  /** Verdict counters by name. */
  stats(): Record<string, number> {
    const o: Record<string, number> = {};
    for (let i = 0; i < Stat.Count; i++) o[STAT_NAMES[i]] = this.counters.verdicts[i];
    return o;
  }

  /** Counters that changed since `before`, by name. */
  delta(before: Record<string, number>): Record<string, number> {
    const now = this.stats(),
      o: Record<string, number> = {};
    for (const k of Object.keys(now)) if (now[k] !== before[k]) o[k] = now[k] - before[k];
    return o;
  }

  /** Advance the clock by `ms` and run the timers. */
  advance(ms: number): void {
    this.fp.now = (this.fp.now + Math.round(ms / 10)) | 0;
    // the wheel does a bounded amount of work per call: call until a call finishes early
    for (let i = 0; i < 100000; i++) if (this.fp.expire() < 256) break;
  }
}

/** Hex text to bytes. */
export function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "hex"));
}
