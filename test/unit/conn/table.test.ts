import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  CF_OUT_ENTRY,
  CF_TEMPLATE,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
  TICKS_PER_SEC,
} from "../../../src/conn/table.ts";
import { hashTuple } from "../../../src/wire/flow.ts";

const VIP = 0xc6120064 | 0,
  RS = 0xc612020b | 0;

/** Create a NAT connection client:cport -> VIP:vport -> RS:8080 expiring in `secs`. */
function add(t: ConnTable, client: number, cport: number, now: number, secs = 60, vport = 80): number {
  const id = t.alloc();
  if (id < 0) return id;
  const o = id * CONN_WORDS,
    r = t.rec;
  r[o + CONN_FLAGS] |= CF_OUT_ENTRY;
  r[o + CONN_PROTO_STATE] = 6 << 8;
  r[o + CONN_CADDR] = client;
  r[o + CONN_VADDR] = VIP;
  r[o + CONN_DADDR] = RS;
  r[o + CONN_CPORT_VPORT] = (cport << 16) | vport;
  r[o + CONN_DPORT] = 8080;
  r[o + CONN_TIMEOUT] = secs * TICKS_PER_SEC;
  r[o + CONN_EXPIRES] = now + secs * TICKS_PER_SEC;
  t.link(id, now);
  return id;
}

function lookupIn(t: ConnTable, client: number, cport: number): number {
  const ports = (cport << 16) | 80;
  return t.lookup(hashTuple(t.seedConn, client, 0, 0, 0, VIP, 0, 0, 0, ports, 6), 0, client, 0, 0, 0, VIP, 0, 0, 0, ports, 6);
}

function lookupOut(t: ConnTable, client: number, cport: number): number {
  const ports = (8080 << 16) | cport;
  return t.lookup(hashTuple(t.seedConn, RS, 0, 0, 0, client, 0, 0, 0, ports, 6), 0, RS, 0, 0, 0, client, 0, 0, 0, ports, 6);
}

describe("connection table", () => {
  test("finds a connection by the client's packet (IN) and by the real server's reply (OUT)", () => {
    const t = new ConnTable(16, 7);
    const id = add(t, 0xc6120102 | 0, 40000, 0);
    expect(lookupIn(t, 0xc6120102 | 0, 40000)).toBe(id << 1);
    expect(lookupOut(t, 0xc6120102 | 0, 40000)).toBe((id << 1) | 1);
    expect(lookupIn(t, 0xc6120102 | 0, 40001)).toBe(-1);
    expect(lookupIn(t, 0xc6120103 | 0, 40000)).toBe(-1);
  });

  test("release removes both index entries and frees the record for reuse", () => {
    const t = new ConnTable(4, 7);
    const ids = [1, 2, 3, 4].map((p) => add(t, 0xc6120102 | 0, p, 0));
    expect(t.full).toBe(true);
    expect(add(t, 0xc6120102 | 0, 9, 0)).toBe(-1);
    t.release(ids[1]);
    expect(lookupIn(t, 0xc6120102 | 0, 2)).toBe(-1);
    expect(lookupOut(t, 0xc6120102 | 0, 2)).toBe(-1);
    for (const p of [1, 3, 4]) expect(lookupIn(t, 0xc6120102 | 0, p) >> 1).toBe(ids[p - 1]);
    expect(add(t, 0xc6120102 | 0, 9, 0)).toBe(ids[1]);
    expect(t.header[0]).toBe(4);
  });

  test("templates live in their own key space", () => {
    const t = new ConnTable(8, 7);
    const id = t.alloc();
    const o = id * CONN_WORDS;
    t.rec[o + CONN_FLAGS] |= CF_TEMPLATE;
    t.rec[o + CONN_PROTO_STATE] = 6 << 8;
    t.rec[o + CONN_CADDR] = 0xc6120100 | 0;
    t.rec[o + CONN_VADDR] = VIP;
    t.rec[o + CONN_CPORT_VPORT] = 80;
    t.rec[o + CONN_TIMEOUT] = 360 * TICKS_PER_SEC;
    t.rec[o + CONN_EXPIRES] = 360 * TICKS_PER_SEC;
    t.link(id, 0);
    expect(t.lookupTemplate(0, 0xc6120100 | 0, 0, 0, 0, VIP, 0, 0, 0, 80, 6)).toBe(id);
    expect(t.lookupTemplate(0, 0xc6120100 | 0, 0, 0, 0, VIP, 0, 0, 0, 81, 6)).toBe(-1);
    expect(lookupIn(t, 0xc6120100 | 0, 0)).toBe(-1);
    expect(t.header[1]).toBe(1);
  });

  test("expires a connection only after its deadline, and a packet (touch) postpones it", () => {
    const t = new ConnTable(8, 7);
    const a = add(t, 1, 1, 0, 10);
    const b = add(t, 2, 2, 0, 10);
    const expired: number[] = [];
    const onExpire = (id: number) => {
      expired.push(id);
      t.release(id);
    };
    t.expire(9 * TICKS_PER_SEC, 1000, onExpire);
    expect(expired).toEqual([]);
    t.touch(b, 9 * TICKS_PER_SEC); // b now lives until 19 s
    t.expire(12 * TICKS_PER_SEC, 1000, onExpire);
    expect(expired).toEqual([a]);
    t.expire(18 * TICKS_PER_SEC, 1000, onExpire);
    expect(expired).toEqual([a]);
    t.expire(21 * TICKS_PER_SEC, 1000, onExpire);
    expect(expired).toEqual([a, b]);
    expect(t.size).toBe(0);
  });

  test("a shorter timeout set later (rearm) expires the connection at the new deadline", () => {
    const t = new ConnTable(8, 7);
    const a = add(t, 1, 1, 0, 900);
    t.rearm(a, 5 * TICKS_PER_SEC, 10 * TICKS_PER_SEC);
    const expired: number[] = [];
    t.expire(16 * TICKS_PER_SEC, 1000, (id) => {
      expired.push(id);
      t.release(id);
    });
    expect(expired).toEqual([a]);
  });

  test("deadlines beyond the wheel's horizon (31-day persistence) still expire on time", () => {
    const t = new ConnTable(8, 7);
    const a = add(t, 1, 1, 0, 86400 * 31);
    const expired: number[] = [];
    const cb = (id: number) => {
      expired.push(id);
      t.release(id);
    };
    for (let s = 0; s <= 86400 * 31 - 1; s += 3600) t.expire(s * TICKS_PER_SEC, 1000, cb);
    expect(expired).toEqual([]);
    t.expire((86400 * 31 + 2) * TICKS_PER_SEC, 1000, cb);
    expect(expired).toEqual([a]);
  });

  test("a bounded expiry call examines at most its budget and continues next time", () => {
    const t = new ConnTable(64, 7);
    for (let i = 0; i < 50; i++) add(t, i + 1, i + 1, 0, 1);
    let n = 0;
    const cb = (id: number) => {
      n++;
      t.release(id);
    };
    expect(t.expire(5 * TICKS_PER_SEC, 20, cb)).toBe(20);
    expect(n).toBe(20);
    t.expire(5 * TICKS_PER_SEC, 100, cb);
    expect(n).toBe(50);
  });

  test("two connections expecting the same reply (one client port, two virtual ports, one real server): the newer gets it, as in the kernel", () => {
    const t = new ConnTable(64, 7);
    const c = 0xc6120102 | 0;
    const older = add(t, c, 40000, 0, 60, 80);
    const newer = add(t, c, 40000, 0, 60, 81);
    expect(lookupOut(t, c, 40000)).toBe((newer << 1) | 1);
    t.release(newer);
    expect(lookupOut(t, c, 40000)).toBe((older << 1) | 1);
    const newest = add(t, c, 40000, 0, 60, 82);
    expect(lookupOut(t, c, 40000)).toBe((newest << 1) | 1);
    t.release(older);
    expect(lookupOut(t, c, 40000)).toBe((newest << 1) | 1);
    expect(lookupIn(t, c, 40000)).toBe(-1); // vport 80 is gone
  });

  test("under random inserts and deletes, a reply always finds the newest live connection expecting it", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 6 })), { maxLength: 120 }), (ops) => {
        const t = new ConnTable(32, 11);
        // per client port: live connection ids, oldest first
        const live = new Map<number, number[]>();
        let vport = 100;
        for (const [ins, cp, pick] of ops) {
          const port = 40000 + cp,
            ids = live.get(port) ?? [];
          if (ins && !t.full) ids.push(add(t, 0xc6120102 | 0, port, 0, 60, vport++));
          else if (!ins && ids.length > 0) t.release(ids.splice(pick % ids.length, 1)[0]);
          live.set(port, ids);
          for (const [p, l] of live) {
            const want = l.length > 0 ? (l[l.length - 1] << 1) | 1 : -1;
            if (lookupOut(t, 0xc6120102 | 0, p) !== want) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  test("behaves like a map under random inserts, lookups and deletes (backward-shift deletion keeps every key reachable)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 6 })), { maxLength: 300 }), (ops) => {
        const t = new ConnTable(64, 3);
        const model = new Map<string, number>();
        for (const [ins, client, port] of ops) {
          const k = `${client}:${port}`;
          if (ins && !model.has(k) && !t.full) model.set(k, add(t, client, port, 0));
          else if (!ins && model.has(k)) {
            t.release(model.get(k)!);
            model.delete(k);
          }
          for (const [kk, id] of model) {
            const [c, p] = kk.split(":").map(Number);
            if (lookupIn(t, c, p) !== id << 1 || lookupOut(t, c, p) !== ((id << 1) | 1)) return false;
          }
        }
        return t.size === model.size;
      }),
      { numRuns: 200 },
    );
  });
});
