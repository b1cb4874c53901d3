/**
 * The flow cache of the steering program (issue 17), through the real compiled
 * native/bpf/xvs_steer.bpf.o with BPF_PROG_TEST_RUN: golden frames (steer-flow-fixture.ts) and the
 * differential test over the fuzz corpus and generator (steer-flow-runner.ts): wherever XDP
 * forwards a frame, its bytes and port are the TS fast path's; malformed frames of a cached flow
 * are never forwarded by XDP.
 *
 * Needs root: the runner runs in a lab namespace holding two links (p0, p1: a veth pair) that
 * serve as port 0 (XDP_TX, the frame's ingress) and port 1 (XDP_REDIRECT through the devmap).
 * No daemon runs here: the runner turns the program's flow cache on itself (setFlowCache), so
 * a run with XVS_LAB_FLOW_CACHE=off (daemon.ts) tests the same thing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import * as abi from "../../src/ffi/abi.ts";
import { Lab } from "../../src/tools/lab/netns.ts";
import { FLOW_SERVICES, handMadeFrames } from "./steer-flow-fixture.ts";
import type { DiffReport } from "./steer-flow-runner.ts";
import { requireRoot } from "./helpers.ts";

let lab: Lab;
let report: DiffReport;
const XDP_TX = 3,
  XDP_REDIRECT = 4;

beforeAll(async () => {
  requireRoot();
  lab = new Lab("sflow");
  await lab.addNs("d");
  await lab.ip("d", "link", "add", "p0", "type", "veth", "peer", "name", "p1");
  await lab.ip("d", "link", "set", "p0", "up");
  await lab.ip("d", "link", "set", "p1", "up");
  const r = await lab.exec("d", [process.execPath, join(import.meta.dir, "steer-flow-runner.ts")]);
  report = JSON.parse(r.stdout.trim().split("\n").pop()!) as DiffReport;
}, 600_000);

afterAll(async () => {
  await lab?.teardown();
});

test("the runner finished", () => {
  expect(report.error).toBeUndefined();
  console.log(`flow diff: ${report.frames} frames, forwarded by XDP ${JSON.stringify(report.forwarded)}, flow_stats ${JSON.stringify(report.flowStats)}`);
  if (report.cost) console.log(`partial checksum completion, ns per packet by IP length: ${JSON.stringify(report.cost)}`);
  expect(Object.keys(report.fixture).length).toBe(handMadeFrames().length);
});

test("differential: every frame XDP forwarded is byte for byte what the TS fast path sends, on the same port", () => {
  expect(report.mismatches).toEqual([]);
  expect(report.mismatchCount).toBe(0);
  // the comparison is not empty: XDP forwarded frames of the fuzz generator and of the fixture
  expect(report.forwarded.fixture ?? 0).toBeGreaterThan(50);
  expect(report.forwarded.gen ?? 0).toBeGreaterThan(0);
  expect(report.flowStats[abi.XVS_FLOW_FWD]).toBeGreaterThan(0);
});

test("the entry counts what XDP forwarded (packets, IP bytes, last use) and the batch walk sees every entry", () => {
  const c = report.counters!;
  expect(c).toBeObject();
  expect({ inPackets: c.inPackets, inBytes: c.inBytes, outPackets: c.outPackets, outBytes: c.outBytes }).toEqual({
    inPackets: 3,
    inBytes: 3 * c.l3len,
    outPackets: 2,
    outBytes: 2 * c.replyL3len,
  });
  // last_ns is CLOCK_BOOTTIME, as flowClockNs(): between the reads before and after the runs
  expect(c.inLastNs).toBeGreaterThanOrEqual(c.beforeNs);
  expect(c.inLastNs).toBeLessThanOrEqual(c.nowNs);
  expect(c.walked).toBe(c.written);
  expect(c.written).toBeGreaterThan(64); // more than one batch of the walk
});

/** The one flow_stats counter a fixture frame must move, by its case name (after "svc:"). */
function expectedStat(_svc: string, name: string): number | null {
  if (name.startsWith("setup:")) return null; // a SYN (tcp flags) or a UDP reply already cached (fwd)
  if (name.startsWith("ok:")) return abi.XVS_FLOW_FWD;
  const c = name.slice(name.indexOf(":") + 1);
  const table: Record<string, number> = {
    "no-df": abi.XVS_FLOW_BYPASS_TUNNEL,
    ttl1: abi.XVS_FLOW_BYPASS_TTL,
    "reply-ttl1": abi.XVS_FLOW_BYPASS_TTL,
    "partial-csum-over-mtu": abi.XVS_FLOW_BYPASS_MTU,
    "partial-csum-ttl1": abi.XVS_FLOW_BYPASS_TTL,
    "reply-partial-csum-ttl1": abi.XVS_FLOW_BYPASS_TTL,
    "over-mtu": abi.XVS_FLOW_BYPASS_MTU,
    "no-ack": abi.XVS_FLOW_BYPASS_TCP_FLAGS,
    syn: abi.XVS_FLOW_BYPASS_TCP_FLAGS,
    rst: abi.XVS_FLOW_BYPASS_TCP_FLAGS,
    fin: abi.XVS_FLOW_BYPASS_TCP_FLAGS,
    "reply-fin": abi.XVS_FLOW_BYPASS_TCP_FLAGS,
    options: abi.XVS_FLOW_BYPASS_IP_OPTIONS,
    fragment: abi.XVS_FLOW_BYPASS_FRAGMENT,
    // an IHL of 4 or another version: the header cannot even be read for a lookup
    ihl4: abi.XVS_FLOW_NOT_ELIGIBLE,
    version: abi.XVS_FLOW_NOT_ELIGIBLE,
  };
  return table[c] ?? abi.XVS_FLOW_BYPASS_MALFORMED;
}

// the golden table: one test per fixture frame
for (const f of handMadeFrames()) {
  const kind = f.name.split(":")[1];
  test(f.name, () => {
    const r = report.fixture[f.name];
    expect(r).toBeObject();
    // exactly one flow-stage counter moved, the one for this case
    const svcName = f.name.slice(0, f.name.indexOf(":"));
    const want = expectedStat(svcName, f.name.slice(svcName.length + 1));
    if (want !== null) expect(r.moved).toEqual({ [want]: 1 });
    else expect(Object.values(r.moved)).toEqual([1]);
    const fwd = r.retval === XDP_TX || r.retval === XDP_REDIRECT;
    if (kind === "ok") {
      expect({ fwd, same: r.same }).toEqual({ fwd: true, same: true });
      // replies go back out the client side (port 0, the ingress: XDP_TX); requests to the real servers' port 1
      expect(r.retval).toBe(f.name.includes(":reply") ? XDP_TX : XDP_REDIRECT);
    } else if (kind === "setup") {
      // a SYN is TS's; a UDP reply finds the connection its first datagram made already cached
      if (fwd) expect(r.same).toBe(true);
      else expect(r.retval).toBe(2);
    } else {
      // left to TS (ts:, bad:): the steering's own verdict (no socket bound: XDP_PASS), and
      // not a byte changed (a partial checksum is completed only on frames XDP forwards)
      expect({ retval: r.retval, untouched: r.untouched }).toEqual({ retval: 2, untouched: true });
    }
  });
}

test("every service of the fixture had frames forwarded by XDP", () => {
  for (const s of FLOW_SERVICES) {
    const n = Object.entries(report.fixture).filter(([k, v]) => k.startsWith(`${s.name}:`) && (v.retval === XDP_TX || v.retval === XDP_REDIRECT)).length;
    expect(n).toBeGreaterThan(0);
  }
});

test("a port marked NO_XDP (a veth whose peer has no NAPI): a cached flow's frames go on to the steering, counted bypass_port; unmarked, XDP forwards again", () => {
  const n = report.noXdp!;
  for (const r of n.retvals) expect(r === XDP_TX || r === XDP_REDIRECT).toBe(false);
  expect(n.bypassPort).toBe(2);
  for (const r of n.afterClear) expect(r === XDP_TX || r === XDP_REDIRECT).toBe(true);
});

test("a veth port (XVS_FPORT_F_TX_REDIRECT): a cached frame back out of the port it came in on is redirected, not XDP_TX'd, with the same bytes; frames to another port are unchanged", () => {
  const t = report.txRedirect!;
  // the fixture must send at least one frame back out of its own port, or this checks nothing
  expect(t.some((r) => r.plain === XDP_TX)).toBe(true);
  for (const r of t) {
    expect(r.sameBytes).toBe(true);
    expect(r.flagged).toBe(r.plain === XDP_TX ? XDP_REDIRECT : r.plain);
  }
});
