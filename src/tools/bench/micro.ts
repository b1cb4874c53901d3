/**
 * Pure-CPU microbenchmarks of the fast path, in this process, over synthetic frames: no
 * sockets, no kernel. The same code the worker runs (FastPath.processBurst and the pieces it is
 * made of: classify, hashFlow, ConnTable.lookup, dnat4), on bursts of 64 IPv4 UDP frames to a
 * NAT virtual service with three real servers, with 4K and 1M distinct flows.
 *
 * Frames are rewritten in place by the fast path, so every burst starts by restoring its frames
 * (headers copied from a template, the flow's source address, port and header checksum): that
 * restore is the "baseline copy loop" row, included in every other row; the `net` column
 * subtracts it.
 */
import { ConnTable } from "../../conn/table.ts";
import { DestSpec, ServiceSpec } from "../../control/schemas.ts";
import { FastPath } from "../../dataplane/fastpath.ts";
import { Classified, classify } from "../../dataplane/classify.ts";
import { NextHopView } from "../../dataplane/route.ts";
import { STAT_NAMES } from "../../dataplane/verdict.ts";
import * as abi from "../../ffi/abi.ts";
import { adviseHugePages } from "../../ffi/mem.ts";
import {
  newResolveRing,
  MAX_NEXTHOPS,
  NH_FLAGS,
  NH_MAC_HI,
  NH_MAC_LO,
  NH_PORT,
  NH_WORDS,
  NHF_VALID,
  PORT_MAC_HI,
  PORT_MAC_LO,
  PORT_MTU,
  PORT_WORDS,
} from "../../nexthop/table.ts";
import type { DestRoute, RouteSnapshot } from "../../nexthop/resolver.ts";
import { compile } from "../../config/compile.ts";
import { Model } from "../../config/model.ts";
import { DEST_ADDR, type Tables } from "../../service/tables.ts";
import { Counters } from "../../stats/counters.ts";
import { csumReplace16 } from "../../wire/checksum.ts";
import { macWords } from "../../wire/eth.ts";
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS, hashFlow } from "../../wire/flow.ts";
import { parseAddr } from "../../wire/ipv4.ts";
import { dnat4 } from "../../xmit/nat.ts";
import { buildFrame, ETH_HLEN } from "./frames.ts";
import { SINK_ADDRS, UDP_PORT, VIP } from "./lab.ts";

/** A connection table on huge pages, as the daemon allocates it (dataplane.ts). */
function newConnTable(capacity: number): ConnTable {
  const b = ConnTable.allocate(capacity);
  adviseHugePages(b.records);
  adviseHugePages(b.index);
  return new ConnTable(capacity, 0x1234567, b);
}

export const BURST = 64;
const STRIDE = 2048;
const PORTS_PER_ADDR = 50000;
const SRC_BASE = parseAddr("198.18.1.100")!;

export interface MicroRow {
  id: string;
  label: string;
  nsPerPacket: number;
  /** ns per packet minus the baseline copy loop. */
  netNs: number;
  mpps: number;
  packets: number;
  /** Set when the row's frames were not all forwarded as expected. */
  error?: string;
  extra?: Record<string, number>;
}

/** A fast path over its own frame buffer with one NAT service and three real servers. */
export class Rig {
  readonly buf = new Uint8Array(STRIDE * (BURST + 1));
  readonly dv = new DataView(this.buf.buffer);
  readonly descs = new Uint32Array(BURST * abi.XVS_DESC_WORDS);
  readonly tables: Tables;
  readonly nh: NextHopView;
  readonly counters = new Counters();
  conns: ConnTable;
  fp: FastPath;
  /** IPv4 header checksum partial sum of the template without the source address. */
  private readonly csumBase: number;
  private readonly tpl = BURST * STRIDE;

  constructor(capacity: number) {
    const model = new Model();
    const svc = ServiceSpec.parse({ protocol: "udp", address: VIP, port: UDP_PORT, scheduler: "rr" });
    model.addService(svc);
    for (const a of SINK_ADDRS)
      model.addDest({ protocol: "udp", address: VIP, port: UDP_PORT }, DestSpec.parse({ address: a, port: UDP_PORT, forward: "masq", weight: 1 }));
    const ports = new Int32Array(new SharedArrayBuffer(2 * PORT_WORDS * 4));
    for (let p = 0; p < 2; p++) {
      const [hi, lo] = macWords(new Uint8Array([2, 0, 0, 0, 0, 0x10 + p]));
      ports[p * PORT_WORDS + PORT_MAC_HI] = hi;
      ports[p * PORT_WORDS + PORT_MAC_LO] = lo;
      ports[p * PORT_WORDS + PORT_MTU] = 1500;
    }
    const dests = new Map<number, DestRoute>();
    for (const d of model.allDests()) dests.set(d.id, { nexthop: 0, mtu: 1500, src: [0, 0, 0, 0] });
    const routes: RouteSnapshot = {
      ports,
      fib: new Int32Array(new SharedArrayBuffer(4)),
      fibRows: 0,
      neigh: new Int32Array(new SharedArrayBuffer(6 * 4)),
      dests,
      localAddrs: [],
    };
    this.tables = compile(model, routes, 1);
    const nhBuf = new SharedArrayBuffer(MAX_NEXTHOPS * NH_WORDS * 4);
    const nh = new Int32Array(nhBuf);
    const [hi, lo] = macWords(new Uint8Array([2, 0, 0, 0, 0, 0x20]));
    nh[NH_MAC_HI] = hi;
    nh[NH_MAC_LO] = lo;
    nh[NH_PORT] = 1;
    nh[NH_FLAGS] = NHF_VALID;
    this.nh = new NextHopView(nhBuf, newResolveRing());
    this.conns = newConnTable(capacity);
    this.fp = new FastPath(this.buf, this.tables, this.conns, this.counters, this.nh);
    const frame = buildFrame({
      srcMac: new Uint8Array([2, 0, 0, 0, 0, 1]),
      dstMac: new Uint8Array([2, 0, 0, 0, 0, 0x10]),
      src: "0.0.0.0",
      dst: VIP,
      sport: 0,
      dport: UDP_PORT,
      size: 64,
    });
    this.buf.set(frame, this.tpl);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (frame[ETH_HLEN + i] << 8) | frame[ETH_HLEN + i + 1];
    this.csumBase = sum - this.dv.getUint16(this.tpl + ETH_HLEN + 10);
    for (let i = 0; i < BURST; i++) {
      const d = i * abi.XVS_DESC_WORDS;
      this.descs[d + abi.XVS_DESC_ADDR] = i * STRIDE;
      this.descs[d + abi.XVS_DESC_LEN] = frame.length;
      this.descs[d + abi.XVS_DESC_IN_PORT] = 0;
    }
  }

  /** A fresh connection table (new flows from scratch). */
  resetConns(capacity: number): void {
    this.conns = newConnTable(capacity);
    this.fp = new FastPath(this.buf, this.tables, this.conns, this.counters, this.nh);
  }

  /** Restore the burst's frames for flows first, first+1, ... (mod flows). The baseline. */
  refresh(first: number, flows: number): number {
    const buf = this.buf,
      dv = this.dv,
      tpl = this.tpl,
      base = this.csumBase;
    let f = first;
    for (let i = 0; i < BURST; i++) {
      const off = i * STRIDE;
      buf.copyWithin(off, tpl, tpl + 64);
      const a = (SRC_BASE + ((f / PORTS_PER_ADDR) | 0)) | 0;
      const ip = off + ETH_HLEN;
      dv.setInt32(ip + 12, a);
      let s = base + (a >>> 16) + (a & 0xffff);
      s = (s & 0xffff) + (s >>> 16);
      s = (s & 0xffff) + (s >>> 16);
      dv.setUint16(ip + 10, ~s & 0xffff);
      dv.setUint16(ip + 20, 10000 + (f % PORTS_PER_ADDR));
      this.descs[i * abi.XVS_DESC_WORDS + abi.XVS_DESC_LEN] = 64;
      f++;
      if (f >= flows) f = 0;
    }
    return f;
  }

  verdict(name: string): number {
    return this.counters.verdicts[STAT_NAMES.indexOf(name as (typeof STAT_NAMES)[number])];
  }
}

/** Run `body` (one burst, returning the next flow) for about `seconds`; returns ns per packet. */
export function timeIt(seconds: number, body: (first: number) => number): { ns: number; packets: number } {
  let first = 0;
  // warm-up: let the JIT settle
  const w0 = performance.now();
  while (performance.now() - w0 < Math.min(100, seconds * 250)) first = body(first);
  let bursts = 0;
  const t0 = Bun.nanoseconds();
  const end = t0 + seconds * 1e9;
  let t = t0;
  while (t < end) {
    for (let k = 0; k < 16; k++) first = body(first);
    bursts += 16;
    t = Bun.nanoseconds();
  }
  const packets = bursts * BURST;
  return { ns: (t - t0) / packets, packets };
}

/**
 * Run the microbenchmarks, about `seconds` per row. `progress` gets one line per row. The
 * fast-path rows also report what creating their connections cost (time and RSS growth).
 */
export function runMicro(seconds: number, progress: (s: string) => void): MicroRow[] {
  const rows: MicroRow[] = [];
  let baseline = 0;
  const add = (id: string, label: string, r: { ns: number; packets: number }, error?: string, extra?: Record<string, number>) => {
    if (id === "copy") baseline = r.ns;
    const row: MicroRow = { id, label, nsPerPacket: r.ns, netNs: Math.max(0, r.ns - baseline), mpps: 1e3 / r.ns, packets: r.packets, error, extra };
    rows.push(row);
    progress(`micro ${id.padEnd(18)} ${r.ns.toFixed(1).padStart(7)} ns/pkt (net ${row.netNs.toFixed(1)})${error ? `  ERROR ${error}` : ""}`);
  };
  const M = 1_000_000,
    K4 = 4096;
  const rig = new Rig(M + (M >> 2));
  const { buf, dv, descs } = rig;
  const flowRows = new Int32Array(BURST * FLOW_WORDS);
  const l3Len = new Int32Array(BURST);

  add(
    "copy",
    "baseline copy loop (restore 64 frames per burst)",
    timeIt(seconds, (f) => rig.refresh(f, K4)),
  );

  let sink = 0;
  add(
    "parse",
    "parse (classify: Ethernet, IPv4 + header checksum, UDP)",
    timeIt(seconds, (f) => {
      const next = rig.refresh(f, K4);
      for (let i = 0; i < BURST; i++) sink += classify(buf, dv, descs[i * abi.XVS_DESC_WORDS], 64, flowRows, i * FLOW_WORDS, l3Len, i);
      return next;
    }),
  );
  add(
    "parse+hash",
    "parse + 5-tuple hash",
    timeIt(seconds, (f) => {
      const next = rig.refresh(f, K4);
      for (let i = 0; i < BURST; i++) {
        if (classify(buf, dv, descs[i * abi.XVS_DESC_WORDS], 64, flowRows, i * FLOW_WORDS, l3Len, i) === Classified.Continue)
          sink ^= hashFlow(0x1234567, flowRows, i * FLOW_WORDS);
      }
      return next;
    }),
  );
  const T = rig.tables;
  add(
    "rewrite",
    "rewrite only (DNAT address/port + checksums, MACs, TTL)",
    timeIt(seconds, (f) => {
      const next = rig.refresh(f, K4);
      for (let i = 0; i < BURST; i++) {
        const off = descs[i * abi.XVS_DESC_WORDS];
        const l3 = off + ETH_HLEN;
        dnat4(buf, dv, l3, l3 + 20, 30, 17, T.dest[DEST_ADDR], UDP_PORT);
        rig.nh.setMacs(dv, off, 0, T.ports);
        const w = dv.getUint16(l3 + 8);
        dv.setUint16(l3 + 8, w - 0x100);
        dv.setUint16(l3 + 10, csumReplace16(dv.getUint16(l3 + 10), w, w - 0x100));
      }
      return next;
    }),
  );

  // full fast path and lookups, 4K then 1M established flows
  for (const [flows, tag] of [
    [K4, "4K"],
    [M, "1M"],
  ] as const) {
    rig.resetConns(M + (M >> 2));
    const rss0 = process.memoryUsage().rss;
    const c0 = Bun.nanoseconds();
    for (let f = 0, done = 0; done < flows; done += BURST) {
      f = rig.refresh(f, flows);
      rig.fp.processBurst(descs, BURST);
    }
    const createNs = (Bun.nanoseconds() - c0) / flows;
    const rssGrowth = process.memoryUsage().rss - rss0;
    const conns = rig.conns;
    add(
      `lookup-${tag}`,
      `parse + hash + connection lookup, ${tag} flows`,
      timeIt(seconds, (f) => {
        const next = rig.refresh(f, flows);
        for (let i = 0; i < BURST; i++) {
          const row = i * FLOW_WORDS;
          if (classify(buf, dv, descs[i * abi.XVS_DESC_WORDS], 64, flowRows, row, l3Len, i) !== Classified.Continue) continue;
          const h = hashFlow(conns.seedConn, flowRows, row);
          sink += conns.lookup(
            h,
            0,
            flowRows[row + FLOW_SRC],
            0,
            0,
            0,
            flowRows[row + FLOW_DST],
            0,
            0,
            0,
            flowRows[row + FLOW_PORTS],
            (flowRows[row + FLOW_META] >>> 8) & 0xff,
          );
        }
        return next;
      }),
    );
    const fwd0 = rig.verdict("fwd_in"),
      new0 = rig.verdict("new_conns");
    const r = timeIt(seconds, (f) => {
      const next = rig.refresh(f, flows);
      rig.fp.processBurst(descs, BURST);
      return next;
    });
    const fwd = rig.verdict("fwd_in") - fwd0,
      created = rig.verdict("new_conns") - new0;
    const err =
      fwd < r.packets ? `only ${fwd} of ${r.packets}+ packets forwarded` : created > 0 ? `${created} new connections during an all-hit run` : undefined;
    add(`fastpath-${tag}`, `fast path (processBurst), ${tag} established flows`, r, err, {
      connections: conns.size,
      createNsPerConn: createNs,
      rssGrowthPerConn: rssGrowth / flows,
      tableBytesPerConn: (conns.rec.byteLength + conns.index.byteLength) / conns.capacity,
    });
  }

  // the 4K-flow fast path again, with 2 MiB of other data walked between bursts (only
  // processBurst is timed): in the daemon the kernel's transmit work and the NAPI thread run on
  // the same core between two bursts and push the fast path's data out of the caches
  {
    rig.resetConns(M + (M >> 2));
    for (let f = 0, done = 0; done < K4; done += BURST) {
      f = rig.refresh(f, K4);
      rig.fp.processBurst(descs, BURST);
    }
    const junk = new Uint8Array(2 << 20);
    let ns = 0,
      packets = 0,
      f = 0;
    const end = performance.now() + seconds * 1000 + 100;
    while (performance.now() < end) {
      f = rig.refresh(f, K4);
      for (let i = 0; i < junk.length; i += 64) junk[i]++;
      const t0 = Bun.nanoseconds();
      rig.fp.processBurst(descs, BURST);
      ns += Bun.nanoseconds() - t0;
      packets += BURST;
    }
    // only processBurst was timed: add the copy loop back so that `net` reads like the others
    add("fastpath-4K-cold", "fast path, 4K flows, 2 MiB of other data walked between bursts (processBurst only)", { ns: ns / packets + baseline, packets });
  }

  // every packet a new connection (scheduling, record, two index entries)
  rig.resetConns(M + (M >> 2));
  let made = 0;
  const newRun = timeIt(Math.min(seconds, 0.5), (f) => {
    if (rig.conns.size > M) rig.resetConns(M + (M >> 2));
    const next = rig.refresh(f, 16_000_000);
    rig.fp.processBurst(descs, BURST);
    made += BURST;
    return next;
  });
  add("new-conns", "fast path, every packet a new connection", newRun, undefined, { connections: made });
  if (sink === 0.5) progress(""); // keeps `sink` (and the work feeding it) alive
  return rows;
}
