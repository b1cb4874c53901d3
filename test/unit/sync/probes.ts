/**
 * Sync datagrams made by xvs's encoder, good and damaged, sent to a kernel IPVS backup in the ipvs-vm
 * guest (test/kernel/sync/probe.sh) to learn what the kernel installs from each: the ground
 * truth for the decoder's drop rules and for the encoder's output. Each probe uses its own client
 * ports (base .. base + 9) so the backup's `ipvsadm -Lnc` tells which records it took.
 *   bun test/unit/sync/probes.ts > test/kernel/sync/probes.hex
 */
import { encodeSyncMessages } from "../../../src/sync/encode.ts";
import { CONN_F_DROUTE, CONN_F_OUT_SEQ, CONN_F_TEMPLATE, type SyncConn } from "../../../src/sync/format.ts";

export interface Probe {
  name: string;
  /** Client ports base .. base + 9 belong to this probe. */
  base: number;
  bytes: Uint8Array;
  /** Where xvs is stricter than the kernel on purpose (docs/sync.md): the kernel takes these records. */
  stricter?: number[];
}

const tcp = (cport: number, over: Partial<SyncConn> = {}): SyncConn => ({
  version: 1,
  family: 4,
  protocol: 6,
  flags: 0,
  state: 1,
  cport,
  vport: 80,
  dport: 8080,
  fwmark: 0,
  timeoutSec: 900,
  caddr: "198.18.1.2",
  vaddr: "198.18.0.100",
  daddr: "198.18.2.11",
  ...over,
});
const tcp6 = (cport: number): SyncConn => ({
  ...tcp(cport),
  family: 6,
  flags: CONN_F_DROUTE,
  vport: 80,
  dport: 80,
  caddr: "2001:db8:1::2",
  vaddr: "2001:db8:100::101",
  daddr: "2001:db8:2::11",
});
const udp = (cport: number): SyncConn => ({ ...tcp(cport), protocol: 17, state: 0, vport: 9000, dport: 9001, timeoutSec: 300 });
const seq = { in: { initSeq: 0, delta: 0, previousDelta: 0 }, out: { initSeq: 123456789, delta: 1, previousDelta: 0 } };
const ftp = (cport: number): SyncConn => ({
  ...tcp(cport),
  vport: 21,
  dport: 21,
  flags: CONN_F_OUT_SEQ,
  inSeq: seq.in,
  outSeq: seq.out,
});

const v1 = (...cs: SyncConn[]) => encodeSyncMessages(cs, { syncid: 7, maxlen: 65000, version: 1 })[0];
const v0 = (...cs: SyncConn[]) => encodeSyncMessages(cs, { syncid: 7, maxlen: 65000, version: 0 })[0];
const fixSize = (m: Uint8Array) => {
  new DataView(m.buffer, m.byteOffset).setUint16(2, m.length);
  return m;
};
const edit = (m: Uint8Array, f: (m: Uint8Array, dv: DataView) => void) => {
  f(m, new DataView(m.buffer, m.byteOffset));
  return m;
};
/** A one-record v1 message of `c` with raw option bytes appended to the record. */
function withOption(c: SyncConn, ...opt: number[]): Uint8Array {
  const m = v1(c);
  const out = new Uint8Array(m.length + opt.length);
  out.set(m);
  out.set(opt, m.length);
  const dv = new DataView(out.buffer);
  dv.setUint16(10, dv.getUint16(10) + opt.length);
  return fixSize(out);
}
/** Two v1 messages' records in one message (their headers' counts added). */
function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const m = new Uint8Array(a.length + b.length - 8);
  m.set(a);
  m.set(b.subarray(8), a.length);
  m[4] = a[4] + b[4];
  return fixSize(m);
}

/** The probes, in the order they are sent. */
export function buildProbes(): Probe[] {
  const p: Probe[] = [];
  const add = (name: string, base: number, bytes: Uint8Array, stricter?: number[]) => p.push({ name, base, bytes, stricter });
  add(
    "v1 IPv4 TCP, IPv6 DR TCP, UDP, SIP template",
    50010,
    v1(tcp(50010), tcp6(50011), udp(50012), {
      ...udp(0),
      vport: 5060,
      dport: 5060,
      flags: CONN_F_TEMPLATE,
      state: 1,
      timeoutSec: 60,
      peData: new TextEncoder().encode("probe-call-50010"),
      peName: "sip",
    }),
  );
  add("v0 TCP, and TCP with sequence data", 50020, v0(tcp(50020), ftp(50021)));
  add("v1 TCP with sequence data", 50030, v1(ftp(50030)));
  add(
    "size field 4 too small",
    50040,
    edit(v1(tcp(50040)), (m) => {
      m[3] -= 4;
    }),
  );
  add(
    "syncid 8 (the backup has 7)",
    50050,
    edit(v1(tcp(50050)), (m) => {
      m[1] = 8;
    }),
  );
  add(
    "version 2",
    50060,
    edit(v1(tcp(50060)), (m) => {
      m[5] = 2;
    }),
  );
  add(
    "nr_conns 3 with 2 records",
    50070,
    edit(v1(tcp(50070), tcp(50071)), (m) => {
      m[4] = 3;
    }),
  );
  add(
    "2nd record's size past the end",
    50080,
    edit(v1(tcp(50080), tcp(50081)), (m) => {
      m[8 + 36 + 3] = 40;
    }),
  );
  add(
    "record version nibble 1",
    50090,
    edit(v1(tcp(50090)), (m) => {
      m[10] |= 0x10;
    }),
  );
  add(
    "2nd record type 2",
    50100,
    edit(v1(tcp(50100), tcp(50101)), (m) => {
      m[8 + 36] = 2;
    }),
  );
  add(
    "zero-length record",
    50110,
    edit(v1(tcp(50110)), (m) => {
      m[11] = 0;
    }),
  );
  add("one byte of option header", 50120, withOption(tcp(50120), 1));
  add("option of length 0", 50130, withOption(tcp(50130), 2, 0, 0, 0));
  add("sequence option of 4 bytes", 50140, withOption(tcp(50140), 1, 4, 0, 0, 0, 0));
  add("PE data twice", 50150, withOption(tcp(50150), 2, 1, 65, 2, 1, 66));
  add("PE name of 17 bytes", 50160, withOption(tcp(50160), 3, 17, ...new Array(17).fill(115)));
  add("unknown mandatory option 5, then a good record", 50170, join(withOption(tcp(50170), 5, 2, 0, 0), v1(tcp(50171))));
  add("protocol 99, then a good record", 50180, v1(tcp(50180, { protocol: 99 }), tcp(50181)));
  add("TCP state 11, then a good record", 50190, v1(tcp(50190, { state: 11 }), tcp(50191)));
  add("PE data without a name", 50200, withOption(tcp(50200), 2, 1, 65));
  add(
    "a record after the announced ones",
    50210,
    edit(v1(tcp(50210), tcp(50211)), (m) => {
      m[4] = 1;
    }),
  );
  add("optional unknown option 0x45", 50220, withOption(tcp(50220), 0x45, 2, 9, 9));
  add(
    "v0 nr_conns 2 with 1 record",
    50230,
    edit(v0(tcp(50230)), (m) => {
      m[0] = 2;
    }),
  );
  add(
    "v0 2nd record with SEQ flag but no data",
    50240,
    edit(v0(tcp(50240), tcp(50241)), (_m, dv) => {
      dv.setUint16(4 + 24 + 20, 0x0200);
    }),
  );
  add("no service for the virtual address", 50250, v1(tcp(50250, { vaddr: "198.18.0.200" })));
  add(
    "IPv6 record of type 3",
    50260,
    edit(v1(tcp6(50260)), (m) => {
      m[8] = 3;
    }),
    [50260],
  );
  add("template state 2", 50270, v1(tcp(50270, { flags: CONN_F_TEMPLATE, state: 2, timeoutSec: 300 })));
  add(
    "v0 reserved byte 1",
    50280,
    edit(v0(tcp(50280)), (m) => {
      m[4] = 1;
    }),
    [50280],
  );
  // 44 records: 1592 bytes, more than the backup's 1472-byte buffer (it reads a truncated datagram)
  add(
    "longer than the backup's sync_maxlen",
    50290,
    v1(...Array.from({ length: 44 }, (_, i) => tcp(50290 + (i % 10), { cport: 50290 + (i % 10), dport: 8080 + i }))),
  );
  return p;
}

if (import.meta.main) {
  for (const p of buildProbes()) process.stdout.write(`${p.base} ${Buffer.from(p.bytes).toString("hex")}\n`);
}
