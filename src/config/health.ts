/**
 * What a health check is, as plain types: the checkers of a real server and the health settings
 * of a virtual service, with keepalived 2.x's names, meaning and defaults (keepalived.conf(5),
 * check_*.c). The model, the checker engine (src/health/) and the converter read these without a
 * validation library; control/health-schemas.ts (zod) validates the HTTP API, the JSON config
 * document and the keepalived.conf converter's output against schemas whose inferred types it
 * asserts equal to these at compile time, so the two cannot drift apart.
 *
 * Field names are keepalived's keywords (`connect_timeout`, `delay_before_retry`, ...) so that an
 * operator reading a keepalived.conf finds the same words here. Times are seconds (fractions
 * allowed, as keepalived 2.x takes them).
 *
 * Semantics the runtime (src/health/) follows:
 * - `retry` is the number of retries after a failed check (keepalived's retry_it < retry): a
 *   real server that is up goes down after 1 + retry consecutive failed attempts, the retries
 *   `delay_before_retry` apart. A real server that is down comes up on its first success.
 * - A real server is up only while every one of its checkers is up.
 */
import type { ForwardName } from "../service/forwarding.ts";

/** connect_timeout default, seconds (keepalived: 5). */
export const DEFAULT_CONNECT_TIMEOUT_SEC = 5;
/** delay_loop default, seconds (keepalived: 60). */
export const DEFAULT_DELAY_LOOP_SEC = 60;
/** retry default of most checkers (keepalived: 1). */
export const DEFAULT_RETRY = 1;
/** retry default of DNS_CHECK (keepalived check_dns.c: 3). */
export const DEFAULT_DNS_RETRY = 3;
/** retry default of MISC_CHECK (keepalived check_misc.c: 0, the script decides). */
export const DEFAULT_MISC_RETRY = 0;
/** delay_before_retry default, seconds (keepalived: 1). */
export const DEFAULT_DELAY_BEFORE_RETRY_SEC = 1;
/** delay_before_retry default of HTTP_GET / SSL_GET, seconds (keepalived: 3). */
export const DEFAULT_HTTP_DELAY_BEFORE_RETRY_SEC = 3;
/** quorum default: sum of weights of live real servers (keepalived: 1). */
export const DEFAULT_QUORUM = 1;
/** hysteresis default (keepalived: 0). */
export const DEFAULT_HYSTERESIS = 0;
/** DNS_CHECK query type default (keepalived: SOA) and name (keepalived: "."). */
export const DEFAULT_DNS_TYPE = "SOA";
export const DEFAULT_DNS_NAME = ".";
/** HTTP_GET / SSL_GET status codes accepted when a url names none (keepalived: 200-299). */
export const DEFAULT_STATUS_CODES: readonly StatusCodeT[] = [{ from: 200, to: 299 }];
/** Most checkers on one real server, most urls in one HTTP checker (bounded work per real server). */
export const MAX_CHECKERS_PER_DEST = 16;
export const MAX_URLS_PER_CHECKER = 16;
/** Largest time value, seconds (one day: longer loops are configuration mistakes). */
export const MAX_TIME_SEC = 86400;

export const CHECKER_KINDS = ["tcp", "http", "ssl", "udp", "dns", "misc"] as const;
export const DNS_TYPES = ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"] as const;
export const HTTP_PROTOCOLS = ["1.0", "1.1", "1.0C", "1.0K"] as const;

export type CheckerKind = (typeof CHECKER_KINDS)[number];
export type DnsTypeName = (typeof DNS_TYPES)[number];
export type HttpProtocolName = (typeof HTTP_PROTOCOLS)[number];

/** A status code or an inclusive range of them (keepalived: `status_code 200-299 301`). */
export type StatusCodeT = number | { from: number; to: number };

/** One `url { }` block of HTTP_GET / SSL_GET. */
export interface HttpUrlT {
  /** Absolute path, no spaces. */
  path: string;
  /** Omitted: 200-299. Any listed code (or range) passes. */
  status_code?: StatusCodeT[];
  /** MD5 of the body, 32 lower-case hex digits (keepalived's genhash prints it). */
  digest?: string;
}

/**
 * What every checker takes (keepalived: settable per virtual server, real server or checker;
 * a converter pushes the inherited ones down into each checker).
 */
export interface CheckCommonT {
  /** Address to check instead of the real server's (keepalived connect_ip). */
  connect_ip?: string;
  /** Port to check instead of the real server's (keepalived connect_port). */
  connect_port?: number;
  /** Source address of the check (keepalived bindto). */
  bindto?: string;
  /** Source port of the check (keepalived bind_port). */
  bind_port?: number;
  /** Seconds a connection (and, for HTTP, the whole exchange) may take. */
  connect_timeout: number;
  /** Seconds between retries after a failure; omitted: the kind's default (see delayBeforeRetrySec). */
  delay_before_retry?: number;
  /** Seconds between checks; omitted: the service's `health.delay_loop`. */
  delay_loop?: number;
  /** Before the first check, wait a random time up to this many seconds (keepalived warmup). */
  warmup?: number;
  /** Retries after a failed attempt before the real server goes down. */
  retry: number;
}

export interface TcpCheckT extends CheckCommonT {
  kind: "tcp";
}

interface HttpFieldsT extends CheckCommonT {
  urls: HttpUrlT[];
  /** Host header; omitted: the address checked (as keepalived). */
  virtualhost?: string;
  /** keepalived http_protocol: 1.0 (default), 1.1, 1.0C (Connection: close), 1.0K (keep-alive). */
  http_protocol: HttpProtocolName;
}

export interface HttpCheckT extends HttpFieldsT {
  kind: "http";
}

export interface SslCheckT extends HttpFieldsT {
  kind: "ssl";
  /** Send SNI (keepalived enable_sni); the name is sni_name, else virtualhost. */
  enable_sni: boolean;
  sni_name?: string;
}

export interface UdpCheckT extends CheckCommonT {
  kind: "udp";
  /** Datagram sent, hex; omitted: an empty datagram. */
  payload?: string;
  /**
   * false: the check passes unless an ICMP port unreachable (or no route) comes back within
   * connect_timeout; true: a reply is required; hex bytes: the reply must start with them.
   */
  require_reply: boolean | string;
  min_reply_length?: number;
  max_reply_length?: number;
}

export interface DnsCheckT extends CheckCommonT {
  kind: "dns";
  type: DnsTypeName;
  /** Domain name queried. */
  name: string;
}

export interface MiscCheckT extends CheckCommonT {
  kind: "misc";
  /** The command line (program and arguments, split as a shell splits words, no shell run). */
  misc_path: string;
  /** Seconds the script may run; omitted: the checker's delay_loop (keepalived). */
  misc_timeout?: number;
  /** Exit 0 = up (weight unchanged), 1 = down, 2..255 = up with weight code - 2. */
  misc_dynamic: boolean;
}

/** One checker of a real server. */
export type CheckerT = TcpCheckT | HttpCheckT | SslCheckT | UdpCheckT | DnsCheckT | MiscCheckT;

/** The sorry server: added when the live weight falls below quorum - hysteresis. */
export interface SorryServerT {
  /** IPv4 or IPv6 address in text form. */
  address: string;
  /** Omitted: the service port. */
  port?: number;
  /** Omitted: the forwarding method of the service's real servers (first one), else route. */
  forward?: ForwardName;
  /** Weight 0 instead of removal when it leaves (keepalived sorry_server_inhibit). */
  inhibit: boolean;
}

/** Health settings of a virtual service (keepalived virtual_server keywords). */
export interface ServiceHealthT {
  /** Seconds between checks of a checker that sets no delay_loop of its own. */
  delay_loop: number;
  /** Sum of the weights of live real servers below which the service is "down". */
  quorum: number;
  hysteresis: number;
  sorry_server?: SorryServerT;
  /** Real servers start down until a check passes (keepalived alpha). */
  alpha: boolean;
  /** keepalived omega: run down notifiers on shutdown. xvs has no notifiers: accepted, no effect. */
  omega: boolean;
  /** keepalived ha_suspend: checks stop while the VIP is not local. Accepted; xvs always checks. */
  ha_suspend: boolean;
}

/** Seconds between checks of a checker: its own delay_loop, else the service's. */
export function delayLoopSec(c: CheckerT, h: ServiceHealthT | undefined): number {
  return c.delay_loop ?? h?.delay_loop ?? DEFAULT_DELAY_LOOP_SEC;
}

/** Seconds between retries: the checker's, else the kind's default (DNS: its delay_loop, as keepalived). */
export function delayBeforeRetrySec(c: CheckerT, h: ServiceHealthT | undefined): number {
  if (c.delay_before_retry !== undefined) return c.delay_before_retry;
  if (c.kind === "http" || c.kind === "ssl") return DEFAULT_HTTP_DELAY_BEFORE_RETRY_SEC;
  if (c.kind === "dns") return delayLoopSec(c, h);
  return DEFAULT_DELAY_BEFORE_RETRY_SEC;
}

/** Seconds one attempt may take: misc_timeout (else delay_loop) for scripts, connect_timeout otherwise. */
export function attemptTimeoutSec(c: CheckerT, h: ServiceHealthT | undefined): number {
  if (c.kind === "misc") return c.misc_timeout ?? delayLoopSec(c, h);
  return c.connect_timeout;
}
