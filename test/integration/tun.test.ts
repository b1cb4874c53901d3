/**
 * TUN end to end: real TCP and UDP from a client through xvs to real servers on another
 * subnet, behind a router, reached through the routing table only, each running the XDP decap
 * helper (this kernel has no ipip, fou or ip_gre) with the VIP on lo. One service per tunnel
 * type (ipip, gue on a non-default port, gre with checksums), UDP over all three, IPv6 over GUE
 * and IPv4 over an IPv6 tunnel. tcpdump on the router's director-facing interface checks every
 * outer and inner header field the kernel sets; tcpdump on a real server sees the packet after
 * the decap helper.
 *
 *   client ── dir (xvs) ── sw/br0 ── rt ── sw/br1 ── tr1, tr2, tr3 (198.18.3.11-13)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import {
  buildDirectorLab,
  CLIENT_ADDR,
  CLIENT_ADDR6,
  DIRECTOR_SERVER_ADDR,
  directReturn,
  LAB_VIP,
  LAB_VIP6,
  remoteAddr,
  remoteAddr6,
  type DirectorLab,
} from "../../src/tools/lab/topology.ts";
import {
  apiOk,
  Capture,
  checksumErrors,
  curlCount,
  decap,
  decapStats,
  decodeFrame,
  type FrameView,
  httpGet,
  injectIp,
  macOf,
  requireRoot,
  serveOn,
  stopLab,
  udpAsk,
  udpSend,
  verdictsOf,
} from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;
let tr: string[];

const svcPath = (proto: string, addr: string, port: number) => `/v1/services/${proto}:${addr.includes(":") ? `[${addr}]` : addr}:${port}`;

async function service(proto: "tcp" | "udp", addr: string, port: number, dests: { address: string; tunnel: Record<string, unknown> }[]): Promise<void> {
  await apiOk(xvs, "POST", "/v1/services", { protocol: proto, address: addr, port, scheduler: "rr" });
  for (const d of dests)
    await apiOk(xvs, "POST", `${svcPath(proto, addr, port)}/dests`, { address: d.address, port, forward: "tunnel", weight: 1, tunnel: d.tunnel });
}

/**
 * A lab real server: HTTP on `http` on every address (IPv4 and IPv6), or UDP echo on 9000 bound to
 * the VIP (an unbound UDP socket would answer from the server's own address, not the VIP).
 */
async function serve(host: string, http: number | "udp"): Promise<void> {
  const what = http === "udp" ? ["--udp", "9000", "--addr", LAB_VIP] : ["--http", String(http), "--addr", "::"];
  await serveOn(L.lab, host, what);
}

/** Tunnel packets the director sent, decoded (the capture also sees replies, ARP, NDP). */
function tunnelFrames(raw: Uint8Array[], guePorts = [6080]): FrameView[] {
  return raw
    .map((f) => decodeFrame(f, guePorts))
    .filter((f) => f !== null && f.tunnel !== null && (f.outer.src === DIRECTOR_SERVER_ADDR || f.outer.src === "2001:db8:2::1")) as FrameView[];
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("tun", { reals: 0, routedReals: 3, ipv6: true });
  tr = L.remoteReals!;
  await directReturn(L.lab, L.director, tr, [LAB_VIP, LAB_VIP6]);
  await decap(L.lab, tr[0], ["attach", "eth0"]);
  await decap(L.lab, tr[1], ["attach", "eth0", "--gue-port", "7080"]);
  await decap(L.lab, tr[2], ["attach", "eth0"]);
  await serve(tr[0], 80);
  await serve(tr[1], 81);
  await serve(tr[2], 82);
  for (const h of tr) await serve(h, "udp");
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
  await service("tcp", LAB_VIP, 80, [{ address: remoteAddr(1), tunnel: { type: "ipip" } }]);
  await service("tcp", LAB_VIP, 81, [{ address: remoteAddr(2), tunnel: { type: "gue", port: 7080, csum: "csum" } }]);
  await service("tcp", LAB_VIP, 82, [{ address: remoteAddr(3), tunnel: { type: "gre", csum: "csum" } }]);
  await service("udp", LAB_VIP, 9000, [
    { address: remoteAddr(1), tunnel: { type: "ipip" } },
    { address: remoteAddr(2), tunnel: { type: "gue", port: 7080, csum: "nocsum" } },
    { address: remoteAddr(3), tunnel: { type: "gre", csum: "nocsum" } },
  ]);
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("TUN to real servers behind a router", () => {
  test("ipip: 30 HTTP connections succeed; every outer header is the kernel's (source = route source, TTL, DF, TOS, ID 0)", async () => {
    const routerMac = await macOf(L.lab, "rt", "r0"),
      dirMac = await macOf(L.lab, L.director, "s0");
    const cap = await Capture.start(L.lab, "rt", "r0");
    const before = await verdictsOf(xvs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 30, 3);
    const frames = tunnelFrames(await cap.stop());
    const after = await verdictsOf(xvs);
    // one comparison for the whole outcome, so that a failure shows every part of it at once
    const delta = (k: string) => after[k] - before[k];
    expect({ errors: r.errors, byServer: r.byServer, enoughFrames: frames.length >= 30 * 4, fwdTun: delta("fwd_tun"), fwdIn: delta("fwd_in") }).toEqual({
      errors: [],
      byServer: { tr1: 30 },
      enoughFrames: true,
      fwdTun: frames.length,
      fwdIn: frames.length,
    }); // SYN, ACK, request, ACK, FIN... per connection
    for (const f of frames) {
      expect([f.dstMac, f.srcMac]).toEqual([routerMac, dirMac]);
      expect(f.tunnel?.kind).toBe("ipip");
      expect(f.outer).toMatchObject({ version: 4, src: DIRECTOR_SERVER_ADDR, dst: remoteAddr(1), proto: 4, ttl: 63, df: true, id: 0, tos: 0, headerOk: true });
      expect(f.outer.length).toBe(f.inner.length + 20);
      expect(f.inner).toMatchObject({ version: 4, src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, df: true, headerOk: true });
      expect(f.dport).toBe(80);
      expect(f.l4ChecksumOk).toBe(true);
    }
    expect((await decapStats(L.lab, tr[0])).ipip).toBeGreaterThanOrEqual(frames.length);
  }, 60_000);

  test("gue on port 7080 with checksums and gre with checksums carry real connections; their headers are the kernel's", async () => {
    const cap = await Capture.start(L.lab, "rt", "r0");
    const g = await httpGet(L.lab, L.client, LAB_VIP, 81, 20, 2);
    const e = await httpGet(L.lab, L.client, LAB_VIP, 82, 20, 2);
    const frames = tunnelFrames(await cap.stop(), [7080]);
    expect(g.byServer).toEqual({ tr2: 20 });
    expect(e.byServer).toEqual({ tr3: 20 });
    const gue = frames.filter((f) => f.tunnel?.kind === "gue"),
      gre = frames.filter((f) => f.tunnel?.kind === "gre");
    expect(gue.length).toBeGreaterThanOrEqual(80);
    expect(gre.length).toBeGreaterThanOrEqual(80);
    const sportsBySrc = new Map<number, Set<number>>();
    for (const f of gue) {
      expect(f.outer).toMatchObject({ src: DIRECTOR_SERVER_ADDR, dst: remoteAddr(2), proto: 17, ttl: 63, df: true, id: 0, headerOk: true });
      expect(f.tunnel).toMatchObject({ dport: 7080, udpChecksumOk: true, headerBytes: [0, 4, 0, 0] });
      expect(f.tunnel!.udpChecksum).not.toBe(0);
      expect(f.tunnel!.sport!).toBeGreaterThanOrEqual(32768);
      expect(f.tunnel!.sport!).toBeLessThan(60999);
      expect(f.outer.length).toBe(f.inner.length + 32);
      expect(f.inner).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, headerOk: true });
      expect(f.l4ChecksumOk).toBe(true);
      const s = sportsBySrc.get(f.sport) ?? new Set<number>();
      s.add(f.tunnel!.sport!);
      sportsBySrc.set(f.sport, s);
    }
    // one outer source port per connection (udp_flow_src_port over the flow hash), many over all
    for (const s of sportsBySrc.values()) expect(s.size).toBe(1);
    expect(new Set([...sportsBySrc.values()].map((s) => [...s][0])).size).toBeGreaterThan(10);
    for (const f of gre) {
      expect(f.outer).toMatchObject({ src: DIRECTOR_SERVER_ADDR, dst: remoteAddr(3), proto: 47, ttl: 63, df: true, id: 0, headerOk: true });
      expect(f.tunnel).toMatchObject({ greFlags: 0x8000, greChecksumOk: true });
      expect(f.tunnel!.headerBytes.slice(0, 4)).toEqual([0x80, 0, 0x08, 0]);
      expect(f.outer.length).toBe(f.inner.length + 28);
      expect(f.inner).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, headerOk: true });
    }
    expect((await decapStats(L.lab, tr[1])).gue).toBeGreaterThanOrEqual(gue.length);
    expect((await decapStats(L.lab, tr[2])).gre).toBeGreaterThanOrEqual(gre.length);
  }, 60_000);

  test("UDP over all three tunnels: DSCP copied, CE becomes ECT(0) outside and stays CE inside after decap", async () => {
    // the client marks its datagrams AF21 + CE
    await L.lab.exec(L.client, ["nft", "add", "table", "ip", "xvsmark"]);
    await L.lab.exec(L.client, ["nft", "add", "chain", "ip", "xvsmark", "out", "{ type filter hook output priority 0 ; }"]);
    await L.lab.exec(L.client, ["nft", "add", "rule", "ip", "xvsmark", "out", "udp", "dport", "9000", "ip", "dscp", "set", "af21", "ip", "ecn", "set", "ce"]);
    const onRouter = await Capture.start(L.lab, "rt", "r0");
    const onRs = await Capture.start(L.lab, tr[0], "eth0");
    const r = await udpAsk(L.lab, L.client, LAB_VIP, 9000, 30);
    const outer = tunnelFrames(await onRouter.stop(), [7080]).filter((f) => f.inner.proto === 17 && f.dport === 9000);
    const decapped = (await onRs.stop()).map((f) => decodeFrame(f)).filter((f) => f !== null && f.inner.dst === LAB_VIP && f.inner.proto === 17) as FrameView[];
    await L.lab.exec(L.client, ["nft", "delete", "table", "ip", "xvsmark"]);
    expect(r.failed).toBe(0);
    expect(r.byServer).toEqual({ tr1: 10, tr2: 10, tr3: 10 });
    const kinds = new Map<string, number>();
    for (const f of outer) {
      kinds.set(f.tunnel!.kind, (kinds.get(f.tunnel!.kind) ?? 0) + 1);
      expect(f.inner.tos).toBe(0x4b);
      expect(f.outer.tos).toBe(0x4a);
      expect(f.outer.df).toBe(f.inner.df);
      expect(f.outer.ttl).toBe(f.inner.ttl);
      if (f.tunnel!.kind === "gue") expect(f.tunnel!.udpChecksum).toBe(0); // nocsum
      if (f.tunnel!.kind === "gre") expect(f.tunnel!.greFlags).toBe(0);
    }
    expect(Object.fromEntries(kinds)).toEqual({ ipip: 10, gue: 10, gre: 10 });
    // what tr1's stack got from the decap helper: the client's datagram, CE kept, checksums intact
    expect(decapped.length).toBe(10);
    for (const f of decapped) {
      expect(f.outer).toMatchObject({ version: 4, src: CLIENT_ADDR, dst: LAB_VIP, tos: 0x4b, ttl: 63, headerOk: true });
      expect(f.tunnel).toBeNull();
      expect(f.l4ChecksumOk).toBe(true);
    }
  }, 60_000);

  test("without DF the outer header has no DF either and a per-real-server IP ID", async () => {
    await service("udp", LAB_VIP, 9001, [{ address: remoteAddr(1), tunnel: { type: "ipip" } }]);
    await L.lab.exec(L.client, ["nft", "add", "table", "ip", "xvsdf"]);
    await L.lab.exec(L.client, ["nft", "add", "chain", "ip", "xvsdf", "out", "{ type filter hook output priority 0 ; }"]);
    await L.lab.exec(L.client, ["nft", "add", "rule", "ip", "xvsdf", "out", "udp", "dport", "9001", "ip", "frag-off", "set", "0"]);
    const cap = await Capture.start(L.lab, "rt", "r0");
    await udpSend(L.lab, L.client, LAB_VIP, 9001, 5); // tr1 has no UDP server on 9001: only the way there matters
    const frames = tunnelFrames(await cap.stop()).filter((f) => f.dport === 9001);
    await L.lab.exec(L.client, ["nft", "delete", "table", "ip", "xvsdf"]);
    expect(frames.length).toBe(5);
    const ids = frames.map((f) => f.outer.id);
    for (const f of frames) expect([f.outer.df, f.inner.df]).toEqual([false, false]);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe((ids[i - 1] + 1) & 0xffff);
  }, 60_000);

  test("IPv6: a v6 service over GUE to a v6 real server, and a v4 service over IPIP to a v6 address", async () => {
    await service("tcp", LAB_VIP6, 80, [{ address: remoteAddr6(1), tunnel: { type: "gue", port: 6080, csum: "csum" } }]);
    await service("tcp", LAB_VIP, 83, [{ address: remoteAddr6(3), tunnel: { type: "ipip" } }]);
    await serve(tr[2], 83);
    const cap = await Capture.start(L.lab, "rt", "r0");
    const a = await curlCount(L.lab, L.client, `http://[${LAB_VIP6}]:80/`, 10);
    const b = await httpGet(L.lab, L.client, LAB_VIP, 83, 10, 2);
    const frames = tunnelFrames(await cap.stop());
    expect(a).toEqual({ tr1: 10 });
    expect(b.byServer).toEqual({ tr3: 10 });
    const six = frames.filter((f) => f.tunnel?.kind === "gue" && f.dport === 80);
    const fourInSix = frames.filter((f) => f.tunnel?.kind === "ipip" && f.dport === 83);
    expect(six.length).toBeGreaterThanOrEqual(40);
    expect(fourInSix.length).toBeGreaterThanOrEqual(40);
    for (const f of six) {
      expect(f.outer).toMatchObject({ version: 6, src: "2001:db8:2::1", dst: remoteAddr6(1), proto: 17, ttl: 63, flowLabel: 0 });
      expect(f.outer.tos).toBe(f.inner.tos);
      expect(f.tunnel).toMatchObject({ dport: 6080, udpChecksumOk: true, headerBytes: [0, 41, 0, 0] });
      expect(f.inner).toMatchObject({ version: 6, src: CLIENT_ADDR6, dst: LAB_VIP6, ttl: 63 });
      expect(f.l4ChecksumOk).toBe(true);
    }
    for (const f of fourInSix) {
      expect(f.outer).toMatchObject({ version: 6, src: "2001:db8:2::1", dst: remoteAddr6(3), proto: 4, ttl: 63, flowLabel: 0 });
      expect(f.inner).toMatchObject({ version: 4, src: CLIENT_ADDR, dst: LAB_VIP, ttl: 63, headerOk: true });
    }
  }, 60_000);

  test("default offloads: the client's partial checksums were completed before encapsulation; receivers verified every checksum, none failed", async () => {
    expect((await verdictsOf(xvs)).csum_partial_completed).toBeGreaterThan(0);
    expect(await checksumErrors(L.lab, L.client)).toBe(0);
    for (const h of tr) expect(await checksumErrors(L.lab, h)).toBe(0);
  }, 30_000);
});

describe("the ipvsadm view", () => {
  test("ipvsadm -Ln --tun-info shows each real server's tunnel as ipvsadm would", async () => {
    const r = await xvs.adm(["-Ln", "--tun-info", "-u", `${LAB_VIP}:9000`]);
    expect(r.code).toBe(0);
    const rows = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("  -> ") && !l.includes("RemoteAddress"))
      .map((l) => l.trim().split(/\s+/).slice(1, 4));
    expect(rows.sort()).toEqual([
      [`${remoteAddr(1)}:9000`, "Tunnel", "ipip"],
      [`${remoteAddr(2)}:9000`, "Tunnel", "gue:7080:-c"],
      [`${remoteAddr(3)}:9000`, "Tunnel", "gre:-c"],
    ]);
  }, 30_000);
});

describe("the decap helper", () => {
  test("ECN (RFC 6040): CE set on the outer header by a router reaches the inner ECT packet; not-ECT inside is dropped", async () => {
    // the client sends ECT(0) to 9000, not-ECT to 9003; the router marks every IPIP packet CE
    await service("udp", LAB_VIP, 9003, [{ address: remoteAddr(1), tunnel: { type: "ipip" } }]);
    await L.lab.exec(L.client, ["nft", "add", "table", "ip", "xvsecn"]);
    await L.lab.exec(L.client, ["nft", "add", "chain", "ip", "xvsecn", "out", "{ type filter hook output priority 0 ; }"]);
    await L.lab.exec(L.client, ["nft", "add", "rule", "ip", "xvsecn", "out", "udp", "dport", "9000", "ip", "ecn", "set", "ect0"]);
    await L.lab.exec("rt", ["nft", "add", "table", "ip", "xvsce"]);
    await L.lab.exec("rt", ["nft", "add", "chain", "ip", "xvsce", "cemark", "{ type filter hook forward priority 0 ; }"]);
    await L.lab.exec("rt", ["nft", "add", "rule", "ip", "xvsce", "cemark", "ip", "protocol", "4", "ip", "ecn", "set", "ce"]);
    const before = await decapStats(L.lab, tr[0]);
    const onRs = await Capture.start(L.lab, tr[0], "eth0");
    const r = await udpAsk(L.lab, L.client, LAB_VIP, 9000, 3);
    await udpSend(L.lab, L.client, LAB_VIP, 9003, 2);
    const got = (await onRs.stop()).map((f) => decodeFrame(f)).filter((f) => f !== null && f.outer.dst === LAB_VIP && f.outer.proto === 17) as FrameView[];
    await L.lab.exec(L.client, ["nft", "delete", "table", "ip", "xvsecn"]);
    await L.lab.exec("rt", ["nft", "delete", "table", "ip", "xvsce"]);
    expect(r.failed).toBe(0);
    const after = await decapStats(L.lab, tr[0]);
    expect(after.ecn_drop - before.ecn_drop).toBe(2);
    const toTr1 = got.filter((f) => f.dport === 9000);
    expect(toTr1.length).toBe(1); // rr: one of three datagrams went to tr1
    for (const f of toTr1) {
      expect(f.outer.tos & 3).toBe(3); // CE, set by the decap helper
      expect(f.outer.headerOk).toBe(true); // its checksum fixed
      expect(f.l4ChecksumOk).toBe(true);
    }
    expect(got.filter((f) => f.dport === 9003)).toEqual([]);
  }, 60_000);

  test("detach removes the program (the interface has no XDP program left); stats then say it is gone", async () => {
    await decap(L.lab, tr[2], ["detach", "eth0"]);
    const link = await L.lab.exec(tr[2], ["ip", "link", "show", "eth0"]);
    expect(link.stdout).not.toContain("xdp");
    const r = await L.lab.exec(tr[2], [...selfCommand(), "decap", "stats", "eth0"], true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("no xvs decap program");
    // attach again, so that the later tests still have it
    expect(await decap(L.lab, tr[2], ["attach", "eth0"])).toContain("attached to eth0");
  }, 30_000);
});

describe("TUN bad input: counted, never forwarded wrongly", () => {
  test("a real server no route leads to: the client is told host unreachable at once; drop_no_route counted", async () => {
    await service("tcp", LAB_VIP, 84, [{ address: "198.18.9.9", tunnel: { type: "ipip" } }]);
    const before = await verdictsOf(xvs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 84, 1, 1);
    expect(r.failed).toBe(1);
    // an ICMP error, not a timeout: the connect failed before the agent's own 5 s timeout (Bun
    // names the error ECONNREFUSED; the counters below say xvs sent the ICMP error). This was a
    // time under 3 s around the agent, whose own start took more than that on a loaded machine
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toStartWith("Error: connect "); // not "timeout"
    const after = await verdictsOf(xvs);
    expect(after.drop_no_route - before.drop_no_route).toBeGreaterThanOrEqual(1);
    expect(after.icmp_sent - before.icmp_sent).toBe(after.drop_no_route - before.drop_no_route);
    expect(after.fwd_tun - before.fwd_tun).toBe(0);
  }, 30_000);

  test("GUE to a port the real server's helper does not open: its port unreachable reaches the client as the kernel relays it", async () => {
    await service("tcp", LAB_VIP, 85, [{ address: remoteAddr(1), tunnel: { type: "gue", port: 7081 } }]);
    const passBefore = (await decapStats(L.lab, tr[0])).pass;
    const before = await verdictsOf(xvs);
    const cap = await Capture.start(L.lab, L.client, "eth0");
    const r = await httpGet(L.lab, L.client, LAB_VIP, 85, 1, 1);
    const raw = (await cap.stop()).filter((f) => decodeFrame(f)?.outer.proto === 1);
    expect(r.failed).toBe(1);
    expect((await decapStats(L.lab, tr[0])).pass).toBeGreaterThan(passBefore);
    const after = await verdictsOf(xvs);
    expect(after.icmp_forwarded - before.icmp_forwarded).toBeGreaterThanOrEqual(1);
    // the client heard "port unreachable" from the VIP about its own SYN to VIP:85
    expect(raw.length).toBeGreaterThanOrEqual(1);
    const f = decodeFrame(raw[0])!;
    expect(f.outer).toMatchObject({ src: LAB_VIP, dst: CLIENT_ADDR, proto: 1, headerOk: true });
    const ic = f.outer.payload;
    expect([raw[0][ic], raw[0][ic + 1]]).toEqual([3, 3]);
    const quoted = decodeFrame(new Uint8Array([...raw[0].subarray(0, 14), ...raw[0].subarray(ic + 8)]))!;
    expect(quoted.outer).toMatchObject({ src: CLIENT_ADDR, dst: LAB_VIP, proto: 6 });
    expect(quoted.dport).toBe(85);
  }, 30_000);

  test("GRE with a key flag and GUE of another version reach the helper: counted and passed, never opened", async () => {
    const before = await decapStats(L.lab, tr[0]);
    // GRE: K bit set, protocol IPv4, 4 bytes of key, then a small IPv4 packet
    const inner = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 1, 2, 198, 18, 0, 100, 0x9c, 0x40, 0x23, 0x28, 0, 8, 0, 0];
    await injectIp(L.lab, "rt", remoteAddr(1), 47, new Uint8Array([0x20, 0, 0x08, 0, 0, 0, 0, 7, ...inner]));
    // GUE version 1 on UDP 6080 (through the kernel's UDP socket API is not possible: raw UDP header)
    const gue = [0x9c, 0x40, 6080 >> 8, 6080 & 255, 0, 8 + 4 + inner.length, 0, 0, 0x40, 4, 0, 0, ...inner];
    await injectIp(L.lab, "rt", remoteAddr(1), 17, new Uint8Array(gue));
    // until both reached the helper (a condition: a fixed pause can be too short under load)
    let after = await decapStats(L.lab, tr[0]);
    for (let i = 0; i < 50 && (after.bad_gre === before.bad_gre || after.bad_gue === before.bad_gue); i++) {
      await Bun.sleep(100);
      after = await decapStats(L.lab, tr[0]);
    }
    expect(after.bad_gre - before.bad_gre).toBe(1);
    expect(after.bad_gue - before.bad_gue).toBe(1);
    expect(after.gre - before.gre).toBe(0);
    expect(after.gue - before.gue).toBe(0);
  }, 30_000);
});
