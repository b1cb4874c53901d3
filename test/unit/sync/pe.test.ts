/**
 * Synced templates of a persistence engine (sync/pe.ts): xvs has none, so, as a kernel backup
 * without the engine's module (ip_vs_conn_fill_param_sync), a record carrying PE data is skipped
 * and counted as rec_unknown_pe while the rest of its message is installed; a PE name without data
 * is no obstacle.
 */
import { describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { syncManager } from "../../../src/control/sync-daemon.ts";
import { I_CPORT_VPORT, I_FLAGS, I_WORDS } from "../../../src/dataplane/sync-feed.ts";
import { CF_TEMPLATE } from "../../../src/conn/table.ts";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
import { peInstallable } from "../../../src/sync/pe.ts";
import type { SyncConn } from "../../../src/sync/format.ts";
import { startXvs } from "../cli/fixture.ts";

const PORT = 38848 + (process.pid % 1000);
const callId = new TextEncoder().encode("a84b4c76e66710@pc33.example.com");
/** A SIP template as the kernel's master sends it (cport 0, state ASSURED, the Call-ID). */
const sipTemplate: SyncConn = {
  version: 1,
  family: 4,
  protocol: 17,
  flags: 0x1000 | 0, // IP_VS_CONN_F_TEMPLATE, Masq
  state: 1,
  cport: 0,
  vport: 5060,
  dport: 5060,
  fwmark: 0,
  timeoutSec: 60,
  caddr: "198.18.1.2",
  vaddr: "198.18.0.100",
  daddr: "198.18.2.11",
  peName: "sip",
  peData: callId,
};
const sipConn: SyncConn = { ...sipTemplate, flags: 0, state: 0, cport: 5060, timeoutSec: 300, peName: undefined, peData: undefined };

describe("persistence-engine data on a backup without the engine", () => {
  test("peInstallable: no data, or a name alone, installs; data of any engine (xvs has none) does not", () => {
    expect(peInstallable({})).toBe(true);
    expect(peInstallable({ peName: "sip" })).toBe(true);
    expect(peInstallable({ peName: "sip", peData: callId })).toBe(false);
    expect(peInstallable({ peName: "other", peData: callId })).toBe(false);
    expect(peInstallable({ peData: callId })).toBe(false);
  });

  test("a SIP template with its Call-ID is skipped and counted; the connection next to it and a template without PE data are installed", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-u", "198.18.0.100:5060", "-s", "rr", "-p", "60", "--pe", "sip"])).exit).toBe(0);
    expect((await x.adm(["-a", "-u", "198.18.0.100:5060", "-r", "198.18.2.11:5060", "-m"])).exit).toBe(0);
    const posted: { install?: Int32Array }[] = [];
    Object.assign(x.dataplane.workers[0], { worker: { postMessage: (m: { install?: Int32Array }) => posted.push(m) } });
    expect((await x.adm(["--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "3", "--mcast-port", String(PORT)])).exit).toBe(0);
    // the wire carries what the kernel sends: the template's record has both PE options
    const [msg] = encodeSyncMessages([sipTemplate, sipConn, { ...sipTemplate, peData: undefined, peName: undefined, caddr: "198.18.1.3" }], {
      syncid: 3,
      maxlen: 1472,
      version: 1,
    });
    const sent = decodeSyncMessage(msg, { syncid: 3, maxlen: 0 });
    expect(sent.records.map((r) => r.conn.peName ?? "")).toEqual(["sip", "", ""]);
    const sender = dgram.createSocket("udp4");
    await new Promise<void>((res, rej) => sender.send(msg, PORT, "127.0.0.1", (e) => (e ? rej(e) : res())));
    sender.close();
    const mgr = syncManager(x.daemon);
    const deadline = Date.now() + 5000;
    while ((mgr.stats("backup")?.messages ?? 0) < 1 && Date.now() < deadline) await Bun.sleep(10);
    const st = mgr.stats("backup")!;
    expect(st.drops).toEqual({ rec_unknown_pe: 1 });
    expect(st.records).toBe(2);
    const install = posted.find((m) => m.install)!.install!;
    expect(install.length).toBe(2 * I_WORDS);
    // the connection (cport 5060) and the plain template of the other client (cport 0)
    const rows = [0, 1].map((i) => ({ cport: install[i * I_WORDS + I_CPORT_VPORT] >>> 16, tpl: (install[i * I_WORDS + I_FLAGS] & CF_TEMPLATE) !== 0 }));
    expect(rows.sort((a, b) => a.cport - b.cport)).toEqual([
      { cport: 0, tpl: true },
      { cport: 5060, tpl: false },
    ]);
    expect((await x.adm(["--stop-daemon", "backup"])).exit).toBe(0);
  }, 20_000);
});
