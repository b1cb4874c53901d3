/**
 * The steering program: load it from the embedded object, attach it to interfaces, and keep
 * its maps (which packets are ours) in step with the configuration.
 */
import { ptr } from "bun:ffi";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { steerObjPath } from "./assets.ts";
import { cstr, lastError, lib } from "./lib.ts";

/** Map names in xvs_steer.bpf.c. */
export type SteerMap = "xsks" | "if_slots" | "vips" | "vip_addrs" | "nat_reals" | "local_addrs" | "xdp_stats";

function check(rc: number, what: string): number {
  if (rc < 0) {
    const text = lastError();
    const code = rc === -16 /* EBUSY */ || rc === -17 /* EEXIST */ ? ErrorCode.Busy
      : rc === -1 || rc === -13 ? ErrorCode.Permission
      : ErrorCode.System;
    throw new LbError(code, `${what}: ${text || `errno ${-rc}`}`);
  }
  return rc;
}

/** A loaded steering program and the file descriptors of its maps. */
export class SteerProgram {
  private handle: number | null;
  readonly progFd: number;
  private readonly fds = new Map<SteerMap, number>();

  private constructor(handle: number) {
    this.handle = handle;
    this.progFd = check(lib().xvs_bpf__fd(handle as never, cstr("xvs_steer")), "steering program");
    for (const m of ["xsks", "if_slots", "vips", "vip_addrs", "nat_reals", "local_addrs", "xdp_stats"] as SteerMap[]) {
      this.fds.set(m, check(lib().xvs_bpf__fd(handle as never, cstr(m)), `map ${m}`));
    }
  }

  /**
   * Load the embedded steering object into the kernel.
   * @throws LbError when the kernel refuses it (no BPF, no permission).
   */
  static async load(): Promise<SteerProgram> {
    const bytes = await Bun.file(steerObjPath).bytes();
    const h = lib().xvs_bpf__load(bytes, bytes.length, cstr("xvs_steer"));
    if (!h) {
      const text = lastError();
      const perm = /Operation not permitted|Permission denied/.test(text);
      throw new LbError(perm ? ErrorCode.Permission : ErrorCode.Environment,
        perm ? `cannot load the XDP program: ${text}. Run xvs as root (CAP_BPF, CAP_NET_ADMIN)` : `cannot load the XDP program: ${text}`);
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
    const rc = lib().xvs_xdp__attach(ifindex, this.progFd, abi.XVS_XDP_FLAGS_UPDATE_IF_NOEXIST | abi.XVS_XDP_FLAGS_DRV_MODE);
    if (rc === -16 || rc === -17) {
      throw new LbError(ErrorCode.Busy,
        `${ifname} already has an XDP program (another xvs, or another tool): stop it, or remove it with 'ip link set dev ${ifname} xdp off'`);
    }
    check(rc, `attach XDP to ${ifname}`);
  }

  /** Detach from an interface if our program is still the one attached. */
  detach(ifindex: number): void {
    lib().xvs_xdp__detach(ifindex, this.progFd, abi.XVS_XDP_FLAGS_DRV_MODE);
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

  /** Unload: close the object (attached interfaces must be detached first). */
  close(): void {
    if (this.handle !== null) lib().xvs_bpf__close(this.handle as never);
    this.handle = null;
  }
}
