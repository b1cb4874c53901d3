/**
 * The single source of truth for what a virtual service and a real server are: the HTTP API
 * validates requests and responses with these schemas, the ipvsadm-compatible CLI builds these
 * objects from its flags, and the config file is a list of them. Defaults are named constants.
 *
 * Cross-field rules (one-packet only for UDP, port 0 only when persistent, scheduler flags that
 * fit the scheduler, thresholds, tunnel options) are checked here too, so every entry point
 * refuses the same things with the same words.
 */
import { z } from "zod";
import { parseIp } from "../service/addr.ts";

/** Scheduler of `-A` without `-s` (ipvsadm DEF_SCHED). */
export const DEFAULT_SCHEDULER = "wlc";
/** Persistence timeout of `-p` without a value, seconds (libipvs IPVS_SVC_PERSISTENT_TIMEOUT). */
export const DEFAULT_PERSISTENT_TIMEOUT_SEC = 360;
/** Largest persistence timeout, seconds (ipvsadm MAX_TIMEOUT = 31 days). */
export const MAX_PERSISTENT_TIMEOUT_SEC = 86400 * 31;
/** Weight of `-a` without `-w`. */
export const DEFAULT_WEIGHT = 1;
/** Largest weight and threshold: the kernel stores them as int (the 6.1 guest accepts 65536). */
export const MAX_WEIGHT = 2147483647;
/** GUE port the decap helper listens on by default. */
export const DEFAULT_GUE_PORT = 6080;

export const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"] as const;
export const SCHED_FLAGS = ["flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"] as const;
export const PROTOCOLS = ["tcp", "udp", "sctp"] as const;
export const FORWARDS = ["masq", "route", "tunnel", "local"] as const;
export const TUNNEL_TYPES = ["ipip", "gue", "gre"] as const;
export const TUNNEL_CSUMS = ["nocsum", "csum", "remcsum"] as const;

export const Protocol = z.enum(PROTOCOLS);
export const SchedulerName = z.enum(SCHEDULERS);
export const SchedFlag = z.enum(SCHED_FLAGS);
export const Forward = z.enum(FORWARDS);

/** An IPv4 or IPv6 address in text form. */
export const IpAddress = z.string().max(64).refine((s) => parseIp(s) !== null, { message: "not an IPv4 or IPv6 address" });
export const Port = z.number().int().min(0).max(65535);

/** Identity of a virtual service: (protocol, address, port), or a firewall mark. */
export const AddrServiceKey = z.strictObject({ protocol: Protocol, address: IpAddress, port: Port });
export const FwmarkServiceKey = z.strictObject({
  fwmark: z.number().int().min(1).max(0xffffffff),
  family: z.enum(["ipv4", "ipv6"]).default("ipv4"),
});
export const ServiceKey = z.union([AddrServiceKey, FwmarkServiceKey]);

export const Persistence = z.strictObject({
  timeout: z.number().int().min(1).max(MAX_PERSISTENT_TIMEOUT_SEC).default(DEFAULT_PERSISTENT_TIMEOUT_SEC),
  /** IPv4: a dotted mask (any mask, as inet_aton takes it); IPv6: a prefix length 1..128 as text. */
  netmask: z.string().max(64).optional(),
});

const serviceOptions = {
  scheduler: SchedulerName.default(DEFAULT_SCHEDULER),
  persistence: Persistence.optional(),
  onePacket: z.boolean().default(false),
  schedFlags: z.array(SchedFlag).max(7).default([]),
  pe: z.enum(["sip"]).optional(),
};

function checkService(s: { protocol?: string; port?: number; fwmark?: number; onePacket: boolean; scheduler: string; schedFlags: string[]; persistence?: { netmask?: string }; address?: string; family?: string }, ctx: z.RefinementCtx): void {
  const fwmark = s.fwmark !== undefined;
  if (s.onePacket && !fwmark && s.protocol !== "udp") {
    ctx.addIssue({ code: "custom", path: ["onePacket"], message: "One-Packet Scheduling is only for UDP virtual services" });
  }
  if (!fwmark && s.port === 0 && !s.persistence) {
    ctx.addIssue({ code: "custom", path: ["port"], message: "Zero port specified for non-persistent service" });
  }
  for (const f of s.schedFlags) {
    if ((f.startsWith("sh-") && s.scheduler !== "sh") || (f.startsWith("mh-") && s.scheduler !== "mh")) {
      ctx.addIssue({ code: "custom", path: ["schedFlags"], message: `incompatible scheduler flag \`${f}'` });
    }
  }
  const mask = s.persistence?.netmask;
  if (mask !== undefined) {
    const v6 = fwmark ? s.family === "ipv6" : parseIp(s.address ?? "")?.family === 6;
    if (v6) {
      const n = /^\d{1,3}$/.test(mask) ? Number(mask) : NaN;
      if (!(n >= 1 && n <= 128)) ctx.addIssue({ code: "custom", path: ["persistence", "netmask"], message: "illegal ipv6 netmask specified" });
    } else if (parseIp(mask)?.family !== 4) {
      ctx.addIssue({ code: "custom", path: ["persistence", "netmask"], message: "illegal virtual server persistent mask specified" });
    }
  }
}

/** A virtual service as created by `-A` (and replaced by `-E`). */
export const ServiceSpec = z.union([
  z.strictObject({ ...AddrServiceKey.shape, ...serviceOptions }),
  z.strictObject({ ...FwmarkServiceKey.shape, ...serviceOptions }),
]).superRefine(checkService);

export const TunnelSpec = z.strictObject({
  type: z.enum(TUNNEL_TYPES).default("ipip"),
  port: z.number().int().min(1).max(65535).optional(),
  csum: z.enum(TUNNEL_CSUMS).optional(),
});

/** A real server as created by `-a` (and replaced by `-e`). */
export const DestSpec = z.strictObject({
  address: IpAddress,
  /** Omitted: the service port (ipvsadm's rule). */
  port: Port.optional(),
  forward: Forward.default("route"),
  weight: z.number().int().min(0).max(MAX_WEIGHT).default(DEFAULT_WEIGHT),
  upperThreshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
  lowerThreshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
  tunnel: TunnelSpec.optional(),
}).superRefine((d, ctx) => {
  // ip_vs_ctl.c: l_threshold > u_threshold is ERANGE (also with u == 0 and l > 0)
  if (d.lowerThreshold > d.upperThreshold) {
    ctx.addIssue({ code: "custom", path: ["lowerThreshold"], message: "lower threshold is larger than the upper threshold" });
  }
  const t = d.tunnel;
  if (t && d.forward !== "tunnel") {
    ctx.addIssue({ code: "custom", path: ["tunnel"], message: "Tunnel options conflict with forward method" });
  }
  if (t?.type === "ipip" && (t.port !== undefined || t.csum !== undefined)) {
    ctx.addIssue({ code: "custom", path: ["tunnel"], message: "ipip tunnels take no tunnel options" });
  }
  if (t?.type === "gue" && t.port === undefined) {
    ctx.addIssue({ code: "custom", path: ["tunnel", "port"], message: "You need to supply the 'tun-port' option for the 'gue' tunnel type" });
  }
  if (t?.type === "gre" && (t.port !== undefined || t.csum === "remcsum")) {
    ctx.addIssue({ code: "custom", path: ["tunnel"], message: "gre tunnels take neither a port nor remcsum" });
  }
});

/** Timeouts set by `--set tcp tcpfin udp`, seconds; 0 leaves a value unchanged. */
export const Timeouts = z.strictObject({
  tcp: z.number().int().min(0).max(2147483),
  tcpfin: z.number().int().min(0).max(2147483),
  udp: z.number().int().min(0).max(2147483),
});

export type ServiceKeyT = z.infer<typeof ServiceKey>;
export type ServiceSpecT = z.infer<typeof ServiceSpec>;
export type ServiceSpecIn = z.input<typeof ServiceSpec>;
export type DestSpecT = z.infer<typeof DestSpec>;
export type DestSpecIn = z.input<typeof DestSpec>;
export type TimeoutsT = z.infer<typeof Timeouts>;
