/**
 * Destination hashing (ip_vs_dh.c): 256 buckets filled round robin over the dest list, one
 * bucket per dest whatever its weight, rebuilt when the dest set changes; the packet's
 * *destination* address (the VIP, or for a fwmark service whatever address was marked) picks
 * a bucket. A bucket whose dest has weight 0 or OVERLOAD refuses the connection (no fallback).
 */
import { FLOW_DST } from "../wire/flow.ts";
import { SVCF_V6, SVC_FLAGS, SVC_WORDS } from "../service/tables.ts";
import { hash32 } from "./sh.ts";
import { tableOff, weightOf, type Scheduler } from "./scheduler.ts";

/** Buckets per service (IP_VS_DH_TAB_SIZE = 1 << 8). */
export const DH_TAB_SIZE = 256;

/** ip_vs_dh_hashkey over the host-order (XOR-folded for IPv6) destination address. */
export function dhHashkey(addrFold: number): number {
  return hash32(addrFold, 8);
}

export const dh: Scheduler = {
  name: "dh",
  tableSize: () => DH_TAB_SIZE,
  buildTable(svc, out, off) {
    const ds = svc.dests;
    for (let i = 0; i < DH_TAB_SIZE; i++) out[off + i] = ds.length === 0 ? -1 : ds[i % ds.length].id;
  },
  init() {},
  update() {},
  schedule(v, svc, flow, row) {
    const t = v.t;
    const addr =
      (t.svc[svc * SVC_WORDS + SVC_FLAGS] & SVCF_V6) !== 0
        ? flow[row + FLOW_DST] ^ flow[row + FLOW_DST + 1] ^ flow[row + FLOW_DST + 2] ^ flow[row + FLOW_DST + 3]
        : flow[row + FLOW_DST];
    const d = t.buckets[tableOff(t, svc) + dhHashkey(addr)];
    if (d < 0 || weightOf(t, d) <= 0 || v.overload[d] !== 0) return -1;
    return d;
  },
};
