/**
 * When the master sends a connection, and when a message leaves: the kernel's rules as pure
 * functions over plain numbers (net/netfilter/ipvs/ip_vs_sync.c ip_vs_sync_conn_needed,
 * ip_vs_sync_conn, sb_queue_tail, next_sync_buff; include/net/ip_vs.h for the constants). Time is
 * in milliseconds where the kernel counts jiffies; the kernel keeps a retry count in the low 2 bits
 * of sync_endtime, and so does this (so sync_endtime has a 4 ms grain here).
 *
 * The kernel calls the decision for every packet from the client side (ip_vs_in: pkts is the
 * connection's in_pkts after the increment, or sync_threshold for one-packet connections), then for
 * the connection's controlling template with the template's in_pkts + 1.
 */
import { CONN_F_ONE_PACKET, CONN_F_TEMPLATE, IPPROTO_SCTP, IPPROTO_TCP } from "./format.ts";

/** The sysctls that steer sending (net.ipv4.vs.*), with the kernel's defaults in SYNC_DEFAULTS. */
export interface SyncSettings {
  /** sync_threshold[0]: send when in_pkts reaches this (mod syncPeriod). */
  syncThreshold: number;
  /** sync_threshold[1] (sync_period): 0 = only once, at syncThreshold. */
  syncPeriod: number;
  /** sync_refresh_period in ms (the sysctl is in seconds): 0 = off. */
  syncRefreshPeriodMs: number;
  /** sync_retries 0..3: resends within a refresh period. */
  syncRetries: number;
  /** sync_persist_mode: 1 = connections under a persistence template are not sent (their template is). */
  syncPersistMode: number;
}

/** DEFAULT_SYNC_THRESHOLD 3, DEFAULT_SYNC_PERIOD 50, refresh 0, retries 0, persist mode 0. */
export const SYNC_DEFAULTS: Readonly<SyncSettings> = {
  syncThreshold: 3,
  syncPeriod: 50,
  syncRefreshPeriodMs: 0,
  syncRetries: 0,
  syncPersistMode: 0,
};

/** What the decision reads of a connection. */
export interface SyncConnState {
  protocol: number;
  flags: number;
  state: number;
  /** The state when it was last sent (cp->old_state). */
  oldState: number;
  /** The connection's timeout in ms (cp->timeout). */
  timeoutMs: number;
  /** cp->sync_endtime: (when it was last sent + timeout) & ~3, retry count in the low 2 bits. */
  syncEndtimeMs: number;
  /** Controlled by a persistence template (in_persistence). */
  inPersistence: boolean;
}

/** The decision and the two fields the kernel updates when it sends. */
export interface SyncDecision {
  send: boolean;
  oldState: number;
  syncEndtimeMs: number;
}

// IPVS TCP and SCTP state numbers the rule names (ip_vs.h enums)
const TCP_ESTABLISHED = 1,
  TCP_FIN_WAIT = 4,
  TCP_TIME_WAIT = 5,
  TCP_CLOSE = 6,
  TCP_CLOSE_WAIT = 7;
const SCTP_ESTABLISHED = 7,
  SCTP_SHUTDOWN_SENT = 8,
  SCTP_SHUTDOWN_RECEIVED = 9,
  SCTP_SHUTDOWN_ACK_SENT = 10,
  SCTP_CLOSED = 12;
/** TCP states in which a connection is sent. */
const TCP_SYNC_STATES = (1 << TCP_ESTABLISHED) | (1 << TCP_FIN_WAIT) | (1 << TCP_CLOSE) | (1 << TCP_CLOSE_WAIT) | (1 << TCP_TIME_WAIT);
/** SCTP states in which a connection is sent. */
const SCTP_SYNC_STATES =
  (1 << SCTP_ESTABLISHED) | (1 << SCTP_SHUTDOWN_SENT) | (1 << SCTP_SHUTDOWN_RECEIVED) | (1 << SCTP_SHUTDOWN_ACK_SENT) | (1 << SCTP_CLOSED);

/**
 * ip_vs_sync_conn_needed (plus ip_vs_sync_conn's one-packet rule): should this packet send the
 * connection? `pkts` is its in_pkts after this packet. Returns the new old_state/sync_endtime too
 * (unchanged when not sent).
 */
export function syncDecision(c: SyncConnState, pkts: number, nowMs: number, s: SyncSettings): SyncDecision {
  const no: SyncDecision = { send: false, oldState: c.oldState, syncEndtimeMs: c.syncEndtimeMs };
  if ((c.flags & CONN_F_ONE_PACKET) !== 0) return no;
  const orig = c.syncEndtimeMs;
  // (now + timeout) & ~3 without int32 bitwise ops: the clock may be beyond 2^31 ms
  const t = nowMs + c.timeoutMs;
  let n = t - (t % 4);
  const isTemplate = (c.flags & CONN_F_TEMPLATE) !== 0;
  let force = false;
  if (isTemplate) {
    force = false;
  } else if (s.syncPersistMode !== 0 && c.inPersistence) {
    return no;
  } else if (c.protocol === IPPROTO_TCP || c.protocol === IPPROTO_SCTP) {
    const tcp = c.protocol === IPPROTO_TCP;
    if (c.state >= 31 || ((1 << c.state) & (tcp ? TCP_SYNC_STATES : SCTP_SYNC_STATES)) === 0) return no;
    force = c.state !== c.oldState;
    // a change into any synced state but ESTABLISHED goes out at once; into ESTABLISHED it waits
    // for the packet count below (so a handshake's ACK is not sent, the first data packet is)
    if (force && c.state !== (tcp ? TCP_ESTABLISHED : SCTP_ESTABLISHED)) {
      return { send: true, oldState: c.state, syncEndtimeMs: n };
    }
  }
  // UDP and the other single-state protocols: force stays false

  if (s.syncRefreshPeriodMs > 0) {
    const diff = n - orig;
    const minDiff = Math.max(Math.floor(c.timeoutMs / 2), 10_000);
    // not again within the refresh period (or half the timeout), except sync_retries resends
    // spaced refresh/8 apart, counted in the low bits
    if (Math.abs(diff) < Math.min(s.syncRefreshPeriodMs, minDiff)) {
      const retries = orig % 4;
      if (retries >= s.syncRetries) return no;
      if (nowMs < orig - c.timeoutMs + (s.syncRefreshPeriodMs >> 3)) return no;
      n += retries + 1;
    }
  }
  if (s.syncPeriod > 0) {
    if (!isTemplate && pkts % s.syncPeriod !== s.syncThreshold) return no;
  } else if (s.syncRefreshPeriodMs === 0 && pkts !== s.syncThreshold) {
    return no;
  }
  return { send: true, oldState: c.state, syncEndtimeMs: n };
}

/** The bare answer of syncDecision. */
export function shouldSync(c: SyncConnState, pkts: number, nowMs: number, s: SyncSettings): boolean {
  return syncDecision(c, pkts, nowMs, s).send;
}

/**
 * The packet count the kernel passes for a connection's controller after the connection itself
 * (ip_vs_sync_conn "control:"): a template's in_pkts + 1 (the kernel increments it), or
 * sync_threshold for a controller that is not a template.
 */
export function controllerPackets(controllerFlags: number, controllerInPkts: number, s: SyncSettings): number {
  return (controllerFlags & CONN_F_TEMPLATE) !== 0 ? controllerInPkts + 1 : s.syncThreshold;
}

// ---- when messages leave (include/net/ip_vs.h; the master thread sync_thread_master) ----

/** A half-full message is sent once it is this old (IPVS_SYNC_FLUSH_TIME, 2 s). */
export const SYNC_FLUSH_MS = 2000;
/** The idle master thread looks again after this long (IPVS_SYNC_CHECK_PERIOD, 1 s). */
export const SYNC_CHECK_PERIOD_MS = 1000;
/** A closed message waits at most this long before the thread is woken (IPVS_SYNC_SEND_DELAY, HZ/50). */
export const SYNC_SEND_DELAY_MS = 20;
/** The thread is woken at once when this many closed messages are queued (IPVS_SYNC_WAKEUP_RATE). */
export const SYNC_WAKEUP_RATE = 8;
/** Default sync_qlen_max: closed messages beyond it are dropped (IPVS_SYNC_QLEN_MAX = 4 x wakeup rate). */
export const SYNC_QLEN_MAX_DEFAULT = SYNC_WAKEUP_RATE * 4;

/** next_sync_buff: the current, unfilled message goes out once it is SYNC_FLUSH_MS old. */
export function flushDue(firstUseMs: number, nowMs: number): boolean {
  return firstUseMs >= 0 && nowMs - firstUseMs >= SYNC_FLUSH_MS;
}

/**
 * When an idle master thread sends a message that got its first record at `firstUseMs`, if it last
 * looked at `lastCheckMs` and nothing else wakes it: the first check tick (every
 * SYNC_CHECK_PERIOD_MS) at which flushDue holds.
 */
export function idleFlushAtMs(firstUseMs: number, lastCheckMs: number): number {
  const due = firstUseMs + SYNC_FLUSH_MS;
  if (lastCheckMs >= due) return lastCheckMs;
  return lastCheckMs + Math.ceil((due - lastCheckMs) / SYNC_CHECK_PERIOD_MS) * SYNC_CHECK_PERIOD_MS;
}

/** sb_queue_tail: is a closed message queued (true) or dropped (false) with `queueLen` already waiting? */
export function queueAccepts(queueLen: number, qlenMax: number): boolean {
  return queueLen < qlenMax;
}

/**
 * sb_queue_tail / master_wakeup_work_handler: how long after being queued a closed message is sent.
 * `queuedSinceEmpty` counts messages queued since the queue was last empty, this one included: the
 * first arms a SYNC_SEND_DELAY_MS wake-up, the SYNC_WAKEUP_RATE-th wakes the thread at once.
 */
export function queuedSendDelayMs(queuedSinceEmpty: number): number {
  return queuedSinceEmpty >= SYNC_WAKEUP_RATE ? 0 : SYNC_SEND_DELAY_MS;
}
