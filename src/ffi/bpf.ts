/**
 * The steering program: load it from the embedded object, attach it to interfaces, and keep
 * its maps (which packets are ours) in step with the configuration.
 */
import { ptr } from "bun:ffi";
import { closeSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { log } from "../log.ts";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { decapObjPath, steerObjPath } from "./assets.ts";
import { cstr, lastError, lib } from "./lib.ts";

/** Map names in xvs_steer.bpf.c. */
export type SteerMap =
  | "xsks"
  | "if_slots"
  | "vips"
  | "vip_addrs"
  | "nat_reals"
  | "local_addrs"
  | "xdp_stats"
  | "hold"
  | "steer_cfg"
  // the flow cache (native/bpf/xvs_flow.h)
  | "flows"
  | "flow_reals"
  | "flow_nexthops"
  | "flow_ports"
  | "flow_tx"
  | "flow_cfg"
  | "flow_stats";

const FLOW_MAPS: SteerMap[] = ["flows", "flow_reals", "flow_nexthops", "flow_ports", "flow_tx", "flow_cfg", "flow_stats"];

/** A batch of flow cache entries as SteerProgram.flowUpdate/flowDelete/flowLookup take it (dataplane/flow-entry.ts FlowBatch). */
export interface FlowBatchBuffers {
  keys: Uint8Array;
  values: Uint8Array;
  status: Uint8Array;
  n: number;
}

function check(rc: number, what: string): number {
  if (rc < 0) {
    const text = lastError();
    const code = rc === -16 /* EBUSY */ || rc === -17 /* EEXIST */ ? ErrorCode.Busy : rc === -1 || rc === -13 ? ErrorCode.Permission : ErrorCode.System;
    throw new LbError(code, `${what}: ${text || `errno ${-rc}`}`);
  }
  return rc;
}

// ---- attachments after a crash ----
// `xvs run` records every attachment (kernel program id, tag, pid) in
// /run/xvs/net-<netns inode>/xdp-<ifindex>. Program ids are unique until reboot (and /run does
// not survive one), so a program attached with the recorded id is exactly the one an xvs attached
// here; name and tag could not tell it from the same object loaded by another tool. It is stale
// when no process holds a descriptor of it any more (the daemon was killed: the kernel keeps an
// attached program alive without one); a live holder is a running xvs, which is never replaced.

function attachDir(): string {
  let ns = "default";
  try {
    ns = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/net"))?.[1] ?? "default";
  } catch {
    // no procfs: one directory for all
  }
  return join(process.env.XVS_RUN_DIR ?? "/run/xvs", `net-${ns}`);
}

/** Return the tag of a program we hold (from /proc/self/fdinfo), or "". */
function progTag(fd: number): string {
  try {
    return /^prog_tag:\s*(\S+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1] ?? "";
  } catch {
    return "";
  }
}

function recordAttach(ifindex: number, progId: number, tag: string): void {
  try {
    mkdirSync(attachDir(), { recursive: true, mode: 0o700 });
    writeFileSync(join(attachDir(), `xdp-${ifindex}`), JSON.stringify({ progId, tag, pid: process.pid }) + "\n");
  } catch {
    // best effort: without the record a crash leaves a program only 'ip link set dev IF xdp off' removes
  }
}

function forgetAttach(ifindex: number): void {
  rmSync(join(attachDir(), `xdp-${ifindex}`), { force: true });
}

/** Return the pid of a live process holding a descriptor of BPF program `progId`, or null. */
function progHolder(progId: number): number | null {
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== "anon_inode:bpf-prog") continue;
        const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
        if (m && Number(m[1]) === progId) return Number(pid);
      } catch {
        // the process or descriptor went away meanwhile
      }
    }
  }
  return null;
}

/**
 * The program attached to `ifindex`, when it is one an xvs attached here and no process holds
 * any more; null when it is another tool's. @throws LbError(Busy) when a running xvs holds it.
 */
function staleSteering(ifindex: number, ifname: string): { progId: number; tag: string; pid: number; handOver?: boolean } | null {
  const id = lib().xvs_xdp__query(ifindex, abi.XVS_XDP_FLAGS_DRV_MODE);
  if (id <= 0) return null;
  let rec: { progId: number; tag: string; pid: number; handOver?: boolean };
  try {
    rec = JSON.parse(readFileSync(join(attachDir(), `xdp-${ifindex}`), "utf8"));
  } catch {
    return null;
  }
  if (rec.progId !== id) return null;
  const holder = progHolder(id);
  if (holder !== null) {
    throw new LbError(ErrorCode.Busy, `${ifname} already has an XDP program: the steering program of a running xvs (pid ${holder}): stop that one first`);
  }
  return rec;
}

/**
 * The packets the steering program `progId` (attached, not ours) dropped in hold mode (its
 * `hold` map's count), or -1 when it cannot be read.
 */
function heldBy(progId: number): number {
  const pfd = lib().xvs_bpf__prog_fd_by_id(progId);
  if (pfd < 0) return -1;
  try {
    const ids = new Uint32Array(32);
    const info = new Uint8Array(INFO_SIZE);
    const dv = new DataView(info.buffer);
    dv.setUint32(PROG_INFO_NR_MAP_IDS, ids.length, true);
    dv.setBigUint64(PROG_INFO_MAP_IDS, BigInt(ptr(ids)), true);
    if (lib().xvs_bpf__obj_info(pfd, ptr(info), ptr(new Uint32Array([INFO_SIZE]))) !== 0) return -1;
    const n = Math.min(dv.getUint32(PROG_INFO_NR_MAP_IDS, true), ids.length);
    for (let i = 0; i < n; i++) {
      const mfd = lib().xvs_bpf__map_fd_by_id(ids[i]);
      if (mfd < 0) continue;
      try {
        const minfo = new Uint8Array(INFO_SIZE);
        if (lib().xvs_bpf__obj_info(mfd, ptr(minfo), ptr(new Uint32Array([INFO_SIZE]))) !== 0 || infoName(minfo, MAP_INFO_NAME) !== "hold") continue;
        const v = new BigUint64Array(2);
        return lib().xvs_map__lookup(mfd, ptr(new Uint8Array(4)), ptr(v)) === 0 ? Number(v[1]) : -1;
      } finally {
        closeSync(mfd);
      }
    }
    return -1;
  } finally {
    closeSync(pfd);
  }
}

/** A loaded steering program and the file descriptors of its maps. */
export class SteerProgram {
  private handle: number | null;
  readonly progFd: number;
  private readonly fds = new Map<SteerMap, number>();

  private constructor(handle: number) {
    this.handle = handle;
    this.progFd = check(lib().xvs_bpf__fd(handle as never, cstr("xvs_steer")), "steering program");
    for (const m of ["xsks", "if_slots", "vips", "vip_addrs", "nat_reals", "local_addrs", "xdp_stats", "hold", "steer_cfg", ...FLOW_MAPS] as SteerMap[]) {
      this.fds.set(m, check(lib().xvs_bpf__fd(handle as never, cstr(m)), `map ${m}`));
    }
  }

  /**
   * Load the embedded steering object into the kernel.
   * @throws LbError when the kernel refuses it (no BPF, no permission).
   */
  static async load(opts: { flowEntries?: number } = {}): Promise<SteerProgram> {
    const bytes = await Bun.file(steerObjPath).bytes();
    const h =
      opts.flowEntries !== undefined
        ? lib().xvs_bpf__load_sized(bytes, bytes.length, cstr("xvs_steer"), cstr("flows"), Math.max(1, opts.flowEntries))
        : lib().xvs_bpf__load(bytes, bytes.length, cstr("xvs_steer"));
    if (!h) {
      const text = lastError();
      const perm = /Operation not permitted|Permission denied/.test(text);
      throw new LbError(
        perm ? ErrorCode.Permission : ErrorCode.Environment,
        perm ? `cannot load the XDP program: ${text}. Run xvs as root (CAP_BPF, CAP_NET_ADMIN)` : `cannot load the XDP program: ${text}`,
      );
    }
    return new SteerProgram(h as unknown as number);
  }

  /** Return the file descriptor of one map. */
  fd(map: SteerMap): number {
    return this.fds.get(map)!;
  }

  /**
   * Attach to an interface in native (driver) mode, refusing to replace another program.
   * @throws LbError(Busy) when the interface already has an XDP program.
   */
  attach(ifindex: number, ifname: string): void {
    let rc = lib().xvs_xdp__attach(ifindex, this.progFd, abi.XVS_XDP_FLAGS_UPDATE_IF_NOEXIST | abi.XVS_XDP_FLAGS_DRV_MODE);
    if (rc === -16 || rc === -17) {
      // our own program left attached by an xvs that died without detaching (SIGKILL) is
      // replaced; a running xvs's or another tool's is not
      const stale = staleSteering(ifindex, ifname);
      if (stale === null) {
        throw new LbError(
          ErrorCode.Busy,
          `${ifname} already has an XDP program (another xvs, or another tool): stop it, or remove it with 'ip link set dev ${ifname} xdp off'`,
        );
      }
      // read before the replacement frees it: what the stopped daemon's program held in the gap
      const held = stale.handOver ? heldBy(stale.progId) : -1;
      rc = lib().xvs_xdp__attach(ifindex, this.progFd, abi.XVS_XDP_FLAGS_DRV_MODE);
      if (rc >= 0)
        log(
          stale.handOver ? "info" : "warn",
          // a stopped xvs leaves it on purpose, in hold mode, for this start (dataplane/restart.ts)
          stale.handOver ? "took over the steering program the stopped xvs left in hold mode" : "replaced the steering program a killed xvs left attached",
          {
            iface: ifname,
            staleProgId: stale.progId,
            stalePid: stale.pid,
            sameBuild: stale.tag === progTag(this.progFd),
            ...(stale.handOver ? { heldInGap: held } : {}),
          },
        );
    }
    check(rc, `attach XDP to ${ifname}`);
    recordAttach(ifindex, lib().xvs_xdp__query(ifindex, abi.XVS_XDP_FLAGS_DRV_MODE), progTag(this.progFd));
  }

  /** Record that this program stays attached to `ifindex` on purpose, for the next start (a restart's hand-over). */
  markHandOver(ifindex: number): void {
    try {
      const path = join(attachDir(), `xdp-${ifindex}`);
      writeFileSync(path, `${JSON.stringify({ ...JSON.parse(readFileSync(path, "utf8")), handOver: true })}\n`);
    } catch {
      // no record: the next start then says it replaced a killed xvs's program
    }
  }

  /** Detach from an interface if our program is still the one attached. */
  detach(ifindex: number): void {
    if (lib().xvs_xdp__detach(ifindex, this.progFd, abi.XVS_XDP_FLAGS_DRV_MODE) >= 0) forgetAttach(ifindex);
  }

  /** Write one map entry (key and value as raw bytes). */
  update(map: SteerMap, key: Uint8Array, value: Uint8Array): void {
    check(lib().xvs_map__update(this.fd(map), ptr(key), ptr(value), 0), `update map ${map}`);
  }

  /** Delete one map entry; a missing key is not an error. */
  delete(map: SteerMap, key: Uint8Array): void {
    lib().xvs_map__delete(this.fd(map), ptr(key));
  }

  /** Remove every entry of a hash map. */
  clear(map: SteerMap, keySize: number): void {
    check(lib().xvs_map__clear(this.fd(map), keySize), `clear map ${map}`);
  }

  /**
   * Hold mode (xvs_steer.bpf.c `hold`, restarts: src/dataplane/restart.ts): until `untilNs`
   * (CLOCK_BOOTTIME ns; 0 ends it) owned packets with no socket on their queue are dropped, not
   * passed. The drop count starts again from 0.
   */
  setHold(untilNs: bigint): void {
    const v = new BigUint64Array([untilNs, 0n]);
    this.update("hold", new Uint8Array(4), new Uint8Array(v.buffer));
  }

  /** Return the packets hold mode dropped so far. */
  holdDrops(): number {
    const v = new BigUint64Array(2);
    check(lib().xvs_map__lookup(this.fd("hold"), ptr(new Uint8Array(4)), ptr(v)), "read map hold");
    return Number(v[1]);
  }

  /**
   * backup_only (xvs_steer.bpf.c `steer_cfg`, src/control/backup-only.ts): while on, every packet
   * to a virtual address is passed to the kernel, not balanced. The pass count is kept.
   */
  setBackupOnly(on: boolean): void {
    const v = new BigUint64Array(2);
    check(lib().xvs_map__lookup(this.fd("steer_cfg"), ptr(new Uint8Array(4)), ptr(v)), "read map steer_cfg");
    new Uint32Array(v.buffer)[0] = on ? 1 : 0;
    this.update("steer_cfg", new Uint8Array(4), new Uint8Array(v.buffer));
  }

  /** Return the packets backup_only passed to the kernel since the program was loaded. */
  backupOnlyPassed(): number {
    const v = new BigUint64Array(2);
    check(lib().xvs_map__lookup(this.fd("steer_cfg"), ptr(new Uint8Array(4)), ptr(v)), "read map steer_cfg");
    return Number(v[1]);
  }

  /** Return the XDP program's counters summed over CPUs, indexed by XVS_XDP_* constants. */
  stats(): number[] {
    const out = new BigUint64Array(1);
    const res: number[] = [];
    for (let i = 0; i < abi.XVS_XDP_STAT_COUNT; i++) {
      check(lib().xvs_map__sum_percpu_u64(this.fd("xdp_stats"), i, ptr(out)), "read XDP counters");
      res.push(Number(out[0]));
    }
    return res;
  }

  // ---- the flow cache (dataplane/flow-entry.ts, flow-maps.ts); one FFI call per batch ----

  /** Turn the program's flow lookups on or off (off: not a single lookup per packet). */
  setFlowCache(enabled: boolean): void {
    this.setFlowCfg(enabled ? abi.XVS_FLOW_CFG_ON : 0);
  }

  /**
   * A stop that leaves the program attached (dataplane/restart.ts handOver): its cached flows
   * are forwarded while hold mode lasts, then the program passes every packet without a lookup
   * (nobody updates those flows any more). A new daemon loads its own program and maps.
   */
  setFlowHandedOver(): void {
    this.setFlowCfg(abi.XVS_FLOW_CFG_HANDED_OVER);
  }

  private setFlowCfg(value: number): void {
    const key = new Uint32Array([abi.XVS_FLOW_CFG_ENABLED]);
    const val = new Uint32Array([value]);
    check(lib().xvs_map__update(this.fd("flow_cfg"), ptr(key), ptr(val), 0), "update map flow_cfg");
  }

  /**
   * Write `b.n` flow entries (keys and values); b.status[i] gets 0 or the errno of entry i
   * (E2BIG 7: the map is full, the flow stays on the AF_XDP path). Returns how many were written.
   */
  flowUpdate(b: FlowBatchBuffers): number {
    if (b.n === 0) return 0;
    return check(
      lib().xvs_map__update_batch(this.fd("flows"), ptr(b.keys), ptr(b.values), b.n, abi.XVS_FLOW_KEY_SIZE, abi.XVS_FLOW_VALUE_SIZE, 0, ptr(b.status)),
      "update flows",
    );
  }

  /** Delete `b.n` flow keys; a missing key gets status ENOENT (2) and is not an error. Returns how many were deleted. */
  flowDelete(b: FlowBatchBuffers): number {
    if (b.n === 0) return 0;
    return check(lib().xvs_map__delete_batch(this.fd("flows"), ptr(b.keys), b.n, abi.XVS_FLOW_KEY_SIZE, ptr(b.status)), "delete flows");
  }

  /** Read the values (counters, last use) of `b.n` flow keys into b.values; status ENOENT for a missing one. Returns how many were found. */
  flowLookup(b: FlowBatchBuffers): number {
    if (b.n === 0) return 0;
    return check(
      lib().xvs_map__lookup_keys(this.fd("flows"), ptr(b.keys), ptr(b.values), b.n, abi.XVS_FLOW_KEY_SIZE, abi.XVS_FLOW_VALUE_SIZE, ptr(b.status)),
      "lookup flows",
    );
  }

  /**
   * Walk every flow entry in batches of up to `capacity` (keys and values into `b`, b.n set),
   * calling `visit` after each batch. Control thread (counter folding, expiry).
   */
  flowDump(b: FlowBatchBuffers, capacity: number, visit: (b: FlowBatchBuffers) => void): void {
    const cursor = new Uint8Array(Math.max(8, abi.XVS_FLOW_KEY_SIZE));
    const done = new Uint32Array(1);
    let first = 1;
    while (done[0] === 0) {
      const n = check(lib().xvs_map__dump_batch(this.fd("flows"), ptr(cursor), first, ptr(b.keys), ptr(b.values), capacity, ptr(done)), "walk flows");
      first = 0;
      b.n = n;
      if (n > 0) visit(b);
      if (n === 0) break;
    }
  }

  /** Write entries of one of the flow arrays (keys u32 little-endian). Returns how many were written. */
  arrayUpdate(map: "flow_reals" | "flow_nexthops" | "flow_ports", keys: Uint8Array, values: Uint8Array, n: number, valueSize: number): number {
    const status = new Uint8Array(n);
    return check(lib().xvs_map__update_batch(this.fd(map), ptr(keys), ptr(values), n, 4, valueSize, 0, ptr(status)), `update map ${map}`);
  }

  /** Point port index `port` of the `flow_tx` devmap at `ifindex` (0: remove it). */
  setTxPort(port: number, ifindex: number): void {
    const key = new Uint32Array([port]);
    if (ifindex === 0) {
      lib().xvs_map__delete(this.fd("flow_tx"), ptr(key));
      return;
    }
    check(lib().xvs_map__update(this.fd("flow_tx"), ptr(key), ptr(new Uint32Array([ifindex])), 0), `update map flow_tx`);
  }

  /** Return the flow stage's counters summed over CPUs, indexed by XVS_FLOW_* (FWD, MISS, BYPASS_*). */
  flowStats(): number[] {
    const out = new BigUint64Array(1);
    const res: number[] = [];
    for (let i = 0; i < abi.XVS_FLOW_STAT_COUNT; i++) {
      check(lib().xvs_map__sum_percpu_u64(this.fd("flow_stats"), i, ptr(out)), "read flow cache counters");
      res.push(Number(out[0]));
    }
    return res;
  }

  /** Unload: close the object (attached interfaces must be detached first). */
  close(): void {
    if (this.handle !== null) lib().xvs_bpf__close(this.handle as never);
    this.handle = null;
  }
}

/** Scratch for flowClockNs (control thread). */
const clockOut = new BigUint64Array(1);

/**
 * Return CLOCK_BOOTTIME in ns: the clock of a flow entry's last_ns (the steering program's
 * bpf_ktime_get_boot_ns), so that expiry can tell how long a cached flow has been idle.
 */
export function flowClockNs(): number {
  check(lib().xvs_clock__boottime(ptr(clockOut)), "read CLOCK_BOOTTIME");
  return Number(clockOut[0]);
}

// ---- BPF_PROG_TEST_RUN (tests only) ----

/** What one BPF_PROG_TEST_RUN of an XDP program returned. */
export interface XdpTestRun {
  /** The program's verdict (XDP_ABORTED 0, DROP 1, PASS 2, TX 3, REDIRECT 4). */
  retval: number;
  /** The frame as the program left it. */
  frame: Uint8Array;
}

/** struct xdp_md as BPF_PROG_TEST_RUN takes it: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex. */
const XDP_MD_WORDS = 6;

/**
 * Run the loaded XDP program `progFd` once over a copy of `frame` (BPF_PROG_TEST_RUN, non-live:
 * a redirect is decided, not carried out), as if received on rx queue `rxQueue` of `ifindex`
 * (an interface of the caller's network namespace; 0: the kernel's default, loopback queue 0).
 * @throws LbError with the kernel's errno text (EINVAL for frames shorter than an Ethernet header).
 */
export function progTestRun(progFd: number, frame: Uint8Array, ifindex = 0, rxQueue = 0): XdpTestRun {
  const ctx = new Uint32Array(XDP_MD_WORDS);
  ctx[1] = frame.length; // data_end must equal the frame's length, data and data_meta 0
  ctx[3] = ifindex;
  ctx[4] = rxQueue;
  const out = new Uint8Array(Math.max(frame.length, 1) + 256);
  const result = new Uint32Array(2);
  const data = frame.length > 0 ? frame : new Uint8Array(1);
  check(lib().xvs_bpf__test_run(progFd, ptr(data), frame.length, ptr(ctx), ctx.byteLength, ptr(out), out.length, ptr(result)), "BPF_PROG_TEST_RUN");
  return { retval: result[0], frame: out.slice(0, Math.min(result[1], out.length)) };
}

// ---- the real-server decap helper (native/bpf/xvs_decap.bpf.c) ----

/** Name of the decap program, in the object and in the kernel (program names keep 15 characters). */
export const DECAP_PROG_NAME = "xvs_decap";

/** struct bpf_prog_info / bpf_map_info offsets (linux/bpf.h) of the fields read here. */
const PROG_INFO_NR_MAP_IDS = 52,
  PROG_INFO_MAP_IDS = 56,
  PROG_INFO_NAME = 64,
  MAP_INFO_NAME = 24,
  INFO_SIZE = 256;

function infoName(b: Uint8Array, off: number): string {
  let end = off;
  while (end < off + 16 && b[end] !== 0) end++;
  return Buffer.from(b.subarray(off, end)).toString();
}

/** An XDP program found attached to an interface. */
export interface AttachedDecap {
  progId: number;
  /** "native" (driver) or "generic" (skb) XDP. */
  mode: "native" | "generic";
}

function modeFlags(mode: "native" | "generic"): number {
  return mode === "native" ? abi.XVS_XDP_FLAGS_DRV_MODE : abi.XVS_XDP_FLAGS_SKB_MODE;
}

/** Load, attach, find, read and detach the decap program; each call is a short-lived slow path. */
export const DecapProgram = {
  /**
   * Load the embedded decap object, fill its GUE ports and attach it to `ifindex` (native XDP,
   * or generic when the driver has none and `mode` allows). The attachment outlives this process.
   * @throws LbError(Busy) when the interface already has an XDP program.
   */
  async attach(ifindex: number, ifname: string, guePorts: number[], mode: "auto" | "native" | "generic"): Promise<AttachedDecap> {
    const bytes = await Bun.file(decapObjPath).bytes();
    const h = lib().xvs_bpf__load(bytes, bytes.length, cstr(DECAP_PROG_NAME));
    if (!h) {
      const text = lastError();
      const perm = /Operation not permitted|Permission denied/.test(text);
      throw new LbError(
        perm ? ErrorCode.Permission : ErrorCode.Environment,
        perm ? `cannot load the decap program: ${text}. Run xvs as root (CAP_BPF, CAP_NET_ADMIN)` : `cannot load the decap program: ${text}`,
      );
    }
    try {
      const progFd = check(lib().xvs_bpf__fd(h, cstr(DECAP_PROG_NAME)), "decap program");
      const portsFd = check(lib().xvs_bpf__fd(h, cstr("gue_ports")), "map gue_ports");
      const one = new Uint8Array(4);
      one[0] = 1;
      for (const p of guePorts) {
        const key = new Uint8Array([(p >>> 8) & 0xff, p & 0xff]); // network order, as the packet has it
        check(lib().xvs_map__update(portsFd, ptr(key), ptr(one), 0), "add a GUE port");
      }
      const tries: ("native" | "generic")[] = mode === "auto" ? ["native", "generic"] : [mode];
      let rc = 0;
      for (const m of tries) {
        rc = lib().xvs_xdp__attach(ifindex, progFd, abi.XVS_XDP_FLAGS_UPDATE_IF_NOEXIST | modeFlags(m));
        if (rc === -16 || rc === -17) {
          throw new LbError(
            ErrorCode.Busy,
            `${ifname} already has an XDP program: 'xvs decap detach ${ifname}' if it is the decap helper, else 'ip link set dev ${ifname} xdp off'`,
          );
        }
        if (rc >= 0) {
          const id = lib().xvs_xdp__query(ifindex, modeFlags(m));
          return { progId: id > 0 ? id : 0, mode: m };
        }
      }
      throw new LbError(ErrorCode.System, `attach the decap program to ${ifname}: ${lastError() || `errno ${-rc}`}`);
    } finally {
      // the kernel keeps the attached program (and its maps) alive without our descriptors
      lib().xvs_bpf__close(h);
    }
  },

  /** Return the decap program attached to `ifindex`, or null when there is none (or another program). */
  find(ifindex: number): AttachedDecap | null {
    for (const mode of ["native", "generic"] as const) {
      const id = lib().xvs_xdp__query(ifindex, modeFlags(mode));
      if (id <= 0) continue;
      const fd = lib().xvs_bpf__prog_fd_by_id(id);
      if (fd < 0) continue;
      try {
        const info = new Uint8Array(INFO_SIZE);
        const len = new Uint32Array([INFO_SIZE]);
        if (lib().xvs_bpf__obj_info(fd, ptr(info), ptr(len)) === 0 && infoName(info, PROG_INFO_NAME) === DECAP_PROG_NAME) {
          return { progId: id, mode };
        }
      } finally {
        closeSync(fd);
      }
    }
    return null;
  },

  /**
   * Detach the decap program from `ifindex` (only if it is still the one attached).
   * @throws LbError(NotExist) when the interface has no decap program.
   */
  detach(ifindex: number, ifname: string): void {
    const a = DecapProgram.find(ifindex);
    if (!a) throw new LbError(ErrorCode.NotExist, `${ifname} has no xvs decap program attached`);
    const fd = lib().xvs_bpf__prog_fd_by_id(a.progId);
    if (fd < 0) throw new LbError(ErrorCode.NotExist, `${ifname}: the decap program went away`);
    try {
      check(lib().xvs_xdp__detach(ifindex, fd, modeFlags(a.mode)), `detach the decap program from ${ifname}`);
    } finally {
      closeSync(fd);
    }
  },

  /**
   * Return the counters of the decap program on `ifindex` (indexed by XVS_DECAP_*, summed over
   * CPUs). @throws LbError(NotExist) when none is attached.
   */
  stats(ifindex: number, ifname: string): number[] {
    const a = DecapProgram.find(ifindex);
    if (!a) throw new LbError(ErrorCode.NotExist, `${ifname} has no xvs decap program attached`);
    const pfd = lib().xvs_bpf__prog_fd_by_id(a.progId);
    if (pfd < 0) throw new LbError(ErrorCode.NotExist, `${ifname}: the decap program went away`);
    let statsFd = -1;
    try {
      const ids = new Uint32Array(8);
      const info = new Uint8Array(INFO_SIZE);
      const dv = new DataView(info.buffer);
      dv.setUint32(PROG_INFO_NR_MAP_IDS, ids.length, true);
      dv.setBigUint64(PROG_INFO_MAP_IDS, BigInt(ptr(ids)), true);
      const len = new Uint32Array([INFO_SIZE]);
      check(lib().xvs_bpf__obj_info(pfd, ptr(info), ptr(len)), "read the decap program's info");
      const n = Math.min(dv.getUint32(PROG_INFO_NR_MAP_IDS, true), ids.length);
      for (let i = 0; i < n && statsFd < 0; i++) {
        const mfd = lib().xvs_bpf__map_fd_by_id(ids[i]);
        if (mfd < 0) continue;
        const minfo = new Uint8Array(INFO_SIZE);
        const mlen = new Uint32Array([INFO_SIZE]);
        if (lib().xvs_bpf__obj_info(mfd, ptr(minfo), ptr(mlen)) === 0 && infoName(minfo, MAP_INFO_NAME) === "decap_stats") statsFd = mfd;
        else closeSync(mfd);
      }
      if (statsFd < 0) throw new LbError(ErrorCode.System, `${ifname}: the decap program has no counters map`);
      const out = new BigUint64Array(1);
      const res: number[] = [];
      for (let i = 0; i < abi.XVS_DECAP_STAT_COUNT; i++) {
        check(lib().xvs_map__sum_percpu_u64(statsFd, i, ptr(out)), "read the decap counters");
        res.push(Number(out[0]));
      }
      return res;
    } finally {
      closeSync(pfd);
      if (statsFd >= 0) closeSync(statsFd);
    }
  },
};
