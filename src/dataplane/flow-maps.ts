/**
 * The flow cache's indirection arrays (issue 17): the steering program's `flow_reals` (real
 * servers by dest id), `flow_nexthops` (next-hop MACs by id), `flow_ports` + `flow_tx` (our
 * interfaces by port index) mirrored from the compiled Tables and the shared next-hop table.
 * Flows name real servers and next hops by id (flow-entry.ts), so a weight-0/removed real
 * server, a MAC change or a route change takes effect for every cached flow with one array
 * write, never a walk over flows.
 *
 * `FlowMaps.sync` is called by the dataplane on every Tables generation and whenever the
 * resolver changed next-hop MACs; it keeps the last image it wrote and writes only the entries
 * that changed, in one batch per map (one FFI call each). Control thread, not per packet.
 */
import * as abi from "../ffi/abi.ts";
import { NH_FLAGS, NH_MAC_HI, NH_MAC_LO, NH_PORT, NH_WORDS, NHF_VALID, PORT_IFINDEX, PORT_MAC_HI, PORT_MAC_LO, PORT_WORDS } from "../nexthop/table.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_FWD,
  DEST_MTU,
  DEST_NEXTHOP,
  DEST_TUN,
  DEST_TUN_PORT,
  DEST_TUN_SRC,
  DEST_WORDS,
  DESTF_AVAILABLE,
  DESTF_USED,
  DESTF_V6,
  FWD_TUNNEL,
  type Tables,
} from "../service/tables.ts";

/** The maps written here. */
export type FlowArrayMap = "flow_reals" | "flow_nexthops" | "flow_ports";

/** What FlowMaps needs of the loaded steering program (SteerProgram implements it). */
export interface FlowMapWriter {
  /** Write `n` entries (u32 little-endian keys, values of `valueSize` bytes); returns how many succeeded. */
  arrayUpdate(map: FlowArrayMap, keys: Uint8Array, values: Uint8Array, n: number, valueSize: number): number;
  /** Point port `port` of the `flow_tx` devmap at `ifindex` (0: remove). */
  setTxPort(port: number, ifindex: number): void;
}

/**
 * Path MTU to mirror for a TUN real server: FastPath.tunnelOut uses the MTU learned from ICMP
 * errors (dataplane/icmp.ts PathMtu) when there is one. Return `tablesMtu` when nothing was learned.
 */
export type TunnelMtu = (dest: number, tablesMtu: number) => number;

const REALS = abi.XVS_FLOW_MAX_REALS;
const NEXTHOPS = abi.XVS_FLOW_MAX_NEXTHOPS;
const PORTS = abi.XVS_MAX_IFACES;

/** Fill the `flow_reals` value of dest `d` of `t` at `off` (zeros for an unused dest). */
export function encodeReal(dv: DataView, off: number, t: Tables, d: number, tunMtu?: TunnelMtu): void {
  for (let i = 0; i < abi.XVS_FREAL_SIZE; i += 4) dv.setInt32(off + i, 0);
  const o = d * DEST_WORDS;
  if (o + DEST_WORDS > t.dest.length) return;
  const flags = t.dest[o + DEST_FLAGS];
  if ((flags & DESTF_USED) === 0) return;
  for (let k = 0; k < 4; k++) {
    dv.setInt32(off + abi.XVS_FREAL_ADDR_OFF + 4 * k, t.dest[o + DEST_ADDR + k]);
    dv.setInt32(off + abi.XVS_FREAL_TUN_SRC_OFF + 4 * k, t.dest[o + DEST_TUN_SRC + k]);
  }
  let f = 0;
  if ((flags & DESTF_AVAILABLE) !== 0) f |= abi.XVS_FREAL_F_AVAILABLE;
  if ((flags & DESTF_V6) !== 0) f |= abi.XVS_FREAL_F_V6;
  const fwd = t.dest[o + DEST_FWD];
  dv.setUint8(off + abi.XVS_FREAL_FLAGS_OFF, f);
  dv.setUint8(off + abi.XVS_FREAL_FWD_OFF, fwd);
  dv.setUint8(off + abi.XVS_FREAL_TUN_TYPE_OFF, t.dest[o + DEST_TUN] & 0xff);
  dv.setUint8(off + abi.XVS_FREAL_TUN_CSUM_OFF, (t.dest[o + DEST_TUN] >>> 8) & 0xff);
  dv.setUint16(off + abi.XVS_FREAL_TUN_PORT_OFF, t.dest[o + DEST_TUN_PORT] & 0xffff);
  const mtu = t.dest[o + DEST_MTU];
  dv.setUint32(off + abi.XVS_FREAL_MTU_OFF, Math.max(0, fwd === FWD_TUNNEL && tunMtu ? tunMtu(d, mtu) : mtu), true);
  dv.setInt32(off + abi.XVS_FREAL_NEXTHOP_OFF, t.dest[o + DEST_NEXTHOP], true);
}

/** Fill the `flow_nexthops` value of next hop `id` at `off` (VALID read as the worker reads it). */
export function encodeNexthop(dv: DataView, off: number, nh: Int32Array, id: number): void {
  const o = id * NH_WORDS;
  const valid = o + NH_WORDS <= nh.length && (Atomics.load(nh, o + NH_FLAGS) & NHF_VALID) !== 0;
  if (!valid) {
    dv.setInt32(off, 0);
    dv.setInt32(off + 4, 0);
    return;
  }
  dv.setUint16(off + abi.XVS_FNH_MAC_OFF, nh[o + NH_MAC_HI] & 0xffff);
  dv.setInt32(off + abi.XVS_FNH_MAC_OFF + 2, nh[o + NH_MAC_LO]);
  dv.setUint8(off + abi.XVS_FNH_FLAGS_OFF, abi.XVS_FNH_F_VALID);
  dv.setUint8(off + abi.XVS_FNH_PORT_OFF, nh[o + NH_PORT]);
}

/** Fill the `flow_ports` value of port `p` at `off` (`flags`: XVS_FPORT_F_*, e.g. NO_XDP). */
export function encodePort(dv: DataView, off: number, t: Tables, p: number, flags = 0): void {
  dv.setInt32(off, 0);
  dv.setInt32(off + 4, 0);
  dv.setInt32(off + 8, 0);
  const o = p * PORT_WORDS;
  if (o + PORT_WORDS > t.ports.length) return;
  dv.setUint32(off + abi.XVS_FPORT_IFINDEX_OFF, t.ports[o + PORT_IFINDEX], true);
  dv.setUint16(off + abi.XVS_FPORT_MAC_OFF, t.ports[o + PORT_MAC_HI] & 0xffff);
  dv.setInt32(off + abi.XVS_FPORT_MAC_OFF + 2, t.ports[o + PORT_MAC_LO]);
  dv.setUint8(off + abi.XVS_FPORT_FLAGS_OFF, flags);
}

/** One mirrored array: the image last written and the batch of changed entries. */
class Mirror {
  readonly image: Uint8Array;
  readonly next: Uint8Array;
  readonly ndv: DataView;
  private readonly keys: Uint8Array;
  private readonly kdv: DataView;
  private readonly vals: Uint8Array;
  private written = false;
  constructor(
    readonly map: FlowArrayMap,
    readonly entries: number,
    readonly size: number,
  ) {
    this.image = new Uint8Array(entries * size);
    this.next = new Uint8Array(entries * size);
    this.ndv = new DataView(this.next.buffer);
    this.keys = new Uint8Array(entries * 4);
    this.kdv = new DataView(this.keys.buffer);
    this.vals = new Uint8Array(entries * size);
  }

  /** Write the entries of `next` that differ from the image (all, the first time). Returns how many. */
  flush(w: FlowMapWriter): number {
    let n = 0;
    const s = this.size;
    for (let i = 0; i < this.entries; i++) {
      const o = i * s;
      let same = this.written;
      for (let b = 0; same && b < s; b++) same = this.next[o + b] === this.image[o + b];
      if (same) continue;
      this.kdv.setUint32(n * 4, i, true);
      this.vals.set(this.next.subarray(o, o + s), n * s);
      n++;
    }
    if (n === 0) return 0;
    const ok = w.arrayUpdate(this.map, this.keys, this.vals, n, s);
    if (ok !== n) throw new Error(`flow cache: ${n - ok} of ${n} entries of ${this.map} not written`);
    this.image.set(this.next);
    this.written = true;
    return n;
  }
}

/** The mirror of one steering program's flow arrays. */
export class FlowMaps {
  private readonly reals = new Mirror("flow_reals", REALS, abi.XVS_FREAL_SIZE);
  private readonly nexthops = new Mirror("flow_nexthops", NEXTHOPS, abi.XVS_FNH_SIZE);
  private readonly ports = new Mirror("flow_ports", PORTS, abi.XVS_FPORT_SIZE);
  private readonly txPorts = new Int32Array(PORTS);
  /** XVS_FPORT_F_* per port, set by the control thread (veth-xdp.ts: NO_XDP); kept across generations. */
  private readonly portFlags = new Uint8Array(PORTS);
  private lastTables: Tables | null = null;

  constructor(private readonly w: FlowMapWriter) {}

  /**
   * Mirror generation `t` and the next-hop table `nh` (NextHops' shared Int32Array). Returns
   * the number of entries written. `tunMtu`: learned path MTUs of TUN real servers.
   */
  sync(t: Tables, nh: Int32Array, tunMtu?: TunnelMtu): number {
    const n = this.syncPorts(t) + this.syncReals(t, tunMtu);
    return n + this.syncNexthops(nh);
  }

  /**
   * Mirror only the real servers (with `tunMtu`, the path MTUs learned from ICMP errors: a lower
   * learned MTU must reach XDP before it forwards another packet TS would answer with "too big",
   * so call this when one is learned or expires, not only per generation). Returns the entries written.
   */
  syncReals(t: Tables, tunMtu?: TunnelMtu): number {
    for (let d = 0; d < REALS; d++) encodeReal(this.reals.ndv, d * abi.XVS_FREAL_SIZE, t, d, tunMtu);
    return this.reals.flush(this.w);
  }

  /** Mirror only the next-hop MACs (the resolver changed some). Returns the entries written. */
  syncNexthops(nh: Int32Array): number {
    for (let i = 0; i < NEXTHOPS; i++) encodeNexthop(this.nexthops.ndv, i * abi.XVS_FNH_SIZE, nh, i);
    return this.nexthops.flush(this.w);
  }

  /**
   * Mark port `p` (on) as one whose XDP-sent frames would be lost (a veth whose peer has no
   * NAPI): the program leaves flows out of it to TS (XVS_FLOW_BYPASS_PORT); off: XDP forwards
   * again. Written at once when a generation was mirrored, else with the first. Returns the
   * entries written.
   */
  setNoXdp(p: number, on: boolean): number {
    return this.setPortFlag(p, abi.XVS_FPORT_F_NO_XDP, on);
  }

  /**
   * Port `p` is a veth: frames back out of it go by a redirect to itself rather than XDP_TX
   * (xvs_flow.h xf_transmit says why). Written as setNoXdp is.
   */
  setTxRedirect(p: number, on: boolean): number {
    return this.setPortFlag(p, abi.XVS_FPORT_F_TX_REDIRECT, on);
  }

  private setPortFlag(p: number, flag: number, on: boolean): number {
    if (p < 0 || p >= PORTS) return 0;
    if (on) this.portFlags[p] |= flag;
    else this.portFlags[p] &= ~flag;
    return this.lastTables ? this.syncPorts(this.lastTables) : 0;
  }

  private syncPorts(t: Tables): number {
    this.lastTables = t;
    for (let p = 0; p < PORTS; p++) {
      encodePort(this.ports.ndv, p * abi.XVS_FPORT_SIZE, t, p, this.portFlags[p]);
      const ifindex = p * PORT_WORDS + PORT_WORDS <= t.ports.length ? t.ports[p * PORT_WORDS + PORT_IFINDEX] : 0;
      if (ifindex !== this.txPorts[p]) {
        this.w.setTxPort(p, ifindex);
        this.txPorts[p] = ifindex;
      }
    }
    return this.ports.flush(this.w);
  }
}
