/**
 * Flow cache entries (issue 17): the key and value bytes of the steering program's `flows` map
 * for one direction of a connection record (conn/table.ts), as native/bpf/xvs_flow.h reads them
 * (layout: XVS_FLOW_* in xvs_common.h). The fast path stays the authority: it decides when a
 * connection may be cached and calls these; the XDP program then forwards the connection's
 * packets itself, byte for byte as FastPath.transmitIn (DIR_IN) and FastPath.reply (DIR_OUT)
 * would, and leaves every packet it cannot do exactly the same to TS.
 *
 * What an entry carries and why:
 * - the key is the packet's own tuple as it arrives (client -> VIP:vport for DIR_IN; for NAT
 *   replies real server:rport -> client), the same tuple ConnTable looks up;
 * - the real server by id (`dest`): its address, method, tunnel, MTU, next hop and availability
 *   are in `flow_reals`, mirrored by flow-maps.ts, so control-plane changes need no walk over flows;
 * - DIR_IN NAT: the real server's port (CONN_DPORT: it differs per connection for port-0 services);
 * - DIR_IN TUN: the GUE source port, udp_flow_src_port over the connection's flow hash
 *   (xmit/tun.ts flowSourcePort of hashFlow with the table's seed): XDP cannot compute JS's hash;
 * - DIR_OUT: the virtual address and port replies get as source, and the client's next hop
 *   (CONN_NEXTHOP: a next-hop id, or a port and the MAC the client's frames came from);
 * - counters (packets, IP bytes) and the time of the last forwarded packet, kept by XDP and
 *   zero here: writing an entry again resets them, so fold before rewriting.
 *
 * Runs on the worker when a connection gets cached (not per packet): no allocation per call
 * beyond what the caller's batch holds.
 */
import * as abi from "../ffi/abi.ts";
import {
  CF_FWD_MASK,
  CF_OUT_ENTRY,
  CF_TEMPLATE,
  CF_USED,
  CF_V6,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DEST,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_MAC_HI,
  CONN_MAC_LO,
  CONN_NEXTHOP,
  CONN_PROTO_STATE,
  CONN_SVC,
  CONN_VADDR,
  CONN_WORDS,
  type ConnTable,
  DIR_IN,
  DIR_OUT,
} from "../conn/table.ts";
import { HOP_NO_ROUTE } from "./route.ts";
import { FWD_MASQ, FWD_ROUTE, FWD_TUNNEL, SVC_FLAGS, SVC_WORDS, SVCF_ONEPACKET, SVCF_USED, type Tables } from "../service/tables.ts";
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from "../wire/fields.ts";
import { hashTuple } from "../wire/flow.ts";
import { flowSourcePort } from "../xmit/tun.ts";

export const FLOW_KEY_SIZE = abi.XVS_FLOW_KEY_SIZE;
export const FLOW_VALUE_SIZE = abi.XVS_FLOW_VALUE_SIZE;
export const FLOW_DIR_IN = abi.XVS_FLOW_DIR_IN;
export const FLOW_DIR_OUT = abi.XVS_FLOW_DIR_OUT;

/** Why a connection direction cannot be cached (0: it can). */
export const enum FlowRefusal {
  Ok = 0,
  /** Not a live connection record (free, or a persistence template). */
  NotConnection = 1,
  /** Protocol other than TCP, UDP, SCTP. */
  Protocol = 2,
  /** Forwarding method XDP does not do (local), or DIR_OUT of a non-NAT connection. */
  Method = 3,
  /** NAT reply with no route to the client (HOP_NO_ROUTE: TS drops those). */
  NoRoute = 4,
  /** SCTP NAT changing a port: the CRC32c would need recomputing over the whole packet. */
  SctpPort = 5,
  /** One-packet scheduling: no connection outlives its packet. */
  OnePacket = 6,
}

/**
 * Return whether direction `dir` (DIR_IN / DIR_OUT of conn/table.ts) of connection `id` may be
 * cached at all, by what does not change while it lives (the XDP program checks the rest per
 * packet: TCP flags, TTL, MTU, availability, next-hop resolution, malformed headers).
 */
export function flowRefusal(rec: Int32Array, id: number, dir: number, t: Tables): FlowRefusal {
  const o = id * CONN_WORDS;
  const flags = rec[o + CONN_FLAGS];
  if ((flags & CF_USED) === 0 || (flags & CF_TEMPLATE) !== 0) return FlowRefusal.NotConnection;
  const proto = (rec[o + CONN_PROTO_STATE] >>> 8) & 0xff;
  if (proto !== PROTO_TCP && proto !== PROTO_UDP && proto !== PROTO_SCTP) return FlowRefusal.Protocol;
  const svc = rec[o + CONN_SVC];
  const sf = t.svc[svc * SVC_WORDS + SVC_FLAGS];
  if ((sf & SVCF_USED) !== 0 && (sf & SVCF_ONEPACKET) !== 0) return FlowRefusal.OnePacket;
  const fwd = flags & CF_FWD_MASK;
  if (dir === DIR_OUT) {
    if (fwd !== FWD_MASQ || (flags & CF_OUT_ENTRY) === 0) return FlowRefusal.Method;
    if (rec[o + CONN_NEXTHOP] === HOP_NO_ROUTE) return FlowRefusal.NoRoute;
  } else if (fwd !== FWD_MASQ && fwd !== FWD_ROUTE && fwd !== FWD_TUNNEL) {
    return FlowRefusal.Method;
  }
  if (proto === PROTO_SCTP && fwd === FWD_MASQ && (rec[o + CONN_DPORT] & 0xffff) !== (rec[o + CONN_CPORT_VPORT] & 0xffff)) return FlowRefusal.SctpPort;
  return FlowRefusal.Ok;
}

function put4(dv: DataView, off: number, rec: Int32Array, at: number): void {
  dv.setInt32(off, rec[at]);
  dv.setInt32(off + 4, rec[at + 1]);
  dv.setInt32(off + 8, rec[at + 2]);
  dv.setInt32(off + 12, rec[at + 3]);
}

/**
 * Write the `flows` key of direction `dir` of connection `id` at `off` of `dv`
 * (FLOW_KEY_SIZE bytes): the tuple of the packets of that direction as they arrive.
 */
export function writeFlowKey(dv: DataView, off: number, rec: Int32Array, id: number, dir: number): void {
  const o = id * CONN_WORDS;
  const flags = rec[o + CONN_FLAGS];
  const cv = rec[o + CONN_CPORT_VPORT];
  if (dir === DIR_IN) {
    put4(dv, off + abi.XVS_FLOW_KEY_SADDR_OFF, rec, o + CONN_CADDR);
    put4(dv, off + abi.XVS_FLOW_KEY_DADDR_OFF, rec, o + CONN_VADDR);
    dv.setUint16(off + abi.XVS_FLOW_KEY_SPORT_OFF, cv >>> 16);
    dv.setUint16(off + abi.XVS_FLOW_KEY_DPORT_OFF, cv & 0xffff);
  } else {
    put4(dv, off + abi.XVS_FLOW_KEY_SADDR_OFF, rec, o + CONN_DADDR);
    put4(dv, off + abi.XVS_FLOW_KEY_DADDR_OFF, rec, o + CONN_CADDR);
    dv.setUint16(off + abi.XVS_FLOW_KEY_SPORT_OFF, rec[o + CONN_DPORT] & 0xffff);
    dv.setUint16(off + abi.XVS_FLOW_KEY_DPORT_OFF, cv >>> 16);
  }
  dv.setUint8(off + abi.XVS_FLOW_KEY_PROTO_OFF, (rec[o + CONN_PROTO_STATE] >>> 8) & 0xff);
  dv.setUint8(off + abi.XVS_FLOW_KEY_FAMILY_OFF, (flags & CF_V6) !== 0 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4);
  dv.setUint16(off + abi.XVS_FLOW_KEY_FAMILY_OFF + 1, 0);
}

/**
 * Write the `flows` value of direction `dir` of connection `id` at `off` of `dv`
 * (FLOW_VALUE_SIZE bytes, counters zero). `seed` is the connection table's seedConn (the GUE
 * source port is derived from the flow hash as the fast path does), `worker` the table's owner.
 * The caller has checked flowRefusal().
 */
export function writeFlowValue(dv: DataView, off: number, rec: Int32Array, id: number, dir: number, seed: number, worker: number): void {
  const o = id * CONN_WORDS;
  const cv = rec[o + CONN_CPORT_VPORT];
  const proto = (rec[o + CONN_PROTO_STATE] >>> 8) & 0xff;
  for (let i = 0; i < FLOW_VALUE_SIZE; i += 4) dv.setInt32(off + i, 0);
  dv.setUint32(off + abi.XVS_FLOW_DEST_OFF, rec[o + CONN_DEST], true);
  dv.setInt32(off + abi.XVS_FLOW_HOP_OFF, -1, true);
  dv.setUint32(off + abi.XVS_FLOW_CONN_OFF, id, true);
  dv.setUint16(off + abi.XVS_FLOW_WORKER_OFF, worker, true);
  // the connection's own method (IPVS binds it at creation: a later edit of the dest does not change it)
  dv.setUint8(off + abi.XVS_FLOW_FWD_OFF, rec[o + CONN_FLAGS] & CF_FWD_MASK);
  if (dir === DIR_IN) {
    dv.setUint8(off + abi.XVS_FLOW_DIR_OFF, FLOW_DIR_IN);
    dv.setUint16(off + abi.XVS_FLOW_RPORT_OFF, rec[o + CONN_DPORT] & 0xffff);
    // FastPath.tunnelOut: flowSourcePort(this.hashes[pkt]), the client packet's hashFlow
    const hash = hashTuple(
      seed,
      rec[o + CONN_CADDR],
      rec[o + CONN_CADDR + 1],
      rec[o + CONN_CADDR + 2],
      rec[o + CONN_CADDR + 3],
      rec[o + CONN_VADDR],
      rec[o + CONN_VADDR + 1],
      rec[o + CONN_VADDR + 2],
      rec[o + CONN_VADDR + 3],
      cv,
      proto,
    );
    dv.setUint16(off + abi.XVS_FLOW_TUN_SPORT_OFF, flowSourcePort(hash));
    return;
  }
  dv.setUint8(off + abi.XVS_FLOW_DIR_OFF, FLOW_DIR_OUT);
  put4(dv, off + abi.XVS_FLOW_VADDR_OFF, rec, o + CONN_VADDR);
  dv.setUint16(off + abi.XVS_FLOW_VPORT_OFF, cv & 0xffff);
  const hop = rec[o + CONN_NEXTHOP];
  if (hop >= 0) {
    dv.setInt32(off + abi.XVS_FLOW_HOP_OFF, hop, true);
  } else {
    // FastPath.clientHop: port -1 - hop, the client's MAC its own frame named
    dv.setUint8(off + abi.XVS_FLOW_OUT_PORT_OFF, -1 - hop);
    dv.setUint16(off + abi.XVS_FLOW_MAC_OFF, rec[o + CONN_MAC_HI] & 0xffff);
    dv.setInt32(off + abi.XVS_FLOW_MAC_OFF + 2, rec[o + CONN_MAC_LO]);
  }
}

/**
 * Return whether the fast path's own lookup of direction `dir`'s tuple finds connection `id`.
 * Two connections can share a tuple (the same client port to two virtual services of one real
 * server:port shares the reply tuple; the kernel and ConnTable find the newest); only the one the
 * lookup finds may own the `flows` entry of that key. So: cache a direction only when this holds,
 * and when a new connection takes over a tuple, delete (or rewrite) the entry the older one had.
 * Not per packet: one lookup.
 */
export function ownsFlowKey(conns: ConnTable, id: number, dir: number): boolean {
  return flowKeyOwner(conns, conns.rec, id, dir) === ((id << 1) | dir);
}

/**
 * The connection table `conns`' lookup of the tuple of direction `dir` of connection `id` whose
 * record is in `rec` (`conns.rec`, or a record not linked yet: then it finds the connection that
 * holds the tuple now). Returns `owner << 1 | dir` as ConnTable.lookup, or -1.
 */
export function flowKeyOwner(conns: ConnTable, rec: Int32Array, id: number, dir: number): number {
  const r = rec,
    o = id * CONN_WORDS;
  const v6 = r[o + CONN_FLAGS] & CF_V6;
  const proto = (r[o + CONN_PROTO_STATE] >>> 8) & 0xff;
  const cv = r[o + CONN_CPORT_VPORT];
  const s = dir === DIR_IN ? o + CONN_CADDR : o + CONN_DADDR,
    d = dir === DIR_IN ? o + CONN_VADDR : o + CONN_CADDR;
  const ports = dir === DIR_IN ? cv : ((r[o + CONN_DPORT] & 0xffff) << 16) | (cv >>> 16);
  const hash = hashTuple(conns.seedConn, r[s], r[s + 1], r[s + 2], r[s + 3], r[d], r[d + 1], r[d + 2], r[d + 3], ports, proto);
  return conns.lookup(hash, v6, r[s], r[s + 1], r[s + 2], r[s + 3], r[d], r[d + 1], r[d + 2], r[d + 3], ports, proto);
}

/** Counters of one entry as the XDP program left them (read back through SteerProgram.lookupBatch / dump). */
export interface FlowCounters {
  packets: number;
  bytes: number;
  /** CLOCK_BOOTTIME ns of the last forwarded packet (compare with ffi/bpf.ts flowClockNs()), 0 when none. */
  lastNs: number;
}

/** Read the counters of the value at `off` (numbers: exact below 2^53). */
export function readFlowCounters(dv: DataView, off: number, out: FlowCounters): FlowCounters {
  out.packets = Number(dv.getBigUint64(off + abi.XVS_FLOW_PACKETS_OFF, true));
  out.bytes = Number(dv.getBigUint64(off + abi.XVS_FLOW_BYTES_OFF, true));
  out.lastNs = Number(dv.getBigUint64(off + abi.XVS_FLOW_LAST_NS_OFF, true));
  return out;
}

/**
 * A batch of entries to write (or keys to delete) with one FFI call (SteerProgram.flowUpdate /
 * flowDelete). Preallocated; `n` entries are in use.
 */
export class FlowBatch {
  readonly keys: Uint8Array;
  readonly values: Uint8Array;
  readonly kdv: DataView;
  readonly vdv: DataView;
  /** Per-entry result of the last flush: 0, or the errno (E2BIG 7: map full; ENOENT 2). */
  readonly status: Uint8Array;
  n = 0;
  constructor(readonly capacity: number) {
    this.keys = new Uint8Array(capacity * FLOW_KEY_SIZE);
    this.values = new Uint8Array(capacity * FLOW_VALUE_SIZE);
    this.kdv = new DataView(this.keys.buffer);
    this.vdv = new DataView(this.values.buffer);
    this.status = new Uint8Array(capacity);
  }

  get full(): boolean {
    return this.n >= this.capacity;
  }

  /**
   * Add direction `dir` of connection `id` (key and value). Returns the entry's index in the
   * batch, or -1 when the batch is full or the direction cannot be cached (flowRefusal).
   */
  add(rec: Int32Array, id: number, dir: number, t: Tables, seed: number, worker: number): number {
    if (this.n >= this.capacity || flowRefusal(rec, id, dir, t) !== FlowRefusal.Ok) return -1;
    const i = this.n++;
    writeFlowKey(this.kdv, i * FLOW_KEY_SIZE, rec, id, dir);
    writeFlowValue(this.vdv, i * FLOW_VALUE_SIZE, rec, id, dir, seed, worker);
    return i;
  }

  /** Add only the key of direction `dir` of connection `id` (for deletes and lookups). */
  addKey(rec: Int32Array, id: number, dir: number): number {
    if (this.n >= this.capacity) return -1;
    const i = this.n++;
    writeFlowKey(this.kdv, i * FLOW_KEY_SIZE, rec, id, dir);
    return i;
  }

  clear(): void {
    this.n = 0;
  }
}
