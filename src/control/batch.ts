/**
 * Table changes as data: a batch of ipvsadm-like commands (ipvsadm -R, POST /v1/batch) and a
 * whole-table document (config file, saved table, PUT /v1/config), applied to a model. The
 * callers run them inside one `Daemon.mutate`, i.e. on a clone: the first failing step throws
 * and nothing of the batch is applied.
 */
import { LbError } from "../errors.ts";
import { ipText } from "../service/addr.ts";
import { DEFAULT_SETTINGS, DEFAULT_TIMEOUTS, type Model } from "../config/model.ts";
import { CONFIG_VERSION, type BatchCommandT, type ConfigDocT, type DestSpecT, type ServiceSpecT } from "./schemas.ts";

/** An LbError raised by one command of a batch: `index` says which. */
export class BatchError extends LbError {
  constructor(
    readonly index: number,
    cause: LbError,
  ) {
    super(cause.code, cause.message, { cause });
  }
}

/** Apply one command to `m`. @throws LbError with the kernel's words. */
export function applyCommand(m: Model, c: BatchCommandT): void {
  switch (c.op) {
    case "add-service":
      m.addService(c.service);
      return;
    case "edit-service":
      m.editService(c.service);
      return;
    case "delete-service":
      m.deleteService(c.service);
      return;
    case "clear":
      m.clear();
      return;
    case "add-dest":
      m.addDest(c.service, c.dest);
      return;
    case "edit-dest":
      m.editDest(c.service, c.dest);
      return;
    case "delete-dest":
      m.deleteDest(c.service, c.dest.address, c.dest.port);
      return;
    case "set-timeouts":
      m.setTimeouts(c.timeouts);
      return;
  }
}

/** Apply commands in order. @throws BatchError naming the failing command. */
export function applyBatch(m: Model, commands: BatchCommandT[]): number {
  commands.forEach((c, i) => {
    try {
      applyCommand(m, c);
    } catch (e) {
      if (e instanceof LbError) throw new BatchError(i, e);
      throw e;
    }
  });
  return commands.length;
}

/** Replace the whole table of `m` with a document (timeouts and settings not given go back to defaults). */
export function applyConfig(m: Model, doc: ConfigDocT): void {
  m.clear();
  m.setTimeouts({ ...DEFAULT_TIMEOUTS });
  if (doc.timeouts) m.setTimeouts({ tcp: doc.timeouts.tcp ?? 0, tcpfin: doc.timeouts.tcpfin ?? 0, udp: doc.timeouts.udp ?? 0 });
  m.setSettings({ ...DEFAULT_SETTINGS, ...doc.settings });
  doc.services.forEach((sc, i) => {
    const { dests, ...spec } = sc;
    try {
      m.addService(spec as ServiceSpecT);
      for (const d of dests) m.addDest(spec as ServiceSpecT, d);
    } catch (e) {
      if (e instanceof LbError) throw new LbError(e.code, `services.${i}: ${e.message}`, { cause: e });
      throw e;
    }
  });
}

/** The table of `m` as a document; real servers in add order (oldest first), so that applying it rebuilds the same list order. */
export function modelToConfig(m: Model): ConfigDocT {
  return {
    version: CONFIG_VERSION,
    timeouts: { ...m.timeouts },
    settings: { ...m.settings },
    services: m.services.map((s) => ({
      ...structuredClone(s.spec),
      dests: [...s.dests].reverse().map((d): DestSpecT => ({ ...structuredClone(d.spec), address: ipText(d.addr), port: d.port })),
    })),
  };
}
