/**
 * Golden packets through the fast path in process: each row is a frame built with
 * PacketBuilder, the verdict it must get (a Stat counter), and for forwarded frames the exact
 * rewrite (addresses, ports, TTL, MACs) with every checksum verified from scratch.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { ACK, FIN, PSH, PacketBuilder, RST, SYN, checksumsValid } from "../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS, realMac } from "../util/harness.ts";
import { macText } from "../../src/wire/eth.ts";
import { addrText } from "../../src/wire/ipv4.ts";
import * as ipv6 from "../../src/wire/ipv6.ts";

const VIP = "198.18.0.100", CLIENT = "198.18.1.2", RS1 = "198.18.2.11", RS2 = "198.18.2.12";
const VIP6 = "2001:db8:100::100", CLIENT6 = "2001:db8:1::2", RS6 = "2001:db8:2::11";

function view(f: Uint8Array) {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  return {
    dst: macText(dv.getUint16(0), dv.getInt32(2)),
    src: macText(dv.getUint16(6), dv.getInt32(8)),
    saddr: addrText(dv.getInt32(26)),
    daddr: addrText(dv.getInt32(30)),
    ttl: f[22],
    sport: dv.getUint16(34),
    dport: dv.getUint16(36),
  };
}

let h: Harness;
beforeEach(async () => {
  h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addService({ protocol: "tcp", address: VIP6, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  const k80 = { protocol: "tcp" as const, address: VIP, port: 80 };
  h.model.addDest(k80, { address: RS1, port: 8080, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  h.model.addDest(k80, { address: RS2, port: 8080, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { address: RS1, port: 53, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  h.model.addDest({ protocol: "tcp", address: VIP6, port: 80 }, { address: RS6, port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  h.apply();
});

const syn = (sport = 40000, opts: Partial<{ ttl: number; flags: number }> = {}) =>
  new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP, ttl: opts.ttl ?? 64 }).tcp({ sport, dport: 80, flags: opts.flags ?? SYN }).build();

describe("NAT rewrite", () => {
  test("a SYN to the VIP leaves on the server port, DNATed to the newest real server, TTL-1, MACs from the next hop", () => {
    const out = h.one(syn());
    expect(out.port).toBe(1);
    const v = view(out.frame);
    // kernel list order: RS2 was added last, so it is first; rr starts at the head
    expect(v).toEqual({ dst: realMac(1), src: PORT_MACS[1], saddr: CLIENT, daddr: RS2, ttl: 63, sport: 40000, dport: 8080 });
    expect(checksumsValid(out.frame)).toBe(true);
    expect(h.stats().fwd_in).toBe(1);
    expect(h.stats().new_conns).toBe(1);
  });

  test("later packets of the connection follow it; the reply is SNATed back to VIP:80 towards the gateway", () => {
    const a = view(h.one(syn()).frame);
    const ack = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40000, dport: 80, flags: ACK }).payload("GET /").build();
    expect(view(h.one(ack).frame).daddr).toBe(a.daddr);
    const reply = new PacketBuilder().eth(PORT_MACS[1], realMac(1)).ipv4({ src: a.daddr, dst: CLIENT, ttl: 64 }).tcp({ sport: 8080, dport: 40000, flags: SYN | ACK }).payload("HTTP/1.0 200").build();
    const out = h.one(reply, 1);
    expect(out.port).toBe(0);
    expect(view(out.frame)).toEqual({ dst: GATEWAY_MAC, src: PORT_MACS[0], saddr: VIP, daddr: CLIENT, ttl: 63, sport: 80, dport: 40000 });
    expect(checksumsValid(out.frame)).toBe(true);
    expect(h.stats().fwd_out).toBe(1);
  });

  test("a UDP datagram is DNATed with a valid checksum, and one sent without a checksum keeps none", () => {
    const withSum = h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5353, dport: 53 }).payload("q").build());
    expect(view(withSum.frame).daddr).toBe(RS1);
    expect(checksumsValid(withSum.frame)).toBe(true);
    const noSum = h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5354, dport: 53, noChecksum: true }).payload("q").build());
    expect(new DataView(noSum.frame.buffer).getUint16(40)).toBe(0);
    expect(view(noSum.frame).daddr).toBe(RS1);
  });

  test("IPv6: a SYN to the v6 VIP is DNATed with a valid TCP checksum and hop limit - 1", () => {
    const f = new PacketBuilder().eth().ipv6({ src: CLIENT6, dst: VIP6, hopLimit: 10 }).tcp({ sport: 1234, dport: 80, flags: SYN }).build();
    const out = h.one(f);
    expect(out.port).toBe(1);
    const dv = new DataView(out.frame.buffer);
    expect(ipv6.addrText([0, 1, 2, 3].map((i) => dv.getInt32(14 + 24 + 4 * i)))).toBe(RS6);
    expect(out.frame[14 + 7]).toBe(9);
    expect(checksumsValid(out.frame)).toBe(true);
  });

  test("IPv4 options are kept and the L4 header is found after them", () => {
    const f = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, options: [1, 1, 1, 0] }).tcp({ sport: 40001, dport: 80, flags: SYN }).build();
    const out = h.one(f);
    expect(out.port).toBe(1);
    expect(checksumsValid(out.frame)).toBe(true);
    expect(new DataView(out.frame.buffer).getUint16(14 + 24 + 2)).toBe(8080);
  });
});

describe("refusals are counted, never thrown", () => {
  const rows: { name: string; frame: () => Uint8Array; stat: string; port?: number }[] = [
    { name: "an RST without a connection (no reset answers a reset)", frame: () => syn(41001, { flags: RST }), stat: "drop_tcp_no_conn" },
    { name: "a non-first fragment whose first fragment was never seen", frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 100 }).raw(6, new Array(20).fill(0)).build(), stat: "drop_frag_orphan" },
    { name: "a first fragment too short for its TCP header (RFC 1858 tiny fragment)", frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 0x2000 }).raw(6, new Array(8).fill(0)).build(), stat: "drop_fragment" },
    { name: "an unknown protocol", frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).raw(99, [1, 2, 3, 4]).build(), stat: "drop_unknown_proto" },
    { name: "a VLAN-tagged frame", frame: () => { const f = syn(); f[12] = 0x81; f[13] = 0x00; return f; }, stat: "drop_vlan" },
    { name: "an IPv4 header with IHL < 5", frame: () => { const f = syn(); f[14] = 0x44; return f; }, stat: "drop_malformed" },
    { name: "a total length beyond the frame", frame: () => { const f = syn(); f[16] = 0x05; return f; }, stat: "drop_malformed" },
    { name: "a bad IPv4 header checksum", frame: () => { const f = syn(); f[24] ^= 0xff; return f; }, stat: "drop_bad_checksum" },
    { name: "a TCP data offset below 5", frame: () => { const f = syn(); f[14 + 20 + 12] = 0x40; return f; }, stat: "drop_malformed" },
    { name: "a UDP length beyond the datagram", frame: () => { const f = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 1, dport: 53 }).build(); f[14 + 20 + 5] = 200; return f; }, stat: "drop_malformed" },
    { name: "an IPv6 packet with an extension header", frame: () => new PacketBuilder().eth().ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 0 }).raw(0, new Array(8).fill(0)).build(), stat: "drop_ipv6_ext_header" },
    { name: "a reply from a real server that matches no connection", frame: () => new PacketBuilder().eth().ipv4({ src: RS1, dst: CLIENT }).tcp({ sport: 8080, dport: 5, flags: ACK }).build(), stat: "drop_no_conn" },
  ];
  for (const r of rows) {
    test(`${r.name}: ${r.stat}`, () => {
      const out = h.one(r.frame());
      expect(out.port).toBe(-1);
      expect(h.stats()[r.stat]).toBe(1);
      expect(h.stats().fwd_in + h.stats().fwd_out).toBe(0);
    });
  }

  /** The TCP header of a frame leaving with a plain IPv4 header. */
  const tcpOf = (f: Uint8Array) => {
    const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
    return { seq: dv.getUint32(38), ack: dv.getUint32(42), doff: f[46] >>> 4, flags: f[47], window: dv.getUint16(48) };
  };

  test("a segment with ACK and no connection is answered with the RST the director's stack sends: seq = its ack, RST alone", () => {
    const f = new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP, tos: 0x2b, options: [1, 1, 1, 0] })
      .tcp({ sport: 41000, dport: 80, flags: ACK | PSH, seq: 5000, ack: 0xfffffff0 }).payload("GET / HTTP/1.0").build();
    const out = h.one(f);
    expect(out.port).toBe(0);
    expect(out.frame.length).toBe(54);
    expect(view(out.frame)).toEqual({ dst: GATEWAY_MAC, src: PORT_MACS[0], saddr: VIP, daddr: CLIENT, ttl: 64, sport: 80, dport: 41000 });
    expect(tcpOf(out.frame)).toEqual({ seq: 0xfffffff0, ack: 0, doff: 5, flags: RST, window: 0 });
    const dv = new DataView(out.frame.buffer, out.frame.byteOffset);
    expect(out.frame[14]).toBe(0x45); // the options are not echoed
    expect(out.frame[15]).toBe(0x28); // TOS kept, ECN bits cleared
    expect(dv.getUint16(16)).toBe(40);
    expect(dv.getUint16(18)).toBe(0); // IP ID 0 with DF, as the kernel's reply socket
    expect(dv.getUint16(20)).toBe(0x4000);
    expect(checksumsValid(out.frame)).toBe(true);
    expect(h.stats().drop_tcp_no_conn).toBe(1);
    expect(h.stats().tcp_reset_sent).toBe(1);
    expect(h.stats().fwd_in + h.stats().fwd_out + h.stats().new_conns).toBe(0);
  });

  test("a segment without ACK is answered RST+ACK, acking its data, its SYN and its FIN", () => {
    const fin = h.one(new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 41002, dport: 80, flags: FIN, seq: 0xfffffffe }).payload("abc").build());
    expect(fin.port).toBe(0);
    expect(tcpOf(fin.frame)).toEqual({ seq: 0, ack: 0xfffffffe + 3 + 1 - 0x100000000, doff: 5, flags: RST | ACK, window: 0 });
    expect(checksumsValid(fin.frame)).toBe(true);
    const none = h.one(new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 41003, dport: 80, flags: 0, seq: 77 }).build());
    expect(tcpOf(none.frame)).toEqual({ seq: 0, ack: 77, doff: 5, flags: RST | ACK, window: 0 });
    expect(h.stats().tcp_reset_sent).toBe(2);
  });

  test("IPv6: the RST comes from the v6 VIP with hop limit 64 and a valid checksum", () => {
    const f = new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv6({ src: CLIENT6, dst: VIP6, hopLimit: 9, tc: 0x2b }).tcp({ sport: 41004, dport: 80, flags: ACK, ack: 99 }).payload("x").build();
    const out = h.one(f);
    expect(out.port).toBe(0);
    expect(out.frame.length).toBe(74);
    const dv = new DataView(out.frame.buffer, out.frame.byteOffset);
    expect(dv.getUint32(14)).toBe((6 << 28) | (0x28 << 20));
    expect(dv.getUint16(18)).toBe(20);
    expect(out.frame[21]).toBe(64);
    expect(ipv6.addrText([0, 1, 2, 3].map((i) => dv.getInt32(22 + 4 * i)))).toBe(VIP6);
    expect(ipv6.addrText([0, 1, 2, 3].map((i) => dv.getInt32(38 + 4 * i)))).toBe(CLIENT6);
    expect([dv.getUint16(54), dv.getUint16(56), dv.getUint32(58), out.frame[67]]).toEqual([80, 41004, 99, RST]);
    expect(checksumsValid(out.frame)).toBe(true);
  });

  test("with sloppy_tcp a segment without SYN starts a connection instead", () => {
    h.model.setSettings({ sloppyTcp: true });
    h.apply();
    const out = h.one(syn(41005, { flags: ACK }));
    expect(out.port).toBe(1);
    expect(h.stats().tcp_reset_sent).toBe(0);
  });

  test("truncating a valid SYN at every length drops it as malformed (or, complete, forwards it)", () => {
    const f = syn();
    for (let len = 0; len < f.length; len++) {
      const out = h.one(f.subarray(0, len));
      expect(out.port).toBe(-1);
    }
    expect(h.stats().drop_malformed).toBe(f.length);
    expect(h.one(f).port).toBe(1);
  });

  test("TTL 1 is answered with ICMP time exceeded to the client, on the port it came in", () => {
    const out = h.one(syn(42000, { ttl: 1 }));
    expect(out.port).toBe(0);
    const v = view(out.frame);
    expect(out.frame[14 + 9]).toBe(1); // ICMP
    expect(out.frame[34]).toBe(11);
    expect(v.saddr).toBe(VIP);
    expect(v.daddr).toBe(CLIENT);
    expect(v.dst).toBe(GATEWAY_MAC);
    expect(checksumsValid(out.frame)).toBe(true);
    expect(h.stats().drop_ttl).toBe(1);
  });

  test("with no usable real server the client gets ICMP port unreachable quoting its packet", () => {
    for (const a of [RS1, RS2]) h.model.editDest({ protocol: "tcp", address: VIP, port: 80 }, { address: a, port: 8080, forward: "masq", weight: 0, upperThreshold: 0, lowerThreshold: 0 });
    h.apply();
    const sent = syn(43000);
    const out = h.one(sent);
    expect(out.port).toBe(0);
    expect(out.frame[34]).toBe(3);
    expect(out.frame[35]).toBe(3);
    expect(Buffer.from(out.frame.subarray(42, 42 + sent.length - 14))).toEqual(Buffer.from(sent.subarray(14)));
    expect(checksumsValid(out.frame)).toBe(true);
    expect(h.stats().drop_no_dest).toBe(1);
  });

  test("a DF packet larger than the path MTU gets ICMP fragmentation needed with the MTU", () => {
    h.destMtu = 100;
    h.apply();
    h.one(syn(44000));
    const big = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, df: true }).tcp({ sport: 44000, dport: 80, flags: ACK }).payload("x".repeat(200)).build();
    const out = h.one(big);
    expect(out.port).toBe(0);
    expect([out.frame[34], out.frame[35]]).toEqual([3, 4]);
    expect(new DataView(out.frame.buffer).getUint16(34 + 6)).toBe(100);
    expect(h.stats().drop_mtu).toBe(1);
  });
});

describe("connection life", () => {
  test("a connection expires after its state's timeout (SYN_RECV: 60 s)", () => {
    h.one(syn(45000));
    expect(h.conns.size).toBe(1);
    h.advance(61_000); // SYN_RECV: 60 s
    expect(h.conns.size).toBe(0);
    expect(h.stats().conns_expired).toBe(1);
  });

  test("ActiveConn/InActConn follow the TCP states: SYN_RECV active, client FIN moves to CLOSE_WAIT (inactive)", () => {
    const d = view(h.one(syn(46000)).frame).daddr === RS2 ? 1 : 0;
    expect(h.counters.active[d]).toBe(1);
    h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 46000, dport: 80, flags: ACK }).build());
    expect(h.counters.active[d]).toBe(1);
    h.one(new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 46000, dport: 80, flags: FIN | ACK }).build());
    expect(h.counters.active[d]).toBe(0);
    expect(h.counters.inactive[d]).toBe(1);
  });

  test("a full connection table refuses new connections with a counter and keeps the established ones", () => {
    const small = new Harness(2);
    small.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    small.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS1, port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    small.apply();
    const mk = (p: number, flags = SYN) => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: p, dport: 80, flags }).build();
    // established first: under table pressure the SYN flood defence may evict half-open ones
    expect(small.one(mk(1)).port).toBe(1);
    expect(small.one(mk(1, ACK)).port).toBe(1);
    expect(small.one(mk(2)).port).toBe(1);
    expect(small.one(mk(2, ACK)).port).toBe(1);
    expect(small.one(mk(3)).port).toBe(-1);
    expect(small.stats().drop_table_full).toBe(1);
    expect(small.one(mk(1, ACK)).port).toBe(1);
    expect(small.one(mk(2, ACK)).port).toBe(1);
  });
});
