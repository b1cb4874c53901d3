/**
 * The control plane's model of the IPVS table: virtual services, their real servers (dests) in
 * kernel list order, the dest trash, timeouts and sysctl-like settings. Every operation first
 * checks everything that could make it fail, then changes the model: an operation either
 * happens completely or not at all. Batches (restore, config files) run on a clone that
 * replaces the original only when every step succeeded.
 *
 * Kernel rules kept here (net/netfilter/ipvs/ip_vs_ctl.c):
 * - a new dest goes to the *head* of its service's list (list_add_rcu), so scheduling order is
 *   newest first; an edit keeps its place;
 * - a deleted dest (or every dest of a deleted service) goes to a trash for 120 s keeping its
 *   id; re-adding the same address:port to the same service within that time revives it (with
 *   its counters zeroed); ids are reused only once nothing refers to them any more.
 */
import { ErrorCode, LbError } from "../errors.ts";
import type { DestSpecT, ServiceKeyT, ServiceSpecT, SettingsT, TimeoutsT } from "./spec.ts";
import { SCHEDULERS } from "../service/schedulers.ts";
import { addrPortText, canonicalIp, maskWords, parseIp, type IpAddr } from "../service/addr.ts";
import { DEST_CHANGE_WORDS, MAX_DESTS, MAX_SERVICES } from "../service/tables.ts";
import { PROTOCOL_NUMBER } from "../service/protocols.ts";

/** How long a deleted dest stays revivable, ms (IP_VS_DEST_TRASH_PERIOD = 120 s). */
export const DEST_TRASH_PERIOD_MS = 120_000;

/** Default timeouts, seconds (tcp ESTABLISHED, tcp FIN_WAIT, udp). */
export const DEFAULT_TIMEOUTS: TimeoutsT = { tcp: 900, tcpfin: 120, udp: 300 };

/** Settings that IPVS keeps as sysctls (net.ipv4.vs.*; spec.ts SettingsT). */
export type Settings = SettingsT;
/** The kernel's defaults of those sysctls. */
export const DEFAULT_SETTINGS: Settings = { expireNodestConn: false, expireQuiescentTemplate: false, sloppyTcp: false, connReuseMode: 1 };

export interface Dest {
  id: number;
  svcId: number;
  /** The service's key: the trash matches a re-created service by identity, as the kernel does. */
  svcKey: string;
  addr: IpAddr;
  port: number;
  spec: DestSpecT & { port: number };
  /** Last non-zero weight (mh), as the kernel's last_weight. */
  lastWeight: number;
  available: boolean;
  /** When it went to the trash (ms since epoch), while unavailable. */
  trashedAt: number;
  /** Bumped when thresholds are edited. */
  epoch: number;
  /** Bumped on revive so that counters can be zeroed by the daemon. */
  incarnation: number;
}

export interface Service {
  id: number;
  key: string;
  spec: ServiceSpecT;
  proto: number;
  addr: IpAddr | null;
  port: number;
  fwmark: number;
  family: 4 | 6;
  schedId: number;
  /** Persistence netmask as 4 words (v4: the dotted mask; v6: a prefix). */
  netmask: [number, number, number, number];
  /** Dests in kernel list order (newest first). */
  dests: Dest[];
  epoch: number;
  schedEpoch: number;
  /**
   * The weights after every scheduler callback since the scheduler was bound, oldest first:
   * DEST_CHANGE_WORDS numbers each (see destChange). The kernel calls add_dest/del_dest/
   * upd_dest once per change, and wrr's state depends on every intermediate step, so a worker
   * that receives several changes in one generation (restore, batches) replays them. Replaced,
   * never mutated (clones share it).
   */
  destChanges: readonly number[];
}

/** Entries kept per service; a longer batch replays only its last ones. */
export const DEST_CHANGES_KEPT = 32;

function gcd2(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Append the service's current weight summary to its destChanges (`bind`: the scheduler starts here). */
function destChange(svc: Service, epoch: number, bind: boolean): void {
  let g = 0,
    max = 0;
  for (const d of svc.dests) {
    const w = d.spec.weight;
    if (w > 0) g = g > 0 ? gcd2(w, g) : w;
    if (w > max) max = w;
  }
  const entry = [epoch, g, max, bind ? 1 : 0];
  const kept = bind ? [] : svc.destChanges.slice(-(DEST_CHANGES_KEPT - 1) * DEST_CHANGE_WORDS);
  svc.destChanges = [...kept, ...entry];
}

/** Return the canonical key of a service identity: "tcp|addr|port" or "fwm|family|mark". */
export function serviceKey(k: ServiceKeyT): string {
  if ("fwmark" in k) return `fwm|${k.family ?? "ipv4"}|${k.fwmark}`;
  return `${k.protocol}|${canonicalIp(k.address) ?? k.address}|${k.port}`;
}

/** Return ipvsadm's name of a service, e.g. "TCP  198.18.0.100:80" (for messages). */
export function serviceName(s: Service): string {
  if (s.fwmark) return `FWM  ${s.fwmark}`;
  return `${Object.hasOwn(s.spec, "protocol") ? (s.spec as { protocol: string }).protocol.toUpperCase() : "?"} ${addrPortText(s.addr!, s.port)}`;
}

class IdPool {
  private readonly free: number[] = [];
  private next = 0;
  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {}
  take(): number {
    if (this.free.length) return this.free.pop()!;
    if (this.next >= this.max) throw new LbError(ErrorCode.NoRoom, `too many ${this.what} (at most ${this.max})`);
    return this.next++;
  }
  give(id: number): void {
    this.free.push(id);
  }
  available(): number {
    return this.max - this.next + this.free.length;
  }
  clone(): IdPool {
    const p = new IdPool(this.max, this.what);
    p.free.push(...this.free);
    p.next = this.next;
    return p;
  }
}

/** The whole table. */
export class Model {
  services: Service[] = [];
  trash: Dest[] = [];
  /** Services deleted whose id is still referenced by connections (freed with their last dest). */
  deadServiceIds: { id: number; at: number }[] = [];
  timeouts: TimeoutsT = { ...DEFAULT_TIMEOUTS };
  settings: Settings = { ...DEFAULT_SETTINGS };
  /** Bumped on every change; the daemon compiles a new generation for each. */
  version = 0;
  private svcIds = new IdPool(MAX_SERVICES, "virtual services");
  private destIds = new IdPool(MAX_DESTS, "real servers");
  private epochs = 0;

  /** Return a deep copy (for all-or-nothing batches). */
  clone(): Model {
    const m = new Model();
    const destMap = new Map<Dest, Dest>();
    const cp = (d: Dest): Dest => {
      let c = destMap.get(d);
      if (!c) {
        c = { ...d, addr: { family: d.addr.family, words: [...d.addr.words] as IpAddr["words"] }, spec: structuredClone(d.spec) };
        destMap.set(d, c);
      }
      return c;
    };
    m.services = this.services.map((s) => ({ ...s, spec: structuredClone(s.spec), netmask: [...s.netmask] as Service["netmask"], dests: s.dests.map(cp) }));
    m.trash = this.trash.map(cp);
    m.deadServiceIds = this.deadServiceIds.map((x) => ({ ...x }));
    m.timeouts = { ...this.timeouts };
    m.settings = { ...this.settings };
    m.version = this.version;
    m.svcIds = this.svcIds.clone();
    m.destIds = this.destIds.clone();
    m.epochs = this.epochs;
    return m;
  }

  /** Replace this model's contents with another's (commit of a batch). */
  assign(other: Model): void {
    Object.assign(this, other);
  }

  private epoch(): number {
    return ++this.epochs;
  }

  /** Find a service by identity. */
  findService(k: ServiceKeyT): Service | undefined {
    const key = serviceKey(k);
    return this.services.find((s) => s.key === key);
  }

  private mustService(k: ServiceKeyT, message: string): Service {
    const s = this.findService(k);
    if (!s) throw new LbError(ErrorCode.NotExist, message);
    return s;
  }

  /** Add a virtual service (ipvsadm -A). @throws LbError(Exists) "Service already exists". */
  addService(spec: ServiceSpecT): Service {
    const key = serviceKey(spec);
    if (this.services.some((s) => s.key === key)) throw new LbError(ErrorCode.Exists, "Service already exists");
    const id = this.svcIds.take();
    const svc = this.buildService(id, key, spec);
    svc.schedEpoch = this.epoch();
    svc.epoch = this.epoch();
    destChange(svc, svc.schedEpoch, true);
    this.services.push(svc);
    this.version++;
    return svc;
  }

  private buildService(id: number, key: string, spec: ServiceSpecT): Service {
    const isFw = "fwmark" in spec;
    const addr = isFw ? null : parseIp(spec.address);
    const family: 4 | 6 = isFw ? (spec.family === "ipv6" ? 6 : 4) : addr!.family;
    let netmask: Service["netmask"] = family === 4 ? [-1, 0, 0, 0] : [-1, -1, -1, -1];
    const m = spec.persistence?.netmask;
    if (m !== undefined) {
      if (family === 4) netmask = [parseIp(m)!.words[0], 0, 0, 0];
      else netmask = maskWords([-1, -1, -1, -1], Number(m));
    }
    return {
      id,
      key,
      spec,
      proto: isFw ? 0 : PROTOCOL_NUMBER[spec.protocol],
      addr,
      port: isFw ? 0 : spec.port,
      fwmark: isFw ? spec.fwmark : 0,
      family,
      schedId: SCHEDULERS.indexOf(spec.scheduler),
      netmask,
      dests: [],
      epoch: 0,
      schedEpoch: 0,
      destChanges: [],
    };
  }

  /** Replace a service's options (ipvsadm -E). Dests and their order are kept. */
  editService(spec: ServiceSpecT): Service {
    const old = this.mustService(spec, "No such service");
    const svc = this.buildService(old.id, old.key, spec);
    svc.dests = old.dests;
    svc.epoch = old.epoch;
    // a different scheduler starts from scratch (unbind old, bind new); the same keeps its state
    svc.schedEpoch = svc.schedId === old.schedId ? old.schedEpoch : this.epoch();
    if (svc.schedId === old.schedId) svc.destChanges = old.destChanges;
    else destChange(svc, svc.schedEpoch, true);
    this.services[this.services.indexOf(old)] = svc;
    this.version++;
    return svc;
  }

  /** Delete a service (ipvsadm -D); its dests go to the trash. */
  deleteService(k: ServiceKeyT, now = Date.now()): void {
    const svc = this.mustService(k, "No such service");
    for (const d of svc.dests) this.toTrash(d, now);
    this.services.splice(this.services.indexOf(svc), 1);
    this.deadServiceIds.push({ id: svc.id, at: now });
    this.version++;
  }

  /** Delete every service (ipvsadm -C). Connections are kept, as in the kernel. */
  clear(now = Date.now()): void {
    for (const s of [...this.services]) this.deleteService(s.spec, now);
    this.version++;
  }

  private toTrash(d: Dest, now: number): void {
    d.available = false;
    d.trashedAt = now;
    this.trash.push(d);
  }

  private resolveDestPort(svc: Service, spec: DestSpecT): number {
    return spec.port ?? svc.port;
  }

  private checkDestFamily(svc: Service, spec: DestSpecT): IpAddr {
    const addr = parseIp(spec.address)!;
    if (addr.family !== svc.family && spec.forward !== "tunnel") {
      throw new LbError(ErrorCode.Invalid, "Different address family is allowed only for tunneling servers");
    }
    return addr;
  }

  /** Add a real server (ipvsadm -a). @throws "Service not defined" / "Destination already exists". */
  addDest(k: ServiceKeyT, spec: DestSpecT): Dest {
    const svc = this.mustService(k, "Service not defined");
    const addr = this.checkDestFamily(svc, spec);
    const port = this.resolveDestPort(svc, spec);
    const same = (d: Dest) => d.addr.family === addr.family && d.addr.words.every((w, i) => w === addr.words[i]) && d.port === port;
    if (svc.dests.some(same)) throw new LbError(ErrorCode.Exists, "Destination already exists");
    const full = { ...spec, port };
    let d = this.trash.find((t) => t.svcKey === svc.key && same(t));
    if (d) {
      // revive from the trash (ip_vs_trash_get_dest): same id, counters zeroed
      this.trash.splice(this.trash.indexOf(d), 1);
      d.available = true;
      d.trashedAt = 0;
      d.svcId = svc.id;
      d.spec = full;
      d.incarnation++;
      d.epoch = this.epoch();
      if (spec.weight > 0) d.lastWeight = spec.weight;
    } else {
      d = {
        id: this.destIds.take(),
        svcId: svc.id,
        svcKey: svc.key,
        addr,
        port,
        spec: full,
        lastWeight: spec.weight,
        available: true,
        trashedAt: 0,
        epoch: this.epoch(),
        incarnation: 0,
      };
    }
    svc.dests.unshift(d);
    svc.epoch = this.epoch();
    destChange(svc, svc.epoch, false);
    this.version++;
    return d;
  }

  private mustDest(svc: Service, address: string, port: number | undefined): Dest {
    const addr = parseIp(address);
    const p = port ?? svc.port;
    const d = addr && svc.dests.find((x) => x.addr.family === addr.family && x.addr.words.every((w, i) => w === addr.words[i]) && x.port === p);
    if (!d) throw new LbError(ErrorCode.NotExist, "No such destination");
    return d;
  }

  /** Find a real server. @throws LbError(NotExist) "Service not defined" / "No such destination", as editDest. */
  dest(k: ServiceKeyT, address: string, port: number | undefined): Dest {
    return this.mustDest(this.mustService(k, "Service not defined"), address, port);
  }

  /** Change a real server (ipvsadm -e); it keeps its place in the list. */
  editDest(k: ServiceKeyT, spec: DestSpecT): Dest {
    const svc = this.mustService(k, "Service not defined");
    this.checkDestFamily(svc, spec);
    const d = this.mustDest(svc, spec.address, spec.port);
    const old = d.spec;
    d.spec = { ...spec, port: d.port };
    if (spec.weight > 0) d.lastWeight = spec.weight;
    if (old.upperThreshold !== spec.upperThreshold || old.lowerThreshold !== spec.lowerThreshold) d.epoch = this.epoch();
    svc.epoch = this.epoch();
    destChange(svc, svc.epoch, false);
    this.version++;
    return d;
  }

  /** Delete a real server (ipvsadm -d); it goes to the trash. */
  deleteDest(k: ServiceKeyT, address: string, port: number | undefined, now = Date.now()): void {
    const svc = this.mustService(k, "Service not defined");
    const d = this.mustDest(svc, address, port);
    svc.dests.splice(svc.dests.indexOf(d), 1);
    this.toTrash(d, now);
    svc.epoch = this.epoch();
    destChange(svc, svc.epoch, false);
    this.version++;
  }

  /** Set timeouts (ipvsadm --set); 0 keeps a value. */
  setTimeouts(t: TimeoutsT): void {
    if (t.tcp) this.timeouts.tcp = t.tcp;
    if (t.tcpfin) this.timeouts.tcpfin = t.tcpfin;
    if (t.udp) this.timeouts.udp = t.udp;
    this.version++;
  }

  /** Change settings. */
  setSettings(s: Partial<Settings>): void {
    this.settings = { ...this.settings, ...s };
    this.version++;
  }

  /**
   * Free trashed dests (and dead service ids) older than the trash period that nothing refers
   * to any more; `refs(destId)` tells how many connections still name a dest.
   * Returns true when something was freed.
   */
  purgeTrash(now: number, refs: (destId: number) => number, svcRefs: (svcId: number) => number): boolean {
    let changed = false;
    for (const d of [...this.trash]) {
      if (now - d.trashedAt >= DEST_TRASH_PERIOD_MS && refs(d.id) === 0) {
        this.trash.splice(this.trash.indexOf(d), 1);
        this.destIds.give(d.id);
        changed = true;
      }
    }
    for (const s of [...this.deadServiceIds]) {
      const held = this.trash.some((d) => d.svcId === s.id) || this.services.some((x) => x.id === s.id);
      if (!held && now - s.at >= DEST_TRASH_PERIOD_MS && svcRefs(s.id) === 0) {
        this.deadServiceIds.splice(this.deadServiceIds.indexOf(s), 1);
        this.svcIds.give(s.id);
        changed = true;
      }
    }
    if (changed) this.version++;
    return changed;
  }

  /** Every dest, listed and trashed. */
  allDests(): Dest[] {
    return [...this.services.flatMap((s) => s.dests), ...this.trash];
  }
}
