// When the master sends a connection (ip_vs_sync_conn_needed) and when its messages leave
// (IPVS_SYNC_FLUSH_TIME, check period, send delay, queue limit), over plain numbers.
import { describe, expect, test } from "bun:test";
import { CONN_F_ONE_PACKET, CONN_F_TEMPLATE } from "../../../src/sync/format.ts";
import {
  SYNC_DEFAULTS,
  type SyncConnState,
  type SyncSettings,
  controllerPackets,
  flushDue,
  idleFlushAtMs,
  queueAccepts,
  queuedSendDelayMs,
  shouldSync,
  syncDecision,
} from "../../../src/sync/policy.ts";

const SYN_RECV = 3,
  ESTABLISHED = 1,
  FIN_WAIT = 4,
  TIME_WAIT = 5,
  CLOSE_WAIT = 7,
  LAST_ACK = 8;
const tcp = (state: number, oldState: number, over: Partial<SyncConnState> = {}): SyncConnState => ({
  protocol: 6,
  flags: 0,
  state,
  oldState,
  timeoutMs: 900_000,
  syncEndtimeMs: 0,
  inPersistence: false,
  ...over,
});
const udp = (over: Partial<SyncConnState> = {}): SyncConnState => ({
  protocol: 17,
  flags: 0,
  state: 0,
  oldState: 0,
  timeoutMs: 300_000,
  syncEndtimeMs: 0,
  inPersistence: false,
  ...over,
});
const d = SYNC_DEFAULTS;

describe("shouldSync: TCP with the defaults (threshold 3, period 50)", () => {
  test("SYN_RECV is never sent", () => {
    for (let p = 1; p < 200; p++) expect(shouldSync(tcp(SYN_RECV, 0), p, 1000, d)).toBe(false);
  });

  test("reaching ESTABLISHED waits for packet 3 (the handshake's ACK is packet 2)", () => {
    expect(shouldSync(tcp(ESTABLISHED, SYN_RECV), 2, 1000, d)).toBe(false);
    const r = syncDecision(tcp(ESTABLISHED, SYN_RECV), 3, 1000, d);
    expect(r).toEqual({ send: true, oldState: ESTABLISHED, syncEndtimeMs: 901_000 });
  });

  test("then every 50 packets: 53, 103, and not in between", () => {
    const sent = [];
    for (let p = 4; p <= 110; p++) if (shouldSync(tcp(ESTABLISHED, ESTABLISHED), p, 1000, d)) sent.push(p);
    expect(sent).toEqual([53, 103]);
  });

  test("a change into FIN_WAIT, CLOSE_WAIT or TIME_WAIT is sent at once, whatever the count", () => {
    for (const s of [FIN_WAIT, CLOSE_WAIT, TIME_WAIT]) {
      expect(syncDecision(tcp(s, ESTABLISHED), 17, 5000, d)).toEqual({ send: true, oldState: s, syncEndtimeMs: 905_000 });
    }
    // but staying there is not a change
    expect(shouldSync(tcp(FIN_WAIT, FIN_WAIT), 17, 5000, d)).toBe(false);
  });

  test("LAST_ACK is not a state that is sent", () => {
    expect(shouldSync(tcp(LAST_ACK, ESTABLISHED), 3, 0, d)).toBe(false);
  });

  test("not sent: old_state and sync_endtime stay as they were", () => {
    expect(syncDecision(tcp(ESTABLISHED, SYN_RECV, { syncEndtimeMs: 44 }), 2, 1000, d)).toEqual({ send: false, oldState: SYN_RECV, syncEndtimeMs: 44 });
  });

  test("sync_endtime drops the low 2 bits of now + timeout (they count retries)", () => {
    expect(syncDecision(tcp(FIN_WAIT, ESTABLISHED, { timeoutMs: 120_000 }), 5, 1003, d).syncEndtimeMs).toBe(121_000);
  });

  test("a state number beyond 31 is not mistaken for a low one", () => {
    expect(shouldSync(tcp(33, 0), 3, 0, d)).toBe(false);
  });
});

describe("shouldSync: UDP, templates, one-packet, persistence mode", () => {
  test("UDP at packet 3, 53, 103", () => {
    const sent = [];
    for (let p = 1; p <= 110; p++) if (shouldSync(udp(), p, 0, d)) sent.push(p);
    expect(sent).toEqual([3, 53, 103]);
  });

  test("a template is sent whenever it is asked, whatever the count", () => {
    for (const p of [1, 2, 4, 99]) expect(shouldSync(udp({ flags: CONN_F_TEMPLATE }), p, 0, d)).toBe(true);
  });

  test("one-packet connections are never sent", () => {
    expect(shouldSync(udp({ flags: CONN_F_ONE_PACKET }), 3, 0, d)).toBe(false);
  });

  test("sync_persist_mode 1: connections under a template are not sent, the template is", () => {
    const s: SyncSettings = { ...d, syncPersistMode: 1 };
    expect(shouldSync(tcp(ESTABLISHED, SYN_RECV, { inPersistence: true }), 3, 0, s)).toBe(false);
    expect(shouldSync(tcp(ESTABLISHED, SYN_RECV, { inPersistence: false }), 3, 0, s)).toBe(true);
    expect(shouldSync(tcp(0, 0, { flags: CONN_F_TEMPLATE, inPersistence: true }), 1, 0, s)).toBe(true);
  });

  test("the controller is asked with template in_pkts + 1, or the threshold for a non-template", () => {
    expect(controllerPackets(CONN_F_TEMPLATE, 6, d)).toBe(7);
    expect(controllerPackets(0, 6, d)).toBe(3);
  });

  test("SCTP: sent in ESTABLISHED at the count, in SHUTDOWN_SENT at once, not in COOKIE_ECHOED", () => {
    const sctp = (state: number, oldState: number): SyncConnState => ({ ...udp(), protocol: 132, state, oldState });
    expect(shouldSync(sctp(7, 6), 2, 0, d)).toBe(false);
    expect(shouldSync(sctp(7, 6), 3, 0, d)).toBe(true);
    expect(shouldSync(sctp(8, 7), 20, 0, d)).toBe(true);
    expect(shouldSync(sctp(6, 5), 3, 0, d)).toBe(false);
  });
});

describe("shouldSync: sync_period 0 and sync_refresh_period", () => {
  test("period 0 without refresh: only once, at the threshold", () => {
    const s = { ...d, syncPeriod: 0 };
    const sent = [];
    for (let p = 1; p <= 200; p++) if (shouldSync(udp(), p, 0, s)) sent.push(p);
    expect(sent).toEqual([3]);
  });

  test("refresh 10 s: not again within 10 s of the last send, again after", () => {
    const s = { ...d, syncPeriod: 0, syncRefreshPeriodMs: 10_000 };
    const first = syncDecision(udp(), 1, 100_000, s);
    expect(first.send).toBe(true);
    const c = udp({ syncEndtimeMs: first.syncEndtimeMs });
    expect(shouldSync(c, 2, 105_000, s)).toBe(false);
    expect(shouldSync(c, 3, 109_996, s)).toBe(false);
    expect(shouldSync(c, 4, 110_000, s)).toBe(true);
  });

  test("refresh with sync_retries 2: resends after refresh/8, counted in the low bits, then stops", () => {
    const s = { ...d, syncPeriod: 0, syncRefreshPeriodMs: 16_000, syncRetries: 2 };
    let c = udp({ syncEndtimeMs: syncDecision(udp(), 1, 100_000, s).syncEndtimeMs });
    expect(c.syncEndtimeMs % 4).toBe(0);
    // refresh/8 = 2 s after the send
    expect(shouldSync(c, 2, 101_000, s)).toBe(false);
    const r1 = syncDecision(c, 2, 102_000, s);
    expect(r1.send).toBe(true);
    expect(r1.syncEndtimeMs % 4).toBe(1);
    c = udp({ syncEndtimeMs: r1.syncEndtimeMs });
    const r2 = syncDecision(c, 3, 104_100, s);
    expect(r2.send).toBe(true);
    expect(r2.syncEndtimeMs % 4).toBe(2);
    expect(shouldSync(udp({ syncEndtimeMs: r2.syncEndtimeMs }), 4, 106_200, s)).toBe(false);
  });

  test("refresh is capped by half the timeout (at least 10 s)", () => {
    const s = { ...d, syncPeriod: 0, syncRefreshPeriodMs: 100_000 };
    const c = udp({ timeoutMs: 30_000, syncEndtimeMs: 100_000 + 30_000 });
    // half the timeout is 15 s: after 15 s it is sent though the refresh period is 100 s
    expect(shouldSync(c, 9, 114_000, s)).toBe(false);
    expect(shouldSync(c, 9, 115_000, s)).toBe(true);
  });

  test("refresh with period 50: both must allow it", () => {
    const s = { ...d, syncRefreshPeriodMs: 10_000 };
    const c = udp({ syncEndtimeMs: 300_000 + 50_000 });
    expect(shouldSync(c, 53, 70_000, s)).toBe(true);
    expect(shouldSync(c, 52, 70_000, s)).toBe(false);
    expect(shouldSync(c, 53, 55_000, s)).toBe(false);
  });
});

describe("flush timing", () => {
  test("a half-full message leaves when 2 s old", () => {
    expect(flushDue(1000, 2999)).toBe(false);
    expect(flushDue(1000, 3000)).toBe(true);
    expect(flushDue(-1, 1e9)).toBe(false);
  });

  test("the idle thread looks every second: a message started at 1.5 s after a check at 1 s leaves at 4 s", () => {
    expect(idleFlushAtMs(1500, 1000)).toBe(4000);
    expect(idleFlushAtMs(1000, 1000)).toBe(3000);
    expect(idleFlushAtMs(1000, 5000)).toBe(5000);
  });

  test("closed messages: the first waits 20 ms for the wake-up, the 8th wakes the thread at once", () => {
    expect(queuedSendDelayMs(1)).toBe(20);
    expect(queuedSendDelayMs(7)).toBe(20);
    expect(queuedSendDelayMs(8)).toBe(0);
  });

  test("beyond sync_qlen_max a closed message is dropped", () => {
    expect(queueAccepts(31, 32)).toBe(true);
    expect(queueAccepts(32, 32)).toBe(false);
  });
});
