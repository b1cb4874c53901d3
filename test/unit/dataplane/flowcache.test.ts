/**
 * The flow cache's TypeScript side (src/dataplane/flowcache.ts) over the in-process fast path,
 * with the `flows` map replaced by an in-memory one whose entries the test "forwards" (adds
 * packets, bytes and a last-forwarded time, as the XDP program does).
 */
import { describe, expect, test } from "bun:test";
import * as abi from "../../../src/ffi/abi.ts";
import { FlowCache, type FlowMapIo } from "../../../src/dataplane/flowcache.ts";
import { FLOW_KEY_SIZE, FLOW_VALUE_SIZE, type FlowBatch } from "../../../src/dataplane/flow-entry.ts";
import { DEST_TRAFFIC_BASE, TS_INBYTES, TS_INPKTS, TS_OUTPKTS } from "../../../src/stats/counters.ts";
import { Harness } from "../../util/harness.ts";
import { ACK, FIN, PacketBuilder, SYN } from "../../util/packet.ts";

const VIP = "198.18.0.100",
  RS = "198.18.2.11",
  CLIENT = "198.18.1.2";

/** The `flows` map in memory: key hex -> value bytes; `cap` entries at most (E2BIG beyond). */
class FakeFlows implements FlowMapIo {
  readonly entries = new Map<string, Uint8Array>();
  calls = 0;
  constructor(private readonly cap = 1 << 20) {}
  private key(b: FlowBatch, i: number): string {
    return Buffer.from(b.keys.subarray(i * FLOW_KEY_SIZE, (i + 1) * FLOW_KEY_SIZE)).toString("hex");
  }
  update(b: FlowBatch): number {
    this.calls++;
    let ok = 0;
    for (let i = 0; i < b.n; i++) {
      const k = this.key(b, i);
      if (!this.entries.has(k) && this.entries.size >= this.cap) {
        b.status[i] = 7;
        continue;
      }
      this.entries.set(k, b.values.slice(i * FLOW_VALUE_SIZE, (i + 1) * FLOW_VALUE_SIZE));
      b.status[i] = 0;
      ok++;
    }
    return ok;
  }
  delete(b: FlowBatch): number {
    this.calls++;
    let ok = 0;
    for (let i = 0; i < b.n; i++) {
      b.status[i] = this.entries.delete(this.key(b, i)) ? 0 : 2;
      if (b.status[i] === 0) ok++;
    }
    return ok;
  }
  lookup(b: FlowBatch): number {
    this.calls++;
    let ok = 0;
    for (let i = 0; i < b.n; i++) {
      const v = this.entries.get(this.key(b, i));
      b.status[i] = v ? 0 : 2;
      if (v) {
        b.values.set(v, i * FLOW_VALUE_SIZE);
        ok++;
      }
    }
    return ok;
  }
  /** What the XDP program does on a hit: count the packet and its time, for every entry of `dir`. */
  forward(dir: number, packets: number, bytes: number, nowNs: number): void {
    for (const v of this.entries.values()) {
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (dv.getUint8(abi.XVS_FLOW_DIR_OFF) !== dir) continue;
      dv.setBigUint64(abi.XVS_FLOW_PACKETS_OFF, dv.getBigUint64(abi.XVS_FLOW_PACKETS_OFF, true) + BigInt(packets), true);
      dv.setBigUint64(abi.XVS_FLOW_BYTES_OFF, dv.getBigUint64(abi.XVS_FLOW_BYTES_OFF, true) + BigInt(bytes), true);
      dv.setBigUint64(abi.XVS_FLOW_LAST_NS_OFF, BigInt(nowNs), true);
    }
  }
  dirs(): number[] {
    return [...this.entries.values()].map((v) => v[abi.XVS_FLOW_DIR_OFF]).sort();
  }
}

function setup(protocol: "tcp" | "udp", forward: "masq" | "route", cap?: number) {
  const h = new Harness();
  const port = protocol === "tcp" ? 80 : 9000;
  h.model.addService({ protocol, address: VIP, port, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol, address: VIP, port }, { address: RS, port, forward, weight: 1, upperThreshold: 0, lowerThreshold: 0 } as never);
  h.apply();
  const map = new FakeFlows(cap);
  // the map's clock in the fast path's ticks (10 ms)
  const clockNs = () => h.fp.now * 1e7;
  h.fp.flowCache = FlowCache.create({ io: map, worker: 0, maxEntries: 1024, clockNs }, h.conns);
  const tcp = (src: string, dst: string, sport: number, dport: number, flags: number) =>
    new PacketBuilder().eth().ipv4({ src, dst }).tcp({ sport, dport, flags }).build();
  const udp = (src: string, dst: string, sport: number, dport: number) =>
    new PacketBuilder().eth().ipv4({ src, dst }).udp({ sport, dport }).payload([1, 2, 3, 4]).build();
  return { h, map, port, tcp, udp, clockNs };
}

/** Service and dest traffic words (svc id 0, dest id 0 in a fresh harness). */
function traffic(h: Harness, word: number): { svc: number; dest: number } {
  return { svc: h.counters.traffic[word], dest: h.counters.traffic[DEST_TRAFFIC_BASE + word] };
}

describe("flow cache: which connections get entries", () => {
  test("TCP NAT: both directions once the handshake the fast path saw made it ESTABLISHED, not before", () => {
    const { h, map, tcp } = setup("tcp", "masq");
    expect(h.one(tcp(CLIENT, VIP, 40000, 80, SYN)).port).toBe(1);
    h.advance(0);
    expect(map.entries.size).toBe(0);
    expect(h.one(tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1).port).toBe(0);
    h.advance(0);
    expect(map.entries.size).toBe(0);
    expect(h.one(tcp(CLIENT, VIP, 40000, 80, ACK)).port).toBe(1);
    h.advance(0);
    expect(map.dirs()).toEqual([abi.XVS_FLOW_DIR_IN, abi.XVS_FLOW_DIR_OUT]);
  });

  test("UDP NAT: no entry before the first reply; both at the reply", () => {
    const { h, map, udp } = setup("udp", "masq");
    h.one(udp(CLIENT, VIP, 40000, 9000));
    h.one(udp(CLIENT, VIP, 40000, 9000));
    h.advance(0);
    expect(map.entries.size).toBe(0);
    expect(h.one(udp(RS, CLIENT, 9000, 40000), 1).port).toBe(0);
    h.advance(0);
    expect(map.dirs()).toEqual([abi.XVS_FLOW_DIR_IN, abi.XVS_FLOW_DIR_OUT]);
  });

  test("UDP DR: the client's direction after the first packet; a burst of new flows is one write", () => {
    const { h, map, udp } = setup("udp", "route");
    const calls = map.calls;
    h.run(Array.from({ length: 16 }, (_, i) => udp(CLIENT, VIP, 41000 + i, 9000)));
    h.advance(0);
    expect(map.entries.size).toBe(16);
    expect(map.dirs().every((d) => d === abi.XVS_FLOW_DIR_IN)).toBe(true);
    expect(map.calls - calls).toBe(1);
  });

  test("a full map leaves the flow on the AF_XDP path, counted", () => {
    const { h, map, udp } = setup("udp", "route", 2);
    h.run([40001, 40002, 40003].map((p) => udp(CLIENT, VIP, p, 9000)));
    h.advance(0);
    expect(map.entries.size).toBe(2);
    expect(h.stats().flow_cache_full).toBe(1);
    // its next packet is forwarded here as before, and not offered to the map again
    expect(h.one(udp(CLIENT, VIP, 40003, 9000)).port).toBe(1);
    h.advance(0);
    expect(h.stats().flow_cache_full).toBe(1);
  });

  test("off (the default of a bare fast path): nothing is cached", () => {
    const h = new Harness();
    h.model.addService({ protocol: "udp", address: VIP, port: 9000, scheduler: "rr", onePacket: false, schedFlags: [] });
    h.model.addDest({ protocol: "udp", address: VIP, port: 9000 }, {
      address: RS,
      port: 9000,
      forward: "route",
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    } as never);
    h.apply();
    expect(h.fp.flowCache.enabled).toBe(false);
    h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 1, dport: 9000 }).build());
    h.advance(0);
    expect(h.fp.flowCache.live).toBe(0);
  });
});

describe("flow cache: counters, state and expiry stay the fast path's", () => {
  test("packets XDP forwarded are folded into the service and real-server counters", () => {
    const { h, map, tcp, clockNs } = setup("tcp", "masq");
    h.one(tcp(CLIENT, VIP, 40000, 80, SYN));
    h.one(tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1);
    h.one(tcp(CLIENT, VIP, 40000, 80, ACK));
    h.advance(0);
    const inBefore = traffic(h, TS_INPKTS),
      bytesBefore = traffic(h, TS_INBYTES),
      outBefore = traffic(h, TS_OUTPKTS);
    map.forward(abi.XVS_FLOW_DIR_IN, 10, 1000, clockNs());
    map.forward(abi.XVS_FLOW_DIR_OUT, 7, 700, clockNs());
    h.advance(1010);
    expect(traffic(h, TS_INPKTS).svc - inBefore.svc).toBe(10);
    expect(traffic(h, TS_INPKTS).dest - inBefore.dest).toBe(10);
    expect(traffic(h, TS_INBYTES).svc - bytesBefore.svc).toBe(1000);
    expect(traffic(h, TS_OUTPKTS).svc - outBefore.svc).toBe(7);
    // folded once: another fold adds nothing
    h.advance(1010);
    expect(traffic(h, TS_INPKTS).svc - inBefore.svc).toBe(10);
  });

  test("a FIN the fast path sees removes the entries, with their last counters folded", () => {
    const { h, map, tcp, clockNs } = setup("tcp", "masq");
    h.one(tcp(CLIENT, VIP, 40000, 80, SYN));
    h.one(tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1);
    h.one(tcp(CLIENT, VIP, 40000, 80, ACK));
    h.advance(0);
    expect(map.entries.size).toBe(2);
    const before = traffic(h, TS_INPKTS).svc;
    map.forward(abi.XVS_FLOW_DIR_IN, 5, 500, clockNs());
    expect(h.one(tcp(CLIENT, VIP, 40000, 80, FIN | ACK)).port).toBe(1);
    h.advance(0);
    expect(map.entries.size).toBe(0);
    // 5 forwarded by XDP + the FIN itself
    expect(traffic(h, TS_INPKTS).svc - before).toBe(6);
    // not cached again in FIN_WAIT
    h.one(tcp(CLIENT, VIP, 40000, 80, ACK));
    h.advance(0);
    expect(map.entries.size).toBe(0);
  });

  test("a cached connection lives while XDP forwards it, and expires on time once idle", () => {
    const { h, map, udp, clockNs } = setup("udp", "route");
    h.one(udp(CLIENT, VIP, 40000, 9000));
    h.advance(0);
    expect(map.entries.size).toBe(1);
    const timeoutMs = 300_000; // UDP default
    // XDP forwards a packet every 100 s: the connection outlives its timeout several times
    for (let i = 0; i < 6; i++) {
      h.advance(100_000);
      map.forward(abi.XVS_FLOW_DIR_IN, 1, 32, clockNs());
    }
    expect(h.stats().conns_expired ?? 0).toBe(0);
    expect(map.entries.size).toBe(1);
    // idle from now: still there just before the timeout, gone (entry too) just after
    h.advance(timeoutMs - 2000);
    expect(h.stats().conns_expired ?? 0).toBe(0);
    h.advance(3000);
    expect(h.stats().conns_expired).toBe(1);
    expect(map.entries.size).toBe(0);
  });

  test("a reply tuple two connections share belongs to the newer one; the older one's expiry leaves its entry", () => {
    // one client port to two virtual ports of the same real server:port (nat.test.ts's case)
    const h = new Harness();
    for (const vport of [9000, 9001]) {
      h.model.addService({ protocol: "udp", address: VIP, port: vport, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "udp", address: VIP, port: vport }, {
        address: RS,
        port: 9000,
        forward: "masq",
        weight: 1,
        upperThreshold: 0,
        lowerThreshold: 0,
      } as never);
    }
    h.apply();
    const map = new FakeFlows();
    h.fp.flowCache = FlowCache.create({ io: map, worker: 0, maxEntries: 1024, clockNs: () => h.fp.now * 1e7 }, h.conns);
    const udp = (src: string, dst: string, sport: number, dport: number) =>
      new PacketBuilder().eth().ipv4({ src, dst }).udp({ sport, dport }).payload([1]).build();
    const outConn = () =>
      [...map.entries.values()]
        .filter((v) => v[abi.XVS_FLOW_DIR_OFF] === abi.XVS_FLOW_DIR_OUT)
        .map((v) => new DataView(v.buffer, v.byteOffset).getUint32(abi.XVS_FLOW_CONN_OFF, true));
    h.one(udp(CLIENT, VIP, 40000, 9000));
    h.one(udp(RS, CLIENT, 9000, 40000), 1);
    h.advance(0);
    const [a] = outConn();
    h.advance(100_000);
    h.one(udp(CLIENT, VIP, 40000, 9001));
    expect(h.one(udp(RS, CLIENT, 9000, 40000), 1).port).toBe(0);
    h.advance(0);
    const [b] = outConn();
    expect(b).not.toBe(a);
    // the older connection expires (300 s after its last packet); the newer one's entry stays
    h.advance(201_000);
    expect(h.stats().conns_expired).toBe(1);
    expect(outConn()).toEqual([b]);
  });
});

describe("flow cache: a new NAT connection takes over a cached reply tuple", () => {
  test("UDP: the older connection's reply entry goes in the burst that made the newer one, before its first reply; its counters are folded", () => {
    // one client port to two virtual ports of the same real server:port: both connections' replies have one tuple
    const h = new Harness();
    for (const vport of [9000, 9001]) {
      h.model.addService({ protocol: "udp", address: VIP, port: vport, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "udp", address: VIP, port: vport }, {
        address: RS,
        port: 9000,
        forward: "masq",
        weight: 1,
        upperThreshold: 0,
        lowerThreshold: 0,
      } as never);
    }
    h.apply();
    const map = new FakeFlows();
    const clockNs = () => h.fp.now * 1e7;
    h.fp.flowCache = FlowCache.create({ io: map, worker: 0, maxEntries: 1024, clockNs }, h.conns);
    const udp = (src: string, dst: string, sport: number, dport: number) =>
      new PacketBuilder().eth().ipv4({ src, dst }).udp({ sport, dport }).payload([1]).build();
    const entries = (dir: number) =>
      [...map.entries.values()]
        .filter((v) => v[abi.XVS_FLOW_DIR_OFF] === dir)
        .map((v) => {
          const dv = new DataView(v.buffer, v.byteOffset);
          return { conn: dv.getUint32(abi.XVS_FLOW_CONN_OFF, true), vport: dv.getUint16(abi.XVS_FLOW_VPORT_OFF) };
        });
    h.one(udp(CLIENT, VIP, 40000, 9000));
    h.one(udp(RS, CLIENT, 9000, 40000), 1);
    h.advance(0);
    const [a] = entries(abi.XVS_FLOW_DIR_OUT);
    expect(a.vport).toBe(9000);
    h.advance(100_000);
    // XDP forwarded 4 replies of the older connection (long ago: its deadline stays), not folded yet
    map.forward(abi.XVS_FLOW_DIR_OUT, 4, 400, 1);
    const outBefore = h.counters.traffic[TS_OUTPKTS];
    // the newer connection's first request: at the end of its burst the reply entry with the
    // older virtual port (9000) is gone, so the newer one's reply reaches the fast path
    expect(h.one(udp(CLIENT, VIP, 40000, 9001)).port).toBe(1);
    h.advance(0);
    expect(entries(abi.XVS_FLOW_DIR_OUT)).toEqual([]);
    // the older connection keeps its request entry; its 4 replies were counted on its service (svc 0)
    expect(entries(abi.XVS_FLOW_DIR_IN).map((e) => e.conn)).toEqual([a.conn]);
    expect(h.counters.traffic[TS_OUTPKTS] - outBefore).toBe(4);
    expect(h.fp.flowCache.cachedDirs(a.conn)).toBe(1);
    // the reply, handled here with the newer connection (virtual port 9001), caches its entries
    const r = h.one(udp(RS, CLIENT, 9000, 40000), 1);
    expect(r.port).toBe(0);
    expect(new DataView(r.frame.buffer).getUint16(34)).toBe(9001);
    h.advance(0);
    const out = entries(abi.XVS_FLOW_DIR_OUT);
    expect(out.length).toBe(1);
    expect(out[0].conn).not.toBe(a.conn);
    expect(out[0].vport).toBe(9001);
    expect(entries(abi.XVS_FLOW_DIR_IN).length).toBe(2);
    // the older connection's expiry (300 s after its last packet) leaves the newer one's reply entry alone
    h.advance(201_000);
    expect(h.stats().conns_expired).toBe(1);
    expect(entries(abi.XVS_FLOW_DIR_OUT).map((e) => e.conn)).toEqual([out[0].conn]);
  });

  test("TCP: the older connection stops owning the reply entry at once (its folds no longer read the newer one's counters)", () => {
    const h = new Harness();
    for (const vport of [80, 81]) {
      h.model.addService({ protocol: "tcp", address: VIP, port: vport, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "tcp", address: VIP, port: vport }, {
        address: RS,
        port: 80,
        forward: "masq",
        weight: 1,
        upperThreshold: 0,
        lowerThreshold: 0,
      } as never);
    }
    h.apply();
    const map = new FakeFlows();
    h.fp.flowCache = FlowCache.create({ io: map, worker: 0, maxEntries: 1024, clockNs: () => h.fp.now * 1e7 }, h.conns);
    const tcp = (src: string, dst: string, sport: number, dport: number, flags: number) =>
      new PacketBuilder().eth().ipv4({ src, dst }).tcp({ sport, dport, flags }).build();
    h.one(tcp(CLIENT, VIP, 40000, 80, SYN));
    h.one(tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1);
    h.one(tcp(CLIENT, VIP, 40000, 80, ACK));
    h.advance(0);
    expect(map.dirs()).toEqual([abi.XVS_FLOW_DIR_IN, abi.XVS_FLOW_DIR_OUT]);
    h.one(tcp(CLIENT, VIP, 40000, 81, SYN));
    h.advance(0);
    // the older: its request entry only; the reply entry waits for the newer one's handshake
    expect(map.dirs()).toEqual([abi.XVS_FLOW_DIR_IN]);
    h.one(tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1);
    h.one(tcp(CLIENT, VIP, 40000, 81, ACK));
    h.advance(0);
    expect(map.dirs()).toEqual([abi.XVS_FLOW_DIR_IN, abi.XVS_FLOW_DIR_IN, abi.XVS_FLOW_DIR_OUT]);
  });
});
