/**
 * xvs against kernel IPVS, byte for byte: the client frames kernel IPVS received in the ipvs-vm
 * guest (test/kernel/frames/dr-tun.ts, with provenance) go through the xvs fast path set up like that
 * director, and what leaves must equal what the kernel sent, outer and inner headers, checksums
 * included. Two fields are the kernel's own random choices and legitimately differ: the outer
 * IPv4 ID of a packet without DF (__ip_select_ident: a hashed, randomly perturbed counter; with DF
 * both write 0) and the GUE UDP source port (udp_flow_src_port over a flow hash with a boot-time
 * random key). Where they differ, the kernel's value is written into xvs's frame and xvs's own
 * checksum over it is updated incrementally (RFC 1624), never recomputed: a checksum xvs got wrong
 * stays wrong by the same amount, so the checksums compared are the ones each side wrote.
 * NAT (test/kernel/frames/nat.ts, recorded by record-nat.sh there): TCP with and without options and UDP, IPv4 and
 * IPv6, the client's frames and the real server's replies, compared as captured: NAT changes no
 * field the kernel picks at random.
 */
import { describe, expect, test } from "bun:test";
import { csumReplace16 } from "../../../src/wire/checksum.ts";
import type { DestSpecIn, TunnelSpec } from "../../../src/control/schemas.ts";
import type { z } from "zod";
import { hex, XmitHarness } from "./harness.ts";
import { KERNEL_CASES, KERNEL_PMTU_GUE } from "../../kernel/frames/dr-tun.ts";
import { KERNEL_NAT_CASES } from "../../kernel/frames/nat.ts";

type Tunnel = z.input<typeof TunnelSpec>;
interface Case {
  family: 4 | 6;
  rs: string;
  forward: "route" | "tunnel";
  tunnel?: Tunnel;
}
const RS4 = "198.18.2.11",
  RS6 = "2001:db8:2::11";
const CASES: Record<string, Case> = {
  dr: { family: 4, rs: RS4, forward: "route" },
  ipip: { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "ipip" } },
  "gue-nocsum": { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "gue", port: 6080, csum: "nocsum" } },
  "gue-csum": { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "gue", port: 6080, csum: "csum" } },
  "gue-remcsum": { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "gue", port: 6081, csum: "remcsum" } },
  "gre-nocsum": { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "gre", csum: "nocsum" } },
  "gre-csum": { family: 4, rs: RS4, forward: "tunnel", tunnel: { type: "gre", csum: "csum" } },
  "ipip-v6rs": { family: 4, rs: RS6, forward: "tunnel", tunnel: { type: "ipip" } },
  "gue-v6rs": { family: 4, rs: RS6, forward: "tunnel", tunnel: { type: "gue", port: 6080, csum: "csum" } },
  "v6-ipip-v6rs": { family: 6, rs: RS6, forward: "tunnel", tunnel: { type: "ipip" } },
  "v6-gre-v6rs": { family: 6, rs: RS6, forward: "tunnel", tunnel: { type: "gre", csum: "csum" } },
  "v6-ipip-v4rs": { family: 6, rs: RS4, forward: "tunnel", tunnel: { type: "ipip" } },
  "v6-dr": { family: 6, rs: RS6, forward: "route" },
};

function director(c: Case): XmitHarness {
  const h = new XmitHarness();
  const address = c.family === 4 ? "198.18.0.100" : "2001:db8:100::100";
  h.model.addService({ protocol: "udp", address, port: 9000, scheduler: "rr", onePacket: false, schedFlags: [] });
  const spec: DestSpecIn = { address: c.rs, port: 9000, forward: c.forward, weight: 1 };
  if (c.tunnel) spec.tunnel = c.tunnel;
  h.model.addDest({ protocol: "udp", address, port: 9000 }, { upperThreshold: 0, lowerThreshold: 0, weight: 1, ...spec } as never);
  h.apply();
  return h;
}

/**
 * Write the kernel's outer IPv4 ID (at `ip`) into ours when they differ, updating our header
 * checksum incrementally from the value xvs wrote. Returns 1 when the ID was carried, else 0.
 */
function carryIpId(ours: Uint8Array, kernel: Uint8Array, ip = 14): number {
  const dv = new DataView(ours.buffer, ours.byteOffset, ours.byteLength);
  const kid = new DataView(kernel.buffer, kernel.byteOffset, kernel.byteLength).getUint16(ip + 4);
  const id = dv.getUint16(ip + 4);
  if (id === kid) return 0;
  dv.setUint16(ip + 4, kid);
  dv.setUint16(ip + 10, csumReplace16(dv.getUint16(ip + 10), id, kid));
  return 1;
}

/** Carry the kernel's random outer IPv4 ID and GUE source port into ours (see the header). */
function carryRandomFields(ours: Uint8Array, kernel: Uint8Array): void {
  const dv = new DataView(ours.buffer, ours.byteOffset, ours.byteLength);
  const kv = new DataView(kernel.buffer, kernel.byteOffset, kernel.byteLength);
  let udp = -1;
  if (dv.getUint16(12) === 0x0800) {
    carryIpId(ours, kernel);
    if (ours[23] === 17) udp = 34;
  } else if (dv.getUint16(12) === 0x86dd && ours[20] === 17) {
    udp = 54;
  }
  if (udp > 0) {
    const oldPort = dv.getUint16(udp),
      c = dv.getUint16(udp + 6);
    dv.setUint16(udp, kv.getUint16(udp));
    if (c !== 0) dv.setUint16(udp + 6, csumReplace16(c, oldPort, kv.getUint16(udp)) || 0xffff);
  }
}

describe("DR and TUN frames equal kernel IPVS's", () => {
  for (const [name, c] of Object.entries(CASES)) {
    test(`${name}: every datagram leaves as the kernel sent it`, () => {
      const k = KERNEL_CASES[name];
      expect(k.in.length).toBeGreaterThanOrEqual(2);
      const h = director(c);
      for (let i = 0; i < k.in.length; i++) {
        const out = h.one(hex(k.in[i]));
        expect(out.port).toBe(1);
        const kernel = hex(k.out[i]);
        carryRandomFields(out.frame, kernel);
        expect(Buffer.from(out.frame).toString("hex")).toBe(Buffer.from(kernel).toString("hex"));
      }
      const s = h.stats();
      expect(s.fwd_in).toBe(k.in.length);
      expect(c.forward === "route" ? s.fwd_dr : s.fwd_tun).toBe(k.in.length);
    });
  }

  test("the outer IPv4 ID without DF comes from a per-real-server counter; with DF it is 0", () => {
    const h = director(CASES.ipip);
    const k = KERNEL_CASES.ipip;
    const ids = [0, 1, 2].map(() => new DataView(h.one(hex(k.in[1])).frame.buffer).getUint16(18));
    expect(ids[1]).toBe((ids[0] + 1) & 0xffff);
    expect(ids[2]).toBe((ids[1] + 1) & 0xffff);
    expect(new DataView(h.one(hex(k.in[0])).frame.buffer).getUint16(18)).toBe(0);
  });

  test("the GUE source port is stable per flow and spread over 32768-60998 across flows", () => {
    const h = director(CASES["gue-nocsum"]);
    const k = KERNEL_CASES["gue-nocsum"];
    const port = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint16(34);
    expect(port(h.one(hex(k.in[0])).frame)).toBe(port(h.one(hex(k.in[0])).frame));
    const seen = new Set<number>();
    for (let sp = 20000; sp < 20040; sp++) {
      const f = hex(k.in[2]);
      new DataView(f.buffer).setUint16(34, sp);
      const p = port(h.one(f).frame);
      expect(p).toBeGreaterThanOrEqual(32768);
      expect(p).toBeLessThan(60999);
      seen.add(p);
    }
    expect(seen.size).toBeGreaterThan(30);
  });
});

describe("path MTU through a tunnel, against the kernel", () => {
  test("a DF datagram over the GUE tunnel MTU gets the same fragmentation needed (mtu 968) kernel IPVS sent", () => {
    const h = new XmitHarness();
    h.rs.set("198.18.2.11", { mtu: 1000 });
    const c = CASES["gue-nocsum"];
    h.model.addService({ protocol: "udp", address: "198.18.0.100", port: 9000, scheduler: "rr", onePacket: false, schedFlags: [] });
    h.model.addDest({ protocol: "udp", address: "198.18.0.100", port: 9000 }, {
      address: c.rs,
      port: 9000,
      forward: "tunnel",
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
      tunnel: { type: "gue", port: 6080 },
    } as never);
    h.apply();
    const out = h.one(hex(KERNEL_PMTU_GUE.in));
    expect(out.port).toBe(0);
    const kernel = hex(KERNEL_PMTU_GUE.icmp);
    const dv = new DataView(out.frame.buffer);
    expect(dv.getUint16(14 + 20 + 6)).toBe(968);
    // the ICMP's own IP ID is the kernel's counter (icmp_send: no DF): carry it over, checksum
    // updated from the one xvs wrote
    expect(carryIpId(out.frame, kernel)).toBe(1);
    expect(Buffer.from(out.frame).toString("hex")).toBe(Buffer.from(kernel).toString("hex"));
    expect(h.stats().drop_mtu).toBe(1);
    expect(h.stats().icmp_sent).toBe(1);
  });
});

describe("NAT frames equal kernel IPVS's, both directions", () => {
  /** The director of test/kernel/frames/record-nat.sh: TCP VIP:80 -> RS:8080 and UDP VIP:9000 -> RS:9001, masquerading, v4 and v6. */
  function natDirector(): XmitHarness {
    const h = new XmitHarness();
    const dest = { forward: "masq" as const, weight: 1, upperThreshold: 0, lowerThreshold: 0 };
    for (const [vip, rs] of [
      ["198.18.0.100", RS4],
      ["2001:db8:100::100", RS6],
    ]) {
      for (const [protocol, port, rsPort] of [
        ["tcp", 80, 8080],
        ["udp", 9000, 9001],
      ] as const) {
        h.model.addService({ protocol, address: vip, port, scheduler: "rr", onePacket: false, schedFlags: [] });
        h.model.addDest({ protocol, address: vip, port }, { ...dest, address: rs, port: rsPort });
      }
    }
    h.apply();
    return h;
  }

  for (const [name, steps] of Object.entries(KERNEL_NAT_CASES)) {
    // NAT changes no field the kernel picks at random (the IP ID and flow label pass through):
    // every byte is compared as captured, checksums included
    test(`${name}: every frame from the client and from the real server leaves as the kernel sent it`, () => {
      expect(steps.filter((s) => s.from === "client").length).toBeGreaterThanOrEqual(2);
      expect(steps.filter((s) => s.from === "server").length).toBeGreaterThanOrEqual(2);
      const h = natDirector();
      steps.forEach((s, i) => {
        const out = h.one(hex(s.in), s.from === "client" ? 0 : 1);
        expect(out.port, `step ${i} from the ${s.from}`).toBe(s.from === "client" ? 1 : 0);
        expect(Buffer.from(out.frame).toString("hex"), `step ${i} from the ${s.from}`).toBe(s.out);
      });
      const st = h.stats();
      expect(st.fwd_in).toBe(steps.filter((s) => s.from === "client").length);
      expect(st.new_conns).toBe(1);
    });
  }

  test("the TCP cases with options carry them, the ones without carry none past the SYNs", () => {
    const optionBytes = (f: Uint8Array, l4: number) => (f[l4 + 12] >> 4) * 4 - 20;
    const l4Of = (f: Uint8Array) => (f[12] === 0x86 ? 54 : 34);
    for (const [name, steps] of Object.entries(KERNEL_NAT_CASES).filter(([n]) => n.startsWith("tcp"))) {
      const frames = steps.map((s) => hex(s.in));
      const withOpts = frames.filter((f) => optionBytes(f, l4Of(f)) > 0).length;
      const syns = frames.filter((f) => (f[l4Of(f) + 13] & 0x02) !== 0).length;
      if (name.includes("noopts")) expect(withOpts, name).toBe(syns);
      else expect(withOpts, name).toBe(frames.length);
    }
  });
});
