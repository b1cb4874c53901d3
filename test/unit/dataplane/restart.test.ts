/**
 * A restart's hand-over through the fast path (dataplane/restart.ts): connections a worker made
 * are saved to a file, a new worker whose model numbers the same service and real server
 * differently adopts them, and their next packets (client's and real server's) are forwarded as
 * before, without a new connection; the counts on the real server are rebuilt.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { adoptedFor, installAdopted, saveTables, takeSavedTable } from "../../../src/dataplane/restart.ts";
import { CF_TEMPLATE, CONN_CONTROL, CONN_FLAGS, CONN_WORDS } from "../../../src/conn/table.ts";
import { ACK, PacketBuilder, SYN } from "../../util/packet.ts";
import { GATEWAY_MAC, Harness, PORT_MACS, realMac } from "../../util/harness.ts";

const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2",
  RS = "198.18.17.2";
const SPEC = { weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const dir = mkdtempSync(join(tmpdir(), "xvs-restart-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function req(sport: number, flags: number): Uint8Array {
  return new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).tcp({ sport, dport: 80, flags }).build();
}
function rep(h: Harness, cport: number, flags: number): Uint8Array {
  const destId = h.model.allDests().find((d) => d.spec.address === RS)!.id;
  return new PacketBuilder().eth(PORT_MACS[1], realMac(destId)).ipv4({ src: RS, dst: CLIENT }).tcp({ sport: 8080, dport: cport, flags }).build();
}
function nat(h: Harness, extraFirst: boolean): void {
  // the new daemon's model has another service and real server first: other ids for the same keys
  if (extraFirst) {
    h.model.addService({ protocol: "tcp", address: "198.18.0.99", port: 443, scheduler: "rr", onePacket: false, schedFlags: [] });
    h.model.addDest({ protocol: "tcp", address: "198.18.0.99", port: 443 }, { address: "198.18.17.9", port: 443, forward: "masq", ...SPEC });
  }
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
  h.model.addDest({ protocol: "tcp", address: VIP, port: 80 }, { address: RS, port: 8080, forward: "masq", ...SPEC });
}

describe("restart hand-over", () => {
  test("saved NAT connections are adopted under new ids and forwarded both ways without a new connection", () => {
    const a = new Harness({ seed: 1 });
    nat(a, false);
    a.apply();
    for (const p of [40000, 40001, 40002]) {
      expect(a.one(req(p, SYN)).port).toBe(1);
      expect(a.one(rep(a, p, SYN | ACK), 1).port).toBe(0);
      expect(a.one(req(p, ACK)).port).toBe(1);
    }
    const file = join(dir, "conns.bin");
    const epochMs = Date.now();
    expect(saveTables([a.conns], a.fp.tables, new Int32Array(a.nhBuffer), ["eth0", "eth1"], epochMs, file)).toBe(3);

    const b = new Harness({ seed: 2 });
    nat(b, true);
    b.apply();
    const plan = takeSavedTable(b.fp.tables, ["eth0", "eth1"], file)!;
    expect(plan).not.toBeNull();
    expect([plan.kept, plan.expired, plan.unknown]).toEqual([3, 0, 0]);
    expect(takeSavedTable(b.fp.tables, ["eth0", "eth1"], file)).toBeNull(); // adopted once: the file is gone
    expect(installAdopted(b.conns, b.counters, b.fp.tables, b.fp.nh, plan.queues[0], b.fp.now)).toBe(3);
    const destB = b.model.allDests().find((d) => d.spec.address === RS)!.id;
    expect(destB).not.toBe(a.model.allDests().find((d) => d.spec.address === RS)!.id);
    expect(b.counters.active[destB]).toBe(3);

    const before = b.stats();
    for (const p of [40000, 40001, 40002]) {
      expect(b.one(req(p, ACK)).port).toBe(1);
      expect(b.one(rep(b, p, ACK), 1).port).toBe(0);
    }
    const d = b.delta(before);
    expect(d.new_conns ?? 0).toBe(0);
    expect(Object.keys(d).filter((k) => k.startsWith("drop"))).toEqual([]);
  });

  test("a connection whose real server is gone from the new table is left out and counted", () => {
    const a = new Harness({ seed: 3 });
    nat(a, false);
    a.apply();
    a.one(req(41000, SYN));
    const file = join(dir, "gone.bin");
    saveTables([a.conns], a.fp.tables, new Int32Array(a.nhBuffer), ["eth0", "eth1"], Date.now(), file);
    const b = new Harness({ seed: 4 });
    b.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [] });
    b.apply();
    const none = takeSavedTable(b.fp.tables, ["eth0", "eth1"], file)!;
    expect([none.kept, none.unknown]).toEqual([0, 1]);
    expect(none.unknownKeys).toEqual([`proto 6 ${VIP}:80 -> ${RS}:8080`]);
    const c = new Harness({ seed: 5 });
    nat(c, false);
    c.apply();
    saveTables([a.conns], a.fp.tables, new Int32Array(a.nhBuffer), ["eth0", "eth1"], Date.now(), file);
    const plan = takeSavedTable(c.fp.tables, ["eth0", "eth1"], file)!;
    expect(plan.kept).toBe(1);
  });

  test("fewer workers than saved: saved worker k goes to worker k mod count, template links shifted with its records", () => {
    // saved worker 0: one connection; saved worker 1: a template (index 0) and a connection it controls (link 1)
    const w0 = new Int32Array(CONN_WORDS);
    const w1 = new Int32Array(2 * CONN_WORDS);
    w1[CONN_FLAGS] = CF_TEMPLATE;
    w1[CONN_WORDS + CONN_CONTROL] = 1;
    const one = adoptedFor([w0, w1], 0, 1)!;
    expect(one.length).toBe(3 * CONN_WORDS);
    expect(one[2 * CONN_WORDS + CONN_CONTROL]).toBe(2); // the template now sits at index 1
    expect(one[CONN_WORDS + CONN_CONTROL]).toBe(0); // a template's own count is not a link
    expect(adoptedFor([w0, w1], 1, 2)).toBe(w1); // same count: worker k takes saved worker k as it is
    expect(adoptedFor([w0], 1, 2)).toBeUndefined();
    expect(adoptedFor(null, 0, 1)).toBeUndefined();
  });
});
