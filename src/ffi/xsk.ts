/**
 * AF_XDP port of one worker: the shim owns the rings, TS sees the UMEM as one Uint8Array and
 * exchanges descriptors with the shim through one Uint32Array per burst (XVS_DESC_* layout).
 */
import { ptr, toArrayBuffer, type Pointer } from "bun:ffi";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { cstr, lastError, lib } from "./lib.ts";

/** Geometry of one port's UMEM. */
export interface PortGeometry {
  frames: number;
  frameSize: number;
  headroom: number;
  ringSize: number;
}

/**
 * Return the UMEM geometry for a port with `sockets` sockets (one per interface and rx queue):
 * enough frames to keep every fill and tx ring full at once, so no ring ever waits for the pool.
 * Rings shrink as sockets multiply (2048 entries up to two sockets, halved per doubling, at
 * least 256), so that a worker owning many queues keeps its UMEM near 16-64 MiB rather than
 * 16 MiB per queue; a queue's ring still holds many bursts (XVS_MAX_BURST is 256).
 */
export function defaultGeometry(sockets: number): PortGeometry {
  const n = Math.max(1, sockets);
  let ringSize = abi.XVS_RING_SIZE;
  while (ringSize > 256 && ringSize * n > abi.XVS_RING_SIZE * 2) ringSize >>= 1;
  return { frames: ringSize * 2 * n + abi.XVS_MAX_BURST, frameSize: abi.XVS_FRAME_SIZE, headroom: abi.XVS_FRAME_HEADROOM, ringSize };
}

/** One worker's AF_XDP sockets (one per interface and rx queue it owns) over one shared UMEM. */
export class XskPort {
  private handle: Pointer | null;
  /** The whole UMEM; packets are (offset, length) pairs into it. */
  readonly umem: Uint8Array;
  /** Shim counters, indexed by XVS_SHIM_*. */
  readonly stats: BigUint64Array;
  /** Burst descriptors shared with the shim. */
  readonly descs = new Uint32Array(abi.XVS_MAX_BURST * abi.XVS_DESC_WORDS);
  private readonly descsPtr: Pointer;
  private readonly burstFn: (p: Pointer, d: Pointer, nDone: number, maxRx: number, idleMs: number) => number;

  constructor(geometry: PortGeometry) {
    const l = lib();
    const h = l.xvs_port__create(geometry.frames, geometry.frameSize, geometry.headroom, geometry.ringSize) as Pointer | null;
    if (!h) throw new LbError(ErrorCode.Environment, `cannot create AF_XDP UMEM: ${lastError()}`);
    this.handle = h;
    const size = Number(l.xvs_port__umem_size(h));
    this.umem = new Uint8Array(toArrayBuffer(l.xvs_port__umem(h) as Pointer, 0, size));
    this.stats = new BigUint64Array(toArrayBuffer(l.xvs_port__stats(h) as Pointer, 0, abi.XVS_SHIM_STAT_COUNT * 8));
    this.descsPtr = ptr(this.descs);
    this.burstFn = l.xvs_port__burst as never;
  }

  /**
   * Open a socket on (ifname, queue), register it in the XSKMAP at `slot`, and return the
   * interface's number in this port (the value descriptors carry in XVS_DESC_IN_PORT /
   * XVS_DESC_OUT_PORT): every queue of one interface has the same number, numbers go 0, 1, ...
   * in the order interfaces first appear. A worker may call it between bursts to take a new queue.
   * @throws LbError naming the interface when the kernel refuses the socket.
   */
  addIface(ifname: string, queue: number, bindFlags: number, xskmapFd: number, slot: number): number {
    const rc = lib().xvs_port__add_iface(this.handle!, cstr(ifname), queue, bindFlags, xskmapFd, slot);
    if (rc === -97 /* EAFNOSUPPORT */) {
      throw new LbError(ErrorCode.Environment, `${lastError()}: this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); use a kernel built with it`);
    }
    if (rc < 0) throw new LbError(rc === -16 ? ErrorCode.Busy : ErrorCode.Environment, lastError());
    return rc;
  }

  /** Return true when the socket at `iface` runs in zero-copy mode. */
  zeroCopy(iface: number): boolean {
    return lib().xvs_port__bind_mode(this.handle!, iface) === 1;
  }

  /**
   * Send or recycle the `nDone` descriptors of the previous burst and receive up to `maxRx`
   * new ones into `descs`; with idleMs > 0, sleep up to that long when nothing arrived.
   * Returns the number of received frames (one FFI crossing for all of it).
   */
  burst(nDone: number, maxRx: number, idleMs: number): number {
    return this.burstFn(this.handle!, this.descsPtr, nDone, maxRx, idleMs);
  }

  /**
   * Turn the shim's phase timing on (or off) and return its counters, indexed by XVS_PROF_*
   * (nanoseconds per phase, bursts, frames). Used by `xvs bench` through XVS_PROFILE=1.
   */
  profile(enable: boolean): BigUint64Array {
    const p = lib().xvs_port__profile(this.handle!, enable ? 1 : 0) as Pointer;
    return new BigUint64Array(toArrayBuffer(p, 0, abi.XVS_PROF_COUNT * 8));
  }

  /** Close the sockets and free the UMEM. The views must not be used afterwards. */
  destroy(): void {
    if (this.handle) lib().xvs_port__destroy(this.handle);
    this.handle = null;
  }
}
