/**
 * The connection table as a file, so that it outlives the daemon across a restart
 * (`kill -TERM` + `xvs run`, `systemctl restart xvs`): the stopping daemon writes every live
 * record of every worker, the starting one checks the file and re-installs what it can.
 *
 * Why a file (on tmpfs, /run/xvs/net-<netns inode>/conns.bin, src/dataplane/restart.ts) and not
 * shared memory, pinned BPF maps or a hand-over between processes: the records live in the
 * workers' SharedArrayBuffers (JS heap, huge pages), which no other process can map, and
 * the table is not a BPF map; a hand-over needs both processes at once, which
 * `systemctl restart` (stop, then start) never has. A file written once, after the workers
 * stopped, is a consistent snapshot with no locking, costs nothing while running, and /run
 * is gone after a reboot, when every connection is gone too.
 *
 * Layout (host byte order: the file never leaves the host):
 *   "XVSCONNS" | u32 header length | header (JSON, SavedHeader) | pad to 4 |
 *   records (Int32, CONN_WORDS each, queue after queue) | u32 CRC-32 of all before it.
 * Records are compacted per queue: a connection's CONN_CONTROL names its template by its index
 * in the same queue + 1. CONN_EXPIRES stays in the saving daemon's clock (`epochMs`), the
 * wheel words are meaningless here.
 *
 * A file is refused, with a reason for the log, when it is damaged (short, checksum, header),
 * of another record layout (`layoutVersion`: derived from the CONN_* / CF_* / S_* constants,
 * so any change of the record changes it), or of another network namespace or boot. The build
 * id is recorded and logged but does not refuse: an upgrade is the restart this is for.
 */
import { TICKS_PER_SEC } from "../service/clock.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_PORT,
  DEST_SVC,
  DEST_WORDS,
  DESTF_USED,
  DESTF_V6,
  MAX_DESTS,
  MAX_SERVICES,
  SVC_ADDR,
  SVC_FLAGS,
  SVC_FWMARK,
  SVC_PORT,
  SVC_PROTO,
  SVC_WORDS,
  SVCF_FWMARK,
  SVCF_USED,
  SVCF_V6,
  type Tables,
} from "../service/tables.ts";
import { linkId, linkWorker } from "./persist-template.ts";
import * as state from "./state.ts";
import * as table from "./table.ts";
import {
  CF_TEMPLATE,
  CF_USED,
  CONN_CONTROL,
  CONN_DEST,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_MAC_HI,
  CONN_MAC_LO,
  CONN_NEXTHOP,
  CONN_SVC,
  CONN_WHEEL_NEXT,
  CONN_WHEEL_PREV,
  CONN_WHEEL_SLOT,
  CONN_WORDS,
} from "./table.ts";

const MAGIC = "XVSCONNS";
/** Largest header accepted (service and dest keys of full tables fit well below). */
const MAX_HEADER = 16 << 20;

/** The network namespace a table was saved in (as control/netns-identity.ts reads it). */
export interface SavedNetns {
  /** SO_NETNS_COOKIE, decimal; null when the kernel has none. */
  cookie: string | null;
  inode: string;
  boot: string;
}

export interface SavedHeader {
  /** layoutVersion() of the saving build. */
  layout: string;
  /** What the saving build was (logged, not checked). */
  build: string;
  netns: SavedNetns;
  /** Epoch of the table clock the records' deadlines count from (ms since 1970). */
  epochMs: number;
  /** When the file was written (ms since 1970). */
  savedMs: number;
  /** Interface names by port index (for CONN_NEXTHOP's `~port`). */
  ports: string[];
  /** Service ids and their keys (svcKey) in the saving daemon's tables. */
  services: [number, string][];
  /** Dest ids and their keys (destKey). */
  dests: [number, string][];
  /** Records per queue, in file order. */
  queues: number[];
}

export interface SavedTable {
  header: SavedHeader;
  /** One array of records per queue (CONN_WORDS words each). */
  queues: Int32Array[];
}

/** Why a file was refused: damaged (unreadable), layout (another record layout), foreign (another namespace or boot). */
export type Refusal = { kind: "damaged" | "layout" | "foreign"; reason: string };

/**
 * The record layout's version: a hash over every CONN_* offset, CF_* flag and S_* state number
 * and the clock's tick rate. Adding a word, moving one or renumbering a state changes it.
 */
export function layoutVersion(): string {
  const parts: string[] = [`ticks=${TICKS_PER_SEC}`];
  for (const [mod, re] of [
    [table, /^(CONN_|CF_)/],
    [state, /^S_/],
  ] as const) {
    for (const [k, v] of Object.entries(mod)) if (re.test(k) && typeof v === "number") parts.push(`${k}=${v}`);
  }
  parts.sort();
  return `L${CONN_WORDS}-${(Bun.hash.crc32(parts.join(",")) >>> 0).toString(16).padStart(8, "0")}`;
}

/** An address's words as text (the keys are also what the log shows). */
function addrKey(w: Int32Array, o: number, v6: boolean): string {
  if (!v6) return [24, 16, 8, 0].map((sh) => (w[o] >>> sh) & 0xff).join(".");
  const g: string[] = [];
  for (let k = 0; k < 4; k++) g.push(((w[o + k] >>> 16) & 0xffff).toString(16), (w[o + k] & 0xffff).toString(16));
  return `[${g.join(":")}]`;
}

/** The key of service `id` in `t`: what stays the same when ids do not (proto, VIP, port, or fwmark). */
export function svcKey(t: Tables, id: number): string {
  const o = id * SVC_WORDS,
    s = t.svc;
  const fl = s[o + SVC_FLAGS];
  if (fl & SVCF_FWMARK) return `fwmark ${s[o + SVC_FWMARK] >>> 0} ipv${fl & SVCF_V6 ? 6 : 4}`;
  return `proto ${s[o + SVC_PROTO]} ${addrKey(s, o + SVC_ADDR, (fl & SVCF_V6) !== 0)}:${s[o + SVC_PORT]}`;
}

/** The key of dest `id` in `t`: its service's key, address and port. */
export function destKey(t: Tables, id: number): string {
  const o = id * DEST_WORDS,
    d = t.dest;
  return `${svcKey(t, d[o + DEST_SVC])} -> ${addrKey(d, o + DEST_ADDR, (d[o + DEST_FLAGS] & DESTF_V6) !== 0)}:${d[o + DEST_PORT]}`;
}

/** Every service and dest of `t` with its key. */
export function tableKeys(t: Tables): { services: [number, string][]; dests: [number, string][] } {
  const services: [number, string][] = [],
    dests: [number, string][] = [];
  for (let i = 0; i < MAX_SERVICES && (i + 1) * SVC_WORDS <= t.svc.length; i++)
    if (t.svc[i * SVC_WORDS + SVC_FLAGS] & SVCF_USED) services.push([i, svcKey(t, i)]);
  for (let i = 0; i < MAX_DESTS && (i + 1) * DEST_WORDS <= t.dest.length; i++)
    if (t.dest[i * DEST_WORDS + DEST_FLAGS] & DESTF_USED) dests.push([i, destKey(t, i)]);
  return { services, dests };
}

/**
 * Copy the live records of one table (ids below `high`) into a compact array, renumbering the
 * template links (CONN_CONTROL) to the compact indexes.
 */
export function collectRecords(rec: Int32Array, high: number): Int32Array {
  return collectAll([{ rec, high }])[0];
}

/**
 * Copy the live records of every worker's table (ids below each `high`) into one compact array
 * per worker, links (CONN_CONTROL) renumbered to indexes in the same array. A connection linked
 * to another worker's template (persist-template.ts: CONN_CONTROL < 0) is saved with that
 * template's worker, linked to it there: the file keeps links within one queue's records, and the
 * adopting daemon finds a connection in whichever worker's table it is installed (conn/peers.ts),
 * so it keeps its template, and the template its count, across the restart.
 */
export function collectAll(tables: { rec: Int32Array; high: number }[]): Int32Array[] {
  const n = tables.length;
  const live = (w: number, id: number, want: number) => {
    const t = tables[w];
    return w < n && id < t.high && (t.rec[id * CONN_WORDS + CONN_FLAGS] & (CF_USED | want)) === (CF_USED | want);
  };
  /** The queue a record is saved in: its own, or its template's worker's for a live peer link. */
  const queueOf = (w: number, id: number): number => {
    const r = tables[w].rec,
      o = id * CONN_WORDS;
    const ctl = r[o + CONN_CONTROL];
    if ((r[o + CONN_FLAGS] & CF_TEMPLATE) !== 0 || ctl >= 0) return w;
    return live(linkWorker(ctl), linkId(ctl), CF_TEMPLATE) ? linkWorker(ctl) : w;
  };
  const newIndex = tables.map((t) => new Int32Array(t.high).fill(-1));
  const members: number[][] = tables.map(() => []);
  for (let w = 0; w < n; w++) {
    for (let id = 0; id < tables[w].high; id++) {
      if (!live(w, id, 0)) continue;
      const q = queueOf(w, id);
      newIndex[w][id] = members[q].length / 2;
      members[q].push(w, id);
    }
  }
  return members.map((m) => {
    const out = new Int32Array((m.length / 2) * CONN_WORDS);
    for (let k = 0; k < m.length; k += 2) {
      const w = m[k],
        id = m[k + 1];
      const r = tables[w].rec;
      const o = (k / 2) * CONN_WORDS;
      out.set(r.subarray(id * CONN_WORDS, (id + 1) * CONN_WORDS), o);
      const ctl = out[o + CONN_CONTROL];
      if ((out[o + CONN_FLAGS] & CF_TEMPLATE) !== 0 || ctl === 0) continue;
      if (ctl > 0) out[o + CONN_CONTROL] = live(w, ctl - 1, CF_TEMPLATE) ? newIndex[w][ctl - 1] + 1 : 0;
      else out[o + CONN_CONTROL] = live(linkWorker(ctl), linkId(ctl), CF_TEMPLATE) ? newIndex[linkWorker(ctl)][linkId(ctl)] + 1 : 0;
    }
    return out;
  });
}

/** Write a table file's bytes. */
export function encodeTable(saved: SavedTable): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify({ ...saved.header, queues: saved.queues.map((q) => q.length / CONN_WORDS) }));
  const headEnd = 12 + head.length;
  const bodyOff = (headEnd + 3) & ~3;
  const bodyLen = saved.queues.reduce((n, q) => n + q.byteLength, 0);
  const out = new Uint8Array(bodyOff + bodyLen + 4);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, head.length, true);
  out.set(head, 12);
  let at = bodyOff;
  for (const q of saved.queues) {
    out.set(new Uint8Array(q.buffer, q.byteOffset, q.byteLength), at);
    at += q.byteLength;
  }
  dv.setUint32(at, Bun.hash.crc32(out.subarray(0, at)) >>> 0, true);
  return out;
}

function isHeader(h: unknown): h is SavedHeader {
  if (typeof h !== "object" || h === null) return false;
  const o = h as Record<string, unknown>;
  const n = o.netns as Record<string, unknown> | undefined;
  const pairs = (v: unknown) => Array.isArray(v) && v.every((p) => Array.isArray(p) && Number.isInteger(p[0]) && typeof p[1] === "string");
  return (
    typeof o.layout === "string" &&
    typeof o.build === "string" &&
    typeof n === "object" &&
    n !== null &&
    (n.cookie === null || typeof n.cookie === "string") &&
    typeof n.inode === "string" &&
    typeof n.boot === "string" &&
    Number.isFinite(o.epochMs) &&
    Number.isFinite(o.savedMs) &&
    Array.isArray(o.ports) &&
    o.ports.every((p) => typeof p === "string") &&
    pairs(o.services) &&
    pairs(o.dests) &&
    Array.isArray(o.queues) &&
    o.queues.every((q) => Number.isInteger(q) && q >= 0)
  );
}

/** Is a table saved in `saved` ours (`here`)? Same boot, and the same namespace cookie (the inode when the kernel has no cookie). */
export function sameNetns(saved: SavedNetns, here: SavedNetns): string | null {
  if (saved.boot !== here.boot) return `saved before a reboot (boot ${saved.boot}, now ${here.boot})`;
  if (saved.cookie !== null && here.cookie !== null) {
    return saved.cookie === here.cookie
      ? null
      : `saved by another network namespace (cookie ${saved.cookie}, inode ${saved.inode}; this one is cookie ${here.cookie})`;
  }
  return saved.inode === here.inode ? null : `saved by another network namespace (inode ${saved.inode}; this one is ${here.inode})`;
}

/**
 * Read a table file's bytes and check them against this build's layout and this namespace.
 * Never throws: anything wrong is a Refusal.
 */
export function decodeTable(bytes: Uint8Array, here: SavedNetns, layout = layoutVersion()): SavedTable | Refusal {
  const damaged = (why: string): Refusal => ({ kind: "damaged", reason: why });
  if (bytes.length < 16) return damaged(`truncated (${bytes.length} bytes)`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return damaged("not a connection table (bad magic)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLen = dv.getUint32(8, true);
  if (headLen > MAX_HEADER || 12 + headLen + 4 > bytes.length) return damaged(`truncated (header of ${headLen} bytes in a file of ${bytes.length})`);
  const end = bytes.length - 4;
  if (Bun.hash.crc32(bytes.subarray(0, end)) >>> 0 !== dv.getUint32(end, true)) return damaged("checksum mismatch (truncated or overwritten)");
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headLen)));
  } catch {
    return damaged("header is not JSON");
  }
  if (!isHeader(header)) return damaged("header lacks fields");
  if (header.layout !== layout) return { kind: "layout", reason: `record layout ${header.layout} (build ${header.build}), this build's is ${layout}` };
  const foreign = sameNetns(header.netns, here);
  if (foreign !== null) return { kind: "foreign", reason: foreign };
  const bodyOff = (12 + headLen + 3) & ~3;
  const words = header.queues.reduce((n, q) => n + q * CONN_WORDS, 0);
  if (bodyOff + words * 4 !== end) return damaged(`body of ${end - bodyOff} bytes, the header says ${words * 4}`);
  // a copy, aligned: `bytes` may be a Node Buffer, whose slice() is a view into a shared pool
  const body = new Int32Array(new Uint8Array(bytes.subarray(bodyOff, end)).buffer);
  const queues: Int32Array[] = [];
  let at = 0;
  for (const q of header.queues) {
    queues.push(body.slice(at, at + q * CONN_WORDS));
    at += q * CONN_WORDS;
  }
  return { header, queues };
}

/** What adoption kept and left out. */
export interface AdoptionPlan {
  /** Records per saved queue, ids remapped, CONN_EXPIRES = ticks left (> 0), links to templates by index + 1. */
  queues: Int32Array[];
  kept: number;
  /** Left out: deadline passed. */
  expired: number;
  /** Left out: their service or real server is not in the new table. */
  unknown: number;
  /** The keys of up to 3 such services or real servers (for the log). */
  unknownKeys: string[];
}

/**
 * Turn a saved table into records for the new daemon's `tables`: service and dest ids
 * remapped by key, deadlines as ticks left at `nowMs`, NAT/ICMP ports remapped by interface
 * name (`ports`, the new daemon's), template links and counts recomputed over what is kept.
 */
export function planAdoption(saved: SavedTable, t: Tables, ports: string[], nowMs: number): AdoptionPlan {
  const keys = tableKeys(t);
  const svcByKey = new Map(keys.services.map(([id, k]) => [k, id]));
  const destByKey = new Map(keys.dests.map(([id, k]) => [k, id]));
  const svcMap = new Map(saved.header.services.map(([id, k]) => [id, svcByKey.get(k) ?? -1]));
  const destMap = new Map(saved.header.dests.map(([id, k]) => [id, destByKey.get(k) ?? -1]));
  const portMap = saved.header.ports.map((p) => ports.indexOf(p));
  const nowOld = Math.floor((nowMs - saved.header.epochMs) / (1000 / TICKS_PER_SEC)) | 0;
  const plan: AdoptionPlan = { queues: [], kept: 0, expired: 0, unknown: 0, unknownKeys: [] };
  const savedSvc = new Map(saved.header.services),
    savedDest = new Map(saved.header.dests);
  for (const q of saved.queues) {
    const n = q.length / CONN_WORDS;
    const left = new Int32Array(n);
    const keep = new Int32Array(n).fill(-1);
    // templates first decide for themselves; a connection needs its template kept to stay linked
    let k = 0;
    for (let i = 0; i < n; i++) {
      const o = i * CONN_WORDS;
      const svc = svcMap.get(q[o + CONN_SVC]) ?? -1,
        dest = destMap.get(q[o + CONN_DEST]) ?? -1;
      left[i] = (q[o + CONN_EXPIRES] - nowOld) | 0;
      if (svc < 0 || dest < 0) {
        plan.unknown++;
        const key = svc < 0 ? savedSvc.get(q[o + CONN_SVC]) : savedDest.get(q[o + CONN_DEST]);
        if (plan.unknownKeys.length < 3 && !plan.unknownKeys.includes(String(key))) plan.unknownKeys.push(String(key));
      } else if (left[i] <= 0 && (q[o + CONN_FLAGS] & CF_TEMPLATE) === 0) plan.expired++;
      else keep[i] = k++;
    }
    const out = new Int32Array(k * CONN_WORDS);
    for (let i = 0; i < n; i++) {
      if (keep[i] < 0) continue;
      const o = i * CONN_WORDS,
        p = keep[i] * CONN_WORDS;
      out.set(q.subarray(o, o + CONN_WORDS), p);
      out[p + CONN_SVC] = svcMap.get(q[o + CONN_SVC])!;
      out[p + CONN_DEST] = destMap.get(q[o + CONN_DEST])!;
      // a template past its deadline is kept only while it controls kept connections (below)
      out[p + CONN_EXPIRES] = left[i] > 0 ? left[i] : 1;
      out[p + CONN_WHEEL_NEXT] = 0;
      out[p + CONN_WHEEL_PREV] = 0;
      out[p + CONN_WHEEL_SLOT] = -1;
      const hop = out[p + CONN_NEXTHOP];
      // `~port` with the client's MAC (records saved with a next-hop id were turned into that by the saver)
      if (hop < 0 && -1 - hop < portMap.length) {
        const np = portMap[-1 - hop];
        out[p + CONN_NEXTHOP] = np >= 0 ? -1 - np : 0;
        if (np < 0) out[p + CONN_MAC_HI] = out[p + CONN_MAC_LO] = 0;
      }
      if (out[p + CONN_FLAGS] & CF_TEMPLATE) out[p + CONN_CONTROL] = 0;
    }
    // template links over the kept records, and how many each template controls
    for (let i = 0; i < n; i++) {
      if (keep[i] < 0 || q[i * CONN_WORDS + CONN_FLAGS] & CF_TEMPLATE) continue;
      const p = keep[i] * CONN_WORDS;
      const tpl = q[i * CONN_WORDS + CONN_CONTROL] - 1;
      if (tpl >= 0 && tpl < n && keep[tpl] >= 0 && q[tpl * CONN_WORDS + CONN_FLAGS] & CF_TEMPLATE) {
        out[p + CONN_CONTROL] = keep[tpl] + 1;
        out[keep[tpl] * CONN_WORDS + CONN_CONTROL] += 1;
      } else out[p + CONN_CONTROL] = 0;
    }
    plan.kept += k;
    plan.queues.push(out);
  }
  return plan;
}
