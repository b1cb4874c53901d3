/**
 * What each ipvsadm command does once its line has been parsed and checked: a table from the
 * command name to its run function. Every run talks to the daemon through the HTTP API only,
 * turns a refusal into ipvsadm's message on stderr and returns the exit code ipvsadm would
 * (0, or 255 for a kernel error; a missing service in `-L -t` is 1, as in list_service).
 */
import {
  FWMARK_UNSUPPORTED_MESSAGE,
  SCHEDULERS,
  type BatchCommandIn,
  type ConnsPageT,
  type DestSpecIn,
  type InfoT,
  type ServiceKeyT,
  type ServiceSpecIn,
  type ServiceViewT,
  type TimeoutsT,
} from "../control/schemas.ts";
import { destId, serviceId } from "../control/ids.ts";
import { ipText } from "../service/addr.ts";
import { type ApiClient, ApiError, kernelMessage } from "./client.ts";
import { connRow, connTitle, listHeader, serviceEntry, sortServices, svcRow, timeoutLine, title } from "./format.ts";
import type { NameDb } from "./names.ts";
import { OPT, TUN_NAMES, type CmdName } from "./options.ts";
import {
  FMT_RULE,
  FWD_MASQ,
  FWD_TUNNEL,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  tryHelp,
  type DestEntry,
  type Entry,
  type SvcEntry,
} from "./parse.ts";
import { readRestoreLines } from "./restore.ts";

/** What a command needs around it. */
export interface AdmContext {
  api: ApiClient;
  out(s: string): void;
  err(s: string): void;
  names: NameDb;
  program: string;
  readStdin(): Promise<string>;
  /** Parse one line (restore parses each line of stdin the same way). */
  parse(argv: string[]): Entry;
}

/** The kernel's ENOENT for a scheduler or persistence engine it cannot load. */
export const SCHED_NOT_FOUND = "Scheduler or persistence engine not found";

/** Raised for a refusal that has already been turned into ipvsadm's words. */
class KernelError extends Error {}

function wordsOf(af: number, addr: readonly number[]): string {
  return ipText(af === 6 ? { family: 6, words: [addr[0], addr[1], addr[2], addr[3]] } : { family: 4, words: [addr[0], 0, 0, 0] });
}

/** The service's identity, as the API names it. */
export function serviceKey(svc: SvcEntry): ServiceKeyT {
  if (svc.fwmark) return { fwmark: svc.fwmark, family: svc.af === 6 ? "ipv6" : "ipv4" };
  return { protocol: svc.protocol === IPPROTO_TCP ? "tcp" : svc.protocol === IPPROTO_UDP ? "udp" : "sctp", address: wordsOf(svc.af, svc.addr), port: svc.port };
}

/** The service of an -A/-E line as the API takes it. @throws KernelError for what the kernel would refuse by name. */
export function serviceSpec(svc: SvcEntry): ServiceSpecIn {
  // checked after the whole line parsed, so ipvsadm's own parse errors (exit 2) come first
  if (svc.fwmark) throw new KernelError(FWMARK_UNSUPPORTED_MESSAGE);
  if (!(SCHEDULERS as readonly string[]).includes(svc.sched)) throw new KernelError(SCHED_NOT_FOUND);
  if (svc.pe && svc.pe !== "sip") throw new KernelError(SCHED_NOT_FOUND);
  const flags: ServiceSpecIn["schedFlags"] = [];
  // flag bits are named after the scheduler they mean something to (ip_vs.h IP_VS_SVC_F_SCHED_*)
  const family = svc.sched === "sh" || svc.sched === "mh" ? svc.sched : null;
  if (svc.flags & SVC_F_SCHED1) flags.push(family ? `${family}-fallback` : "flag-1");
  if (svc.flags & SVC_F_SCHED2) flags.push(family ? `${family}-port` : "flag-2");
  if (svc.flags & SVC_F_SCHED3) flags.push("flag-3");
  const persistence =
    svc.flags & SVC_F_PERSISTENT
      ? {
          timeout: svc.timeout,
          netmask:
            svc.af === 6
              ? svc.netmask !== 128
                ? String(svc.netmask)
                : undefined
              : svc.netmask >>> 0 !== 0xffffffff
                ? wordsOf(4, [svc.netmask | 0])
                : undefined,
        }
      : undefined;
  return {
    ...serviceKey(svc),
    scheduler: svc.sched as (typeof SCHEDULERS)[number],
    persistence,
    onePacket: (svc.flags & SVC_F_ONEPACKET) !== 0,
    schedFlags: flags,
    ...(svc.pe ? { pe: "sip" as const } : {}),
  };
}

/** The real server of an -a/-e line as the API takes it. */
export function destSpec(ce: Entry): DestSpecIn {
  const d: DestEntry = ce.dest;
  const has = (o: keyof typeof OPT) => ce.options.has(OPT[o]);
  const csum = has("tun-csum") ? "csum" : has("tun-remcsum") ? "remcsum" : has("tun-nocsum") ? "nocsum" : undefined;
  return {
    address: wordsOf(d.af, d.addr),
    port: d.port,
    forward: d.fwd === FWD_MASQ ? "masq" : d.fwd === FWD_TUNNEL ? "tunnel" : "route",
    weight: d.weight,
    upperThreshold: d.uThreshold,
    lowerThreshold: d.lThreshold,
    tunnel: d.fwd === FWD_TUNNEL ? { type: TUN_NAMES[d.tunType], ...(d.tunPort ? { port: d.tunPort } : {}), ...(csum ? { csum } : {}) } : undefined,
  };
}

const svcPath = (ce: Entry) => `/v1/services/${encodeURIComponent(serviceId(serviceKey(ce.svc)))}`;
const destPath = (ce: Entry) => `${svcPath(ce)}/dests/${encodeURIComponent(destId(wordsOf(ce.dest.af, ce.dest.addr), ce.dest.port))}`;

/** The table change an -A/-E/-D/-C/-a/-e/-d/--set line makes, as a batch command. */
export function batchCommand(ce: Entry): BatchCommandIn | null {
  switch (ce.cmd) {
    case "add-service":
      return { op: "add-service", service: serviceSpec(ce.svc) };
    case "edit-service":
      return { op: "edit-service", service: serviceSpec(ce.svc) };
    case "delete-service":
      return { op: "delete-service", service: serviceKey(ce.svc) };
    case "flush":
      return { op: "clear" };
    case "add-server":
      return { op: "add-dest", service: serviceKey(ce.svc), dest: destSpec(ce) };
    case "edit-server":
      return { op: "edit-dest", service: serviceKey(ce.svc), dest: destSpec(ce) };
    case "delete-server":
      return { op: "delete-dest", service: serviceKey(ce.svc), dest: { address: wordsOf(ce.dest.af, ce.dest.addr), port: ce.dest.port } };
    case "set":
      return { op: "set-timeouts", timeouts: ce.timeouts };
    default:
      return null;
  }
}

/** Run an API call, printing a refusal the way ipvsadm prints a kernel error; returns the exit code. */
async function kernelCall(ctx: AdmContext, call: () => Promise<unknown>): Promise<number> {
  try {
    await call();
    return 0;
  } catch (e) {
    if (e instanceof KernelError) {
      ctx.err(`${e.message}\n`);
      return 255;
    }
    if (e instanceof ApiError) {
      ctx.err(`${kernelMessage(e)}\n`);
      return 255;
    }
    throw e;
  }
}

/** One daemon of GET /v1/daemons. */
interface DaemonLine {
  state: string;
  mcastInterface: string;
  syncId: number;
  maxlen: number;
  group: string;
  port: number;
  ttl: number;
}

/** ipvsadm 1.31 print_daemon: the optional parts appear when the kernel reports them, which 4.3+ always does. */
export function daemonLine(x: DaemonLine): string {
  return `${x.state} sync daemon (mcast=${x.mcastInterface}, syncid=${x.syncId}, maxlen=${x.maxlen}, group=${x.group}, port=${x.port}, ttl=${x.ttl})\n`;
}

async function listAll(ce: Entry, ctx: AdmContext): Promise<void> {
  if (!(ce.format & FMT_RULE)) {
    const info = await ctx.api.call<InfoT>("GET", "/v1/info");
    ctx.out(listHeader(info.version, info.connTableSize));
  }
  const list = await ctx.api.call<{ services: ServiceViewT[] }>("GET", "/v1/services");
  let text = title(ce.format);
  for (const s of sortServices(list.services.map(svcRow), ce.format)) text += serviceEntry(s, ce.format, ctx.names);
  ctx.out(text);
}

async function listConnections(ce: Entry, ctx: AdmContext): Promise<void> {
  ctx.out(connTitle(ce.format));
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `?limit=1000&cursor=${encodeURIComponent(cursor)}` : "?limit=1000";
    const page: ConnsPageT = await ctx.api.call<ConnsPageT>("GET", `/v1/conns${q}`);
    ctx.out(page.conns.map((c) => connRow(c, ce.format, ctx.names)).join(""));
    cursor = page.next;
  } while (cursor);
}

async function list(ce: Entry, ctx: AdmContext): Promise<number> {
  const has = (o: keyof typeof OPT) => ce.options.has(OPT[o]);
  if (has("connection")) {
    await listConnections(ce, ctx);
  } else if (has("service-address")) {
    let view: ServiceViewT;
    try {
      view = await ctx.api.call<ServiceViewT>("GET", svcPath(ce));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        // list_service: ipvs_get_service failed -> exit(1)
        ctx.err("No such service\n");
        return 1;
      }
      throw e;
    }
    ctx.out(title(ce.format) + serviceEntry(svcRow(view), ce.format, ctx.names));
  } else if (has("timeout")) {
    ctx.out(timeoutLine(await ctx.api.call<TimeoutsT>("GET", "/v1/timeouts")));
  } else if (has("daemon")) {
    const d = await ctx.api.call<{ daemons: DaemonLine[] }>("GET", "/v1/daemons");
    ctx.out(d.daemons.map(daemonLine).join(""));
  } else {
    await listAll(ce, ctx);
  }
  return 0;
}

/** Commands that change the table: one request each (-R batches them). */
async function change(ce: Entry, ctx: AdmContext): Promise<number> {
  return kernelCall(ctx, async () => {
    const cmd = batchCommand(ce)!;
    switch (cmd.op) {
      case "add-service":
        return ctx.api.call("POST", "/v1/services", cmd.service);
      case "edit-service":
        return ctx.api.call("PUT", svcPath(ce), cmd.service);
      case "delete-service":
        return ctx.api.call("DELETE", svcPath(ce));
      case "clear":
        return ctx.api.call("DELETE", "/v1/services");
      case "add-dest":
        return ctx.api.call("POST", `${svcPath(ce)}/dests`, cmd.dest);
      case "edit-dest":
        return ctx.api.call("PUT", destPath(ce), cmd.dest);
      case "delete-dest":
        return ctx.api.call("DELETE", destPath(ce));
      case "set-timeouts":
        return ctx.api.call("PUT", "/v1/timeouts", cmd.timeouts);
    }
  });
}

async function zero(ce: Entry, ctx: AdmContext): Promise<number> {
  return kernelCall(ctx, () => (ce.options.has(OPT["service-address"]) ? ctx.api.call("POST", `${svcPath(ce)}/zero`) : ctx.api.call("POST", "/v1/zero")));
}

/** --start-daemon / --stop-daemon (ipvs_start_daemon / ipvs_stop_daemon): one request each. */
async function syncDaemon(ce: Entry, ctx: AdmContext): Promise<number> {
  return kernelCall(ctx, () =>
    ce.cmd === "start-daemon"
      ? ctx.api.call("POST", "/v1/daemons", { state: ce.daemonState, ...ce.daemon })
      : ctx.api.call("DELETE", `/v1/daemons/${ce.daemonState}`),
  );
}

/**
 * -R: every line of stdin is an ipvsadm command. xvs parses all of them first (a bad line
 * changes nothing), then applies the table changes between two listing lines as one batch,
 * all or nothing; ipvsadm instead applies line by line and goes on after a kernel error.
 */
async function restore(_ce: Entry, ctx: AdmContext, readingStdin: boolean): Promise<number> {
  if (readingStdin) tryHelp(ctx.program);
  const entries = readRestoreLines(await ctx.readStdin()).map((argv) => {
    const e = ctx.parse(argv);
    if (e.cmd === "restore") tryHelp(ctx.program);
    return e;
  });
  // a fwmark service anywhere in the input stops -R before any line is applied (ipvsadm would
  // apply the lines before it; xvs refuses the restore as a whole rather than half of it)
  if (entries.some((e) => (e.cmd === "add-service" || e.cmd === "edit-service") && e.svc.fwmark)) {
    ctx.err(`${FWMARK_UNSUPPORTED_MESSAGE}\n`);
    return 255;
  }
  let batch: BatchCommandIn[] = [];
  const flush = async (): Promise<number> => {
    if (batch.length === 0) return 0;
    const commands = batch;
    batch = [];
    return kernelCall(ctx, () => ctx.api.call("POST", "/v1/batch", { commands }));
  };
  let result = 0;
  for (const e of entries) {
    let cmd: BatchCommandIn | null;
    try {
      cmd = batchCommand(e);
    } catch (err) {
      if (!(err instanceof KernelError)) throw err;
      ctx.err(`${err.message}\n`);
      return 255;
    }
    if (cmd) {
      batch.push(cmd);
      continue;
    }
    result = await flush();
    if (result !== 0) return result;
    result = await COMMANDS[e.cmd](e, ctx, true);
  }
  return batch.length ? flush() : result;
}

type Run = (ce: Entry, ctx: AdmContext, readingStdin: boolean) => Promise<number>;

/** What each command runs. */
export const COMMANDS: Record<CmdName, Run> = {
  "add-service": change,
  "edit-service": change,
  "delete-service": change,
  flush: change,
  "add-server": change,
  "edit-server": change,
  "delete-server": change,
  set: change,
  list: list,
  save: (ce, ctx) => listAll({ ...ce, format: ce.format | FMT_RULE }, ctx).then(() => 0),
  zero: zero,
  restore: restore,
  "start-daemon": syncDaemon,
  "stop-daemon": syncDaemon,
};

/** Run a checked command line. */
export function execute(ce: Entry, ctx: AdmContext, readingStdin = false): Promise<number> {
  return COMMANDS[ce.cmd](ce, ctx, readingStdin);
}
