/**
 * One persistence template per client over all workers (conn/persist-template.ts): two fast
 * paths (two workers) with shared counts, as `xvs run` sets them up. A client's connections,
 * whichever worker makes them, link to one template; PersistConn counts it once; each new
 * connection re-arms it; it outlives them by the persistence timeout and no longer; a template
 * its owner has ended is never linked to.
 */
import { describe, expect, test } from "bun:test";
import { ACK, PacketBuilder, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS } from "../../util/harness.ts";
import { Counters } from "../../../src/stats/counters.ts";
import { acquire, kill, linkId, linkWorker, peerLink, TEMPLATE_DEAD } from "../../../src/conn/persist-template.ts";
import {
  CF_ASSURED,
  CF_TEMPLATE,
  CF_USED,
  CONN_CONTROL,
  CONN_DEST,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_WORDS,
  ConnTable,
  HDR_HIGH,
  TICKS_PER_SEC,
} from "../../../src/conn/table.ts";
import { applyPeersMessage, peersMessages } from "../../../src/dataplane/peers.ts";
import { collectAll, layoutVersion, planAdoption, tableKeys } from "../../../src/conn/persist.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2";
const SPEC = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const PTIMEOUT = 300;

function req(sport: number, flags: number, src = CLIENT): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
}

/** `n` workers over one model with shared counts, each looking up the others' tables. */
function workers(n: number, setup: (h: Harness) => void): Harness[] {
  const shared = Counters.allocateShared();
  const hs: Harness[] = [];
  for (let i = 0; i < n; i++) hs.push(new Harness({ seed: 101 * (i + 1), shared }));
  for (const h of hs) {
    setup(h);
    h.apply();
  }
  const msgs = peersMessages(hs.map((h) => h.conns.buffers));
  for (let i = 0; i < n; i++) applyPeersMessage(hs[i].fp, msgs[i]);
  return hs;
}

/** A persistent DR service VIP:80 over three real servers (rr: without the template they would alternate). */
function dr(h: Harness): void {
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [], persistence: { timeout: PTIMEOUT } });
  for (const rs of ["198.18.17.2", "198.18.17.3", "198.18.17.4"])
    h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: rs, port: 80, forward: "route", ...SPEC });
}

/** Live records of a table: id, flags, dest, control. */
function records(t: ConnTable): { id: number; flags: number; dest: number; control: number }[] {
  const out = [];
  for (let id = 0; id < t.header[HDR_HIGH]; id++) {
    const o = id * CONN_WORDS;
    if (t.rec[o + CONN_FLAGS] & CF_USED) out.push({ id, flags: t.rec[o + CONN_FLAGS], dest: t.rec[o + CONN_DEST], control: t.rec[o + CONN_CONTROL] });
  }
  return out;
}
const templates = (hs: Harness[]) => hs.flatMap((h) => records(h.conns).filter((r) => r.flags & CF_TEMPLATE));
const conns = (hs: Harness[]) => hs.flatMap((h) => records(h.conns).filter((r) => !(r.flags & CF_TEMPLATE)));
const persistConn = (h: Harness) => Array.from(h.counters.persist).reduce((a, b) => a + b, 0);

/** Advance every worker's clock together (one clock in the daemon) and run their timers. */
function advance(hs: Harness[], ms: number): void {
  for (const h of hs) h.advance(ms);
}

describe("one template per client over all workers", () => {
  test("connections spread over 4 workers: one real server, one template controlling all, PersistConn 1", () => {
    const hs = workers(4, dr);
    for (let i = 0; i < 16; i++) hs[i % 4].one(req(40000 + i, SYN));
    const tpls = templates(hs);
    expect(tpls.length).toBe(1);
    expect(new Set(conns(hs).map((c) => c.dest))).toEqual(new Set([tpls[0].dest]));
    expect(conns(hs).length).toBe(16);
    // n_control counts every worker's connections
    expect(tpls[0].control).toBe(16);
    // the counts are shared: PersistConn is 1 (it was one per worker the client reached)
    expect(persistConn(hs[0])).toBe(1);
    // links: worker 0's own (id + 1), the others' name worker 0 and the template's id
    for (const c of records(hs[0].conns).filter((r) => !(r.flags & CF_TEMPLATE))) expect(c.control).toBe(tpls[0].id + 1);
    for (const h of hs.slice(1))
      for (const c of records(h.conns)) {
        expect(c.control).toBeLessThan(0);
        expect([linkWorker(c.control), linkId(c.control)]).toEqual([0, tpls[0].id]);
      }
  });

  test("a connection on another worker re-arms the template; it expires its timeout after the last connection is gone", () => {
    const [a, b] = workers(2, dr);
    a.one(req(40000, SYN)); // template made by a, SYN_RECV
    const tpl = templates([a, b])[0];
    const o = tpl.id * CONN_WORDS;
    advance([a, b], 50_000);
    b.one(req(40001, SYN)); // linked from b: ip_vs_conn_put(ct)
    expect(((a.conns.rec[o + CONN_EXPIRES] - a.fp.now) | 0) / TICKS_PER_SEC).toBe(PTIMEOUT);
    expect(templates([a, b]).length).toBe(1);
    expect(a.conns.rec[o + CONN_CONTROL]).toBe(2);
    // both half-open connections expire (SYN_RECV, 60 s); the template stays, controlling nothing
    advance([a, b], 61_000);
    expect(conns([a, b]).length).toBe(0);
    expect(a.conns.rec[o + CONN_CONTROL]).toBe(0);
    expect(templates([a, b]).length).toBe(1);
    // due PTIMEOUT after b's connection re-armed it (50 s in), not after a's made it
    advance([a, b], (PTIMEOUT - 61 - 2) * 1000);
    expect(templates([a, b]).length).toBe(1);
    advance([a, b], 3_000);
    expect(templates([a, b]).length).toBe(0);
    expect(persistConn(a)).toBe(0);
  });

  test("a template whose deadline passes while another worker's connection holds it waits (expire_later), then goes", () => {
    const [a, b] = workers(2, dr);
    a.one(req(40000, SYN));
    b.one(req(40001, SYN));
    b.one(req(40001, ACK)); // established on b: 900 s
    const tpl = templates([a, b])[0];
    advance([a, b], (PTIMEOUT + 5) * 1000);
    // past its deadline, but b's connection holds it: retried every 60 s
    expect(templates([a, b]).length).toBe(1);
    expect(a.conns.rec[tpl.id * CONN_WORDS + CONN_CONTROL]).toBe(1);
    // b's connection established: the template (a's) is ASSURED
    expect(a.conns.rec[tpl.id * CONN_WORDS + CONN_FLAGS] & CF_ASSURED).toBe(CF_ASSURED);
    advance([a, b], 900_000 - (PTIMEOUT + 5) * 1000 + 1_000); // b's connection expires
    expect(conns([a, b]).length).toBe(0);
    advance([a, b], 61_000);
    expect(templates([a, b]).length).toBe(0);
  });

  test("a client that comes back after its template expired is scheduled afresh, still one template", () => {
    const [a, b] = workers(2, dr);
    a.one(req(40000, SYN));
    advance([a, b], (PTIMEOUT + 70) * 1000);
    expect(templates([a, b]).length).toBe(0);
    b.one(req(40001, SYN));
    b.one(req(40002, SYN));
    a.one(req(40003, SYN));
    const tpls = templates([a, b]);
    expect(tpls.length).toBe(1);
    expect(tpls[0].control).toBe(3);
    expect(records(b.conns).some((r) => r.flags & CF_TEMPLATE)).toBe(true);
  });
});

describe("references and ends (ip_vs_control_add / expire)", () => {
  test("acquire counts, kill ends only a template that controls nothing, and no reference is taken after", () => {
    const t = new ConnTable(16, 1);
    const id = t.alloc();
    t.rec[id * CONN_WORDS + CONN_FLAGS] |= CF_TEMPLATE;
    expect(acquire(t.rec, id)).toBe(true);
    expect(kill(t.rec, id)).toBe(false);
    Atomics.sub(t.rec, id * CONN_WORDS + CONN_CONTROL, 1);
    expect(kill(t.rec, id)).toBe(true);
    expect(t.rec[id * CONN_WORDS + CONN_CONTROL]).toBe(TEMPLATE_DEAD);
    expect(acquire(t.rec, id)).toBe(false);
  });

  test("a record released and reused as a connection is not a template: the reference is given back", () => {
    const t = new ConnTable(16, 1);
    const id = t.alloc(); // CF_USED, not a template
    expect(acquire(t.rec, id)).toBe(false);
    expect(t.rec[id * CONN_WORDS + CONN_CONTROL]).toBe(0);
  });

  test("peer links round-trip every worker and id the table can hold", () => {
    for (const [w, id] of [
      [0, 0],
      [1, 5],
      [63, (1 << 24) - 2],
    ])
      expect([linkWorker(peerLink(w, id)), linkId(peerLink(w, id)), peerLink(w, id) < 0]).toEqual([w, id, true]);
  });

  test("a worker whose peer's template is being ended schedules afresh and makes its own", () => {
    const [a, b] = workers(2, dr);
    a.one(req(40000, SYN));
    advance([a, b], 61_000); // the connection goes; the template controls nothing
    const tpl = templates([a, b])[0];
    // the owner's timer ends it (0 -> DEAD) just before b looks: b must not link to it
    expect(kill(a.conns.rec, tpl.id)).toBe(true);
    b.one(req(40001, SYN));
    expect(records(b.conns).filter((r) => r.flags & CF_TEMPLATE).length).toBe(1);
    expect(conns([b])[0].control).toBeGreaterThan(0);
  });
});

describe("a restart keeps the links (conn/persist.ts collectAll)", () => {
  test("a connection linked to another worker's template is saved with it, linked there; adoption counts it on the template", () => {
    const [a, b] = workers(2, dr);
    a.one(req(40000, SYN));
    b.one(req(40001, SYN));
    b.one(req(40002, SYN));
    const saved = collectAll([a, b].map((h) => ({ rec: h.conns.rec, high: h.conns.header[HDR_HIGH] })));
    // a's queue: the template, a's connection and b's two; b's queue: nothing left
    expect(saved.map((q) => q.length / CONN_WORDS)).toEqual([4, 0]);
    const q = saved[0];
    const tplAt = [0, 1, 2, 3].find((i) => q[i * CONN_WORDS + CONN_FLAGS] & CF_TEMPLATE)!;
    for (let i = 0; i < 4; i++) if (i !== tplAt) expect(q[i * CONN_WORDS + CONN_CONTROL]).toBe(tplAt + 1);
    const t = a.apply();
    const plan = planAdoption(
      {
        header: {
          layout: layoutVersion(),
          build: "test",
          netns: { cookie: null, inode: "1", boot: "b" },
          epochMs: 0,
          savedMs: 0,
          ports: ["p0", "p1"],
          ...tableKeys(t),
          queues: [],
        },
        queues: saved,
      },
      t,
      ["p0", "p1"],
      a.fp.now * 10,
    );
    expect(plan.kept).toBe(4);
    expect(plan.queues[0][tplAt * CONN_WORDS + CONN_CONTROL]).toBe(3);
  });
});
