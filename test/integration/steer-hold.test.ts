/**
 * A stopped xvs's steering program and its XDP flow cache (docs/operations.md "Restarts",
 * docs/flow-cache.md): a cached flow is forwarded in XDP while the daemon runs and while the
 * hold of a hand-over lasts; once the hold is over, nobody updates the cache, so the program
 * passes the flow's packets unchanged without looking them up. Through the compiled
 * native/bpf/xvs_steer.bpf.o with BPF_PROG_TEST_RUN (steer-hold-runner.ts).
 * No daemon runs here: the runner turns the program's flow cache on itself (setFlowCache), so
 * a run with XVS_LAB_FLOW_CACHE=off (daemon.ts) tests the same thing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import * as abi from "../../src/ffi/abi.ts";
import { Lab } from "../../src/tools/lab/netns.ts";
import type { HoldReport } from "./steer-hold-runner.ts";
import { requireRoot } from "./helpers.ts";

let lab: Lab;
let report: HoldReport;
const XDP_PASS = 2,
  XDP_TX = 3,
  XDP_REDIRECT = 4;

beforeAll(async () => {
  requireRoot();
  lab = new Lab("shold");
  await lab.addNs("d");
  await lab.ip("d", "link", "add", "p0", "type", "veth", "peer", "name", "p1");
  await lab.ip("d", "link", "set", "p0", "up");
  await lab.ip("d", "link", "set", "p1", "up");
  const r = await lab.exec("d", [process.execPath, join(import.meta.dir, "steer-hold-runner.ts")]);
  report = JSON.parse(r.stdout.trim().split("\n").pop()!) as HoldReport;
}, 120_000);

afterAll(async () => {
  await lab?.teardown();
});

const forwarded = (name: string) => {
  const s = report.steps[name];
  expect(s).toBeObject();
  expect([XDP_TX, XDP_REDIRECT]).toContain(s.retval);
  expect(s.unchanged).toBe(false);
  expect(s.entryPackets).toBe(1);
  expect(s.passNoSocket).toBe(0);
};

test("the runner finished", () => {
  expect(report.error).toBeUndefined();
  console.log(`steer hold: ${JSON.stringify(report.steps)}`);
});

test("a running daemon's program forwards the cached flow, whatever its hold map says", () => {
  forwarded("running");
  forwarded("runningHoldPast");
});

test("handed over: the cached flow is forwarded while the hold lasts", () => {
  forwarded("handedOverHolding");
});

test("handed over, hold over: the program passes the flow's packet unchanged, without a lookup", () => {
  for (const name of ["handedOverExpired", "handedOverHoldOff"]) {
    const s = report.steps[name];
    expect(s).toBeObject();
    expect(s.retval).toBe(XDP_PASS);
    expect(s.unchanged).toBe(true);
    expect(s.flowStage).toBe(0);
    expect(s.entryPackets).toBe(0);
    expect(s.passNoSocket).toBe(1);
  }
  expect(abi.XVS_FLOW_CFG_HANDED_OVER).not.toBe(abi.XVS_FLOW_CFG_ON);
});
