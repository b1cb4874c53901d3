/**
 * IPv4 fragments on the fast path. IPVS never sees a fragment: the kernel reassembles first
 * (ip_local_deliver -> ip_defrag) and refragments on output. xvs does not reassemble; it routes
 * every fragment of a datagram to the connection of its first fragment (Cilium's scheme):
 *
 * - first fragment (MF, offset 0): carries the L4 header, so it is looked up / scheduled like any
 *   packet; afterwards (src, dst, IP id, proto) -> its connection goes into the FragTable
 *   (conn/frag.ts). When the table is full of live datagrams, the first fragment is dropped
 *   (DropFragTableFull): its followers could not be placed, so forwarding it would only make the
 *   real server hold a datagram it can never complete.
 * - later fragments (offset > 0): no ports; they follow the recorded connection: NAT rewrites
 *   only the IP address (the L4 checksum, over the whole datagram, was fixed in the first
 *   fragment: the pseudo-header and port deltas are the same), TTL - 1, counted FwdIn/FwdOut
 *   plus FragForwarded. The connection's timer is touched but its TCP state is not moved (a
 *   fragment carries no flags).
 * - a later fragment whose first fragment was not seen (reordered, lost, expired after 30 s, or
 *   never sent): DropFragOrphan. No holding: a held frame would pin a UMEM frame beyond its burst
 *   and the port cannot emit it later; the sender's retransmission (TCP) or the application
 *   (UDP) recovers, as with Cilium.
 * - refused shapes (DropFragment): a first fragment too short for its transport header (RFC 1858
 *   tiny fragment), a TCP fragment at offset 8 (RFC 1858 overlap onto the header), a fragment
 *   reaching past 65535 bytes (ping of death: ip_frag_queue's limit), fragmented ICMP (the kernel
 *   reassembles ICMP explicitly, ip_vs_gather_frags; xvs does not).
 *
 * ICMP errors are never generated for later fragments (icmp_send replies to fragment 0 only):
 * TTL expiry or a fragment larger than the path MTU drop them silently with DropTtl / DropMtu.
 */
import * as abi from "../ffi/abi.ts";
import {
  CF_FWD_MASK,
  CF_TEMPLATE,
  CF_USED,
  CF_V6,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DEST,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_SVC,
  CONN_VADDR,
  CONN_WORDS,
  connProto,
  DIR_OUT,
  hitDir,
  hitId,
} from "../conn/table.ts";
import { FragTable } from "../conn/frag.ts";
import { DEST_ADDR, DEST_FLAGS, DEST_MTU, DEST_NEXTHOP, DEST_WORDS, DESTF_AVAILABLE, FWD_MASQ } from "../service/tables.ts";
import {
  IPV4_DST,
  IPV4_ID,
  IPV4_OFFSET_MASK,
  IPV4_SRC,
  IPV4_TTL,
  PROTO_ICMP,
  PROTO_SCTP,
  PROTO_TCP,
  PROTO_UDP,
  SCTP_HLEN,
  TCP_DOFF,
  TCP_FLAGS,
  TCP_MIN_HLEN,
  UDP_HLEN,
  UDP_LEN,
} from "../wire/fields.ts";
import { FLOW_DST, FLOW_L3, FLOW_L4, FLOW_META, FLOW_PORTS, FLOW_SRC, flowMeta, flowProto, hashFlow } from "../wire/flow.ts";
import { setAddrFix } from "../wire/ipv4.ts";
import { Classified } from "./classify.ts";
import type { FastPathState } from "./contract.ts";
import { Stat } from "./verdict.ts";

/** What of the fast path fragments use (contract.ts). */
export type FragState = Pick<
  FastPathState,
  | "flows"
  | "l3Len"
  | "u8"
  | "dv"
  | "conns"
  | "home"
  | "peers"
  | "borrow"
  | "tables"
  | "nh"
  | "counters"
  | "now"
  | "drop"
  | "transmitIn"
  | "countIn"
  | "countOut"
  | "clientHop"
  | "decTtl"
>;

/** Largest IPv4 datagram (IP_MAX_MTU): a fragment reaching past it can never be reassembled. */
const IP_MAX_LEN = 65535;
const D_ADDR = abi.XVS_DESC_ADDR;

/**
 * Classify an IPv4 fragment whose addresses and L3 fields classify() has filled. `frag` is the
 * flags + offset word. Returns FragFirst, FragLater or a drop.
 */
export function classifyFragment(
  u8: Uint8Array,
  dv: DataView,
  l3: number,
  ihl: number,
  tot: number,
  frag: number,
  proto: number,
  flow: Int32Array,
  row: number,
): Classified {
  const offBytes = (frag & IPV4_OFFSET_MASK) << 3;
  const l4len = tot - ihl;
  if (offBytes + l4len > IP_MAX_LEN) return Classified.Fragment;
  if (proto !== PROTO_TCP && proto !== PROTO_UDP && proto !== PROTO_SCTP) return proto === PROTO_ICMP ? Classified.Fragment : Classified.UnknownProto;
  if (offBytes !== 0) {
    if (proto === PROTO_TCP && offBytes === 8) return Classified.Fragment;
    flow[row + FLOW_META] = flowMeta(4, proto, 0);
    flow[row + FLOW_PORTS] = (dv.getUint16(l3 + IPV4_ID) << 8) | proto;
    flow[row + FLOW_L4] = 0;
    return Classified.FragLater;
  }
  const l4 = l3 + ihl;
  let flags = 0;
  if (proto === PROTO_TCP) {
    if (l4len < TCP_MIN_HLEN) return Classified.Fragment;
    const doff = (u8[l4 + TCP_DOFF] >>> 4) << 2;
    if (doff < TCP_MIN_HLEN) return Classified.Malformed;
    if (doff > l4len) return Classified.Fragment;
    flags = u8[l4 + TCP_FLAGS];
  } else if (proto === PROTO_UDP) {
    if (l4len < UDP_HLEN) return Classified.Fragment;
    // the UDP length is the whole datagram's, longer than this fragment
    if (dv.getUint16(l4 + UDP_LEN) < UDP_HLEN) return Classified.Malformed;
  } else if (l4len < SCTP_HLEN) {
    return Classified.Fragment;
  }
  flow[row + FLOW_META] = flowMeta(4, proto, flags);
  flow[row + FLOW_PORTS] = dv.getInt32(l4);
  flow[row + FLOW_L4] = l4;
  return Classified.FragFirst;
}

/** The fragment state of one fast path. */
export class FragPath {
  readonly table: FragTable;

  constructor(capacity?: number, seed?: number) {
    this.table = new FragTable(capacity, seed);
  }

  private key(fp: FragState, row: number): number {
    const f = fp.flows;
    return (fp.dv.getUint16(f[row + FLOW_L3] + IPV4_ID) << 8) | flowProto(f, row);
  }

  /** Before a first fragment is handled: false (after counting the drop) when its datagram cannot be recorded. */
  admitFirst(fp: FragState, row: number): boolean {
    const f = fp.flows;
    if (this.table.room(f[row + FLOW_SRC], f[row + FLOW_DST], this.key(fp, row), fp.now)) return true;
    fp.drop(Stat.DropFragTableFull);
    return false;
  }

  /**
   * After a first fragment was handled: record the connection it matched or created (none when
   * it was refused before scheduling, answered with ICMP, or sent one-packet: its followers are
   * orphans then). The IP id is read from the frame: no rewrite touches it.
   */
  noteFirst(fp: FragState, row: number): void {
    const f = fp.flows;
    const r = fp.conns.lookup(
      hashFlow(fp.conns.seedConn, f, row),
      0,
      f[row + FLOW_SRC],
      0,
      0,
      0,
      f[row + FLOW_DST],
      0,
      0,
      0,
      f[row + FLOW_PORTS],
      flowProto(f, row),
    );
    if (r >= 0) {
      this.table.insert(
        f[row + FLOW_SRC],
        f[row + FLOW_DST],
        this.key(fp, row),
        f[row + FLOW_PORTS],
        r,
        fp.conns.rec[hitId(r) * CONN_WORDS + CONN_DEST],
        fp.now,
      );
      return;
    }
    // another worker's connection (a NAT reply on another queue than its request: conn/peers.ts)
    const peers = fp.peers;
    if (peers === null) return;
    const pr = peers.findLoose(0, f[row + FLOW_SRC], 0, 0, 0, f[row + FLOW_DST], 0, 0, 0, f[row + FLOW_PORTS], flowProto(f, row));
    if (pr < 0) return;
    const dest = peers.found.rec[hitId(pr) * CONN_WORDS + CONN_DEST];
    this.table.insert(f[row + FLOW_SRC], f[row + FLOW_DST], this.key(fp, row), f[row + FLOW_PORTS], pr, dest, fp.now, peers.foundView + 1);
  }

  /** A non-first fragment: follow its datagram's connection, or drop it as an orphan. Returns the out port. */
  later(fp: FragState, descs: Uint32Array, d: number, row: number, pkt: number): number {
    const f = fp.flows,
      t = this.table;
    const r = t.find(f[row + FLOW_SRC], f[row + FLOW_DST], f[row + FLOW_PORTS], fp.now);
    if (r < 0) return fp.drop(Stat.DropFragOrphan);
    const view = t.table[r];
    if (view === 0 || fp.peers === null) return this.follow(fp, descs, d, row, pkt, r);
    // the connection is another worker's: use its record, as the fast path does (conn/peers.ts)
    fp.borrow(fp.peers.views[view - 1]!);
    const out = this.follow(fp, descs, d, row, pkt, r);
    fp.borrow(fp.home);
    return out;
  }

  /** A later fragment of record `r`'s datagram, with fp.conns holding its connection. */
  private follow(fp: FragState, descs: Uint32Array, d: number, row: number, pkt: number, r: number): number {
    const f = fp.flows,
      t = this.table;
    const src = f[row + FLOW_SRC],
      dst = f[row + FLOW_DST],
      key = f[row + FLOW_PORTS];
    const c = t.conn[r],
      id = hitId(c),
      ports = t.ports[r];
    const rec = fp.conns.rec,
      o = id * CONN_WORDS;
    const fl = rec[o + CONN_FLAGS];
    // the record must still be the connection the first fragment went to: ids are reused, and a
    // reused tuple (conn_reuse_mode) may have been scheduled to another real server since
    let same = (fl & (CF_USED | CF_TEMPLATE | CF_V6)) === CF_USED && connProto(rec, o) === (key & 0xff) && rec[o + CONN_DEST] === t.dest[r];
    if (hitDir(c) === DIR_OUT) {
      const cv = rec[o + CONN_CPORT_VPORT];
      same = same && rec[o + CONN_DADDR] === src && rec[o + CONN_CADDR] === dst && (((rec[o + CONN_DPORT] & 0xffff) << 16) | (cv >>> 16)) === ports;
    } else {
      same = same && rec[o + CONN_CADDR] === src && rec[o + CONN_VADDR] === dst && rec[o + CONN_CPORT_VPORT] === ports;
    }
    if (!same) return fp.drop(Stat.DropFragOrphan);
    fp.conns.touch(id, fp.now);
    if (hitDir(c) === DIR_OUT) return this.reply(fp, descs, d, row, pkt, id);
    return this.forward(fp, descs, d, row, pkt, id);
  }

  /**
   * TTL and MTU for a later fragment: silent drops, since icmp_send answers fragment 0 only and
   * xvs cannot fragment further (the kernel would, without DF). Returns the drop reason, or -1.
   */
  private refusal(fp: FragState, l3: number, l3len: number, mtu: number): number {
    if (fp.u8[l3 + IPV4_TTL] <= 1) return Stat.DropTtl;
    if (mtu > 0 && l3len > mtu) return Stat.DropMtu;
    return -1;
  }

  /** Client -> real server. NAT here (address only); other methods leave L4 alone and go through the fast path's own transmit. */
  private forward(fp: FragState, descs: Uint32Array, d: number, row: number, pkt: number, id: number): number {
    const t = fp.tables,
      rec = fp.conns.rec,
      o = id * CONN_WORDS;
    const dest = rec[o + CONN_DEST],
      dOff = dest * DEST_WORDS;
    if ((t.dest[dOff + DEST_FLAGS] & DESTF_AVAILABLE) === 0) return fp.drop(Stat.DropDestUnavailable);
    const svc = rec[o + CONN_SVC],
      fwd = rec[o + CONN_FLAGS] & CF_FWD_MASK;
    const l3 = fp.flows[row + FLOW_L3],
      l3len = fp.l3Len[pkt];
    const refused = this.refusal(fp, l3, l3len, t.dest[dOff + DEST_MTU]);
    if (refused >= 0) return fp.drop(refused);
    if (fwd !== FWD_MASQ) {
      const sent = fp.counters.verdicts[Stat.FwdIn];
      const out = fp.transmitIn(descs, d, row, pkt, svc, dest, rec[o + CONN_DPORT] & 0xffff, fwd, 0, id);
      if (fp.counters.verdicts[Stat.FwdIn] !== sent) fp.counters.verdicts[Stat.FragForwarded] += 1;
      return out;
    }
    fp.countIn(svc, dest, l3len);
    const nh = t.dest[dOff + DEST_NEXTHOP];
    if (nh < 0) return fp.drop(Stat.DropNoRoute);
    const port = fp.nh.setMacs(fp.dv, descs[d + D_ADDR], nh, t.ports);
    if (port < 0) return fp.drop(Stat.DropNeighbour);
    setAddrFix(fp.dv, l3, IPV4_DST, t.dest[dOff + DEST_ADDR]);
    fp.decTtl(l3, 0);
    fp.counters.verdicts[Stat.FwdIn] += 1;
    fp.counters.verdicts[Stat.FragForwarded] += 1;
    return port;
  }

  /** Real server -> client (NAT): the source becomes the virtual address. */
  private reply(fp: FragState, descs: Uint32Array, d: number, row: number, pkt: number, id: number): number {
    const rec = fp.conns.rec,
      o = id * CONN_WORDS;
    const svc = rec[o + CONN_SVC],
      dest = rec[o + CONN_DEST];
    const l3 = fp.flows[row + FLOW_L3],
      l3len = fp.l3Len[pkt];
    fp.countOut(svc, dest, l3len);
    const refused = this.refusal(fp, l3, l3len, 0);
    if (refused >= 0) return fp.drop(refused);
    const port = fp.clientHop(descs, d, id);
    if (port < 0) return abi.XVS_OUT_DROP;
    setAddrFix(fp.dv, l3, IPV4_SRC, rec[o + CONN_VADDR]);
    fp.decTtl(l3, 0);
    fp.counters.verdicts[Stat.FwdOut] += 1;
    fp.counters.verdicts[Stat.FragForwarded] += 1;
    return port;
  }
}
