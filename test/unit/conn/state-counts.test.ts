/**
 * TCP/UDP connection states, timeouts and the ActiveConn/InActConn counts through the fast path
 * (ipvs-behaviour.md §10 items 15, 16, 22, 33, 34, 35), plus the full-table rule.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { ACK, FIN, PacketBuilder, RST, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS, realMac } from "../../util/harness.ts";
import { CF_USED, CONN_DEST, CONN_EXPIRES, CONN_FLAGS, CONN_PROTO_STATE, CONN_WORDS, HDR_HIGH, TICKS_PER_SEC } from "../../../src/conn/table.ts";
import {
  S_CLOSE,
  S_CLOSE_WAIT,
  S_ESTABLISHED,
  S_FIN_WAIT,
  S_SYN_RECV,
  S_TIME_WAIT,
  TCP_STATE_NAMES,
  TCP_TIMEOUTS_SEC,
  UDP_TIMEOUT_SEC,
} from "../../../src/conn/state.ts";
import { DEFAULT_TIMEOUTS } from "../../../src/config/model.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS1 = "198.18.17.2",
  RS2 = "198.18.18.2";

function tcp(sport: number, flags: number, src = CLIENT): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
}
function reply(rsAddr: string, cport: number, flags: number, destId: number): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[1], realMac(destId)).ipv4({ src: rsAddr, dst: CLIENT }).tcp({ sport: 80, dport: cport, flags }).build();
}
function udp(sport: number): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).udp({ sport, dport: 53 }).payload("q").build();
}

/** The live connection records: [state name, seconds left, dest id]. */
function conns(h: Harness): [string, number, number][] {
  const r = h.conns.rec,
    out: [string, number, number][] = [];
  for (let id = 0; id < h.conns.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS;
    if ((r[o + CONN_FLAGS] & CF_USED) === 0) continue;
    const ps = r[o + CONN_PROTO_STATE];
    out.push([ps >>> 8 === 6 ? TCP_STATE_NAMES[ps & 0xff] : "UDP", Math.round(((r[o + CONN_EXPIRES] - h.fp.now) | 0) / TICKS_PER_SEC), r[o + CONN_DEST]]);
  }
  return out;
}

let h: Harness, d1: number, d2: number;
beforeEach(() => {
  h = new Harness();
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
  const k = { protocol: "tcp" as const, address: VIP, port: 80 };
  d1 = h.model.addDest(k, { address: RS1, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 }).id;
  d2 = h.model.addDest(k, { address: RS2, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 }).id;
  h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { address: RS1, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  h.apply();
});

describe("§10 connection states and counts", () => {
  test("35: NAT: SYN -> SYN_RECV (60 s), ACK -> ESTABLISHED (900 s), client FIN -> CLOSE_WAIT (60 s), RST -> CLOSE (10 s)", () => {
    h.one(tcp(40000, SYN));
    expect(conns(h)).toEqual([["SYN_RECV", 60, d2]]);
    h.one(tcp(40000, ACK));
    expect(conns(h)).toEqual([["ESTABLISHED", 900, d2]]);
    h.one(tcp(40000, FIN | ACK));
    expect(conns(h)).toEqual([["CLOSE_WAIT", 60, d2]]);
    h.one(tcp(40000, RST));
    expect(conns(h)).toEqual([["CLOSE", 10, d2]]);
    // and the real server's side: its FIN in CLOSE_WAIT is TIME_WAIT (120 s)
    h.one(tcp(40001, SYN));
    h.one(tcp(40001, ACK));
    h.one(tcp(40001, FIN | ACK));
    h.one(reply(RS1, 40001, FIN | ACK, d1));
    expect(conns(h).find((c) => c[2] === d1)).toEqual(["TIME_WAIT", 120, d1]);
  });

  test("33: a new TCP connection counts in ActiveConn after its SYN; a UDP one in InActConn for its whole life", () => {
    h.one(tcp(40000, SYN));
    expect([h.counters.active[d2], h.counters.inactive[d2]]).toEqual([1, 0]);
    h.one(tcp(40000, ACK));
    expect([h.counters.active[d2], h.counters.inactive[d2]]).toEqual([1, 0]);
    h.one(tcp(40000, FIN | ACK));
    expect([h.counters.active[d2], h.counters.inactive[d2]]).toEqual([0, 1]);
    const u = h.model.services[1].dests[0].id;
    h.one(udp(5000));
    h.one(udp(5000));
    expect([h.counters.active[u], h.counters.inactive[u]]).toEqual([0, 1]);
    expect(conns(h).find((c) => c[0] === "UDP")).toEqual(["UDP", UDP_TIMEOUT_SEC, u]);
    // the timers take them out of the counts
    h.advance((UDP_TIMEOUT_SEC + 2) * 1000);
    expect([h.counters.active[d2], h.counters.inactive[d2], h.counters.inactive[u]]).toEqual([0, 0, 0]);
    expect(h.conns.size).toBe(0);
  });

  test("34: a TCP packet without SYN (or with RST) and no connection is not scheduled; with sloppy_tcp a non-RST one is", () => {
    h.one(tcp(40000, ACK));
    h.one(tcp(40001, RST | SYN));
    h.one(tcp(40002, FIN));
    expect(h.conns.size).toBe(0);
    // the kernel passes these to its own stack, which answers with a RST (not to the RST): so does xvs
    expect(h.stats().drop_tcp_no_conn).toBe(3);
    expect(h.stats().tcp_reset_sent).toBe(2);
    h.model.setSettings({ sloppyTcp: true });
    h.apply();
    expect(h.one(tcp(40003, ACK)).port).toBe(1);
    expect(conns(h)).toEqual([["ESTABLISHED", 900, d2]]);
    h.one(tcp(40004, RST));
    expect(h.conns.size).toBe(1);
  });

  test("a packet with none of SYN/FIN/ACK/RST moves the connection to CLOSE (set_tcp_state's default)", () => {
    h.one(tcp(40000, SYN));
    h.one(tcp(40000, 0));
    expect(conns(h)).toEqual([["CLOSE", TCP_TIMEOUTS_SEC[S_CLOSE], d2]]);
  });

  test("22: with every weight 0 a SYN gets ICMP port unreachable, while an existing connection continues", () => {
    h.one(tcp(40000, SYN));
    h.model.editDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS1, forward: "masq", weight: 0, upperThreshold: 0, lowerThreshold: 0 });
    h.model.editDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS2, forward: "masq", weight: 0, upperThreshold: 0, lowerThreshold: 0 });
    h.apply();
    const icmp = h.one(tcp(40001, SYN));
    expect(icmp.port).toBe(0);
    expect(icmp.frame[23]).toBe(1); // ICMP
    expect([icmp.frame[34], icmp.frame[35]]).toEqual([3, 3]); // port unreachable
    expect(h.one(tcp(40000, ACK)).port).toBe(1);
    expect(h.stats().drop_no_dest).toBe(1);
  });

  test("15/16: timeouts default to 900 120 300; --set 0 60 0 changes only FIN_WAIT", () => {
    expect(DEFAULT_TIMEOUTS).toEqual({ tcp: 900, tcpfin: 120, udp: 300 });
    h.model.setTimeouts({ tcp: 0, tcpfin: 60, udp: 0 });
    h.apply();
    expect(h.model.timeouts).toEqual({ tcp: 900, tcpfin: 60, udp: 300 });
    h.one(tcp(40000, SYN));
    h.one(tcp(40000, ACK));
    expect(conns(h)[0][1]).toBe(900);
    // the real server closes first: ESTABLISHED -> FIN_WAIT, now 60 s
    h.one(reply(RS2, 40000, FIN | ACK, d2));
    expect(conns(h)).toEqual([["FIN_WAIT", 60, d2]]);
    h.model.setTimeouts({ tcp: 30, tcpfin: 0, udp: 7 });
    h.apply();
    h.one(tcp(40001, SYN));
    h.one(tcp(40001, ACK));
    h.one(udp(6000));
    const c = conns(h);
    expect(c.find((x) => x[0] === "ESTABLISHED")![1]).toBe(30);
    expect(c.find((x) => x[0] === "UDP")![1]).toBe(7);
  });

  test("conn_reuse_mode: a SYN on a TIME_WAIT connection expires it and schedules anew; with mode 0 it reuses it", () => {
    h.one(tcp(40000, SYN));
    h.one(tcp(40000, FIN | ACK));
    h.one(reply(RS2, 40000, FIN | ACK, d2));
    expect(conns(h)[0][0]).toBe(TCP_STATE_NAMES[S_TIME_WAIT]);
    h.one(tcp(40000, SYN));
    expect(conns(h)).toEqual([["SYN_RECV", 60, d1]]); // rr moved on
    h.model.setSettings({ connReuseMode: 0 });
    h.apply();
    h.one(tcp(40000, RST));
    expect(conns(h)[0][0]).toBe(TCP_STATE_NAMES[S_SYN_RECV]); // INPUT rst in SYN_RECV stays
    h.one(tcp(40000, ACK));
    h.one(tcp(40000, RST));
    expect(conns(h)[0][0]).toBe("CLOSE");
    h.one(tcp(40000, SYN));
    expect(conns(h)).toEqual([["SYN_RECV", 60, d1]]); // same connection, same dest
    expect(h.counters.active[d1] + h.counters.inactive[d1]).toBe(1);
  });

  test("states visited by a full close count ActiveConn only while SYN_RECV/ESTABLISHED", () => {
    const seen: [string, number, number][] = [];
    const steps: [Uint8Array, number][] = [
      [tcp(41000, SYN), 0],
      [reply(RS2, 41000, SYN | ACK, d2), 1],
      [tcp(41000, ACK), 0],
      [reply(RS2, 41000, FIN | ACK, d2), 1],
      [tcp(41000, ACK), 0],
      [tcp(41000, FIN | ACK), 0],
    ];
    for (const [f, port] of steps) {
      h.one(f, port);
      seen.push([conns(h)[0][0], h.counters.active[d2], h.counters.inactive[d2]]);
    }
    expect(seen).toEqual([
      ["SYN_RECV", 1, 0],
      ["SYN_RECV", 1, 0],
      ["ESTABLISHED", 1, 0],
      [TCP_STATE_NAMES[S_FIN_WAIT], 0, 1],
      [TCP_STATE_NAMES[S_FIN_WAIT], 0, 1],
      [TCP_STATE_NAMES[S_TIME_WAIT], 0, 1],
    ]);
    expect(TCP_STATE_NAMES[S_ESTABLISHED]).toBe("ESTABLISHED");
    expect(TCP_STATE_NAMES[S_CLOSE_WAIT]).toBe("CLOSE_WAIT");
  });
});

describe("a full connection table", () => {
  test("refuses new connections (counted), never a crash, and keeps every established one", () => {
    const small = new Harness(8);
    small.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    small.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS1, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
    small.apply();
    for (let i = 0; i < 8; i++) {
      expect(small.one(tcp(42000 + i, SYN)).port).toBe(1);
      small.one(tcp(42000 + i, ACK));
    }
    for (let i = 0; i < 100; i++) expect(small.one(tcp(43000 + i, SYN)).port).toBe(-1);
    expect(small.stats().drop_table_full).toBe(100);
    expect(small.conns.size).toBe(8);
    for (let i = 0; i < 8; i++) expect(small.one(tcp(42000 + i, ACK)).port).toBe(1);
    expect(small.counters.active[small.model.services[0].dests[0].id]).toBe(8);
  });
});
