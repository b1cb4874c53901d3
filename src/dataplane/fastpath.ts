/**
 * The fast path: one burst of frames in, one verdict per frame out. Independent of AF_XDP (it
 * sees a frame buffer and descriptors), so the same code runs under the poll loop, the unit
 * tests, the fuzzer and the CPU benchmarks.
 *
 * Two passes per burst: pass 1 classifies every frame, hashes its flow and touches the index
 * slot it will probe (so the cache misses of a burst overlap); pass 2 looks connections up,
 * schedules new ones, updates state and counters and rewrites the frame in place.
 *
 * Per-packet rules: no allocation, no exception, no FFI. Connection semantics follow IPVS
 * (ip_vs_core.c ip_vs_in/ip_vs_out, ip_vs_conn.c, ip_vs_proto_tcp.c): see each step.
 */
import * as abi from "../ffi/abi.ts";
import {
  CF_FWD_MASK,
  CF_NOOUTPUT,
  CF_TEMPLATE,
  CF_V6,
  CONN_CONTROL,
  CONN_CPORT_VPORT,
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
  connState,
  type ConnTable,
  DIR_IN,
  DIR_OUT,
  TICKS_PER_SEC,
} from "../conn/table.ts";
import { DIR_INPUT, DIR_INPUT_ONLY, DIR_OUTPUT, S_CLOSE, S_FIN_WAIT, S_TIME_WAIT, TCP_TIMEOUTS_SEC, tcpNextState, TEMPLATE_RETRY_SEC } from "../conn/state.ts";
import { HOP_NO_ROUTE, nextHopFor, type NextHopView } from "./route.ts";
import type { SchedView } from "../sched/scheduler.ts";
import { applyTables, sharedSchedView, startServices } from "./shared-sched.ts";
import {
  DEST_FLAGS,
  DEST_MTU,
  DEST_NEXTHOP,
  DEST_ADDR,
  DEST_WEIGHT,
  DEST_WORDS,
  DESTF_AVAILABLE,
  findService,
  FWD_MASQ,
  SET_CONN_REUSE_MODE,
  SET_EXPIRE_NODEST_CONN,
  SET_TCP_TICKS,
  SET_TCPFIN_TICKS,
  SET_UDP_TICKS,
  type Tables,
} from "../service/tables.ts";
import { setDstMac, setEtherType, setSrcMac, srcMacHi, srcMacLo } from "../wire/eth.ts";
import { PORT_MAC_HI, PORT_MAC_LO, PORT_WORDS } from "../nexthop/table.ts";
import {
  ICMP_CODE_FRAG_NEEDED,
  ICMP_DEST_UNREACH,
  ICMP_TIME_EXCEEDED,
  ICMPV6_DEST_UNREACH,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_TIME_EXCEEDED,
  IPV4_FLAG_DF,
  IPV4_FRAG,
  PROTO_TCP,
  TCP_SYN,
} from "../wire/fields.ts";
import { FLOW_DST, FLOW_L3, FLOW_L4, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS, hashFlow } from "../wire/flow.ts";
import { completePartialChecksum } from "../wire/partial-csum.ts";
import { dnat4, dnat6, snat4, snat6 } from "../xmit/nat.ts";
import { icmp4Error, icmp6Error } from "../xmit/icmp-error.ts";
import { tcpReset4, tcpReset6 } from "../xmit/tcp-reset.ts";
import { Classified, classify } from "./classify.ts";
import type { FastPathState } from "./contract.ts";
import { handleIcmp, PathMtu, pmtuKey } from "./icmp.ts";
import { decTtl, hopsLeft } from "../xmit/dr.ts";
import { encapsulate, flowSourcePort, IPV4_MIN_MTU, IPV6_MIN_MTU, tunnelOverhead } from "../xmit/tun.ts";
import { ICMP_CODE_HOST_UNREACH, ICMPV6_CODE_ADDR_UNREACH } from "../xmit/icmp-error.ts";
import { DEST_TUN, DEST_TUN_PORT, DEST_TUN_SRC, DESTF_V6, FWD_ROUTE, FWD_TUNNEL, MAX_DESTS } from "../service/tables.ts";
import { ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "../wire/fields.ts";
import { type Counters, DEST_TRAFFIC_BASE, TS_INBYTES, TS_INPKTS, TS_OUTBYTES, TS_OUTPKTS, TS_WORDS } from "../stats/counters.ts";
import { Stat } from "./verdict.ts";
import { IcmpLimiter } from "../xmit/icmp-limit.ts";
import { FragPath } from "./frag.ts";
import { SynGuard } from "./synflood.ts";
import { newConnection } from "./schedule.ts";
import { destRemoved, flushNodest, setTcpState, setUdpState, unbindDest } from "../conn/accounting.ts";
import type { SyncFeed } from "./sync-feed.ts";
import { FlowCache } from "./flowcache.ts";
import { type ConnPeers, peerSetTcpState, peerSetUdpState, reconcileRequest } from "../conn/peers.ts";
import { kill, uncontrol } from "../conn/persist-template.ts";

const MAX_BURST = abi.XVS_MAX_BURST;
const D_WORDS = abi.XVS_DESC_WORDS;
const D_ADDR = abi.XVS_DESC_ADDR;
const D_LEN = abi.XVS_DESC_LEN;
const D_IN = abi.XVS_DESC_IN_PORT;
const D_OUT = abi.XVS_DESC_OUT_PORT;
const OUT_DROP = abi.XVS_OUT_DROP;

/** Examined per expiry call: bounds the timer work done between two bursts. */
const EXPIRE_BUDGET = 256;
/** Records walked per expiry call by the expire_nodest_conn flush. */
const NODEST_FLUSH_BUDGET = 4096;

/** Per-state TCP timeouts in ticks; ESTABLISHED and FIN_WAIT follow `--set`. */
function tcpTimeouts(t: Tables): Int32Array {
  const out = new Int32Array(TCP_TIMEOUTS_SEC.length);
  for (let i = 0; i < out.length; i++) out[i] = TCP_TIMEOUTS_SEC[i] * TICKS_PER_SEC;
  out[1] = t.settings[SET_TCP_TICKS];
  out[S_FIN_WAIT] = t.settings[SET_TCPFIN_TICKS];
  return out;
}

/**
 * One worker's fast path. Its helpers (schedule.ts, synflood.ts, frag.ts, icmp.ts) see it through
 * FastPathState (contract.ts); every step returns the frame's out port (or OUT_DROP), which
 * processBurst alone writes into the descriptor.
 */
export class FastPath implements FastPathState {
  tables: Tables;
  /**
   * The table whose records the current packet uses: `home`, or while a packet uses another
   * worker's connection, that worker's view (conn/peers.ts; `borrow`).
   */
  conns: ConnTable;
  /** This worker's own table. */
  readonly home: ConnTable;
  /** The other workers' tables, looked up on a miss; null with one worker. */
  peers: ConnPeers | null = null;
  readonly counters: Counters;
  readonly sched: SchedView;
  /** Next hops and the resolve ring; set by the worker. */
  nh: NextHopView;
  tcpTicks: Int32Array;
  udpTicks: number;
  readonly flows = new Int32Array(MAX_BURST * FLOW_WORDS);
  private readonly hashes = new Int32Array(MAX_BURST);
  private readonly early = new Int32Array(MAX_BURST);
  readonly l3Len = new Int32Array(MAX_BURST);
  /** Path MTUs learned from ICMP errors about our tunnel packets (dataplane/icmp.ts). */
  readonly pmtu = new PathMtu();
  /** IPv4 ID counter per real server, for outer headers without DF (ip_select_ident). */
  readonly ipIds = new Int32Array(MAX_DESTS);
  /** Rate limits on generated ICMP errors, as the kernel's (xmit/icmp-limit.ts). */
  readonly icmpLimit = new IcmpLimiter();
  /** IPv4 fragment tracking (dataplane/frag.ts). */
  readonly frag = new FragPath();
  /** SYN flood defence (dataplane/synflood.ts). */
  readonly synGuard: SynGuard;
  /** Which connections the XDP program forwards itself (flowcache.ts); off unless the worker sets one. */
  flowCache: FlowCache = FlowCache.off();
  /** Current time in ticks, set per burst. */
  now = 0;
  u8: Uint8Array;
  dv: DataView;
  /** Sink for pass 1's index touches, so the loads are not optimised away. */
  touched = 0;
  /** Next record of a running expire_nodest_conn flush, -1 when none runs. */
  private nodestCursor = -1;
  /** The sync daemon's feed (dataplane/sync-feed.ts), null until a daemon was started. */
  sync: SyncFeed | null = null;

  constructor(buf: Uint8Array, tables: Tables, conns: ConnTable, counters: Counters, nh: NextHopView) {
    this.synGuard = new SynGuard(conns.capacity);
    this.u8 = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.tables = tables;
    this.conns = conns;
    this.home = conns;
    this.counters = counters;
    this.nh = nh;
    // scheduler state and connection counts: one per service over all workers (shared-sched.ts)
    this.sched = sharedSchedView(tables, counters);
    this.tcpTicks = tcpTimeouts(tables);
    this.udpTicks = tables.settings[SET_UDP_TICKS];
    startServices(this.sched, counters, tables);
  }

  /**
   * Switch to a new configuration generation. Scheduler state follows the kernel: a new or
   * re-scheduled service starts fresh (init_service), a service whose dests or weights changed
   * gets update (add_dest/del_dest/upd_dest), changed thresholds re-evaluate OVERLOAD; once per
   * service and generation over all workers (shared-sched.ts). Called between bursts, once per
   * generation, in order.
   */
  setTables(next: Tables): void {
    const prev = this.tables;
    this.tables = next;
    applyTables(this.sched, this.counters, prev, next);
    this.tcpTicks = tcpTimeouts(next);
    this.udpTicks = next.settings[SET_UDP_TICKS];
    // Linux 5.9+: deleting a dest with expire_nodest_conn=1 flushes its connections (in steps, from expire())
    if (next.settings[SET_EXPIRE_NODEST_CONN] !== 0 && destRemoved(prev, next)) this.nodestCursor = 0;
  }

  /** Use another frame buffer (the UMEM of a new port). */
  setBuffer(buf: Uint8Array): void {
    this.u8 = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /**
   * Process `n` received descriptors: set each one's out port (or OUT_DROP), rewriting frames
   * in place (their address and length may change for generated replies).
   */
  processBurst(descs: Uint32Array, n: number): void {
    const u8 = this.u8,
      dv = this.dv,
      flows = this.flows,
      st = this.counters.verdicts;
    const conns = this.conns,
      index = conns.index,
      mask = index.length - 1,
      seed = conns.seedConn;
    let touched = 0,
      rxBytes = 0,
      completed = 0;
    // pass 1: classify, complete partial checksums, hash, touch
    for (let i = 0; i < n; i++) {
      const d = i * D_WORDS;
      const len = descs[d + D_LEN];
      rxBytes += len;
      const row = i * FLOW_WORDS;
      const v = classify(u8, dv, descs[d + D_ADDR], len, flows, row, this.l3Len, i);
      this.early[i] = v;
      if (v === Classified.Continue) {
        // a sender's offloaded (partial) L4 checksum is completed here, before anything rewrites
        // or quotes the packet, so NAT, DR, TUN and the ICMP errors built from it all see a
        // complete one; costs a complete frame the pseudo-header sum and one compare
        // (wire/partial-csum.ts). Never fragments (FragFirst): their sum spans the datagram.
        completed += completePartialChecksum(u8, dv, flows, row, this.l3Len[i]);
      }
      if (v === Classified.Continue || v === Classified.FragFirst) {
        const h = hashFlow(seed, flows, row);
        this.hashes[i] = h;
        // touch the index slot, so that the misses of the whole burst overlap instead of stalling
        // one packet at a time in pass 2 (touching the record too, a dependent load, measured
        // ~30 ns slower per packet with 1M flows)
        touched ^= index[h & mask];
      }
    }
    this.touched = touched;
    // totals once per burst: fewer stores to the shared counter line per packet
    st[Stat.RxPackets] += n;
    st[Stat.RxBytes] += rxBytes;
    if (completed !== 0) st[Stat.CsumPartialCompleted] += completed;
    // pass 2: connections, scheduling, rewrite; each step returns the frame's out port
    for (let i = 0; i < n; i++) {
      const d = i * D_WORDS,
        row = i * FLOW_WORDS;
      const v = this.early[i] as Classified;
      let out: number;
      if (v === Classified.Continue) {
        out = this.handle(descs, d, row, i);
      } else if (v === Classified.Icmp) {
        out = handleIcmp(this, descs, d, row, i);
      } else if (v === Classified.FragLater) {
        // IPv4 fragments (dataplane/frag.ts): later ones follow the connection of their first
        out = this.frag.later(this, descs, d, row, i);
      } else if (v === Classified.FragFirst) {
        if (this.frag.admitFirst(this, row)) {
          out = this.handle(descs, d, row, i);
          this.frag.noteFirst(this, row);
        } else {
          out = OUT_DROP;
        }
      } else {
        // a drop reason: the Classified member is its Stat counter
        st[v] += 1;
        out = OUT_DROP;
      }
      descs[d + D_OUT] = out;
    }
    let tx = 0,
      txBytes = 0;
    for (let i = 0; i < n; i++) {
      const d = i * D_WORDS;
      if (descs[d + D_OUT] !== OUT_DROP) {
        tx++;
        txBytes += descs[d + D_LEN];
      }
    }
    st[Stat.TxPackets] += tx;
    st[Stat.TxBytes] += txBytes;
  }

  /** Count the drop `reason`; returns OUT_DROP (the frame is recycled). */
  drop(reason: Stat): number {
    this.counters.verdicts[reason] += 1;
    return OUT_DROP;
  }

  /**
   * A TCP/UDP/SCTP packet: its connection (ip_vs_in / ip_vs_out), or a new one. Returns the out
   * port. handle, forward, reply and transmitIn run for every packet: they decode the flow row's
   * meta word, the lookup result and the record's proto/state word by hand (layouts: wire/flow.ts,
   * conn/table.ts) where the accessors, inlined by JSC, made the compiled code larger (see
   * docs/architecture.md, "Fast path"); colder steps use the accessors.
   */
  private handle(descs: Uint32Array, d: number, row: number, pkt: number): number {
    const f = this.flows;
    const meta = f[row + FLOW_META];
    const proto = (meta >>> 8) & 0xff;
    const r = this.conns.lookupRow(this.hashes[pkt], f, row);
    if (r >= 0) {
      if ((r & 1) === DIR_OUT) return this.reply(descs, d, row, pkt, r >> 1);
      const id = r >> 1;
      if (!this.mayReuse(id, proto, meta & 0xff)) return this.forward(descs, d, row, pkt, id);
      this.expireNow(id);
    } else if (this.peers !== null) {
      // several workers: the connection may be another's (conn/peers.ts)
      const out = this.peerPacket(descs, d, row, pkt, proto, meta & 0xff);
      if (out >= 0) return out;
    }
    const t = this.tables;
    const svc = findService(t, proto, f[row + FLOW_DST], f[row + FLOW_DST + 1], f[row + FLOW_DST + 2], f[row + FLOW_DST + 3], f[row + FLOW_PORTS] & 0xffff);
    // no service: a NAT real server's packet that no connection knows (expired, or sent after a
    // restart), or a service removed while the packet was in flight
    if (svc < 0) return this.drop(Stat.DropNoConn);
    return newConnection(this, descs, d, row, pkt, svc, proto, meta >>> 16 === 6 ? CF_V6 : 0, meta & 0xff);
  }

  /**
   * ip_vs_in: should this connection be expired and the packet scheduled afresh?
   * - with conn_reuse_mode (default 1), a SYN (is_new_conn: the SYN bit, whatever else is set)
   *   on a connection whose dest has weight 0 when expire_nodest_conn is set, or on one not
   *   controlled by a template that is in TIME_WAIT or CLOSE (with bit 2, also FIN_WAIT of a
   *   DR/TUN connection: is_new_conn_expected);
   * - any packet of a connection whose dest was deleted, when expire_nodest_conn is set
   *   (otherwise forward() drops it: the dest may come back from the trash).
   */
  mayReuse(id: number, proto: number, tcpFlags: number): boolean {
    const t = this.tables;
    const nodest = t.settings[SET_EXPIRE_NODEST_CONN] !== 0;
    const mode = t.settings[SET_CONN_REUSE_MODE];
    // the common case, decided without touching the record: not a SYN, nodest expiry off
    if (!nodest && (mode === 0 || proto !== PROTO_TCP || (tcpFlags & TCP_SYN) === 0)) return false;
    const rec = this.conns.rec,
      o = id * CONN_WORDS;
    const dest = rec[o + CONN_DEST];
    if (nodest && (t.dest[dest * DEST_WORDS + DEST_FLAGS] & DESTF_AVAILABLE) === 0) return true;
    if (mode === 0 || proto !== PROTO_TCP || (tcpFlags & TCP_SYN) === 0) return false;
    if (nodest && t.dest[dest * DEST_WORDS + DEST_WEIGHT] === 0) return true;
    if (rec[o + CONN_CONTROL] !== 0) return false;
    const state = connState(rec, o);
    if (state === S_TIME_WAIT || state === S_CLOSE) return true;
    return (mode & 2) !== 0 && state === S_FIN_WAIT && (rec[o + CONN_FLAGS] & CF_NOOUTPUT) !== 0;
  }

  /** Where NAT replies to this client go: the FIB's next hop, else the frame's source MAC. */
  setReplyHop(rec: Int32Array, o: number, inPort: number, frame: number, row: number, v6: number): void {
    const f = this.flows;
    const nh = nextHopFor(this.tables, this.nh, v6 ? 6 : 4, f[row + FLOW_SRC], f[row + FLOW_SRC + 1], f[row + FLOW_SRC + 2], f[row + FLOW_SRC + 3]);
    rec[o + CONN_NEXTHOP] = nh;
    if (nh >= 0 || nh === HOP_NO_ROUTE) return;
    // on-link client the kernel has no MAC for yet: its own frame names it, if it came in on
    // the port the route goes out of; otherwise no usable next hop
    if (-1 - nh !== inPort) {
      rec[o + CONN_NEXTHOP] = HOP_NO_ROUTE;
      return;
    }
    rec[o + CONN_MAC_HI] = srcMacHi(this.dv, frame);
    rec[o + CONN_MAC_LO] = srcMacLo(this.dv, frame);
  }

  /** Move a TCP connection to `next` (ActiveConn/InActConn follow) and re-arm its timer. */
  setState(id: number, proto: number, next: number): void {
    if (this.conns !== this.home) {
      peerSetTcpState(this.conns, id, proto, next, this.tcpTicks[next], this.now);
      return;
    }
    setTcpState(this.conns, this.counters, id, proto, next, this.tcpTicks[next], this.now);
  }

  /** Client -> real server on an existing connection. Returns the out port. */
  forward(descs: Uint32Array, d: number, row: number, pkt: number, id: number): number {
    const t = this.tables,
      rec = this.conns.rec,
      o = id * CONN_WORDS;
    const dest = rec[o + CONN_DEST];
    if ((t.dest[dest * DEST_WORDS + DEST_FLAGS] & DESTF_AVAILABLE) === 0) {
      // ip_vs_in step 3: the dest was deleted; with expire_nodest_conn the conn goes too
      if (t.settings[SET_EXPIRE_NODEST_CONN] !== 0) this.expireNow(id);
      return this.drop(Stat.DropDestUnavailable);
    }
    const ps = rec[o + CONN_PROTO_STATE];
    const proto = (ps >>> 8) & 0xff;
    const flags = rec[o + CONN_FLAGS];
    if (proto === PROTO_TCP) {
      const dir = (flags & CF_NOOUTPUT) !== 0 ? DIR_INPUT_ONLY : DIR_INPUT;
      this.setState(id, proto, tcpNextState(dir, this.flows[row + FLOW_META] & 0xff, ps & 0xff));
    } else {
      this.conns.rearm(id, this.now, this.udpTicks);
    }
    // ip_vs_in -> ip_vs_sync_conn: count in_pkts, maybe send it (sync-feed.ts)
    if (this.sync !== null) this.sync.packet(this, id, ps, row, descs, d);
    const svc = rec[o + CONN_SVC];
    this.flowCache.seen(this, id, DIR_IN); // established: the XDP program may forward the rest (flowcache.ts)
    return this.transmitIn(descs, d, row, pkt, svc, dest, rec[o + CONN_DPORT] & 0xffff, flags & CF_FWD_MASK, flags & CF_V6, id);
  }

  /** Count and send a client packet to its real server by the dest's forwarding method. Returns the out port. */
  transmitIn(descs: Uint32Array, d: number, row: number, pkt: number, svc: number, dest: number, dport: number, fwd: number, v6: number, id: number): number {
    const t = this.tables,
      u8 = this.u8,
      dv = this.dv,
      f = this.flows;
    const dOff = dest * DEST_WORDS;
    const l3 = f[row + FLOW_L3],
      l4 = f[row + FLOW_L4];
    const l3len = this.l3Len[pkt];
    // ip_vs_in_stats: counted before mangling, the whole IP packet
    this.countIn(svc, dest, l3len);
    if (fwd !== FWD_MASQ && fwd !== FWD_ROUTE && fwd !== FWD_TUNNEL) return this.drop(Stat.DropUnsupported);
    if (fwd !== FWD_MASQ && id >= 0) {
      // DR/TUN send nothing to the client, but an ICMP error about a tunnel packet is relayed to it
      // (dataplane/icmp.ts): remember the port and MAC its packets come from, for a client whose
      // neighbour entry the kernel does not have yet (what setReplyHop keeps for NAT)
      const rec = this.conns.rec,
        o = id * CONN_WORDS;
      if (rec[o + CONN_MAC_HI] === 0 && rec[o + CONN_MAC_LO] === 0) {
        const frame = descs[d + D_ADDR];
        rec[o + CONN_NEXTHOP] = -1 - descs[d + D_IN];
        rec[o + CONN_MAC_HI] = srcMacHi(dv, frame);
        rec[o + CONN_MAC_LO] = srcMacLo(dv, frame);
      }
    }
    const nh = t.dest[dOff + DEST_NEXTHOP];
    if (nh < 0) return this.noRoute(descs, d, row, pkt, v6);
    // __ip_vs_get_out_rt: decrement_ttl before the MTU check, so a "fragmentation needed" quotes
    // the packet with its TTL already lowered, as the kernel's does
    if (hopsLeft(u8, l3, v6) <= 1) return this.timeExceeded(descs, d, row, pkt, v6);
    this.decTtl(l3, v6);
    if (fwd === FWD_TUNNEL) {
      const port = this.tunnelOut(descs, d, row, pkt, l3, l3len, v6, dest, nh, this.hashes[pkt], false);
      if (port < 0) return ~port;
      this.counters.verdicts[Stat.FwdIn] += 1;
      this.counters.verdicts[Stat.FwdTun] += 1;
      return port;
    }
    const mtu = t.dest[dOff + DEST_MTU];
    if (mtu > 0 && l3len > mtu) return this.tooBig(descs, d, row, pkt, v6, mtu);
    const port = this.nh.setMacs(dv, descs[d + D_ADDR], nh, t.ports);
    if (port < 0) return this.drop(Stat.DropNeighbour);
    if (fwd === FWD_MASQ) {
      const proto = (f[row + FLOW_META] >>> 8) & 0xff;
      if (v6) {
        dnat6(
          u8,
          dv,
          l3,
          l4,
          l3len - (l4 - l3),
          proto,
          t.dest[dOff + DEST_ADDR],
          t.dest[dOff + DEST_ADDR + 1],
          t.dest[dOff + DEST_ADDR + 2],
          t.dest[dOff + DEST_ADDR + 3],
          dport,
        );
      } else {
        dnat4(u8, dv, l3, l4, l3len - (l4 - l3), proto, t.dest[dOff + DEST_ADDR], dport);
      }
    } else {
      // DR (ip_vs_dr_xmit): the packet leaves as it came, to the real server's MAC
      this.counters.verdicts[Stat.FwdDr] += 1;
    }
    this.counters.verdicts[Stat.FwdIn] += 1;
    return port;
  }

  /**
   * Encapsulate the IP packet at `l3` (TTL already checked and decremented) for TUN real server
   * `dest` and point the descriptor at the new frame start (ip_vs_tunnel_xmit[_v6]). Returns the
   * out port (the caller counts its verdict), or, when the frame was dropped or answered instead
   * and counted, the bitwise NOT (< 0) of its out port. `icmp`: an ICMP error being forwarded,
   * which skips the MTU check (ensure_mtu_is_adequate ignores ICMP) and needs no `row`/`pkt`.
   */
  tunnelOut(
    descs: Uint32Array,
    d: number,
    row: number,
    pkt: number,
    l3: number,
    l3len: number,
    innerV6: number,
    dest: number,
    nh: number,
    hash: number,
    icmp: boolean,
  ): number {
    const t = this.tables,
      dv = this.dv,
      dOff = dest * DEST_WORDS;
    const tun = t.dest[dOff + DEST_TUN];
    const type = tun & 0xff,
      csum = (tun >>> 8) & 0xff;
    const outerV6 = (t.dest[dOff + DEST_FLAGS] & DESTF_V6) !== 0 ? 1 : 0;
    const over = tunnelOverhead(type, csum, outerV6);
    const mtu = this.pmtu.effective(dest, t.dest[dOff + DEST_MTU], pmtuKey(t.dest, dOff), this.now);
    if (mtu > 0) {
      // __ip_vs_get_out_rt, IP_VS_RT_MODE_TUNNEL: the tunnel's own MTU
      const tmtu = mtu - over;
      if (tmtu < (outerV6 ? IPV6_MIN_MTU : IPV4_MIN_MTU)) return ~this.drop(Stat.DropTunnelMtu);
      if (!icmp && l3len > tmtu) return ~this.tooBig(descs, d, row, pkt, innerV6, tmtu);
    }
    const s0 = t.dest[dOff + DEST_TUN_SRC],
      s1 = t.dest[dOff + DEST_TUN_SRC + 1],
      s2 = t.dest[dOff + DEST_TUN_SRC + 2],
      s3 = t.dest[dOff + DEST_TUN_SRC + 3];
    // the route lookup gave no source address to put on the outer header
    if ((s0 | s1 | s2 | s3) === 0) return ~this.drop(Stat.DropNoRoute);
    const frame = descs[d + D_ADDR];
    if ((frame & (abi.XVS_FRAME_SIZE - 1)) < over) return ~this.drop(Stat.DropNoHeadroom);
    let id = 0;
    if (!outerV6 && !innerV6 && (dv.getUint16(l3 + IPV4_FRAG) & IPV4_FLAG_DF) === 0) {
      id = this.ipIds[dest] = (this.ipIds[dest] + 1) & 0xffff;
    }
    const o = encapsulate(
      this.u8,
      dv,
      l3,
      l3len,
      innerV6,
      outerV6,
      type,
      csum,
      t.dest[dOff + DEST_TUN_PORT],
      flowSourcePort(hash),
      id,
      s0,
      s1,
      s2,
      s3,
      t.dest[dOff + DEST_ADDR],
      t.dest[dOff + DEST_ADDR + 1],
      t.dest[dOff + DEST_ADDR + 2],
      t.dest[dOff + DEST_ADDR + 3],
    );
    const nf = o - ETH_HLEN;
    setEtherType(dv, nf, outerV6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
    const port = this.nh.setMacs(dv, nf, nh, t.ports);
    if (port < 0) return ~this.drop(Stat.DropNeighbour);
    descs[d + D_ADDR] = nf;
    descs[d + D_LEN] = ETH_HLEN + over + l3len;
    return port;
  }

  /**
   * No route to the real server (dst_link_failure in __ip_vs_get_out_rt): the client gets ICMP
   * host unreachable (IPv6: address unreachable), and the packet is dropped. Returns the out port.
   */
  private noRoute(descs: Uint32Array, d: number, row: number, pkt: number, v6: number): number {
    this.counters.verdicts[Stat.DropNoRoute] += 1;
    return this.sendIcmp(descs, d, row, pkt, v6, v6 ? ICMPV6_DEST_UNREACH : ICMP_DEST_UNREACH, v6 ? ICMPV6_CODE_ADDR_UNREACH : ICMP_CODE_HOST_UNREACH, 0);
  }

  /** Real server -> client reply of a NAT connection (ip_vs_out). Returns the out port. */
  private reply(descs: Uint32Array, d: number, row: number, pkt: number, id: number): number {
    const rec = this.conns.rec,
      o = id * CONN_WORDS,
      u8 = this.u8,
      dv = this.dv,
      f = this.flows;
    const ps = rec[o + CONN_PROTO_STATE];
    const proto = (ps >>> 8) & 0xff;
    const flags = rec[o + CONN_FLAGS];
    const v6 = flags & CF_V6;
    const svc = rec[o + CONN_SVC],
      dest = rec[o + CONN_DEST];
    const l3 = f[row + FLOW_L3],
      l4 = f[row + FLOW_L4];
    const l3len = this.l3Len[pkt];
    this.countOut(svc, dest, l3len);
    if (proto === PROTO_TCP) {
      this.setState(id, proto, tcpNextState(DIR_OUTPUT, f[row + FLOW_META] & 0xff, ps & 0xff));
    } else {
      // a reply marks the client's persistence template ASSURED (udp_state_transition)
      if (this.conns === this.home) setUdpState(this.conns, id, true, this.udpTicks, this.now);
      else peerSetUdpState(this.conns, id, this.udpTicks, this.now);
    }
    if (hopsLeft(u8, l3, v6) <= 1) return this.timeExceeded(descs, d, row, pkt, v6);
    const port = this.clientHop(descs, d, id);
    if (port < 0) return OUT_DROP;
    const vport = rec[o + CONN_CPORT_VPORT] & 0xffff;
    if (v6) {
      snat6(u8, dv, l3, l4, l3len - (l4 - l3), proto, rec[o + CONN_VADDR], rec[o + CONN_VADDR + 1], rec[o + CONN_VADDR + 2], rec[o + CONN_VADDR + 3], vport);
    } else {
      snat4(u8, dv, l3, l4, l3len - (l4 - l3), proto, rec[o + CONN_VADDR], vport);
    }
    this.decTtl(l3, v6);
    this.counters.verdicts[Stat.FwdOut] += 1;
    this.flowCache.seen(this, id, DIR_OUT); // a NAT reply: the XDP program may forward the rest (flowcache.ts)
    return port;
  }

  /** ip_vs_in_stats: a client packet (`bytes` of IP packet, before mangling) on its service and dest. */
  countIn(svc: number, dest: number, bytes: number): void {
    this.countTraffic(svc, dest, bytes, TS_INPKTS, TS_INBYTES);
  }

  /** ip_vs_out_stats: a packet back from the real server on its service and dest. */
  countOut(svc: number, dest: number, bytes: number): void {
    this.countTraffic(svc, dest, bytes, TS_OUTPKTS, TS_OUTBYTES);
  }

  private countTraffic(svc: number, dest: number, bytes: number, pktsWord: number, bytesWord: number): void {
    const tr = this.counters.traffic,
      s = svc * TS_WORDS,
      de = DEST_TRAFFIC_BASE + dest * TS_WORDS;
    tr[s + pktsWord] += 1;
    tr[s + bytesWord] += bytes;
    tr[de + pktsWord] += 1;
    tr[de + bytesWord] += bytes;
  }

  /**
   * Address the frame of descs[d] to connection `id`'s client (NAT replies, relayed ICMP): the
   * MACs of its next hop, or the MAC its packets came from when the kernel knew none. Returns
   * the port to send on, or -1 after counting the drop (no route, MAC not resolved).
   */
  clientHop(descs: Uint32Array, d: number, id: number): number {
    const rec = this.conns.rec,
      o = id * CONN_WORDS,
      t = this.tables;
    const hop = rec[o + CONN_NEXTHOP];
    const frame = descs[d + D_ADDR];
    if (hop === HOP_NO_ROUTE) {
      this.drop(Stat.DropNoRoute);
      return -1;
    }
    if (hop >= 0) {
      const port = this.nh.setMacs(this.dv, frame, hop, t.ports);
      if (port < 0) this.drop(Stat.DropNeighbour);
      return port;
    }
    const port = -1 - hop;
    setSrcMac(this.dv, frame, t.ports[port * PORT_WORDS + PORT_MAC_HI], t.ports[port * PORT_WORDS + PORT_MAC_LO]);
    setDstMac(this.dv, frame, rec[o + CONN_MAC_HI], rec[o + CONN_MAC_LO]);
    return port;
  }

  /** TTL / hop limit <= 1: answer ICMP time exceeded and drop (ip_vs_xmit's decrement check). Returns the out port. */
  private timeExceeded(descs: Uint32Array, d: number, row: number, pkt: number, v6: number): number {
    this.counters.verdicts[Stat.DropTtl] += 1;
    return this.sendIcmp(descs, d, row, pkt, v6, v6 ? ICMPV6_TIME_EXCEEDED : ICMP_TIME_EXCEEDED, 0, 0);
  }

  /**
   * Larger than the path MTU (ensure_mtu_is_adequate): IPv4 with DF gets ICMP fragmentation needed
   * and IPv6 packet too big, with `mtu`, and is dropped. IPv4 without DF the kernel would fragment
   * (pmtu_disc=1, ignore_df); xvs cannot split a frame in two, so it answers it the same way, which
   * makes Linux senders lower their path MTU and fragment at the source, and counts it apart.
   * Returns the out port.
   */
  private tooBig(descs: Uint32Array, d: number, row: number, pkt: number, v6: number, mtu: number): number {
    const l3 = this.flows[row + FLOW_L3];
    const noDf = !v6 && (this.dv.getUint16(l3 + IPV4_FRAG) & IPV4_FLAG_DF) === 0;
    this.counters.verdicts[noDf ? Stat.DropMtuNoDf : Stat.DropMtu] += 1;
    return this.sendIcmp(descs, d, row, pkt, v6, v6 ? ICMPV6_PKT_TOOBIG : ICMP_DEST_UNREACH, v6 ? 0 : ICMP_CODE_FRAG_NEEDED, mtu);
  }

  /** TTL / hop limit minus one (xmit/dr.ts: what every method does to the client's packet). */
  decTtl(l3: number, v6: number): void {
    decTtl(this.u8, this.dv, l3, v6);
  }

  /**
   * Replace the frame with an ICMP error to its sender (the caller counted the packet's own
   * verdict). Returns its in port, or OUT_DROP past the ICMP rate limits.
   */
  sendIcmp(descs: Uint32Array, d: number, row: number, pkt: number, v6: number, type: number, code: number, rest: number): number {
    const l3 = this.flows[row + FLOW_L3];
    const frame = descs[d + D_ADDR];
    const f = this.flows;
    const exempt = v6 ? type === ICMPV6_PKT_TOOBIG : type === ICMP_DEST_UNREACH && code === ICMP_CODE_FRAG_NEEDED;
    if (!this.icmpLimit.allow(this.now, exempt, f[row + FLOW_SRC], f[row + FLOW_SRC + 1], f[row + FLOW_SRC + 2], f[row + FLOW_SRC + 3])) {
      // the kernel stays silent past its ICMP rate limits; the packet's own verdict was counted
      return this.drop(Stat.IcmpRateLimited);
    }
    const len = v6
      ? icmp6Error(this.u8, this.dv, frame, l3, this.l3Len[pkt], type, code, rest)
      : icmp4Error(this.u8, this.dv, frame, l3, this.l3Len[pkt], type, code, rest);
    descs[d + D_LEN] = len;
    this.counters.verdicts[Stat.IcmpSent] += 1;
    return descs[d + D_IN];
  }

  /**
   * Replace the TCP segment with the RST the director's stack would answer it with (see
   * xmit/tcp-reset.ts) and send it back out its port. The caller has counted the segment's own
   * verdict and checked that it carries no RST. Returns the out port (the one it came in on).
   */
  sendReset(descs: Uint32Array, d: number, row: number, pkt: number, v6: number): number {
    const f = this.flows,
      l3 = f[row + FLOW_L3],
      l4 = f[row + FLOW_L4],
      frame = descs[d + D_ADDR];
    descs[d + D_LEN] = v6 ? tcpReset6(this.u8, this.dv, frame, l3, l4, this.l3Len[pkt]) : tcpReset4(this.u8, this.dv, frame, l3, l4, this.l3Len[pkt]);
    this.counters.verdicts[Stat.TcpResetSent] += 1;
    return descs[d + D_IN];
  }

  /** Expire a connection at once (conn reuse, expire_nodest_conn). */
  expireNow(id: number): void {
    // another worker's connection is released by its owner only (its timer)
    if (this.conns !== this.home) return;
    this.release(id);
  }

  release(id: number): void {
    this.flowCache.released(this, id); // its flow cache entries go with it
    const rec = this.conns.rec,
      o = id * CONN_WORDS;
    const flags = rec[o + CONN_FLAGS];
    unbindDest(this.counters, this.tables, rec[o + CONN_DEST], flags);
    this.counters.svcRefs[rec[o + CONN_SVC]] -= 1;
    const ctl = rec[o + CONN_CONTROL];
    // its template, this worker's or another's, controls one less (ip_vs_control_del)
    if ((flags & CF_TEMPLATE) === 0 && ctl !== 0) uncontrol(this.conns, ctl);
    this.conns.release(id);
  }

  /** A view's request about one of our records (conn/peers.ts reconcileRequest). */
  private readonly onRequest = (id: number): void => {
    reconcileRequest(this.home, this.counters, id, this.now);
  };

  /**
   * Several workers: look up the other workers' tables too when this one misses (conn/peers.ts).
   * `all`: every worker's table buffers in worker order, this one's at `self`.
   */
  setPeers(peers: ConnPeers | null): void {
    this.peers = peers;
  }

  /** Use table `t`'s records for the current packet (a peer's view, or `home` again). */
  borrow(t: ConnTable): void {
    this.conns = t;
  }

  /**
   * The own table missed: the packet's connection may be another worker's (a NAT reply, RSS
   * sends it to another queue than its request; a connection installed by the sync daemon or a
   * restart). Handled with that worker's record (conn/peers.ts). Returns the out port, or -1
   * when no worker has it (or a SYN may reuse it: the new connection is made here, and shadows
   * the old one, which its owner's timer ends).
   */
  private peerPacket(descs: Uint32Array, d: number, row: number, pkt: number, proto: number, tcpFlags: number): number {
    const peers = this.peers!;
    const r = peers.find(this.hashes[pkt], this.home.seedConn, this.flows, row);
    if (r < 0) return -1;
    const id = r >> 1;
    this.conns = peers.found;
    let out = -1;
    if ((r & 1) === DIR_OUT) out = this.reply(descs, d, row, pkt, id);
    else if (!this.mayReuse(id, proto, tcpFlags)) out = this.forward(descs, d, row, pkt, id);
    this.conns = this.home;
    if (out >= 0) this.counters.verdicts[Stat.PeerConn] += 1;
    return out;
  }

  private readonly onExpire = (id: number): void => {
    const rec = this.conns.rec,
      o = id * CONN_WORDS;
    // a template still controlling connections, in any worker, retries later (ip_vs_conn_expire:
    // expire_later); else it is ended at once, so no worker links to it any more (persist-template.ts)
    if ((rec[o + CONN_FLAGS] & CF_TEMPLATE) !== 0 && !kill(rec, id)) {
      this.conns.rearm(id, this.now, TEMPLATE_RETRY_SEC * TICKS_PER_SEC);
      return;
    }
    // a cached connection expires only if XDP forwarded nothing of it in time (flowcache.ts)
    if (this.flowCache.deferExpiry(this, id)) return;
    this.counters.verdicts[Stat.ConnsExpired] += 1;
    this.release(id);
  };

  /** Run the timer wheel up to now (bounded work); returns the number of records examined. */
  expire(): number {
    if (this.peers !== null) this.home.drainRequests(this.peers.workers, this.onRequest);
    if (this.nodestCursor >= 0) this.nodestCursor = flushNodest(this, this.nodestCursor, NODEST_FLUSH_BUDGET);
    const examined = this.conns.expire(this.now, EXPIRE_BUDGET, this.onExpire);
    this.flowCache.flush(this); // the burst's flow cache work: one FFI call per kind of batch
    return examined;
  }
}
