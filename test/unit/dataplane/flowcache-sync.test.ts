/**
 * A sync master with the flow cache (flowcache.ts "Sync master", SyncFeed.holds/forwarded): the
 * client packets XDP forwards count into in_pkts at the fold and send the records the kernel's
 * rule (ip_vs_sync_conn_needed, sync/policy.ts syncDecision) gives, and a connection is not
 * cached before its sync_threshold-th client packet passed the fast path. The `flows` map is an
 * in-memory one whose entries the test "forwards" (adds packets, as the XDP program does).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import * as abi from "../../../src/ffi/abi.ts";
import { FlowCache, FOLD_TICKS, type FlowMapIo } from "../../../src/dataplane/flowcache.ts";
import { FLOW_KEY_SIZE, FLOW_VALUE_SIZE, type FlowBatch } from "../../../src/dataplane/flow-entry.ts";
import {
  drainFeed,
  E_PROTO_STATE,
  FEED_MASTER,
  FEED_PERIOD,
  FEED_REFRESH_MS,
  FEED_RETRIES,
  FEED_THRESHOLD,
  newFeedBuffer,
  SyncFeed,
} from "../../../src/dataplane/sync-feed.ts";
import { syncDecision, type SyncSettings } from "../../../src/sync/policy.ts";
import { Harness } from "../../util/harness.ts";
import { ACK, PacketBuilder, SYN } from "../../util/packet.ts";

const VIP = "198.18.0.100",
  RS = "198.18.2.11",
  CLIENT = "198.18.1.2";
const TCP_ESTABLISHED = 1;

/** The `flows` map in memory (key hex -> value bytes). */
class FakeFlows implements FlowMapIo {
  readonly entries = new Map<string, Uint8Array>();
  private key(b: FlowBatch, i: number): string {
    return Buffer.from(b.keys.subarray(i * FLOW_KEY_SIZE, (i + 1) * FLOW_KEY_SIZE)).toString("hex");
  }
  update(b: FlowBatch): number {
    for (let i = 0; i < b.n; i++) {
      this.entries.set(this.key(b, i), b.values.slice(i * FLOW_VALUE_SIZE, (i + 1) * FLOW_VALUE_SIZE));
      b.status[i] = 0;
    }
    return b.n;
  }
  delete(b: FlowBatch): number {
    let ok = 0;
    for (let i = 0; i < b.n; i++) {
      b.status[i] = this.entries.delete(this.key(b, i)) ? 0 : 2;
      if (b.status[i] === 0) ok++;
    }
    return ok;
  }
  lookup(b: FlowBatch): number {
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
  /** What the XDP program does on a hit: count `packets` on every entry of `dir`. */
  forward(dir: number, packets: number, nowNs: number): void {
    for (const v of this.entries.values()) {
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (dv.getUint8(abi.XVS_FLOW_DIR_OFF) !== dir) continue;
      dv.setBigUint64(abi.XVS_FLOW_PACKETS_OFF, dv.getBigUint64(abi.XVS_FLOW_PACKETS_OFF, true) + BigInt(packets), true);
      dv.setBigUint64(abi.XVS_FLOW_BYTES_OFF, dv.getBigUint64(abi.XVS_FLOW_BYTES_OFF, true) + BigInt(packets * 100), true);
      dv.setBigUint64(abi.XVS_FLOW_LAST_NS_OFF, BigInt(nowNs), true);
    }
  }
}

const DEFAULTS: SyncSettings = { syncThreshold: 3, syncPeriod: 50, syncRefreshPeriodMs: 0, syncRetries: 0, syncPersistMode: 0 };

/** A director with one service, the flow cache on a fake map, and a sync feed (master when `master`). */
function setup(protocol: "tcp" | "udp", forward: "masq" | "route", master: boolean, s: SyncSettings = DEFAULTS) {
  const h = new Harness();
  const port = protocol === "tcp" ? 80 : 9000;
  h.model.addService({ protocol, address: VIP, port, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol, address: VIP, port }, { address: RS, port, forward, weight: 1, upperThreshold: 0, lowerThreshold: 0 } as never);
  h.apply();
  const map = new FakeFlows();
  const clockNs = () => h.fp.now * 1e7;
  h.fp.flowCache = FlowCache.create({ io: map, worker: 0, maxEntries: 1024, clockNs }, h.conns);
  const feed = new SyncFeed(newFeedBuffer(1024), h.conns.capacity);
  feed.ring[FEED_THRESHOLD] = s.syncThreshold;
  feed.ring[FEED_PERIOD] = s.syncPeriod;
  feed.ring[FEED_REFRESH_MS] = s.syncRefreshPeriodMs;
  feed.ring[FEED_RETRIES] = s.syncRetries;
  feed.ring[FEED_MASTER] = master ? 1 : 0;
  h.fp.sync = feed;
  const tcp = (src: string, dst: string, sport: number, dport: number, flags: number) =>
    new PacketBuilder().eth().ipv4({ src, dst }).tcp({ sport, dport, flags }).build();
  const udp = (src: string, dst: string, sport: number, dport: number) =>
    new PacketBuilder().eth().ipv4({ src, dst }).udp({ sport, dport }).payload([1, 2, 3, 4]).build();
  /** The states of the records the feed holds since the last call. */
  const records = (): number[] => {
    const out: number[] = [];
    drainFeed(feed.ring, (r, at) => out.push(r[at + E_PROTO_STATE] & 0xff));
    return out;
  };
  /** XDP forwards `n` client packets, then the next fold reads them. */
  const xdp = (n: number) => {
    map.forward(abi.XVS_FLOW_DIR_IN, n, clockNs());
    h.advance(FOLD_TICKS * 10 + 10);
  };
  return { h, map, tcp, udp, records, xdp };
}

/** A TCP NAT connection's handshake (SYN, SYN-ACK, ACK). */
function handshake(x: ReturnType<typeof setup>): void {
  x.h.one(x.tcp(CLIENT, VIP, 40000, 80, SYN));
  x.h.one(x.tcp(RS, CLIENT, 80, 40000, SYN | ACK), 1);
  x.h.one(x.tcp(CLIENT, VIP, 40000, 80, ACK));
  x.h.advance(0);
}

describe("sync master with the flow cache", () => {
  test("TCP: not cached before its 3rd client packet, which is synced; XDP's packets give the 53rd and 103rd records at the folds", () => {
    const x = setup("tcp", "masq", true);
    handshake(x);
    // ESTABLISHED after 2 client packets: held on the AF_XDP path (without a master it would be cached now)
    expect(x.map.entries.size).toBe(0);
    expect(x.records()).toEqual([]);
    x.h.one(x.tcp(CLIENT, VIP, 40000, 80, ACK));
    x.h.advance(0);
    expect(x.records()).toEqual([TCP_ESTABLISHED]); // in_pkts 3
    expect(x.map.entries.size).toBe(2);
    x.xdp(49); // 52
    expect(x.records()).toEqual([]);
    x.xdp(1); // 53
    expect(x.records()).toEqual([TCP_ESTABLISHED]);
    x.xdp(49); // 102
    expect(x.records()).toEqual([]);
    x.xdp(1); // 103
    expect(x.records()).toEqual([TCP_ESTABLISHED]);
    // replies are not in_pkts
    x.map.forward(abi.XVS_FLOW_DIR_OUT, 500, x.h.fp.now * 1e7);
    x.h.advance(FOLD_TICKS * 10 + 10);
    expect(x.records()).toEqual([]);
    // 150 at once cross 153, 203 and 253: one record for the fold (the kernel sends 3 identical ones)
    x.xdp(150);
    expect(x.records()).toEqual([TCP_ESTABLISHED]);
  });

  test("without a master the connection is cached at its handshake's ACK and nothing is fed", () => {
    const x = setup("tcp", "masq", false);
    handshake(x);
    expect(x.map.entries.size).toBe(2);
    x.xdp(100);
    expect(x.records()).toEqual([]);
  });

  test("a connection cached before the master started counts from the master's start, as the fast path does", () => {
    const x = setup("tcp", "masq", false);
    handshake(x);
    expect(x.map.entries.size).toBe(2);
    x.xdp(10);
    x.h.fp.sync!.ring[FEED_MASTER] = 1;
    x.xdp(2);
    expect(x.records()).toEqual([]);
    x.xdp(1); // 3rd since the start
    expect(x.records()).toEqual([TCP_ESTABLISHED]);
  });

  test("UDP DR: the 1st and 2nd packets stay on the fast path, the 3rd is synced and cached", () => {
    const x = setup("udp", "route", true);
    for (let i = 1; i <= 2; i++) {
      x.h.one(x.udp(CLIENT, VIP, 40000, 9000));
      x.h.advance(0);
      expect(x.map.entries.size).toBe(0);
    }
    x.h.one(x.udp(CLIENT, VIP, 40000, 9000));
    x.h.advance(0);
    expect(x.records()).toEqual([0]);
    expect(x.map.entries.size).toBe(1);
    x.xdp(50); // 53
    expect(x.records()).toEqual([0]);
  });

  test("folds of random sizes: a record exactly in the folds where the kernel's per-packet rule sends one", () => {
    fc.assert(
      fc.property(
        fc.record({
          folds: fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 30 }),
          threshold: fc.integer({ min: 0, max: 6 }),
          period: fc.constantFrom(0, 7, 50),
        }),
        (c) => {
          if (c.period !== 0 && c.threshold >= c.period) return;
          const s = { ...DEFAULTS, syncThreshold: c.threshold, syncPeriod: c.period };
          const x = setup("udp", "route", true, s);
          // the fast path's packets until the connection is cached (at in_pkts = threshold, or 1)
          let pkts = 0;
          let kernel = { oldState: 0, syncEndtimeMs: 0 };
          const oracle = (now: number): boolean => {
            const d = syncDecision(
              { protocol: 17, flags: 0, state: 0, oldState: kernel.oldState, timeoutMs: 300_000, syncEndtimeMs: kernel.syncEndtimeMs, inPersistence: false },
              pkts,
              now * 10,
              s,
            );
            kernel = { oldState: d.oldState, syncEndtimeMs: d.syncEndtimeMs };
            return d.send;
          };
          while (x.map.entries.size === 0) {
            x.h.one(x.udp(CLIENT, VIP, 40000, 9000));
            x.h.advance(0);
            pkts++;
            expect(x.records().length).toBe(oracle(x.h.fp.now) ? 1 : 0);
          }
          expect(pkts).toBe(Math.max(1, c.threshold));
          for (const n of c.folds) {
            let sends = 0;
            const now = x.h.fp.now + FOLD_TICKS + 1;
            for (let k = 0; k < n; k++) {
              pkts++;
              if (oracle(now)) sends++;
            }
            x.xdp(n);
            expect(x.records().length).toBe(sends > 0 ? 1 : 0);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
