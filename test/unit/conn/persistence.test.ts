/**
 * Persistence templates, weight 0 and removed dests, one-packet scheduling and thresholds
 * through the fast path (ipvs-behaviour.md §10 items 29, 36, 37, 38, 43).
 */
import { describe, expect, test } from "bun:test";
import { ACK, PacketBuilder, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS } from "../../util/harness.ts";
import { connRows } from "../sched/replay.ts";
import type { DestSpecT } from "../../../src/control/schemas.ts";
import { TEMPLATE_RETRY_SEC } from "../../../src/conn/state.ts";

const VIP = "198.18.0.100",
  RS1 = "198.18.17.2",
  RS2 = "198.18.18.2",
  RS3 = "198.18.19.2";
const K80 = { protocol: "tcp" as const, address: VIP, port: 80 };
const dest = (address: string, o: Partial<DestSpecT> = {}): DestSpecT => ({ address, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0, ...o });

function syn(src: string, sport: number, flags = SYN, dport = 80): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).tcp({ sport, dport, flags }).build();
}
function dgram(src: string, sport: number): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).udp({ sport, dport: 53 }).payload("q").build();
}
/** Real server address a forwarded frame goes to ("" when not forwarded). */
function rsOf(h: Harness, f: Uint8Array): string {
  const out = h.one(f);
  if (out.port !== 1) return "";
  const b = out.frame;
  return `${b[30]}.${b[31]}.${b[32]}.${b[33]}`;
}

function persistent(timeout: number, netmask?: string, sched: "rr" | "wlc" = "rr"): Harness {
  const h = new Harness();
  h.model.addService({ ...K80, scheduler: sched, onePacket: false, schedFlags: [], persistence: { timeout, netmask } });
  for (const a of [RS1, RS2, RS3]) h.model.addDest(K80, dest(a));
  h.apply();
  return h;
}

describe("§10 persistence", () => {
  test("36: -p 300 -M 255.255.255.0: 10.1.1.5 and 10.1.1.9 land on the same real server; the template row is caddr 10.1.1.0:0, NONE then ASSURED", () => {
    const h = persistent(300, "255.255.255.0");
    const a = rsOf(h, syn("10.1.1.5", 1000));
    expect(rsOf(h, syn("10.1.1.9", 1001))).toBe(a);
    expect(rsOf(h, syn("10.1.1.200", 1002))).toBe(a);
    const other = rsOf(h, syn("10.1.2.5", 1003));
    expect(other).not.toBe(a);
    const tpl = () => connRows(h).filter((r) => r.row.includes(" 0A010100 0000 "));
    // /proc/net/ip_vs_conn form: TCP caddr cport vaddr vport daddr dport state
    expect(tpl().map((r) => r.row)).toEqual([`TCP 0A010100 0000 C6120064 0050 ${hexAddr(a)} 0050 NONE`]);
    expect(tpl()[0].secs).toBe(300);
    h.one(syn("10.1.1.5", 1000, ACK)); // the controlled connection is established
    expect(tpl().map((r) => r.row)).toEqual([`TCP 0A010100 0000 C6120064 0050 ${hexAddr(a)} 0050 ASSURED`]);
    // PersistConn counts templates, not connections; conns counts connections only
    const id = h.model
      .allDests()
      .find((d) => `${d.addr.words[0] >>> 24}.${(d.addr.words[0] >>> 16) & 255}.${(d.addr.words[0] >>> 8) & 255}.${d.addr.words[0] & 255}` === a)!.id;
    expect(h.counters.persist[id]).toBe(1);
    expect(h.counters.active[id]).toBe(3);
    expect(h.stats().new_conns).toBe(4);
  });

  test("37: weight 0 on a dest with a live template: the same client still goes there, unless expire_quiescent_template=1", () => {
    const h = persistent(360);
    const a = rsOf(h, syn("10.1.1.5", 1000));
    h.model.editDest(K80, dest(a, { weight: 0 }));
    h.apply();
    expect(rsOf(h, syn("10.1.1.5", 1001))).toBe(a);
    expect(rsOf(h, syn("10.1.1.6", 1002))).not.toBe(a);
    h.model.setSettings({ expireQuiescentTemplate: true });
    h.apply();
    const b = rsOf(h, syn("10.1.1.5", 1003));
    expect(b).not.toBe(a);
    expect(b).not.toBe("");
    // the old template was invalidated (ports 0xffff), a new one names b
    const rows = connRows(h)
      .filter((r) => r.row.includes(" 0A010105 0000 "))
      .map((r) => r.row);
    expect(rows).toEqual([`TCP 0A010105 0000 C6120064 0050 ${hexAddr(b)} 0050 NONE`, `TCP 0A010105 0000 C6120064 FFFF ${hexAddr(a)} FFFF NONE`].sort());
  });

  test("38: -d of a dest: its connections' packets are dropped (expire_nodest_conn=0); re-adding it within 120 s restores the flow", () => {
    const h = persistent(120);
    const a = rsOf(h, syn("10.1.1.5", 1000));
    h.one(syn("10.1.1.5", 1000, ACK));
    h.model.deleteDest(K80, a, 80);
    h.apply();
    expect(rsOf(h, syn("10.1.1.5", 1000, ACK))).toBe("");
    expect(h.stats().drop_dest_unavailable).toBe(1);
    const b = rsOf(h, syn("10.1.1.5", 1001)); // the template's dest is gone: scheduled again
    expect(b).not.toBe(a);
    h.model.addDest(K80, dest(a));
    h.apply();
    expect(rsOf(h, syn("10.1.1.5", 1000, ACK))).toBe(a);
  });

  test("expire_nodest_conn=1: a packet of a deleted dest's connection expires it; deleting a dest flushes its connections and their templates", () => {
    const h = persistent(120);
    h.model.setSettings({ expireNodestConn: true });
    h.apply();
    const a = rsOf(h, syn("10.1.1.5", 1000));
    rsOf(h, syn("10.1.2.5", 1001));
    const before = h.conns.size;
    h.model.deleteDest(K80, a, 80);
    h.apply();
    h.advance(10);
    // the connection of 10.1.1.5 and its template went; the other client's stayed
    expect(h.conns.size).toBe(before - 2);
    expect(connRows(h).some((r) => r.row.includes(hexAddr(a)))).toBe(false);
  });

  test("a template outlives its connections by its timeout, retries every 60 s while it controls one, and each new connection re-arms it", () => {
    const h = persistent(100);
    rsOf(h, syn("10.1.1.5", 1000));
    h.one(syn("10.1.1.5", 1000, ACK)); // ESTABLISHED: 900 s
    const tpl = () => connRows(h).find((r) => r.row.includes(" 0000 C6120064 0050 "))!;
    expect(tpl().secs).toBe(100);
    h.advance(50_000);
    rsOf(h, syn("10.1.1.5", 1001)); // re-armed: 100 s from now
    expect(tpl().secs).toBe(100);
    h.advance(101_000); // expired while controlling two connections: retried in 60 s (and its timeout is now 60 s)
    expect(tpl()).toBeDefined();
    expect(tpl().secs).toBeLessThanOrEqual(TEMPLATE_RETRY_SEC);
    for (let i = 0; i < 100; i++) h.advance(10_000); // every connection gone, then the template
    expect(h.conns.size).toBe(0);
    expect(h.counters.persist.reduce((x, y) => x + y, 0)).toBe(0);
  });

  test("port-0 and fwmark-style templates keep the client's port: a persistent port-0 service sends 80 and 443 of one client to one dest", () => {
    const h = new Harness();
    const k0 = { protocol: "tcp" as const, address: VIP, port: 0 };
    h.model.addService({ ...k0, scheduler: "rr", onePacket: false, schedFlags: [], persistence: { timeout: 60 } });
    h.model.addDest(k0, dest(RS1));
    h.model.addDest(k0, dest(RS2));
    h.apply();
    const o1 = h.one(syn("10.1.1.5", 1000, SYN, 80)),
      o2 = h.one(syn("10.1.1.5", 1001, SYN, 443));
    expect([o1.port, o2.port]).toEqual([1, 1]);
    expect(o1.frame.subarray(30, 34)).toEqual(o2.frame.subarray(30, 34));
    const dv = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset);
    expect([dv(o1.frame).getUint16(36), dv(o2.frame).getUint16(36)]).toEqual([80, 443]);
  });
});

describe("IPv6 persistence", () => {
  test("-M 64 on a v6 service: clients of one /64 share a template (caddr = the /64), another /64 gets the next dest", () => {
    const h = new Harness();
    const VIP6 = "2001:db8:100::100";
    const k = { protocol: "tcp" as const, address: VIP6, port: 80 };
    h.model.addService({ ...k, scheduler: "rr", onePacket: false, schedFlags: [], persistence: { timeout: 60, netmask: "64" } });
    for (const a of ["2001:db8:2::11", "2001:db8:2::12"]) h.model.addDest(k, dest(a));
    h.apply();
    const f6 = (src: string, sport: number) =>
      new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv6({ src, dst: VIP6 }).tcp({ sport, dport: 80, flags: SYN }).build();
    const daddr = (src: string, sport: number) => Array.from(h.one(f6(src, sport)).frame.subarray(38, 54)).join(".");
    const a = daddr("2001:db8:1::5", 1000);
    expect(daddr("2001:db8:1::ffff:9", 1001)).toBe(a);
    expect(daddr("2001:db8:1:0:8000::1", 1002)).toBe(a);
    expect(daddr("2001:db8:1:1::5", 1003)).not.toBe(a);
    expect(h.conns.header[1]).toBe(2); // two templates
  });
});

describe("§10 one-packet scheduling", () => {
  test("43: -o UDP: each datagram from the same client:port is rescheduled (rr alternates), no connection stays, conns counts each", () => {
    const h = new Harness();
    const k = { protocol: "udp" as const, address: VIP, port: 53 };
    h.model.addService({ ...k, scheduler: "rr", onePacket: true, schedFlags: [] });
    const ids = [h.model.addDest(k, dest(RS1)).id, h.model.addDest(k, dest(RS2)).id];
    h.apply();
    const seen = Array.from({ length: 4 }, () => {
      const f = h.one(dgram("10.1.1.5", 5000)).frame;
      return `${f[30]}.${f[31]}.${f[32]}.${f[33]}`;
    });
    expect(seen).toEqual([RS2, RS1, RS2, RS1]);
    expect(h.conns.size).toBe(0);
    expect(h.stats().new_conns).toBe(4);
    expect([h.counters.inactive[ids[0]], h.counters.inactive[ids[1]]]).toEqual([0, 0]);
  });
});

describe("§10 thresholds through the fast path", () => {
  test("29: u=2 moves new connections to the other dest once 2 are bound, and back once the total falls to 1", () => {
    const h = new Harness();
    h.model.addService({ ...K80, scheduler: "rr", onePacket: false, schedFlags: [] });
    h.model.addDest(K80, dest(RS1, { upperThreshold: 2 }));
    h.model.addDest(K80, dest(RS2));
    h.apply();
    const seq = [0, 1, 2, 3, 4, 5].map((i) => rsOf(h, syn("10.1.1.5", 2000 + i)));
    expect(seq).toEqual([RS2, RS1, RS2, RS1, RS2, RS2]);
    // close one of RS1's two connections and let it expire: total 1 -> OVERLOAD clears
    h.one(syn("10.1.1.5", 2001, ACK));
    h.one(syn("10.1.1.5", 2001, 0x04));
    h.advance(11_000);
    expect(rsOf(h, syn("10.1.1.5", 2100))).toBe(RS1);
  });

  test("-e -x: raising the upper threshold clears OVERLOAD at once; lowering it under the current count sets it at once", () => {
    const h = new Harness();
    h.model.addService({ ...K80, scheduler: "rr", onePacket: false, schedFlags: [] });
    const d1 = h.model.addDest(K80, dest(RS1, { upperThreshold: 1 })).id;
    h.model.addDest(K80, dest(RS2));
    h.apply();
    rsOf(h, syn("10.1.1.5", 3000));
    rsOf(h, syn("10.1.1.5", 3001));
    expect(h.counters.overload[d1]).toBe(1);
    h.model.editDest(K80, dest(RS1, { upperThreshold: 5, lowerThreshold: 2 }));
    h.apply();
    expect(h.counters.overload[d1]).toBe(0);
    h.model.editDest(K80, dest(RS1, { upperThreshold: 1 }));
    h.apply();
    expect(h.counters.overload[d1]).toBe(1);
    h.model.editDest(K80, dest(RS1, { upperThreshold: 0 }));
    h.apply();
    expect(h.counters.overload[d1]).toBe(0);
  });
});

function hexAddr(a: string): string {
  return a
    .split(".")
    .map((x) => Number(x).toString(16).toUpperCase().padStart(2, "0"))
    .join("");
}
