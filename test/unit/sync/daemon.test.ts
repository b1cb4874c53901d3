/**
 * A running backup sync daemon (control/sync-daemon.ts) fed real datagrams over loopback: good
 * records are counted and resolved against the table, hostile ones (truncated, oversized, another
 * syncid or version, lying lengths, no service, no real server, random bytes, a flood) are counted
 * per reason and dropped, and the daemon keeps answering.
 */
import { describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { syncManager } from "../../../src/control/sync-daemon.ts";
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
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
