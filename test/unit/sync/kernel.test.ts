// The sync codec against kernel IPVS (Debian 6.1 in the ipvs-vm guest; test/kernel/sync/record.sh
// made the fixtures): every datagram the master sent decodes whole; what it says matches what the
// kernel's own backup installed from it (`ipvsadm -Lnc` on the backup) and what the master showed;
// the encoder rebuilds each datagram byte for byte, from the decoded connections alone (the options
// re-derived, not copied); messages respect sync_maxlen as the kernel computed it.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TCP_STATE_NAMES } from "../../../src/conn/state.ts";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { SyncMessageBuilder } from "../../../src/sync/encode.ts";
import { CONN_F_TEMPLATE, type SyncConn, syncMaxlen } from "../../../src/sync/format.ts";
import { SYNC_DEFAULTS, syncDecision } from "../../../src/sync/policy.ts";
import { type SyncDatagram, readSyncPcap } from "./pcap.ts";

const dir = join(import.meta.dir, "../../kernel/sync");
const text = (f: string) => readFileSync(join(dir, f), "utf8");
/** Guest clock at a snapshot, ms (the pcap's clock). */
const timeOf = (f: string) => Math.round(Number(text(f).trim()) * 1000);

interface Phase {
  pcap: string;
  version: 0 | 1;
  maxlen: number;
  ports: [number, number];
}
const phases: Phase[] = [
  { pcap: "v1.pcap", version: 1, maxlen: 1472, ports: [40000, 40999] },
  { pcap: "v0.pcap", version: 0, maxlen: 1472, ports: [41000, 41999] },
  { pcap: "maxlen300.pcap", version: 1, maxlen: 300, ports: [42000, 42999] },
];
const captured = phases.map((p) => ({ phase: p, dgrams: readSyncPcap(join(dir, p.pcap)) }));
const all: SyncDatagram[] = captured.flatMap((c) => c.dgrams).sort((a, b) => a.timeMs - b.timeMs);

const tuple = (proto: string, c: string, v: string, d: string) => `${proto} ${c} ${v} ${d}`;
const hostPort = (a: string, p: number, family: 4 | 6) => (family === 6 ? `[${a}]:${p}` : `${a}:${p}`);
function connTuple(c: SyncConn): string {
  const proto = c.protocol === 6 ? "TCP" : c.protocol === 17 ? "UDP" : String(c.protocol);
  return tuple(proto, hostPort(c.caddr, c.cport, c.family), hostPort(c.vaddr, c.vport, c.family), hostPort(c.daddr, c.dport, c.family));
}
/** The state name ipvsadm -Lnc prints (ip_vs_state_name). */
function stateName(c: SyncConn): string {
  if (c.flags & CONN_F_TEMPLATE) return ["NONE", "ASSURED"][c.state];
  return c.protocol === 6 ? TCP_STATE_NAMES[c.state] : "UDP";
}

interface Entry {
  tuple: string;
  expireSec: number;
  state: string;
}
/** Parse `ipvsadm -Lnc` output. */
function lnc(f: string): Entry[] {
  return text(f)
    .split("\n")
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => {
      const [pro, expire, state, src, vip, dst] = l.trim().split(/\s+/);
      const [m, s] = expire.split(":").map(Number);
      return { tuple: tuple(pro, src, vip, dst), expireSec: m * 60 + s, state };
    });
}

/**
 * The last record per connection among the datagrams sent up to `untilMs`, with its send time. A
 * template's PE data is part of its identity (one SIP template per Call-ID, all on one tuple), so the
 * key is the tuple plus the PE data.
 */
function lastRecords(untilMs: number): Map<string, { conn: SyncConn; atMs: number }> {
  const out = new Map<string, { conn: SyncConn; atMs: number }>();
  for (const d of all) {
    if (d.timeMs > untilMs) break;
    for (const r of decodeSyncMessage(d.payload, { syncid: 7, maxlen: 0 }).records) {
      out.set(`${connTuple(r.conn)}|${r.conn.peData ? [...r.conn.peData].join(",") : ""}`, { conn: r.conn, atMs: d.timeMs });
    }
  }
  return out;
}

/** Tuple -> the states -Lnc lists for it (several SIP templates share one tuple). */
function statesByTuple(f: string): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const e of lnc(f)) m.set(e.tuple, (m.get(e.tuple) ?? new Set()).add(e.state));
  return m;
}

/** Timeout the backup gives a record: its own (v1), else the protocol's for the state (ip_vs_proc_conn). */
function backupTimeoutSec(c: SyncConn): number {
  if (c.timeoutSec) return c.timeoutSec;
  if (c.flags & CONN_F_TEMPLATE) return 180;
  return c.protocol === 6 ? [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120][c.state] : 300;
}

describe("kernel sync datagrams (fixtures)", () => {
  test("the master multicast them to 224.0.0.81:8848 with TTL 1, from its sy0 address", () => {
    expect(all.length).toBeGreaterThan(10);
    for (const d of all) {
      expect([d.src, d.dst, d.ttl, d.dstPort]).toEqual(["198.18.9.1", "224.0.0.81", 1, 8848]);
    }
  });

  for (const { phase, dgrams } of captured) {
    test(`${phase.pcap}: every datagram decodes whole, v${phase.version}, syncid 7, within sync_maxlen ${phase.maxlen}`, () => {
      expect(dgrams.length).toBeGreaterThan(1);
      for (const d of dgrams) {
        const r = decodeSyncMessage(d.payload, { syncid: 7, maxlen: phase.maxlen });
        expect(r.messageDrop).toBeNull();
        expect(r.drops).toEqual([]);
        expect([r.version, r.syncid, r.records.length]).toEqual([phase.version, 7, r.nrConns]);
        expect(d.payload.length).toBeLessThanOrEqual(phase.maxlen);
      }
    });

    test(`${phase.pcap}: the encoder rebuilds every datagram byte for byte from the decoded connections`, () => {
      for (const d of dgrams) {
        const recs = decodeSyncMessage(d.payload, { syncid: 7, maxlen: 0 }).records;
        const b = new SyncMessageBuilder(7, phase.maxlen);
        for (const r of recs) {
          // drop the wire options: the encoder must choose the kernel's own
          const { options: _o, ...bare } = r.conn;
          expect(b.add(bare, phase.version)).toEqual([]);
        }
        expect(b.take()).toEqual(d.payload);
      }
    });
  }

  test("a full message is closed where the kernel closed it: the next record would not have fit", () => {
    let full = 0;
    for (const { phase, dgrams } of captured) {
      for (let i = 0; i + 1 < dgrams.length; i++) {
        const next = decodeSyncMessage(dgrams[i + 1].payload, { syncid: 7, maxlen: 0 }).records[0];
        const cur = dgrams[i].payload;
        const pad = phase.version === 1 ? (4 - cur.length) & 3 : 0;
        // sent within the 20 ms send delay of each other: closed for room, not by the 2 s flush
        if (dgrams[i + 1].timeMs - dgrams[i].timeMs < 1000 && cur.length + pad + next.length > phase.maxlen) {
          full++;
          const b = new SyncMessageBuilder(7, phase.maxlen);
          for (const r of decodeSyncMessage(cur, { syncid: 7, maxlen: 0 }).records) b.add(r.conn, phase.version);
          expect(b.add(next.conn, phase.version)).toEqual([cur]);
        }
      }
    }
    expect(full).toBeGreaterThanOrEqual(2);
  });

  test("records carry what the test made: DR and NAT, IPv6, templates with cport 0, SIP PE data and name", () => {
    const recs = all.flatMap((d) => decodeSyncMessage(d.payload, { syncid: 7, maxlen: 0 }).records.map((r) => r.conn));
    const sip = recs.find((c) => c.peName === "sip");
    expect(sip && new TextDecoder().decode(sip.peData)).toMatch(/^xvs-sync-call-4\d+$/);
    expect(sip?.flags).toBe(CONN_F_TEMPLATE | 0x100 | 0x10000); // TEMPLATE, INACTIVE, NFCT (conntrack=1)
    expect(recs.some((c) => c.family === 6 && (c.flags & 7) === 3)).toBe(true);
    expect(recs.some((c) => c.family === 4 && (c.flags & 7) === 3 && c.version === 1)).toBe(true);
    expect(recs.some((c) => (c.flags & CONN_F_TEMPLATE) !== 0 && c.cport === 0 && c.family === 6)).toBe(true);
    expect(new Set(recs.map(stateName))).toEqual(new Set(["NONE", "ASSURED", "ESTABLISHED", "UDP", "CLOSE_WAIT", "TIME_WAIT"]));
  });
});

describe("what the kernel sent, when: the same as shouldSync decides", () => {
  /** The states sent for a connection whose client-side packets see these states, per syncDecision. */
  function simulate(protocol: number, states: number[]): number[] {
    const c = { protocol, flags: 0, state: 0, oldState: 0, timeoutMs: 900_000, syncEndtimeMs: 0, inPersistence: false };
    const sent: number[] = [];
    states.forEach((st, i) => {
      c.state = st;
      const d = syncDecision(c, i + 1, i * 10, SYNC_DEFAULTS);
      if (d.send) sent.push(st);
      c.oldState = d.oldState;
      c.syncEndtimeMs = d.syncEndtimeMs;
    });
    return sent;
  }
  const sequences = () => {
    const m = new Map<string, SyncConn[]>();
    for (const d of all) {
      for (const r of decodeSyncMessage(d.payload, { syncid: 7, maxlen: 0 }).records) {
        if (r.conn.flags & CONN_F_TEMPLATE) continue;
        const k = connTuple(r.conn);
        m.set(k, [...(m.get(k) ?? []), r.conn]);
      }
    }
    return m;
  };

  test("each held TCP connection: once ESTABLISHED (its 3rd packet), then CLOSE_WAIT and TIME_WAIT as it closed", () => {
    // client side: SYN (SYN_RECV), the handshake's ACK and the data (ESTABLISHED), FIN (CLOSE_WAIT),
    // the last ACK (TIME_WAIT); the count of data packets does not matter below 53
    for (const n of [3, 10, 40]) expect(simulate(6, [3, ...new Array(n).fill(1), 7, 5])).toEqual([1, 7, 5]);
    let tcp = 0;
    for (const [k, cs] of sequences()) {
      if (cs[0].protocol !== 6) continue;
      tcp++;
      expect(`${k} ${cs.map((c) => c.state).join(",")}`).toBe(`${k} 1,7,5`);
    }
    expect(tcp).toBe(11);
  });

  test("each UDP flow of 3 datagrams: sent once, at the 3rd", () => {
    expect(simulate(17, [0, 0, 0])).toEqual([0]);
    expect(simulate(17, [0, 0])).toEqual([]);
    let udp = 0;
    for (const [k, cs] of sequences()) {
      if (cs[0].protocol !== 17) continue;
      udp++;
      expect(`${k} ${cs.length}`).toBe(`${k} 1`);
    }
    expect(udp).toBeGreaterThan(80);
  });
});

describe("the kernel's backup installed what the decoder reads", () => {
  for (const snap of ["v1-bk-held", "v1-bk-closed", "v0-bk-held", "v0-bk-closed", "maxlen300-bk"]) {
    test(`${snap}: every connection the backup lists is the last record sent for it, same state, expiry within its timeout`, () => {
      const t = timeOf(`${snap}.time`);
      const last = lastRecords(t);
      const entries = lnc(`${snap}.txt`);
      expect(entries.length).toBeGreaterThan(3);
      // each record explains at most one entry: same tuple and state, and what -Lnc shows left of the
      // timer is what the record's timeout leaves since it arrived (the backup starts the timer
      // then), within 3 s. Entries with the most time left pick first, the tightest record each.
      const unused = new Map(last);
      const left = (r: { conn: SyncConn; atMs: number }) => backupTimeoutSec(r.conn) - (t - r.atMs) / 1000;
      for (const e of [...entries].sort((a, b) => b.expireSec - a.expireSec)) {
        const fits = [...unused]
          .filter(
            ([k, r]) => k.startsWith(`${e.tuple}|`) && stateName(r.conn) === e.state && e.expireSec <= Math.ceil(left(r)) + 1 && e.expireSec >= left(r) - 3,
          )
          .sort((a, b) => left(a[1]) - left(b[1]));
        expect(fits.length ? `${e.tuple} ${e.state}` : `${e.tuple} ${e.state} ${e.expireSec}s: no record explains it`).toBe(`${e.tuple} ${e.state}`);
        unused.delete(fits[0][0]);
      }
    });
  }

  for (const [phaseName, range] of [
    ["v1", [40000, 40999]],
    ["v0", [41000, 41999]],
  ] as const) {
    test(`${phaseName}: every connection of the phase that was sent is on the backup, and on the master in that state`, () => {
      const t = timeOf(`${phaseName}-bk-held.time`);
      const bk = statesByTuple(`${phaseName}-bk-held.txt`);
      const lb = statesByTuple(`${phaseName}-lb-held.txt`);
      let n = 0;
      for (const [, r] of lastRecords(t)) {
        if (r.conn.cport < range[0] || r.conn.cport > range[1]) continue;
        n++;
        const tu = connTuple(r.conn);
        expect(`${tu} ${bk.get(tu)?.has(stateName(r.conn))}`).toBe(`${tu} true`);
        expect(`${tu} ${lb.get(tu)?.has(stateName(r.conn))}`).toBe(`${tu} true`);
      }
      expect(n).toBeGreaterThanOrEqual(phaseName === "v1" ? 8 : 5);
    });
  }
});

describe("sync_maxlen as the kernel chose it (ipvsadm -L --daemon goldens)", () => {
  const maxlens = (f: string) => [...text(f).matchAll(/maxlen=(\d+)/g)].map((m) => Number(m[1]));
  test("master 1472 (IPv4 group) and 1452 (IPv6 group) whatever the MTU; backup from the MTU; given values kept", () => {
    expect(maxlens("daemon-master.txt")).toEqual([syncMaxlen("master", 0, 1500, 4)]);
    expect(maxlens("daemon-backup.txt")).toEqual([syncMaxlen("backup", 0, 1500, 4)]);
    expect(maxlens("daemon-mtu9000.txt")).toEqual([syncMaxlen("master", 0, 9000, 4), syncMaxlen("backup", 0, 9000, 4)]);
    expect(maxlens("daemon-master6.txt")).toEqual([syncMaxlen("master", 0, 9000, 6)]);
    expect(maxlens("daemon-options.txt")).toEqual([syncMaxlen("master", 1000, 9000, 4), syncMaxlen("backup", 9000, 9000, 6)]);
    expect(maxlens("daemon-maxlen300.txt")).toEqual([syncMaxlen("master", 300, 1500, 4)]);
    expect(text("daemon-none.txt")).toBe("");
  });
});
