/**
 * The flow cache's differential test (issue 17), run inside the lab namespace steer-flow.test.ts
 * made (`ip netns exec NS bun this`; needs two links p0, p1 there for XDP_TX / devmap ports).
 *
 * Every frame of the fuzz corpus, of the fuzz generator and of a table of hand-made frames (DR,
 * TUN IPIP/GUE/GRE, NAT both ways, IPv4 and IPv6, and malformed variants of cached flows) goes
 * through:
 *  - the steering program (BPF_PROG_TEST_RUN, received on p0 = port 0) over a `flows` map that
 *    holds an entry for both directions of every live connection of the TS fast path's table at
 *    that moment (written with dataplane/flow-entry.ts; more than the daemon would cache: every
 *    state, so that every byte the XDP side writes is compared), with flow_reals / flow_nexthops /
 *    flow_ports mirrored by dataplane/flow-maps.ts from the same Tables;
 *  - the TS fast path (test/util/harness.ts, the frame received on port 0).
 * Generated and corpus frames arrive on either port, fixture frames on port 0.
 * Wherever XDP forwards a frame (XDP_TX: its in port, XDP_REDIRECT: the other; no AF_XDP socket is bound,
 * so the steering's own verdicts are only XDP_PASS), TS must forward it to the same port with the
 * same bytes. Prints one JSON DiffReport on stdout.
 */
import * as abi from "../../src/ffi/abi.ts";
import { CF_TEMPLATE, CF_USED, CONN_FLAGS, CONN_WORDS, DIR_IN, DIR_OUT } from "../../src/conn/table.ts";
import { FlowBatch, ownsFlowKey, readFlowCounters } from "../../src/dataplane/flow-entry.ts";
import { FlowMaps } from "../../src/dataplane/flow-maps.ts";
import { flowClockNs, progTestRun, SteerProgram } from "../../src/ffi/bpf.ts";
import { linkInfo } from "../../src/ffi/netlink.ts";
import { PORT_IFINDEX, PORT_WORDS } from "../../src/nexthop/table.ts";
import type { Tables } from "../../src/service/tables.ts";
import { loadCorpus } from "../fuzz/corpus.ts";
import { FrameGen, Rng } from "../fuzz/gen.ts";
import { fuzzModel } from "../fuzz/rig.ts";
import { Harness } from "../util/harness.ts";
import { handMadeFrames, addFlowServices, flowFrame } from "./steer-flow-fixture.ts";
import { type CompletionCost, completionCost } from "./steer-flow-cost.ts";

export interface DiffReport {
  frames: number;
  /** Frames XDP forwarded, by source (corpus, gen, fixture case name). */
  forwarded: Record<string, number>;
  /** XDP-forwarded frames whose TS output differed (first ones, with hex). */
  mismatches: string[];
  mismatchCount: number;
  /** Fixture cases: the XDP verdict of each named frame. */
  /** Fixture cases: the XDP verdict, TS's port, equal output, and the flow_stats counters that moved. */
  /** `untouched`: a frame XDP did not forward left the program byte for byte as it came. */
  fixture: Record<string, { retval: number; tsPort: number; same: boolean; untouched: boolean; moved: Record<number, number> }>;
  flowStats: number[];
  /** Entry counters after XDP forwarded 3 requests and 2 replies of one cached NAT flow (flowLookup), and the entries flowDump walked vs written. */
  /** nat4's request and reply with both ports marked NO_XDP (veth-xdp.ts), then unmarked. */
  noXdp?: { retvals: number[]; bypassPort: number; afterClear: number[] };
  /** req, rep and a DR frame without and with both ports marked TX_REDIRECT. */
  txRedirect?: { plain: number; flagged: number; sameBytes: boolean }[];
  counters?: {
    inPackets: number;
    inBytes: number;
    inLastNs: number;
    outPackets: number;
    outBytes: number;
    l3len: number;
    replyL3len: number;
    walked: number;
    written: number;
    beforeNs: number;
    nowNs: number;
  };
  /** XVS_FLOW_COST=1: what a partial checksum's completion costs (steer-flow-cost.ts) */
  cost?: CompletionCost;
  error?: string;
}

/** The `flows` key of an IPv4 TCP/UDP frame (addresses, ports, protocol, family), as the program builds it. */
function keyOf(frame: Uint8Array, _unused: number): Uint8Array {
  const k = new Uint8Array(abi.XVS_FLOW_KEY_SIZE);
  const ihl = (frame[14] & 15) * 4;
  k.set(frame.subarray(14 + 12, 14 + 16), abi.XVS_FLOW_KEY_SADDR_OFF);
  k.set(frame.subarray(14 + 16, 14 + 20), abi.XVS_FLOW_KEY_DADDR_OFF);
  k.set(frame.subarray(14 + ihl, 14 + ihl + 4), abi.XVS_FLOW_KEY_SPORT_OFF);
  k[abi.XVS_FLOW_KEY_PROTO_OFF] = frame[14 + 9];
  k[abi.XVS_FLOW_KEY_FAMILY_OFF] = abi.XVS_FAMILY_V4;
  return k;
}

const XDP_TX = 3,
  XDP_REDIRECT = 4;
const GEN_FRAMES = Number(process.env.XVS_FLOW_DIFF_FRAMES ?? 4000);

const h = new Harness(4096);
fuzzModel(h);
addFlowServices(h);
let t: Tables = h.apply();
const if0 = linkInfo("p0").ifindex,
  if1 = linkInfo("p1").ifindex;
const patchPorts = (tb: Tables) => {
  tb.ports[0 * PORT_WORDS + PORT_IFINDEX] = if0;
  tb.ports[1 * PORT_WORDS + PORT_IFINDEX] = if1;
};
patchPorts(t);

const report: DiffReport = { frames: 0, forwarded: {}, mismatches: [], mismatchCount: 0, fixture: {}, flowStats: [] };
const prog = await SteerProgram.load({ flowEntries: 65536 });
try {
  prog.setFlowCache(true);
  const maps = new FlowMaps(prog);
  maps.sync(t, new Int32Array(h.nhBuffer));
  const batch = new FlowBatch(2 * h.conns.capacity);
  const old = new FlowBatch(2 * h.conns.capacity);

  /** Make `flows` hold both directions of every live connection of the TS table. */
  const fillFlows = () => {
    // delete what the last fill wrote
    old.n = 0;
    for (let i = 0; i < batch.n; i++) {
      old.keys.set(batch.keys.subarray(i * abi.XVS_FLOW_KEY_SIZE, (i + 1) * abi.XVS_FLOW_KEY_SIZE), old.n * abi.XVS_FLOW_KEY_SIZE);
      old.n++;
    }
    prog.flowDelete(old);
    batch.clear();
    const rec = h.conns.rec;
    for (let id = 0; id < h.conns.capacity; id++) {
      const f = rec[id * CONN_WORDS + CONN_FLAGS];
      if ((f & CF_USED) === 0 || (f & CF_TEMPLATE) !== 0) continue;
      // only the connection TS's lookup finds for a tuple owns its entry (flow-entry.ts ownsFlowKey)
      if (ownsFlowKey(h.conns, id, DIR_IN)) batch.add(rec, id, DIR_IN, t, h.conns.seedConn, 0);
      if (ownsFlowKey(h.conns, id, DIR_OUT)) batch.add(rec, id, DIR_OUT, t, h.conns.seedConn, 0);
    }
    const ok = prog.flowUpdate(batch);
    if (ok !== batch.n) throw new Error(`flows: ${batch.n - ok} entries not written`);
  };

  /** Run one frame received on port `inPort` (0: p0, 1: p1) through both; XDP_TX is that port, XDP_REDIRECT the other. */
  const one = (source: string, frame: Uint8Array, name?: string, inPort = 0) => {
    report.frames++;
    fillFlows();
    let retval = -1,
      xout: Uint8Array | null = null;
    const before = name !== undefined ? prog.flowStats() : [];
    if (frame.length >= 14) {
      const r = progTestRun(prog.progFd, frame, inPort === 0 ? if0 : if1, 0);
      retval = r.retval;
      xout = r.frame;
    }
    const ts = h.one(frame, inPort);
    const fwd = retval === XDP_TX || retval === XDP_REDIRECT;
    const same = fwd && ts.port === (retval === XDP_TX ? inPort : 1 - inPort) && Buffer.from(ts.frame).equals(Buffer.from(xout!));
    if (name !== undefined) {
      const moved: Record<number, number> = {};
      prog.flowStats().forEach((v, i) => {
        if (v !== before[i]) moved[i] = v - before[i];
      });
      const untouched = !fwd && xout !== null && Buffer.from(xout).equals(Buffer.from(frame));
      report.fixture[name] = { retval, tsPort: ts.port, same, untouched, moved };
    }
    if (!fwd) return;
    report.forwarded[source] = (report.forwarded[source] ?? 0) + 1;
    if (!same) {
      report.mismatchCount++;
      if (report.mismatches.length < 10) {
        report.mismatches.push(
          `${source}${name ? `/${name}` : ""}: xdp ${retval} ts port ${ts.port}\n in  ${Buffer.from(frame).toString("hex")}\n xdp ${Buffer.from(xout!).toString("hex")}\n ts  ${Buffer.from(ts.frame).toString("hex")}`,
        );
      }
    }
  };

  // hand-made frames first (their connections are set up by their own first packets)
  for (const c of handMadeFrames()) one("fixture", c.frame, c.name);
  // the corpus, then the generator; each frame twice, so that connections its first copy made are cached
  for (const [k, c] of loadCorpus().entries()) {
    one("corpus", c.bytes, undefined, k & 1);
    one("corpus", c.bytes, undefined, k & 1);
  }
  const gen = new FrameGen({ frames: loadCorpus().map((c) => c.bytes) });
  const rng = new Rng(Number(process.env.XVS_FLOW_DIFF_SEED ?? 1717));
  for (let i = 0; i < GEN_FRAMES; i++) {
    const n = gen.frame(rng);
    const f = gen.out.slice(0, n);
    // received on either port (replies usually arrive on the real servers' side)
    const inPort = (i >> 1) & 1;
    one("gen", f, undefined, inPort);
    // replay: the same frame again once its connection exists (now possibly cached)
    if ((i & 1) === 0) one("gen", f, undefined, inPort);
    // the configuration may change under cached flows: recompile now and then (generation)
    if (i % 1000 === 999) {
      t = h.apply();
      patchPorts(t);
      maps.sync(t, new Int32Array(h.nhBuffer));
    }
  }
  report.flowStats = prog.flowStats();

  // the entry's counters (what the control thread folds) and the batch walk: a fresh fill, then
  // XDP alone forwards 3 requests and 2 replies of the cached nat4 flow
  fillFlows();
  const beforeNs = flowClockNs();
  const req = flowFrame("nat4", "ok:data"),
    rep = flowFrame("nat4", "ok:reply");
  for (let i = 0; i < 3; i++) progTestRun(prog.progFd, req, if0, 0);
  for (let i = 0; i < 2; i++) progTestRun(prog.progFd, rep, if0, 0);
  const probe = new FlowBatch(2);
  probe.keys.set(keyOf(req, 0));
  probe.keys.set(keyOf(rep, 0), abi.XVS_FLOW_KEY_SIZE);
  probe.n = 2;
  const found = prog.flowLookup(probe);
  if (found !== 2) throw new Error(`flowLookup found ${found} of 2 entries`);
  const a = readFlowCounters(probe.vdv, 0, { packets: 0, bytes: 0, lastNs: 0 });
  const b = readFlowCounters(probe.vdv, abi.XVS_FLOW_VALUE_SIZE, { packets: 0, bytes: 0, lastNs: 0 });
  let walked = 0;
  const walk = new FlowBatch(64);
  prog.flowDump(walk, 64, (w) => {
    walked += w.n;
  });
  report.counters = {
    inPackets: a.packets,
    inBytes: a.bytes,
    inLastNs: a.lastNs,
    outPackets: b.packets,
    outBytes: b.bytes,
    l3len: req.length - 14,
    replyL3len: rep.length - 14,
    walked,
    // distinct keys: two connections may share a key (a client reusing a NAT real server's tuple): one entry
    written: new Set(
      Array.from({ length: batch.n }, (_, i) => Buffer.from(batch.keys.subarray(i * abi.XVS_FLOW_KEY_SIZE, (i + 1) * abi.XVS_FLOW_KEY_SIZE)).toString("hex")),
    ).size,
    beforeNs,
    nowNs: flowClockNs(),
  };

  // ports marked as not taking XDP frames (a veth whose peer has no NAPI): the cached flow's
  // frames go on to the steering, counted bypass_port; unmarked, XDP forwards them again
  fillFlows();
  maps.setNoXdp(0, true);
  maps.setNoXdp(1, true);
  const bp = prog.flowStats()[abi.XVS_FLOW_BYPASS_PORT];
  const retvals = [progTestRun(prog.progFd, req, if0, 0).retval, progTestRun(prog.progFd, rep, if0, 0).retval];
  const bypassPort = prog.flowStats()[abi.XVS_FLOW_BYPASS_PORT] - bp;
  maps.setNoXdp(0, false);
  maps.setNoXdp(1, false);
  report.noXdp = { retvals, bypassPort, afterClear: [progTestRun(prog.progFd, req, if0, 0).retval, progTestRun(prog.progFd, rep, if0, 0).retval] };

  // veth ports (XVS_FPORT_F_TX_REDIRECT): a frame back out of its own port goes by a redirect, not
  // XDP_TX (xvs_flow.h xf_transmit), with the same bytes; other frames are unchanged
  const frames = [req, rep, flowFrame("dr4", "ok:data")];
  fillFlows();
  const plain = frames.map((f) => progTestRun(prog.progFd, f, if0, 0));
  fillFlows();
  maps.setTxRedirect(0, true);
  maps.setTxRedirect(1, true);
  const flagged = frames.map((f) => progTestRun(prog.progFd, f, if0, 0));
  maps.setTxRedirect(0, false);
  maps.setTxRedirect(1, false);
  report.txRedirect = frames.map((_, i) => ({
    plain: plain[i].retval,
    flagged: flagged[i].retval,
    sameBytes: Buffer.from(plain[i].frame).equals(Buffer.from(flagged[i].frame)),
  }));
  if (process.env.XVS_FLOW_COST === "1") {
    fillFlows();
    report.cost = completionCost(prog.progFd, if0, [flowFrame("dr4", "ok:data"), flowFrame("dr4", "ok:big")]);
  }
} catch (e) {
  report.error = (e as Error).stack ?? String(e);
} finally {
  prog.close();
}
console.log(JSON.stringify(report));
process.exit(0);
