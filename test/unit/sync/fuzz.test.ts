// Property tests (fast-check) of the sync decoder against hostile bytes: random datagrams (some
// with a header that passes the size/version checks, so the record parser is reached) and mutated
// kernel datagrams from test/kernel/sync never make it throw; every record it accepts lies
// inside the datagram and re-encodes to exactly the bytes it came from; the accounting adds up.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { type SyncDecodeResult, decodeSyncMessage } from "../../../src/sync/decode.ts";
import { SyncRxCounters, endsMessage } from "../../../src/sync/drops.ts";
import { encodeRecord, encodeSyncMessages } from "../../../src/sync/encode.ts";
import type { SyncConn } from "../../../src/sync/format.ts";
import { canonicalIp } from "../../../src/service/addr.ts";
import { readSyncPcap } from "./pcap.ts";

const dir = join(import.meta.dir, "../../kernel/sync");
const kernel = ["v1.pcap", "v0.pcap", "maxlen300.pcap"].flatMap((f) => readSyncPcap(join(dir, f)).map((d) => d.payload));

/** The invariants every decode must hold; returns nothing, fails the property by throwing expect errors. */
function check(buf: Uint8Array, cfg = { syncid: 0, maxlen: 0 }): SyncDecodeResult {
  const copy = buf.slice();
  const counters = new SyncRxCounters();
  const r = decodeSyncMessage(buf, cfg, counters);
  // the input is not modified
  expect(buf).toEqual(copy);
  for (const rec of r.records) {
    expect(rec.offset).toBeGreaterThanOrEqual(r.version === 1 ? 8 : 4);
    expect(rec.offset + rec.length).toBeLessThanOrEqual(buf.length);
    const again = encodeRecord(rec.conn, rec.conn.version);
    expect(again).not.toBeNull();
    expect(again).toEqual(buf.slice(rec.offset, rec.offset + rec.length));
  }
  const recordDrops = r.drops.filter((d) => d.index >= 0);
  // every announced record is accepted, skipped, the one that ended the message, or unread
  if (r.version >= 0) expect(r.records.length + recordDrops.length + r.unread).toBe(r.nrConns);
  expect(recordDrops.filter((d) => endsMessage(d.reason)).length).toBeLessThanOrEqual(1);
  expect(counters.recordsAccepted).toBe(r.records.length);
  expect(counters.drops.reduce((a, b) => a + b, 0)).toBe(r.drops.length + (r.version < 0 ? 1 : 0));
  return r;
}

/** Random connections the kernel could send: valid protocol/state pairs, any ports, flags, addresses, options. */
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(":"));
const seq = fc.record({
  initSeq: u32,
  delta: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  previousDelta: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
});
const conn = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    proto: fc.constantFrom([6, 11], [17, 1], [132, 13], [50, 1], [51, 1]),
    template: fc.boolean(),
    flags: u32,
    stateSeed: fc.nat(),
    cport: fc.nat(0xffff),
    vport: fc.nat(0xffff),
    dport: fc.nat(0xffff),
    fwmark: u32,
    timeoutSec: u32,
    a: fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
    seq: fc.option(fc.tuple(seq, seq)),
    pe: fc.option(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 255 }), fc.string({ minLength: 1, maxLength: 16, unit: "grapheme-ascii" }))),
    v4: fc.array(ipv4, { minLength: 3, maxLength: 3 }),
    v6: fc.array(ipv6, { minLength: 3, maxLength: 3 }),
  })
  .map((r): SyncConn => {
    // the kernel sends SEQ data exactly when a SEQ flag is set: keep the two consistent
    let flags = r.template ? (r.flags | 0x1000) >>> 0 : (r.flags & ~0x1000) >>> 0;
    flags = r.seq ? (flags | 0x200) >>> 0 : (flags & ~0x600) >>> 0;
    const addrs = r.family === 4 ? r.v4 : r.v6;
    const c: SyncConn = {
      version: 1,
      family: r.family,
      protocol: r.proto[0],
      flags,
      state: r.stateSeed % (r.template ? 2 : r.proto[1]),
      cport: r.cport,
      vport: r.vport,
      dport: r.dport,
      fwmark: r.fwmark,
      timeoutSec: r.timeoutSec,
      caddr: addrs[0],
      vaddr: addrs[1],
      daddr: addrs[2],
    };
    if (r.seq) [c.inSeq, c.outSeq] = r.seq;
    if (r.pe) [c.peData, c.peName] = r.pe;
    return c;
  });

describe("sync encoder under fuzz", () => {
  test("random connections, v1: encode -> decode gives them back, messages within sync_maxlen", () => {
    fc.assert(
      fc.property(fc.array(conn, { minLength: 1, maxLength: 30 }), fc.integer({ min: 100, max: 1472 }), (cs, maxlen) => {
        const msgs = encodeSyncMessages(cs, { syncid: 9, maxlen, version: 1 });
        const back: SyncConn[] = [];
        for (const m of msgs) {
          // a message exceeds sync_maxlen only when it holds one record that alone is larger
          if (m.length > maxlen) expect(m[4]).toBe(1);
          const r = decodeSyncMessage(m, { syncid: 9, maxlen: 0 });
          expect(r.drops).toEqual([]);
          for (const x of r.records) {
            const { options: _o, ...c } = x.conn;
            back.push(c);
          }
        }
        // addresses come back in canonical text (RFC 5952 for IPv6)
        const canon = (c: SyncConn): SyncConn => ({
          ...c,
          caddr: canonicalIp(c.caddr) ?? "?",
          vaddr: canonicalIp(c.vaddr) ?? "?",
          daddr: canonicalIp(c.daddr) ?? "?",
        });
        expect(back).toEqual(cs.map(canon));
      }),
      { numRuns: 300 },
    );
  });

  test("random IPv4 connections, v0: encode -> decode keeps what v0 carries", () => {
    fc.assert(
      fc.property(
        fc.array(
          conn.filter((c) => c.family === 4),
          { minLength: 1, maxLength: 80 },
        ),
        (cs) => {
          const msgs = encodeSyncMessages(cs, { syncid: 9, maxlen: 1472, version: 0 });
          const back = msgs.flatMap((m) => decodeSyncMessage(m, { syncid: 9, maxlen: 0 }).records.map((r) => r.conn));
          expect(back.map((c) => [c.caddr, c.cport, c.vaddr, c.vport, c.daddr, c.dport, c.flags, c.state, c.protocol])).toEqual(
            cs.map((c) => [c.caddr, c.cport, c.vaddr, c.vport, c.daddr, c.dport, c.flags & 0xffff, c.state, c.protocol]),
          );
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("sync decoder under fuzz", () => {
  test("the kernel's datagrams decode whole and re-encode byte for byte", () => {
    expect(kernel.length).toBeGreaterThan(10);
    for (const m of kernel) {
      const r = check(m, { syncid: 7, maxlen: 1472 });
      expect(r.drops).toEqual([]);
      expect(r.records.length).toBe(r.nrConns);
    }
  });

  test("random bytes never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600, size: "max" }), (b) => {
        check(b);
      }),
      { numRuns: 3000 },
    );
  });

  test("random records behind a valid header (v1 or v0) never throw and are accepted only whole", () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 600, size: "max" }), fc.boolean(), fc.integer({ min: 1, max: 40 }), (b, v1, n) => {
        const dv = new DataView(b.buffer, b.byteOffset, b.length);
        dv.setUint16(2, b.length);
        if (v1) {
          b[0] = 0;
          b[4] = n;
          b[5] = 1;
          dv.setUint16(6, 0);
          // a plausible first record: IPv4, UDP, state 0, and often exactly its fixed size
          if (b.length >= 8 + 36) {
            b[8] = 0;
            b[9] = 17;
            dv.setUint16(16, 0);
            dv.setUint16(10, n % 2 === 0 ? 36 : (dv.getUint16(10) % (b.length - 8 + 1)) & 0x0fff);
          }
        } else {
          b[0] = n;
          // a plausible first record: reserved 0, TCP, state below 11
          if (b.length >= 4 + 24) {
            b[4] = 0;
            b[5] = 6;
            dv.setUint16(26, dv.getUint16(26) % 11);
          }
        }
        accepted += check(b).records.length;
      }),
      { numRuns: 3000 },
    );
    // the generator reaches the record parser and some random records pass it
    expect(accepted).toBeGreaterThan(0);
  });

  test("mutated kernel datagrams (byte flips, cuts, growth, size fixed or not) never throw", () => {
    const mutation = fc.record({
      which: fc.nat({ max: kernel.length - 1 }),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.nat({ max: 64 }),
      grow: fc.uint8Array({ maxLength: 40 }),
      fixSize: fc.boolean(),
    });
    let taken = 0;
    fc.assert(
      fc.property(mutation, (m) => {
        const src = kernel[m.which];
        let b = new Uint8Array(Math.max(0, src.length - m.cut) + m.grow.length);
        b.set(src.subarray(0, Math.max(0, src.length - m.cut)));
        b.set(m.grow, b.length - m.grow.length);
        for (const [at, v] of m.flips) if (b.length > 0) b[at % b.length] = v;
        if (m.fixSize && b.length >= 4) new DataView(b.buffer).setUint16(2, b.length & 0xffff);
        b = b.slice();
        taken += check(b).records.length;
      }),
      { numRuns: 4000 },
    );
    expect(taken).toBeGreaterThan(0);
  });
});
