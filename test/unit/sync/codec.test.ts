// The sync codec over synthetic records: encode -> decode round trips for v1 and v0, how the
// builder packs messages (sync_maxlen, padding, version switches, the u8 record count), and one
// hostile datagram per drop reason, each dropped with exactly that reason and counted.
import { describe, expect, test } from "bun:test";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { SYNC_DROP_NAMES, SyncDrop, SyncRxCounters } from "../../../src/sync/drops.ts";
import { SyncMessageBuilder, encodeRecordV0, encodeRecordV1, encodeSyncMessages } from "../../../src/sync/encode.ts";
import { CONN_F_DROUTE, CONN_F_INACTIVE, CONN_F_OUT_SEQ, CONN_F_TEMPLATE, IPVS_OPT_F_PARAM, type SyncConn, syncMaxlen } from "../../../src/sync/format.ts";

const tcp4: SyncConn = {
  version: 1,
  family: 4,
  protocol: 6,
  flags: 0,
  state: 1,
  cport: 40001,
  vport: 80,
  dport: 8080,
  fwmark: 0,
  timeoutSec: 900,
  caddr: "198.18.1.2",
  vaddr: "198.18.0.100",
  daddr: "198.18.2.11",
};
const tcp6: SyncConn = {
  ...tcp4,
  family: 6,
  flags: CONN_F_DROUTE,
  caddr: "2001:db8:1::2",
  vaddr: "2001:db8:100::101",
  daddr: "2001:db8:2::11",
};
const ftp4: SyncConn = {
  ...tcp4,
  vport: 21,
  dport: 21,
  flags: CONN_F_OUT_SEQ,
  state: 4,
  timeoutSec: 120,
  inSeq: { initSeq: 0, delta: 0, previousDelta: 0 },
  outSeq: { initSeq: 0xdeadbeef, delta: 1, previousDelta: 0 },
};
const sipTpl: SyncConn = {
  ...tcp4,
  protocol: 17,
  flags: CONN_F_TEMPLATE,
  state: 0,
  cport: 0,
  vport: 5060,
  dport: 5060,
  timeoutSec: 60,
  peData: new TextEncoder().encode("xvs-call-1"),
  peName: "sip",
};
const rx = { syncid: 0, maxlen: 0 };

/** Decode and return the accepted connections (options field dropped for comparison). */
function conns(msg: Uint8Array): SyncConn[] {
  return decodeSyncMessage(msg, rx).records.map((r) => {
    const { options: _o, ...c } = r.conn;
    return c;
  });
}

describe("sync v1 encode -> decode", () => {
  test("IPv4, IPv6, sequence data and PE data come back field for field", () => {
    const msgs = encodeSyncMessages([tcp4, tcp6, ftp4, sipTpl], { syncid: 7, maxlen: 1472, version: 1 });
    expect(msgs.length).toBe(1);
    expect(conns(msgs[0])).toEqual([tcp4, tcp6, ftp4, sipTpl]);
  });

  test("header: reserved 0, syncid, size, nr_conns, version 1, spare 0", () => {
    const [m] = encodeSyncMessages([tcp4, tcp6], { syncid: 7, maxlen: 1472, version: 1 });
    expect([...m.subarray(0, 8)]).toEqual([0, 7, 0, 36 + 72 + 8, 2, 1, 0, 0]);
  });

  test("a record whose size is not a multiple of 4 is followed by zero padding, the last one is not", () => {
    // PE data "xvs-call-1" (10) + name "sip" (3): 36 + 12 + 5 = 53 bytes
    const [m] = encodeSyncMessages([sipTpl, tcp4, sipTpl], { syncid: 1, maxlen: 1472, version: 1 });
    const v = new DataView(m.buffer);
    expect(v.getUint16(8 + 2)).toBe(53);
    expect([...m.subarray(8 + 53, 8 + 56)]).toEqual([0, 0, 0]);
    expect(m.length).toBe(8 + 56 + 36 + 53);
    const d = decodeSyncMessage(m, rx);
    expect(d.records.map((r) => r.offset)).toEqual([8, 64, 100]);
    expect(d.trailingBytes).toBe(0);
  });

  test("each decoded record re-encodes to its own bytes", () => {
    const [m] = encodeSyncMessages([tcp4, tcp6, ftp4, sipTpl], { syncid: 7, maxlen: 1472, version: 1 });
    for (const r of decodeSyncMessage(m, rx).records) {
      expect(encodeRecordV1(r.conn)).toEqual(m.slice(r.offset, r.offset + r.length));
    }
  });
});

describe("sync v0 encode -> decode", () => {
  test("IPv4 records with and without sequence data; flags are 16 bits, no timeout or fwmark", () => {
    const v0 = (c: SyncConn): SyncConn => ({ ...c, version: 0, timeoutSec: 0, fwmark: 0 });
    const msgs = encodeSyncMessages([v0(tcp4), v0(ftp4)], { syncid: 3, maxlen: 1472, version: 0 });
    expect(msgs.length).toBe(1);
    expect([...msgs[0].subarray(0, 4)]).toEqual([2, 3, 0, 4 + 24 + 48]);
    expect(conns(msgs[0])).toEqual([v0(tcp4), v0(ftp4)]);
  });

  test("IPv6 has no v0 form: the builder counts it and sends nothing", () => {
    const b = new SyncMessageBuilder(0, 1472);
    expect(b.add(tcp6, 0)).toEqual([]);
    expect(b.take()).toBeNull();
    expect(b.unencodable).toBe(1);
    expect(encodeRecordV0(tcp6)).toBeNull();
  });
});

describe("message packing (ip_vs_sync_conn)", () => {
  test("a message never exceeds sync_maxlen: 1472 holds 40 IPv4 records, the 41st opens a new one", () => {
    const many = Array.from({ length: 41 }, (_, i) => ({ ...tcp4, cport: 10000 + i }));
    const msgs = encodeSyncMessages(many, { syncid: 0, maxlen: syncMaxlen("master", 0, 1500, 4), version: 1 });
    expect(msgs.map((m) => m.length)).toEqual([8 + 40 * 36, 8 + 36]);
    expect(msgs.map((m) => m[4])).toEqual([40, 1]);
    expect(msgs.flatMap((m) => conns(m)).map((c) => c.cport)).toEqual(many.map((c) => c.cport));
  });

  test("v0 fits 61 plain records in 1472 bytes", () => {
    const many = Array.from({ length: 62 }, (_, i) => ({ ...tcp4, version: 0 as const, cport: 10000 + i }));
    const msgs = encodeSyncMessages(many, { syncid: 0, maxlen: 1472, version: 0 });
    expect(msgs.map((m) => m[0])).toEqual([61, 1]);
  });

  test("a record larger than sync_maxlen gets a message of its own", () => {
    const msgs = encodeSyncMessages([tcp4, tcp6, tcp4], { syncid: 0, maxlen: 50, version: 1 });
    expect(msgs.map((m) => m.length)).toEqual([44, 80, 44]);
  });

  test("switching version closes the message (v1 then v0 then v1)", () => {
    const b = new SyncMessageBuilder(5, 1472);
    expect(b.add(tcp4, 1)).toEqual([]);
    const closed1 = b.add(tcp4, 0);
    expect(closed1.length).toBe(1);
    expect(closed1[0][5]).toBe(1);
    const closed2 = b.add(tcp4, 1);
    expect(closed2.length).toBe(1);
    expect([...closed2[0].subarray(0, 4)]).toEqual([1, 5, 0, 28]);
  });

  test("never more than 255 records in one message (nr_conns is a u8)", () => {
    const many = Array.from({ length: 300 }, (_, i) => ({ ...tcp4, cport: 1000 + i }));
    const msgs = encodeSyncMessages(many, { syncid: 0, maxlen: 65000, version: 1 });
    expect(msgs.map((m) => m[4])).toEqual([255, 45]);
  });

  test("firstUseMs is the time of the message's first record", () => {
    const b = new SyncMessageBuilder(0, 1472);
    expect(b.firstUseMs).toBe(-1);
    b.add(tcp4, 1, 1000);
    b.add(tcp4, 1, 1500);
    expect(b.firstUseMs).toBe(1000);
    b.take();
    expect(b.firstUseMs).toBe(-1);
  });

  test("sync_maxlen defaults: master 1472 over IPv4 whatever the MTU, backup from the MTU", () => {
    expect(syncMaxlen("master", 0, 9000, 4)).toBe(1472);
    expect(syncMaxlen("master", 0, 9000, 6)).toBe(1452);
    expect(syncMaxlen("backup", 0, 9000, 4)).toBe(8972);
    expect(syncMaxlen("backup", 0, 1280, 4)).toBe(1472);
    expect(syncMaxlen("backup", 100, 1500, 4)).toBe(1024);
    expect(syncMaxlen("master", 100, 1500, 4)).toBe(100);
    expect(syncMaxlen("master", 70000, 1500, 4)).toBe(65507);
  });
});

// ---- hostile input: one datagram per reason ----

/** A valid v1 message with the given records, as bytes to damage. */
function v1(...cs: SyncConn[]): Uint8Array {
  return encodeSyncMessages(cs, { syncid: 7, maxlen: 65000, version: 1 })[0];
}
/** Set the header's size to the buffer's length. */
function fixSize(m: Uint8Array): Uint8Array {
  new DataView(m.buffer, m.byteOffset).setUint16(2, m.length);
  return m;
}
/** Append raw option bytes to the first record of a one-record v1 message. */
function withOption(c: SyncConn, ...opt: number[]): Uint8Array {
  const m = v1(c);
  const out = new Uint8Array(m.length + opt.length);
  out.set(m);
  out.set(opt, m.length);
  const dv = new DataView(out.buffer);
  dv.setUint16(8 + 2, dv.getUint16(8 + 2) + opt.length);
  return fixSize(out);
}

interface Case {
  name: string;
  msg: Uint8Array;
  reason: SyncDrop;
  accepted: number;
  cfg?: { syncid: number; maxlen: number };
}

const cases: Case[] = [
  { name: "3 bytes", msg: new Uint8Array([0, 7, 0]), reason: SyncDrop.MSG_TOO_SHORT, accepted: 0 },
  { name: "longer than the receive buffer", msg: v1(tcp4, tcp4), reason: SyncDrop.MSG_OVERSIZED, accepted: 0, cfg: { syncid: 0, maxlen: 60 } },
  { name: "size field says more than arrived (truncated)", msg: v1(tcp4, tcp4).slice(0, 50), reason: SyncDrop.MSG_SIZE_MISMATCH, accepted: 0 },
  {
    name: "size field says less than arrived",
    msg: (() => {
      const m = v1(tcp4);
      m[3] -= 4;
      return m;
    })(),
    reason: SyncDrop.MSG_SIZE_MISMATCH,
    accepted: 0,
  },
  { name: "another syncid", msg: v1(tcp4), reason: SyncDrop.MSG_OTHER_SYNCID, accepted: 0, cfg: { syncid: 8, maxlen: 0 } },
  {
    name: "version 2",
    msg: (() => {
      const m = v1(tcp4);
      m[5] = 2;
      return m;
    })(),
    reason: SyncDrop.MSG_UNKNOWN_VERSION,
    accepted: 0,
  },
  {
    name: "spare not zero",
    msg: (() => {
      const m = v1(tcp4);
      m[7] = 1;
      return m;
    })(),
    reason: SyncDrop.MSG_UNKNOWN_VERSION,
    accepted: 0,
  },
  {
    name: "nr_conns 3 with 2 records",
    msg: (() => {
      const m = v1(tcp4, tcp4);
      m[4] = 3;
      return m;
    })(),
    reason: SyncDrop.FRAME_TRUNCATED,
    accepted: 2,
  },
  {
    name: "record size past the end",
    msg: (() => {
      const m = v1(tcp4, tcp4);
      m[8 + 36 + 3] = 40;
      return m;
    })(),
    reason: SyncDrop.FRAME_OVERRUN,
    accepted: 1,
  },
  {
    name: "record version nibble 1",
    msg: (() => {
      const m = v1(tcp4);
      m[8 + 2] |= 0x10;
      return m;
    })(),
    reason: SyncDrop.FRAME_RECORD_VERSION,
    accepted: 0,
  },
  {
    name: "record type 2",
    msg: (() => {
      const m = v1(tcp4, tcp4);
      m[8 + 36] = 2;
      return m;
    })(),
    reason: SyncDrop.FRAME_BAD_TYPE,
    accepted: 1,
  },
  {
    name: "zero-length record",
    msg: (() => {
      const m = v1(tcp4);
      m[8 + 3] = 0;
      return m;
    })(),
    reason: SyncDrop.FRAME_RECORD_SHORT,
    accepted: 0,
  },
  {
    name: "IPv6 type on an IPv4-sized record",
    msg: (() => {
      const m = v1(tcp4);
      m[8] = 1;
      return m;
    })(),
    reason: SyncDrop.FRAME_RECORD_SHORT,
    accepted: 0,
  },
  { name: "one byte of option header", msg: withOption(tcp4, 1), reason: SyncDrop.FRAME_OPTION_TRUNCATED, accepted: 0 },
  { name: "option of length 0", msg: withOption(tcp4, 2, 0, 0, 0), reason: SyncDrop.FRAME_OPTION_LENGTH, accepted: 0 },
  { name: "option length past the record", msg: withOption(tcp4, 2, 9, 1, 2), reason: SyncDrop.FRAME_OPTION_LENGTH, accepted: 0 },
  { name: "sequence option of 4 bytes", msg: withOption(tcp4, 1, 4, 0, 0, 0, 0), reason: SyncDrop.FRAME_SEQ_OPTION, accepted: 0 },
  { name: "PE data twice", msg: withOption(tcp4, 2, 1, 65, 2, 1, 66), reason: SyncDrop.FRAME_PE_DATA, accepted: 0 },
  { name: "PE name of 17 bytes", msg: withOption(tcp4, 3, 17, ...new Array(17).fill(97)), reason: SyncDrop.FRAME_PE_NAME, accepted: 0 },
  {
    name: "unknown mandatory option 5 (the next record is still read)",
    msg: (() => {
      const a = withOption(tcp4, 5, 2, 0, 0);
      const b = v1(tcp6);
      const m = new Uint8Array(a.length + b.length - 8);
      m.set(a);
      m.set(b.subarray(8), a.length);
      m[4] = 2;
      return fixSize(m);
    })(),
    reason: SyncDrop.REC_UNKNOWN_OPTION,
    accepted: 1,
  },
  { name: "protocol 99", msg: v1({ ...tcp4, protocol: 99 }, tcp4), reason: SyncDrop.REC_PROTOCOL, accepted: 1 },
  { name: "TCP state 11", msg: v1({ ...tcp4, state: 11 }, tcp4), reason: SyncDrop.REC_STATE, accepted: 1 },
  { name: "UDP state 1", msg: v1({ ...tcp4, protocol: 17, state: 1 }), reason: SyncDrop.REC_STATE, accepted: 0 },
  { name: "template state 2", msg: v1({ ...sipTpl, state: 2 }), reason: SyncDrop.REC_TEMPLATE_STATE, accepted: 0 },
  { name: "PE data without a name", msg: withOption(tcp4, 2, 1, 65), reason: SyncDrop.REC_PE_WITHOUT_NAME, accepted: 0 },
  {
    name: "v0 record with reserved byte set",
    msg: (() => {
      const m = encodeSyncMessages([tcp4], { syncid: 7, maxlen: 1472, version: 0 })[0];
      m[4] = 1;
      return m;
    })(),
    reason: SyncDrop.REC_V0_RESERVED,
    accepted: 0,
  },
  {
    name: "v0 nr_conns 2 with 1 record",
    msg: (() => {
      const m = encodeSyncMessages([tcp4], { syncid: 7, maxlen: 1472, version: 0 })[0];
      m[0] = 2;
      return m;
    })(),
    reason: SyncDrop.FRAME_TRUNCATED,
    accepted: 1,
  },
  {
    name: "v0 record with SEQ flags but no sequence data",
    msg: (() => {
      const m = encodeSyncMessages([tcp4, tcp4], { syncid: 7, maxlen: 1472, version: 0 })[0];
      m[4 + 24 + 20] = 0x02;
      return m;
    })(),
    reason: SyncDrop.FRAME_TRUNCATED,
    accepted: 1,
  },
  {
    name: "bytes after the announced records",
    msg: (() => {
      const m = v1(tcp4, tcp4);
      m[4] = 1;
      return m;
    })(),
    reason: SyncDrop.MSG_TRAILING_BYTES,
    accepted: 1,
  },
];

describe("hostile sync datagrams", () => {
  for (const c of cases) {
    test(`${c.name}: ${SYNC_DROP_NAMES[c.reason]}, ${c.accepted} record(s) taken`, () => {
      const counters = new SyncRxCounters();
      const r = decodeSyncMessage(c.msg, c.cfg ?? { syncid: 7, maxlen: 0 }, counters);
      expect(r.records.length).toBe(c.accepted);
      const reasons = r.messageDrop !== null && r.drops.length === 0 ? [r.messageDrop] : r.drops.map((d) => d.reason);
      expect(reasons).toEqual([c.reason]);
      expect(counters.drops[c.reason]).toBe(1);
      expect(counters.dropTable()).toEqual({ [SYNC_DROP_NAMES[c.reason]]: 1 });
      expect(counters.recordsAccepted).toBe(c.accepted);
    });
  }

  test("every drop reason has a case here", () => {
    // REC_NO_SERVICE below; REC_NO_DEST and REC_UNKNOWN_PE are counted by the daemon after decoding
    // (test/unit/sync/feed.test.ts packInstall, test/unit/sync/pe.test.ts)
    expect(new Set(cases.map((c) => c.reason)).size).toBe(SYNC_DROP_NAMES.length - 3);
  });

  test("a record for no service is skipped by the caller's lookup, the others kept", () => {
    const counters = new SyncRxCounters();
    const r = decodeSyncMessage(
      v1(tcp4, { ...tcp4, vaddr: "198.18.0.200" }, tcp6),
      {
        syncid: 0,
        maxlen: 0,
        hasService: (c) => c.vaddr !== "198.18.0.200",
      },
      counters,
    );
    expect(r.records.map((x) => x.conn.vaddr)).toEqual(["198.18.0.100", "2001:db8:100::101"]);
    expect(r.drops).toEqual([{ index: 1, offset: 44, reason: SyncDrop.REC_NO_SERVICE }]);
    expect(counters.dropTable()).toEqual({ rec_no_service: 1 });
  });

  test("syncid 0 on the backup accepts every syncid", () => {
    expect(decodeSyncMessage(v1(tcp4), { syncid: 0, maxlen: 0 }).records.length).toBe(1);
  });

  test("an optional unknown option (0x40 bit) is skipped and kept for re-encoding", () => {
    const m = withOption(tcp4, 5 | IPVS_OPT_F_PARAM, 2, 9, 9);
    const r = decodeSyncMessage(m, rx);
    expect(r.drops).toEqual([]);
    expect(r.records[0].conn.options).toEqual([{ type: 0x45, data: new Uint8Array([9, 9]) }]);
    expect(encodeRecordV1(r.records[0].conn)).toEqual(m.slice(8));
  });

  test("flags are reported as sent, INACTIVE included", () => {
    const r = decodeSyncMessage(v1({ ...tcp4, flags: CONN_F_INACTIVE | CONN_F_DROUTE }), rx);
    expect(r.records[0].conn.flags).toBe(0x103);
  });
});
