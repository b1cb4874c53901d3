/**
 * NAT on every queue (conn/peers.ts): two fast paths (two workers) that see each other's
 * connection tables. A request goes through one, its reply through the other: the reply finds
 * the connection, the TCP state moves on the owner's record, the owner recounts it and re-files
 * its timer, ICMP errors and later fragments follow it, a persistent client keeps its real
 * server, and a table the owner changes under a lookup never yields a wrong record.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { ACK, FIN, PacketBuilder, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS, realMac } from "../../util/harness.ts";
import { ConnPeers, installConnection } from "../../../src/conn/peers.ts";
import {
  CF_INACTIVE,
  CF_TEMPLATE,
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DEST,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
  HDR_HIGH,
  HDR_SEQ,
  TICKS_PER_SEC,
} from "../../../src/conn/table.ts";
import { S_ESTABLISHED, S_FIN_WAIT, S_SYN_RECV } from "../../../src/conn/state.ts";
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS, flowMeta, hashFlow } from "../../../src/wire/flow.ts";
import { parseIp } from "../../../src/service/addr.ts";
import { peersMessages, applyPeersMessage } from "../../../src/dataplane/peers.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS = "198.18.17.2";
const VIP6 = "2001:db8::100",
  CLIENT6 = "2001:db8:1::2",
  RS6 = "2001:db8:17::2";
const SPEC = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };

function req(sport: number, flags: number, src = CLIENT): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
}
function rep(cport: number, flags: number, dst = CLIENT): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[1], realMac(0)).ipv4({ src: RS, dst }).tcp({ sport: 8080, dport: cport, flags }).build();
}

/** Two workers with one model; `peered`: each looks up the other's table (as `xvs run` sets them up). */
function pair(setup: (h: Harness) => void, peered = true): [Harness, Harness] {
  const hs: [Harness, Harness] = [new Harness({ seed: 101 }), new Harness({ seed: 202 })];
  for (const h of hs) {
    setup(h);
    h.apply();
  }
  if (peered) {
    const msgs = peersMessages(hs.map((h) => h.conns.buffers));
    for (let i = 0; i < hs.length; i++) applyPeersMessage(hs[i].fp, msgs[i]);
  }
  return hs;
}

/** A NAT service VIP:80 -> RS:8080 (persistent: and a second real server, and a template per client). */
function nat(h: Harness, persistent = 0): void {
  h.model.addService({
    protocol: "tcp",
    address: VIP,
    port: 80,
    scheduler: "rr",
    onePacket: false,
    schedFlags: [],
    ...(persistent ? { persistence: { timeout: persistent } } : {}),
  });
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS, port: 8080, forward: "masq", ...SPEC });
  if (persistent) h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: "198.18.18.2", port: 8080, forward: "masq", ...SPEC });
}

/** Live records of `h`: [flags, state, dest]. */
function live(h: Harness): number[][] {
  const r = h.conns.rec,
    out: number[][] = [];
  for (let id = 0; id < h.conns.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS;
    if ((r[o + CONN_FLAGS] & CF_USED) !== 0) out.push([r[o + CONN_FLAGS], r[o + CONN_PROTO_STATE] & 0xff, r[o + CONN_DEST]]);
  }
  return out;
}

function srcOf(frame: Uint8Array): string {
  return Array.from(frame.subarray(26, 30)).join(".");
}

describe("a NAT reply on another worker", () => {
  let a: Harness, b: Harness;
  beforeEach(() => {
    [a, b] = pair((h) => nat(h));
  });

  test("without peers the reply is dropped (drop_no_conn): the failure this fixes", () => {
    const [x, y] = pair((h) => nat(h), false);
    expect(x.one(req(40000, SYN)).port).toBe(1);
    const before = y.stats();
    expect(y.one(rep(40000, SYN | ACK)).port).toBe(-1);
    expect(y.delta(before)).toEqual({ rx_packets: 1, rx_bytes: 54, drop_no_conn: 1 });
  });

  test("found in the other table, rewritten from the VIP, counted fwd_out and peer_conn on the worker that sent it", () => {
    expect(a.one(req(40000, SYN)).port).toBe(1);
    const before = b.stats();
    const out = b.one(rep(40000, SYN | ACK));
    expect(out.port).toBe(0);
    expect(srcOf(out.frame)).toBe(VIP);
    expect(new DataView(out.frame.buffer).getUint16(34)).toBe(80);
    const d = b.delta(before);
    expect(d.fwd_out).toBe(1);
    expect(d.peer_conn).toBe(1);
    expect(d.drop_no_conn).toBeUndefined();
    // no record was made on b; the one on a carries the state the reply moved it to
    expect(live(b)).toEqual([]);
    expect(live(a).length).toBe(1);
  });

  test("TCP state moves on the owner's record; the owner recounts it and re-files its timer", () => {
    a.one(req(40000, SYN));
    b.one(rep(40000, SYN | ACK));
    a.one(req(40000, ACK));
    expect(live(a)[0][1]).toBe(S_ESTABLISHED);
    a.fp.expire();
    expect(a.counters.active[0] + a.counters.active[1]).toBe(1);
    // the real server closes first: FIN from it, seen by b only
    b.one(rep(40000, FIN | ACK));
    const [flags, state] = live(a)[0];
    expect(state).toBe(S_FIN_WAIT);
    // flags and counts are the owner's to change: still active until a drains b's request
    expect(flags & CF_INACTIVE).toBe(0);
    a.fp.expire();
    expect(live(a)[0][0] & CF_INACTIVE).toBe(CF_INACTIVE);
    expect(a.counters.active[0] + a.counters.active[1]).toBe(0);
    expect(a.counters.inactive[0] + a.counters.inactive[1]).toBe(1);
    // FIN_WAIT's 120 s, not ESTABLISHED's 900: gone after 121 s, though filed at 900 s before
    const o = 0 * CONN_WORDS;
    expect(((a.conns.rec[o + CONN_EXPIRES] - a.fp.now) | 0) / TICKS_PER_SEC).toBe(120);
    a.advance(121_000);
    expect(live(a)).toEqual([]);
    expect(a.counters.inactive[0] + a.counters.inactive[1]).toBe(0);
  });

  test("an established connection's reply keeps it alive: the deadline moves on the owner's record", () => {
    a.one(req(40000, SYN));
    b.one(rep(40000, SYN | ACK));
    a.one(req(40000, ACK));
    a.advance(800_000);
    b.fp.now = a.fp.now; // one clock for all workers, as in the daemon
    b.one(rep(40000, ACK)); // the real server talks; the client is silent
    a.advance(800_000);
    expect(live(a).length).toBe(1);
    expect(live(a)[0][1]).toBe(S_ESTABLISHED);
  });

  test("a state race lost to the owner leaves the owner's state (compareExchange)", () => {
    a.one(req(40000, SYN));
    expect(live(a)[0][1]).toBe(S_SYN_RECV);
    b.one(rep(40000, SYN | ACK)); // output SYN in SYN_RECV: stays
    expect(live(a)[0][1]).toBe(S_SYN_RECV);
  });

  test("a client packet on the other worker (a connection installed there) is forwarded with the owner's record", () => {
    a.one(req(40000, SYN));
    const before = b.stats();
    const out = b.one(req(40000, ACK));
    expect(out.port).toBe(1);
    expect(b.delta(before).peer_conn).toBe(1);
    expect(b.delta(before).new_conns).toBeUndefined();
    expect(live(b)).toEqual([]);
  });

  test("a SYN that may reuse another worker's closed connection makes a new one here", () => {
    a.one(req(40000, SYN));
    a.one(req(40000, FIN | ACK));
    a.one(req(40000, ACK | 0x04)); // RST: CLOSE
    const before = b.stats();
    expect(b.one(req(40000, SYN)).port).toBe(1);
    expect(b.delta(before).new_conns).toBe(1);
    expect(live(b).length).toBe(1);
  });
});

describe("UDP and IPv6", () => {
  test("IPv6 UDP: request through one worker, reply through the other, from the VIP", () => {
    const [a, b] = pair((h) => {
      h.model.addService({ protocol: "udp", address: VIP6, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "udp", address: VIP6, port: 53 }, { address: RS6, port: 5353, forward: "masq", ...SPEC });
    });
    const q = new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv6({ src: CLIENT6, dst: VIP6 }).udp({ sport: 33000, dport: 53 }).payload("query").build();
    expect(a.one(q).port).toBe(1);
    const r = new PacketBuilder().eth(PORT_MACS[1], realMac(0)).ipv6({ src: RS6, dst: CLIENT6 }).udp({ sport: 5353, dport: 33000 }).payload("answer").build();
    const before = b.stats();
    const out = b.one(r);
    expect(out.port).toBe(0);
    const dv = new DataView(out.frame.buffer, out.frame.byteOffset);
    expect([0, 1, 2, 3].map((k) => dv.getInt32(22 + 4 * k))).toEqual(parseIp(VIP6)!.words.map((w) => w | 0));
    expect(b.delta(before).peer_conn).toBe(1);
  });
});

describe("persistence, ICMP errors, fragments", () => {
  test("a persistent client's next connection on the other worker goes to the same real server", () => {
    const [a, b] = pair((h) => nat(h, 300));
    for (let i = 0; i < 4; i++) {
      a.one(req(41000 + i, SYN));
      b.one(req(42000 + i, SYN));
    }
    const dests = [...live(a), ...live(b)].filter((x) => (x[0] & CF_TEMPLATE) === 0).map((x) => x[2]);
    expect(dests.length).toBe(8);
    expect(new Set(dests).size).toBe(1);
    // one template over both workers (the first's), naming that real server (persist-template.ts)
    expect(
      live(a)
        .filter((x) => (x[0] & CF_TEMPLATE) !== 0)
        .map((x) => x[2]),
    ).toEqual([dests[0]]);
    expect(live(b).filter((x) => (x[0] & CF_TEMPLATE) !== 0)).toEqual([]);
  });

  test("an ICMP port unreachable from the real server, on the other worker, reaches the client from the VIP", () => {
    const udpPair = pair((h) => {
      h.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { address: RS, port: 5353, forward: "masq", ...SPEC });
    });
    const [ua, ub] = udpPair;
    const q = new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 33001, dport: 53 }).payload("query").build();
    const fwd = ua.one(q);
    expect(fwd.port).toBe(1);
    // the real server's stack answers port unreachable quoting the packet it got (RS:5353)
    const quoted = fwd.frame.slice(14);
    const body = [3, 3, 0, 0, 0, 0, 0, 0, ...quoted];
    const err = new PacketBuilder().eth(PORT_MACS[1], realMac(0)).ipv4({ src: RS, dst: CLIENT }).raw(1, body).build();
    const dv = new DataView(err.buffer);
    let sum = 0;
    for (let i = 34; i < err.length; i += 2) sum += (err[i] << 8) | (err[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    dv.setUint16(36, ~sum & 0xffff);
    const before = ub.stats();
    const out = ub.one(err);
    expect(ub.delta(before).drop_icmp_no_conn).toBeUndefined();
    expect(out.port).toBe(0);
    expect(srcOf(out.frame)).toBe(VIP);
    expect(ub.delta(before).peer_conn).toBe(1);
    expect(ub.delta(before).icmp_forwarded).toBe(1);
  });

  test("a fragmented UDP reply on the other worker: both fragments follow the owner's connection", () => {
    const [a, b] = pair((h) => {
      h.model.addService({ protocol: "udp", address: VIP, port: 53, scheduler: "rr", onePacket: false, schedFlags: [] });
      h.model.addDest({ protocol: "udp", address: VIP, port: 53 }, { address: RS, port: 5353, forward: "masq", ...SPEC });
    });
    const q = new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 33002, dport: 53 }).payload("q").build();
    expect(a.one(q).port).toBe(1);
    // first fragment: UDP header + 16 bytes, MF; second: offset 24 bytes (3 units), last
    const udpHdr = [0x14, 0xe9, 0x80, 0xea, 0, 40, 0, 0];
    const first = new PacketBuilder()
      .eth(PORT_MACS[1], realMac(0))
      .ipv4({ src: RS, dst: CLIENT, id: 777, frag: 0x2000 } as never)
      .raw(17, [...udpHdr, ...new Array(16).fill(0x61)])
      .build();
    const second = new PacketBuilder()
      .eth(PORT_MACS[1], realMac(0))
      .ipv4({ src: RS, dst: CLIENT, id: 777, frag: 3 } as never)
      .raw(17, new Array(16).fill(0x62))
      .build();
    const before = b.stats();
    const [o1, o2] = b.run([first, second]);
    const d = b.delta(before);
    expect(d.drop_frag_orphan).toBeUndefined();
    expect(o1.port).toBe(0);
    expect(o2.port).toBe(0);
    expect(srcOf(o1.frame)).toBe(VIP);
    expect(srcOf(o2.frame)).toBe(VIP);
    expect(d.frag_forwarded).toBe(1);
    expect(d.peer_conn).toBe(1);
  });
});

describe("path MTU", () => {
  test("one worker learns a path MTU from an ICMP error; every worker tunnels with it", () => {
    const [a, b] = pair((h) => nat(h));
    expect(b.fp.pmtu.effective(0, 1500, 77, 0)).toBe(1500);
    a.fp.pmtu.learn(0, 1400, 1500, 77, 0, 0);
    expect(b.fp.pmtu.effective(0, 1500, 77, 0)).toBe(1400);
    // unpeered fast paths keep their own
    const [x, y] = pair((h) => nat(h), false);
    x.fp.pmtu.learn(0, 1400, 1500, 77, 0, 0);
    expect(y.fp.pmtu.effective(0, 1500, 77, 0)).toBe(1500);
  });
});

describe("the table under its readers", () => {
  test("installConnection into one worker's table: the other worker finds it", () => {
    const [a, b] = pair((h) => nat(h));
    a.one(req(40000, SYN));
    const words = a.conns.rec.slice(0, CONN_WORDS);
    words[CONN_CPORT_VPORT] = (40001 << 16) | 80;
    const id = installConnection(b.conns, b.counters, b.fp.tables, words, b.fp.now);
    expect(id).toBeGreaterThanOrEqual(0);
    const before = a.stats();
    expect(a.one(rep(40001, SYN | ACK)).port).toBe(0);
    expect(a.delta(before).peer_conn).toBe(1);
    expect(() => installConnection(a.fp.peers!.views[0], a.counters, a.fp.tables, words, 0)).toThrow();
  });

  test("the owner brackets index changes with its sequence word; a released record is not found", () => {
    const own = new ConnTable(64, 5),
      other = new ConnTable(64, 6);
    const peers = new ConnPeers(other, [own.buffers, other.buffers], 1);
    const id = own.alloc();
    const r = own.rec,
      o = id * CONN_WORDS;
    r[o + CONN_FLAGS] = CF_USED;
    r[o + CONN_PROTO_STATE] = 17 << 8;
    r[o + CONN_CADDR] = 0x0a000001;
    r[o + CONN_VADDR] = 0x0a000002;
    r[o + CONN_CPORT_VPORT] = (1000 << 16) | 53;
    own.shared = true;
    own.link(id, 0);
    expect(own.header[HDR_SEQ]).toBe(2);
    const f = new Int32Array(FLOW_WORDS);
    f[FLOW_META] = flowMeta(4, 17, 0);
    f[FLOW_SRC] = 0x0a000001;
    f[FLOW_DST] = 0x0a000002;
    f[FLOW_PORTS] = (1000 << 16) | 53;
    const h = hashFlow(other.seedConn, f, 0);
    expect(peers.find(h, other.seedConn, f, 0)).toBe(id << 1);
    own.header[HDR_SEQ] = 4;
    own.release(id);
    expect(own.header[HDR_SEQ]).toBe(6);
    expect(peers.find(h, other.seedConn, f, 0)).toBe(-1);
  });

  test("deletion under lookup: another thread churns the owner's table; a view never returns a wrong record", async () => {
    const own = new ConnTable(64, 9);
    const other = new ConnTable(16, 10);
    const peers = new ConnPeers(other, [own.buffers, other.buffers], 1);
    const keyOf = (k: number) => ((k + 1) << 16) | 53;
    const STABLE = 16;
    const w = new Worker(new URL("./churn-worker.ts", import.meta.url).href);
    const stop = new SharedArrayBuffer(4);
    let ready: () => void = () => {};
    const started = new Promise<void>((res) => {
      ready = res;
    });
    const done = new Promise<number>((res) => {
      w.onmessage = (ev) => (ev.data === -1 ? ready() : res(ev.data as number));
    });
    w.postMessage({ buffers: own.buffers, stop, stable: STABLE });
    await started;
    const f = new Int32Array(FLOW_WORDS);
    f[FLOW_META] = flowMeta(4, 17, 0);
    f[FLOW_SRC] = 0x0a000001;
    f[FLOW_DST] = 0x0a000002;
    let wrong = 0,
      missed = 0,
      found = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      for (let k = 0; k < STABLE; k++) {
        f[FLOW_PORTS] = keyOf(k);
        const r = peers.find(hashFlow(other.seedConn, f, 0), other.seedConn, f, 0);
        if (r < 0) {
          missed++;
          continue;
        }
        found++;
        if (own.rec[(r >> 1) * CONN_WORDS + CONN_CPORT_VPORT] !== keyOf(k)) wrong++;
      }
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    const rounds = await done;
    w.terminate();
    process.stdout.write(
      `  ${process.env.XVS_TEST_NO_SEQLOCK === "1" ? "unshared (no sequence word, LIFO reuse)" : "shared"}: ${missed} misses, ${wrong} stale of ${found + missed}\n`,
    );
    expect(rounds).toBeGreaterThan(10);
    expect(wrong).toBe(0);
    // a miss happens only when the owner changed the index SEQ_TRIES times in a row under a probe
    expect(missed).toBeLessThan((found + missed) / 100);
  }, 20_000);
});
