/**
 * What a health check is: the checkers of a real server and the health settings of a virtual
 * service, with keepalived 2.x's names, meaning and defaults (keepalived.conf(5), check_*.c).
 * One zod schema, used by the HTTP API, the JSON config document and the keepalived.conf
 * converter (src/keepalived/), so that all three accept and refuse the same things.
 *
 * Field names are keepalived's keywords (`connect_timeout`, `delay_before_retry`, ...) so that an
 * operator reading a keepalived.conf finds the same words here. Times are seconds (fractions
 * allowed, as keepalived 2.x takes them). This file holds only types, schemas and defaults: it
 * must stay importable by the parser without pulling in sockets or the daemon.
 *
 * Semantics the runtime (src/health/) follows:
 * - `retry` is the number of retries after a failed check (keepalived's retry_it < retry): a
 *   real server that is up goes down after 1 + retry consecutive failed attempts, the retries
 *   `delay_before_retry` apart. A real server that is down comes up on its first success.
 * - A real server is up only while every one of its checkers is up.
 */
import { z } from "zod";
import { parseIp } from "../service/addr.ts";

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

const IpAddress = z.string().max(64).refine((s) => parseIp(s) !== null, { message: "not an IPv4 or IPv6 address" });
const Port = z.number().int().min(0).max(65535);
/** A time in seconds; keepalived takes decimals (timer resolution 1 µs), zero is not a time. */
const Seconds = z.number().positive().max(MAX_TIME_SEC);
/** Bytes written as hex, as keepalived's `payload` and `require_reply` take them. */
const HexBytes = z.string().max(2 * 1024).regex(/^([0-9a-fA-F]{2})*$/, { message: "not an even number of hex digits" });

/** A status code or an inclusive range of them (keepalived: `status_code 200-299 301`). */
export const StatusCode = z.union([
  z.number().int().min(100).max(999),
  z.strictObject({ from: z.number().int().min(100).max(999), to: z.number().int().min(100).max(999) })
    .refine((r) => r.from <= r.to, { message: "status_code range ends before it starts" }),
]);

/** One `url { }` block of HTTP_GET / SSL_GET. */
export const HttpUrl = z.strictObject({
  path: z.string().min(1).max(2048).regex(/^\/[\x21-\x7e]*$/, { message: "not an absolute path without spaces" }),
  /** Omitted: 200-299. Any listed code (or range) passes. */
  status_code: z.array(StatusCode).min(1).max(64).optional(),
  /** MD5 of the body, 32 hex digits (keepalived's genhash prints it). */
  digest: z.string().regex(/^[0-9a-fA-F]{32}$/, { message: "not an MD5 digest (32 hex digits)" }).transform((s) => s.toLowerCase()).optional(),
});

/**
 * What every checker takes (keepalived: settable per virtual server, real server or checker;
 * a converter pushes the inherited ones down into each checker).
 */
const common = {
  /** Address to check instead of the real server's (keepalived connect_ip). */
  connect_ip: IpAddress.optional(),
  /** Port to check instead of the real server's (keepalived connect_port). */
  connect_port: Port.optional(),
  /** Source address of the check (keepalived bindto). */
  bindto: IpAddress.optional(),
  /** Source port of the check (keepalived bind_port). */
  bind_port: Port.optional(),
  /** Seconds a connection (and, for HTTP, the whole exchange) may take. */
  connect_timeout: Seconds.default(DEFAULT_CONNECT_TIMEOUT_SEC),
  /** Seconds between retries after a failure; omitted: the kind's default (see delayBeforeRetrySec). */
  delay_before_retry: Seconds.optional(),
  /** Seconds between checks; omitted: the service's `health.delay_loop`. */
  delay_loop: Seconds.optional(),
  /** Before the first check, wait a random time up to this many seconds (keepalived warmup). */
  warmup: z.number().min(0).max(MAX_TIME_SEC).optional(),
};
const retry = (def: number) => z.number().int().min(0).max(1000).default(def);

export const TcpCheck = z.strictObject({ kind: z.literal("tcp"), ...common, retry: retry(DEFAULT_RETRY) });

const httpFields = {
  ...common,
  retry: retry(DEFAULT_RETRY),
  urls: z.array(HttpUrl).min(1).max(MAX_URLS_PER_CHECKER),
  /** Host header; omitted: the address checked (as keepalived). */
  virtualhost: z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/).optional(),
  /** keepalived http_protocol: 1.0 (default), 1.1, 1.0C (Connection: close), 1.0K (keep-alive). */
  http_protocol: z.enum(HTTP_PROTOCOLS).default("1.0"),
};
export const HttpCheck = z.strictObject({ kind: z.literal("http"), ...httpFields });
export const SslCheck = z.strictObject({
  kind: z.literal("ssl"),
  ...httpFields,
  /** Send SNI (keepalived enable_sni); the name is sni_name, else virtualhost. */
  enable_sni: z.boolean().default(false),
  sni_name: z.string().min(1).max(255).optional(),
});

export const UdpCheck = z.strictObject({
  kind: z.literal("udp"),
  ...common,
  retry: retry(DEFAULT_RETRY),
  /** Datagram sent, hex; omitted: an empty datagram. */
  payload: HexBytes.optional(),
  /**
   * false: the check passes unless an ICMP port unreachable (or no route) comes back within
   * connect_timeout; true: a reply is required; hex bytes: the reply must start with them.
   */
  require_reply: z.union([z.boolean(), HexBytes]).default(false),
  min_reply_length: z.number().int().min(0).max(65535).optional(),
  max_reply_length: z.number().int().min(0).max(65535).optional(),
});

export const DnsCheck = z.strictObject({
  kind: z.literal("dns"),
  ...common,
  retry: retry(DEFAULT_DNS_RETRY),
  type: z.enum(DNS_TYPES).default(DEFAULT_DNS_TYPE),
  name: z.string().min(1).max(253).regex(/^[A-Za-z0-9_.-]+$/, { message: "not a domain name" }).default(DEFAULT_DNS_NAME),
});

export const MiscCheck = z.strictObject({
  kind: z.literal("misc"),
  ...common,
  retry: retry(DEFAULT_MISC_RETRY),
  /** The command line (program and arguments, split as a shell splits words, no shell run). */
  misc_path: z.string().min(1).max(4096),
  /** Seconds the script may run; omitted: the checker's delay_loop (keepalived). */
  misc_timeout: Seconds.optional(),
  /** Exit 0 = up (weight unchanged), 1 = down, 2..255 = up with weight code - 2. */
  misc_dynamic: z.boolean().default(false),
});

/** One checker of a real server. */
export const Checker = z.discriminatedUnion("kind", [TcpCheck, HttpCheck, SslCheck, UdpCheck, DnsCheck, MiscCheck]);

/** What a real server adds to its spec for health checking (spread into DestSpec). */
export const destHealthFields = {
  /** Omitted or empty: never checked, always in the table. */
  checkers: z.array(Checker).max(MAX_CHECKERS_PER_DEST).optional(),
  /** Down: weight 0 instead of removal (keepalived inhibit_on_failure). */
  inhibit_on_failure: z.boolean().optional(),
};

/** The sorry server: added when the live weight falls below quorum - hysteresis. */
export const SorryServer = z.strictObject({
  address: IpAddress,
  /** Omitted: the service port. */
  port: Port.optional(),
  /** Omitted: the forwarding method of the service's real servers (first one), else route. */
  forward: z.enum(["masq", "route", "tunnel", "local"]).optional(),
  /** Weight 0 instead of removal when it leaves (keepalived sorry_server_inhibit). */
  inhibit: z.boolean().default(false),
});

/** Health settings of a virtual service (keepalived virtual_server keywords). */
export const ServiceHealth = z.strictObject({
  delay_loop: Seconds.default(DEFAULT_DELAY_LOOP_SEC),
  /** Sum of the weights of live real servers below which the service is "down". */
  quorum: z.number().int().min(1).max(2147483647).default(DEFAULT_QUORUM),
  hysteresis: z.number().int().min(0).max(2147483647).default(DEFAULT_HYSTERESIS),
  sorry_server: SorryServer.optional(),
  /** Real servers start down until a check passes (keepalived alpha). */
  alpha: z.boolean().default(false),
  /** keepalived omega: run down notifiers on shutdown. xvs has no notifiers: accepted, no effect. */
  omega: z.boolean().default(false),
  /** keepalived ha_suspend: checks stop while the VIP is not local. Accepted; xvs always checks. */
  ha_suspend: z.boolean().default(false),
});

export type StatusCodeT = z.infer<typeof StatusCode>;
export type HttpUrlT = z.infer<typeof HttpUrl>;
export type TcpCheckT = z.infer<typeof TcpCheck>;
export type HttpCheckT = z.infer<typeof HttpCheck>;
export type SslCheckT = z.infer<typeof SslCheck>;
export type UdpCheckT = z.infer<typeof UdpCheck>;
export type DnsCheckT = z.infer<typeof DnsCheck>;
export type MiscCheckT = z.infer<typeof MiscCheck>;
export type CheckerT = z.infer<typeof Checker>;
export type CheckerIn = z.input<typeof Checker>;
export type CheckerKind = CheckerT["kind"];
export type SorryServerT = z.infer<typeof SorryServer>;
export type ServiceHealthT = z.infer<typeof ServiceHealth>;
export type ServiceHealthIn = z.input<typeof ServiceHealth>;

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

// ---- what GET /v1/services shows ----

/** Health of one real server: up/down, the last attempt's result, the last change (ISO time), why. */
export const DestHealthView = z.strictObject({
  state: z.enum(["up", "down"]),
  last_result: z.enum(["success", "failure"]).nullable(),
  last_change: z.string().nullable(),
  reason: z.string(),
});

/** Health of a service: its quorum, whether the sorry server is in, and the real servers the checkers removed. */
export const ServiceHealthView = z.strictObject({
  quorum: z.enum(["up", "down"]),
  sorry_server_active: z.boolean(),
  removed: z.array(z.strictObject({ address: IpAddress, port: Port, weight: z.number().int().min(0), health: DestHealthView })),
});

export type DestHealthViewT = z.infer<typeof DestHealthView>;
export type ServiceHealthViewT = z.infer<typeof ServiceHealthView>;
