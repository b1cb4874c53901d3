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
import type * as Plain from "../config/spec.ts";
import { FORWARDS, TUNNEL_CSUMS, TUNNEL_TYPES } from "../service/forwarding.ts";
import {
  DEFAULT_GUE_PORT,
  DEFAULT_PERSISTENT_TIMEOUT_SEC,
  DEFAULT_WEIGHT,
  MAX_PERSISTENT_TIMEOUT_SEC,
  MAX_TIMEOUT_SEC,
  MAX_WEIGHT,
} from "../service/limits.ts";
import { PROTOCOLS } from "../service/protocols.ts";
import { DEFAULT_SCHEDULER, SCHED_FLAGS, SCHEDULERS } from "../service/schedulers.ts";

// The names and limits live in service/ (the bottom layer: the schedulers and the compiler use
// them without loading zod); they are re-exported here for the API's and the CLI's users.
export {
  DEFAULT_GUE_PORT,
  DEFAULT_PERSISTENT_TIMEOUT_SEC,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  FORWARDS,
  MAX_PERSISTENT_TIMEOUT_SEC,
  MAX_TIMEOUT_SEC,
  MAX_WEIGHT,
  PROTOCOLS,
  SCHED_FLAGS,
  SCHEDULERS,
  TUNNEL_CSUMS,
  TUNNEL_TYPES,
};
import { Checker, DestHealthView, destHealthFields, ServiceHealth, ServiceHealthView } from "./health-schemas.ts";
import { MAX_CHECKERS_PER_DEST } from "../config/health.ts";

/** Most real servers in one service of a config document. */
export const MAX_DESTS_PER_SERVICE = 16384;
/** Most services in a config document. */
export const MAX_SERVICES_IN_DOC = 4096;

export const Protocol = z.enum(PROTOCOLS);
export const SchedulerName = z.enum(SCHEDULERS);
export const SchedFlag = z.enum(SCHED_FLAGS);
export const Forward = z.enum(FORWARDS);

/** An IPv4 or IPv6 address in text form. */
export const IpAddress = z
  .string()
  .max(64)
  .refine((s) => parseIp(s) !== null, { message: "not an IPv4 or IPv6 address" });
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
  /** Health-check settings (health-schemas.ts, keepalived's virtual_server keywords). */
  health: ServiceHealth.optional(),
};

function checkService(
  s: {
    protocol?: string;
    port?: number;
    fwmark?: number;
    onePacket: boolean;
    scheduler: string;
    schedFlags: string[];
    persistence?: { netmask?: string };
    address?: string;
    family?: string;
  },
  ctx: z.RefinementCtx,
): void {
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

const addrServiceObject = z.strictObject({ ...AddrServiceKey.shape, ...serviceOptions });
const fwmarkServiceObject = z.strictObject({ ...FwmarkServiceKey.shape, ...serviceOptions });

/**
 * Why xvs refuses to create a firewall-mark service. IPVS finds a fwmark service by skb->mark
 * (ip_vs_service_find looks up the fwmark table first when the mark is non-zero), a mark that
 * iptables/nftables set in netfilter; xvs's XDP program sees each frame before netfilter runs,
 * so no frame it handles carries a mark and such a service would accept real servers and never
 * match a packet. Refused wherever a service comes in (API, CLI, batches, config file, saved
 * table) until xvs can classify by mark itself.
 */
export const FWMARK_UNSUPPORTED_MESSAGE =
  "Firewall-mark services are not supported by xvs: its XDP program sees each packet before iptables/nftables can set a mark, so the service would never match a packet";

/** The refusal of a fwmark service, as an issue on its `fwmark` field (the value names the service). */
function refuseFwmark(s: object, ctx: z.RefinementCtx): void {
  if ("fwmark" in s) ctx.addIssue({ code: "custom", path: ["fwmark"], input: s.fwmark, message: FWMARK_UNSUPPORTED_MESSAGE });
}

/**
 * A virtual service as IPVS knows it, firewall-mark services included: what the model, the
 * compiler and the fast path handle (their fwmark code stays, exercised by unit tests, for the
 * day xvs classifies by mark). Requests use ServiceSpec, which refuses fwmark services.
 */
export const IpvsServiceSpec = z.union([addrServiceObject, fwmarkServiceObject]).superRefine(checkService);

/** A virtual service as created by `-A` (and replaced by `-E`): fwmark services are refused (FWMARK_UNSUPPORTED_MESSAGE). */
export const ServiceSpec = IpvsServiceSpec.superRefine(refuseFwmark);

export const TunnelSpec = z.strictObject({
  type: z.enum(TUNNEL_TYPES).default("ipip"),
  port: z.number().int().min(1).max(65535).optional(),
  csum: z.enum(TUNNEL_CSUMS).optional(),
});

/** Refusal of a lower threshold above the upper one (the kernel's ERANGE). */
export const THRESHOLD_ORDER_MESSAGE = "lower threshold is larger than the upper threshold";

/** A real server as created by `-a` (and replaced by `-e`). */
export const DestSpec = z
  .strictObject({
    address: IpAddress,
    /** Omitted: the service port (ipvsadm's rule). */
    port: Port.optional(),
    forward: Forward.default("route"),
    weight: z.number().int().min(0).max(MAX_WEIGHT).default(DEFAULT_WEIGHT),
    upperThreshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
    lowerThreshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
    tunnel: TunnelSpec.optional(),
    /** Health checkers and inhibit_on_failure (health-schemas.ts). */
    ...destHealthFields,
  })
  .superRefine((d, ctx) => {
    // ip_vs_ctl.c: l_threshold > u_threshold is ERANGE (also with u == 0 and l > 0)
    if (d.lowerThreshold > d.upperThreshold) {
      ctx.addIssue({ code: "custom", path: ["lowerThreshold"], message: THRESHOLD_ORDER_MESSAGE });
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
  tcp: z.number().int().min(0).max(MAX_TIMEOUT_SEC),
  tcpfin: z.number().int().min(0).max(MAX_TIMEOUT_SEC),
  udp: z.number().int().min(0).max(MAX_TIMEOUT_SEC),
});

/**
 * The IPVS sysctls (net.ipv4.vs.*) that change how connections are handled, with the kernel's
 * meaning (Documentation/networking/ipvs-sysctl.rst) and defaults (false, false, false, 1).
 */
export const Settings = z.strictObject({
  /** expire_nodest_conn: a packet for a connection whose real server was deleted expires it. */
  expireNodestConn: z.boolean(),
  /** expire_quiescent_template: a persistence template whose real server has weight 0 is expired. */
  expireQuiescentTemplate: z.boolean(),
  /** sloppy_tcp: any TCP packet (not only a SYN) may start a connection. */
  sloppyTcp: z.boolean(),
  /** conn_reuse_mode: bit 1 reschedules a SYN that meets a TIME_WAIT/CLOSE connection, bit 2 also FIN_WAIT of DR/TUN. */
  connReuseMode: z.number().int().min(0).max(3),
});

// ---- partial updates (PATCH) and what a replace (PUT) changed ----

/**
 * PATCH of a real server: any fields of DestSpec, none filled in by a default (a field left out
 * keeps its value: a NAT real server stays NAT when only its weight is given), unknown fields
 * refused. `tunnel: null` drops the tunnel options. Address and port, if given, must be the
 * path's. The merged result is checked whole by DestSpec before anything changes.
 */
export const DestPatch = z.strictObject({
  address: IpAddress.optional(),
  port: Port.optional(),
  forward: Forward.optional(),
  weight: z.number().int().min(0).max(MAX_WEIGHT).optional(),
  upperThreshold: z.number().int().min(0).max(MAX_WEIGHT).optional(),
  lowerThreshold: z.number().int().min(0).max(MAX_WEIGHT).optional(),
  tunnel: TunnelSpec.nullable().optional(),
  checkers: z.array(Checker).max(MAX_CHECKERS_PER_DEST).nullable().optional(),
  inhibit_on_failure: z.boolean().nullable().optional(),
});

/**
 * PATCH of a virtual service: any of its options, none filled in by a default (leaving out
 * `scheduler` keeps the scheduler, where a PUT, like ipvsadm -E, resets it to wlc), unknown
 * fields refused; `persistence: null` / `pe: null` remove them. Protocol, address and port, if
 * given, must be the path's. The merged result is checked whole by ServiceSpec.
 */
export const ServicePatch = z.strictObject({
  protocol: Protocol.optional(),
  address: IpAddress.optional(),
  port: Port.optional(),
  scheduler: SchedulerName.optional(),
  persistence: Persistence.nullable().optional(),
  onePacket: z.boolean().optional(),
  schedFlags: z.array(SchedFlag).max(7).optional(),
  pe: z.enum(["sip"]).nullable().optional(),
  health: ServiceHealth.nullable().optional(),
});

/** One field a PUT or PATCH changed: its value before and after (null: not set). */
export const FieldChange = z.strictObject({ field: z.string(), old: z.json(), new: z.json() });

// ---- the table as a document: config file, saved table, GET/PUT /v1/config ----

/** A virtual service with its real servers, in the order they are added (oldest first). */
export const ServiceConfig = z
  .union([
    addrServiceObject.extend({ dests: z.array(DestSpec).max(MAX_DESTS_PER_SERVICE).default([]) }),
    fwmarkServiceObject.extend({ dests: z.array(DestSpec).max(MAX_DESTS_PER_SERVICE).default([]) }),
  ])
  .superRefine(checkService)
  .superRefine(refuseFwmark);

/** Version of the configuration document format. */
export const CONFIG_VERSION = 1;

/**
 * The whole table: what `xvs run --config FILE` loads, what the daemon saves on every change
 * and what GET/PUT /v1/config exchange. Real servers are listed in the order they are added:
 * as with successive `-a` commands, the newest is first in scheduling order.
 */
export const ConfigDoc = z.strictObject({
  version: z.literal(CONFIG_VERSION).default(CONFIG_VERSION),
  /** Omitted or 0: the default (900 120 300). */
  timeouts: Timeouts.partial().optional(),
  /** Omitted: the kernel's defaults. */
  settings: Settings.partial().optional(),
  services: z.array(ServiceConfig).max(MAX_SERVICES_IN_DOC).default([]),
});

// ---- batches: ipvsadm -R, applied all-or-nothing ----

/** Address and port of a real server to delete; no port: the service port. */
export const DestKey = z.strictObject({ address: IpAddress, port: Port.optional() });

/** One table change, as one ipvsadm command makes it. */
export const BatchCommand = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("add-service"), service: ServiceSpec }),
  z.strictObject({ op: z.literal("edit-service"), service: ServiceSpec }),
  z.strictObject({ op: z.literal("delete-service"), service: ServiceKey }),
  z.strictObject({ op: z.literal("clear") }),
  z.strictObject({ op: z.literal("add-dest"), service: ServiceKey, dest: DestSpec }),
  z.strictObject({ op: z.literal("edit-dest"), service: ServiceKey, dest: DestSpec }),
  z.strictObject({ op: z.literal("delete-dest"), service: ServiceKey, dest: DestKey }),
  z.strictObject({ op: z.literal("set-timeouts"), timeouts: Timeouts }),
]);

/** Most commands in one batch. */
export const MAX_BATCH_COMMANDS = 10000;
export const Batch = z.strictObject({ commands: z.array(BatchCommand).min(1).max(MAX_BATCH_COMMANDS) });
export const BatchResult = z.strictObject({ applied: z.number().int().min(0) });

// ---- views (responses) ----

const Count = z.number().int().min(0);

/** Traffic counters since the last zeroing (IPVS stats64: conns, packets, bytes). */
export const TrafficView = z.strictObject({ conns: Count, inpkts: Count, outpkts: Count, inbytes: Count, outbytes: Count });
/** Rates of the 2-second estimator, per second (bytes, not bits). */
export const RatesView = z.strictObject({ cps: Count, inpps: Count, outpps: Count, inbps: Count, outbps: Count });

export const Family = z.enum(["ipv4", "ipv6"]);

/** A real server as listed: its spec, its connection counts, traffic and rates. */
export const DestView = z.strictObject({
  id: z.string(),
  address: IpAddress,
  port: Port,
  family: Family,
  forward: Forward,
  weight: z.number().int().min(0).max(MAX_WEIGHT),
  upperThreshold: z.number().int().min(0).max(MAX_WEIGHT),
  lowerThreshold: z.number().int().min(0).max(MAX_WEIGHT),
  tunnel: TunnelSpec.nullable(),
  activeConns: Count,
  inactiveConns: Count,
  persistentConns: Count,
  stats: TrafficView,
  rates: RatesView,
  /** Present when the real server has checkers. */
  health: DestHealthView.optional(),
});

/** A virtual service as listed, real servers in scheduling (kernel list) order: newest first. */
export const ServiceView = z.strictObject({
  id: z.string(),
  name: z.string(),
  family: Family,
  spec: IpvsServiceSpec,
  stats: TrafficView,
  rates: RatesView,
  dests: z.array(DestView),
  /** Present when the service has health settings or real servers its checkers removed. */
  health: ServiceHealthView.optional(),
});
export const ServiceList = z.strictObject({ services: z.array(ServiceView) });

/** Answer of PUT/PATCH of a service: the service as listed, and the fields that changed (none: nothing changed). */
export const ServiceReplaced = ServiceView.extend({ changes: z.array(FieldChange) });
/** Answer of PUT/PATCH of a real server: the real server as listed, and the fields that changed. */
export const DestReplaced = DestView.extend({ changes: z.array(FieldChange) });

/** Largest page of GET /v1/conns (DPVS MAX_CTRL_CONN_GET_ENTRIES in spirit: bounded work per call). */
export const MAX_CONNS_PAGE = 1000;
export const DEFAULT_CONNS_PAGE = 200;

export const ConnsQuery = z.strictObject({
  /** Opaque position returned as `next` by the previous page. */
  cursor: z
    .string()
    .regex(/^\d{1,3}:\d{1,9}$/, { message: "not a cursor returned by this API (WORKER:RECORD)" })
    .optional(),
  limit: z.coerce.number().int().min(1).max(MAX_CONNS_PAGE).default(DEFAULT_CONNS_PAGE),
});

const Endpoint = z.strictObject({ address: IpAddress, port: Port });

/** One connection (or persistence template) as /proc/net/ip_vs_conn shows it. */
export const ConnView = z.strictObject({
  /** TCP, UDP, SCTP; IP for a fwmark persistence template. */
  protocol: z.enum(["TCP", "UDP", "SCTP", "IP"]),
  state: z.string(),
  expiresSec: Count,
  template: z.boolean(),
  forward: Forward,
  client: Endpoint,
  virtual: Endpoint,
  dest: Endpoint,
});
export const ConnsPage = z.strictObject({
  conns: z.array(ConnView),
  /** Cursor of the next page; null on the last one. */
  next: z.string().nullable(),
});

export const Health = z.strictObject({
  ok: z.boolean(),
  dataplane: z.boolean(),
  generation: z.number().int(),
  uptimeSec: z.number().min(0),
});

/** What `ipvsadm -L` prints in its header. */
export const Info = z.strictObject({
  /** IPVS version emulated (IP_VS_VERSION_CODE 1.2.1). */
  version: z.string(),
  /** Connection table size shown as (size=N). */
  connTableSize: Count,
  xvsVersion: z.string(),
});

/** Connection synchronization daemons (none: xvs has no sync daemon). */
export const SyncDaemons = z.strictObject({
  daemons: z.array(z.strictObject({ state: z.enum(["master", "backup"]), mcastInterface: z.string(), syncId: Count })),
});

export const StatsView = z.strictObject({
  verdicts: z.record(z.string(), z.number()),
  xdp: z.array(z.number()),
  generation: z.number().int(),
});

/** Every error the API returns. */
export const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    /** Schema failures: which field, which value, why. */
    issues: z.array(z.strictObject({ path: z.string(), message: z.string(), value: z.unknown().optional() })).optional(),
    /** Batches: the command that failed (0-based). */
    index: z.number().int().min(0).optional(),
  }),
});

/**
 * True when two types are the same (not merely assignable): optional-ness, readonly and every
 * member of a union must match.
 */
type Same<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

// What the schemas accept is exactly what the model reads (config/spec.ts): a field added,
// dropped or retyped on one side only fails `tsc --noEmit` here.
true satisfies Same<z.infer<typeof ServiceKey>, Plain.ServiceKeyT>;
true satisfies Same<z.infer<typeof ServiceSpec>, Plain.ServiceSpecT>;
true satisfies Same<z.infer<typeof DestSpec>, Plain.DestSpecT>;
true satisfies Same<z.infer<typeof Timeouts>, Plain.TimeoutsT>;
true satisfies Same<z.infer<typeof Settings>, Plain.SettingsT>;

export type ServiceKeyT = z.infer<typeof ServiceKey>;
export type ServiceSpecT = z.infer<typeof ServiceSpec>;
export type ServiceSpecIn = z.input<typeof ServiceSpec>;
export type DestSpecT = z.infer<typeof DestSpec>;
export type DestSpecIn = z.input<typeof DestSpec>;
export type DestPatchT = z.infer<typeof DestPatch>;
export type ServicePatchT = z.infer<typeof ServicePatch>;
export type FieldChangeT = z.infer<typeof FieldChange>;
export type TimeoutsT = z.infer<typeof Timeouts>;
export type SettingsT = z.infer<typeof Settings>;
export type ServiceConfigT = z.infer<typeof ServiceConfig>;
export type ConfigDocT = z.infer<typeof ConfigDoc>;
export type ConfigDocIn = z.input<typeof ConfigDoc>;
export type BatchCommandT = z.infer<typeof BatchCommand>;
export type BatchCommandIn = z.input<typeof BatchCommand>;
export type TrafficT = z.infer<typeof TrafficView>;
export type RatesT = z.infer<typeof RatesView>;
export type DestViewT = z.infer<typeof DestView>;
export type ServiceViewT = z.infer<typeof ServiceView>;
export type ConnViewT = z.infer<typeof ConnView>;
export type ConnsPageT = z.infer<typeof ConnsPage>;
export type InfoT = z.infer<typeof Info>;
export type ErrorBodyT = z.infer<typeof ErrorBody>;
