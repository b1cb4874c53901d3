/**
 * Golden packets of the steering program: every frame of steer-fixture.ts goes
 * through the real compiled native/bpf/xvs_steer.bpf.o with BPF_PROG_TEST_RUN (frame in,
 * verdict out), with maps filled by the dataplane's own code, as Katran tests its program.
 *
 * Needs root: the program runs in a lab namespace with a two-queue veth (eth0, its peer down so
 * that no real traffic moves the counters) where a live AF_XDP socket sits on queue 0.
 * For each frame: the verdict (XDP_REDIRECT only where the socket's slot is filled), exactly one
 * XDP counter moved by exactly one, and the frame unchanged (the program never rewrites). Then
 * the configuration changes (Dataplane.apply) and more frames check that the maps followed:
 * deleted services gone, added ones present, trashed NAT real servers still steered.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { Lab } from "../../src/tools/lab/netns.ts";
import { CASES as BEFORE, CASES_AFTER_CHANGE, LOCAL4, LOCAL6, type SteerResult } from "./steer-fixture.ts";
import { requireRoot } from "./helpers.ts";

const CASES = [...BEFORE, ...CASES_AFTER_CHANGE];
let lab: Lab;
const results = new Map<string, SteerResult>();

beforeAll(async () => {
  requireRoot();
  lab = new Lab("steer");
  await lab.addNs("d");
  await lab.ip(
    "d",
    "link",
    "add",
    "eth0",
    "numtxqueues",
    "2",
    "numrxqueues",
    "2",
    "type",
    "veth",
    "peer",
    "name",
    "eth1",
    "numtxqueues",
    "2",
    "numrxqueues",
    "2",
  );
  await lab.ip("d", "link", "set", "eth0", "up");
  await lab.ip("d", "addr", "add", `${LOCAL4}/16`, "dev", "eth0");
  await lab.ip("d", "addr", "add", `${LOCAL6}/64`, "dev", "eth0", "nodad");
  const r = await lab.exec("d", [process.execPath, join(import.meta.dir, "steer-runner.ts")]);
  for (const x of JSON.parse(r.stdout.trim()) as SteerResult[]) results.set(x.name, x);
}, 60_000);

afterAll(async () => {
  await lab?.teardown();
});

test("the runner reported every case, once", () => {
  expect([...results.keys()].sort()).toEqual(CASES.map((c) => c.name).sort());
  expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
});

for (const c of CASES) {
  test(c.name, () => {
    const r = results.get(c.name);
    expect(r).toBeObject();
    if (typeof c.retval === "number") {
      expect({ error: r!.error, retval: r!.retval }).toEqual({ error: undefined, retval: c.retval });
      expect(r!.unchanged).toBe(true);
      expect(r!.moved).toEqual({ [c.stat!]: 1 });
    } else {
      expect(r!.retval).toBeUndefined();
      expect(r!.error).toMatch(c.retval.refused);
      expect(r!.moved).toEqual({});
    }
  });
}
