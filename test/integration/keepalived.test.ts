// `xvs run --keepalived-conf FILE` in a namespace lab: the file's virtual_server blocks are the
// table at start; reloads (SIGHUP and POST /v1/reload) under traffic apply only the difference:
// every held connection keeps its real server and keeps answering, every new connection made
// during the reloads succeeds, the services' traffic counters continue (a service deleted and
// re-added would start again from zero), and a broken file changes nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { HeldConnection, httpGet, requireRoot, startServers, stopLab } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;
const dir = mkdtempSync(join(tmpdir(), "xvs-ka-lab-"));
const file = join(dir, "keepalived.conf");

/** The site's keepalived.conf: HTTP on 80 and a line service on 7000, real servers with their weights. */
function conf(o: { web: Record<number, number>; line: Record<number, number>; webAlgo?: string }): string {
  const rs = (port: number, ws: Record<number, number>) =>
    Object.entries(ws)
      .map(
        ([i, w]) => `    real_server ${realAddr(Number(i))} ${port} {
        weight ${w}
        TCP_CHECK {
            connect_timeout 2
        }
    }`,
      )
      .join("\n");
  return `! written by keepalived.test.ts
global_defs {
    router_id xvs_lab
}
virtual_server ${LAB_VIP} 80 {
    delay_loop 30
    lb_algo ${o.webAlgo ?? "rr"}
    lb_kind NAT
    protocol TCP
${rs(80, o.web)}
}
virtual_server ${LAB_VIP} 7000 {
    delay_loop 30
    lb_algo rr
    lb_kind NAT
    protocol TCP
${rs(7000, o.line)}
}
`;
}

interface SvcView {
  id: string;
  stats: { conns: number };
  dests: { address: string; weight: number; stats: { conns: number } }[];
  spec: { scheduler: string };
}
async function services(): Promise<Record<string, SvcView>> {
  const r = await xvs.api("GET", "/v1/services");
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json as { services: SvcView[] }).services.map((s) => [s.id, s]));
}
const count = (re: RegExp) => (xvs.log().match(re) ?? []).length;
async function waitFor(what: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error(`timed out; log:\n${xvs.log()}`);
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("ka", { reals: 4 });
  await startServers(L.lab, L.reals);
  writeFileSync(file, conf({ web: { 1: 1, 2: 1, 3: 1 }, line: { 1: 1, 2: 1, 3: 1 } }));
}, 60_000);

afterAll(async () => {
  await stopLab(xvs, L);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe("xvs run --keepalived-conf", () => {
  test("a broken file stops the start with one line naming file and line, before anything is attached", async () => {
    const broken = join(dir, "broken.conf");
    writeFileSync(
      broken,
      `virtual_server ${LAB_VIP} 80 {\n    protocol TCP\n    lb_algo rr\n    real_server ${realAddr(1)} 80 {\n        notify_up /bin/true\n    }\n}\n`,
    );
    const run = (extra: string[]) =>
      L.lab.exec(
        L.director,
        ["env", `XVS_STATE_DIR=${join(dir, "state-broken")}`, ...selfCommand(), "run", ...L.ifaces.flatMap((i) => ["--iface", i]), ...extra],
        true,
      );
    const r = await run(["--keepalived-conf", broken]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([
      `xvs: ${broken}:5: 'notify_up' in real_server is not supported: xvs logs each state change; it runs no notify scripts and sends no mail`,
    ]);
    expect((await L.lab.exec(L.director, ["ip", "-d", "link", "show", L.ifaces[0]])).stdout).not.toContain("prog/xdp");
    const both = await run(["--keepalived-conf", file, "--config", broken]);
    expect(both.stderr.trim()).toBe("xvs: --config and --keepalived-conf both declare the table: give one of them");
    xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--keepalived-conf", file]);
  }, 60_000);

  test("the file is the table at start; global_defs is left to keepalived with one log line", async () => {
    const s = await services();
    expect(Object.keys(s).sort()).toEqual([`tcp:${LAB_VIP}:7000`, `tcp:${LAB_VIP}:80`]);
    expect(s[`tcp:${LAB_VIP}:80`].dests.map((d) => d.address).sort()).toEqual([realAddr(1), realAddr(2), realAddr(3)]);
    expect(count(/"msg":"keepalived config: block left to keepalived","block":"global_defs"/g)).toBe(1);
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 30, 3);
    expect({ ok: r.ok, errors: r.errors }).toEqual({ ok: 30, errors: [] });
  }, 60_000);

  test("reloads under traffic keep every held connection and every new one; counters continue; a broken file changes nothing", async () => {
    // one after another: each helper is a process of its own, and six starting at once on a busy host can miss open()'s 5 s
    const held: HeldConnection[] = [];
    const owner: string[] = [];
    for (let i = 0; i < 6; i++) {
      held.push(await HeldConnection.open(L.lab, L.client, LAB_VIP, 7000));
      owner.push((await held[i].ask(`hello ${i}`)).split(" ")[0]);
    }
    expect(new Set(owner).size).toBe(3); // rr spread them over rs1..rs3
    const before = await services();

    // new connections all through the reloads
    const traffic = httpGet(L.lab, L.client, LAB_VIP, 80, 400, 4);

    // 1: SIGHUP: weights change, rs4 joins the line service
    writeFileSync(file, conf({ web: { 1: 3, 2: 1, 3: 1 }, line: { 1: 1, 2: 1, 3: 1, 4: 2 } }));
    xvs.proc.kill("SIGHUP");
    await waitFor(() => count(/"msg":"keepalived config reloaded"/g) === 1);
    for (let i = 0; i < held.length; i++) expect((await held[i].ask(`after sighup ${i}`)).split(" ")[0]).toBe(owner[i]);

    // 2: the API: the web service's scheduler changes, rs2 leaves it
    writeFileSync(file, conf({ web: { 1: 3, 3: 1 }, line: { 1: 1, 2: 1, 3: 1, 4: 2 }, webAlgo: "wrr" }));
    const r2 = await xvs.api("POST", "/v1/reload");
    expect(r2).toMatchObject({
      status: 200,
      json: { changed: true, servicesAdded: 0, servicesRemoved: 0, servicesChanged: 1, destsRemoved: 1, destsAdded: 0 },
    });

    // 3: a broken file: 400 naming the line, nothing changes
    writeFileSync(file, conf({ web: { 1: 1 }, line: { 1: 1 } }).replace("lb_kind NAT", "lb_kind NATT"));
    const r3 = await xvs.api("POST", "/v1/reload");
    expect(r3.status).toBe(400);
    expect(JSON.stringify(r3.json)).toContain(`${file}:8: 'lb_kind': 'NATT' is not NAT, DR or TUN`);

    const t = await traffic;
    expect({ ok: t.ok, errors: t.errors }).toEqual({ ok: 400, errors: [] });
    for (let i = 0; i < held.length; i++) expect((await held[i].ask(`at the end ${i}`)).split(" ")[0]).toBe(owner[i]);

    const after = await services();
    const web = after[`tcp:${LAB_VIP}:80`];
    expect(web.spec.scheduler).toBe("wrr");
    expect(Object.fromEntries(web.dests.map((d) => [d.address, d.weight]))).toEqual({ [realAddr(1)]: 3, [realAddr(3)]: 1 });
    expect(after[`tcp:${LAB_VIP}:7000`].dests.map((d) => d.address).sort()).toEqual([realAddr(1), realAddr(2), realAddr(3), realAddr(4)]);
    // counters continue: the services and the real servers that stayed were never deleted and re-added
    expect(web.stats.conns).toBeGreaterThanOrEqual(before[`tcp:${LAB_VIP}:80`].stats.conns + 400);
    const rs1 = (v: SvcView) => v.dests.find((d) => d.address === realAddr(1))!.stats.conns;
    expect(rs1(after[`tcp:${LAB_VIP}:7000`])).toBeGreaterThanOrEqual(rs1(before[`tcp:${LAB_VIP}:7000`]));
    expect(rs1(web)).toBeGreaterThan(rs1(before[`tcp:${LAB_VIP}:80`]));
    for (const h of held) h.close();
  }, 120_000);
});
