/**
 * ICMP errors about tracked connections, end to end: real sockets on both sides decide
 * whether the translation was right, since a kernel only matches an ICMP error to a socket when
 * the quoted packet names that socket exactly.
 *
 * - A NAT real server's "port unreachable" reaches the client as from VIP:port: the client's
 *   connected UDP socket gets ECONNREFUSED.
 * - A "fragmentation needed" from the client's side about a reply reaches the real server
 *   (translated for NAT, as it is for DR): the real server's TCP socket lowers its path MTU.
 * - Errors about no connection, and corrupt ones, are counted and go nowhere.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, CLIENT_ADDR, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { checksum } from "../../src/wire/checksum.ts";
import { apiOk, Capture, decodeFrame, eventually, HeldConnection, injectIp, requireRoot, serveOn, stopLab, verdictsOf } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;

function be16(v: number): number[] {
  return [(v >>> 8) & 255, v & 255];
}
function addr4(s: string): number[] {
  return s.split(".").map(Number);
}

/** The ICMP message (type, code, rest word) quoting an IPv4 header + the first 8 TCP bytes. */
function icmpAboutTcp(
  type: number,
  code: number,
  rest: number,
  src: string,
  sport: number,
  dst: string,
  dport: number,
  seq: number,
  badSum = false,
): Uint8Array {
  const ip = [0x45, 0, ...be16(40), 0, 0, 0x40, 0, 63, 6, 0, 0, ...addr4(src), ...addr4(dst)];
  const c = checksum(new Uint8Array(ip), 0, 20);
  ip[10] = c >>> 8;
  ip[11] = c & 255;
  const tcp = [...be16(sport), ...be16(dport), (seq >>> 24) & 255, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255];
  const m = new Uint8Array([type, code, 0, 0, (rest >>> 24) & 255, (rest >>> 16) & 255, (rest >>> 8) & 255, rest & 255, ...ip, ...tcp]);
  const s = checksum(m, 0, m.length) ^ (badSum ? 0x1111 : 0);
  m[2] = s >>> 8;
  m[3] = s & 255;
  return m;
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("icmp", { reals: 2 });
  await directReturn(L.lab, L.director, [L.reals[1]], [LAB_VIP]);
  await serveOn(L.lab, L.reals[0], ["--tcp", "7000"]);
  await serveOn(L.lab, L.reals[1], ["--tcp", "7001"]);
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
  await apiOk(xvs, "POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: 9100, scheduler: "rr" });
  await apiOk(xvs, "POST", `/v1/services/udp:${LAB_VIP}:9100/dests`, { address: realAddr(1), port: 9100, forward: "masq", weight: 1 });
  await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7000, scheduler: "rr" });
  await apiOk(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:7000/dests`, { address: realAddr(1), port: 7000, forward: "masq", weight: 1 });
  await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 7001, scheduler: "rr" });
  await apiOk(xvs, "POST", `/v1/services/tcp:${LAB_VIP}:7001/dests`, { address: realAddr(2), port: 7001, forward: "route", weight: 1 });
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

/**
 * Hold a connection to VIP:port, exchange a line, and read from a capture at the client the
 * client's port and the server's next sequence number (what a quoted reply must carry).
 */
async function heldWithSeq(port: number): Promise<{ conn: HeldConnection; cport: number; serverNext: number }> {
  const cap = await Capture.start(L.lab, L.client, "eth0");
  const conn = await HeldConnection.open(L.lab, L.client, LAB_VIP, port);
  await conn.ask("hello");
  const frames = (await cap.stop()).map((f) => ({ f, d: decodeFrame(f) })).filter((x) => x.d?.outer.src === LAB_VIP && x.d.sport === port);
  const last = frames[frames.length - 1];
  const dv = new DataView(last.f.buffer, last.f.byteOffset);
  const tcp = last.d!.inner.payload;
  const seq = dv.getUint32(tcp + 4),
    doff = (last.f[tcp + 12] >>> 4) * 4;
  const len = last.d!.inner.length - 20 - doff;
  const syn = (last.f[tcp + 13] & 0x02) !== 0 ? 1 : 0,
    fin = (last.f[tcp + 13] & 0x01) !== 0 ? 1 : 0;
  return { conn, cport: last.d!.dport, serverNext: (seq + len + syn + fin) >>> 0 };
}

async function routeMtuTo(host: string, dst: string): Promise<number> {
  const r = await L.lab.exec(host, ["ip", "route", "get", dst]);
  const m = /mtu (\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

describe("ICMP errors through xvs", () => {
  test("a NAT real server's port unreachable reaches the client as from VIP:9100: its UDP socket gets ECONNREFUSED", async () => {
    const before = await verdictsOf(xvs);
    const cap = await Capture.start(L.lab, L.client, "eth0");
    const r = await L.lab.exec(L.client, ["bash", "-c", `echo hi | socat -T3 STDIO UDP4:${LAB_VIP}:9100`], true);
    const icmp = (await cap.stop()).filter((f) => decodeFrame(f)?.outer.proto === 1);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Connection refused");
    expect(icmp.length).toBe(1);
    const f = icmp[0],
      d = decodeFrame(f)!;
    expect(d.outer).toMatchObject({ src: LAB_VIP, dst: CLIENT_ADDR, ttl: 63, headerOk: true });
    const ic = d.outer.payload;
    expect([f[ic], f[ic + 1]]).toEqual([3, 3]);
    expect(checksum(f, ic, d.outer.length - 20)).toBe(0);
    const quoted = decodeFrame(new Uint8Array([...f.subarray(0, 14), ...f.subarray(ic + 8)]))!;
    expect(quoted.outer).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, proto: 17, headerOk: true });
    expect(quoted.dport).toBe(9100);
    const after = await verdictsOf(xvs);
    expect(after.icmp_forwarded - before.icmp_forwarded).toBe(1);
  }, 30_000);

  test("NAT: fragmentation needed from the client's side about a reply lowers the real server's path MTU", async () => {
    const { conn, cport, serverNext } = await heldWithSeq(7000);
    expect(await routeMtuTo(L.reals[0], CLIENT_ADDR)).toBe(0);
    const before = await verdictsOf(xvs);
    const rsCap = await Capture.start(L.lab, L.reals[0], "eth0");
    await injectIp(L.lab, L.client, LAB_VIP, 1, icmpAboutTcp(3, 4, 1000, LAB_VIP, 7000, CLIENT_ADDR, cport, serverNext));
    const seen = (await rsCap.stop()).map((f) => decodeFrame(f)).filter((d) => d?.outer.proto === 1);
    expect((await verdictsOf(xvs)).icmp_forwarded - before.icmp_forwarded).toBe(1);
    expect(seen.length).toBe(1);
    expect(seen[0]!.outer).toMatchObject({ src: CLIENT_ADDR, dst: realAddr(1), headerOk: true });
    // the real server's TCP matched it to its socket (RIP:7000 <-> client:cport) and believed it
    expect(await routeMtuTo(L.reals[0], CLIENT_ADDR)).toBe(1000);
    conn.close();
  }, 30_000);

  test("DR: the same error is forwarded unchanged to the DR real server, whose socket takes it", async () => {
    const { conn, cport, serverNext } = await heldWithSeq(7001);
    const rsCap = await Capture.start(L.lab, L.reals[1], "eth0");
    await injectIp(L.lab, L.client, LAB_VIP, 1, icmpAboutTcp(3, 4, 1100, LAB_VIP, 7001, CLIENT_ADDR, cport, serverNext));
    const seen = (await rsCap.stop()).map((f) => decodeFrame(f)).filter((d) => d?.outer.proto === 1);
    expect(seen.length).toBe(1);
    expect(seen[0]!.outer).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, headerOk: true });
    expect(await routeMtuTo(L.reals[1], CLIENT_ADDR)).toBe(1100);
    conn.close();
  }, 30_000);

  test("errors about no connection, and corrupt ones, are counted and forwarded nowhere", async () => {
    const before = await verdictsOf(xvs);
    await injectIp(L.lab, L.client, LAB_VIP, 1, icmpAboutTcp(3, 4, 1000, LAB_VIP, 7000, CLIENT_ADDR, 1, 0));
    await injectIp(L.lab, L.client, LAB_VIP, 1, icmpAboutTcp(3, 4, 1000, LAB_VIP, 7000, CLIENT_ADDR, 2, 0, true));
    // until both are counted (a fixed 300 ms was too short for a loaded machine)
    const after = await eventually(
      () => verdictsOf(xvs),
      (v) => v.drop_icmp_no_conn - before.drop_icmp_no_conn >= 1 && v.drop_icmp_malformed - before.drop_icmp_malformed >= 1,
    );
    expect(after.drop_icmp_no_conn - before.drop_icmp_no_conn).toBe(1);
    expect(after.drop_icmp_malformed - before.drop_icmp_malformed).toBe(1);
    expect(after.icmp_forwarded - before.icmp_forwarded).toBe(0);
  }, 30_000);
});
