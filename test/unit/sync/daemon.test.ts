/**
 * A running backup sync daemon (control/sync-daemon.ts) fed real datagrams over loopback: good
 * records are counted and resolved against the table, hostile ones (truncated, oversized, another
 * syncid or version, lying lengths, no service, no real server, random bytes, a flood) are counted
 * per reason and dropped, and the daemon keeps answering. A master daemon fed as a worker feeds it
 * sends a full message at once and the rest when it is 2 s old.
 */
import { describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { syncManager } from "../../../src/control/sync-daemon.ts";
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { SyncFeed } from "../../../src/dataplane/sync-feed.ts";
import {
  CF_NOOUTPUT,
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
} from "../../../src/conn/table.ts";
import type { SyncConn } from "../../../src/sync/format.ts";
import { startXvs } from "../cli/fixture.ts";

const PORT = 18848 + (process.pid % 1000);
const good: SyncConn = {
  version: 1,
  family: 4,
  protocol: 6,
  flags: 3,
  state: 1,
  cport: 40000,
  vport: 80,
  dport: 80,
  fwmark: 0,
  timeoutSec: 900,
  caddr: "198.18.1.2",
  vaddr: "198.18.0.100",
  daddr: "198.18.2.11",
};

const sender = dgram.createSocket("udp4");

function send(b: Uint8Array): Promise<void> {
  return new Promise((res, rej) => sender.send(b, PORT, "127.0.0.1", (e) => (e ? rej(e) : res())));
}

describe("a backup daemon reading hostile datagrams", () => {
  test("good records are taken, every hostile datagram is counted under its reason, and the daemon goes on", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.2.11:80", "-g"])).exit).toBe(0);
    expect(
      (await x.adm(["--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "5", "--sync-maxlen", "1024", "--mcast-port", String(PORT)])).exit,
    ).toBe(0);
    const [msg] = encodeSyncMessages([good, { ...good, cport: 40001 }], { syncid: 5, maxlen: 1472, version: 1 });
    await send(msg);
    await send(msg.slice(0, 3)); // msg_too_short
    await send(msg.slice(0, msg.length - 4)); // msg_size_mismatch (truncated)
    await send(new Uint8Array(9000)); // msg_oversized (the backup's sync_maxlen is 1024)
    const other = msg.slice();
    other[1] = 6;
    await send(other); // msg_other_syncid
    const badVer = msg.slice();
    badVer[5] = 2;
    await send(badVer); // msg_unknown_version
    const [noSvc] = encodeSyncMessages([{ ...good, vaddr: "198.18.0.200" }], { syncid: 5, maxlen: 1472, version: 1 });
    await send(noSvc); // rec_no_service
    const [noDest] = encodeSyncMessages([{ ...good, daddr: "198.18.2.99" }], { syncid: 5, maxlen: 1472, version: 1 });
    await send(noDest); // rec_no_dest
    // a flood of random bytes
    let seed = 7;
    for (let i = 0; i < 500; i++) {
      const b = new Uint8Array(4 + (i % 200));
      for (let k = 0; k < b.length; k++) {
        seed = (Math.imul(seed, 1103515245) + 12345) | 0;
        b[k] = seed >>> 24;
      }
      await send(b);
      // paced: sender and daemon share this event loop, and a socket buffer overrun would lose datagrams before the daemon saw them
      if (i % 10 === 0) await Bun.sleep(1);
    }
    const mgr = syncManager(x.daemon);
    const deadline = Date.now() + 5000;
    while ((mgr.stats("backup")?.messages ?? 0) < 508 && Date.now() < deadline) await Bun.sleep(20);
    const st = mgr.stats("backup")!;
    expect(st.messages).toBe(508);
    expect(st.records).toBe(2);
    expect(st.drops.msg_too_short).toBeGreaterThanOrEqual(1);
    expect(st.drops.msg_oversized).toBe(1);
    expect(st.drops.msg_size_mismatch).toBeGreaterThanOrEqual(1);
    expect(st.drops.msg_other_syncid).toBeGreaterThanOrEqual(1);
    expect(st.drops.msg_unknown_version).toBeGreaterThanOrEqual(1);
    expect(st.drops.rec_no_service).toBe(1);
    expect(st.drops.rec_no_dest).toBe(1);
    // still answering
    expect((await x.adm(["-L", "--daemon"])).stdout).toContain("backup sync daemon (mcast=lo, syncid=5");
    expect((await x.adm(["--stop-daemon", "backup"])).exit).toBe(0);
    sender.close();
  }, 20_000);
});

describe("a master daemon's flush", () => {
  test("a full message leaves at the next tick, the rest when it is 2 s old; the records are the fed connections", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    // a stand-in worker: the feed buffer the daemon posts is kept, and fed here as a worker would
    const posted: { feed?: SharedArrayBuffer }[] = [];
    (x.daemon.dataplane as unknown as { workers: unknown[] }).workers = [{ worker: { postMessage: (m: { feed?: SharedArrayBuffer }) => posted.push(m) } }];
    const got: { at: number; bytes: Uint8Array }[] = [];
    const rx = dgram.createSocket("udp4");
    rx.on("message", (m) => got.push({ at: Date.now(), bytes: new Uint8Array(m) }));
    await new Promise<void>((res) => rx.bind(PORT + 1, "127.0.0.1", () => res()));
    // the group is where the master sends: a unicast address here, so that this process hears it
    // (a master does not hear its own multicast: loopback off, as the kernel's)
    const mgr = syncManager(x.daemon);
    await mgr.start({ state: "master", mcastInterface: "lo", syncId: 9, syncMaxlen: 0, mcastGroup: "127.0.0.1", mcastPort: PORT + 1, mcastTtl: 0 });
    const feed = new SyncFeed(posted[0].feed!, 64);
    const t = new ConnTable(64);
    const fp = { conns: t, now: 1, setReplyHop: () => {} };
    const t0 = Date.now();
    // 45 UDP connections, 3 packets each: each is sent at its 3rd
    for (let k = 0; k < 45; k++) {
      const id = t.alloc();
      const o = id * CONN_WORDS;
      t.rec[o + CONN_FLAGS] = CF_USED | 3 | CF_NOOUTPUT;
      t.rec[o + CONN_PROTO_STATE] = 17 << 8;
      t.rec[o + CONN_CADDR] = (0xc6120102 + k) | 0;
      t.rec[o + CONN_VADDR] = 0xc6120064 | 0;
      t.rec[o + CONN_DADDR] = 0xc612020b | 0;
      t.rec[o + CONN_CPORT_VPORT] = (40000 << 16) | 80 | 0;
      t.rec[o + CONN_DPORT] = 80;
      t.rec[o + CONN_TIMEOUT] = 300 * 100;
      for (let p = 0; p < 3; p++) feed.packet(fp, id, 17 << 8, 0, new Uint32Array(8), 0);
    }
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await Bun.sleep(20);
    mgr.stop("master");
    rx.close();
    expect(got.length).toBe(2);
    const [full, rest] = got.map((g) => decodeSyncMessage(g.bytes, { syncid: 9, maxlen: 0 }));
    // 1472-byte messages hold (1472 - 8) / 36 = 40 IPv4 records
    expect([full.records.length, rest.records.length]).toEqual([40, 5]);
    expect(got[0].bytes.length).toBe(8 + 40 * 36);
    expect(got[0].at - t0).toBeLessThan(500);
    expect(got[1].at - t0).toBeGreaterThanOrEqual(1900);
    expect(rest.records.map((r) => r.conn.caddr)).toEqual(["198.18.1.42", "198.18.1.43", "198.18.1.44", "198.18.1.45", "198.18.1.46"]);
    expect(full.records[0].conn).toMatchObject({ protocol: 17, flags: 3 | 0x80, vaddr: "198.18.0.100", daddr: "198.18.2.11", cport: 40000, timeoutSec: 300 });
  }, 20_000);

  test("sync_ports 2: two threads, each connection's records on one port, both ports used", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    const posted: { feed?: SharedArrayBuffer }[] = [];
    (x.daemon.dataplane as unknown as { workers: unknown[] }).workers = [{ worker: { postMessage: (m: { feed?: SharedArrayBuffer }) => posted.push(m) } }];
    const base = PORT + 10;
    const got: { port: number; bytes: Uint8Array }[] = [];
    const socks = [0, 1].map((i) => {
      const s = dgram.createSocket("udp4");
      s.on("message", (m) => got.push({ port: base + i, bytes: new Uint8Array(m) }));
      return s;
    });
    for (let i = 0; i < 2; i++) await new Promise<void>((res) => socks[i].bind(base + i, "127.0.0.1", () => res()));
    const mgr = syncManager(x.daemon);
    mgr.setSysctls({ syncPorts: 2 });
    await mgr.start({ state: "master", mcastInterface: "lo", syncId: 9, syncMaxlen: 0, mcastGroup: "127.0.0.1", mcastPort: base, mcastTtl: 0 });
    const feed = new SyncFeed(posted[0].feed!, 64);
    const t = new ConnTable(64);
    const fp = { conns: t, now: 1, setReplyHop: () => {} };
    for (let k = 0; k < 20; k++) {
      const id = t.alloc();
      const o = id * CONN_WORDS;
      t.rec[o + CONN_FLAGS] = CF_USED | 3 | CF_NOOUTPUT;
      t.rec[o + CONN_PROTO_STATE] = 17 << 8;
      t.rec[o + CONN_CADDR] = (0xc6120102 + k) | 0;
      t.rec[o + CONN_VADDR] = 0xc6120064 | 0;
      t.rec[o + CONN_DADDR] = 0xc612020b | 0;
      t.rec[o + CONN_CPORT_VPORT] = (40000 << 16) | 80 | 0;
      t.rec[o + CONN_DPORT] = 80;
      t.rec[o + CONN_TIMEOUT] = 300 * 100;
      for (let p = 0; p < 3; p++) feed.packet(fp, id, 17 << 8, 0, new Uint32Array(8), 0);
    }
    // stopping sends what is unfilled
    await Bun.sleep(50);
    mgr.stop("master");
    const deadline = Date.now() + 3000;
    while (got.length < 2 && Date.now() < deadline) await Bun.sleep(20);
    for (const s of socks) s.close();
    const byPort = new Map<number, string[]>();
    for (const g of got)
      for (const r of decodeSyncMessage(g.bytes, { syncid: 9, maxlen: 0 }).records) byPort.set(g.port, [...(byPort.get(g.port) ?? []), r.conn.caddr]);
    expect([...byPort.keys()].sort()).toEqual([base, base + 1]);
    const all = [...byPort.values()].flat();
    expect(all.length).toBe(20);
    expect(new Set(all).size).toBe(20);
  }, 20_000);
});
