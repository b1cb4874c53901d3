/**
 * The flow cache of a stopped xvs's steering program (dataplane/restart.ts handOver), run inside
 * the lab namespace steer-hold.test.ts made (`ip netns exec NS bun this`; links p0, p1). One
 * cached flow (the dr4 fixture's data segment, written to `flows` as the daemon would) goes through
 * the compiled program with BPF_PROG_TEST_RUN in each state the program can be in:
 * running (hold off), handed over during the hold, handed over after it (hold ended or past its
 * deadline). Prints one JSON HoldReport on stdout.
 */
import * as abi from "../../src/ffi/abi.ts";
import { CF_TEMPLATE, CF_USED, CONN_FLAGS, CONN_WORDS, DIR_IN, DIR_OUT } from "../../src/conn/table.ts";
import { FlowBatch, ownsFlowKey, readFlowCounters } from "../../src/dataplane/flow-entry.ts";
import { FlowMaps } from "../../src/dataplane/flow-maps.ts";
import { HOLD_SECONDS, setHold } from "../../src/dataplane/restart.ts";
import { progTestRun, SteerProgram } from "../../src/ffi/bpf.ts";
import { linkInfo } from "../../src/ffi/netlink.ts";
import { PORT_IFINDEX, PORT_WORDS } from "../../src/nexthop/table.ts";
import { fuzzModel } from "../fuzz/rig.ts";
import { Harness } from "../util/harness.ts";
import { addFlowServices, flowFrame } from "./steer-flow-fixture.ts";

/** One state: the XDP verdict, whether the frame came out unchanged, and the counters that moved. */
export interface HoldStep {
  retval: number;
  unchanged: boolean;
  /** flow_stats: frames the flow stage looked at (all its counters summed). */
  flowStage: number;
  /** the entry's packet counter (both directions) */
  entryPackets: number;
  /** xdp_stats XVS_XDP_PASS_NO_SOCKET */
  passNoSocket: number;
}

export interface HoldReport {
  steps: Record<string, HoldStep>;
  error?: string;
}

const report: HoldReport = { steps: {} };
const h = new Harness(4096);
fuzzModel(h);
addFlowServices(h);
const t = h.apply();
const if0 = linkInfo("p0").ifindex;
t.ports[0 * PORT_WORDS + PORT_IFINDEX] = if0;
t.ports[1 * PORT_WORDS + PORT_IFINDEX] = linkInfo("p1").ifindex;

const prog = await SteerProgram.load({ flowEntries: 1024 });
try {
  prog.setFlowCache(true);
  new FlowMaps(prog).sync(t, new Int32Array(h.nhBuffer));
  // the connection, made by the TS fast path (its SYN), then cached as the daemon caches it
  h.one(flowFrame("dr4", "setup:first"), 0);
  const req = flowFrame("dr4", "ok:data");
  h.one(req, 0);
  const batch = new FlowBatch(2 * h.conns.capacity);
  for (let id = 0; id < h.conns.capacity; id++) {
    const f = h.conns.rec[id * CONN_WORDS + CONN_FLAGS];
    if ((f & CF_USED) === 0 || (f & CF_TEMPLATE) !== 0) continue;
    if (ownsFlowKey(h.conns, id, DIR_IN)) batch.add(h.conns.rec, id, DIR_IN, t, h.conns.seedConn, 0);
    if (ownsFlowKey(h.conns, id, DIR_OUT)) batch.add(h.conns.rec, id, DIR_OUT, t, h.conns.seedConn, 0);
  }
  if (batch.n === 0 || prog.flowUpdate(batch) !== batch.n) throw new Error(`flows: ${batch.n} entries, not all written`);

  const packets = () => {
    const probe = new FlowBatch(batch.n);
    probe.keys.set(batch.keys.subarray(0, batch.n * abi.XVS_FLOW_KEY_SIZE));
    probe.n = batch.n;
    prog.flowLookup(probe);
    let n = 0;
    const c = { packets: 0, bytes: 0, lastNs: 0 };
    for (let i = 0; i < probe.n; i++) n += readFlowCounters(probe.vdv, i * abi.XVS_FLOW_VALUE_SIZE, c).packets;
    return n;
  };
  const step = (name: string) => {
    const fs0 = prog.flowStats().reduce((a, b) => a + b, 0),
      p0 = packets(),
      ns0 = prog.stats()[abi.XVS_XDP_PASS_NO_SOCKET];
    const r = progTestRun(prog.progFd, req, if0, 0);
    report.steps[name] = {
      retval: r.retval,
      unchanged: Buffer.from(r.frame).equals(Buffer.from(req)),
      flowStage: prog.flowStats().reduce((a, b) => a + b, 0) - fs0,
      entryPackets: packets() - p0,
      passNoSocket: prog.stats()[abi.XVS_XDP_PASS_NO_SOCKET] - ns0,
    };
  };

  step("running");
  // a daemon that holds (its start, or a stop before the hand-over) is not a stopped one
  setHold(prog, 0);
  prog.setHold(1n);
  step("runningHoldPast");
  // the stop: hold mode on, then the hand-over (restart.ts handOver.begin, handOver.save)
  setHold(prog, HOLD_SECONDS);
  prog.setFlowHandedOver();
  step("handedOverHolding");
  prog.setHold(1n); // the deadline passed (CLOCK_BOOTTIME 1 ns)
  step("handedOverExpired");
  setHold(prog, 0); // hold ended by hand
  step("handedOverHoldOff");
} catch (e) {
  report.error = (e as Error).stack ?? String(e);
} finally {
  prog.close();
}
console.log(JSON.stringify(report));
process.exit(0);
