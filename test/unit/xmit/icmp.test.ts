/**
 * ICMP errors through the fast path, over synthetic frames: NAT translation both ways
 * (ip_vs_nat_icmp), DR/TUN forwarding by the connection's method, errors about our own tunnel
 * packets (path MTU learned, the client told with the tunnel-adjusted MTU), and every refusal
 * counted. Every forwarded frame's checksums are verified from scratch.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { checksum, pseudoSumV6 } from "../../../src/wire/checksum.ts";
import { macText } from "../../../src/wire/eth.ts";
import { addrText } from "../../../src/wire/ipv4.ts";
import * as ipv6 from "../../../src/wire/ipv6.ts";
import { ACK, PacketBuilder, SYN, checksumsValid } from "../../util/packet.ts";
import { CLIENT_MAC, PORT_MACS, RS_MAC, XmitHarness } from "./harness.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS = "198.18.2.11",
  RS_DR = "198.18.2.12",
  RS_TUN = "198.18.3.11";
const ROUTER = "198.18.1.254",
  ROUTER_RS = "198.18.2.254",
  DIRECTOR = "198.18.2.1";
const VIP6 = "2001:db8:100::100",
  CLIENT6 = "2001:db8:1::2",
  RS6 = "2001:db8:2::11",
  ROUTER6 = "2001:db8:1::fe";

const SPEC = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };

/** An ICMP(v6) error frame from `src` to `dst` quoting `quoted` (an IP packet, maybe cut). */
function icmpError(
  v6: boolean,
  src: string,
  dst: string,
  type: number,
  code: number,
  rest: number,
  quoted: Uint8Array,
  opts: { badSum?: boolean; ttl?: number } = {},
): Uint8Array {
  const body = [type, code, 0, 0, (rest >>> 24) & 255, (rest >>> 16) & 255, (rest >>> 8) & 255, rest & 255, ...quoted];
  const b = new PacketBuilder().eth(PORT_MACS[0], CLIENT_MAC);
  const f = (v6 ? b.ipv6({ src, dst, hopLimit: opts.ttl ?? 64 }).raw(58, body) : b.ipv4({ src, dst, ttl: opts.ttl ?? 64 }).raw(1, body)).build();
  const dv = new DataView(f.buffer);
  const l4 = v6 ? 54 : 34;
  const c = v6 ? checksum(f, l4, f.length - l4, pseudoSumV6(f, 22, 38, 58, f.length - l4)) : checksum(f, l4, f.length - l4);
  dv.setUint16(l4 + 2, opts.badSum ? c ^ 0x0101 : c);
  return f;
}

/** The IP packet (no Ethernet header) of a frame, cut to `n` bytes. */
function ipOf(frame: Uint8Array, n = frame.length): Uint8Array {
  return frame.slice(14, 14 + Math.min(n, frame.length - 14));
}

function icmpSumOk(f: Uint8Array): boolean {
  const dv = new DataView(f.buffer, f.byteOffset);
  if (dv.getUint16(12) === 0x86dd) return checksum(f, 54, dv.getUint16(18), pseudoSumV6(f, 22, 38, 58, dv.getUint16(18))) === 0;
  const ihl = (f[14] & 15) * 4;
  return checksum(f, 14, ihl) === 0 && checksum(f, 14 + ihl, dv.getUint16(16) - ihl) === 0;
}

let h: XmitHarness;
beforeEach(() => {
  h = new XmitHarness();
  h.rs.set(RS_TUN, { mtu: 1500, src: DIRECTOR });
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS, port: 8080, forward: "masq", ...SPEC });
  h.model.addService({ protocol: "tcp", address: VIP, port: 81, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "tcp", address: VIP, port: 81 }, { address: RS_DR, port: 81, forward: "route", ...SPEC });
  h.model.addService({ protocol: "tcp", address: VIP, port: 82, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "tcp", address: VIP, port: 82 }, { address: RS_TUN, port: 82, forward: "tunnel", ...SPEC, tunnel: { type: "ipip" } });
  h.model.addService({ protocol: "udp", address: VIP, port: 83, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "udp", address: VIP, port: 83 }, { address: RS_TUN, port: 83, forward: "tunnel", ...SPEC, tunnel: { type: "gue", port: 6080 } });
  h.model.addService({ protocol: "udp", address: VIP, port: 84, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest(
    { protocol: "udp", address: VIP, port: 84 },
    { address: RS_TUN, port: 84, forward: "tunnel", ...SPEC, tunnel: { type: "gre", csum: "csum" } },
  );
  h.model.addService({ protocol: "tcp", address: VIP6, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "tcp", address: VIP6, port: 80 }, { address: RS6, port: 8080, forward: "masq", ...SPEC });
  h.apply();
});

const syn = (dport: number, sport = 40000, df = true) =>
  new PacketBuilder().eth(PORT_MACS[0], CLIENT_MAC).ipv4({ src: CLIENT, dst: VIP, df }).tcp({ sport, dport, flags: SYN }).build();
const udp = (dport: number, size: number, df = true, sport = 41000) =>
  new PacketBuilder().eth(PORT_MACS[0], CLIENT_MAC).ipv4({ src: CLIENT, dst: VIP, df }).udp({ sport, dport }).payload("x".repeat(size)).build();

describe("NAT: errors translated both ways", () => {
  test("from the client's side, about a reply VIP:80 -> client: goes to the real server with RIP:8080 in the quote", () => {
    expect(h.one(syn(80)).port).toBe(1);
    // the reply as the client saw it, quoted by a router on the client's side
    const reply = new PacketBuilder()
      .ipv4({ src: VIP, dst: CLIENT, df: true })
      .tcp({ sport: 80, dport: 40000, flags: SYN | ACK })
      .payload("y".repeat(1400))
      .build();
    const before = h.stats();
    const out = h.one(icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(reply, 548)));
    expect(out.port).toBe(1);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(macText(dv.getUint16(0), dv.getInt32(2))).toBe(RS_MAC);
    expect(addrText(dv.getInt32(26))).toBe(ROUTER);
    expect(addrText(dv.getInt32(30))).toBe(RS); // outer daddr -> RIP
    expect(f[22]).toBe(63); // TTL - 1
    expect(dv.getUint16(40)).toBe(1300); // MTU unchanged
    const e = 42;
    expect(addrText(dv.getInt32(e + 12))).toBe(RS); // embedded saddr -> RIP
    expect(addrText(dv.getInt32(e + 16))).toBe(CLIENT);
    expect(dv.getUint16(e + 20)).toBe(8080); // embedded sport -> dport
    expect(dv.getUint16(e + 22)).toBe(40000);
    expect(checksum(f, e, 20)).toBe(0); // embedded IP header checksum recomputed
    expect(icmpSumOk(f)).toBe(true);
    expect(h.delta(before)).toEqual({ rx_packets: 1, rx_bytes: out.frame.length, tx_packets: 1, tx_bytes: out.frame.length, icmp_forwarded: 1 });
  });

  test("from the real server's side, about a request client -> RIP:8080: goes to the client from the VIP, quote says VIP:80", () => {
    const fwd = h.one(syn(80));
    const quote = ipOf(fwd.frame, 28); // what an RS quotes: IP header + 8 bytes
    const out = h.one(icmpError(false, RS, CLIENT, 3, 3, 0, quote), 1);
    expect(out.port).toBe(0);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(macText(dv.getUint16(0), dv.getInt32(2))).toBe(CLIENT_MAC);
    expect(macText(dv.getUint16(6), dv.getInt32(8))).toBe(PORT_MACS[0]);
    expect(addrText(dv.getInt32(26))).toBe(VIP); // outer saddr -> VIP
    expect(addrText(dv.getInt32(30))).toBe(CLIENT);
    expect(addrText(dv.getInt32(42 + 12))).toBe(CLIENT);
    expect(addrText(dv.getInt32(42 + 16))).toBe(VIP); // embedded daddr -> VIP
    expect(dv.getUint16(42 + 20)).toBe(40000);
    expect(dv.getUint16(42 + 22)).toBe(80); // embedded dport -> vport
    expect(checksum(f, 42, 20)).toBe(0);
    expect(icmpSumOk(f)).toBe(true);
    expect(h.stats().icmp_forwarded).toBe(1);
  });

  test("IPv6: packet too big about a reply goes to the real server translated, ICMPv6 checksum valid", () => {
    const s = new PacketBuilder().eth(PORT_MACS[0], CLIENT_MAC).ipv6({ src: CLIENT6, dst: VIP6 }).tcp({ sport: 40001, dport: 80, flags: SYN }).build();
    expect(h.one(s).port).toBe(1);
    const reply = new PacketBuilder()
      .ipv6({ src: VIP6, dst: CLIENT6 })
      .tcp({ sport: 80, dport: 40001, flags: SYN | ACK })
      .build();
    const out = h.one(icmpError(true, ROUTER6, VIP6, 2, 0, 1280, ipOf(reply)));
    expect(out.port).toBe(1);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(ipv6.addrText([dv.getInt32(38), dv.getInt32(42), dv.getInt32(46), dv.getInt32(50)])).toBe(RS6);
    expect(f[21]).toBe(63);
    const e = 62;
    expect(ipv6.addrText([dv.getInt32(e + 8), dv.getInt32(e + 12), dv.getInt32(e + 16), dv.getInt32(e + 20)])).toBe(RS6);
    expect(dv.getUint16(e + 40)).toBe(8080);
    expect(icmpSumOk(f)).toBe(true);
  });
});

describe("DR and TUN: errors forwarded by the connection's method", () => {
  test("DR: a fragmentation needed about the real server's direct reply goes to its MAC, unchanged but TTL-1", () => {
    expect(h.one(syn(81)).port).toBe(1);
    const reply = new PacketBuilder().ipv4({ src: VIP, dst: CLIENT, df: true }).tcp({ sport: 81, dport: 40000, flags: ACK }).build();
    const err = icmpError(false, ROUTER, VIP, 3, 4, 1400, ipOf(reply));
    const out = h.one(err);
    expect(out.port).toBe(1);
    const dv = new DataView(out.frame.buffer);
    expect(macText(dv.getUint16(0), dv.getInt32(2))).toBe(RS_MAC);
    expect(macText(dv.getUint16(6), dv.getInt32(8))).toBe(PORT_MACS[1]);
    expect(out.frame[22]).toBe(63);
    // everything from the ICMP header on is byte for byte what the router sent
    expect(Buffer.from(out.frame.subarray(34)).equals(Buffer.from(err.subarray(34)))).toBe(true);
    expect(icmpSumOk(out.frame)).toBe(true);
  });

  test("TUN: the error is encapsulated to the real server like the connection's packets", () => {
    expect(h.one(syn(82)).port).toBe(1);
    const reply = new PacketBuilder().ipv4({ src: VIP, dst: CLIENT, df: true }).tcp({ sport: 82, dport: 40000, flags: ACK }).build();
    const err = icmpError(false, ROUTER, VIP, 11, 0, 0, ipOf(reply));
    const out = h.one(err);
    expect(out.port).toBe(1);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(f[23]).toBe(4); // IPIP
    expect(addrText(dv.getInt32(26))).toBe(DIRECTOR);
    expect(addrText(dv.getInt32(30))).toBe(RS_TUN);
    expect(f[22]).toBe(63); // outer TTL = inner TTL after the decrement
    expect(f[34 + 8]).toBe(63);
    expect(Buffer.from(f.subarray(54)).equals(Buffer.from(err.subarray(34)))).toBe(true);
    expect(checksum(f, 14, 20)).toBe(0);
    expect(checksum(f, 34, 20)).toBe(0);
  });
});

describe("errors about our own tunnel packets", () => {
  /** The outer packet xvs sent for a client packet, as a router quotes it (548 bytes at most). */
  const tunnelled = (clientFrame: Uint8Array) => {
    const out = h.one(clientFrame);
    expect(out.port).toBe(1);
    return ipOf(out.frame, 548);
  };

  test("IPIP: fragmentation needed from a router lowers the path MTU and the client hears mtu - 20 about its own packet", () => {
    const quote = tunnelled(syn(82, 40010));
    const before = h.stats();
    const out = h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1300, quote), 1);
    expect(out.port).toBe(0);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(macText(dv.getUint16(0), dv.getInt32(2))).toBe(CLIENT_MAC);
    expect(addrText(dv.getInt32(26))).toBe(VIP);
    expect(addrText(dv.getInt32(30))).toBe(CLIENT);
    expect([f[34], f[35], dv.getUint16(40)]).toEqual([3, 4, 1280]);
    expect(addrText(dv.getInt32(42 + 12))).toBe(CLIENT); // the client's own packet is quoted
    expect(dv.getUint16(42 + 22)).toBe(82);
    expect(icmpSumOk(f)).toBe(true);
    expect(h.delta(before).icmp_forwarded).toBe(1);
    // learned: the next big DF packet of any client is answered at once, with 1300 - 20
    const big = h.one(udp(83, 1400));
    expect(big.port).toBe(0);
    expect(new DataView(big.frame.buffer).getUint16(40)).toBe(1300 - 32); // GUE: 20 + 8 + 4
    expect(h.stats().drop_mtu).toBe(1);
  });

  test("an on-link client the kernel has no neighbour entry for yet gets it at the MAC its packets came from", () => {
    const h2 = new XmitHarness();
    h2.onLinkClients = true;
    h2.rs.set(RS_TUN, { src: DIRECTOR });
    h2.model.addService({ protocol: "tcp", address: VIP, port: 82, scheduler: "rr", onePacket: false, schedFlags: [] });
    h2.model.addDest({ protocol: "tcp", address: VIP, port: 82 }, { address: RS_TUN, port: 82, forward: "tunnel", ...SPEC, tunnel: { type: "ipip" } });
    h2.apply();
    const t = h2.one(syn(82, 40200));
    expect(t.port).toBe(1);
    const out = h2.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1300, ipOf(t.frame, 548)), 1);
    expect(out.port).toBe(0);
    const dv = new DataView(out.frame.buffer);
    expect(macText(dv.getUint16(0), dv.getInt32(2))).toBe(CLIENT_MAC);
    expect(macText(dv.getUint16(6), dv.getInt32(8))).toBe(PORT_MACS[0]);
    expect(dv.getUint16(40)).toBe(1280);
    expect(h2.stats().drop_neighbour).toBe(0);
  });

  test("GUE and GRE: the same, with their own overhead (32, and 28 with a GRE checksum)", () => {
    const gue = tunnelled(udp(83, 100, true, 41001));
    let out = h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1400, gue), 1);
    expect(out.port).toBe(0);
    expect(new DataView(out.frame.buffer).getUint16(40)).toBe(1400 - 32);
    const gre = tunnelled(udp(84, 100, true, 41002));
    out = h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1350, gre), 1);
    expect(out.port).toBe(0);
    expect(new DataView(out.frame.buffer).getUint16(40)).toBe(1350 - 28);
    expect(h.stats().icmp_forwarded).toBe(2);
  });

  test("a client packet without DF: the path MTU is learned, the client is not told", () => {
    const quote = tunnelled(udp(83, 100, false, 41003));
    const out = h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1200, quote), 1);
    expect(out.port).toBe(-1);
    expect(h.stats().icmp_pmtu_learned).toBe(1);
    expect(new DataView(h.one(udp(83, 1300, true, 41004)).frame.buffer).getUint16(40)).toBe(1200 - 32);
  });

  test("other errors (host unreachable) are relayed to the client with their type and code", () => {
    const quote = tunnelled(syn(82, 40011));
    const out = h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 1, 0, quote), 1);
    expect(out.port).toBe(0);
    expect([out.frame[34], out.frame[35]]).toEqual([3, 1]);
    expect(icmpSumOk(out.frame)).toBe(true);
  });

  test("GUE on a port the real server does not use, or GRE with flags IPVS never sends: no connection, counted", () => {
    const gue = tunnelled(udp(83, 100, true, 41005));
    const wrongPort = gue.slice();
    new DataView(wrongPort.buffer).setUint16(22, 6081);
    expect(h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1400, wrongPort), 1).port).toBe(-1);
    const gre = tunnelled(udp(84, 100, true, 41006));
    const keyed = gre.slice();
    keyed[20] |= 0x20; // K bit
    expect(h.one(icmpError(false, ROUTER_RS, DIRECTOR, 3, 4, 1400, keyed), 1).port).toBe(-1);
    expect(h.stats().drop_icmp_no_conn).toBe(2);
    expect(h.stats().icmp_forwarded).toBe(0);
  });
});

describe("errors about our IPv6 tunnel packets", () => {
  const ROUTER_RS6 = "2001:db8:2::fe",
    DIRECTOR6 = "2001:db8:2::1",
    RS6_TUN = "2001:db8:3::11";
  let h6: XmitHarness;
  beforeEach(() => {
    h6 = new XmitHarness();
    h6.model.addService({ protocol: "tcp", address: VIP6, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    h6.model.addDest(
      { protocol: "tcp", address: VIP6, port: 80 },
      { address: RS6_TUN, port: 80, forward: "tunnel", ...SPEC, tunnel: { type: "gue", port: 6080, csum: "csum" } },
    );
    h6.model.addService({ protocol: "tcp", address: VIP, port: 90, scheduler: "rr", onePacket: false, schedFlags: [] });
    h6.model.addDest({ protocol: "tcp", address: VIP, port: 90 }, { address: RS6_TUN, port: 90, forward: "tunnel", ...SPEC, tunnel: { type: "ipip" } });
    h6.apply();
  });

  test("IPv6 over GUE over IPv6: packet too big 1400 reaches the client as 1400 - 52", () => {
    const s = new PacketBuilder().eth(PORT_MACS[0], CLIENT_MAC).ipv6({ src: CLIENT6, dst: VIP6 }).tcp({ sport: 40100, dport: 80, flags: SYN }).build();
    const t = h6.one(s);
    expect(t.port).toBe(1);
    const out = h6.one(icmpError(true, ROUTER_RS6, DIRECTOR6, 2, 0, 1400, ipOf(t.frame)), 1);
    expect(out.port).toBe(0);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(dv.getUint16(12)).toBe(0x86dd);
    expect(ipv6.addrText([dv.getInt32(22), dv.getInt32(26), dv.getInt32(30), dv.getInt32(34)])).toBe(VIP6);
    expect(ipv6.addrText([dv.getInt32(38), dv.getInt32(42), dv.getInt32(46), dv.getInt32(50)])).toBe(CLIENT6);
    expect([f[54], f[55], dv.getUint32(58)]).toEqual([2, 0, 1400 - 40 - 8 - 4]);
    expect(icmpSumOk(f)).toBe(true);
    expect(h6.stats().icmp_forwarded).toBe(1);
  });

  test("IPv4 over IPv6 IPIP: packet too big 1300 becomes fragmentation needed 1260 for the IPv4 client", () => {
    const t = h6.one(syn(90, 40101));
    expect(t.port).toBe(1);
    expect(new DataView(t.frame.buffer).getUint16(12)).toBe(0x86dd);
    expect(t.frame[20]).toBe(4); // next header: IPv4
    const out = h6.one(icmpError(true, ROUTER_RS6, DIRECTOR6, 2, 0, 1300, ipOf(t.frame)), 1);
    expect(out.port).toBe(0);
    const f = out.frame,
      dv = new DataView(f.buffer);
    expect(addrText(dv.getInt32(26))).toBe(VIP);
    expect(addrText(dv.getInt32(30))).toBe(CLIENT);
    expect([f[34], f[35], dv.getUint16(40)]).toEqual([3, 4, 1260]);
    expect(icmpSumOk(f)).toBe(true);
  });
});

describe("bad ICMP input is counted, never forwarded, never thrown", () => {
  test("truncated before the ports, bad checksum, no connection, not an error, garbage", () => {
    const fwd = h.one(syn(80, 40020));
    const reply = new PacketBuilder().ipv4({ src: VIP, dst: CLIENT }).tcp({ sport: 80, dport: 40020, flags: ACK }).build();
    const cases: [Uint8Array, string][] = [
      [icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(reply, 22)), "drop_icmp_malformed"],
      [icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(reply, 12)), "drop_icmp_malformed"],
      [icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(reply), { badSum: true }), "drop_icmp_malformed"],
      [
        icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(new PacketBuilder().ipv4({ src: VIP, dst: CLIENT }).tcp({ sport: 80, dport: 1, flags: ACK }).build())),
        "drop_icmp_no_conn",
      ],
      [
        icmpError(
          false,
          RS,
          CLIENT,
          3,
          3,
          0,
          ipOf(fwd.frame, 28).map((b, i) => (i === 23 ? b ^ 1 : b)),
        ),
        "drop_icmp_no_conn",
      ],
      [icmpError(false, ROUTER, VIP, 8, 0, 0, new Uint8Array(0)), "drop_icmp"],
      [icmpError(false, ROUTER, VIP, 3, 4, 1300, ipOf(reply), { ttl: 1 }), "drop_ttl"],
    ];
    for (const [frame, stat] of cases) {
      const before = h.stats();
      const out = h.one(frame);
      expect(out.port).toBe(-1);
      const d = h.delta(before);
      expect(d[stat]).toBe(1);
      expect(d.icmp_forwarded ?? 0).toBe(0);
    }
    // random bytes after valid outer headers, every length up to 80
    let seed = 7;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return (seed >>> 16) & 255;
    };
    for (let n = 0; n < 80; n++) {
      for (const v6 of [false, true]) {
        const junk = new Uint8Array(n).map(() => rnd());
        if (n > 0) junk[0] = v6 ? 0x60 : 0x45;
        const out = h.one(icmpError(v6, v6 ? ROUTER6 : ROUTER, v6 ? VIP6 : VIP, v6 ? 1 : 3, 0, 0, junk));
        expect(out.port).toBe(-1);
      }
    }
    expect(h.stats().icmp_forwarded).toBe(0);
  });
});

describe("transmit refusals", () => {
  test("a real server no route leads to: the client gets ICMP host unreachable, counted as drop_no_route", () => {
    const h2 = new XmitHarness();
    h2.rs.set("198.18.9.9", { routed: false });
    h2.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    h2.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: "198.18.9.9", port: 80, forward: "route", ...SPEC });
    h2.apply();
    const out = h2.one(syn(80));
    expect(out.port).toBe(0);
    expect([out.frame[23], out.frame[34], out.frame[35]]).toEqual([1, 3, 1]);
    expect(icmpSumOk(out.frame)).toBe(true);
    expect(h2.stats().drop_no_route).toBe(1);
    expect(h2.stats().icmp_sent).toBe(1);
  });

  test("a tunnel MTU below 68 drops (drop_tunnel_mtu); a missing tunnel source drops (drop_no_route)", () => {
    const h2 = new XmitHarness();
    h2.rs.set("198.18.9.1", { mtu: 80 });
    h2.rs.set("198.18.9.2", { src: "" });
    for (const [port, rs] of [
      [80, "198.18.9.1"],
      [81, "198.18.9.2"],
    ] as const) {
      h2.model.addService({ protocol: "tcp", address: VIP, port, scheduler: "rr", onePacket: false, schedFlags: [] });
      h2.model.addDest({ protocol: "tcp", address: VIP, port }, { address: rs, port, forward: "tunnel", ...SPEC, tunnel: { type: "gue", port: 6080 } });
    }
    h2.apply();
    expect(h2.one(syn(80)).port).toBe(-1);
    expect(h2.one(syn(81)).port).toBe(-1);
    expect(h2.stats().drop_tunnel_mtu).toBe(1);
    expect(h2.stats().drop_no_route).toBe(1);
  });

  test("IPv4 without DF over the MTU: answered with fragmentation needed all the same, counted apart", () => {
    const h2 = new XmitHarness();
    h2.rs.set(RS_DR, { mtu: 1000 });
    h2.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
    h2.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { address: RS_DR, port: 53, forward: "route", ...SPEC });
    h2.apply();
    const out = h2.one(udp(53, 1200, false));
    expect(out.port).toBe(0);
    expect([out.frame[34], out.frame[35], new DataView(out.frame.buffer).getUint16(40)]).toEqual([3, 4, 1000]);
    expect(h2.stats().drop_mtu_no_df).toBe(1);
    expect(h2.stats().drop_mtu).toBe(0);
    // and one that fits goes through untouched but for the TTL
    const ok = h2.one(udp(53, 900, false, 41999));
    expect(ok.port).toBe(1);
    expect(checksumsValid(ok.frame)).toBe(true);
  });
});
