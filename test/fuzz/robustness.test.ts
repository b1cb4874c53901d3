/**
 * Hostile-traffic behaviour in process (issue 7): IPv4 fragments following their first
 * fragment's connection, the fragment table's bounds and timeout, and the SYN flood defence
 * modes (what each keeps and what each costs), through the same harness as the golden tests.
 */
import { describe, expect, test } from "bun:test";
import { FragTable } from "../../src/conn/frag.ts";
import {
  SYN_DEFENCE_DROP_ENTRY,
  SYN_DEFENCE_DROP_PACKET,
  SYN_DEFENCE_NAMES,
  SYN_DEFENCE_OFF,
  SYN_DEFENCE_OLDEST,
  SynGuard,
} from "../../src/dataplane/synflood.ts";
import { checksum, pseudoSumV4 } from "../../src/wire/checksum.ts";
import { Harness, realMac } from "../util/harness.ts";
import { ACK, PacketBuilder, SYN, checksumsValid } from "../util/packet.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2";
const REALS = ["198.18.2.11", "198.18.2.12", "198.18.2.13"];

function lab(capacity = 4096): Harness {
  const h = new Harness(capacity);
  for (const [p, port] of [
    ["tcp", 80],
    ["udp", 9000],
  ] as const) {
    h.model.addService({ protocol: p, address: VIP, port, scheduler: "rr", onePacket: false, schedFlags: [] });
    for (const r of REALS)
      h.model.addDest({ protocol: p, address: VIP, port }, { address: r, port, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  }
  h.apply();
  return h;
}

/** Split an IPv4 frame (Ethernet + IP, no options) into fragments of `size` payload bytes (a multiple of 8). */
function fragments(frame: Uint8Array, size: number): Uint8Array[] {
  const ip = frame.subarray(14),
    payload = ip.subarray(20, (ip[2] << 8) | ip[3]);
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += size) {
    const part = payload.subarray(off, Math.min(off + size, payload.length));
    const f = new Uint8Array(34 + part.length);
    f.set(frame.subarray(0, 34));
    f.set(part, 34);
    const dv = new DataView(f.buffer);
    dv.setUint16(16, 20 + part.length);
    dv.setUint16(20, (off + size < payload.length ? 0x2000 : 0) | (off >> 3));
    dv.setUint16(24, 0);
    dv.setUint16(24, checksum(f, 14, 20));
    out.push(f);
  }
  return out;
}

/** Reassemble IPv4 fragments (any order) into the datagram's payload; check the UDP checksum over the result. */
function reassembledUdpValid(frags: Uint8Array[]): boolean {
  const parts = frags.map((f) => ({ off: (((f[20] << 8) | f[21]) & 0x1fff) << 3, data: f.subarray(34, 14 + ((f[16] << 8) | f[17])) }));
  const len = Math.max(...parts.map((p) => p.off + p.data.length));
  const whole = new Uint8Array(len);
  for (const p of parts) whole.set(p.data, p.off);
  const dv = new DataView(frags[0].buffer, frags[0].byteOffset);
  return checksum(whole, 0, len, pseudoSumV4(dv.getInt32(26), dv.getInt32(30), 17, len)) === 0;
}

const udp = (sport: number, size: number, src = CLIENT, dst = VIP, dport = 9000, id = 77) =>
  new PacketBuilder().eth().ipv4({ src, dst, id }).udp({ sport, dport }).payload("z".repeat(size)).build();

describe("IPv4 fragments follow their first fragment's connection", () => {
  test("a 1200-byte UDP datagram in 5 fragments: all reach the same real server, NATed, and reassemble with a valid checksum", () => {
    const h = lab();
    const frags = fragments(udp(5000, 1200), 256);
    expect(frags.length).toBe(5);
    const outs = h.run(frags);
    expect(outs.every((o) => o.port === 1)).toBe(true);
    const dsts = new Set(outs.map((o) => new DataView(o.frame.buffer).getInt32(30)));
    expect(dsts.size).toBe(1);
    for (const o of outs) expect(checksum(o.frame, 14, 20)).toBe(0);
    expect(reassembledUdpValid(outs.map((o) => o.frame))).toBe(true);
    expect(h.stats().frag_forwarded).toBe(4);
    expect(h.stats().fwd_in).toBe(5);
  });

  test("the real server's fragmented reply is SNATed back to VIP:port, every fragment, and reassembles valid", () => {
    const h = lab();
    const first = h.one(udp(5001, 10));
    const rs = new DataView(first.frame.buffer).getInt32(30);
    const rsText = `${rs >>> 24}.${(rs >>> 16) & 255}.${(rs >>> 8) & 255}.${rs & 255}`;
    const reply = new PacketBuilder().eth().ipv4({ src: rsText, dst: CLIENT, id: 900 }).udp({ sport: 9000, dport: 5001 }).payload("r".repeat(1000)).build();
    const outs = h.run(fragments(reply, 512), 1);
    expect(outs.map((o) => o.port)).toEqual([0, 0]);
    for (const o of outs) expect(new DataView(o.frame.buffer).getInt32(26)).toBe((198 << 24) | (18 << 16) | 100);
    expect(reassembledUdpValid(outs.map((o) => o.frame))).toBe(true);
    expect(h.stats().fwd_out).toBe(2);
  });

  test("a later fragment arriving before its first is an orphan (DropFragOrphan); one after 30 s too (the record expired)", () => {
    const h = lab();
    const frags = fragments(udp(5002, 600), 256);
    expect(h.one(frags[1]).port).toBe(-1);
    expect(h.stats().drop_frag_orphan).toBe(1);
    expect(h.one(frags[0]).port).toBe(1);
    expect(h.one(frags[1]).port).toBe(1);
    h.advance(31_000);
    expect(h.one(frags[2]).port).toBe(-1);
    expect(h.stats().drop_frag_orphan).toBe(2);
  });

  test("fragments of different datagrams (ids) and clients are kept apart", () => {
    const h = lab();
    const a = fragments(udp(6000, 600, CLIENT, VIP, 9000, 1), 256),
      b = fragments(udp(6001, 600, "198.18.1.3", VIP, 9000, 1), 256);
    const outs = h.run([a[0], b[0], a[1], b[1], a[2], b[2]]);
    const dst = (i: number) => new DataView(outs[i].frame.buffer).getInt32(30);
    expect(outs.every((o) => o.port === 1)).toBe(true);
    expect([dst(2), dst(4)]).toEqual([dst(0), dst(0)]);
    expect([dst(3), dst(5)]).toEqual([dst(1), dst(1)]);
  });

  test("hostile shapes: TCP overlap at offset 8, a datagram past 65535 bytes, fragmented ICMP: DropFragment", () => {
    const h = lab();
    const base = () => new PacketBuilder().eth();
    expect(h.one(base().ipv4({ src: CLIENT, dst: VIP, frag: 1 }).raw(6, new Array(16).fill(0)).build()).port).toBe(-1);
    expect(h.one(base().ipv4({ src: CLIENT, dst: VIP, frag: 8190 }).raw(17, new Array(64).fill(0)).build()).port).toBe(-1);
    expect(h.one(base().ipv4({ src: CLIENT, dst: VIP, frag: 0x2000 }).raw(1, [8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]).build()).port).toBe(-1);
    expect(h.stats().drop_fragment).toBe(3);
  });

  test("a full fragment table drops new first fragments (DropFragTableFull); known datagrams still pass", () => {
    const h = lab();
    const full = new FragTable(2, 1);
    Object.defineProperty(h.fp.frag, "table", { value: full });
    const d = [1, 2, 3].map((id) => fragments(udp(7000 + id, 600, CLIENT, VIP, 9000, id), 256));
    expect(h.one(d[0][0]).port).toBe(1);
    expect(h.one(d[1][0]).port).toBe(1);
    expect(h.one(d[2][0]).port).toBe(-1);
    expect(h.stats().drop_frag_table_full).toBe(1);
    expect(h.one(d[0][1]).port).toBe(1);
    expect(h.one(d[1][1]).port).toBe(1);
    h.advance(31_000);
    expect(h.one(d[2][0]).port).toBe(1); // expired records make room
  });

  test("FragTable: bounded, first record wins, expired ones are reclaimed from the ring head", () => {
    const t = new FragTable(4, 9, 1);
    for (let i = 0; i < 4; i++) expect(t.insert(i, 100, 1, 0, i << 1, 0, 0)).toBeGreaterThanOrEqual(0);
    expect(t.insert(9, 100, 1, 0, 0, 0, 0)).toBe(-1);
    expect(t.room(9, 100, 1, 50)).toBe(false);
    expect(t.room(2, 100, 1, 50)).toBe(true); // known datagram
    expect(t.conn[t.insert(0, 100, 1, 0, 99, 0, 50)]).toBe(0); // first one wins
    expect(t.find(3, 100, 1, 99)).toBeGreaterThanOrEqual(0);
    expect(t.find(3, 100, 1, 100)).toBe(-1); // 1 s = 100 ticks
    expect(t.room(9, 100, 1, 100)).toBe(true);
    expect(t.insert(9, 100, 1, 0, 7, 0, 100)).toBeGreaterThanOrEqual(0);
    expect(t.size).toBe(1);
  });
});

describe("SYN flood defence (dataplane/synflood.ts)", () => {
  /**
   * 200 established connections, then 50 000 spoofed SYNs into a 4096-record table, with a
   * legitimate handshake (SYN, then its ACK 20 SYNs later) every 100 flood SYNs.
   */
  function flood(mode: number) {
    const h = lab(4096);
    Object.defineProperty(h.fp, "synGuard", { value: new SynGuard(4096, mode) });
    const pkt = (src: string, sport: number, flags: number) => new PacketBuilder().eth().ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
    for (let i = 0; i < 200; i++) {
      h.one(pkt(CLIENT, 10000 + i, SYN));
      h.one(pkt(CLIENT, 10000 + i, ACK));
    }
    let legitOk = 0,
      legit = 0;
    const pending: number[] = [];
    for (let k = 0; k < 50000; k++) {
      const src = `198.19.${(k >> 8) & 255}.${k & 255}`;
      const burst = [pkt(src, 1024 + (k % 60000), SYN)];
      if (k % 100 === 0) {
        burst.push(pkt("198.18.1.3", 20000 + legit, SYN));
        pending.push(legit++);
      }
      if (k % 100 === 20 && pending.length) {
        const p = pending.shift()!;
        const out = h.run([...burst, pkt("198.18.1.3", 20000 + p, ACK)]);
        // the ACK found its connection (a SYN-less packet without one is DropTcpNoConn)
        if (out[out.length - 1].port === 1) legitOk++;
        continue;
      }
      h.run(burst);
      if (k % 1000 === 0) h.advance(10);
    }
    let established = 0;
    for (let i = 0; i < 200; i++) if (h.one(pkt(CLIENT, 10000 + i, ACK)).port === 1) established++;
    return { established, legit, legitOk, stats: h.stats(), size: h.conns.size };
  }

  for (const mode of [SYN_DEFENCE_OFF, SYN_DEFENCE_OLDEST, SYN_DEFENCE_DROP_ENTRY, SYN_DEFENCE_DROP_PACKET]) {
    test(`${SYN_DEFENCE_NAMES[mode]}: the 200 established connections all survive 50 000 spoofed SYNs; the table stays within its capacity`, () => {
      const r = flood(mode);
      expect(r.established).toBe(200);
      // the table's size is exact: nothing expires during the flood (SYN_RECV lives 60 s, the
      // flood 5 s), so off fills every record; oldest and drop_entry evict (up to 2 per SYN) down
      // to `reserve` free records and hold there; drop_packet drops 1 in reserve / (reserve -
      // free + 1) SYNs, which is every SYN once free <= reserve / 2
      const reserve = new SynGuard(4096, mode).reserve;
      expect(reserve).toBe(256);
      const size = mode === SYN_DEFENCE_OFF ? 4096 : mode === SYN_DEFENCE_DROP_PACKET ? 4096 - reserve / 2 : 4096 - reserve;
      expect(r.size).toBe(size);
      if (mode === SYN_DEFENCE_OLDEST) {
        // new legitimate connections keep working: every handshake completes
        expect(r.legitOk).toBe(r.legit);
        expect(r.stats.half_open_evicted).toBeGreaterThan(40000);
      } else if (mode === SYN_DEFENCE_OFF) {
        // IPVS default: once full, new connections are refused until the spoofed ones time out
        expect(r.legitOk).toBeLessThan(r.legit / 5);
        expect(r.stats.drop_table_full).toBeGreaterThan(40000);
      } else if (mode === SYN_DEFENCE_DROP_ENTRY) {
        expect(r.stats.half_open_evicted).toBeGreaterThan(1000);
        expect(r.legitOk).toBeGreaterThan(0);
      } else {
        expect(r.stats.drop_syn_flood).toBeGreaterThan(1000);
      }
      process.stdout.write(
        `  ${SYN_DEFENCE_NAMES[mode]}: legitimate handshakes ${r.legitOk}/${r.legit}, evicted ${r.stats.half_open_evicted}, table_full ${r.stats.drop_table_full}, syn_flood ${r.stats.drop_syn_flood}\n`,
      );
    }, 60_000);
  }

  test("only half-open connections are ever evicted, never established or closing ones", () => {
    const h = lab(128);
    Object.defineProperty(h.fp, "synGuard", { value: new SynGuard(128, SYN_DEFENCE_DROP_ENTRY) });
    const pkt = (src: string, sport: number, flags: number) => new PacketBuilder().eth().ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
    for (let i = 0; i < 128; i++) {
      h.one(pkt(CLIENT, 30000 + i, SYN));
      h.one(pkt(CLIENT, 30000 + i, ACK));
    }
    for (let k = 0; k < 1000; k++) expect(h.one(pkt(`198.19.0.${k & 255}`, 2000 + k, SYN)).port).toBe(-1);
    expect(h.stats().half_open_evicted).toBe(0);
    for (let i = 0; i < 128; i++) expect(h.one(pkt(CLIENT, 30000 + i, ACK)).port).toBe(1);
    expect(checksumsValid(h.one(pkt(CLIENT, 30000, ACK)).frame)).toBe(true);
    void realMac;
  });
});
