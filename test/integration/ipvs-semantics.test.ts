/**
 * IPVS semantics with real packets: the namespace lab of test/integration/nat.test.ts,
 * a client with several addresses, real TCP through xvs's AF_XDP fast path, configured with
 * `xvs adm` as an operator would. Scheduler order, states and counts are compared with the
 * kernel in test/unit/sched/oracle.test.ts; here the same rules must hold end to end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, CLIENT_ADDR, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { eventually, HeldConnection, httpGet, requireRoot, startServers, stopLab } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;
/** Extra client addresses: two more in the client's /24, and one in another /24 (routed back via the client). */
const SAME24 = ["198.18.1.3", "198.18.1.4"];
const OTHER24 = "198.18.5.2";

async function adm(...args: string[]): Promise<string> {
  const r = await xvs.adm(args);
  if (r.code !== 0) throw new Error(`xvs adm ${args.join(" ")}: ${r.code} ${r.stderr}`);
  return r.stdout;
}

/** One HTTP request from a given client address (curl --interface); returns the real server's name. */
async function getFrom(src: string, port: number): Promise<string> {
  const r = await L.lab.exec(L.client, ["curl", "-s", "-m", "5", "--interface", src, `http://${LAB_VIP}:${port}/`], true);
  return r.stdout.split(" ")[0];
}

/** Rows of `xvs adm -Lnc`: [proto, expire, state, source, virtual, destination]. */
async function connRows(): Promise<string[][]> {
  const out = await adm("-Lnc");
  return out
    .split("\n")
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => l.trim().split(/\s+/));
}

/** ActiveConn and InActConn of each real server of a service, from `xvs adm -Ln -t`. */
async function counts(port: number): Promise<Record<string, [number, number]>> {
  const out = await adm("-Ln", "-t", `${LAB_VIP}:${port}`);
  const m: Record<string, [number, number]> = {};
  for (const l of out.split("\n")) {
    const f = l.trim().split(/\s+/);
    if (f[0] === "->" && f[1] !== "RemoteAddress:Port") m[f[1]] = [Number(f[4]), Number(f[5])];
  }
  return m;
}

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("b", { reals: 3 });
  for (const a of [...SAME24]) await L.lab.ip(L.client, "addr", "add", `${a}/24`, "dev", "eth0");
  await L.lab.ip(L.client, "addr", "add", `${OTHER24}/32`, "dev", "eth0");
  await L.lab.ip(L.director, "route", "add", `${OTHER24}/32`, "via", CLIENT_ADDR);
  await startServers(L.lab, L.reals);
  xvs = await startDaemon(L.lab, L.director, L.ifaces);
}, 60_000);

afterAll(() => stopLab(xvs, L), 30_000);

describe("IPVS semantics through AF_XDP", () => {
  test("lc: while rs2 and rs3 hold long-lived connections, every new connection goes to the idle rs1", async () => {
    await adm("-A", "-t", `${LAB_VIP}:7000`, "-s", "lc");
    for (let i = 1; i <= 3; i++) await adm("-a", "-t", `${LAB_VIP}:7000`, "-r", `${realAddr(i)}:7000`, "-m", "-w", i === 1 ? "0" : "1");
    const held = await Promise.all([0, 1, 2, 3].map(() => HeldConnection.open(L.lab, L.client, LAB_VIP, 7000)));
    const holders = await Promise.all(held.map(async (h) => (await h.ask("hi")).split(" ")[0]));
    expect(holders.sort()).toEqual(["rs2", "rs2", "rs3", "rs3"]);
    await adm("-e", "-t", `${LAB_VIP}:7000`, "-r", `${realAddr(1)}:7000`, "-m", "-w", "1");
    // short connections end in TIME_WAIT (inactive, overhead 1 each): rs1 stays the least loaded
    const fresh: string[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7000);
      fresh.push((await c.ask("x")).split(" ")[0]);
      c.close();
    }
    expect(fresh).toEqual(Array(8).fill("rs1"));
    const n = await counts(7000);
    expect(n[`${realAddr(2)}:7000`][0] + n[`${realAddr(3)}:7000`][0]).toBe(4);
    for (const h of held) h.close();
  }, 60_000);

  test("sh: one client address lands on one real server across 40 source ports; with sh-port the ports spread", async () => {
    await adm("-A", "-t", `${LAB_VIP}:80`, "-s", "sh");
    for (let i = 1; i <= 3; i++) await adm("-a", "-t", `${LAB_VIP}:80`, "-r", realAddr(i), "-m");
    const r = await httpGet(L.lab, L.client, LAB_VIP, 80, 40, 4);
    expect(r.ok).toBe(40);
    expect(Object.values(r.byServer)).toEqual([40]);
    await adm("-E", "-t", `${LAB_VIP}:80`, "-s", "sh", "-b", "sh-port");
    const p = await httpGet(L.lab, L.client, LAB_VIP, 80, 40, 4);
    expect(p.ok).toBe(40);
    expect(Object.keys(p.byServer).length).toBeGreaterThan(1);
  }, 60_000);

  test("persistence -p -M 255.255.255.0: the client's whole /24 sticks to one server (rr would alternate), another /24 gets the next", async () => {
    await adm("-A", "-t", `${LAB_VIP}:8080`, "-s", "rr", "-p", "300", "-M", "255.255.255.0");
    for (let i = 1; i <= 3; i++) await adm("-a", "-t", `${LAB_VIP}:8080`, "-r", `${realAddr(i)}:80`, "-m");
    const first = await getFrom(CLIENT_ADDR, 8080);
    expect(first).toMatch(/^rs[123]$/);
    for (const src of [CLIENT_ADDR, ...SAME24, CLIENT_ADDR, ...SAME24]) expect(await getFrom(src, 8080)).toBe(first);
    const other = await getFrom(OTHER24, 8080);
    expect(other).toMatch(/^rs[123]$/);
    expect(other).not.toBe(first);
    // -Lnc shows the templates: the masked network, client port 0, state NONE or ASSURED
    const tpl = (await connRows()).filter((r) => r[3] === "198.18.1.0:0" && r[4] === `${LAB_VIP}:8080`);
    expect(tpl.length).toBe(1);
    expect(tpl[0][2]).toBe("ASSURED");
    expect(tpl[0][5]).toBe(`${realAddr(Number(first.slice(2)))}:80`);
  }, 60_000);

  test("threshold -x 2: once rs1 holds 2 connections, new ones go elsewhere; -e raising it lets rs1 take more", async () => {
    await adm("-A", "-t", `${LAB_VIP}:7001`, "-s", "rr");
    await adm("-a", "-t", `${LAB_VIP}:7001`, "-r", `${realAddr(1)}:7000`, "-m", "-x", "2");
    await adm("-a", "-t", `${LAB_VIP}:7001`, "-r", `${realAddr(2)}:7000`, "-m");
    const held: HeldConnection[] = [];
    const names: string[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7001);
      held.push(c);
      names.push((await c.ask("x")).split(" ")[0]);
    }
    expect(names).toEqual(["rs2", "rs1", "rs2", "rs1", "rs2", "rs2", "rs2", "rs2"]);
    await adm("-e", "-t", `${LAB_VIP}:7001`, "-r", `${realAddr(1)}:7000`, "-m", "-x", "4");
    const more: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7001);
      held.push(c);
      more.push((await c.ask("y")).split(" ")[0]);
    }
    expect(more.filter((n) => n === "rs1").length).toBe(2);
    for (const c of held) c.close();
  }, 60_000);

  test("TCP state and counts: ESTABLISHED is active; after the client's FIN the connection is inactive; a client RST leaves it in CLOSE", async () => {
    await adm("-A", "-t", `${LAB_VIP}:7002`, "-s", "rr");
    await adm("-a", "-t", `${LAB_VIP}:7002`, "-r", `${realAddr(1)}:7000`, "-m");
    const rs = `${realAddr(1)}:7000`;
    const c = await HeldConnection.open(L.lab, L.client, LAB_VIP, 7002);
    expect((await c.ask("hello")).split(" ")[0]).toBe("rs1");
    let rows = (await connRows()).filter((r) => r[4] === `${LAB_VIP}:7002`);
    expect(rows.map((r) => r[2])).toEqual(["ESTABLISHED"]);
    expect((await counts(7002))[rs]).toEqual([1, 0]);
    c.close(); // the client sends FIN; the server's socket closes too
    // until both FINs went through (a fixed 300 ms was too short for a loaded machine)
    const only7002 = async () => (await connRows()).filter((r) => r[4] === `${LAB_VIP}:7002`);
    rows = await eventually(only7002, (rs) => rs.length === 1 && rs[0][2] === "TIME_WAIT");
    // client FIN: CLOSE_WAIT; the server's FIN (OUTPUT fin): TIME_WAIT, 120 s, inactive
    expect(rows.map((x) => x[2])).toEqual(["TIME_WAIT"]);
    expect(Number(rows[0][1].split(":")[0]) * 60 + Number(rows[0][1].split(":")[1])).toBeGreaterThan(110);
    expect((await counts(7002))[rs]).toEqual([0, 1]);
    // a client that aborts (SO_LINGER 0): RST after ESTABLISHED -> CLOSE, 10 s
    const py = `import socket,struct
s=socket.create_connection(("${LAB_VIP}",7002))
s.sendall(b"x\\n"); s.recv(100)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii",1,0)); s.close()`;
    const r = await L.lab.exec(L.client, ["python3", "-c", py], true);
    expect(r.code).toBe(0);
    // until the RST went through (it was a fixed 200 ms)
    rows = await eventually(only7002, (rs) => rs.some((x) => x[2] === "CLOSE"));
    const closed = rows.filter((x) => x[2] === "CLOSE");
    expect(closed.length).toBe(1);
    expect(Number(closed[0][1].split(":")[1])).toBeLessThanOrEqual(10);
    expect((await counts(7002))[rs]).toEqual([0, 2]);
  }, 60_000);
});
