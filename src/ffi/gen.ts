/**
 * `xvs bench` traffic programs (native/bpf/xvs_gen.bpf.c) and the live-frames generator
 * (native/shim/xvs_gen.c). Not used by the daemon.
 *
 *  - GenObject: the loaded object: configure and run the generator, attach the sink (tc or
 *    XDP) or pass programs to an interface of the current network namespace;
 *  - SinkReader: read a sink's counters by map id from another process (the program stays
 *    attached after the process that attached it exits);
 *  - pinCpu: pin the calling thread.
 */
import { ptr } from "bun:ffi";
import genObjPath from "../../native/out/xvs_gen.bpf.o" with { type: "file" };
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { cstr, lastError, lib } from "./lib.ts";

export type GenProgramName = "xvs_gen" | "xvs_sink" | "xvs_sink_tc" | "xvs_pass";
type GenMapName = "gen_cfg" | "gen_seq" | "sink_cfg" | "sink_stats";

function check(rc: number, what: string): number {
  if (rc < 0) throw new LbError(rc === -1 || rc === -13 ? ErrorCode.Permission : ErrorCode.System, `${what}: ${lastError() || `errno ${-rc}`}`);
  return rc;
}

/** How the generator varies its frame: `flows` flows over consecutive source ports, then addresses. */
export interface GenFlows {
  flows: number;
  portsPerAddr: number;
  portBase: number;
  /** First source address, IPv4 as a number (host order). */
  addrBase: number;
  /** Send one frame in txEvery (even pacing); default 1: all. */
  txEvery?: number;
}

/** The loaded bench object (all three programs and their maps). */
export class GenObject {
  private handle: number | null;

  private constructor(handle: number) {
    this.handle = handle;
  }

  /** Load the embedded object. @throws LbError when the kernel refuses it. */
  static async load(): Promise<GenObject> {
    const bytes = await Bun.file(genObjPath).bytes();
    const h = lib().xvs_bpf__load(bytes, bytes.length, cstr("xvs_gen"));
    if (!h) throw new LbError(ErrorCode.Environment, `cannot load the bench BPF object: ${lastError()}`);
    return new GenObject(h as unknown as number);
  }

  /** File descriptor of a program or map of the object. */
  fd(name: GenProgramName | GenMapName): number {
    return check(lib().xvs_bpf__fd(this.handle as never, cstr(name)), `bench object: ${name}`);
  }

  /** Kernel id of a map (for SinkReader in another process). */
  mapId(name: GenMapName): number {
    return check(lib().xvs_bpf__obj_id(this.fd(name)), `id of map ${name}`);
  }

  /**
   * Set the generator's template headers (the first XVS_GEN_HDR_LEN bytes of `frame`: Ethernet,
   * IPv4 without options, UDP) and how it varies source address and port.
   */
  setTemplate(frame: Uint8Array, f: GenFlows): void {
    if (frame.length < abi.XVS_GEN_HDR_LEN) throw new LbError(ErrorCode.Invalid, "generator frame too short");
    const v = new Uint8Array(abi.XVS_GEN_CFG_SIZE);
    v.set(frame.subarray(0, abi.XVS_GEN_HDR_LEN), abi.XVS_GEN_CFG_HDR_OFF);
    const dv = new DataView(v.buffer);
    dv.setUint32(abi.XVS_GEN_CFG_FLOWS_OFF, f.flows, true);
    dv.setUint32(abi.XVS_GEN_CFG_PORTS_OFF, f.portsPerAddr, true);
    dv.setUint32(abi.XVS_GEN_CFG_PORT_BASE_OFF, f.portBase, true);
    dv.setUint32(abi.XVS_GEN_CFG_ADDR_BASE_OFF, f.addrBase >>> 0, true);
    dv.setUint32(abi.XVS_GEN_CFG_TX_EVERY_OFF, Math.max(1, f.txEvery ?? 1), true);
    this.update("gen_cfg", 0, v);
  }

  /** Frames the generator program decided on and sent, summed over CPUs (since load). */
  counts(): { decided: number; sent: number } {
    const out = new BigUint64Array(1);
    const fd = this.fd("gen_seq");
    const read = (k: number) => {
      // the map's values are u32 per CPU: sum them through a lookup of the raw per-CPU array
      check(lib().xvs_gen__percpu_sum_u32(fd, k, ptr(out)), "read generator counters");
      return Number(out[0]);
    };
    return { decided: read(1), sent: read(2) };
  }

  /** Set the UDP port (and GUE port, 0 for none) the sink counts and drops. */
  setSinkPorts(port: number, tunPort = 0): void {
    this.update("sink_cfg", 0, sinkCfg(port, tunPort, false));
  }

  private update(map: GenMapName, key: number, value: Uint8Array): void {
    const k = new Uint32Array([key]);
    check(lib().xvs_map__update(this.fd(map), ptr(k), ptr(value), 0), `update ${map}`);
  }

  /** Attach the tc sink at the ingress of an interface of this namespace. */
  attachTc(ifindex: number, ifname: string): void {
    check(lib().xvs_gen__tc_attach(ifindex, this.fd("xvs_sink_tc")), `attach xvs_sink_tc to ${ifname}`);
  }

  /** Attach an XDP program to an interface of this namespace (native mode, never replacing another). */
  attach(ifindex: number, ifname: string, prog: "xvs_sink" | "xvs_pass"): void {
    const rc = lib().xvs_xdp__attach(ifindex, this.fd(prog), abi.XVS_XDP_FLAGS_UPDATE_IF_NOEXIST | abi.XVS_XDP_FLAGS_DRV_MODE);
    check(rc, `attach ${prog} to ${ifname}`);
  }

  /**
   * Send `repeat` frames out of `ifindex` (XDP_TX from the generator program), `batch` per
   * kernel batch. Blocks the calling thread until done. Returns false when a signal interrupted
   * the run (an unknown part of the frames was sent).
   * @throws LbError when the kernel refuses (no live-frames support, no XDP on the peer).
   */
  run(ifindex: number, frame: Uint8Array, repeat: number, batch = 64): boolean {
    const rc = lib().xvs_gen__run(this.genFd, ifindex, ptr(frame), frame.length, repeat, batch);
    if (rc === -4 /* EINTR */) return false;
    check(rc, "generator");
    return true;
  }

  private get genFd(): number {
    if (this.genFdCache < 0) this.genFdCache = this.fd("xvs_gen");
    return this.genFdCache;
  }
  private genFdCache = -1;

  close(): void {
    if (this.handle !== null) lib().xvs_bpf__close(this.handle as never);
    this.handle = null;
  }
}

/** Detach whatever XDP program an interface of this namespace has. */
export function detachXdp(ifindex: number): void {
  lib().xvs_xdp__detach(ifindex, -1, abi.XVS_XDP_FLAGS_DRV_MODE);
}

/** A sink_cfg value: the ports the sink counts and drops, and whether it replies to each flow's first packet. */
function sinkCfg(port: number, tunPort: number, replyFirst: boolean): Uint8Array {
  const v = new Uint8Array(abi.XVS_SINK_CFG_SIZE);
  const dv = new DataView(v.buffer);
  dv.setUint32(abi.XVS_SINK_CFG_PORT_OFF, port, true);
  dv.setUint32(abi.XVS_SINK_CFG_TUN_PORT_OFF, tunPort, true);
  dv.setUint32(abi.XVS_SINK_CFG_REPLY_FIRST_OFF, replyFirst ? 1 : 0, true);
  return v;
}

/** Counters of a sink attached by another process, read through the map's id. */
export class SinkReader {
  private fd: number;
  private cfgFd = -1;
  private readonly out = new BigUint64Array(1);

  /** `cfgMapId`: the sink's sink_cfg map, for setReplyFirst (tc sink only). */
  constructor(mapId: number, cfgMapId = 0) {
    this.fd = check(lib().xvs_bpf__map_fd_by_id(mapId), "sink counters");
    if (cfgMapId > 0) this.cfgFd = check(lib().xvs_bpf__map_fd_by_id(cfgMapId), "sink configuration");
  }

  /**
   * Reply to the first packet of each flow (xvs_gen.bpf.c reply_first) or not; `port`, `tunPort`
   * as the sink was attached with. Flows replied to once are remembered while the sink lives.
   */
  setReplyFirst(on: boolean, port: number, tunPort: number): void {
    if (this.cfgFd < 0) throw new LbError(ErrorCode.Invalid, "this sink has no configuration map (reply_first needs the tc sink)");
    const k = new Uint32Array([0]);
    check(lib().xvs_map__update(this.cfgFd, ptr(k), ptr(sinkCfg(port, tunPort, on)), 0), "update sink_cfg");
  }

  /** First packets the sink sent back as replies (reply_first). */
  replied(): number {
    check(lib().xvs_map__sum_percpu_u64(this.fd, abi.XVS_SINK_REPLIED, ptr(this.out)), "read sink counters");
    return Number(this.out[0]);
  }

  /** Packets and bytes counted (and dropped), and packets passed to the kernel. */
  read(): { pkts: number; bytes: number; passed: number } {
    const v = [abi.XVS_SINK_PKTS, abi.XVS_SINK_BYTES, abi.XVS_SINK_PASSED].map((k) => {
      check(lib().xvs_map__sum_percpu_u64(this.fd, k, ptr(this.out)), "read sink counters");
      return Number(this.out[0]);
    });
    return { pkts: v[0], bytes: v[1], passed: v[2] };
  }

  close(): void {
    if (this.fd >= 0) lib().xvs_fd__close(this.fd);
    if (this.cfgFd >= 0) lib().xvs_fd__close(this.cfgFd);
    this.fd = -1;
    this.cfgFd = -1;
  }
}

/** Pin the calling thread to `cpu`. @throws LbError when the CPU does not exist. */
export function pinCpu(cpu: number): void {
  check(lib().xvs_gen__pin_cpu(cpu), `pin to CPU ${cpu}`);
}
