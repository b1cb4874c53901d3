/**
 * The zod schemas of health checking: the checkers of a real server and the health settings of a
 * virtual service (plain types and defaults: config/health.ts). One schema, used by the HTTP API,
 * the JSON config document and the keepalived.conf converter (control/keepalived/), so that all
 * three accept and refuse the same things. Each schema's inferred type is asserted equal to its
 * plain type at the end of this file, so the two cannot drift apart.
 */
import { z } from "zod";
import { parseIp } from "../service/addr.ts";
import { FORWARDS } from "../service/forwarding.ts";
import type * as Plain from "../config/health.ts";
import type { DestHealthView as MonitorDestHealthView, HealthMonitor } from "../health/monitor.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_SEC,
  DEFAULT_DELAY_LOOP_SEC,
  DEFAULT_DNS_NAME,
  DEFAULT_DNS_RETRY,
  DEFAULT_DNS_TYPE,
  DEFAULT_HYSTERESIS,
  DEFAULT_MISC_RETRY,
  DEFAULT_QUORUM,
  DEFAULT_RETRY,
  DNS_TYPES,
  HTTP_PROTOCOLS,
  MAX_CHECKERS_PER_DEST,
  MAX_TIME_SEC,
  MAX_URLS_PER_CHECKER,
} from "../config/health.ts";

const IpAddress = z
  .string()
  .max(64)
  .refine((s) => parseIp(s) !== null, { message: "not an IPv4 or IPv6 address" });
const Port = z.number().int().min(0).max(65535);
/** A time in seconds; keepalived takes decimals (timer resolution 1 µs), zero is not a time. */
const Seconds = z.number().positive().max(MAX_TIME_SEC);
/** Bytes written as hex, as keepalived's `payload` and `require_reply` take them. */
const HexBytes = z
  .string()
  .max(2 * 1024)
  .regex(/^([0-9a-fA-F]{2})*$/, { message: "not an even number of hex digits" });

/** A status code or an inclusive range of them (keepalived: `status_code 200-299 301`). */
export const StatusCode = z.union([
  z.number().int().min(100).max(999),
  z
    .strictObject({ from: z.number().int().min(100).max(999), to: z.number().int().min(100).max(999) })
    .refine((r) => r.from <= r.to, { message: "status_code range ends before it starts" }),
]);

/** One `url { }` block of HTTP_GET / SSL_GET. */
export const HttpUrl = z.strictObject({
  path: z
    .string()
    .min(1)
    .max(2048)
    .regex(/^\/[\x21-\x7e]*$/, { message: "not an absolute path without spaces" }),
  status_code: z.array(StatusCode).min(1).max(64).optional(),
  digest: z
    .string()
    .regex(/^[0-9a-fA-F]{32}$/, { message: "not an MD5 digest (32 hex digits)" })
    .transform((s) => s.toLowerCase())
    .optional(),
});

/** What every checker takes (config/health.ts CheckCommonT); `retry` is per kind (its default differs). */
const common = {
  connect_ip: IpAddress.optional(),
  connect_port: Port.optional(),
  bindto: IpAddress.optional(),
  bind_port: Port.optional(),
  connect_timeout: Seconds.default(DEFAULT_CONNECT_TIMEOUT_SEC),
  delay_before_retry: Seconds.optional(),
  delay_loop: Seconds.optional(),
  warmup: z.number().min(0).max(MAX_TIME_SEC).optional(),
};
const retry = (def: number) => z.number().int().min(0).max(1000).default(def);

export const TcpCheck = z.strictObject({ kind: z.literal("tcp"), ...common, retry: retry(DEFAULT_RETRY) });

const httpFields = {
  ...common,
  retry: retry(DEFAULT_RETRY),
  urls: z.array(HttpUrl).min(1).max(MAX_URLS_PER_CHECKER),
  virtualhost: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/)
    .optional(),
  http_protocol: z.enum(HTTP_PROTOCOLS).default("1.0"),
};
export const HttpCheck = z.strictObject({ kind: z.literal("http"), ...httpFields });
export const SslCheck = z.strictObject({
  kind: z.literal("ssl"),
  ...httpFields,
  enable_sni: z.boolean().default(false),
  sni_name: z.string().min(1).max(255).optional(),
});

export const UdpCheck = z.strictObject({
  kind: z.literal("udp"),
  ...common,
  retry: retry(DEFAULT_RETRY),
  payload: HexBytes.optional(),
  require_reply: z.union([z.boolean(), HexBytes]).default(false),
  min_reply_length: z.number().int().min(0).max(65535).optional(),
  max_reply_length: z.number().int().min(0).max(65535).optional(),
});

export const DnsCheck = z.strictObject({
  kind: z.literal("dns"),
  ...common,
  retry: retry(DEFAULT_DNS_RETRY),
  type: z.enum(DNS_TYPES).default(DEFAULT_DNS_TYPE),
  name: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9_.-]+$/, { message: "not a domain name" })
    .default(DEFAULT_DNS_NAME),
});

export const MiscCheck = z.strictObject({
  kind: z.literal("misc"),
  ...common,
  retry: retry(DEFAULT_MISC_RETRY),
  misc_path: z.string().min(1).max(4096),
  misc_timeout: Seconds.optional(),
  misc_dynamic: z.boolean().default(false),
});

/** One checker of a real server. */
export const Checker = z.discriminatedUnion("kind", [TcpCheck, HttpCheck, SslCheck, UdpCheck, DnsCheck, MiscCheck]);
/** A checker as written (defaults not yet filled in). */
export type CheckerIn = z.input<typeof Checker>;

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
  port: Port.optional(),
  forward: z.enum(FORWARDS).optional(),
  inhibit: z.boolean().default(false),
});

/** Health settings of a virtual service (keepalived virtual_server keywords). */
export const ServiceHealth = z.strictObject({
  delay_loop: Seconds.default(DEFAULT_DELAY_LOOP_SEC),
  quorum: z.number().int().min(1).max(2147483647).default(DEFAULT_QUORUM),
  hysteresis: z.number().int().min(0).max(2147483647).default(DEFAULT_HYSTERESIS),
  sorry_server: SorryServer.optional(),
  alpha: z.boolean().default(false),
  omega: z.boolean().default(false),
  ha_suspend: z.boolean().default(false),
});
/** Health settings as written (defaults not yet filled in). */
export type ServiceHealthIn = z.input<typeof ServiceHealth>;

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

// Each schema accepts exactly its plain type (config/health.ts), and the views are what the
// monitor (health/monitor.ts) produces: a change to one side that the other lacks fails tsc here.
type Same<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
true satisfies Same<z.infer<typeof StatusCode>, Plain.StatusCodeT>;
true satisfies Same<z.infer<typeof HttpUrl>, Plain.HttpUrlT>;
true satisfies Same<z.infer<typeof TcpCheck>, Plain.TcpCheckT>;
true satisfies Same<z.infer<typeof HttpCheck>, Plain.HttpCheckT>;
true satisfies Same<z.infer<typeof SslCheck>, Plain.SslCheckT>;
true satisfies Same<z.infer<typeof UdpCheck>, Plain.UdpCheckT>;
true satisfies Same<z.infer<typeof DnsCheck>, Plain.DnsCheckT>;
true satisfies Same<z.infer<typeof MiscCheck>, Plain.MiscCheckT>;
true satisfies Same<z.infer<typeof Checker>, Plain.CheckerT>;
true satisfies Same<z.infer<typeof SorryServer>, Plain.SorryServerT>;
true satisfies Same<z.infer<typeof ServiceHealth>, Plain.ServiceHealthT>;
true satisfies Same<DestHealthViewT, MonitorDestHealthView>;
true satisfies Same<ServiceHealthViewT, NonNullable<ReturnType<HealthMonitor["serviceHealth"]>>>;
