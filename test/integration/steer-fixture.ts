/**
 * Golden packets of the steering program (native/bpf/xvs_steer.bpf.c): one configuration and a
 * table of frames, each with the verdict the program must return and the one XDP counter it must
 * move. steer-runner.ts runs them with BPF_PROG_TEST_RUN; steer.test.ts asserts.
 *
 * The director's namespace has eth0 (a two-queue veth; xvs holds an AF_XDP socket on queue 0
 * only) with the local addresses below. Services (and so the maps) come from `steerModel()` through
 * the dataplane's own code (Dataplane.start: if_slots, vips, vip_addrs, nat_reals, local_addrs).
 */
import * as abi from "../../src/ffi/abi.ts";
import { Model } from "../../src/config/model.ts";
import { checksum } from "../../src/wire/checksum.ts";
import { ACK, PacketBuilder, SYN } from "../util/packet.ts";

export const LOCAL4 = "198.18.0.1",
  LOCAL6 = "2001:db8::1";
export const VIP = "198.18.0.100",
  VIP_ALL_PORTS = "198.18.0.101",
  VIP6 = "2001:db8::100";
export const NAT_RS1 = "198.18.1.10",
  NAT_RS2 = "198.18.1.11",
  NAT_RS_ANY = "198.18.1.30",
  DR_RS = "198.18.1.20";
export const NAT_RS6 = "2001:db8:1::10";
export const CLIENT = "198.18.2.5",
  CLIENT6 = "2001:db8:2::5",
  OTHER = "198.18.0.200";

const XDP_PASS = 2,
  XDP_REDIRECT = 4;

/** The configuration: NAT TCP VIP:80, DR UDP VIP:53, a NAT port-0 (all ports) service, NAT IPv6. */
export function steerModel(): Model {
  const m = new Model();
  const svc = { scheduler: "rr" as const, onePacket: false, schedFlags: [] };
  const dest = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
  const tcp80 = { protocol: "tcp" as const, address: VIP, port: 80 };
  m.addService({ ...tcp80, ...svc });
  m.addDest(tcp80, { ...dest, address: NAT_RS1, port: 8080, forward: "masq" });
  m.addDest(tcp80, { ...dest, address: NAT_RS2, port: 8080, forward: "masq" });
  const udp53 = { protocol: "udp" as const, address: VIP, port: 53 };
  m.addService({ ...udp53, ...svc });
  m.addDest(udp53, { ...dest, address: DR_RS, port: 53, forward: "route" });
  const all = { protocol: "tcp" as const, address: VIP_ALL_PORTS, port: 0 };
  m.addService({ ...all, ...svc, persistence: { timeout: 300 } });
  m.addDest(all, { ...dest, address: NAT_RS_ANY, port: 0, forward: "masq" });
  const tcp6 = { protocol: "tcp" as const, address: VIP6, port: 80 };
  m.addService({ ...tcp6, ...svc });
  m.addDest(tcp6, { ...dest, address: NAT_RS6, port: 8080, forward: "masq" });
  // a fwmark service has no address: nothing of it can be matched in XDP, nothing is written
  m.addService({ fwmark: 7, family: "ipv4", ...svc });
  return m;
}

/** Where a frame is received: the socket's queue, the queue without a socket, or eth0's peer eth1 (not served: no slot). */
export type Ingress = "eth0" | "eth0-queue1" | "eth1";

export interface SteerCase {
  name: string;
  frame: Uint8Array;
  ingress: Ingress;
  /** The XDP verdict, or the errno text the kernel refuses the run with. */
  retval: number | { refused: RegExp };
  /** The XVS_XDP_* counter that moves by one (none when the kernel refuses the run). */
  stat: number | null;
}

const tcpTo = (dst: string, dport: number, flags = SYN, src = CLIENT, sport = 40000) =>
  new PacketBuilder().eth().ipv4({ src, dst }).tcp({ sport, dport, flags }).build();
const udpTo = (dst: string, dport: number, src = CLIENT, sport = 40000) =>
  new PacketBuilder().eth().ipv4({ src, dst }).udp({ sport, dport }).payload("q").build();

/** The IP packet of a frame (without Ethernet), cut to `keep` bytes as an ICMP error quotes it. */
const quote = (frame: Uint8Array, keep = 28) => [...frame.slice(14, 14 + keep)];

/** ICMPv4 error of type/code quoting `quoted`, with a correct ICMP checksum. */
function icmp4(src: string, dst: string, type: number, code: number, quoted: number[], rest = [0, 0, 0, 0]): Uint8Array {
  const body = [type, code, 0, 0, ...rest, ...quoted];
  const c = checksum(new Uint8Array(body), 0, body.length);
  body[2] = c >>> 8;
  body[3] = c & 255;
  return new PacketBuilder().eth().ipv4({ src, dst }).raw(1, body).build();
}

/** ICMPv6 message (checksum left 0: the program does not verify checksums). */
const icmp6 = (src: string, dst: string, bytes: number[]) => new PacketBuilder().eth().ipv6({ src, dst }).raw(58, bytes).build();

/** Copy of `f` with some bytes replaced (offsets from the start of the frame). */
function patch(f: Uint8Array, at: Record<number, number>): Uint8Array {
  const c = f.slice();
  for (const [k, v] of Object.entries(at)) c[Number(k)] = v;
  return c;
}

const S = abi;
const synToVip = tcpTo(VIP, 80);
const replyFromRs1 = tcpTo(CLIENT, 40000, SYN | ACK, NAT_RS1, 8080);
const synToVip6 = new PacketBuilder().eth().ipv6({ src: CLIENT6, dst: VIP6 }).tcp({ sport: 40000, dport: 80, flags: SYN }).build();
/** An IPIP packet xvs sends to a TUN real server: from our address, carrying client -> VIP:80. */
const ipipToTunRs = new PacketBuilder().eth().ipv4({ src: LOCAL4, dst: "198.18.1.40" }).raw(4, quote(synToVip, 40)).build();
/** GRE and GUE packets to a TUN real server from our address, carrying client -> VIP:80 (GUE: port 6080, no options). */
const innerSyn = quote(synToVip, 40);
const greToTunRs = (flags: number[]) =>
  new PacketBuilder()
    .eth()
    .ipv4({ src: LOCAL4, dst: "198.18.1.40" })
    .raw(47, [...flags, ...innerSyn])
    .build();
const gueToTunRs = new PacketBuilder()
  .eth()
  .ipv4({ src: LOCAL4, dst: "198.18.1.40" })
  .raw(17, [0xc3, 0x50, 0x17, 0xc0, 0, 8 + 4 + innerSyn.length, 0, 0, 0x00, 4, 0, 0, ...innerSyn])
  .build();
/** Ethernet + IPv4 to a VIP:80, behind an 802.1Q tag. */
const vlanSyn = new Uint8Array([...synToVip.slice(0, 12), 0x81, 0x00, 0x00, 0x05, ...synToVip.slice(12)]);
const arpRequest = new Uint8Array([
  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 198, 18, 2, 5, 0, 0, 0, 0, 0, 0, 198, 18, 0,
  100,
]);
const v6Frag = (dst: string) => new PacketBuilder().eth().ipv6({ src: CLIENT6, dst }).raw(44, [6, 0, 0x00, 0x08, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]).build();

export const CASES: SteerCase[] = [
  // client packets to virtual services
  { name: "TCP SYN to a VIP:port is redirected into the queue's socket", frame: synToVip, ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  {
    name: "a later TCP segment (ACK) to a VIP:port is redirected too",
    frame: tcpTo(VIP, 80, ACK),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  { name: "UDP to a DR VIP:port is redirected", frame: udpTo(VIP, 53), ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  {
    name: "TCP to any port of a port-0 service is redirected",
    frame: tcpTo(VIP_ALL_PORTS, 12345),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "IPv4 with options (IHL 6) to a VIP:port: the ports after the options are read",
    frame: new PacketBuilder()
      .eth()
      .ipv4({ src: CLIENT, dst: VIP, options: [1, 1, 1, 0] })
      .tcp({ sport: 40000, dport: 80 })
      .build(),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  { name: "TCP SYN to an IPv6 VIP:port is redirected", frame: synToVip6, ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  // not ours
  { name: "TCP to a VIP address on a port with no service passes", frame: tcpTo(VIP, 81), ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_NOT_OURS },
  {
    name: "UDP to the TCP service's port passes (the protocol is part of the key)",
    frame: udpTo(VIP, 80),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  { name: "TCP to an address that is no VIP passes", frame: tcpTo(OTHER, 80), ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_NOT_OURS },
  { name: "TCP to the director's own address passes", frame: tcpTo(LOCAL4, 22), ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_NOT_OURS },
  {
    name: "ICMP echo request to a VIP passes (the kernel answers it)",
    frame: icmp4(CLIENT, VIP, 8, 0, [1, 2, 3, 4]),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  { name: "ARP passes as not IP", frame: arpRequest, ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_NOT_IP },
  {
    name: "an 802.1Q-tagged frame to a VIP passes as not IP (the program reads no VLAN tag)",
    frame: vlanSyn,
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_IP,
  },
  {
    name: "IPv6 neighbour solicitation passes",
    frame: icmp6(CLIENT6, "ff02::1:ff00:100", [135, 0, 0, 0, 0, 0, 0, 0, ...new Array(16).fill(0)]),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  // NAT replies
  { name: "a NAT real server's reply (RS:port -> client) is redirected", frame: replyFromRs1, ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  {
    name: "a NAT real server's packet to the director's own address (health check) passes",
    frame: tcpTo(LOCAL4, 40000, SYN | ACK, NAT_RS1, 8080),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "a NAT real server's packet from another port passes",
    frame: tcpTo(CLIENT, 40000, SYN | ACK, NAT_RS1, 9999),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "a NAT real server's UDP from its TCP port passes",
    frame: udpTo(CLIENT, 40000, NAT_RS1, 8080),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "a port-0 service's NAT real server replies from any port: redirected",
    frame: tcpTo(CLIENT, 40000, SYN | ACK, NAT_RS_ANY, 4444),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "a DR real server's packet to a client passes (not a NAT real server)",
    frame: udpTo(CLIENT, 40000, DR_RS, 53),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "an IPv6 NAT real server's reply is redirected",
    frame: new PacketBuilder()
      .eth()
      .ipv6({ src: NAT_RS6, dst: CLIENT6 })
      .tcp({ sport: 8080, dport: 40000, flags: SYN | ACK })
      .build(),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  // fragments and extension headers
  {
    name: "a first fragment (MF, offset 0) to a VIP:port is redirected by its ports",
    frame: new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 0x2000 }).tcp({ sport: 40000, dport: 80 }).build(),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "a non-first fragment to a VIP address is redirected (no ports to read)",
    frame: new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP, frag: 185 }).raw(6, [9, 9, 9, 9, 9, 9, 9, 9]).build(),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "a non-first fragment to another address passes",
    frame: new PacketBuilder().eth().ipv4({ src: CLIENT, dst: OTHER, frag: 185 }).raw(6, [9, 9, 9, 9, 9, 9, 9, 9]).build(),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "a non-first fragment from a NAT real server to a client is redirected",
    frame: new PacketBuilder().eth().ipv4({ src: NAT_RS1, dst: CLIENT, frag: 185 }).raw(6, [9, 9, 9, 9, 9, 9, 9, 9]).build(),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "a non-first fragment from a NAT real server to the director passes",
    frame: new PacketBuilder().eth().ipv4({ src: NAT_RS1, dst: LOCAL4, frag: 185 }).raw(6, [9, 9, 9, 9, 9, 9, 9, 9]).build(),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  { name: "an IPv6 fragment header to a VIP address is redirected", frame: v6Frag(VIP6), ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  {
    name: "an IPv6 fragment header to another address passes",
    frame: v6Frag("2001:db8::200"),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  // ICMP errors
  {
    name: "ICMP unreachable about a packet from VIP:80 (our NAT reply) is redirected",
    frame: icmp4("198.18.2.254", VIP, 3, 4, quote(tcpTo(CLIENT, 40000, ACK, VIP, 80)), [0, 0, 0x05, 0xdc]),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP unreachable about a packet to a NAT real server is redirected",
    frame: icmp4(NAT_RS1, CLIENT, 3, 3, quote(tcpTo(NAT_RS1, 8080))),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP time exceeded about one of our IPIP packets is redirected",
    frame: icmp4("198.18.1.254", LOCAL4, 11, 0, quote(ipipToTunRs, 48)),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP unreachable about one of our GRE packets (no flags) is redirected",
    frame: icmp4("198.18.1.254", LOCAL4, 3, 4, quote(greToTunRs([0, 0, 0x08, 0x00]), 64)),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP unreachable about one of our GRE packets with a checksum (C flag) is redirected",
    frame: icmp4("198.18.1.254", LOCAL4, 3, 4, quote(greToTunRs([0x80, 0, 0x08, 0x00, 0x12, 0x34, 0, 0]), 64)),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP unreachable about a GRE packet with a key (not one xvs sends) passes",
    frame: icmp4("198.18.1.254", LOCAL4, 3, 4, quote(greToTunRs([0x20, 0, 0x08, 0x00, 0, 0, 0, 7]), 64)),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "ICMP unreachable about one of our GUE packets is redirected",
    frame: icmp4("198.18.1.254", LOCAL4, 3, 4, quote(gueToTunRs, 72)),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "ICMP unreachable about an IPIP packet from an address not ours passes",
    frame: icmp4("198.18.1.254", LOCAL4, 3, 4, quote(new PacketBuilder().eth().ipv4({ src: OTHER, dst: "198.18.1.40" }).raw(4, innerSyn).build(), 48)),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "ICMP unreachable about a client packet to a VIP passes (a DR real server's own error)",
    frame: icmp4(DR_RS, CLIENT, 3, 3, quote(tcpTo(VIP, 80))),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "ICMP unreachable about an unrelated packet passes",
    frame: icmp4("198.18.2.254", LOCAL4, 3, 3, quote(tcpTo(OTHER, 80, SYN, LOCAL4))),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "ICMP unreachable quoting 3 bytes of the quoted ports passes (bounds checked)",
    frame: icmp4("198.18.2.254", VIP, 3, 4, quote(tcpTo(CLIENT, 40000, ACK, VIP, 80), 23)),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "ICMPv6 packet too big about a packet from VIP6:80 is redirected",
    frame: icmp6("2001:db8:2::fe", VIP6, [
      2,
      0,
      0,
      0,
      0,
      0,
      0x05,
      0x00,
      ...new PacketBuilder()
        .eth()
        .ipv6({ src: VIP6, dst: CLIENT6 })
        .tcp({ sport: 80, dport: 40000, flags: ACK })
        .build()
        .slice(14, 14 + 48),
    ]),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  // truncated and malformed frames
  {
    name: "a frame shorter than an Ethernet header is refused by the kernel's test run (EINVAL)",
    frame: synToVip.slice(0, 13),
    ingress: "eth0",
    retval: { refused: /Invalid argument/ },
    stat: null,
  },
  {
    name: "an Ethernet header alone with type IPv4 passes as malformed",
    frame: synToVip.slice(0, 14),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_MALFORMED,
  },
  {
    name: "an IPv4 header cut short passes as malformed",
    frame: synToVip.slice(0, 14 + 19),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_MALFORMED,
  },
  { name: "IPv4 with IHL 4 passes as malformed", frame: patch(synToVip, { 14: 0x44 }), ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_MALFORMED },
  {
    name: "an IPv4 ethertype carrying version 6 passes as malformed",
    frame: patch(synToVip, { 14: 0x65 }),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_MALFORMED,
  },
  {
    name: "TCP to a VIP with the L4 header cut before the destination port passes",
    frame: synToVip.slice(0, 14 + 20 + 3),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "TCP to a VIP with only its ports (4 bytes of L4) is redirected: ports are all the program reads",
    frame: synToVip.slice(0, 14 + 20 + 4),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "an IPv6 header cut short passes as malformed",
    frame: synToVip6.slice(0, 14 + 39),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_MALFORMED,
  },
  // where the socket is
  {
    name: "a VIP SYN on a queue with no socket passes to the kernel",
    frame: synToVip,
    ingress: "eth0-queue1",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NO_SOCKET,
  },
  {
    name: "a VIP SYN on an interface xvs does not serve passes to the kernel",
    frame: synToVip,
    ingress: "eth1",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NO_SOCKET,
  },
];

/**
 * Then the configuration changes, applied with Dataplane.apply (SteerSet.sync writes and deletes
 * the difference): NAT_RS2 is deleted from TCP VIP:80 (to the trash), the UDP VIP:53 service and the
 * port-0 service are deleted (NAT_RS_ANY to the trash), UDP VIP:5353 is added.
 */
export function changeModel(m: Model): void {
  m.deleteDest({ protocol: "tcp", address: VIP, port: 80 }, NAT_RS2, 8080);
  m.deleteService({ protocol: "udp", address: VIP, port: 53 });
  m.deleteService({ protocol: "tcp", address: VIP_ALL_PORTS, port: 0 });
  const udp5353 = { protocol: "udp" as const, address: VIP, port: 5353 };
  m.addService({ ...udp5353, scheduler: "rr", onePacket: false, schedFlags: [] });
  m.addDest(udp5353, { address: DR_RS, port: 5353, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
}

/** Frames after changeModel(), all on eth0 queue 0. */
export const CASES_AFTER_CHANGE: SteerCase[] = [
  { name: "after the change: TCP SYN to VIP:80 is still redirected", frame: synToVip, ingress: "eth0", retval: XDP_REDIRECT, stat: S.XVS_XDP_REDIRECT },
  {
    name: "after the change: UDP to the added VIP:5353 is redirected",
    frame: udpTo(VIP, 5353),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  { name: "after the change: UDP to the deleted VIP:53 passes", frame: udpTo(VIP, 53), ingress: "eth0", retval: XDP_PASS, stat: S.XVS_XDP_PASS_NOT_OURS },
  {
    name: "after the change: TCP to the deleted port-0 service passes",
    frame: tcpTo(VIP_ALL_PORTS, 12345),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "after the change: a non-first fragment to the deleted port-0 service's address passes",
    frame: new PacketBuilder().eth().ipv4({ src: CLIENT, dst: VIP_ALL_PORTS, frag: 185 }).raw(6, [9, 9, 9, 9, 9, 9, 9, 9]).build(),
    ingress: "eth0",
    retval: XDP_PASS,
    stat: S.XVS_XDP_PASS_NOT_OURS,
  },
  {
    name: "after the change: the deleted (trashed) NAT real server's replies are still redirected: its connections live on",
    frame: tcpTo(CLIENT, 40001, ACK, NAT_RS2, 8080),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "after the change: the trashed port-0 real server's replies from any port are still redirected",
    frame: tcpTo(CLIENT, 40000, ACK, NAT_RS_ANY, 5555),
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
  {
    name: "after the change: a NAT real server still in service is still steered",
    frame: replyFromRs1,
    ingress: "eth0",
    retval: XDP_REDIRECT,
    stat: S.XVS_XDP_REDIRECT,
  },
];

/** One case's outcome as steer-runner.ts reports it. */
export interface SteerResult {
  name: string;
  retval?: number;
  error?: string;
  /** Counter deltas by XVS_XDP_* index (only those that moved). */
  moved: Record<number, number>;
  /** Did the frame come out of the program byte for byte as it went in? */
  unchanged: boolean;
}
