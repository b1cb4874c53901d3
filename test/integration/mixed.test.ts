/**
 * One service, several forwarding methods: as IPVS allows, `-m` and `-g` real servers
 * side by side in one virtual service. NAT real servers (their own port, replies back through
 * xvs) and DR real servers (the VIP on lo, replies straight to the client) share the scheduler's
 * rotation; every connection works and each method's counters move as they should.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, directReturn, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, checksumErrors, httpGet, requireRoot, serveOn, stopLab, udpAsk, verdictsOf } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("mixed", { reals: 4 });
  // rs1, rs2: NAT on port 8080; rs3, rs4: DR (port 80 = the virtual port, as ipvsadm forces for -g)
  await directReturn(L.lab, L.director, L.reals.slice(2), [LAB_VIP]);
  await serveOn(L.lab, L.reals[0], ["--http", "8080", "--udp", "9000"]);
  await serveOn(L.lab, L.reals[1], ["--http", "8080"]);
  await serveOn(L.lab, L.reals[2], ["--http", "80"]);
  await serveOn(L.lab, L.reals[2], ["--udp", "9000", "--addr", LAB_VIP]);
  await serveOn(L.lab, L.reals[3], ["--http", "80"]);
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
  // configured as an operator would, with the ipvsadm-compatible client
  const rules = `-A -t ${LAB_VIP}:80 -s rr
-a -t ${LAB_VIP}:80 -r ${realAddr(1)}:8080 -m
-a -t ${LAB_VIP}:80 -r ${realAddr(2)}:8080 -m
-a -t ${LAB_VIP}:80 -r ${realAddr(3)} -g
-a -t ${LAB_VIP}:80 -r ${realAddr(4)}:8080 -g
-A -u ${LAB_VIP}:9000 -s rr
-a -u ${LAB_VIP}:9000 -r ${realAddr(1)}:9000 -m
-a -u ${LAB_VIP}:9000 -r ${realAddr(3)}:9000 -g
`;
  const r = await xvs.adm(["-R"], rules);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("NAT and DR real servers in one service", () => {
  test("ipvsadm -Ln lists both methods; -g forced the DR real server's port to the virtual port", async () => {
    const r = await xvs.adm(["-Ln", "-t", `${LAB_VIP}:80`]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").filter((l) => l.includes("->") && !l.includes("RemoteAddress"));
    const byAddr = Object.fromEntries(
      lines.map((l) => {
        const f = l.trim().split(/\s+/);
        return [f[1], f[2]];
      }),
    );
    expect(byAddr).toEqual({
      [`${realAddr(1)}:8080`]: "Masq",
      [`${realAddr(2)}:8080`]: "Masq",
      [`${realAddr(3)}:80`]: "Route",
      [`${realAddr(4)}:80`]: "Route",
    });
  }, 30_000);

  test("120 HTTP connections: 30 on each real server, NAT replies through xvs, DR replies direct", async () => {
    const before = await verdictsOf(xvs);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 120, 4);
    expect(r.errors).toEqual([]);
    expect(r.byServer).toEqual({ rs1: 30, rs2: 30, rs3: 30, rs4: 30 });
    const after = await verdictsOf(xvs);
    expect(after.fwd_dr - before.fwd_dr).toBeGreaterThanOrEqual(60 * 4);
    expect(after.fwd_out - before.fwd_out).toBeGreaterThanOrEqual(60 * 3);
    const svc = (await apiOk(xvs, "GET", `/v1/services/tcp:${LAB_VIP}:80`)) as {
      stats: { conns: number };
      dests: { address: string; forward: string; stats: { conns: number; outpkts: number } }[];
    };
    expect(svc.stats.conns).toBe(120);
    for (const d of svc.dests) {
      expect(d.stats.conns).toBe(30);
      // only NAT real servers' replies pass the director (ip_vs_out_stats)
      if (d.forward === "masq") expect(d.stats.outpkts).toBeGreaterThan(0);
      else expect(d.stats.outpkts).toBe(0);
    }
  }, 60_000);

  test("UDP alternates between a NAT and a DR real server, every answer from VIP:9000", async () => {
    const r = await udpAsk(L.lab, L.client, LAB_VIP, 9000, 20);
    expect(r.failed).toBe(0);
    expect(r.byServer).toEqual({ rs1: 10, rs3: 10 });
  }, 60_000);

  test("no checksum errors at any receiver", async () => {
    expect(await checksumErrors(L.lab, L.client)).toBe(0);
    for (const h of L.reals) expect(await checksumErrors(L.lab, h)).toBe(0);
  }, 30_000);
});
