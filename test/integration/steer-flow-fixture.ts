/**
 * Golden frames of the flow cache (issue 17): services by every method XDP forwards (DR, TUN
 * IPIP/GUE/GRE with IPv4 and IPv6 outer headers, NAT both ways, IPv4 and IPv6), and per service
 * a table of frames named by what XDP must do with them once the connection is cached:
 *  - `ok:`  forwarded by XDP, byte for byte as the TS fast path (steer-flow-runner.ts compares);
 *  - `ts:`  a valid frame XDP leaves to TS (SYN/FIN/RST, no ACK, TTL 1, over the MTU, IPv4-in-IPv4
 *           without DF; a partial checksum is completed by XDP: `ok:partial-csum*`);
 *  - `bad:` a malformed frame matching a cached flow (truncated, bad IHL, options, fragment,
 *           wrong version, bad header checksum, bad lengths): never forwarded by XDP.
 * The first frame of each flow (`setup:`) is a SYN (TCP) or a first datagram: TS creates the
 * connection, which the runner then caches (so a UDP NAT `setup:reply` is already forwarded by XDP).
 */
import { fold, sumBytes } from "../../src/wire/checksum.ts";
import type { Harness } from "../util/harness.ts";
import { ACK, FIN, PacketBuilder, partialChecksum, PSH, RST, SYN } from "../util/packet.ts";

const dest = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const svc = { scheduler: "rr", onePacket: false, schedFlags: [] };

interface FlowSvc {
  name: string;
  proto: "tcp" | "udp";
  vip: string;
  vport: number;
  real: string;
  rport: number;
  forward: "masq" | "route" | "tunnel";
  tunnel?: { type: "ipip" | "gue" | "gre"; port?: number; csum?: "nocsum" | "csum" };
  client: string;
}

const C4 = "198.18.1.2",
  C6 = "2001:db8:1::2";
export const FLOW_SERVICES: FlowSvc[] = [
  { name: "dr4", proto: "tcp", vip: "198.18.0.110", vport: 80, real: "198.18.3.10", rport: 80, forward: "route", client: C4 },
  { name: "ipip4", proto: "tcp", vip: "198.18.0.111", vport: 80, real: "198.18.3.11", rport: 80, forward: "tunnel", tunnel: { type: "ipip" }, client: C4 },
  {
    name: "gue4",
    proto: "udp",
    vip: "198.18.0.112",
    vport: 53,
    real: "198.18.3.12",
    rport: 53,
    forward: "tunnel",
    tunnel: { type: "gue", port: 6080 },
    client: C4,
  },
  { name: "gre4", proto: "tcp", vip: "198.18.0.113", vport: 80, real: "198.18.3.13", rport: 80, forward: "tunnel", tunnel: { type: "gre" }, client: C4 },
  {
    name: "grecsum4",
    proto: "tcp",
    vip: "198.18.0.113",
    vport: 81,
    real: "198.18.3.14",
    rport: 81,
    forward: "tunnel",
    tunnel: { type: "gre", csum: "csum" },
    client: C4,
  },
  {
    name: "guecsum4",
    proto: "udp",
    vip: "198.18.0.112",
    vport: 54,
    real: "198.18.3.17",
    rport: 54,
    forward: "tunnel",
    tunnel: { type: "gue", port: 6080, csum: "csum" },
    client: C4,
  },
  {
    name: "guecsum6",
    proto: "tcp",
    vip: "2001:db8:100::111",
    vport: 81,
    real: "2001:db8:3::17",
    rport: 81,
    forward: "tunnel",
    tunnel: { type: "gue", port: 6080, csum: "csum" },
    client: C6,
  },
  {
    name: "grecsum6",
    proto: "udp",
    vip: "2001:db8:100::112",
    vport: 54,
    real: "2001:db8:3::18",
    rport: 54,
    forward: "tunnel",
    tunnel: { type: "gre", csum: "csum" },
    client: C6,
  },
  { name: "nat4", proto: "tcp", vip: "198.18.0.114", vport: 80, real: "198.18.3.15", rport: 8080, forward: "masq", client: C4 },
  { name: "natudp4", proto: "udp", vip: "198.18.0.114", vport: 53, real: "198.18.3.15", rport: 5353, forward: "masq", client: C4 },
  { name: "4in6", proto: "tcp", vip: "198.18.0.115", vport: 80, real: "2001:db8:3::16", rport: 80, forward: "tunnel", tunnel: { type: "ipip" }, client: C4 },
  { name: "dr6", proto: "tcp", vip: "2001:db8:100::110", vport: 80, real: "2001:db8:3::10", rport: 80, forward: "route", client: C6 },
  {
    name: "gue6",
    proto: "tcp",
    vip: "2001:db8:100::111",
    vport: 80,
    real: "2001:db8:3::11",
    rport: 80,
    forward: "tunnel",
    tunnel: { type: "gue", port: 6080 },
    client: C6,
  },
  {
    name: "gre6",
    proto: "udp",
    vip: "2001:db8:100::112",
    vport: 53,
    real: "2001:db8:3::12",
    rport: 53,
    forward: "tunnel",
    tunnel: { type: "gre" },
    client: C6,
  },
  { name: "nat6", proto: "tcp", vip: "2001:db8:100::114", vport: 80, real: "2001:db8:3::15", rport: 8080, forward: "masq", client: C6 },
  { name: "natudp6", proto: "udp", vip: "2001:db8:100::114", vport: 53, real: "2001:db8:3::15", rport: 5353, forward: "masq", client: C6 },
];

/** Add the services of FLOW_SERVICES to the harness's model (the caller applies). */
export function addFlowServices(h: Harness): void {
  for (const s of FLOW_SERVICES) {
    const key = { protocol: s.proto, address: s.vip, port: s.vport };
    if (!h.model.findService(key as never)) h.model.addService({ ...key, ...svc } as never);
    h.model.addDest(key as never, { ...dest, address: s.real, port: s.rport, forward: s.forward, ...(s.tunnel ? { tunnel: s.tunnel } : {}) } as never);
  }
}

export interface FlowFrame {
  name: string;
  frame: Uint8Array;
}

const v6 = (s: FlowSvc) => s.client.includes(":");

function pkt(
  s: FlowSvc,
  sport: number,
  o: { flags?: number; ttl?: number; tos?: number; df?: boolean; body?: number; reply?: boolean; noCsum?: boolean; frag?: number; options?: number[] },
) {
  const body = new Array(o.body ?? 20).fill(0).map((_, i) => (i * 7 + sport) & 0xff);
  const src = o.reply ? s.real : s.client,
    dst = o.reply ? s.client : s.vip;
  const sp = o.reply ? s.rport : sport,
    dp = o.reply ? sport : s.vport;
  const b = new PacketBuilder().eth();
  if (v6(s)) b.ipv6({ src, dst, hopLimit: o.ttl ?? 64, tc: o.tos ?? 0 });
  else b.ipv4({ src, dst, ttl: o.ttl ?? 64, tos: o.tos ?? 0, df: o.df ?? true, frag: o.frag, options: o.options });
  if (s.proto === "tcp") b.tcp({ sport: sp, dport: dp, flags: o.flags ?? ACK | PSH });
  else b.udp({ sport: sp, dport: dp, noChecksum: o.noCsum });
  return b.payload(body).build();
}

/**
 * A partial-checksum frame (even body, no padding) whose last payload word is chosen so that
 * the completed checksum is 0, which is written 0xFFFF (skb_checksum_help's CSUM_MANGLED_0).
 */
function partialToZero(frame: Uint8Array): Uint8Array {
  const f = partialChecksum(frame);
  const l4 = 14 + (f[14] >> 4 === 6 ? 40 : 20);
  const n = f.length;
  f[n - 2] = 0;
  f[n - 1] = 0;
  const w = 0xffff - fold(sumBytes(f, l4, n - l4, 0));
  f[n - 2] = w >> 8;
  f[n - 1] = w & 0xff;
  return f;
}

/** The frames of every service, in order (setup first). */
export function handMadeFrames(): FlowFrame[] {
  const out: FlowFrame[] = [];
  let sport = 41000;
  for (const s of FLOW_SERVICES) {
    const p = sport++;
    const add = (name: string, frame: Uint8Array) => out.push({ name: `${s.name}:${name}`, frame });
    const isTun = s.forward === "tunnel";
    const tcp = s.proto === "tcp";
    add("setup:first", pkt(s, p, { flags: SYN }));
    if (s.forward === "masq") add("setup:reply", pkt(s, p, { reply: true, flags: SYN | ACK }));
    const ok = (n: string, f: Uint8Array) => add(`ok:${n}`, f);
    ok("data", pkt(s, p, {}));
    ok("ttl2", pkt(s, p, { ttl: 2 }));
    ok("tos-ce", pkt(s, p, { tos: 0xb7 }));
    ok("tos-ect", pkt(s, p, { tos: 0x2a }));
    ok("small", pkt(s, p, { body: 0 }));
    ok("odd", pkt(s, p, { body: 33 }));
    ok("odd3", pkt(s, p, { body: 35 }));
    ok("big", pkt(s, p, { body: isTun ? 1300 : 1440 }));
    const padded = pkt(s, p, { body: 1 });
    ok("eth-padding", new Uint8Array([...padded, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    if (!v6(s)) {
      // IPv4-in-IPv4 without DF takes TS's IP id counter; every other method forwards it in XDP
      const noDf = pkt(s, p, { df: false });
      if (isTun && !s.real.includes(":")) add("ts:no-df", noDf);
      else ok("no-df", noDf);
    }
    if (!tcp && !v6(s)) ok("udp-no-csum", pkt(s, p, { noCsum: true }));
    add("ts:ttl1", pkt(s, p, { ttl: 1 }));
    // a sender on the director's host over a veth with default offloads: XDP completes the
    // checksum as partial-csum.ts does, then rewrites (TS's bytes)
    ok("partial-csum", partialChecksum(pkt(s, p, {})));
    ok("partial-csum-odd", partialChecksum(pkt(s, p, { body: 33 })));
    ok("partial-csum-small", partialChecksum(pkt(s, p, { body: 0 })));
    ok("partial-csum-zero", partialToZero(pkt(s, p, { body: 32 })));
    ok("partial-csum-big", partialChecksum(pkt(s, p, { body: isTun ? 1300 : 1440 })));
    ok("partial-csum-padding", new Uint8Array([...partialChecksum(pkt(s, p, { body: 1 })), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    add("ts:over-mtu", pkt(s, p, { body: 1500 - (v6(s) ? 40 : 20) - (tcp ? 20 : 8) + 1 }));
    // a partial checksum on a frame XDP leaves to TS for another reason: left untouched
    add("ts:partial-csum-over-mtu", partialChecksum(pkt(s, p, { body: 1500 - (v6(s) ? 40 : 20) - (tcp ? 20 : 8) + 1 })));
    add("ts:partial-csum-ttl1", partialChecksum(pkt(s, p, { ttl: 1 })));
    if (tcp) {
      add("ts:no-ack", pkt(s, p, { flags: PSH }));
      add("ts:syn", pkt(s, p, { flags: SYN }));
      add("ts:rst", pkt(s, p, { flags: RST | ACK }));
    }
    // malformed frames of the cached flow
    const good = pkt(s, p, {});
    add("bad:truncated", good.slice(0, good.length - 5));
    add("bad:truncated-l4", good.slice(0, 14 + (v6(s) ? 40 : 20) + 6));
    if (!v6(s)) {
      const ihl = new Uint8Array(good);
      ihl[14] = 0x44;
      add("bad:ihl4", ihl);
      const ver = new Uint8Array(good);
      ver[14] = 0x65;
      add("bad:version", ver);
      const csum = new Uint8Array(good);
      csum[14 + 10] ^= 0x55;
      add("bad:ip-csum", csum);
      const tot = new Uint8Array(good);
      new DataView(tot.buffer).setUint16(14 + 2, good.length);
      add("bad:tot-len", tot);
      add("bad:options", pkt(s, p, { options: [1, 1, 1, 0] }));
      add("bad:fragment", pkt(s, p, { frag: 0x2000 }));
    } else {
      const ver = new Uint8Array(good);
      ver[14] = 0x40 | (ver[14] & 0x0f);
      add("bad:version", ver);
      const plen = new Uint8Array(good);
      new DataView(plen.buffer).setUint16(14 + 4, good.length);
      add("bad:payload-len", plen);
    }
    if (tcp) {
      const doff = new Uint8Array(good);
      doff[14 + (v6(s) ? 40 : 20) + 12] = 0x40;
      add("bad:tcp-doff", doff);
    } else {
      const ulen = new Uint8Array(good);
      new DataView(ulen.buffer).setUint16(14 + (v6(s) ? 40 : 20) + 4, 2000);
      add("bad:udp-len", ulen);
    }
    if (s.forward === "masq") {
      // NAT replies of the cached connection
      add("ok:reply", pkt(s, p, { reply: true }));
      add("ok:reply-ttl2", pkt(s, p, { reply: true, ttl: 2 }));
      add("ok:reply-partial-csum", partialChecksum(pkt(s, p, { reply: true })));
      add("ts:reply-partial-csum-ttl1", partialChecksum(pkt(s, p, { reply: true, ttl: 1 })));
      add("ts:reply-ttl1", pkt(s, p, { reply: true, ttl: 1 }));
      const r = pkt(s, p, { reply: true });
      add("bad:reply-truncated", r.slice(0, r.length - 3));
      if (tcp) add("ts:reply-fin", pkt(s, p, { reply: true, flags: FIN | ACK }));
    }
    if (tcp) add("ts:fin", pkt(s, p, { flags: FIN | ACK }));
  }
  return out;
}

/** The frame of one named fixture case (`svc`, `case` as in handMadeFrames: "nat4", "ok:data"). */
export function flowFrame(svc: string, name: string): Uint8Array {
  const f = handMadeFrames().find((x) => x.name === `${svc}:${name}`);
  if (!f) throw new Error(`no fixture frame ${svc}:${name}`);
  return f.frame;
}
