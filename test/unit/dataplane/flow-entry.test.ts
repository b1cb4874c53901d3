/**
 * The flow cache's TS encoders (dataplane/flow-entry.ts, flow-maps.ts): entries built from a
 * real connection of the fast path (test/util/harness.ts) carry the tuple of the packets of each
 * direction and what XDP needs to rewrite them, in the layout of xvs_common.h; the mirror of the
 * tables writes every entry once, then only what changed. (The bytes XDP makes of them are
 * checked against the fast path in test/integration/steer-flow.test.ts.)
 */
import { expect, test } from "bun:test";
import * as abi from "../../../src/ffi/abi.ts";
import { CONN_WORDS, CONN_FLAGS, CF_USED, CF_TEMPLATE, DIR_IN, DIR_OUT } from "../../../src/conn/table.ts";
import { FlowBatch, FlowRefusal, flowRefusal, ownsFlowKey } from "../../../src/dataplane/flow-entry.ts";
import { type FlowArrayMap, FlowMaps } from "../../../src/dataplane/flow-maps.ts";
import { flowSourcePort } from "../../../src/xmit/tun.ts";
import { hashTuple } from "../../../src/wire/flow.ts";
import { Harness } from "../../util/harness.ts";
import { ACK, PacketBuilder, SYN } from "../../util/packet.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS = "198.18.2.11";
const dest = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const svc = { scheduler: "rr", onePacket: false, schedFlags: [] };

function liveConns(h: Harness): number[] {
  const ids: number[] = [];
  for (let id = 0; id < h.conns.capacity; id++) {
    const f = h.conns.rec[id * CONN_WORDS + CONN_FLAGS];
    if ((f & CF_USED) !== 0 && (f & CF_TEMPLATE) === 0) ids.push(id);
  }
  return ids;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("a NAT connection's two entries: the tuples of its requests and replies, real port, virtual address, next hop", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: RS, port: 8080, forward: "masq" } as never);
  const t = h.apply();
  const syn = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40001, dport: 80, flags: SYN }).build();
  expect(h.one(syn).port).toBe(1);
  const [id] = liveConns(h);
  const b = new FlowBatch(4);
  expect(b.add(h.conns.rec, id, DIR_IN, t, h.conns.seedConn, 3)).toBe(0);
  expect(b.add(h.conns.rec, id, DIR_OUT, t, h.conns.seedConn, 3)).toBe(1);
  const K = abi.XVS_FLOW_KEY_SIZE,
    V = abi.XVS_FLOW_VALUE_SIZE;
  // key: saddr(16) daddr(16) sport dport proto family pad
  const zero12 = "00".repeat(12);
  expect(hex(b.keys.subarray(0, K))).toBe(`c6120102${zero12}c6120064${zero12}9c4100500604` + "0000");
  expect(hex(b.keys.subarray(K, 2 * K))).toBe(`c612020b${zero12}c6120102${zero12}1f909c410604` + "0000");
  const v = b.vdv;
  expect(v.getUint8(abi.XVS_FLOW_DIR_OFF)).toBe(abi.XVS_FLOW_DIR_IN);
  expect(v.getUint16(abi.XVS_FLOW_RPORT_OFF)).toBe(8080);
  expect(v.getUint8(abi.XVS_FLOW_FWD_OFF)).toBe(0);
  expect(v.getUint32(abi.XVS_FLOW_CONN_OFF, true)).toBe(id);
  expect(v.getUint16(abi.XVS_FLOW_WORKER_OFF, true)).toBe(3);
  // the GUE source port of the client packet's flow hash, as FastPath.tunnelOut computes it
  const hash = hashTuple(h.conns.seedConn, 0xc6120102 | 0, 0, 0, 0, 0xc6120064 | 0, 0, 0, 0, (40001 << 16) | 80, 6);
  expect(v.getUint16(abi.XVS_FLOW_TUN_SPORT_OFF)).toBe(flowSourcePort(hash));
  expect(v.getUint8(V + abi.XVS_FLOW_DIR_OFF)).toBe(abi.XVS_FLOW_DIR_OUT);
  expect(hex(b.values.subarray(V + abi.XVS_FLOW_VADDR_OFF, V + abi.XVS_FLOW_VADDR_OFF + 4))).toBe("c6120064");
  expect(v.getUint16(V + abi.XVS_FLOW_VPORT_OFF)).toBe(80);
  // clients sit behind the gateway, next hop 0 in the harness
  expect(v.getInt32(V + abi.XVS_FLOW_HOP_OFF, true)).toBe(0);
  // counters start at zero
  for (const off of [abi.XVS_FLOW_PACKETS_OFF, abi.XVS_FLOW_BYTES_OFF, abi.XVS_FLOW_LAST_NS_OFF]) expect(v.getBigUint64(V + off, true)).toBe(0n);
});

test("an on-link client with no neighbour entry: the reply entry names the port and the MAC its frames came from", () => {
  const h = new Harness();
  h.onLinkClients = true;
  h.model.addService({ protocol: "udp", address: VIP, port: 53, ...svc } as never);
  h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { ...dest, address: RS, port: 53, forward: "masq" } as never);
  const t = h.apply();
  const q = new PacketBuilder()
    .eth("02:00:00:00:0a:00", "02:aa:bb:cc:dd:ee")
    .ipv4({ src: CLIENT, dst: VIP })
    .udp({ sport: 5000, dport: 53 })
    .payload("q")
    .build();
  expect(h.one(q).port).toBe(1);
  const [id] = liveConns(h);
  const b = new FlowBatch(1);
  expect(b.add(h.conns.rec, id, DIR_OUT, t, h.conns.seedConn, 0)).toBe(0);
  expect(b.vdv.getInt32(abi.XVS_FLOW_HOP_OFF, true)).toBe(-1);
  expect(b.vdv.getUint8(abi.XVS_FLOW_OUT_PORT_OFF)).toBe(0);
  expect(hex(b.values.subarray(abi.XVS_FLOW_MAC_OFF, abi.XVS_FLOW_MAC_OFF + 6))).toBe("02aabbccddee");
});

test("what is never cached: templates, DR/TUN replies; one-packet scheduling leaves no connection", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc, persistence: { timeout: 300 } } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: RS, port: 80, forward: "route" } as never);
  h.model.addService({ protocol: "udp", address: VIP, port: 53, ...svc, onePacket: true } as never);
  h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { ...dest, address: RS, port: 53, forward: "masq" } as never);
  const t = h.apply();
  h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40002, dport: 80, flags: SYN }).build());
  const rec = h.conns.rec;
  let template = -1,
    conn = -1;
  for (let id = 0; id < h.conns.capacity; id++) {
    const f = rec[id * CONN_WORDS + CONN_FLAGS];
    if ((f & CF_USED) === 0) continue;
    if ((f & CF_TEMPLATE) !== 0) template = id;
    else conn = id;
  }
  expect(flowRefusal(rec, template, DIR_IN, t)).toBe(FlowRefusal.NotConnection);
  expect(flowRefusal(rec, conn, DIR_IN, t)).toBe(FlowRefusal.Ok);
  expect(flowRefusal(rec, conn, DIR_OUT, t)).toBe(FlowRefusal.Method);
  const b = new FlowBatch(2);
  expect(b.add(rec, template, DIR_IN, t, 0, 0)).toBe(-1);
  expect(b.n).toBe(0);
  // a one-packet UDP service keeps no connection at all (nothing to cache); ACK packets stay cacheable
  h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5001, dport: 53 }).payload("x").build());
  expect(liveConns(h).length).toBe(1);
  h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40002, dport: 80, flags: ACK }).build());
  expect(flowRefusal(rec, conn, DIR_IN, t)).toBe(FlowRefusal.Ok);
});

test("FlowMaps writes every entry once, then only the changes: a removed real server, a MAC change", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: RS, port: 80, forward: "masq" } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: "198.18.2.12", port: 80, forward: "masq" } as never);
  let t = h.apply();
  const writes: Record<string, number[]> = {};
  const values: Record<string, Uint8Array[]> = {};
  const tx: [number, number][] = [];
  const w = {
    arrayUpdate(map: FlowArrayMap, keys: Uint8Array, vals: Uint8Array, n: number, size: number) {
      const dv = new DataView(keys.buffer, keys.byteOffset);
      for (let i = 0; i < n; i++) {
        writes[map] ??= [];
        values[map] ??= [];
        writes[map].push(dv.getUint32(i * 4, true));
        values[map].push(vals.slice(i * size, (i + 1) * size));
      }
      return n;
    },
    setTxPort(port: number, ifindex: number) {
      tx.push([port, ifindex]);
    },
  };
  const m = new FlowMaps(w);
  const nh = new Int32Array(h.nhBuffer);
  m.sync(t, nh);
  expect(writes.flow_reals.length).toBe(abi.XVS_FLOW_MAX_REALS);
  expect(writes.flow_nexthops.length).toBe(abi.XVS_FLOW_MAX_NEXTHOPS);
  expect(writes.flow_ports.length).toBe(abi.XVS_MAX_IFACES);
  const real0 = values.flow_reals[0];
  expect(hex(real0.subarray(0, 4))).toBe("c612020b");
  expect(real0[abi.XVS_FREAL_FLAGS_OFF] & abi.XVS_FREAL_F_AVAILABLE).toBe(abi.XVS_FREAL_F_AVAILABLE);
  expect(new DataView(real0.buffer).getInt32(abi.XVS_FREAL_NEXTHOP_OFF, true)).toBe(1);
  expect(new DataView(real0.buffer).getUint32(abi.XVS_FREAL_MTU_OFF, true)).toBe(1500);
  // nothing changed: nothing written
  for (const k of Object.keys(writes)) writes[k] = [];
  expect(m.sync(t, nh)).toBe(0);
  // the second real server removed (to the trash: unavailable): its entry alone
  h.model.deleteDest({ protocol: "tcp", address: VIP, port: 80 } as never, "198.18.2.12", 80);
  t = h.apply();
  values.flow_reals = [];
  m.sync(t, nh);
  expect(writes.flow_reals).toEqual([1]);
  expect(values.flow_reals[0][abi.XVS_FREAL_FLAGS_OFF] & abi.XVS_FREAL_F_AVAILABLE).toBe(0);
  // a MAC change of next hop 1: that entry alone
  h.setNextHop(1, 1, "02:00:00:00:01:99");
  values.flow_nexthops = [];
  expect(m.syncNexthops(nh)).toBe(1);
  expect(writes.flow_nexthops).toEqual([1]);
  expect(hex(values.flow_nexthops[0])).toBe("020000000199" + "01" + "01");
});

test("two connections sharing a reply tuple: only the one the fast path's lookup finds (the newest) owns the entry", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 7000, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 7000 }, { ...dest, address: RS, port: 7000, forward: "masq" } as never);
  h.model.addService({ protocol: "tcp", address: "198.18.0.101", port: 7000, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: "198.18.0.101", port: 7000 }, { ...dest, address: RS, port: 7000, forward: "masq" } as never);
  h.apply();
  h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40002, dport: 7000, flags: SYN }).build());
  const [older] = liveConns(h);
  h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: "198.18.0.101" }).tcp({ sport: 40002, dport: 7000, flags: SYN }).build());
  const newer = liveConns(h).find((id) => id !== older)!;
  expect({ olderIn: ownsFlowKey(h.conns, older, DIR_IN), olderOut: ownsFlowKey(h.conns, older, DIR_OUT) }).toEqual({ olderIn: true, olderOut: false });
  expect({ newerIn: ownsFlowKey(h.conns, newer, DIR_IN), newerOut: ownsFlowKey(h.conns, newer, DIR_OUT) }).toEqual({ newerIn: true, newerOut: true });
});

test("a learned path MTU of a TUN real server is mirrored (syncReals), its own entry only", () => {
  const h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, ...svc } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: RS, port: 80, forward: "tunnel", tunnel: { type: "ipip" } } as never);
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { ...dest, address: "198.18.2.12", port: 80, forward: "masq" } as never);
  const t = h.apply();
  const written: [number, number][] = [];
  const w = {
    arrayUpdate(map: FlowArrayMap, keys: Uint8Array, vals: Uint8Array, n: number, size: number) {
      const kd = new DataView(keys.buffer, keys.byteOffset),
        vd = new DataView(vals.buffer, vals.byteOffset);
      if (map === "flow_reals") for (let i = 0; i < n; i++) written.push([kd.getUint32(i * 4, true), vd.getUint32(i * size + abi.XVS_FREAL_MTU_OFF, true)]);
      return n;
    },
    setTxPort() {},
  };
  const m = new FlowMaps(w);
  m.sync(t, new Int32Array(h.nhBuffer));
  written.length = 0;
  // learned 1400 for every dest: only the tunnel one uses it (NAT/DR check the route's MTU, as TS)
  expect(m.syncReals(t, () => 1400)).toBe(1);
  expect(written).toEqual([[0, 1400]]);
});
