/**
 * The flow cache's veth check (dataplane/veth-xdp.ts) without a kernel: which counter movements
 * count as lost XDP frames, and the port flag FlowMaps writes into `flow_ports` (set, kept
 * across generations, cleared). The kernel side (XDP features, real veths) is the lab
 * test/integration/flow-cache-veth.test.ts.
 */
import { expect, test } from "bun:test";
import * as abi from "../../../src/ffi/abi.ts";
import { type FlowArrayMap, FlowMaps } from "../../../src/dataplane/flow-maps.ts";
import { lostXdpFrames, vethCounters } from "../../../src/dataplane/veth-xdp.ts";
import { Harness } from "../../util/harness.ts";

test("vethCounters sums the XDP_TX counters of every rx queue and nothing else", () => {
  const s = new Map<string, number>([
    ["peer_ifindex", 7],
    ["rx_queue_0_xdp_tx", 5],
    ["rx_queue_1_xdp_tx", 2],
    ["rx_queue_0_xdp_tx_errors", 3],
    ["rx_queue_1_xdp_tx_errors", 4],
    ["tx_queue_0_xdp_xmit", 100],
    ["tx_queue_0_xdp_xmit_errors", 9],
    ["rx_queue_0_drops", 11],
  ]);
  expect(vethCounters(s)).toEqual({ tx: 7, txErrors: 7 });
});

test("lost XDP frames: errors while nothing was taken; errors beside successes are a full ring, not a lost peer", () => {
  expect(lostXdpFrames({ tx: 0, txErrors: 0 }, { tx: 0, txErrors: 6 })).toBe(6);
  expect(lostXdpFrames({ tx: 10, txErrors: 2 }, { tx: 10, txErrors: 2 })).toBe(0);
  expect(lostXdpFrames({ tx: 10, txErrors: 2 }, { tx: 40, txErrors: 5 })).toBe(0);
  // counters of a re-created interface go back: never a negative loss
  expect(lostXdpFrames({ tx: 10, txErrors: 9 }, { tx: 10, txErrors: 1 })).toBe(0);
});

test("FlowMaps.setNoXdp: the port's flag is written at once, kept by later generations, cleared", () => {
  const h = new Harness();
  const t = h.apply();
  const ports: [number, number][] = [];
  const w = {
    arrayUpdate(map: FlowArrayMap, keys: Uint8Array, vals: Uint8Array, n: number, size: number) {
      const kd = new DataView(keys.buffer, keys.byteOffset);
      if (map === "flow_ports") for (let i = 0; i < n; i++) ports.push([kd.getUint32(i * 4, true), vals[i * size + abi.XVS_FPORT_FLAGS_OFF]]);
      return n;
    },
    setTxPort() {},
  };
  const m = new FlowMaps(w);
  // before the first generation: remembered, written with it
  expect(m.setNoXdp(1, true)).toBe(0);
  m.sync(t, new Int32Array(h.nhBuffer));
  expect(ports.filter(([, f]) => f !== 0)).toEqual([[1, abi.XVS_FPORT_F_NO_XDP]]);
  ports.length = 0;
  expect(m.setNoXdp(0, true)).toBe(1);
  expect(ports).toEqual([[0, abi.XVS_FPORT_F_NO_XDP]]);
  // a new generation rewrites nothing: the flags are part of the image
  ports.length = 0;
  expect(m.sync(h.apply(), new Int32Array(h.nhBuffer))).toBe(0);
  expect(m.setNoXdp(0, false)).toBe(1);
  expect(ports).toEqual([[0, 0]]);
  // out of range: nothing
  expect(m.setNoXdp(abi.XVS_MAX_IFACES, true)).toBe(0);
});
