/**
 * The sync daemons on GET /metrics (control/sync-metrics.ts): a backup fed real datagrams over
 * loopback and a master fed as a worker feeds it show their running state, messages and records,
 * drops by reason, installs and the feed ring's losses; a stopped daemon shows only running 0.
 */
import { describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { syncManager } from "../../../src/control/sync-daemon.ts";
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
import { SYNC_DROP_NAMES } from "../../../src/sync/drops.ts";
import { FEED_CREATED, FEED_LOST, FEED_UPDATED, SyncFeed } from "../../../src/dataplane/sync-feed.ts";
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
import { parseExposition, type PromPage } from "../../util/prom.ts";
import { startXvs, type Xvs } from "../cli/fixture.ts";

const PORT = 28848 + (process.pid % 1000);
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

async function scrape(x: Xvs): Promise<PromPage> {
  const r = await x.app.request("/metrics");
  expect(r.status).toBe(200);
  return parseExposition(await r.text());
}

/** A stand-in worker that keeps what the daemon posts to it (its feed buffer, install batches). */
function standInWorker(x: Xvs): { feed?: SharedArrayBuffer; install?: Int32Array }[] {
  const posted: { feed?: SharedArrayBuffer; install?: Int32Array }[] = [];
  // the fixture's worker (its counters are on the page too) gets a thread stand-in
  Object.assign(x.dataplane.workers[0], { worker: { postMessage: (m: { feed?: SharedArrayBuffer }) => posted.push(m) } });
  return posted;
}

describe("sync metrics", () => {
  test("no daemon: both states at running 0, no other sync sample", async () => {
    const x = startXvs();
    const p = await scrape(x);
    expect(p.value("xvs_sync_daemon_running", { state: "master" })).toBe(0);
    expect(p.value("xvs_sync_daemon_running", { state: "backup" })).toBe(0);
    expect(p.value("xvs_sync_backup_only")).toBe(0);
    // no steering program in this stand-in dataplane: no pass count
    expect(p.samples.filter((s) => s.name.startsWith("xvs_sync_") && s.name !== "xvs_sync_daemon_running" && s.name !== "xvs_sync_backup_only")).toEqual([]);
  });

  test("backup: datagrams and records received, every drop reason (hostile ones counted), installs from the workers' counts", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.2.11:80", "-g"])).exit).toBe(0);
    const posted = standInWorker(x);
    expect((await x.adm(["--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "5", "--mcast-port", String(PORT)])).exit).toBe(0);
    const sender = dgram.createSocket("udp4");
    const send = (b: Uint8Array) => new Promise<void>((res, rej) => sender.send(b, PORT, "127.0.0.1", (e) => (e ? rej(e) : res())));
    const [msg] = encodeSyncMessages([good, { ...good, cport: 40001 }], { syncid: 5, maxlen: 1472, version: 1 });
    const [noSvc] = encodeSyncMessages([{ ...good, vaddr: "198.18.0.200" }], { syncid: 5, maxlen: 1472, version: 1 });
    await send(msg);
    await send(msg.slice(0, 3)); // msg_too_short
    await send(noSvc); // rec_no_service
    const mgr = syncManager(x.daemon);
    const deadline = Date.now() + 5000;
    while ((mgr.stats("backup")?.messages ?? 0) < 3 && Date.now() < deadline) await Bun.sleep(10);
    sender.close();
    // the worker counts what it installed in its feed buffer: 2 created, then 1 updated
    const feed = new Int32Array(posted.find((m) => m.feed)!.feed!);
    feed[FEED_CREATED] += 2;
    feed[FEED_UPDATED] += 1;
    const p = await scrape(x);
    expect(p.value("xvs_sync_daemon_running", { state: "backup" })).toBe(1);
    expect(p.value("xvs_sync_daemon_running", { state: "master" })).toBe(0);
    expect(p.value("xvs_sync_messages_received_total")).toBe(3);
    expect(p.value("xvs_sync_records_received_total")).toBe(2);
    expect(posted.filter((m) => m.install).length).toBe(1);
    expect(p.value("xvs_sync_records_installed_total", { result: "created" })).toBe(2);
    expect(p.value("xvs_sync_records_installed_total", { result: "updated" })).toBe(1);
    expect(p.value("xvs_sync_records_installed_total", { result: "refused" })).toBe(0);
    // every reason has a sample, so that rate() sees the first drop of each
    expect(p.find("xvs_sync_drops_total").map((s) => s.labels.reason)).toEqual([...SYNC_DROP_NAMES]);
    expect(p.value("xvs_sync_drops_total", { reason: "msg_too_short" })).toBe(1);
    expect(p.value("xvs_sync_drops_total", { reason: "rec_no_service" })).toBe(1);
    expect(p.value("xvs_sync_drops_total", { reason: "msg_oversized" })).toBe(0);
    // the master's families are absent while no master runs
    expect(p.find("xvs_sync_messages_sent_total")).toEqual([]);
    expect(p.type.get("xvs_sync_drops_total")).toBe("counter");
    expect((await x.adm(["--stop-daemon", "backup"])).exit).toBe(0);
    const after = await scrape(x);
    expect(after.value("xvs_sync_daemon_running", { state: "backup" })).toBe(0);
    expect(after.find("xvs_sync_drops_total")).toEqual([]);
  }, 20_000);

  test("master: messages and records sent, and the feed ring's losses", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    const posted = standInWorker(x);
    const rx = dgram.createSocket("udp4");
    let got = 0;
    rx.on("message", () => got++);
    await new Promise<void>((res) => rx.bind(PORT + 1, "127.0.0.1", () => res()));
    const mgr = syncManager(x.daemon);
    // a unicast group so that this process hears the master (it does not hear its own multicast)
    await mgr.start({ state: "master", mcastInterface: "lo", syncId: 9, syncMaxlen: 0, mcastGroup: "127.0.0.1", mcastPort: PORT + 1, mcastTtl: 0 });
    const buf = posted[0].feed!;
    const feed = new SyncFeed(buf, 64);
    const t = new ConnTable(64);
    const fp = { conns: t, now: 1, setReplyHop: () => {} };
    // 41 UDP connections, 3 packets each (each is sent at its 3rd): one full message of 40 at once, 1 left unfilled
    for (let k = 0; k < 41; k++) {
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
    // a ring that overflowed counts here (FeedRing.push's full branch)
    new Int32Array(buf)[FEED_LOST] += 7;
    const deadline = Date.now() + 1500;
    while (got < 1 && Date.now() < deadline) await Bun.sleep(10);
    const p = await scrape(x);
    expect(p.value("xvs_sync_daemon_running", { state: "master" })).toBe(1);
    expect(p.value("xvs_sync_messages_sent_total")).toBe(1);
    expect(p.value("xvs_sync_records_sent_total")).toBe(41);
    expect(p.value("xvs_sync_feed_lost_records_total")).toBe(7);
    expect(p.value("xvs_sync_queue_dropped_messages_total")).toBe(0);
    expect(p.value("xvs_sync_send_errors_total")).toBe(0);
    expect(p.find("xvs_sync_drops_total")).toEqual([]);
    mgr.stop("master");
    rx.close();
    expect((await scrape(x)).value("xvs_sync_daemon_running", { state: "master" })).toBe(0);
  }, 20_000);

  test("backup_only: the steering program is told while the backup runs with backup_only=1, and what it passed is shown", async () => {
    const x = startXvs();
    const calls: boolean[] = [];
    let passed = 0;
    Object.assign(x.dataplane, { prog: { setBackupOnly: (on: boolean) => calls.push(on), backupOnlyPassed: () => passed } });
    const mgr = syncManager(x.daemon);
    mgr.setSysctls({ backupOnly: 1 }); // no backup daemon yet: no effect (sysctl_backup_only)
    expect(calls).toEqual([false]);
    await mgr.start({ state: "backup", mcastInterface: "lo", syncId: 4, syncMaxlen: 0, mcastGroup: "", mcastPort: PORT + 2, mcastTtl: 0 });
    expect(calls).toEqual([false, true]);
    passed = 12;
    let p = await scrape(x);
    expect(p.value("xvs_sync_backup_only")).toBe(1);
    expect(p.value("xvs_sync_backup_only_passed_packets_total")).toBe(12);
    mgr.setSysctls({ backupOnly: 0 });
    expect(calls).toEqual([false, true, false]);
    expect((await scrape(x)).value("xvs_sync_backup_only")).toBe(0);
    mgr.setSysctls({ backupOnly: 1 });
    mgr.stop("backup");
    expect(calls).toEqual([false, true, false, true, false]);
    p = await scrape(x);
    expect(p.value("xvs_sync_backup_only")).toBe(0);
    // a master alone never turns it on
    await mgr.start({ state: "master", mcastInterface: "lo", syncId: 4, syncMaxlen: 0, mcastGroup: "127.0.0.1", mcastPort: PORT + 3, mcastTtl: 0 });
    mgr.setSysctls({ backupOnly: 1 });
    expect(calls.at(-1)).toBe(false);
    mgr.stop("master");
  }, 20_000);
});
