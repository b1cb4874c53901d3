/**
 * The IPVS connection-synchronisation daemons on the main thread (ipvsadm --start-daemon,
 * net/netfilter/ipvs/ip_vs_sync.c start_sync_thread, sync_thread_master, sync_thread_backup).
 *
 * Master: every SYNC_TICK_MS it drains the workers' feed rings (dataplane/sync-feed.ts: copies of
 * the connections the kernel's send rule picked, per packet, in the workers), turns each copy
 * into a sync record and packs them as ip_vs_sync_conn does (sync/encode.ts SyncMessageBuilder);
 * a message that closed is queued (sync_qlen_max, beyond it dropped and counted) and sent at the
 * next tick; an unfilled one leaves when it is IPVS_SYNC_FLUSH_TIME (2 s) old.
 * Backup: every datagram is decoded (sync/decode.ts, hostile input counted per reason, never a
 * throw); each record's service and real server are found in the live Tables and the records are
 * posted to the workers, which install them between rounds (ip_vs_proc_conn). Each record goes
 * to one worker (by its client address and port); whichever queue the client's packets reach
 * finds it there (conn/peers.ts: a worker's miss looks in the other workers' tables).
 *
 * Deviations, each for a reason: a record whose real server is not in the local table is skipped
 * and counted (`rec_no_dest`); the kernel keeps it unbound, but an xvs record needs a dest to
 * forward.
 */
import dgram from "node:dgram";
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import { ErrorCode, LbError } from "../errors.ts";
import { log } from "../log.ts";
import { canonicalIp, ipText, parseIp } from "../service/addr.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_FWD,
  DEST_PORT,
  DEST_WORDS,
  DESTF_V6,
  findService,
  FWD_MASQ,
  SVC_DEST_N,
  SVC_DEST_OFF,
  SVC_FLAGS,
  SVC_FWMARK,
  SVC_WORDS,
  SVCF_FWMARK,
  type Tables,
} from "../service/tables.ts";
import { CF_DEST_V6, CF_FWD_MASK, CF_INACTIVE, CF_NOOUTPUT, CF_TEMPLATE, CF_USED, CF_V6 } from "../conn/table.ts";
import { TCP_TIMEOUTS_SEC } from "../conn/state.ts";
import { decodeSyncMessage } from "../sync/decode.ts";
import { SyncDrop, SyncRxCounters } from "../sync/drops.ts";
import { SyncMessageBuilder } from "../sync/encode.ts";
import {
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_TEMPLATE,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SYNC_GROUP_V4,
  SYNC_PORT,
  type SyncConn,
  syncMaxlen,
} from "../sync/format.ts";
import { peInstallable } from "../sync/pe.ts";
import { flushDue, queueAccepts, SYNC_QLEN_MAX_DEFAULT } from "../sync/policy.ts";
import {
  drainFeed,
  E_CADDR,
  E_CPORT_VPORT,
  E_DADDR,
  E_DPORT,
  E_FLAGS,
  E_PROTO_STATE,
  E_SVC,
  E_TIMEOUT,
  E_VADDR,
  FEED_CREATED,
  FEED_HEAD,
  FEED_LOST,
  FEED_MASTER,
  FEED_PERIOD,
  FEED_PERSIST_MODE,
  FEED_REFRESH_MS,
  FEED_REFUSED,
  FEED_RETRIES,
  FEED_TAIL,
  FEED_THRESHOLD,
  FEED_UPDATED,
  I_CADDR,
  I_CPORT_VPORT,
  I_DADDR,
  I_DEST,
  I_DPORT,
  I_FLAGS,
  I_PROTO_STATE,
  I_SVC,
  I_TIMEOUT,
  I_VADDR,
  I_WORDS,
  newFeedBuffer,
  type SyncWorkerMessage,
} from "../dataplane/sync-feed.ts";
import { applyBackupOnly, backupOnlyActive } from "./backup-only.ts";
import type { Daemon } from "./daemon.ts";

/** How often the master drains the feeds and sends what closed (the kernel wakes within HZ/50). */
export const SYNC_TICK_MS = 10;
/** Most sync threads per daemon (IPVS_SYNC_PORTS_MAX). */
const SYNC_PORTS_MAX = 64;
/** Template timeout a v0 record implies (ip_vs_proc_conn: 3 minutes). */
const TEMPLATE_V0_TIMEOUT_SEC = 180;
/** xvs's template flag for state ASSURED (conn/table.ts CF_ASSURED). */
const CF_ASSURED = 0x10000;

/** The sysctls of net.ipv4.vs.* that govern the daemons, with the kernel's defaults. */
export interface SyncSysctls {
  syncVersion: number;
  syncThreshold: number;
  syncPeriod: number;
  /** Seconds. */
  syncRefreshPeriod: number;
  syncRetries: number;
  syncQlenMax: number;
  syncSockSize: number;
  syncPorts: number;
  syncPersistMode: number;
  backupOnly: number;
}

export const SYNC_SYSCTL_DEFAULTS: Readonly<SyncSysctls> = {
  syncVersion: 1,
  syncThreshold: 3,
  syncPeriod: 50,
  syncRefreshPeriod: 0,
  syncRetries: 0,
  syncQlenMax: SYNC_QLEN_MAX_DEFAULT,
  syncSockSize: 0,
  syncPorts: 1,
  syncPersistMode: 0,
  backupOnly: 0,
};

/** ipvsadm --start-daemon's options (struct ipvs_daemon_user). */
export interface SyncDaemonOptions {
  state: "master" | "backup";
  mcastInterface: string;
  syncId: number;
  /** 0: the kernel's default (syncMaxlen). */
  syncMaxlen: number;
  /** Empty: 224.0.0.81. */
  mcastGroup: string;
  /** 0: 8848. */
  mcastPort: number;
  /** 0: 1. */
  mcastTtl: number;
}

/** One running daemon as `-L --daemon` and GET /v1/daemons show it. */
export interface SyncDaemonView {
  state: "master" | "backup";
  mcastInterface: string;
  syncId: number;
  maxlen: number;
  group: string;
  port: number;
  ttl: number;
}

/** Counters of one daemon. */
export interface SyncDaemonStats {
  messages: number;
  records: number;
  /** Master: records the feed lost (ring full), messages dropped (sync_qlen_max), send errors. */
  feedLost: number;
  queueDropped: number;
  sendErrors: number;
  /** Backup: records installed (created / updated), refused (table full), and the decoder's drops by reason. */
  created: number;
  updated: number;
  refused: number;
  drops: Record<string, number>;
}

interface Running {
  view: SyncDaemonView;
  sock: dgram.Socket;
  family: 4 | 6;
  timer: ReturnType<typeof setInterval> | null;
  /** Master: one message builder per sync thread (sync_ports), thread i sends to port + i. */
  builders: SyncMessageBuilder[];
  queue: { m: Uint8Array; port: number }[];
  /** Backup: the sockets of ports + 1 .. + threads - 1 (`sock` has the first). */
  more: dgram.Socket[];
  /** Datagrams handed to the socket and not yet sent; a stopping master closes its socket when 0. */
  inflight: number;
  closing: boolean;
  /** sync_ports when the first daemon started (start_sync_thread: the second one takes the same). */
  threads: number;
  rx: SyncRxCounters;
  stats: { messages: number; records: number; queueDropped: number; sendErrors: number };
  /** The workers' cumulative feed counters when this daemon started (lost, created, updated, refused). */
  base: number[];
}

/** The feed words a daemon's counters are read from, in Running.base's order. */
const FEED_COUNTS = [FEED_LOST, FEED_CREATED, FEED_UPDATED, FEED_REFUSED];

/** Close a daemon's sockets. */
function closeAll(r: Running): void {
  for (const x of [r.sock, ...r.more]) {
    try {
      x.close();
    } catch {
      // already closed after an error
    }
  }
}

/** The interface's MTU (the backup's default sync_maxlen), 1500 when unknown. */
function interfaceMtu(ifname: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/mtu`, "utf8").trim()) || 1500;
  } catch {
    return 1500;
  }
}

/** The interface's first address of `family` (the master sends from it; the backup joins on it). */
function interfaceAddress(ifname: string, family: 4 | 6): string | null {
  const list = networkInterfaces()[ifname];
  if (!list) return null;
  const a = list.find((x) => (family === 4 ? x.family === "IPv4" : x.family === "IPv6" && x.address.startsWith("fe80")));
  return a ? a.address : null;
}

function words(text: string): [number, number, number, number] {
  const a = parseIp(text);
  return a ? a.words : [0, 0, 0, 0];
}

/** The daemons of one xvs daemon, their sysctls and their counters. */
export class SyncManager {
  readonly sysctls: SyncSysctls = { ...SYNC_SYSCTL_DEFAULTS };
  private master: Running | null = null;
  private backup: Running | null = null;
  private feeds: Int32Array[] = [];

  constructor(private readonly daemon: Daemon) {}

  /** The running daemons, master first (ipvsadm prints them in that order). */
  list(): SyncDaemonView[] {
    return [this.master, this.backup].filter((r): r is Running => r !== null).map((r) => r.view);
  }

  /** Counters of the daemon in `state`, null when it does not run. */
  stats(state: "master" | "backup"): SyncDaemonStats | null {
    const r = state === "master" ? this.master : this.backup;
    if (!r) return null;
    // the workers count since they started: this daemon's share is what grew since its start
    const sum = (k: number) => this.feeds.reduce((a, f) => a + f[FEED_COUNTS[k]], 0) - r.base[k];
    return {
      messages: r.stats.messages,
      records: r.stats.records,
      feedLost: state === "master" ? sum(0) : 0,
      queueDropped: r.stats.queueDropped,
      sendErrors: r.stats.sendErrors,
      created: state === "backup" ? sum(1) : 0,
      updated: state === "backup" ? sum(2) : 0,
      refused: state === "backup" ? sum(3) : 0,
      drops: r.rx.dropTable(),
    };
  }

  /** Change sysctls; the master's send rule takes them at once. */
  setSysctls(change: Partial<SyncSysctls>): SyncSysctls {
    Object.assign(this.sysctls, change);
    this.writeFeedSettings();
    this.applyBackupOnly();
    return this.sysctls;
  }

  /** ipvsadm --start-daemon. @throws LbError (EXIST when that state runs, NOTEXIST for an unknown interface). */
  async start(o: SyncDaemonOptions): Promise<SyncDaemonView> {
    if ((o.state === "master" ? this.master : this.backup) !== null) throw new LbError(ErrorCode.Exists, "Daemon has already run");
    const group = o.mcastGroup === "" ? SYNC_GROUP_V4 : canonicalIp(o.mcastGroup);
    if (group === null) throw new LbError(ErrorCode.Invalid, "Invalid argument");
    const family: 4 | 6 = group.includes(":") ? 6 : 4;
    if (o.mcastInterface === "" || (!networkInterfaces()[o.mcastInterface] && !this.interfaceExists(o.mcastInterface)))
      throw new LbError(ErrorCode.NotExist, "No such device");
    const view: SyncDaemonView = {
      state: o.state,
      mcastInterface: o.mcastInterface,
      syncId: o.syncId,
      maxlen: syncMaxlen(o.state, o.syncMaxlen, interfaceMtu(o.mcastInterface), family),
      group,
      port: o.mcastPort || SYNC_PORT,
      // the backup's socket has no use for a TTL; the kernel shows the default (daemon-options.txt)
      ttl: o.state === "master" ? o.mcastTtl || 1 : 1,
    };
    const sock = dgram.createSocket({ type: family === 6 ? "udp6" : "udp4", reuseAddr: true });
    const r: Running = {
      view,
      sock,
      family,
      timer: null,
      builders: [],
      queue: [],
      more: [],
      inflight: 0,
      closing: false,
      threads: (this.master ?? this.backup)?.threads ?? Math.min(Math.max(this.sysctls.syncPorts, 1), SYNC_PORTS_MAX),
      rx: new SyncRxCounters(),
      stats: { messages: 0, records: 0, queueDropped: 0, sendErrors: 0 },
      base: [0, 0, 0, 0],
    };
    sock.on("error", (e) => {
      r.stats.sendErrors++;
      log("warn", "sync socket error", { state: o.state, error: e.message });
    });
    const ifAddr = interfaceAddress(o.mcastInterface, family);
    if (ifAddr === null) {
      sock.close();
      throw new LbError(ErrorCode.NotExist, `Cannot assign requested address (${o.mcastInterface} has no IPv${family} address)`);
    }
    const ifSpec = family === 6 ? `${ifAddr.split("%")[0]}%${o.mcastInterface}` : ifAddr;
    try {
      if (o.state === "master") {
        await new Promise<void>((res, rej) => {
          sock.once("error", rej);
          sock.bind({ address: ifSpec, port: 0 }, () => {
            sock.off("error", rej);
            res();
          });
        });
        sock.setMulticastInterface(ifSpec);
        sock.setMulticastTTL(view.ttl);
        // the kernel's master does not hear itself (set_mcast_loop(sk, 0))
        sock.setMulticastLoopback(false);
        if (this.sysctls.syncSockSize > 0) sock.setSendBufferSize(this.sysctls.syncSockSize);
        for (let i = 0; i < r.threads; i++) r.builders.push(new SyncMessageBuilder(view.syncId, view.maxlen));
        this.master = r;
        this.ensureFeeds();
        r.base = FEED_COUNTS.map((w) => this.feeds.reduce((a, f) => a + f[w], 0));
        // what an earlier master left unread is not sent by this one (the kernel frees its queue on stop)
        for (const f of this.feeds) Atomics.store(f, FEED_TAIL, Atomics.load(f, FEED_HEAD));
        this.writeFeedSettings();
        r.timer = setInterval(() => this.masterTick(r), SYNC_TICK_MS);
      } else {
        await new Promise<void>((res, rej) => {
          sock.once("error", rej);
          sock.bind({ port: view.port, exclusive: false }, () => {
            sock.off("error", rej);
            res();
          });
        });
        sock.addMembership(group, ifSpec);
        if (this.sysctls.syncSockSize > 0) sock.setRecvBufferSize(this.sysctls.syncSockSize);
        sock.on("message", (msg) => this.backupMessage(r, msg));
        // sync_ports > 1: one receiving thread (here, socket) per port
        for (let i = 1; i < r.threads; i++) {
          const extra = dgram.createSocket({ type: family === 6 ? "udp6" : "udp4", reuseAddr: true });
          r.more.push(extra);
          await new Promise<void>((res, rej) => {
            extra.once("error", rej);
            extra.bind({ port: view.port + i, exclusive: false }, () => {
              extra.off("error", rej);
              res();
            });
          });
          extra.addMembership(group, ifSpec);
          extra.on("message", (msg) => this.backupMessage(r, msg));
        }
        this.backup = r;
        this.applyBackupOnly();
        this.ensureFeeds();
        r.base = FEED_COUNTS.map((w) => this.feeds.reduce((a, f) => a + f[w], 0));
        // installs set in_pkts to sync_threshold, which the workers read from the feed
        this.writeFeedSettings();
      }
    } catch (e) {
      sock.close();
      for (const x of r.more) x.close();
      if (e instanceof LbError) throw e;
      throw new LbError(ErrorCode.System, `sync daemon: ${e instanceof Error ? e.message : String(e)}`);
    }
    log("info", "sync daemon started", { ...view });
    return view;
  }

  /** ipvsadm --stop-daemon. @throws LbError NOTEXIST when that state does not run. */
  stop(state: "master" | "backup"): void {
    const r = state === "master" ? this.master : this.backup;
    if (!r) throw new LbError(ErrorCode.NotExist, "No daemon is running");
    if (r.timer) clearInterval(r.timer);
    if (state === "master") {
      // what was queued and the unfilled message still leave, as the kernel's thread does on stop
      this.masterTick(r, true);
      this.master = null;
      this.writeFeedSettings();
    } else {
      this.backup = null;
      this.applyBackupOnly();
    }
    // what the last turn handed to the socket still leaves before it closes
    r.closing = true;
    if (r.inflight === 0) closeAll(r);
    log("info", "sync daemon stopped", { state });
  }

  /** Stop everything (daemon shutdown). */
  close(): void {
    for (const s of ["master", "backup"] as const) if ((s === "master" ? this.master : this.backup) !== null) this.stop(s);
  }

  /** backup_only takes effect while the backup daemon runs (control/backup-only.ts). */
  private applyBackupOnly(): void {
    applyBackupOnly(this.daemon, backupOnlyActive(this.backup !== null, this.sysctls.backupOnly));
  }

  /** The dataplane's workers (none without a dataplane: the daemons then only talk on the wire). */
  private workers(): { worker: Worker }[] {
    const w = this.daemon.dataplane?.workers;
    // the CLI tests' stand-in dataplane has workers without threads
    return Array.isArray(w) ? w.filter((x) => x.worker !== undefined) : [];
  }

  private interfaceExists(ifname: string): boolean {
    try {
      readFileSync(`/sys/class/net/${ifname}/ifindex`);
      return true;
    } catch {
      return false;
    }
  }

  /** Give every worker its feed ring (once; the workers keep it). */
  private ensureFeeds(): void {
    const workers = this.workers();
    if (this.feeds.length === workers.length) return;
    this.feeds = [];
    for (const w of workers) {
      const buf = newFeedBuffer();
      this.feeds.push(new Int32Array(buf));
      const m: SyncWorkerMessage = { type: "sync", feed: buf };
      w.worker.postMessage(m);
    }
  }

  private writeFeedSettings(): void {
    const s = this.sysctls;
    for (const f of this.feeds) {
      f[FEED_THRESHOLD] = s.syncThreshold;
      f[FEED_PERIOD] = s.syncPeriod;
      f[FEED_REFRESH_MS] = s.syncRefreshPeriod * 1000;
      f[FEED_RETRIES] = s.syncRetries;
      f[FEED_PERSIST_MODE] = s.syncPersistMode;
      Atomics.store(f, FEED_MASTER, this.master !== null ? 1 : 0);
    }
  }

  /** Drain the feeds, pack, queue, send (sync_thread_master's loop, one turn). */
  private masterTick(r: Running, final = false): void {
    const now = Date.now();
    const t = this.daemon.tables();
    const version = this.sysctls.syncVersion === 0 ? 0 : 1;
    const n = r.builders.length;
    for (const f of this.feeds) {
      drainFeed(f, (ring, at) => {
        const c = feedConn(ring, at, t, version);
        if (!c) return;
        r.stats.records++;
        // a connection keeps its thread (select_master_thread_id picks one per connection)
        const k = n > 1 ? ownerOf(c, n) : 0;
        for (const m of r.builders[k].add(c, version, now)) this.enqueue(r, m, r.view.port + k);
      });
    }
    for (let k = 0; k < n; k++) {
      const b = r.builders[k];
      if (final || flushDue(b.firstUseMs, now)) {
        const m = b.take();
        if (m) this.enqueue(r, m, r.view.port + k);
      }
    }
    while (r.queue.length > 0) {
      const q = r.queue.shift()!;
      r.stats.messages++;
      r.inflight++;
      r.sock.send(q.m, q.port, r.view.group, (err) => {
        if (err) r.stats.sendErrors++;
        if (--r.inflight === 0 && r.closing) closeAll(r);
      });
    }
  }

  private enqueue(r: Running, m: Uint8Array, port: number): void {
    if (queueAccepts(r.queue.length, this.sysctls.syncQlenMax)) r.queue.push({ m, port });
    else r.stats.queueDropped++;
  }

  /** One datagram for the backup: decode, resolve, post to the workers. */
  private backupMessage(r: Running, msg: Buffer): void {
    const t = this.daemon.tables();
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const res = decodeSyncMessage(bytes, { syncid: r.view.syncId, maxlen: r.view.maxlen, hasService: (c) => serviceOf(t, c) >= 0 }, r.rx);
    r.stats.messages++;
    if (res.records.length === 0) return;
    const udpTicks = this.daemon.model.timeouts.udp * 100;
    const workers = this.workers();
    const n = Math.max(1, workers.length);
    // one worker per record (every worker's lookup finds it, conn/peers.ts); the same tuple always
    // goes to the same worker, so that an update finds what the create made
    const batches = Array.from({ length: n }, () => new Int32Array(res.records.length * I_WORDS));
    const fill = new Array<number>(n).fill(0);
    for (const { conn } of res.records) {
      // a template keyed with a persistence engine's data (SIP Call-ID): xvs has no engine (sync/pe.ts)
      if (!peInstallable(conn)) {
        r.rx.drop(SyncDrop.REC_UNKNOWN_PE);
        continue;
      }
      const k = ownerOf(conn, n);
      if (packInstall(batches[k], fill[k] * I_WORDS, conn, t, udpTicks)) fill[k]++;
      else r.rx.drop(SyncDrop.REC_NO_DEST);
    }
    r.stats.records += fill.reduce((a, b) => a + b, 0);
    for (let k = 0; k < workers.length; k++) {
      if (fill[k] === 0) continue;
      const m: SyncWorkerMessage = { type: "sync", install: batches[k].slice(0, fill[k] * I_WORDS) };
      workers[k].worker.postMessage(m);
    }
  }
}

/** Which of `n` workers installs a record: by its client address and port, stable per tuple. */
export function ownerOf(c: SyncConn, n: number): number {
  let h = c.cport;
  for (let i = 0; i < c.caddr.length; i++) h = (Math.imul(h, 31) + c.caddr.charCodeAt(i)) | 0;
  return (h >>> 0) % n;
}

/** A feed entry as the sync record the kernel would send for it; null when it cannot travel. */
export function feedConn(ring: Int32Array, at: number, t: Tables, version: 0 | 1): SyncConn | null {
  const flags = ring[at + E_FLAGS];
  const ps = ring[at + E_PROTO_STATE];
  const v6 = (flags & CF_V6) !== 0;
  // a v4 service tunnelling to a v6 real server: a record has one family for all three addresses
  if (v6 !== ((flags & CF_DEST_V6) !== 0)) return null;
  const family: 4 | 6 = v6 ? 6 : 4;
  const addr = (o: number) => ipText({ family, words: [ring[o], ring[o + 1], ring[o + 2], ring[o + 3]] });
  const tpl = (flags & CF_TEMPLATE) !== 0;
  const svc = ring[at + E_SVC];
  const so = svc * SVC_WORDS;
  const fwmark = (t.svc[so + SVC_FLAGS] & SVCF_FWMARK) !== 0 ? t.svc[so + SVC_FWMARK] : 0;
  const cv = ring[at + E_CPORT_VPORT];
  // IPVS flags: xvs keeps the forwarding method, NOOUTPUT, INACTIVE and TEMPLATE at the kernel's bit positions
  const ipvsFlags = flags & (CF_FWD_MASK | CONN_F_NOOUTPUT | CONN_F_INACTIVE | CONN_F_TEMPLATE);
  return {
    version,
    family,
    protocol: (ps >>> 8) & 0xff,
    flags: ipvsFlags,
    state: tpl ? ((flags & CF_ASSURED) !== 0 ? 1 : 0) : ps & 0xff,
    cport: cv >>> 16,
    vport: cv & 0xffff,
    dport: ring[at + E_DPORT] & 0xffff,
    fwmark,
    timeoutSec: Math.round(ring[at + E_TIMEOUT] / 100),
    caddr: addr(at + E_CADDR),
    vaddr: addr(at + E_VADDR),
    daddr: addr(at + E_DADDR),
  };
}

/** The service a record belongs to in the live table, -1 when none (fwmark services: xvs has none). */
export function serviceOf(t: Tables, c: SyncConn): number {
  if (c.fwmark !== 0) return -1;
  const w = words(c.vaddr);
  // a template of a port-0 or FTP service carries vport 0: findService tries port 0 as the kernel's lookup does
  return findService(t, c.protocol, w[0], w[1], w[2], w[3], c.vport);
}

/** The real server of service `svc` with address `daddr` and port `dport`, -1 when none. */
export function destOf(t: Tables, svc: number, c: SyncConn): number {
  const so = svc * SVC_WORDS;
  const w = words(c.daddr);
  const off = t.svc[so + SVC_DEST_OFF],
    n = t.svc[so + SVC_DEST_N];
  for (let i = 0; i < n; i++) {
    const d = t.destList[off + i];
    const o = d * DEST_WORDS;
    if (
      t.dest[o + DEST_ADDR] === w[0] &&
      t.dest[o + DEST_ADDR + 1] === w[1] &&
      t.dest[o + DEST_ADDR + 2] === w[2] &&
      t.dest[o + DEST_ADDR + 3] === w[3] &&
      // templates of port-0 services carry dport 0
      (t.dest[o + DEST_PORT] === c.dport || c.dport === 0)
    )
      return d;
  }
  return -1;
}

/**
 * Pack one decoded record for installSynced (ip_vs_proc_conn + ip_vs_bind_dest): the forwarding
 * method and NOOUTPUT come from the local real server, INACTIVE from the record (templates
 * never count as inactive); the timeout is the record's, or for v0 the protocol's for the state.
 * Returns false when the service or real server is not in the local table.
 */
export function packInstall(out: Int32Array, at: number, c: SyncConn, t: Tables, udpTicks: number): boolean {
  const svc = serviceOf(t, c);
  if (svc < 0) return false;
  const dest = destOf(t, svc, c);
  if (dest < 0) return false;
  const tpl = (c.flags & CONN_F_TEMPLATE) !== 0;
  const fwd = t.dest[dest * DEST_WORDS + DEST_FWD];
  const destV6 = (t.dest[dest * DEST_WORDS + DEST_FLAGS] & DESTF_V6) !== 0;
  let flags = CF_USED | (fwd & CF_FWD_MASK) | (c.family === 6 ? CF_V6 : 0) | (destV6 ? CF_DEST_V6 : 0) | (fwd === FWD_MASQ ? 0 : CF_NOOUTPUT);
  if (tpl) flags |= CF_TEMPLATE | (c.state === 1 ? CF_ASSURED : 0);
  else flags |= c.flags & CF_INACTIVE;
  let timeout: number;
  if (c.timeoutSec > 0) timeout = c.timeoutSec * 100;
  else if (tpl) timeout = TEMPLATE_V0_TIMEOUT_SEC * 100;
  else if (c.protocol === IPPROTO_TCP) timeout = (TCP_TIMEOUTS_SEC[c.state] ?? 60) * 100;
  else if (c.protocol === IPPROTO_UDP) timeout = udpTicks;
  else timeout = TEMPLATE_V0_TIMEOUT_SEC * 100;
  out[at + I_FLAGS] = flags;
  out[at + I_PROTO_STATE] = (c.protocol << 8) | (tpl ? 0 : c.state);
  const ca = words(c.caddr),
    va = words(c.vaddr),
    da = words(c.daddr);
  for (let k = 0; k < 4; k++) {
    out[at + I_CADDR + k] = ca[k];
    out[at + I_VADDR + k] = va[k];
    out[at + I_DADDR + k] = da[k];
  }
  out[at + I_CPORT_VPORT] = (c.cport << 16) | c.vport | 0;
  out[at + I_DPORT] = c.dport;
  out[at + I_SVC] = svc;
  out[at + I_DEST] = dest;
  out[at + I_TIMEOUT] = timeout;
  return true;
}

const managers = new WeakMap<Daemon, SyncManager>();

/** The sync daemons of `daemon` (made on first use). */
export function syncManager(daemon: Daemon): SyncManager {
  let m = managers.get(daemon);
  if (!m) {
    m = new SyncManager(daemon);
    managers.set(daemon, m);
  }
  return m;
}
