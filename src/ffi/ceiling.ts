/**
 * The in-kernel ceiling of `xvs bench` (native/bpf/xvs_ceiling.bpf.c): a stateless XDP UDP
 * DNAT + redirect, the least an XDP balancer can do per packet. Not used by the daemon.
 */
import { ptr } from "bun:ffi";
import ceilingObjPath from "../../native/out/xvs_ceiling.bpf.o" with { type: "file" };
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { cstr, lastError, lib } from "./lib.ts";

/** struct ceil_cfg's layout (xvs_ceiling.bpf.c): every field little-endian u32 unless named. */
const CFG_VIP_OFF = 0;
const CFG_PORT_OFF = 4;
const CFG_NRS_OFF = 8;
const CFG_RS_OFF = 12;
const CFG_MAX_RS = 8;
const CFG_SRC_MAC_OFF = 44;
const CFG_DST_MAC_OFF = 50;
const CFG_SIZE = 56;

export interface CeilingConfig {
  /** IPv4 addresses as 4 bytes each (network order). */
  vip: Uint8Array;
  port: number;
  realServers: Uint8Array[];
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  /** Interface the rewritten frames leave by. */
  outIfindex: number;
}

function check(rc: number, what: string): number {
  if (rc < 0) throw new LbError(rc === -1 || rc === -13 ? ErrorCode.Permission : ErrorCode.System, `${what}: ${lastError() || `errno ${-rc}`}`);
  return rc;
}

/** Load xvs_ceiling, configure it and attach it (native XDP) to `inIfindex`; the program stays attached after close(). */
export async function attachCeiling(inIfindex: number, inName: string, c: CeilingConfig): Promise<void> {
  if (c.realServers.length === 0 || c.realServers.length > CFG_MAX_RS) throw new LbError(ErrorCode.Invalid, `ceiling: 1..${CFG_MAX_RS} real servers`);
  const bytes = await Bun.file(ceilingObjPath).bytes();
  const h = lib().xvs_bpf__load(bytes, bytes.length, cstr("xvs_ceiling"));
  if (!h) throw new LbError(ErrorCode.Environment, `cannot load the ceiling BPF object: ${lastError()}`);
  try {
    const fd = (name: string) => check(lib().xvs_bpf__fd(h, cstr(name)), `ceiling object: ${name}`);
    const v = new Uint8Array(CFG_SIZE);
    const dv = new DataView(v.buffer);
    v.set(c.vip, CFG_VIP_OFF);
    // the program compares the low 16 bits with udp->dest as loaded (network order)
    dv.setUint16(CFG_PORT_OFF, c.port, false);
    dv.setUint32(CFG_NRS_OFF, c.realServers.length, true);
    c.realServers.forEach((a, i) => {
      v.set(a, CFG_RS_OFF + 4 * i);
    });
    v.set(c.srcMac, CFG_SRC_MAC_OFF);
    v.set(c.dstMac, CFG_DST_MAC_OFF);
    const k = new Uint32Array([0]);
    check(lib().xvs_map__update(fd("ceil_cfg"), ptr(k), ptr(v), 0), "ceiling: configure");
    check(lib().xvs_map__update(fd("ceil_tx"), ptr(k), ptr(new Uint32Array([c.outIfindex])), 0), "ceiling: output interface");
    check(
      lib().xvs_xdp__attach(inIfindex, fd("xvs_ceiling"), abi.XVS_XDP_FLAGS_UPDATE_IF_NOEXIST | abi.XVS_XDP_FLAGS_DRV_MODE),
      `attach xvs_ceiling to ${inName}`,
    );
  } finally {
    lib().xvs_bpf__close(h);
  }
}
