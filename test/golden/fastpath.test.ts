/**
 * Golden packets through the fast path in process: each row is a frame built with
 * PacketBuilder, the verdict it must get (a Stat counter), and for forwarded frames the exact
 * rewrite (addresses, ports, TTL, MACs) with every checksum verified from scratch.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import {
  ACK,
  FIN,
  PSH,
  PacketBuilder,
  RST,
  SYN,
  checksumsValid,
  correctFrameWithFieldP,
  l4ChecksumField,
  partialChecksum,
  pseudoFold,
  sctpCrcValid,
  sctpPacket,
} from "../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS, realMac } from "../util/harness.ts";
import { macText } from "../../src/wire/eth.ts";
import { addrText } from "../../src/wire/ipv4.ts";
import * as ipv6 from "../../src/wire/ipv6.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS1 = "198.18.2.11",
  RS2 = "198.18.2.12";
const VIP6 = "2001:db8:100::100",
  CLIENT6 = "2001:db8:1::2",
  RS6 = "2001:db8:2::11";

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
  new PacketBuilder()
    .eth(PORT_MACS[0], GATEWAY_MAC)
    .ipv4({ src: CLIENT, dst: VIP, ttl: opts.ttl ?? 64 })
    .tcp({ sport, dport: 80, flags: opts.flags ?? SYN })
    .build();

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
    const reply = new PacketBuilder()
      .eth(PORT_MACS[1], realMac(1))
      .ipv4({ src: a.daddr, dst: CLIENT, ttl: 64 })
      .tcp({ sport: 8080, dport: 40000, flags: SYN | ACK })
      .payload("HTTP/1.0 200")
      .build();
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
    const f = new PacketBuilder()
      .eth()
      .ipv4({ src: CLIENT, dst: VIP, options: [1, 1, 1, 0] })
      .tcp({ sport: 40001, dport: 80, flags: SYN })
      .build();
    const out = h.one(f);
    expect(out.port).toBe(1);
    expect(checksumsValid(out.frame)).toBe(true);
    expect(new DataView(out.frame.buffer).getUint16(14 + 24 + 2)).toBe(8080);
  });
});

describe("refusals are counted, never thrown", () => {
  const rows: { name: string; frame: () => Uint8Array; stat: string; port?: number }[] = [
    { name: "an RST without a connection (no reset answers a reset)", frame: () => syn(41001, { flags: RST }), stat: "drop_tcp_no_conn" },
    {
      name: "a non-first fragment whose first fragment was never seen",
      frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 100 }).raw(6, new Array(20).fill(0)).build(),
      stat: "drop_frag_orphan",
    },
    {
      name: "a first fragment too short for its TCP header (RFC 1858 tiny fragment)",
      frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 0x2000 }).raw(6, new Array(8).fill(0)).build(),
      stat: "drop_fragment",
    },
    {
      name: "an unknown protocol",
      frame: () => new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).raw(99, [1, 2, 3, 4]).build(),
      stat: "drop_unknown_proto",
    },
    {
      name: "a VLAN-tagged frame",
      frame: () => {
        const f = syn();
        f[12] = 0x81;
        f[13] = 0x00;
        return f;
      },
      stat: "drop_vlan",
    },
    {
      name: "an IPv4 header with IHL < 5",
      frame: () => {
        const f = syn();
        f[14] = 0x44;
        return f;
      },
      stat: "drop_malformed",
    },
    {
      name: "a total length beyond the frame",
      frame: () => {
        const f = syn();
        f[16] = 0x05;
        return f;
      },
      stat: "drop_malformed",
    },
    {
      name: "a bad IPv4 header checksum",
      frame: () => {
        const f = syn();
        f[24] ^= 0xff;
        return f;
      },
      stat: "drop_bad_checksum",
    },
    {
      name: "a TCP data offset below 5",
      frame: () => {
        const f = syn();
        f[14 + 20 + 12] = 0x40;
        return f;
      },
      stat: "drop_malformed",
    },
    {
      name: "a UDP length beyond the datagram",
      frame: () => {
        const f = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 1, dport: 53 }).build();
        f[14 + 20 + 5] = 200;
        return f;
      },
      stat: "drop_malformed",
    },
    {
      name: "an IPv6 packet with an extension header",
      frame: () => new PacketBuilder().eth().ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 0 }).raw(0, new Array(8).fill(0)).build(),
      stat: "drop_ipv6_ext_header",
    },
    {
      name: "a reply from a real server that matches no connection",
      frame: () => new PacketBuilder().eth().ipv4({ src: RS1, dst: CLIENT }).tcp({ sport: 8080, dport: 5, flags: ACK }).build(),
      stat: "drop_no_conn",
    },
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
    const f = new PacketBuilder()
      .eth(PORT_MACS[0], GATEWAY_MAC)
      .ipv4({ src: CLIENT, dst: VIP, tos: 0x2b, options: [1, 1, 1, 0] })
      .tcp({ sport: 41000, dport: 80, flags: ACK | PSH, seq: 5000, ack: 0xfffffff0 })
      .payload("GET / HTTP/1.0")
      .build();
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
    const fin = h.one(
      new PacketBuilder()
        .eth(PORT_MACS[0], GATEWAY_MAC)
        .ipv4({ src: CLIENT, dst: VIP })
        .tcp({ sport: 41002, dport: 80, flags: FIN, seq: 0xfffffffe })
        .payload("abc")
        .build(),
    );
    expect(fin.port).toBe(0);
    expect(tcpOf(fin.frame)).toEqual({ seq: 0, ack: 0xfffffffe + 3 + 1 - 0x100000000, doff: 5, flags: RST | ACK, window: 0 });
    expect(checksumsValid(fin.frame)).toBe(true);
    const none = h.one(
      new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 41003, dport: 80, flags: 0, seq: 77 }).build(),
    );
    expect(tcpOf(none.frame)).toEqual({ seq: 0, ack: 77, doff: 5, flags: RST | ACK, window: 0 });
    expect(h.stats().tcp_reset_sent).toBe(2);
  });

  test("IPv6: the RST comes from the v6 VIP with hop limit 64 and a valid checksum", () => {
    const f = new PacketBuilder()
      .eth(PORT_MACS[0], GATEWAY_MAC)
      .ipv6({ src: CLIENT6, dst: VIP6, hopLimit: 9, tc: 0x2b })
      .tcp({ sport: 41004, dport: 80, flags: ACK, ack: 99 })
      .payload("x")
      .build();
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
    for (const a of [RS1, RS2])
      h.model.editDest(
        { protocol: "tcp", address: VIP, port: 80 },
        { address: a, port: 8080, forward: "masq", weight: 0, upperThreshold: 0, lowerThreshold: 0 },
      );
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
    const big = new PacketBuilder()
      .eth()
      .ipv4({ src: CLIENT, dst: VIP, df: true })
      .tcp({ sport: 44000, dport: 80, flags: ACK })
      .payload("x".repeat(200))
      .build();
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
    h.one(
      new PacketBuilder()
        .eth()
        .ipv4({ src: CLIENT, dst: VIP })
        .tcp({ sport: 46000, dport: 80, flags: FIN | ACK })
        .build(),
    );
    expect(h.counters.active[d]).toBe(0);
    expect(h.counters.inactive[d]).toBe(1);
  });

  test("a full connection table refuses new connections with a counter and keeps the established ones", () => {
    const small = new Harness(2);
    small.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    small.model.addDest(
      { protocol: "tcp", address: VIP, port: 80 },
      { address: RS1, port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    );
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

describe("partial L4 checksums (CHECKSUM_PARTIAL: a sender's offload on veth) are completed before any rewrite", () => {
  const body = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  const MSS_WS = [2, 4, 5, 0xb4, 1, 3, 3, 7]; // MSS 1460, NOP, window scale 7: what a Linux SYN carries
  const tcp4 = (sport: number, flags = SYN, ttl = 64, options: number[] = []) =>
    new PacketBuilder()
      .eth(PORT_MACS[0], GATEWAY_MAC)
      .ipv4({ src: CLIENT, dst: VIP, ttl, df: true })
      .tcp({ sport, dport: 80, flags, options })
      .payload(flags === SYN ? "" : body)
      .build();
  const tcp6 = (sport: number, flags = SYN) =>
    new PacketBuilder()
      .eth(PORT_MACS[0], GATEWAY_MAC)
      .ipv6({ src: CLIENT6, dst: VIP6 })
      .tcp({ sport, dport: 80, flags, options: MSS_WS })
      .payload(flags === SYN ? "" : body)
      .build();
  /** Bytes of the frame but MACs (0-11), IPv4 TTL (22) and header checksum (24-25) / IPv6 hop limit (21). */
  const beyondHop = (f: Uint8Array) => [...f].filter((_, i) => i >= 12 && i !== 22 && i !== 24 && i !== 25 && !(f[12] === 0x86 && i === 21));

  test("NAT, client -> real server: TCP with options and UDP over IPv4, TCP and UDP over IPv6 reach the real server with full checksums", () => {
    h.model.addService({ protocol: "udp", address: VIP6, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
    h.model.addDest(
      { protocol: "udp", address: VIP6, port: 53 },
      { address: RS6, port: 5353, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    );
    h.apply();
    const frames = [
      tcp4(47000, SYN, 64, MSS_WS),
      new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5300, dport: 53 }).payload("a query of odd length").build(),
      tcp6(47001),
      new PacketBuilder().eth().ipv6({ src: CLIENT6, dst: VIP6 }).udp({ sport: 5301, dport: 53 }).payload("v6 query").build(),
    ];
    for (const f of frames) {
      const p = partialChecksum(f);
      expect(checksumsValid(p)).toBe(false);
      const out = h.one(p);
      expect(out.port).toBe(1);
      expect(checksumsValid(out.frame)).toBe(true);
    }
    expect(h.stats().csum_partial_completed).toBe(4);
    expect(h.stats().fwd_in).toBe(4);
  });

  test("NAT, real server -> client: partial replies leave SNATed with full checksums (IPv4 and IPv6)", () => {
    const a = view(h.one(tcp4(47010)).frame);
    const reply = new PacketBuilder()
      .eth(PORT_MACS[1], realMac(1))
      .ipv4({ src: a.daddr, dst: CLIENT })
      .tcp({ sport: 8080, dport: 47010, flags: SYN | ACK, options: [2, 4, 5, 0xb4] })
      .build();
    const out = h.one(partialChecksum(reply), 1);
    expect(out.port).toBe(0);
    expect(view(out.frame)).toMatchObject({ saddr: VIP, sport: 80, daddr: CLIENT });
    expect(checksumsValid(out.frame)).toBe(true);
    h.one(tcp6(47011));
    const reply6 = new PacketBuilder()
      .eth(PORT_MACS[1], realMac(2))
      .ipv6({ src: RS6, dst: CLIENT6 })
      .tcp({ sport: 80, dport: 47011, flags: SYN | ACK })
      .payload("x")
      .build();
    const out6 = h.one(partialChecksum(reply6), 1);
    expect(out6.port).toBe(0);
    expect(checksumsValid(out6.frame)).toBe(true);
    expect(h.stats().csum_partial_completed).toBe(2);
    expect(h.stats().fwd_out).toBe(2);
  });

  test("DR and TUN: the real server gets the client's packet with its checksum completed and nothing else changed but the hop", () => {
    const d = new Harness();
    d.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS1, port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    d.model.addService({ protocol: "tcp", address: VIP6, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest(
      { protocol: "tcp", address: VIP6, port: 80 },
      { address: RS6, port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    );
    d.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest({ protocol: "udp", address: VIP, port: 53 }, {
      address: RS2,
      port: 53,
      forward: "tunnel",
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
      tunnel: { type: "ipip" },
    } as never);
    d.apply();
    for (const good of [tcp4(47020, SYN, 64, MSS_WS), tcp6(47021)]) {
      const out = d.one(partialChecksum(good));
      expect(out.port).toBe(1);
      expect(checksumsValid(out.frame)).toBe(true);
      // byte for byte the packet the client would have sent without offload, TTL - 1
      expect(beyondHop(out.frame)).toEqual(beyondHop(good));
    }
    const udp = new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5310, dport: 53 }).payload("tunnelled").build();
    const out = d.one(partialChecksum(udp));
    expect(out.port).toBe(1);
    expect(out.frame[14 + 9]).toBe(4); // IPIP
    const inner = new Uint8Array([...udp.subarray(0, 14), ...out.frame.subarray(34)]);
    expect(checksumsValid(inner)).toBe(true);
    expect(beyondHop(inner)).toEqual(beyondHop(udp));
    expect(d.stats().csum_partial_completed).toBe(3);
    expect(d.stats().fwd_dr).toBe(2);
    expect(d.stats().fwd_tun).toBe(1);
  });

  test("ICMP errors xvs builds quote the completed packet (time exceeded, port unreachable)", () => {
    const good = tcp4(47030, SYN, 1);
    const out = h.one(partialChecksum(good));
    expect([out.port, out.frame[34]]).toEqual([0, 11]);
    expect(Buffer.from(out.frame.subarray(42, 42 + good.length - 14))).toEqual(Buffer.from(good.subarray(14)));
    for (const a of [RS1, RS2])
      h.model.editDest(
        { protocol: "tcp", address: VIP, port: 80 },
        { address: a, port: 8080, forward: "masq", weight: 0, upperThreshold: 0, lowerThreshold: 0 },
      );
    h.apply();
    const good2 = tcp4(47031);
    const out2 = h.one(partialChecksum(good2));
    expect([out2.port, out2.frame[34], out2.frame[35]]).toEqual([0, 3, 3]);
    expect(Buffer.from(out2.frame.subarray(42, 42 + good2.length - 14))).toEqual(Buffer.from(good2.subarray(14)));
    expect(h.stats().csum_partial_completed).toBe(2);
  });

  test("a correct frame whose checksum equals P is never changed: DR forwards it byte for byte, NAT rewrites it to a correct one", () => {
    const d = new Harness();
    d.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS1, port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    d.apply();
    d.one(tcp4(40000));
    const f = correctFrameWithFieldP(false);
    expect(checksumsValid(f)).toBe(true);
    expect(l4ChecksumField(f)).toBe(pseudoFold(f));
    const out = d.one(f);
    expect(out.port).toBe(1);
    expect(Buffer.from(out.frame.subarray(34))).toEqual(Buffer.from(f.subarray(34)));
    expect(d.stats().csum_partial_completed).toBe(0);
    h.one(tcp4(40000));
    const nat = h.one(correctFrameWithFieldP(false));
    expect(nat.port).toBe(1);
    expect(checksumsValid(nat.frame)).toBe(true);
    expect(h.stats().csum_partial_completed).toBe(0);
  });

  test("a corrupt checksum (neither complete nor partial) is forwarded as IPVS does, still wrong; a first fragment is never completed", () => {
    h.one(tcp4(47040));
    const bad = tcp4(47040, ACK | PSH);
    const dv = new DataView(bad.buffer);
    dv.setUint16(50, dv.getUint16(50) ^ 0x1234);
    expect(dv.getUint16(50)).not.toBe(pseudoFold(bad));
    const out = h.one(bad);
    expect(out.port).toBe(1);
    expect(checksumsValid(out.frame)).toBe(false);
    // a first fragment's checksum covers the whole datagram: never touched
    const first = partialChecksum(
      new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 0x2000, id: 77 }).tcp({ sport: 47041, dport: 80, flags: SYN }).payload("12345678").build(),
    );
    const fo = h.one(first);
    expect(fo.port).toBe(1);
    expect(checksumsValid(fo.frame)).toBe(false);
    expect(h.stats().csum_partial_completed).toBe(0);
  });

  test("SCTP with the CRC32c left 0 (NETIF_F_SCTP_CRC) leaves with its CRC, NAT and DR; a present CRC is untouched", () => {
    const d = new Harness();
    d.model.addService({ protocol: "sctp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest({ protocol: "sctp", address: VIP, port: 80 }, { address: RS1, port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    d.model.addService({ protocol: "sctp", address: VIP, port: 81, scheduler: "rr", onePacket: false, schedFlags: [] });
    d.model.addDest(
      { protocol: "sctp", address: VIP, port: 81 },
      { address: RS2, port: 81, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    );
    d.apply();
    const chunk = [...Buffer.from("an SCTP DATA chunk")];
    for (const port of [80, 81]) {
      const zero = new PacketBuilder()
        .eth()
        .ipv4({ src: CLIENT, dst: VIP })
        .raw(132, sctpPacket(47050, port, chunk, false))
        .build();
      const out = d.one(zero);
      expect(out.port).toBe(1);
      expect(sctpCrcValid(out.frame)).toBe(true);
    }
    const wrong = new PacketBuilder()
      .eth()
      .ipv4({ src: CLIENT, dst: VIP })
      .raw(132, sctpPacket(47051, 81, chunk))
      .build();
    wrong[14 + 20 + 8] ^= 0x40;
    const out = d.one(wrong);
    expect(Buffer.from(out.frame.subarray(34))).toEqual(Buffer.from(wrong.subarray(34)));
    expect(d.stats().csum_partial_completed).toBe(2);
  });
});
