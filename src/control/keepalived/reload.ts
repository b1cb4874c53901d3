/**
 * `xvs run --keepalived-conf FILE`: the file as a table, and its reload (SIGHUP, POST
 * /v1/reload) that applies only the difference, all or nothing.
 *
 * A reload reads and converts the whole file first (any error: nothing changes, the error
 * names file and line); then one Daemon.mutate applies the difference between the table the
 * file declared last time and the one it declares now: services and real servers added,
 * edited in place (ipvsadm -E / -e: same service id, same dest id, connections keep their real
 * server and their scheduler state) or deleted. A service or real server whose options did
 * not change is not touched, and none is deleted and re-added (the complaint of keepalived
 * issue 1228). What the file never declared (services added through the API) is left alone.
 * The mutation runs on a clone of the model and commits only when the new generation reached
 * the workers and was saved: a failure in the middle changes nothing.
 *
 * The saved table records the content hash of the file as applied (every file it includes,
 * read.ts contentHash), so a restart follows start-table.ts's rule as for --config: the saved
 * table (with its `xvs adm` edits) wins while the file is unchanged, the file wins once it
 * changed.
 */
import { ErrorCode, LbError } from "../../errors.ts";
import { log } from "../../log.ts";
import type { Model } from "../../config/model.ts";
import type { ConfigStamp, ConfigStore } from "../config-store.ts";
import type { Daemon } from "../daemon.ts";
import { currentIdentity, type NetnsIdentity } from "../netns-identity.ts";
import { ConfigDoc, type ConfigDocT, DestSpec, ServiceConfig, type DestSpecT, type ServiceSpecT } from "../schemas.ts";
import { convertKeepalived, type KaDoc } from "./convert.ts";
import { contentHash, readKeepalivedConf } from "./read.ts";

/** The file as read: the converted document, the table part of it, and its stamp. */
export interface KeepalivedLoaded {
  doc: KaDoc;
  table: ConfigDocT;
  stamp: ConfigStamp;
  files: string[];
}

/** Fields of a service and of a real server that the table schemas know (health fields join when they do). */
const SERVICE_KEYS = new Set(Object.keys(ServiceConfig.options[0].shape));
const DEST_KEYS = new Set(Object.keys(DestSpec.shape));
const pick = (o: object, keys: Set<string>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([k]) => keys.has(k)));

/** The table part of a converted document: what the model runs today. */
export function tableDoc(doc: KaDoc): ConfigDocT {
  return ConfigDoc.parse({
    version: doc.version,
    services: doc.services.map((s) => ({ ...pick(s, SERVICE_KEYS), dests: s.dests.map((d) => pick(d, DEST_KEYS)) })),
  });
}

/** Read, convert and check a keepalived.conf. @throws LbError; ConfError (FILE:LINE) for what is in a file. */
export function loadKeepalivedConf(path: string): KeepalivedLoaded {
  const read = readKeepalivedConf(path);
  const doc = convertKeepalived(read.stmts);
  return { doc, table: tableDoc(doc), stamp: { path, sha256: contentHash(read.files) }, files: read.files.map((f) => f.path) };
}

/** What a reload changed. */
export interface ReloadSummary {
  servicesAdded: number;
  servicesChanged: number;
  servicesRemoved: number;
  destsAdded: number;
  destsChanged: number;
  destsRemoved: number;
}

/** JSON with keys sorted: two specs are the same when their canonical texts are. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}

/** A service of the table by address (ServiceConfig refuses fwmark services). */
type SvcDoc = Extract<ConfigDocT["services"][number], { address: string }>;
const servicesOf = (d: ConfigDocT | null): SvcDoc[] => (d?.services ?? []) as SvcDoc[];
const svcKey = (s: { protocol?: string; address?: string; port?: number }) => `${s.protocol} ${s.address} ${s.port}`;
const destKey = (d: { address: string; port?: number }, svcPort: number) => `${d.address} ${d.port ?? svcPort}`;
const specOf = (s: SvcDoc): ServiceSpecT => {
  const { dests: _d, ...spec } = s;
  return spec as ServiceSpecT;
};

/** What applyReload needs of the health monitor (health/monitor.ts), when checks run. */
export interface HealthView {
  /** The configuration behind a live table: real servers the checkers took out are in it, inhibited ones at their configured weight. */
  configOf(m: Model): Model;
  /** Bring a table in line with the health state (idempotent; Daemon.mutate runs it on every clone). */
  enforce(m: Model): void;
}

/**
 * Apply the difference between `prev` (the table the file declared last, null: none) and
 * `next` to `m` (a clone inside Daemon.mutate): what the file added, changed or dropped is
 * added, changed in place or deleted; a service block it left unchanged, and a real server
 * whose declaration it left unchanged, is not touched (an `xvs adm` edit of it stays). With `health`, the file is compared with the
 * configuration behind the live table, so that a reload does not count a checker's doing as a
 * change; the monitor's `enforce`, which runs in the same mutation, takes out again what is
 * down. @throws LbError naming the service.
 */
export function applyReload(m: Model, prev: ConfigDocT | null, next: ConfigDocT, health: HealthView | null = null): ReloadSummary {
  const sum: ReloadSummary = { servicesAdded: 0, servicesChanged: 0, servicesRemoved: 0, destsAdded: 0, destsChanged: 0, destsRemoved: 0 };
  const before = new Map(servicesOf(prev).map((s) => [svcKey(s), s]));
  const wanted = new Set(servicesOf(next).map(svcKey));
  const view = health ? health.configOf(m) : m;
  /** Real servers the file dropped that only the monitor holds (taken out by checks). */
  const parked: { s: SvcDoc; spec: DestSpecT }[] = [];
  const where = (s: SvcDoc, e: unknown): never => {
    throw new LbError(
      e instanceof LbError ? e.code : ErrorCode.Invalid,
      `virtual_server ${s.address} ${s.port} (${s.protocol}): ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  };
  // removals first: a real server that moves between services frees its place before it is added
  for (const [k, s] of before) {
    if (wanted.has(k) || !m.findService(s)) continue;
    try {
      m.deleteService(s);
    } catch (e) {
      where(s, e);
    }
    sum.servicesRemoved++;
  }
  for (const s of servicesOf(next)) {
    const k = svcKey(s);
    const p = before.get(k);
    // a block the file did not change is not touched: edits made since (xvs adm) stay, as
    // they do across a restart while the file is unchanged (start-table.ts)
    if (p && canonical(p) === canonical(s)) continue;
    try {
      let svc = m.findService(s);
      const added = !svc;
      if (!svc) {
        svc = m.addService(specOf(s));
        sum.servicesAdded++;
      } else if ((!p || canonical(specOf(p)) !== canonical(specOf(s))) && canonical(svc.spec) !== canonical(specOf(s))) {
        svc = m.editService(specOf(s));
        sum.servicesChanged++;
      }
      const port = s.port;
      const full = (d: DestSpecT): DestSpecT => ({ ...d, port: d.port ?? port });
      const was = new Map((p?.dests ?? []).map((d) => [destKey(d, port), full(d)]));
      const want = new Set(s.dests.map((d) => destKey(d, port)));
      const liveBefore = new Set(svc.dests.map((x) => `${x.spec.address} ${x.port}`));
      for (const d of [...svc.dests]) {
        const dk = `${d.spec.address} ${d.port}`;
        if (want.has(dk) || !was.has(dk)) continue; // kept, or never the file's
        m.deleteDest(s, d.spec.address, d.port);
        sum.destsRemoved++;
      }
      const configured = view.findService(s)?.dests ?? [];
      for (const d of configured) {
        const dk = `${d.spec.address} ${d.port}`;
        if (want.has(dk) || !was.has(dk) || liveBefore.has(dk)) continue;
        parked.push({ s, spec: { ...structuredClone(d.spec), port: d.port } });
      }
      // file order is add order (oldest first), as a fresh start would add them
      for (const d of s.dests) {
        const spec = full(d);
        const dk = destKey(spec, port);
        const old = was.get(dk);
        if (!added && old && canonical(old) === canonical(spec)) continue; // declaration unchanged
        const live = svc.dests.find((x) => `${x.spec.address} ${x.port}` === dk);
        const cur = configured.find((x) => `${x.spec.address} ${x.port}` === dk) ?? live;
        if (cur && canonical(cur.spec) === canonical(spec)) continue;
        // a real server the checkers took out is added with its new spec; enforce takes it out again while it is down
        if (live) m.editDest(s, spec);
        else m.addDest(s, spec);
        if (cur) sum.destsChanged++;
        else sum.destsAdded++;
      }
    } catch (e) {
      if (e instanceof LbError && e.message.startsWith("virtual_server ")) throw e;
      where(s, e);
    }
  }
  if (parked.length > 0 && health) {
    // the monitor keeps a real server it took out in the configuration until the table shows
    // it again: put it in without checkers (at weight 0, so no instant serves it) for the
    // monitor to forget it, then delete it, all in this one mutation
    for (const p of parked) m.addDest(p.s, { ...p.spec, weight: 0, checkers: undefined });
    health.enforce(m);
    for (const p of parked) {
      m.deleteDest(p.s, p.spec.address, p.spec.port);
      sum.destsRemoved++;
    }
  }
  return sum;
}

/** Answer of a reload. */
export interface ReloadResult extends ReloadSummary {
  file: string;
  sha256: string;
  services: number;
  /** False when the file's content was the one applied already (nothing to do). */
  changed: boolean;
}

/** The keepalived.conf a daemon runs from, and its reloads (one at a time). */
export class KeepalivedConf {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly daemon: Daemon,
    private readonly store: ConfigStore | null,
    /** The table the file declared when it was last applied (or when the saved table from it was restored). */
    private applied: ConfigDocT,
    private appliedStamp: ConfigStamp,
    private readonly here: NetnsIdentity = currentIdentity(),
  ) {}

  /** Re-read the file and apply the difference. Rejects (nothing changed) with the file's first error. */
  reload(trigger: string): Promise<ReloadResult> {
    const run = () => this.reloadNow(trigger);
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async reloadNow(trigger: string): Promise<ReloadResult> {
    let loaded: KeepalivedLoaded;
    try {
      loaded = loadKeepalivedConf(this.path);
    } catch (e) {
      log("error", "keepalived config not reloaded: the table is unchanged", { trigger, file: this.path, error: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    const prevStamp = this.appliedStamp;
    let summary: ReloadSummary;
    try {
      summary = await this.daemon.mutate((m) => {
        const s = applyReload(m, this.applied, loaded.table, this.daemon.health);
        // saved with the new table in the same write: a restart then knows this content was applied
        this.store?.stamp(this.here, loaded.stamp);
        return s;
      });
    } catch (e) {
      this.store?.stamp(this.here, prevStamp);
      log("error", "keepalived config not reloaded: the table is unchanged", { trigger, file: this.path, error: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    const changed = prevStamp.sha256 !== loaded.stamp.sha256;
    this.applied = loaded.table;
    this.appliedStamp = loaded.stamp;
    const result: ReloadResult = { file: this.path, sha256: loaded.stamp.sha256, services: loaded.table.services.length, changed, ...summary };
    log("info", "keepalived config reloaded", { trigger, ...result });
    return result;
  }
}

/** The KeepalivedConf of each daemon that runs one (the reload route finds it here). */
const byDaemon = new WeakMap<Daemon, KeepalivedConf>();

export function attachKeepalivedConf(daemon: Daemon, k: KeepalivedConf): void {
  byDaemon.set(daemon, k);
}

export function keepalivedConfOf(daemon: Daemon): KeepalivedConf | undefined {
  return byDaemon.get(daemon);
}
