/**
 * Learned path MTUs reach the XDP flow cache (dataplane/flow-pmtu.ts, FlowCacheControl.pathMtus):
 * a worker learns into the shared PathMtu memory as icmp.ts does on an ICMP error; the control
 * thread's housekeeping writes that TUN real server's `flow_reals` entry with the MTU, keeps it
 * across generations, and writes the route's MTU back when it expires. (The lab side:
 * test/integration/pmtu.test.ts.)
 */
import { expect, test } from "bun:test";
import * as abi from "../../../src/ffi/abi.ts";
import type { SteerProgram } from "../../../src/ffi/bpf.ts";
import type { FlowArrayMap } from "../../../src/dataplane/flow-maps.ts";
import { FlowCacheControl } from "../../../src/dataplane/flowcache-control.ts";
import { PathMtu, pmtuKey } from "../../../src/dataplane/icmp.ts";
import { DEST_WORDS } from "../../../src/service/tables.ts";
import { TICKS_PER_SEC } from "../../../src/service/clock.ts";
import { Harness } from "../../util/harness.ts";

const VIP = "198.18.0.100";
const dest = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const svc = { scheduler: "rr", onePacket: false, schedFlags: [] };

/** A steering program that records the `flow_reals` writes as [dest, mtu]. */
function fakeProgram(written: [number, number][]): SteerProgram {
  return {
    setFlowCache() {},
    fd: () => 0,
    flowStats: () => [],
    setTxPort() {},
    arrayUpdate(map: FlowArrayMap, keys: Uint8Array, vals: Uint8Array, n: number, size: number) {
      const kd = new DataView(keys.buffer, keys.byteOffset),
        vd = new DataView(vals.buffer, vals.byteOffset);
      if (map === "flow_reals") for (let i = 0; i < n; i++) written.push([kd.getUint32(i * 4, true), vd.getUint32(i * size + abi.XVS_FREAL_MTU_OFF, true)]);
      return n;
    },
  } as unknown as SteerProgram;
}

test("a path MTU a worker learns reaches flow_reals at the next housekeeping, holds across generations, and goes at its expiry", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, {
    ...dest,
    address: "198.18.2.11",
    port: 80,
    forward: "tunnel",
    tunnel: { type: "ipip" },
  } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: "198.18.2.12", port: 80, forward: "masq" } as never);
  let t = h.apply();
  const buffer = PathMtu.allocate();
  let now = 1000;
  const written: [number, number][] = [];
  const ctl = new FlowCacheControl(fakeProgram(written), true, 1024, buffer, () => now);
  const nh = new Int32Array(h.nhBuffer);
  ctl.tables(t, nh);
  expect(written.length).toBe(abi.XVS_FLOW_MAX_REALS);
  expect(written[0]).toEqual([0, 1500]);
  written.length = 0;
  // nothing learned: nothing written
  ctl.pathMtus();
  expect(written).toEqual([]);

  // a worker (its own view of the shared memory) learns 1400 for both dests (learnPmtu does it per address)
  const worker = new PathMtu();
  worker.share(buffer);
  for (const d of [0, 1]) worker.learn(d, 1400, 1500, pmtuKey(t.dest, d * DEST_WORDS), now, 0);
  now += 20;
  ctl.pathMtus();
  // the tunnel real server's entry alone (NAT checks the route's MTU, as TS does)
  expect(written).toEqual([[0, 1400]]);
  written.length = 0;
  ctl.pathMtus();
  expect(written).toEqual([]);

  // a new generation keeps the learned MTU (it does not fall back to the route's until the next housekeeping)
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: "198.18.2.13", port: 80, forward: "masq" } as never);
  t = h.apply();
  ctl.tables(t, nh);
  expect(written.some(([d]) => d === 0)).toBe(false);
  written.length = 0;

  // lowered again by another error
  worker.learn(0, 1300, 1500, pmtuKey(t.dest, 0), now, 0);
  ctl.pathMtus();
  expect(written).toEqual([[0, 1300]]);
  written.length = 0;

  // 600 s on (net.ipv4.route.mtu_expires), nothing more learned: the route's MTU again
  now += 600 * TICKS_PER_SEC;
  ctl.pathMtus();
  expect(written).toEqual([[0, 1500]]);
  written.length = 0;
  ctl.pathMtus();
  expect(written).toEqual([]);
});

test("a failed write is retried by the next housekeeping", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, {
    ...dest,
    address: "198.18.2.11",
    port: 80,
    forward: "tunnel",
    tunnel: { type: "ipip" },
  } as never);
  const t = h.apply();
  const buffer = PathMtu.allocate();
  const written: [number, number][] = [];
  const prog = fakeProgram(written);
  const ctl = new FlowCacheControl(prog, true, 1024, buffer, () => 5);
  ctl.tables(t, new Int32Array(h.nhBuffer));
  written.length = 0;
  const worker = new PathMtu();
  worker.share(buffer);
  worker.learn(0, 1400, 1500, pmtuKey(t.dest, 0), 5, 0);
  const update = prog.arrayUpdate;
  prog.arrayUpdate = () => 0;
  ctl.pathMtus(); // logged, not thrown
  prog.arrayUpdate = update;
  ctl.pathMtus();
  expect(written).toEqual([[0, 1400]]);
});
