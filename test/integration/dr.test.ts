/**
 * DR end to end: real TCP and UDP from a client through xvs to real servers on the
 * director's L2 segment that hold the VIP on lo (arp_ignore=1, arp_announce=2) and answer the
 * client directly. tcpdump on a real server and on the client shows that only the Ethernet
 * destination (the real server's MAC), the TTL and the IPv4 header checksum change: the L4
 * header and payload arrive byte for byte as the client sent them, but for a TCP checksum the
 * client's kernel left partial for veth's offload (the lab keeps default offloads), which xvs
 * completes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { l4ChecksumField, pseudoFold } from "../util/packet.ts";
import {
  buildDirectorLab,
  CLIENT_ADDR,
  CLIENT_ADDR6,
  directReturn,
  LAB_VIP,
  LAB_VIP6,
  realAddr,
  realAddr6,
  type DirectorLab,
} from "../../src/tools/lab/topology.ts";
import {
  apiOk,
  Capture,
  checksumErrors,
  curlCount,
  decodeFrame,
  type FrameView,
  HeldConnection,
  httpGet,
  macOf,
  requireRoot,
  serveOn,
  stopLab,
  udpAsk,
  verdictsOf,
} from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;

async function drService(proto: "tcp" | "udp", addr: string, port: number, reals: string[]): Promise<void> {
  await apiOk(xvs, "POST", "/v1/services", { protocol: proto, address: addr, port, scheduler: "rr" });
  const id = `${proto}:${addr.includes(":") ? `[${addr}]` : addr}:${port}`;
  for (const r of reals) await apiOk(xvs, "POST", `/v1/services/${id}/dests`, { address: r, port, forward: "route", weight: 1 });
}

/** TCP and UDP frames of the client's flows to the VIP in a capture. */
function clientFrames(raw: Uint8Array[], vip: string): FrameView[] {
  return raw.map((f) => decodeFrame(f)).filter((f) => f !== null && f.outer.dst === vip && (f.outer.proto === 6 || f.outer.proto === 17)) as FrameView[];
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("dr", { reals: 3, ipv6: true });
  await directReturn(L.lab, L.director, L.reals, [LAB_VIP, LAB_VIP6]);
  for (const h of L.reals) {
    await serveOn(L.lab, h, ["--http", "80", "--tcp", "7000", "--addr", "::"]);
    // UDP answers must come from the VIP: bind to it (an unbound socket answers from the host's address)
    await serveOn(L.lab, h, ["--udp", "9000", "--addr", LAB_VIP]);
  }
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
  await drService("tcp", LAB_VIP, 80, [realAddr(1), realAddr(2), realAddr(3)]);
  await drService("tcp", LAB_VIP, 7000, [realAddr(1), realAddr(2), realAddr(3)]);
  await drService("udp", LAB_VIP, 9000, [realAddr(1), realAddr(2), realAddr(3)]);
  await drService("tcp", LAB_VIP6, 80, [realAddr6(1), realAddr6(2), realAddr6(3)]);
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("DR through AF_XDP", () => {
  test("60 HTTP connections split 20/20/20; replies come straight from the real servers, never through xvs", async () => {
    const before = await verdictsOf(xvs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 3);
    expect(r.errors).toEqual([]);
    expect(r.byServer).toEqual({ rs1: 20, rs2: 20, rs3: 20 });
    const after = await verdictsOf(xvs);
    const fwd = after.fwd_in - before.fwd_in;
    expect(fwd).toBeGreaterThanOrEqual(60 * 5);
    expect(after.fwd_dr - before.fwd_dr).toBe(fwd);
    expect(after.fwd_out - before.fwd_out).toBe(0);
    const svc = (await apiOk(xvs, "GET", `/v1/services/tcp:${LAB_VIP}:80`)) as { stats: { conns: number; inpkts: number; outpkts: number } };
    expect(svc.stats.conns).toBe(60);
    expect(svc.stats.outpkts).toBe(0); // DR: replies bypass the director (ip_vs_out_stats never runs)
  }, 60_000);

  test("on the wire: the real server's MAC, VIP kept, TTL - 1, IPv4 and L4 checksums valid", async () => {
    const rsMac = await macOf(L.lab, L.reals[0], "eth0"),
      dirMac = await macOf(L.lab, L.director, "s0");
    const atClient = await Capture.start(L.lab, L.client, "eth0");
    const atRs = await Capture.start(L.lab, L.reals[0], "eth0");
    // rr over three: one of three consecutive connections lands on rs1
    const held: HeldConnection[] = [];
    const replies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7000);
      held.push(c);
      replies.push(await c.ask(`hello over DR ${i}`));
    }
    for (const c of held) c.close();
    expect(replies.filter((r) => r.startsWith("rs1 hello over DR")).length).toBe(1);
    const sent = clientFrames(await atClient.stop(), LAB_VIP);
    const got = clientFrames(await atRs.stop(), LAB_VIP);
    expect(sent.length).toBeGreaterThanOrEqual(9);
    expect(got.length).toBeGreaterThanOrEqual(3);
    for (const f of got) {
      expect([f.dstMac, f.srcMac]).toEqual([rsMac, dirMac]);
      expect(f.tunnel).toBeNull();
      expect(f.outer).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, headerOk: true });
      expect(f.l4ChecksumOk).toBe(true);
      // the client sent it with TTL 64
      expect(sent.some((s) => s.sport === f.sport && s.outer.ttl === 64)).toBe(true);
    }
  }, 60_000);

  test("byte for byte: each frame the real server got is the client's frame but for MACs, TTL, IP checksum and a completed TCP checksum", async () => {
    const atClient = await Capture.start(L.lab, L.client, "eth0");
    const atRs = L.reals.map((h) => Capture.start(L.lab, h, "eth0"));
    const caps = await Promise.all(atRs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 6, 1);
    expect(r.ok).toBe(6);
    const rawSent = (await atClient.stop()).filter((f) => decodeFrame(f)?.outer.dst === LAB_VIP);
    const rawGot = (await Promise.all(caps.map((c) => c.stop()))).flat().filter((f) => decodeFrame(f)?.outer.dst === LAB_VIP);
    // six connections, each at least a SYN and a request: an empty pair of captures must fail here,
    // not pass the loop below by having nothing to compare
    expect(rawSent.length).toBeGreaterThanOrEqual(6 * 2);
    expect(rawGot.length).toBe(rawSent.length);
    // the whole TCP segment but its checksum: the client's capture shows the field as its kernel
    // left it for veth's offload (the folded pseudo-header sum), xvs completes it
    const key = (f: Uint8Array) => Buffer.from([...f.subarray(14 + 20)].map((b, i) => (i === 16 || i === 17 ? 0 : b))).toString("hex");
    const sentBy = new Map(rawSent.map((f) => [key(f), f]));
    let completed = 0;
    for (const g of rawGot) {
      const s = sentBy.get(key(g));
      expect(s).toBeDefined();
      // IPv4 header: identical but TTL (byte 8) and checksum (10-11)
      const ip = (f: Uint8Array) => [...f.subarray(14, 34)].filter((_, i) => i !== 8 && i !== 10 && i !== 11);
      expect(ip(g)).toEqual(ip(s!));
      expect(g[14 + 8]).toBe(s![14 + 8] - 1);
      // the TCP checksum: verifies at the real server; equal to the client's, or the client's was partial
      expect(decodeFrame(g)!.l4ChecksumOk).toBe(true);
      if (l4ChecksumField(g) !== l4ChecksumField(s!)) {
        expect(l4ChecksumField(s!)).toBe(pseudoFold(s!));
        completed++;
      }
    }
    process.stdout.write(`  ${completed} of ${rawGot.length} segments arrived with the checksum xvs completed\n`);
  }, 60_000);

  test("UDP request/response over DR: every answer comes from VIP:9000", async () => {
    const r = await udpAsk(L.lab, L.client, LAB_VIP, 9000, 30);
    expect(r.failed).toBe(0);
    expect(r.byServer).toEqual({ rs1: 10, rs2: 10, rs3: 10 });
  }, 60_000);

  test("IPv6 over DR: hop limit - 1, the real server's MAC, the VIP kept", async () => {
    const atRs = await Capture.start(L.lab, L.reals[0], "eth0");
    const by = await curlCount(L.lab, L.client, `http://[${LAB_VIP6}]:80/`, 9);
    const got = clientFrames(await atRs.stop(), LAB_VIP6);
    expect(by).toEqual({ rs1: 3, rs2: 3, rs3: 3 });
    expect(got.length).toBeGreaterThanOrEqual(9);
    for (const f of got) {
      expect(f.outer).toMatchObject({ version: 6, src: CLIENT_ADDR6, dst: LAB_VIP6, ttl: 63 });
      expect(f.l4ChecksumOk).toBe(true);
    }
  }, 60_000);

  test("DR connections are NOOUTPUT (INPUT_ONLY states): closed ones sit in FIN_WAIT, never TIME_WAIT", async () => {
    const r = (await apiOk(xvs, "GET", "/v1/conns?limit=1000")) as { conns: { protocol: string; state: string; forward: string }[] };
    const dr = r.conns.filter((c) => c.protocol === "TCP" && c.forward === "route");
    expect(dr.length).toBeGreaterThanOrEqual(60);
    // the real server's FIN never passes the director: the client's FIN takes ESTABLISHED to
    // FIN_WAIT (INPUT_ONLY table), where NAT would reach TIME_WAIT with both FINs seen
    const states = new Set(dr.map((c) => c.state));
    expect(states.has("TIME_WAIT")).toBe(false);
    expect(states.has("FIN_WAIT")).toBe(true);
  }, 30_000);

  test("default offloads: the client's partial checksums were completed, and no receiver counted a checksum error", async () => {
    expect((await verdictsOf(xvs)).csum_partial_completed).toBeGreaterThan(0);
    expect(await checksumErrors(L.lab, L.client)).toBe(0);
    for (const h of L.reals) expect(await checksumErrors(L.lab, h)).toBe(0);
  }, 30_000);
});
