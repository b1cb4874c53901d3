/**
 * The sync daemon's worker side (dataplane/sync-feed.ts) and its main-thread translation
 * (control/sync-daemon.ts): the per-packet send rule agrees with sync/policy.ts's syncDecision
 * (the kernel's ip_vs_sync_conn_needed) packet for packet; the ring carries copies that decode to
 * the kernel's record; a full ring counts its losses; installSynced creates, updates and counts
 * connections and templates as ip_vs_proc_conn does, and the fast path's lookups find them.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  CF_FWD_MASK,
  CF_INACTIVE,
  CF_NOOUTPUT,
  CF_TEMPLATE,
  CF_USED,
  CONN_CADDR,
  CONN_CONTROL,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DEST,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
} from "../../../src/conn/table.ts";
import { Counters } from "../../../src/stats/counters.ts";
import {
  drainFeed,
  FEED_LOST,
  FEED_MASTER,
  FEED_PERIOD,
  FEED_PERSIST_MODE,
  FEED_REFRESH_MS,
  FEED_RETRIES,
  FEED_THRESHOLD,
  I_WORDS,
  installSynced,
  newFeedBuffer,
  SyncFeed,
} from "../../../src/dataplane/sync-feed.ts";
import { feedConn, packInstall } from "../../../src/control/sync-daemon.ts";
import { syncDecision, type SyncSettings } from "../../../src/sync/policy.ts";
import { NextHopView } from "../../../src/dataplane/route.ts";
import { MAX_NEXTHOPS, NH_WORDS, newResolveRing } from "../../../src/nexthop/table.ts";
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { hashTuple } from "../../../src/wire/flow.ts";
import { startXvs } from "../cli/fixture.ts";

const A = (a: number, b: number, c: number, d: number) => (a << 24) | (b << 16) | (c << 8) | d | 0;
const CLIENT = A(198, 18, 1, 2),
  VIP = A(198, 18, 0, 100),
  RS = A(198, 18, 2, 11);
const TCP = 6,
  UDP = 17;

function settings(feed: SyncFeed, s: SyncSettings): void {
  feed.ring[FEED_THRESHOLD] = s.syncThreshold;
  feed.ring[FEED_PERIOD] = s.syncPeriod;
  feed.ring[FEED_REFRESH_MS] = s.syncRefreshPeriodMs;
  feed.ring[FEED_RETRIES] = s.syncRetries;
  feed.ring[FEED_PERSIST_MODE] = s.syncPersistMode;
  feed.ring[FEED_MASTER] = 1;
}

/** A connection record as the fast path makes it (fields the feed reads). */
function conn(t: ConnTable, proto: number, state: number, cport: number, flags = CF_FWD_MASK & 3): number {
  const id = t.alloc();
  const o = id * CONN_WORDS;
  t.rec[o + CONN_FLAGS] = CF_USED | flags | CF_NOOUTPUT;
  t.rec[o + CONN_PROTO_STATE] = (proto << 8) | state;
  t.rec[o + CONN_CADDR] = CLIENT;
  t.rec[o + CONN_VADDR] = VIP;
  t.rec[o + CONN_DADDR] = RS;
  t.rec[o + CONN_CPORT_VPORT] = (cport << 16) | 80 | 0;
  t.rec[o + CONN_DPORT] = 80;
  t.rec[o + CONN_TIMEOUT] = 900 * 100;
  return id;
}

const noHop = () => {};

function entries(feed: SyncFeed): Int32Array[] {
  const out: Int32Array[] = [];
  drainFeed(feed.ring, (r, at) => out.push(r.slice(at, at + 20)));
  return out;
}

describe("the per-packet send rule", () => {
  test("agrees with syncDecision packet for packet over random state sequences, thresholds, refresh periods and clocks", () => {
    fc.assert(
      fc.property(
        fc.record({
          proto: fc.constantFrom(TCP, UDP, 132),
          steps: fc.array(fc.record({ state: fc.integer({ min: 1, max: 12 }), dtTicks: fc.integer({ min: 0, max: 3000 }) }), { minLength: 1, maxLength: 120 }),
          threshold: fc.integer({ min: 0, max: 5 }),
          period: fc.constantFrom(0, 7, 50),
          refreshSec: fc.constantFrom(0, 1, 20),
          retries: fc.integer({ min: 0, max: 3 }),
          timeoutSec: fc.constantFrom(60, 900),
        }),
        (c) => {
          if (c.period !== 0 && c.threshold >= c.period) return;
          const s: SyncSettings = {
            syncThreshold: c.threshold,
            syncPeriod: c.period,
            syncRefreshPeriodMs: c.refreshSec * 1000,
            syncRetries: c.retries,
            syncPersistMode: 0,
          };
          const t = new ConnTable(64);
          const feed = new SyncFeed(newFeedBuffer(256), t.capacity);
          settings(feed, s);
          const id = conn(t, c.proto, 1, 1000);
          t.rec[id * CONN_WORDS + CONN_TIMEOUT] = c.timeoutSec * 100;
          const fp = { conns: t, now: 1, setReplyHop: noHop };
          let old = { oldState: 0, syncEndtimeMs: 0 };
          let pkts = 0;
          let prevPs = (c.proto << 8) | 1;
          for (const st of c.steps) {
            fp.now += st.dtTicks;
            t.rec[id * CONN_WORDS + CONN_PROTO_STATE] = (c.proto << 8) | st.state;
            pkts++;
            feed.packet(fp, id, prevPs, 0, new Uint32Array(8), 0);
            prevPs = (c.proto << 8) | st.state;
            const want = syncDecision(
              {
                protocol: c.proto,
                flags: 0,
                state: st.state,
                oldState: old.oldState,
                timeoutMs: c.timeoutSec * 1000,
                syncEndtimeMs: old.syncEndtimeMs,
                inPersistence: false,
              },
              pkts,
              fp.now * 10,
              s,
            );
            old = { oldState: want.oldState, syncEndtimeMs: want.syncEndtimeMs };
            expect(entries(feed).length).toBe(want.send ? 1 : 0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("defaults: a TCP connection goes out at its 3rd, 53rd, 103rd packet in ESTABLISHED and at once on FIN_WAIT; its template after every packet", () => {
    const t = new ConnTable(64);
    const feed = new SyncFeed(newFeedBuffer(), t.capacity);
    settings(feed, { syncThreshold: 3, syncPeriod: 50, syncRefreshPeriodMs: 0, syncRetries: 0, syncPersistMode: 0 });
    const tpl = conn(t, TCP, 0, 0, 3 | CF_TEMPLATE);
    const id = conn(t, TCP, 3, 1000);
    t.rec[id * CONN_WORDS + CONN_CONTROL] = tpl + 1;
    const fp = { conns: t, now: 100, setReplyHop: noHop };
    const sent: string[] = [];
    feed.packet(fp, id, TCP << 8, 0, new Uint32Array(8), 0); // the SYN: SYN_RECV
    t.rec[id * CONN_WORDS + CONN_PROTO_STATE] = (TCP << 8) | 1;
    for (let p = 2; p <= 110; p++) {
      feed.packet(fp, id, (TCP << 8) | 1, 0, new Uint32Array(8), 0);
      for (const e of entries(feed)) sent.push(`${p}:${(e[0] & CF_TEMPLATE) !== 0 ? "tpl" : "conn"}`);
    }
    expect(sent.filter((x) => x.endsWith(":conn"))).toEqual(["3:conn", "53:conn", "103:conn"]);
    // the SYN's packet included: the template's rule skips the count when sync_period > 0
    expect(sent.filter((x) => x.endsWith(":tpl")).length).toBe(110);
    t.rec[id * CONN_WORDS + CONN_PROTO_STATE] = (TCP << 8) | 4;
    feed.packet(fp, id, (TCP << 8) | 1, 0, new Uint32Array(8), 0);
    expect(entries(feed).map((e) => e[1] & 0xff)).toEqual([4, 0]);
  });

  test("a reused record counts from zero; persist mode 1 sends the template, not the connection; a full ring counts its losses", () => {
    const t = new ConnTable(64);
    const feed = new SyncFeed(newFeedBuffer(4), t.capacity);
    settings(feed, { syncThreshold: 3, syncPeriod: 0, syncRefreshPeriodMs: 0, syncRetries: 0, syncPersistMode: 1 });
    const fp = { conns: t, now: 100, setReplyHop: noHop };
    const id = conn(t, UDP, 0, 1000);
    for (let p = 1; p <= 3; p++) feed.packet(fp, id, UDP << 8, 0, new Uint32Array(8), 0);
    expect(entries(feed).length).toBe(1);
    // the record now carries another connection (another client port): its count starts again
    t.rec[id * CONN_WORDS + CONN_CPORT_VPORT] = (2000 << 16) | 80 | 0;
    for (let p = 1; p <= 2; p++) feed.packet(fp, id, UDP << 8, 0, new Uint32Array(8), 0);
    expect(entries(feed).length).toBe(0);
    feed.packet(fp, id, UDP << 8, 0, new Uint32Array(8), 0);
    expect(entries(feed).length).toBe(1);
    // under a template with sync_persist_mode=1: only the template goes, after each packet (with
    // sync_period > 0; with 0 a template too waits for in_pkts == sync_threshold)
    feed.ring[FEED_PERIOD] = 50;
    const tpl = conn(t, UDP, 0, 0, 3 | CF_TEMPLATE);
    t.rec[id * CONN_WORDS + CONN_CONTROL] = tpl + 1;
    for (let p = 0; p < 6; p++) feed.packet(fp, id, UDP << 8, 0, new Uint32Array(8), 0);
    expect(feed.ring[FEED_LOST]).toBe(2);
    expect(entries(feed).every((e) => (e[0] & CF_TEMPLATE) !== 0)).toBe(true);
  });

  test("nothing is fed while no master runs", () => {
    const t = new ConnTable(64);
    const feed = new SyncFeed(newFeedBuffer(), t.capacity);
    const id = conn(t, UDP, 0, 1000);
    for (let p = 0; p < 10; p++) feed.packet({ conns: t, now: 1, setReplyHop: noHop }, id, UDP << 8, 0, new Uint32Array(8), 0);
    expect(entries(feed).length).toBe(0);
  });
});

describe("from the ring to the wire and into a backup's table", () => {
  async function table() {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.2.11:80", "-g"])).exit).toBe(0);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.2.12:80", "-m"])).exit).toBe(0);
    return x.daemon.tables();
  }

  test("a fed connection becomes the kernel's record; the backup installs it ESTABLISHED, bound, found by the fast path's lookup, and updates it", async () => {
    const t = await table();
    const src = new ConnTable(64);
    const feed = new SyncFeed(newFeedBuffer(), src.capacity);
    settings(feed, { syncThreshold: 3, syncPeriod: 50, syncRefreshPeriodMs: 0, syncRetries: 0, syncPersistMode: 0 });
    const id = conn(src, TCP, 1, 40000);
    src.rec[id * CONN_WORDS + CONN_FLAGS] &= ~CF_INACTIVE;
    for (let p = 0; p < 3; p++) feed.packet({ conns: src, now: 5, setReplyHop: noHop }, id, (TCP << 8) | 1, 0, new Uint32Array(8), 0);
    const conns: ReturnType<typeof feedConn>[] = [];
    drainFeed(feed.ring, (r, at) => conns.push(feedConn(r, at, t, 1)));
    expect(conns).toEqual([
      {
        version: 1,
        family: 4,
        protocol: TCP,
        flags: 3 | 0x80,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeoutSec: 900,
        caddr: "198.18.1.2",
        vaddr: "198.18.0.100",
        daddr: "198.18.2.11",
      },
    ]);
    // through the wire format and back
    const [msg] = encodeSyncMessages([conns[0]!], { syncid: 5, maxlen: 1472, version: 1 });
    const dec = decodeSyncMessage(msg, { syncid: 5, maxlen: 1472 });
    expect(dec.records.length).toBe(1);
    const batch = new Int32Array(I_WORDS * 2);
    expect(packInstall(batch, 0, dec.records[0].conn, t, 300 * 100)).toBe(true);
    // a record for a real server the backup does not have is not packed
    expect(packInstall(batch, I_WORDS, { ...dec.records[0].conn, daddr: "198.18.2.99" }, t, 300 * 100)).toBe(false);
    const bk = new ConnTable(64);
    const counters = new Counters();
    const nh = new NextHopView(new SharedArrayBuffer(MAX_NEXTHOPS * NH_WORDS * 4), newResolveRing());
    const r = installSynced({ conns: bk, counters, tables: t, nh, now: 10 }, batch.slice(0, I_WORDS), null);
    expect(r).toEqual({ created: 1, updated: 0, refused: 0 });
    const hash = hashTuple(bk.seedConn, CLIENT, 0, 0, 0, VIP, 0, 0, 0, (40000 << 16) | 80 | 0, TCP);
    const hit = bk.lookup(hash, 0, CLIENT, 0, 0, 0, VIP, 0, 0, 0, (40000 << 16) | 80 | 0, TCP);
    expect(hit).toBeGreaterThanOrEqual(0);
    const o = (hit >> 1) * CONN_WORDS;
    expect(bk.rec[o + CONN_PROTO_STATE]).toBe((TCP << 8) | 1);
    expect(bk.rec[o + CONN_TIMEOUT]).toBe(900 * 100);
    expect(bk.rec[o + CONN_DADDR]).toBe(RS);
    expect(bk.rec[o + CONN_FLAGS] & CF_FWD_MASK).toBe(3);
    const dest = bk.rec[o + CONN_DEST];
    expect(bk.rec[o + CONN_SVC]).toBeGreaterThanOrEqual(0);
    expect(counters.active[dest]).toBe(1);
    expect(bk.size).toBe(1);
    // the same connection again, now FIN_WAIT and inactive: updated in place, counted inactive
    const upd = { ...dec.records[0].conn, state: 4, flags: dec.records[0].conn.flags | 0x100 };
    packInstall(batch, 0, upd, t, 300 * 100);
    expect(installSynced({ conns: bk, counters, tables: t, nh, now: 20 }, batch.slice(0, I_WORDS), null)).toEqual({ created: 0, updated: 1, refused: 0 });
    expect(bk.size).toBe(1);
    expect(bk.rec[o + CONN_PROTO_STATE] & 0xff).toBe(4);
    expect([counters.active[dest], counters.inactive[dest]]).toEqual([0, 1]);
  });

  test("a NAT connection gets its reply entry; a template goes to the template index; a full table refuses", async () => {
    const t = await table();
    const bk = new ConnTable(2);
    const counters = new Counters();
    const nh = new NextHopView(new SharedArrayBuffer(MAX_NEXTHOPS * NH_WORDS * 4), newResolveRing());
    const base = {
      version: 1 as const,
      family: 4 as const,
      protocol: TCP,
      fwmark: 0,
      timeoutSec: 60,
      caddr: "198.18.1.2",
      vaddr: "198.18.0.100",
      vport: 80,
      dport: 80,
    };
    const batch = new Int32Array(I_WORDS * 3);
    expect(packInstall(batch, 0, { ...base, flags: 0, state: 1, cport: 41000, daddr: "198.18.2.12" }, t, 0)).toBe(true);
    expect(packInstall(batch, I_WORDS, { ...base, flags: 0x1000, state: 1, cport: 0, caddr: "198.18.1.0", daddr: "198.18.2.11" }, t, 0)).toBe(true);
    expect(packInstall(batch, 2 * I_WORDS, { ...base, flags: 0, state: 1, cport: 41001, daddr: "198.18.2.12" }, t, 0)).toBe(true);
    expect(installSynced({ conns: bk, counters, tables: t, nh, now: 1 }, batch, null)).toEqual({ created: 2, updated: 0, refused: 1 });
    // the real server's reply finds the NAT connection (OUT entry)
    const rs2 = A(198, 18, 2, 12);
    const ports = (80 << 16) | 41000 | 0;
    const hit = bk.lookup(hashTuple(bk.seedConn, rs2, 0, 0, 0, CLIENT, 0, 0, 0, ports, TCP), 0, rs2, 0, 0, 0, CLIENT, 0, 0, 0, ports, TCP);
    expect(hit & 1).toBe(1);
    const tpl = bk.lookupTemplate(0, A(198, 18, 1, 0), 0, 0, 0, VIP, 0, 0, 0, 80, TCP);
    expect(tpl).toBeGreaterThanOrEqual(0);
    expect(bk.rec[tpl * CONN_WORDS + CONN_FLAGS] & CF_TEMPLATE).toBe(CF_TEMPLATE);
    expect(counters.persist[bk.rec[tpl * CONN_WORDS + CONN_DEST]]).toBe(1);
  });
});
