import { describe, expect, test } from "bun:test";
import {
  collectRecords,
  decodeTable,
  encodeTable,
  layoutVersion,
  planAdoption,
  type SavedNetns,
  type SavedTable,
  tableKeys,
} from "../../../src/conn/persist.ts";
import {
  CF_TEMPLATE,
  CF_USED,
  CONN_CADDR,
  CONN_CONTROL,
  CONN_DEST,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_NEXTHOP,
  CONN_SVC,
  CONN_WORDS,
  ConnTable,
} from "../../../src/conn/table.ts";
import {
  DEST_ADDR,
  DEST_FLAGS,
  DEST_PORT,
  DEST_SVC,
  DEST_WORDS,
  DESTF_USED,
  MAX_DESTS,
  MAX_SERVICES,
  SVC_ADDR,
  SVC_FLAGS,
  SVC_PORT,
  SVC_PROTO,
  SVC_WORDS,
  SVCF_USED,
  type Tables,
} from "../../../src/service/tables.ts";

const HERE: SavedNetns = { cookie: "4096", inode: "4026531840", boot: "b-1" };

/** Tables with services (id, vip, port) and dests (id, svc, rip, port): all tableKeys reads. */
function tables(svcs: [number, number, number][], dests: [number, number, number, number][]): Tables {
  const svc = new Int32Array(MAX_SERVICES * SVC_WORDS);
  const dest = new Int32Array(MAX_DESTS * DEST_WORDS);
  for (const [id, vip, port] of svcs) {
    svc[id * SVC_WORDS + SVC_FLAGS] = SVCF_USED;
    svc[id * SVC_WORDS + SVC_PROTO] = 6;
    svc[id * SVC_WORDS + SVC_ADDR] = vip;
    svc[id * SVC_WORDS + SVC_PORT] = port;
  }
  for (const [id, s, rip, port] of dests) {
    dest[id * DEST_WORDS + DEST_FLAGS] = DESTF_USED;
    dest[id * DEST_WORDS + DEST_SVC] = s;
    dest[id * DEST_WORDS + DEST_ADDR] = rip;
    dest[id * DEST_WORDS + DEST_PORT] = port;
  }
  return { svc, dest } as unknown as Tables;
}

/** A table of `n` connections of svc 0 / dest 1, client i, deadline 1000 + i; plus one template controlling connection 0. */
function sample(n: number, epochMs: number): SavedTable {
  const t = tables([[0, 0xc6120064, 80]], [[1, 0, 0xc6120b02, 8080]]);
  const c = new ConnTable(64);
  const tpl = c.alloc();
  c.rec[tpl * CONN_WORDS + CONN_FLAGS] |= CF_TEMPLATE;
  c.rec[tpl * CONN_WORDS + CONN_EXPIRES] = 5000;
  c.rec[tpl * CONN_WORDS + CONN_DEST] = 1;
  for (let i = 0; i < n; i++) {
    const id = c.alloc();
    const o = id * CONN_WORDS;
    c.rec[o + CONN_CADDR] = 0xc6120001 + i;
    c.rec[o + CONN_SVC] = 0;
    c.rec[o + CONN_DEST] = 1;
    c.rec[o + CONN_EXPIRES] = 1000 + i;
    c.rec[o + CONN_NEXTHOP] = -1; // ~port 0
    if (i === 0) c.rec[o + CONN_CONTROL] = tpl + 1;
  }
  const keys = tableKeys(t);
  return {
    header: { layout: layoutVersion(), build: "test", netns: HERE, epochMs, savedMs: epochMs, ports: ["eth0"], ...keys, queues: [] },
    queues: [collectRecords(c.rec, c.header[2])],
  };
}

describe("connection table file", () => {
  test("round trip: every record and the header come back", () => {
    const saved = sample(10, 1_000_000);
    const got = decodeTable(encodeTable(saved), HERE);
    if ("kind" in got) throw new Error(got.reason);
    expect(got.header.queues).toEqual([11]);
    expect(got.header.services).toEqual(saved.header.services);
    expect(Array.from(got.queues[0])).toEqual(Array.from(saved.queues[0]));
    expect(got.queues[0][CONN_FLAGS] & CF_USED).toBe(CF_USED);
  });

  test("read from a Node Buffer (readFileSync's, a view into a shared pool) the records are the same", () => {
    const saved = sample(5, 0);
    const pooled = Buffer.concat([Buffer.from("junk"), Buffer.from(encodeTable(saved))]).subarray(4);
    const got = decodeTable(pooled, HERE);
    if ("kind" in got) throw new Error(got.reason);
    expect(Array.from(got.queues[0])).toEqual(Array.from(saved.queues[0]));
  });

  test("a damaged file (one byte of a record changed) is refused as damaged", () => {
    const bytes = encodeTable(sample(10, 0));
    bytes[bytes.length - 40] ^= 0x10;
    const got = decodeTable(bytes, HERE);
    expect("kind" in got && got.kind).toBe("damaged");
    expect("kind" in got && got.reason).toContain("checksum");
  });

  test("a truncated file is refused as damaged, at every length", () => {
    const bytes = encodeTable(sample(3, 0));
    for (const len of [0, 7, 15, 40, bytes.length - 4, bytes.length - 1]) {
      const got = decodeTable(bytes.slice(0, len), HERE);
      expect("kind" in got && got.kind).toBe("damaged");
    }
  });

  test("something else (no magic) is refused as damaged", () => {
    const got = decodeTable(new TextEncoder().encode('{"services":[]}\n-------------'), HERE);
    expect("kind" in got && got.reason).toContain("magic");
  });

  test("another namespace's or another boot's table is refused as foreign", () => {
    const bytes = encodeTable(sample(3, 0));
    const other = decodeTable(bytes, { ...HERE, cookie: "8192" });
    expect("kind" in other && other.kind).toBe("foreign");
    expect("kind" in other && other.reason).toContain("cookie 4096");
    const reboot = decodeTable(bytes, { ...HERE, boot: "b-2" });
    expect("kind" in reboot && reboot.kind).toBe("foreign");
    expect("kind" in reboot && reboot.reason).toContain("reboot");
    // without cookies the inode decides
    const noCookie = encodeTable({ ...sample(1, 0), header: { ...sample(1, 0).header, netns: { ...HERE, cookie: null } } });
    expect("kind" in decodeTable(noCookie, { ...HERE, cookie: null })).toBe(false);
    expect("kind" in decodeTable(noCookie, { ...HERE, cookie: null, inode: "1" })).toBe(true);
  });

  test("another record layout is refused with both layouts named", () => {
    const got = decodeTable(encodeTable(sample(3, 0)), HERE, "L28-00000000");
    expect("kind" in got && got.kind).toBe("layout");
    expect("kind" in got && got.reason).toContain(layoutVersion());
    expect(layoutVersion()).toMatch(new RegExp(`^L${CONN_WORDS}-[0-9a-f]{8}$`));
  });
});

describe("adoption plan", () => {
  test("ids remapped by key, deadlines turned into ticks left, expired ones left out, template link kept", () => {
    const epoch = 1_000_000;
    const saved = sample(10, epoch);
    // the new daemon numbers the same service 7 and its real server 3, and has a port list in another order
    const t = tables([[7, 0xc6120064, 80]], [[3, 7, 0xc6120b02, 8080]]);
    // 10.05 s after the epoch: tick 1005, so connections 0..5 (deadline 1000..1005) expired
    const plan = planAdoption(saved, t, ["lo", "eth0"], epoch + 10_050);
    expect(plan.expired).toBe(6);
    expect(plan.kept).toBe(5); // the template and connections 6..9
    const q = plan.queues[0];
    expect(q.length).toBe(5 * CONN_WORDS);
    expect(q[CONN_FLAGS] & CF_TEMPLATE).toBe(CF_TEMPLATE);
    expect(q[CONN_EXPIRES]).toBe(5000 - 1005);
    // connection 0 (the controlled one) expired: the template controls nothing now
    expect(q[CONN_CONTROL]).toBe(0);
    for (let k = 1; k < 5; k++) {
      const o = k * CONN_WORDS;
      expect(q[o + CONN_SVC]).toBe(7);
      expect(q[o + CONN_DEST]).toBe(3);
      expect(q[o + CONN_EXPIRES]).toBe(1000 + 5 + k - 1005);
      expect(q[o + CONN_NEXTHOP]).toBe(-1 - 1); // eth0 is port 1 now
    }
  });

  test("a connection whose service or real server is gone is left out and counted", () => {
    const saved = sample(4, 0);
    const plan = planAdoption(saved, tables([[0, 0xc6120064, 80]], [[1, 0, 0xc6120b09, 8080]]), ["eth0"], 0);
    expect(plan.kept).toBe(0);
    expect(plan.unknown).toBe(5);
  });

  test("a controlled connection keeps its template, renumbered, and the template's count is recomputed", () => {
    const saved = sample(3, 0);
    const plan = planAdoption(saved, tables([[0, 0xc6120064, 80]], [[1, 0, 0xc6120b02, 8080]]), ["eth0"], 0);
    const q = plan.queues[0];
    expect(plan.kept).toBe(4);
    expect(q[CONN_CONTROL]).toBe(1); // the template controls one
    expect(q[CONN_WORDS + CONN_CONTROL]).toBe(1); // connection 0 -> the template, index 0 + 1
  });
});
