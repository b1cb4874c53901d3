/**
 * Sync interop with kernel IPVS, in a namespace lab.
 *
 * Kernel master -> xvs backup: the datagrams a kernel IPVS master sent in the ipvs-vm guest
 * (test/kernel/sync/v1.pcap, v0.pcap, recorded by record.sh) are sent again, payload untouched, as
 * multicast UDP to 224.0.0.81:8848 from a sender namespace (tx) over a veth into the director
 * namespace, where a real `xvs run` holds the services of test/kernel/sync/services.txt and runs the
 * backup daemon (syncid 7) on that veth. The replay is cut where the guest listed its kernel backup
 * (`*-bk-held.time`, `*-bk-closed.time`, the pcap's clock): after each cut, `xvs adm -Lnc` must list
 * every connection the kernel backup listed (`*-bk-*.txt`) with its protocol and state, and an
 * expiry that agrees once the two clocks are lined up (the kernel's expiry plus the time from that
 * connection's last record to the guest's listing = xvs's expiry plus the time from our replay of
 * that record to our listing). Then a packet of synced connections (IPv4 TCP NAT, TCP DR, UDP NAT;
 * IPv6 TCP NAT, TCP DR), never seen by this director, goes to the real server the record named, with
 * no SYN before it.
 * Hostile variants (a truncated datagram, another syncid) are counted and install nothing.
 *
 * xvs master -> kernel backup: a second lab of the same shape makes the director a master and makes
 * real connections through it; the sync datagrams on the sync veth are captured (tcpdump on the sender
 * side). With XVS_SYNC_RECORD=1 the capture and the connections are written to
 * test/kernel/sync/xvs-master.* for sync-replay.sh to replay to a kernel backup in the guest
 * (test/unit/sync/interop.test.ts checks what that kernel installed); a plain run only checks the
 * capture and never rewrites tracked files.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { decodeSyncMessage } from "../../src/sync/decode.ts";
import { SyncRxCounters } from "../../src/sync/drops.ts";
import type { SyncConn } from "../../src/sync/format.ts";
import { checksum, pseudoSumV4, pseudoSumV6 } from "../../src/wire/checksum.ts";
import { parseIp } from "../../src/service/addr.ts";
import { readSyncPcap, type SyncDatagram } from "../unit/sync/pcap.ts";
import { apiOk, Capture, decodeFrame, HeldConnection, httpGet, injectIp, macOf, requireRoot, serveOn, verdictsOf } from "./helpers.ts";

const FIX = join(import.meta.dir, "../kernel/sync");
const SYNCID = 7;
const TX_ADDR = "198.18.9.3";
const BK_ADDR = "198.18.9.2";
const CLIENT = "198.18.1.2";
const RS = "198.18.2.11";
const CLIENT6 = "2001:db8:1::2";
const RS6 = "2001:db8:2::11";

/** The services of record.sh (test/kernel/sync/services.txt), as ipvsadm lines for `xvs adm`. */
const SERVICES: string[][] = [
  ["-A", "-t", "198.18.0.100:80", "-s", "rr"],
  ["-a", "-t", "198.18.0.100:80", "-r", "198.18.2.11:8080", "-m"],
  ["-A", "-u", "198.18.0.100:9000", "-s", "rr"],
  ["-a", "-u", "198.18.0.100:9000", "-r", "198.18.2.11:9001", "-m"],
  ["-A", "-t", "198.18.0.100:81", "-s", "rr", "-p", "300"],
  ["-a", "-t", "198.18.0.100:81", "-r", "198.18.2.11:8080", "-m"],
  ["-A", "-t", "198.18.0.101:80", "-s", "rr"],
  ["-a", "-t", "198.18.0.101:80", "-r", "198.18.2.11:80", "-g"],
  ["-A", "-t", "198.18.0.100:21", "-s", "rr"],
  ["-a", "-t", "198.18.0.100:21", "-r", "198.18.2.11:21", "-m"],
  ["-A", "-u", "198.18.0.100:5060", "-s", "rr", "-p", "60", "--pe", "sip"],
  ["-a", "-u", "198.18.0.100:5060", "-r", "198.18.2.11:5060", "-m"],
  ["-A", "-t", "[2001:db8:100::100]:80", "-s", "rr"],
  ["-a", "-t", "[2001:db8:100::100]:80", "-r", "[2001:db8:2::11]:8080", "-m"],
  ["-A", "-u", "[2001:db8:100::100]:9000", "-s", "rr"],
  ["-a", "-u", "[2001:db8:100::100]:9000", "-r", "[2001:db8:2::11]:9001", "-m"],
  ["-A", "-t", "[2001:db8:100::100]:81", "-s", "rr", "-p", "300"],
  ["-a", "-t", "[2001:db8:100::100]:81", "-r", "[2001:db8:2::11]:8080", "-m"],
  ["-A", "-t", "[2001:db8:100::101]:80", "-s", "rr"],
  ["-a", "-t", "[2001:db8:100::101]:80", "-r", "[2001:db8:2::11]:80", "-g"],
];

/** Sends hex datagrams (one a line, in order) to the sync group from the sender's address; prints each send's time. */
const REPLAY_PY = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[2]))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for line in open(sys.argv[1]):
    line = line.strip()
    if not line: continue
    s.sendto(bytes.fromhex(line), ("224.0.0.81", 8848))
    print("%.3f" % (time.time() * 1000), flush=True)
    time.sleep(0.02)
`;

/** One row of `ipvsadm -Lnc`. */
interface ConnRow {
  pro: string;
  expireSec: number;
  state: string;
  key: string;
}

function parseLnc(text: string): ConnRow[] {
  const rows: ConnRow[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^\d\d:\d\d$/.test(f[1])) continue;
    const [m, s] = f[1].split(":").map(Number);
    rows.push({ pro: f[0], expireSec: m * 60 + s, state: f[2], key: `${f[0]} ${f[3]} ${f[4]} ${f[5]}` });
  }
  return rows;
}

const hp = (a: string, p: number) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
const PRO: Record<number, string> = { 6: "TCP", 17: "UDP", 132: "SCTP" };
/** A record's connection as `-Lnc` names it. */
const connKey = (c: SyncConn) => `${PRO[c.protocol] ?? c.protocol} ${hp(c.caddr, c.cport)} ${hp(c.vaddr, c.vport)} ${hp(c.daddr, c.dport)}`;

/** The virtual services of services.txt ("TCP 198.18.0.100:80"). */
function servicesOf(text: string): Set<string> {
  const out = new Set<string>();
  for (const l of text.split("\n")) {
    const m = /^(TCP|UDP|SCTP)\s+(\S+)/.exec(l);
    if (m) out.add(`${m[1]} ${m[2]}`);
  }
  return out;
}

/**
 * The one connection the kernel backup lists and xvs does not: the SIP template of 198.18.1.2 ->
 * 198.18.0.100:5060 that a v1 record made, keyed with its Call-ID (PE data). The guest's kernel
 * has the ip_vs_pe_sip module (services.txt has a `--pe sip` service); xvs has no persistence
 * engine, so it skips such a record as a kernel without the module does (ip_vs_conn_fill_param_sync:
 * "no sip engine found/loaded", the record alone dropped; sync/pe.ts) and counts it as
 * rec_unknown_pe. The plain template the v0 record makes (v0 carries no PE data) is installed, in
 * the kernel and in xvs alike. Listed so that the lab stays exact about everything else.
 */
const SIP_CALLID_TEMPLATE = ["UDP 198.18.1.2:0 198.18.0.100:5060 198.18.2.11:5060 ASSURED"];
/** v1 records with PE data replayed so far (each must be counted as rec_unknown_pe). */
let peRecords = 0;

let L: DirectorLab;
let xvs: LabDaemon;
/**
 * Per connection as `-Lnc` names it: the pcap time and our replay time of its last record so far,
 * one variant per persistence-engine identity (a SIP template with and without its Call-ID).
 */
const lastSeen = new Map<string, { variants: { pe: string; pcapMs: number; replayMs: number }[] }>();

function noteRecord(c: SyncConn, pcapMs: number, replayMs: number): void {
  const key = connKey(c);
  const pe = c.peName ? `${c.peName}:${Buffer.from(c.peData ?? new Uint8Array()).toString("hex")}` : "";
  const e = lastSeen.get(key) ?? { variants: [] };
  lastSeen.set(key, e);
  const v = e.variants.find((x) => x.pe === pe);
  if (v) {
    v.pcapMs = pcapMs;
    v.replayMs = replayMs;
  } else e.variants.push({ pe, pcapMs, replayMs });
}

/**
 * A packet of ours restarted xvs's timer of `key` with the state's full timeout, which is what the
 * record had carried (the kernel backup never saw the packet): xvs's side is aligned to the packet.
 */
function noteTouched(key: string, ms: number): void {
  for (const v of lastSeen.get(key)?.variants ?? []) v.replayMs = ms;
}
const services = servicesOf(readFileSync(join(FIX, "services.txt"), "utf8"));

/** Send datagrams from the tx namespace; returns each one's send time. */
async function send(payloads: Uint8Array[]): Promise<number[]> {
  const file = join(tmpdir(), `xvs-sync-replay-${process.pid}.hex`);
  writeFileSync(file, payloads.map((p) => Buffer.from(p).toString("hex")).join("\n") + "\n");
  const r = await L.lab.exec("tx", ["python3", "-c", REPLAY_PY, file, TX_ADDR]);
  return r.stdout.trim().split("\n").filter(Boolean).map(Number);
}

/** Replay the recorded datagrams sent up to `untilMs` (pcap clock) that were not replayed yet. */
async function replay(dgrams: SyncDatagram[], from: number, untilMs: number): Promise<number> {
  let to = from;
  while (to < dgrams.length && dgrams[to].timeMs <= untilMs) to++;
  const sentAt = await send(dgrams.slice(from, to).map((d) => d.payload));
  expect(sentAt.length).toBe(to - from);
  for (let i = from; i < to; i++) {
    const res = decodeSyncMessage(dgrams[i].payload, { syncid: SYNCID, maxlen: 65507 });
    expect(res.messageDrop).toBeNull();
    for (const { conn } of res.records) {
      noteRecord(conn, dgrams[i].timeMs, sentAt[i - from]);
      if (conn.peData) peRecords++;
    }
  }
  return to;
}

interface BackupStats {
  /** records posted to the workers; each ends as one of created, updated, refused */
  records: number;
  created: number;
  updated: number;
  refused: number;
  messages: number;
  drops: Record<string, number>;
}
async function backupStats(): Promise<BackupStats> {
  return (await xvs.api("GET", "/v1/daemons/backup/stats")).json as BackupStats;
}

/** Wait until the backup has read `messages` datagrams (the socket is read on the main thread, the install is posted to the workers). */
async function settle(messages: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await backupStats()).messages < messages) {
    if (Date.now() > deadline) throw new Error(`backup read ${(await backupStats()).messages} of ${messages} datagrams`);
    await Bun.sleep(100);
  }
  // the workers install between rounds: a listing shows them once every worker took its batch,
  // which it counts (a condition: a fixed pause is outlasted by a worker off the CPU under load)
  for (;;) {
    const s = await backupStats();
    if (s.created + s.updated + s.refused >= s.records) break;
    if (Date.now() > deadline) throw new Error(`the workers installed ${s.created + s.updated + s.refused} of ${s.records} records`);
    await Bun.sleep(50);
  }
}

/**
 * xvs's listing against the kernel backup's: the same connections (but those of no local service,
 * which xvs counts as rec_no_service instead of keeping them unbound), each with the same state,
 * and expiries that agree within 3 s once both are lined up to the connection's last record.
 * A key can be listed twice by the kernel: a SIP template made from a v1 record (with its Call-ID)
 * and one made from a v0 record (no persistence-engine data on the wire) are two templates with the
 * same addresses (xvs skips the first, SIP_CALLID_TEMPLATE); rows of one key are paired by the
 * closest expiry, the kernel's longest first.
 */
async function compareWith(phase: string, snap: string): Promise<{ compared: number; skipped: string[]; missing: string[] }> {
  // the listing was made somewhere between these two (`xvs adm` starting up takes seconds under load)
  const listedFrom = Date.now();
  const mine = parseLnc((await xvs.adm(["-Lnc"])).stdout);
  const listedTo = Date.now();
  const snapMs = Number(readFileSync(join(FIX, `${phase}-bk-${snap}.time`), "utf8")) * 1000;
  const kernel = parseLnc(readFileSync(join(FIX, `${phase}-bk-${snap}.txt`), "utf8"));
  const group = (rows: ConnRow[]) => {
    const m = new Map<string, ConnRow[]>();
    for (const r of rows) m.set(r.key, [...(m.get(r.key) ?? []), r]);
    return m;
  };
  const mineBy = group(mine);
  const skipped: string[] = [];
  const missing: string[] = [];
  const problems: string[] = [];
  let compared = 0;
  for (const [key, krows] of group(kernel)) {
    const [pro, , virt] = key.split(" ");
    if (!services.has(`${pro} ${virt}`)) {
      skipped.push(key);
      continue;
    }
    const xrows = [...(mineBy.get(key) ?? [])];
    mineBy.delete(key);
    const seen = lastSeen.get(key);
    if (!seen) {
      problems.push(`${key}: listed by the kernel but no record of it was replayed`);
      continue;
    }
    // kernel rows with the longest expiry first: the newest template of a key gets xvs's row
    for (const k of [...krows].sort((a, b) => b.expireSec - a.expireSec)) {
      if (xrows.length === 0) {
        missing.push(`${key} ${k.state}`);
        continue;
      }
      // what the timer had left at the connection's last record (or our last packet), from each side
      const kernelAt = (at: { pcapMs: number }) => k.expireSec + (snapMs - at.pcapMs) / 1000;
      const mineAt = (x: ConnRow, at: { replayMs: number }, listedAt: number) => x.expireSec + (listedAt - at.replayMs) / 1000;
      let best = -1,
        bestDiff = Infinity,
        bestText = "";
      for (let i = 0; i < xrows.length; i++) {
        for (const at of seen.variants) {
          // xvs's value lies between these, by when the listing was made: the distance to that span
          const lo = mineAt(xrows[i], at, listedFrom),
            hi = mineAt(xrows[i], at, listedTo),
            kv = kernelAt(at);
          const d = kv < lo ? lo - kv : kv > hi ? kv - hi : 0;
          if (xrows[i].state === k.state && d < bestDiff) {
            best = i;
            bestDiff = d;
            bestText = `xvs ${xrows[i].expireSec}s (${lo.toFixed(1)}-${hi.toFixed(1)} at its record), kernel ${k.expireSec}s (${kv.toFixed(1)})`;
          }
        }
      }
      compared++;
      if (best < 0) problems.push(`${key}: no row in state ${k.state} (xvs: ${xrows.map((x) => x.state).join(", ")})`);
      else {
        if (bestDiff > 3) problems.push(`${key}: expiry ${bestText}`);
        xrows.splice(best, 1);
      }
    }
  }
  for (const [key, xrows] of mineBy) for (const x of xrows) problems.push(`xvs lists ${key} (${x.state}) that the kernel backup did not`);
  expect(problems).toEqual([]);
  return { compared, skipped, missing };
}

/** A TCP segment (ACK|PSH with a payload, no SYN) from the client, checksummed for the kernel to wrap in IPv4 or IPv6. */
function tcpSegment(src: string, dst: string, sport: number, dport: number, payload: string): Uint8Array {
  const body = new TextEncoder().encode(payload);
  const b = new Uint8Array(20 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint32(4, 1_000_000);
  dv.setUint32(8, 2_000_000);
  b[12] = 5 << 4;
  b[13] = 0x18; // PSH|ACK
  dv.setUint16(14, 65535);
  b.set(body, 20);
  const s = parseIp(src)!,
    d = parseIp(dst)!;
  let pseudo: number;
  if (s.family === 4) pseudo = pseudoSumV4(s.words[0], d.words[0], 6, b.length);
  else {
    const a = new Uint8Array(32);
    const av = new DataView(a.buffer);
    for (let i = 0; i < 4; i++) {
      av.setInt32(i * 4, s.words[i]);
      av.setInt32(16 + i * 4, d.words[i]);
    }
    pseudo = pseudoSumV6(a, 0, 16, 6, b.length);
  }
  dv.setUint16(16, checksum(b, 0, b.length, pseudo));
  return b;
}

/**
 * The lab: client, director with xvs (the services of services.txt), one real server (198.18.2.11,
 * 2001:db8:2::11, serving the NAT and DR ports), and the sync link tx -- dir. Each describe makes its
 * own, so that what one direction leaves in xvs's table (synced templates) does not shape the other.
 */
async function setUp(tag: string): Promise<void> {
  requireRoot();
  L = await buildDirectorLab(tag, { reals: 1, ipv6: true });
  const lab = L.lab;
  // the sync link: tx (the replaying "master") -- dir's sy0, which xvs does not take with XDP
  await lab.addNs("tx");
  await lab.veth("tx", "tx0", "dir", "sy0");
  await lab.ip("tx", "addr", "add", `${TX_ADDR}/24`, "dev", "tx0");
  await lab.ip("dir", "addr", "add", `${BK_ADDR}/24`, "dev", "sy0");
  // DR: the real server holds the DR VIPs on lo and does not answer ARP for them
  await lab.ip("rs1", "addr", "add", "198.18.0.101/32", "dev", "lo");
  await lab.sysctl("rs1", "net.ipv4.conf.all.arp_ignore", 1);
  await lab.sysctl("rs1", "net.ipv4.conf.all.arp_announce", 2);
  // "::": one dual-stack server for the IPv4 and IPv6 services
  await serveOn(lab, "rs1", ["--addr", "::", "--udp", "9001", "--tcp", "8080", "--http", "80"]);
  xvs = await startDaemon(lab, L.director, L.ifaces);
  for (const s of SERVICES) {
    const r = await xvs.adm(s);
    if (r.code !== 0) throw new Error(`xvs adm ${s.join(" ")}: ${r.stderr}`);
  }
}

async function tearDown(): Promise<void> {
  await xvs?.stop();
  await L?.lab.teardown();
}

describe("kernel IPVS master -> xvs backup", () => {
  beforeAll(async () => {
    await setUp("syi");
    expect((await xvs.adm(["--start-daemon", "backup", "--mcast-interface", "sy0", "--syncid", String(SYNCID)])).code).toBe(0);
  }, 120_000);
  afterAll(tearDown, 30_000);

  const v1 = readSyncPcap(join(FIX, "v1.pcap"));
  const v0 = readSyncPcap(join(FIX, "v0.pcap"));
  const time = (phase: string, snap: string) => Number(readFileSync(join(FIX, `${phase}-bk-${snap}.time`), "utf8")) * 1000;
  let readSoFar = 0;

  test("hostile variants of a recorded datagram (truncated, another syncid) are counted and install nothing", async () => {
    const good = v1[0].payload;
    const truncated = good.slice(0, good.length - 10);
    const otherId = good.slice();
    otherId[1] = SYNCID + 1;
    await send([truncated, otherId]);
    readSoFar += 2;
    await settle(readSoFar);
    const s = await backupStats();
    expect(s.drops).toEqual({ msg_size_mismatch: 1, msg_other_syncid: 1 });
    expect(s.created).toBe(0);
    expect(parseLnc((await xvs.adm(["-Lnc"])).stdout)).toEqual([]);
  }, 30_000);

  let v1At = 0;
  let v0At = 0;
  test("v1: while the connections were held, xvs lists what the kernel backup listed", async () => {
    v1At = await replay(v1, 0, time("v1", "held"));
    readSoFar += v1At;
    await settle(readSoFar);
    const r = await compareWith("v1", "held");
    expect(r.compared).toBe(12);
    expect(r.skipped).toEqual([]);
    expect(r.missing).toEqual(SIP_CALLID_TEMPLATE);
    expect(peRecords).toBeGreaterThan(0);
    expect((await backupStats()).drops.rec_unknown_pe).toBe(peRecords);
  }, 30_000);

  test("IPv6: a packet of a synced connection goes to the synced real server without a SYN: TCP NAT, TCP DR", async () => {
    const lab = L.lab;
    const rsMac = await macOf(lab, "rs1", "eth0");
    const v = await verdictsOf(xvs);
    const cap = await Capture.start(lab, "rs1", "eth0", ["ip6", "and", "src", "host", CLIENT6]);
    // [2001:db8:1::2]:40011 -> [2001:db8:100::100]:80, synced ESTABLISHED to [2001:db8:2::11]:8080 (Masq)
    await injectIp(lab, L.client, "2001:db8:100::100", 6, tcpSegment(CLIENT6, "2001:db8:100::100", 40011, 80, "after failover nat6"));
    // [2001:db8:1::2]:40013 -> [2001:db8:100::101]:80, synced ESTABLISHED to [2001:db8:2::11]:80 (Route)
    await injectIp(lab, L.client, "2001:db8:100::101", 6, tcpSegment(CLIENT6, "2001:db8:100::101", 40013, 80, "after failover dr6"));
    const sentAt = Date.now();
    for (const k of [`TCP [${CLIENT6}]:40011 [2001:db8:100::100]:80 [${RS6}]:8080`, `TCP [${CLIENT6}]:40013 [2001:db8:100::101]:80 [${RS6}]:80`])
      noteTouched(k, sentAt);
    const frames = (await cap.stop()).map((f) => decodeFrame(f)).filter((f) => f !== null);
    const seen = frames.map((f) => `${f!.inner.proto} ${f!.inner.src} ${f!.sport} > ${f!.inner.dst} ${f!.dport} ${f!.dstMac} ${f!.l4ChecksumOk}`);
    expect(seen).toContain(`6 ${CLIENT6} 40011 > ${RS6} 8080 ${rsMac} true`);
    expect(seen).toContain(`6 ${CLIENT6} 40013 > 2001:db8:100::101 80 ${rsMac} true`);
    const w = await verdictsOf(xvs);
    expect(w.new_conns - v.new_conns).toBe(0);
    expect(w.fwd_in - v.fwd_in).toBeGreaterThanOrEqual(2);
  }, 30_000);

  test("v1: after the close (TIME_WAIT, 50 more UDP flows), the same", async () => {
    const before = v1At;
    v1At = await replay(v1, v1At, time("v1", "closed"));
    readSoFar += v1At - before;
    await settle(readSoFar);
    expect(v1At).toBe(v1.length);
    const r = await compareWith("v1", "closed");
    expect(r.compared).toBeGreaterThan(60);
    expect(r.missing).toEqual(SIP_CALLID_TEMPLATE);
  }, 30_000);

  test("v0 (no timeouts on the wire: the protocol's for the state), held connections: the same", async () => {
    v0At = await replay(v0, 0, time("v0", "held"));
    readSoFar += v0At;
    await settle(readSoFar);
    const r = await compareWith("v0", "held");
    expect(r.missing).toEqual(SIP_CALLID_TEMPLATE);
    expect(r.skipped).toEqual([]);
  }, 30_000);

  test("a packet of a synced connection goes to the synced real server without a SYN: TCP NAT, TCP DR, UDP NAT", async () => {
    const lab = L.lab;
    const rsMac = await macOf(lab, "rs1", "eth0");
    const v = await verdictsOf(xvs);
    const cap = await Capture.start(lab, "rs1", "eth0", ["ip", "and", "src", "host", CLIENT]);
    // TCP 198.18.1.2:41001 -> 198.18.0.100:80, synced ESTABLISHED to 198.18.2.11:8080 (Masq)
    await injectIp(lab, L.client, "198.18.0.100", 6, tcpSegment(CLIENT, "198.18.0.100", 41001, 80, "after failover nat"));
    // TCP 198.18.1.2:41003 -> 198.18.0.101:80, synced ESTABLISHED to 198.18.2.11:80 (Route)
    await injectIp(lab, L.client, "198.18.0.101", 6, tcpSegment(CLIENT, "198.18.0.101", 41003, 80, "after failover dr"));
    // UDP 198.18.1.2:41005 -> 198.18.0.100:9000, synced to 198.18.2.11:9001 (Masq): the echo comes back from the VIP
    const udp = await lab.exec(L.client, [
      "python3",
      "-c",
      `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("${CLIENT}", 41005)); s.settimeout(5)
s.sendto(b"after failover udp", ("198.18.0.100", 9000)); d, a = s.recvfrom(2000); print(a[0], a[1], d.decode())`,
    ]);
    const sentAt = Date.now();
    for (const k of [
      `TCP ${CLIENT}:41001 198.18.0.100:80 ${RS}:8080`,
      `TCP ${CLIENT}:41003 198.18.0.101:80 ${RS}:80`,
      `UDP ${CLIENT}:41005 198.18.0.100:9000 ${RS}:9001`,
    ])
      noteTouched(k, sentAt);
    const frames = (await cap.stop()).map((f) => decodeFrame(f)).filter((f) => f !== null);
    const seen = frames.map((f) => `${f!.inner.proto} ${f!.inner.src}:${f!.sport} > ${f!.inner.dst}:${f!.dport} ${f!.dstMac}`);
    expect(seen).toContain(`6 ${CLIENT}:41001 > ${RS}:8080 ${rsMac}`);
    expect(seen).toContain(`6 ${CLIENT}:41003 > 198.18.0.101:80 ${rsMac}`);
    expect(seen).toContain(`17 ${CLIENT}:41005 > ${RS}:9001 ${rsMac}`);
    expect(udp.stdout.trim()).toMatch(/^198\.18\.0\.100 9000 /);
    const w = await verdictsOf(xvs);
    // no connection was scheduled: each packet found its synced connection
    expect(w.new_conns - v.new_conns).toBe(0);
    expect(w.fwd_in - v.fwd_in).toBeGreaterThanOrEqual(3);
  }, 30_000);

  test("v0 after the close: the same (records update the connections the packets above touched)", async () => {
    const before = v0At;
    v0At = await replay(v0, v0At, time("v0", "closed"));
    readSoFar += v0At - before;
    await settle(readSoFar);
    expect(v0At).toBe(v0.length);
    expect((await compareWith("v0", "closed")).missing).toEqual(SIP_CALLID_TEMPLATE);
    const s = await backupStats();
    expect(s.refused).toBe(0);
    // every record of the real datagrams was taken but the SIP templates with a Call-ID: the other
    // drops are the two hostile variants
    expect(s.drops).toEqual({ msg_size_mismatch: 1, msg_other_syncid: 1, rec_unknown_pe: peRecords });
  }, 30_000);
});

/** A UDP flow of 3 datagrams from one client port (the kernel's rule sends it at packet 3); prints the port. */
const UDP_FLOW_PY = `
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5)
for i in range(3):
    s.sendto(b"xvs master flow %d" % i, (sys.argv[1], int(sys.argv[2]))); s.recvfrom(2000)
print(s.getsockname()[1])
`;

/** tcpdump writing the sync datagrams on tx's side of the sync veth to `file` (kept: it may become a fixture). */
async function captureSync(file: string): Promise<{ stop(): Promise<void> }> {
  const p = L.lab.spawn("tx", ["tcpdump", "--immediate-mode", "-U", "-n", "-i", "tx0", "-w", file, "udp", "port", "8848"]);
  const reader = (p.stderr as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Date.now() + 5000;
  while (!text.includes("listening on")) {
    const r = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
    if (r === null || r.done) throw new Error(`tcpdump did not start: ${text}`);
    text += new TextDecoder().decode(r.value);
  }
  reader.releaseLock();
  return {
    async stop() {
      await Bun.sleep(300);
      p.kill("SIGINT");
      await p.exited;
    },
  };
}

/**
 * Real connections through the xvs master, every kind the guest's services take that xvs sends:
 * TCP NAT (held, then closed), TCP with persistence (a template and its connection), TCP DR (one
 * HTTP request), UDP NAT (3 datagrams from one port); IPv6 TCP and UDP unless `v4only` (v0).
 * Returns the UDP flows' client ports.
 */
async function traffic(v4only: boolean): Promise<Record<string, number>> {
  const lab = L.lab;
  const ports: Record<string, number> = {};
  const held: HeldConnection[] = [];
  for (const [host, port] of [["198.18.0.100", 80], ["198.18.0.100", 81], ...(v4only ? [] : [["2001:db8:100::100", 80] as const])] as const) {
    const c = await HeldConnection.open(lab, L.client, host, port);
    // two lines: packets 3 and 4 from the client (the 3rd is the one the send rule picks)
    expect(await c.ask("one")).toBe("rs1 one");
    expect(await c.ask("two")).toBe("rs1 two");
    held.push(c);
  }
  const dr = await httpGet(lab, L.client, "198.18.0.101", 80, 1, 1);
  expect(dr.ok).toBe(1);
  for (const [kind, host] of [["udp-nat", "198.18.0.100"], ...(v4only ? [] : [["udp6-nat", "2001:db8:100::100"]])]) {
    const r = await lab.exec(L.client, ["python3", "-c", UDP_FLOW_PY, host, "9000"]);
    ports[kind] = Number(r.stdout.trim());
  }
  for (const c of held) c.close();
  // the closes' state changes are sent at once; an unfilled message leaves within 2-3 s
  await Bun.sleep(4000);
  return ports;
}

describe("xvs master -> kernel IPVS backup: what xvs sends", () => {
  beforeAll(() => setUp("sym"), 120_000);
  afterAll(tearDown, 30_000);
  for (const version of [1, 0] as const) {
    test(`v${version}: the sync datagrams of real connections decode whole, one ESTABLISHED record per TCP connection and its close`, async () => {
      // v0 after v1 on the same director, as record.sh did with the kernel master
      if (version === 0) expect((await xvs.adm(["--stop-daemon", "master"])).code).toBe(0);
      await apiOk(xvs, "PUT", "/v1/sync/settings", { syncVersion: version });
      const file = join(tmpdir(), `xvs-master-v${version}-${process.pid}.pcap`);
      const cap = await captureSync(file);
      expect((await xvs.adm(["--start-daemon", "master", "--mcast-interface", "sy0", "--syncid", String(SYNCID)])).code).toBe(0);
      const t0 = Date.now();
      const ports = await traffic(version === 0);
      const listing = (await xvs.adm(["-Lnc"])).stdout;
      await cap.stop();
      const dgrams = readSyncPcap(file);
      expect(dgrams.length).toBeGreaterThan(0);
      const rx = new SyncRxCounters();
      const recs: SyncConn[] = [];
      for (const d of dgrams) {
        expect(d.dst).toBe("224.0.0.81");
        expect(d.dstPort).toBe(8848);
        expect(d.src).toBe(BK_ADDR);
        expect(d.ttl).toBe(1);
        expect(d.timeMs).toBeGreaterThanOrEqual(t0 - 1000);
        const r = decodeSyncMessage(d.payload, { syncid: SYNCID, maxlen: 1472 }, rx);
        expect(r.messageDrop).toBeNull();
        expect(r.drops).toEqual([]);
        expect(r.version).toBe(version);
        recs.push(...r.records.map((x) => x.conn));
      }
      const keys = new Set(recs.map((c) => `${connKey(c)} ${c.state}`));
      // UDP flows: one record each, at their 3rd datagram
      expect(keys.has(`UDP ${CLIENT}:${ports["udp-nat"]} 198.18.0.100:9000 ${RS}:9001 0`)).toBe(true);
      if (version === 1) expect(keys.has(`UDP [2001:db8:1::2]:${ports["udp6-nat"]} [2001:db8:100::100]:9000 [2001:db8:2::11]:9001 0`)).toBe(true);
      // every TCP connection: ESTABLISHED (1) once, and a closing state after
      const tcp = recs.filter((c) => c.protocol === 6 && c.cport !== 0);
      const conns = new Set(tcp.map(connKey));
      expect(conns.size).toBe(version === 1 ? 4 : 3);
      for (const k of conns) {
        const states = tcp.filter((c) => connKey(c) === k).map((c) => c.state);
        expect(states[0]).toBe(1);
        expect(states.filter((s) => s === 1).length).toBe(1);
        expect(states.length).toBeGreaterThan(1);
      }
      // the persistence template (client port 0) of :81
      expect(recs.some((c) => c.cport === 0 && c.vport === 81 && c.family === 4)).toBe(true);
      if (process.env.XVS_SYNC_RECORD === "1") {
        writeFileSync(join(FIX, `xvs-master-v${version}.pcap`), readFileSync(file));
        writeFileSync(join(FIX, `xvs-master-v${version}-lb.txt`), listing);
        if (version === 1) writeFileSync(join(FIX, "xvs-master-services.txt"), (await xvs.adm(["-Ln"])).stdout);
      }
    }, 60_000);
  }
});
