/**
 * The connection-synchronisation daemons (ipvsadm --start-daemon / --stop-daemon / -L --daemon)
 * and the sysctls that govern them (net.ipv4.vs.sync_*, backup_only): control/sync-daemon.ts.
 */
import { z } from "zod";
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";
import { type SyncDaemonOptions, type SyncSysctls, syncManager } from "../sync-daemon.ts";
import { ErrorCode, LbError } from "../../errors.ts";

const State = z.enum(["master", "backup"]);

/** POST /v1/daemons: struct ipvs_daemon_user; 0 / "" take the kernel's defaults. */
export const StartDaemon = z.strictObject({
  state: State,
  mcastInterface: z.string().max(15),
  syncId: z.number().int().min(0).max(255).default(0),
  syncMaxlen: z
    .number()
    .int()
    .min(0)
    .max(65535 - 20 - 8)
    .default(0),
  mcastGroup: z.string().max(45).default(""),
  mcastPort: z.number().int().min(0).max(65535).default(0),
  mcastTtl: z.number().int().min(0).max(255).default(0),
});

export const DaemonView = z.strictObject({
  state: State,
  mcastInterface: z.string(),
  syncId: z.number().int(),
  maxlen: z.number().int(),
  group: z.string(),
  port: z.number().int(),
  ttl: z.number().int(),
});

export const DaemonsView = z.strictObject({ daemons: z.array(DaemonView) });

export const DaemonStats = z.strictObject({
  messages: z.number(),
  records: z.number(),
  feedLost: z.number(),
  queueDropped: z.number(),
  sendErrors: z.number(),
  created: z.number(),
  updated: z.number(),
  refused: z.number(),
  drops: z.record(z.string(), z.number()),
});

const Int = (max: number) => z.number().int().min(0).max(max);
/** The sysctls, under the kernel's meanings (sync_refresh_period in seconds). */
export const SyncSysctlsSchema = z.strictObject({
  syncVersion: Int(1),
  syncThreshold: Int(2147483647),
  syncPeriod: Int(2147483647),
  syncRefreshPeriod: Int(2147483),
  syncRetries: Int(3),
  syncQlenMax: Int(2147483647),
  syncSockSize: Int(2147483647),
  // proc_do_sync_ports: a power of 2; a daemon uses at most 64 (IPVS_SYNC_PORTS_MAX)
  syncPorts: Int(1 << 30).refine((n) => n >= 1 && (n & (n - 1)) === 0, "sync_ports must be a power of 2"),
  syncPersistMode: Int(1),
  backupOnly: Int(1),
});

/** The sync daemon routes. */
export function syncRoutes(daemon: Daemon): Route[] {
  const mgr = () => syncManager(daemon);
  return [
    route({
      method: "get",
      path: "/v1/daemons",
      summary: "Running connection synchronization daemons, master first (ipvsadm -L --daemon)",
      responses: { 200: DaemonsView },
      handler: () => ({ status: 200, body: { daemons: mgr().list() } }),
    }),
    route<z.infer<typeof StartDaemon>>({
      method: "post",
      path: "/v1/daemons",
      summary: "Start a sync daemon (ipvsadm --start-daemon master|backup --mcast-interface IF --syncid N ...)",
      body: StartDaemon,
      responses: { 201: DaemonView },
      handler: async ({ body }) => {
        return { status: 201, body: await mgr().start(body as SyncDaemonOptions) };
      },
    }),
    route({
      method: "delete",
      path: "/v1/daemons/:state",
      params: { state: "master or backup" },
      summary: "Stop the master or backup sync daemon (ipvsadm --stop-daemon master|backup)",
      responses: { 204: null },
      handler: ({ param }) => {
        const s = State.safeParse(param("state"));
        if (!s.success) throw new LbError(ErrorCode.Invalid, "state must be master or backup");
        mgr().stop(s.data);
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get",
      path: "/v1/daemons/:state/stats",
      params: { state: "master or backup" },
      summary: "Counters of a sync daemon: messages and records sent or received, installs, drops by reason",
      responses: { 200: DaemonStats },
      handler: ({ param }) => {
        const s = State.safeParse(param("state"));
        const st = s.success ? mgr().stats(s.data) : null;
        if (!st) throw new LbError(ErrorCode.NotExist, "No daemon is running");
        return { status: 200, body: st };
      },
    }),
    route({
      method: "get",
      path: "/v1/sync/settings",
      summary: "The sync sysctls (net.ipv4.vs.sync_version, sync_threshold, sync_period, ...)",
      responses: { 200: SyncSysctlsSchema },
      handler: () => ({ status: 200, body: mgr().sysctls }),
    }),
    route<Partial<SyncSysctls>>({
      method: "put",
      path: "/v1/sync/settings",
      summary: "Change some sync sysctls (the others keep their values); the master's send rule takes them at once",
      body: SyncSysctlsSchema.partial(),
      responses: { 200: SyncSysctlsSchema },
      handler: ({ body }) => ({ status: 200, body: mgr().setSysctls(body) }),
    }),
  ];
}
