/**
 * Restarts that keep connections: what `Dataplane.stop({ handOver: true })` leaves behind and
 * what the next `Dataplane.start` takes over (docs/operations.md, "Restarts").
 *
 * - The table: written after the workers stopped to /run/xvs/net-<netns inode>/conns.bin
 *   (XVS_RUN_DIR moves /run/xvs; tmpfs, beside the steering program's attachment records)
 *   through a temporary file and a rename, so a reader sees a whole file or none. Format and
 *   checks: src/conn/persist.ts (why a file: there too). The starting daemon takes the file away
 *   before it installs anything, so a table is adopted once; a damaged, foreign or other-layout
 *   one is set aside as conns.<kind>.bin and the start says why in one log line.
 * - The gap: the steering program stays attached, in hold mode (xvs_steer.bpf.c `hold`) for
 *   HOLD_SECONDS: owned packets, which no socket takes now, are dropped (counted in the map)
 *   instead of passed to the kernel, whose RSTs would end the held connections; TCP
 *   retransmits them to the next daemon. The next `xvs run` replaces the program atomically
 *   (ffi/bpf.ts attach, a program no process holds) with its own, itself in hold mode until
 *   its workers' sockets are bound. A daemon that is not started again leaves a program that
 *   drops for HOLD_SECONDS (forwarding the flows in its XDP flow cache meanwhile) and then passes
 *   every packet, cached flows too (flow_cfg XVS_FLOW_CFG_HANDED_OVER: nobody updates them any
 *   more); `ip link set dev IF xdp off` removes it.
 * - Workers: worker k gets saved worker k's records in its init message and installs them
 *   before its first burst (installAdopted, through conn/peers.ts installConnection: counted on
 *   its real server as a new connection is, and found by every worker, since a worker that
 *   misses looks in the others' tables). With fewer workers than were saved, saved worker k's
 *   records go to worker k mod count (adoptedFor), all in the init messages: a record installed
 *   after a worker's first burst would come too late for the packets held in the gap.
 * - Only when there is something to keep: a stop with an empty table detaches as always.
 */
import { existsSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { installConnection } from "../conn/peers.ts";
import { collectAll, decodeTable, encodeTable, layoutVersion, planAdoption, tableKeys, type AdoptionPlan, type SavedNetns } from "../conn/persist.ts";
import {
  CF_FWD_MASK,
  CF_TEMPLATE,
  CF_V6,
  CONN_CADDR,
  CONN_CONTROL,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_MAC_HI,
  CONN_MAC_LO,
  CONN_NEXTHOP,
  CONN_WORDS,
  HDR_HIGH,
  HDR_LIVE,
  type ConnTable,
} from "../conn/table.ts";
import { netnsCookie } from "../ffi/netns-cookie.ts";
import type { SteerProgram } from "../ffi/bpf.ts";
import { log } from "../log.ts";
import { NH_MAC_HI, NH_MAC_LO, NH_PORT, NH_WORDS } from "../nexthop/table.ts";
import { FWD_MASQ, type Tables } from "../service/tables.ts";
import type { Counters } from "../stats/counters.ts";
import { HOP_NO_ROUTE, nextHopFor, type NextHopView } from "./route.ts";

/** How long a stopped daemon's steering program drops (rather than passes) owned packets. */
export const HOLD_SECONDS = 60;
/** The same while a starting daemon binds its sockets (it clears it once they are bound). */
const START_HOLD_SECONDS = 30;

/** The per-namespace run directory (the same as ffi/bpf.ts's attachment records). */
export function runDir(): string {
  let ns = "default";
  try {
    ns = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/net"))?.[1] ?? "default";
  } catch {
    // no procfs: one directory for all
  }
  return join(process.env.XVS_RUN_DIR ?? "/run/xvs", `net-${ns}`);
}

export function tablePath(dir = runDir()): string {
  return join(dir, "conns.bin");
}

/** This process's network namespace and boot. */
export function netnsHere(): SavedNetns {
  let inode = "unknown",
    boot = "unknown";
  try {
    inode = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/net"))?.[1] ?? "unknown";
  } catch {
    // no procfs
  }
  try {
    boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // no boot id
  }
  return { cookie: netnsCookie(), inode, boot };
}

/** CLOCK_BOOTTIME in ns (bpf_ktime_get_boot_ns), from /proc/uptime (10 ms resolution is plenty here). */
function bootNs(): bigint {
  const s = readFileSync("/proc/uptime", "utf8").split(" ")[0];
  return BigInt(Math.round(Number(s) * 1000)) * 1000000n;
}

/** Hold mode on for `seconds` (0: off). Best effort: a program without the map cannot hold. */
export function setHold(prog: SteerProgram, seconds: number): void {
  try {
    prog.setHold(seconds > 0 ? bootNs() + BigInt(seconds) * 1000000000n : 0n);
  } catch (e) {
    log("warn", "cannot set the steering program's hold mode", { error: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * Save the stopped workers' tables. `nh` is the next-hop table: a NAT record's next-hop id means
 * nothing to the next daemon, so it is saved as its port and MAC (`~port`), which the new daemon
 * uses only when its own lookup finds no next hop for the client. Returns the records written.
 */
export function saveTables(conns: ConnTable[], t: Tables, nh: Int32Array, ports: string[], epochMs: number, path = tablePath()): number {
  // every worker's at once: a connection linked to another worker's template is saved with it
  const all = collectAll(conns.map((c) => ({ rec: c.rec, high: Atomics.load(c.header, HDR_HIGH) })));
  const queues = all.map((recs) => {
    for (let o = 0; o < recs.length; o += CONN_WORDS) {
      const hop = recs[o + CONN_NEXTHOP];
      if (hop >= 0 && hop !== HOP_NO_ROUTE && (hop + 1) * NH_WORDS <= nh.length && (recs[o + CONN_MAC_HI] | recs[o + CONN_MAC_LO]) === 0) {
        recs[o + CONN_MAC_HI] = nh[hop * NH_WORDS + NH_MAC_HI];
        recs[o + CONN_MAC_LO] = nh[hop * NH_WORDS + NH_MAC_LO];
        recs[o + CONN_NEXTHOP] = -1 - nh[hop * NH_WORDS + NH_PORT];
      } else if (hop >= 0) recs[o + CONN_NEXTHOP] = HOP_NO_ROUTE;
    }
    return recs;
  });
  const { services, dests } = tableKeys(t);
  const bytes = encodeTable({
    header: { layout: layoutVersion(), build: `bun ${Bun.version}`, netns: netnsHere(), epochMs, savedMs: Date.now(), ports, services, dests, queues: [] },
    queues,
  });
  mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o600 });
  renameSync(tmp, path);
  return queues.reduce((n, q) => n + q.length / CONN_WORDS, 0);
}

/**
 * Take the saved table, if any: read it, move it away (adopted once), check it, plan it against
 * the new tables. Returns null (after one log line saying why) when there is nothing to adopt.
 */
export function takeSavedTable(t: Tables, ports: string[], path = tablePath()): AdoptionPlan | null {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch {
    return null; // no table saved: a first start, or the last stop was not a hand-over
  }
  const got = decodeTable(bytes, netnsHere());
  if ("kind" in got) {
    const aside = path.replace(/\.bin$/, `.${got.kind}.bin`);
    try {
      renameSync(path, aside);
    } catch {
      rmSync(path, { force: true });
    }
    log("warn", `saved connection table not adopted: ${got.reason}; starting with an empty table`, { file: path, setAside: aside, kind: got.kind });
    return null;
  }
  rmSync(path, { force: true });
  const plan = planAdoption(got, t, ports, Date.now());
  log("info", "adopting the saved connection table", {
    file: path,
    kept: plan.kept,
    expired: plan.expired,
    noService: plan.unknown,
    ...(plan.unknown > 0 ? { notInTable: plan.unknownKeys } : {}),
    savedBy: got.header.build,
    savedAgoMs: Date.now() - got.header.savedMs,
  });
  return plan;
}

/**
 * Install adopted records (planAdoption's: CONN_EXPIRES = ticks left, CONN_CONTROL of a
 * connection = its template's index + 1) into a worker's table, on that worker's thread, before
 * its first burst or between bursts, through conn/peers.ts installConnection: counted on its
 * real server as a new connection is, and found by every worker (the others look in this table
 * on a miss). Templates go first, so that each connection's link names an installed one. A NAT
 * record takes the next hop this daemon finds for its client, else the saved port and MAC.
 * Returns the number installed (fewer when the table is full).
 */
export function installAdopted(conns: ConnTable, counters: Counters, t: Tables, nh: NextHopView, recs: Int32Array, now: number): number {
  const n = recs.length / CONN_WORDS;
  const ids = new Int32Array(n).fill(-1);
  const w = new Int32Array(CONN_WORDS);
  let installed = 0;
  for (const templates of [true, false]) {
    for (let i = 0; i < n; i++) {
      const src = i * CONN_WORDS;
      const fl = recs[src + CONN_FLAGS];
      if (((fl & CF_TEMPLATE) !== 0) !== templates) continue;
      w.set(recs.subarray(src, src + CONN_WORDS));
      w[CONN_EXPIRES] = (now + recs[src + CONN_EXPIRES]) | 0;
      if (templates)
        w[CONN_CONTROL] = 0; // installConnection counts the connections it links
      else {
        const tpl = recs[src + CONN_CONTROL] - 1;
        w[CONN_CONTROL] = tpl >= 0 && tpl < n && ids[tpl] >= 0 ? ids[tpl] + 1 : 0;
        if ((fl & CF_FWD_MASK) === FWD_MASQ) {
          const hop = nextHopFor(t, nh, fl & CF_V6 ? 6 : 4, w[CONN_CADDR], w[CONN_CADDR + 1], w[CONN_CADDR + 2], w[CONN_CADDR + 3]);
          const savedMac = (w[CONN_MAC_HI] | w[CONN_MAC_LO]) !== 0 && w[CONN_NEXTHOP] < 0 && w[CONN_NEXTHOP] !== HOP_NO_ROUTE;
          if (hop >= 0 || !savedMac) w[CONN_NEXTHOP] = hop;
        }
      }
      ids[i] = installConnection(conns, counters, t, w, now);
      if (ids[i] >= 0) installed++;
    }
  }
  return installed;
}

/**
 * The adopted records worker `index` of `workers` installs in its init message: saved worker k's
 * go to worker k mod `workers` (the same worker when the count is the same; a worker that misses
 * looks in the others' tables, so any fold serves). Template links are indexes within a saved
 * worker's records: shifted by the records placed before them.
 */
export function adoptedFor(adopted: Int32Array[] | null, index: number, workers: number): Int32Array | undefined {
  if (adopted === null) return undefined;
  const parts = adopted.filter((_, k) => k % workers === index);
  if (parts.length <= 1) return parts[0];
  const all = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    const base = at / CONN_WORDS;
    for (let o = at; o < at + p.length; o += CONN_WORDS)
      if ((all[o + CONN_FLAGS] & CF_TEMPLATE) === 0 && all[o + CONN_CONTROL] !== 0) all[o + CONN_CONTROL] += base;
    at += p.length;
  }
  return all;
}

/**
 * At start, before the program is attached: when a table was saved, the new program holds
 * (drops rather than passes) owned packets until our sockets are bound, so that the saved
 * connections' packets wait for us rather than meet the kernel.
 */
export function holdForSaved(prog: SteerProgram, path = tablePath()): void {
  if (existsSync(path)) setHold(prog, START_HOLD_SECONDS);
}

/**
 * Once the program is attached (a start that fails before leaves the file for the next one):
 * take the saved table (if any) for `t`. Returns the records per saved worker, or null (hold
 * mode then ends at once).
 */
export function adoptSaved(prog: SteerProgram, t: Tables, ports: string[]): Int32Array[] | null {
  let plan: AdoptionPlan | null = null;
  try {
    plan = takeSavedTable(t, ports);
  } catch (e) {
    log("warn", "saved connection table not adopted: cannot read it; starting with an empty table", { error: e instanceof Error ? e.message : String(e) });
  }
  if (plan === null || plan.kept === 0) {
    setHold(prog, 0);
    return null;
  }
  return plan.queues;
}

/** After the workers started, each with its records (adoptedFor): hold mode off. Returns null. */
export function endStartHold(prog: SteerProgram, adopted: Int32Array[] | null, workers: number): null {
  if (adopted === null) return null;
  let held = -1;
  try {
    held = prog.holdDrops();
  } catch {
    // the count is only for the log
  }
  setHold(prog, 0);
  log("info", "adopted connections installed; hold mode off", {
    connections: adopted.reduce((n, q) => n + q.length / CONN_WORDS, 0),
    savedWorkers: adopted.length,
    perSavedWorker: adopted.map((q) => q.length / CONN_WORDS),
    workers,
    heldPackets: held,
  });
  return null;
}

/** What Dataplane.stop({ handOver: true }) does, in its two steps. */
export const handOver = {
  /** Before the workers stop: packets we own that no socket takes any more are held from now on. */
  begin(prog: SteerProgram): void {
    setHold(prog, HOLD_SECONDS);
  },
  /** After they stopped: save their tables. Returns false (the caller then detaches) when there is no connection to keep or the file cannot be written. */
  save(prog: SteerProgram, conns: ConnTable[], t: Tables, nh: Int32Array, ports: string[], epochMs: number): boolean {
    const path = tablePath();
    // nothing to keep: stop as a daemon always did, leaving nothing attached
    if (conns.every((c) => Atomics.load(c.header, HDR_LIVE) === 0)) {
      setHold(prog, 0);
      return false;
    }
    try {
      // first, so that a program which would go on forwarding its cached flows is never left
      // (a failure detaches it): it forwards them while the hold lasts, then passes everything
      prog.setFlowHandedOver();
      const n = saveTables(conns, t, nh, ports, epochMs, path);
      for (const p of ports) {
        try {
          prog.markHandOver(Number(readFileSync(`/sys/class/net/${p}/ifindex`, "utf8")));
        } catch {
          // interface gone: nothing to mark
        }
      }
      log("info", `connection table saved for the next start; the steering program stays attached and holds our packets for ${HOLD_SECONDS} s`, {
        connections: n,
        file: path,
        holdSeconds: HOLD_SECONDS,
        remove: `start xvs again (it takes over), or: ${ports.map((p) => `ip link set dev ${p} xdp off`).join("; ")}`,
      });
      return true;
    } catch (e) {
      setHold(prog, 0);
      log("warn", "cannot save the connection table: detaching as usual (a restart starts empty)", {
        file: path,
        error: e instanceof Error ? e.message : String(e),
      });
      return false;
    }
  },
};
