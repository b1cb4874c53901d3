/**
 * The operator recipe of docs/sync.md, run: two xvs directors (da, db) on one segment hold the
 * same DR service; Debian's keepalived runs VRRP only on each (da priority 150, db 100) with the
 * VIP in virtual_ipaddress and notify scripts that switch xvs's sync roles (`xvs adm
 * --stop-daemon` / `--start-daemon`). The client resolves the VIP by ARP as any client does. 100
 * connections held through da (the VRRP master, so the sync master); then da "dies" (its
 * keepalived and its xvs SIGKILLed): db's keepalived takes the VIP over with gratuitous ARPs, its
 * notify_master makes db's xvs the sync master, and every held connection goes on talking to its
 * real server through db.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LabDaemon, startDaemon } from "../../src/tools/lab/daemon.ts";
import { Lab } from "../../src/tools/lab/netns.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { apiOk, requireRoot, serveOn, verdictsOf, waitFor, FailoverClient } from "./helpers.ts";

const VIP = "198.18.0.100";
const REALS = ["198.18.0.21", "198.18.0.22"];
const PORT = 7000;
const CONNS = 100;

let lab: Lab;
const xvs: Record<string, LabDaemon> = {};
const keepalived: Record<string, ReturnType<Lab["spawn"]>> = {};
let client: FailoverClient | undefined;
const dir = mkdtempSync(join(tmpdir(), "xvs-ka-"));

/** The recipe's notify script, for the xvs daemon whose state directory is `stateDir`. */
function roleScript(name: string, stateDir: string): string {
  const p = join(dir, `sync-role-${name}`);
  const xvsCmd = selfCommand()
    .map((w) => `'${w}'`)
    .join(" ");
  writeFileSync(
    p,
    `#!/bin/sh
# docs/sync.md's sync-role script: the VRRP master sends, the others receive
export XVS_STATE_DIR='${stateDir}'
other=backup; [ "$1" = backup ] && other=master
${xvsCmd} adm --stop-daemon "$other" 2>/dev/null
${xvsCmd} adm --start-daemon "$1" --mcast-interface eth0 --syncid 5 2>/dev/null || true
`,
  );
  chmodSync(p, 0o755);
  return p;
}

function keepalivedConf(name: string, priority: number, script: string): string {
  const p = join(dir, `keepalived-${name}.conf`);
  writeFileSync(
    p,
    `global_defs {
    router_id ${name}
    script_user root
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority ${priority}
    advert_int 1
    virtual_ipaddress {
        ${VIP}/32
    }
    notify_master "${script} master"
    notify_backup "${script} backup"
    notify_fault "${script} backup"
}
`,
  );
  return p;
}

beforeAll(async () => {
  requireRoot();
  await Lab.cleanupStale();
  lab = new Lab("ka");
  await lab.addNs("sw");
  await lab.ip("sw", "link", "add", "br0", "type", "bridge");
  await lab.ip("sw", "link", "set", "br0", "up");
  const hosts: [string, string][] = [
    ["cl", "198.18.0.2"],
    ["da", "198.18.0.11"],
    ["db", "198.18.0.12"],
    ["rs1", REALS[0]],
    ["rs2", REALS[1]],
  ];
  for (const [h, a] of hosts) {
    await lab.addNs(h);
    await lab.veth(h, "eth0", "sw", `p${h}`);
    await lab.ip("sw", "link", "set", `p${h}`, "master", "br0");
    await lab.ip(h, "addr", "add", `${a}/24`, "dev", "eth0");
  }
  for (const h of ["rs1", "rs2"]) {
    await lab.ip(h, "addr", "add", `${VIP}/32`, "dev", "lo");
    for (const k of ["all", "eth0"]) {
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_ignore`, 1);
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_announce`, 2);
    }
    await serveOn(lab, h, ["--tcp", String(PORT)]);
  }
  for (const [h, prio] of [
    ["da", 150],
    ["db", 100],
  ] as const) {
    const stateDir = mkdtempSync(join(tmpdir(), `xvs-state-${h}-`));
    xvs[h] = await startDaemon(lab, h, ["eth0"], [], stateDir);
    await apiOk(xvs[h], "POST", "/v1/services", { protocol: "tcp", address: VIP, port: PORT, scheduler: "rr" });
    for (const r of REALS) await apiOk(xvs[h], "POST", `/v1/services/tcp:${VIP}:${PORT}/dests`, { address: r, port: PORT, forward: "route", weight: 1 });
    const conf = keepalivedConf(h, prio, roleScript(h, stateDir));
    keepalived[h] = lab.spawn(h, [
      "keepalived",
      "--dont-fork",
      "--log-console",
      "--no-syslog",
      "--vrrp",
      `--use-file=${conf}`,
      `--pid=${join(dir, `${h}.pid`)}`,
      `--vrrp_pid=${join(dir, `${h}-vrrp.pid`)}`,
    ]);
  }
  // da wins the election: its notify makes its xvs the sync master; db's makes its xvs the backup
  for (const [h, role] of [
    ["da", "master"],
    ["db", "backup"],
  ] as const) {
    await waitFor(
      `${h}'s sync role`,
      async () => (await xvs[h].adm(["-L", "--daemon"])).stdout,
      (s) => s.startsWith(`${role} sync daemon (mcast=eth0, syncid=5`),
      30_000,
    );
  }
}, 120_000);

afterAll(async () => {
  client?.proc.kill();
  for (const k of Object.values(keepalived)) k.kill(9);
  for (const x of Object.values(xvs)) await x.stop();
  await lab?.teardown();
}, 30_000);

describe("keepalived VRRP moves the VIP, its notify scripts switch xvs's sync roles", () => {
  test("100 held connections survive the VRRP master's death: db takes the VIP and the sync master role and forwards them", async () => {
    client = new FailoverClient(lab, "cl", VIP, PORT, CONNS);
    expect(await client.line(30_000)).toBe(`connected ${CONNS}`);
    const before = await client.ask("before");
    expect(before.failed).toBe(0);
    const st = await waitFor(
      "backup installs",
      async () => (await xvs.db.api("GET", "/v1/daemons/backup/stats")).json as { created: number },
      (s) => s.created >= CONNS,
      15_000,
    );
    expect(st.created).toBe(CONNS);

    // da dies: VRRP and the balancer at once
    keepalived.da.kill(9);
    xvs.da.proc.kill(9);
    await xvs.da.proc.exited;
    await waitFor(
      "db's sync role",
      async () => (await xvs.db.adm(["-L", "--daemon"])).stdout,
      (s) => s.startsWith("master sync daemon"),
      30_000,
    );
    const v0 = await verdictsOf(xvs.db);
    // the client's ARP entry follows db's gratuitous ARPs; a line sent before that is retransmitted
    const after = await client.ask("after");
    expect(after.failed).toBe(0);
    expect(after.servers).toEqual(before.servers);
    const v1 = await verdictsOf(xvs.db);
    expect(v1.fwd_in - v0.fwd_in).toBeGreaterThanOrEqual(CONNS);
    expect((v1.new_conns ?? 0) - (v0.new_conns ?? 0)).toBe(0);
  }, 120_000);
});
