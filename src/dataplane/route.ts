/**
 * Next-hop use on the worker: pick the next hop of a client for NAT replies (once, when its
 * connection is created) and write a next hop's MACs into a frame (every forwarded packet).
 */
import { setDstMac, setSrcMac } from "../wire/eth.ts";
import {
  FIB_NEXTHOP,
  FIB_PORT,
  fibLookup,
  neighLookup,
  NH_FLAGS,
  NH_MAC_HI,
  NH_MAC_LO,
  NH_PORT,
  NH_WORDS,
  NHF_VALID,
  PORT_MAC_HI,
  PORT_MAC_LO,
  PORT_WORDS,
  pushResolve,
} from "../nexthop/table.ts";
import type { Tables } from "../service/tables.ts";

/** Connection next-hop value meaning "no route through our interfaces": replies are dropped. */
export const HOP_NO_ROUTE = -0x7fffffff;

/** The shared next-hop table and the ring of addresses to resolve. */
export class NextHopView {
  readonly nh: Int32Array;
  readonly ring: Int32Array;
  constructor(nhBuffer: SharedArrayBuffer, ringBuffer: SharedArrayBuffer) {
    this.nh = new Int32Array(nhBuffer);
    this.ring = new Int32Array(ringBuffer);
  }

  /**
   * Write next hop `id`'s MAC as destination and its port's MAC as source into the frame at
   * `frame`; returns the port to send on, or -1 while the MAC is unresolved.
   */
  setMacs(dv: DataView, frame: number, id: number, ports: Int32Array): number {
    const o = id * NH_WORDS;
    const nh = this.nh;
    if ((Atomics.load(nh, o + NH_FLAGS) & NHF_VALID) === 0) return -1;
    const port = nh[o + NH_PORT];
    setDstMac(dv, frame, nh[o + NH_MAC_HI], nh[o + NH_MAC_LO]);
    setSrcMac(dv, frame, ports[port * PORT_WORDS + PORT_MAC_HI], ports[port * PORT_WORDS + PORT_MAC_LO]);
    return port;
  }
}

/**
 * Return the next hop for replies to a client address: the gateway of its route, or the client
 * itself on an on-link route when the kernel knows its MAC. Returns -1 - port for an on-link
 * client whose MAC the kernel does not know yet (the caller then uses the frame's source MAC
 * and the resolver is asked to learn it), or HOP_NO_ROUTE.
 */
export function nextHopFor(t: Tables, v: NextHopView, family: number, a0: number, a1: number, a2: number, a3: number): number {
  const row = fibLookup(t.fib, t.fibRows, family, a0, a1, a2, a3);
  if (row < 0) return HOP_NO_ROUTE;
  const gw = t.fib[row + FIB_NEXTHOP];
  if (gw >= 0) return gw;
  const port = t.fib[row + FIB_PORT];
  const nh = neighLookup(t.neigh, port, a0, a1, a2, a3);
  if (nh >= 0 && (Atomics.load(v.nh, nh * NH_WORDS + NH_FLAGS) & NHF_VALID) !== 0) return nh;
  pushResolve(v.ring, port, family, a0, a1, a2, a3);
  return -1 - port;
}
