/**
 * ethtool through the shim (native/shim/xvs_ethtool.c): an interface's driver name, as
 * `ethtool -i` gives it, and its driver statistics, as `ethtool -S` lists them. Control thread
 * only (housekeeping), one ioctl round trip per call, never per packet.
 */
import { ptr } from "bun:ffi";
import { ErrorCode, LbError } from "../errors.ts";
import { cstr, lastError, lib } from "./lib.ts";

/** ETH_GSTRING_LEN: every statistic's name takes this many bytes. */
const GSTRING_LEN = 32;
/** Room for this many statistics (a veth has ~20 per queue; 64 queues at most here). */
const MAX_STATS = 2048;

/** Return the interface's driver name ("veth", "virtio_net", ...). @throws LbError when ethtool fails. */
export function ethtoolDriver(ifname: string): string {
  const out = new Uint8Array(64);
  const n = lib().xvs_ethtool__driver(cstr(ifname), ptr(out), out.length);
  if (n < 0) throw new LbError(ErrorCode.Environment, lastError());
  return new TextDecoder().decode(out.subarray(0, n));
}

/** Return the interface's driver statistics by name. @throws LbError when ethtool fails. */
export function ethtoolStats(ifname: string): Map<string, number> {
  const names = new Uint8Array(MAX_STATS * GSTRING_LEN);
  const values = new BigUint64Array(MAX_STATS);
  const n = lib().xvs_ethtool__stats(cstr(ifname), ptr(names), ptr(values), MAX_STATS);
  if (n < 0) throw new LbError(ErrorCode.Environment, lastError());
  const dec = new TextDecoder();
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = names.subarray(i * GSTRING_LEN, (i + 1) * GSTRING_LEN);
    const end = s.indexOf(0);
    m.set(dec.decode(end < 0 ? s : s.subarray(0, end)), Number(values[i]));
  }
  return m;
}

/** NETDEV_XDP_ACT_NDO_XMIT (linux/netdev.h): frames redirected into the interface are taken. */
export const XDP_ACT_NDO_XMIT = 4;

/** Return the interface's XDP features (NETDEV_XDP_ACT_* bits, generic netlink "netdev"). @throws LbError */
export function xdpFeatures(ifindex: number): number {
  const out = new BigUint64Array(1);
  const rc = lib().xvs_netdev__xdp_features(ifindex, ptr(out));
  if (rc < 0) throw new LbError(ErrorCode.Environment, lastError());
  return Number(out[0] & 0xffffffffn);
}
