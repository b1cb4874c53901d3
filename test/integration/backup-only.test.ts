/**
 * backup_only (net.ipv4.vs.backup_only while a backup sync daemon runs, src/control/backup-only.ts)
 * in the real steering program: every packet to a virtual address goes to the kernel (XDP_PASS,
 * counted in steer_cfg), as ip_vs_in_hook accepts them untouched when sysctl_backup_only() holds;
 * NAT real servers' replies are still xvs's (ip_vs_out_hook has no such check); other traffic is
 * not counted; turned off, the director balances again. Needs root (BPF_PROG_TEST_RUN in a lab
 * namespace, as steer.test.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { Lab } from "../../src/tools/lab/netns.ts";
import { FRAMES } from "./backup-only-runner.ts";
import { LOCAL4, LOCAL6 } from "./steer-fixture.ts";
import { requireRoot } from "./helpers.ts";

const XDP_PASS = 2,
  XDP_REDIRECT = 4;
let lab: Lab;
let res: Record<string, Record<string, { retval: number; passed: number }>>;

beforeAll(async () => {
  requireRoot();
  lab = new Lab("bkonly");
  await lab.addNs("d");
  await lab.ip(
    "d",
    "link",
    "add",
    "eth0",
    "numtxqueues",
    "2",
    "numrxqueues",
    "2",
    "type",
    "veth",
    "peer",
    "name",
    "eth1",
    "numtxqueues",
    "2",
    "numrxqueues",
    "2",
  );
  await lab.ip("d", "link", "set", "eth0", "up");
  await lab.ip("d", "addr", "add", `${LOCAL4}/16`, "dev", "eth0");
  await lab.ip("d", "addr", "add", `${LOCAL6}/64`, "dev", "eth0", "nodad");
  const r = await lab.exec("d", [process.execPath, join(import.meta.dir, "backup-only-runner.ts")]);
  res = JSON.parse(r.stdout.trim());
}, 60_000);

afterAll(async () => {
  await lab?.teardown();
});

const [synV4, synV6, ack, frag, echo, natReply, natReply6, other] = FRAMES;

test("as a director: packets to virtual services are redirected to xvs, nothing is counted as passed for backup_only", () => {
  for (const f of [synV4, synV6, ack, frag, natReply, natReply6]) expect({ f, ...res.director[f] }).toEqual({ f, retval: XDP_REDIRECT, passed: 0 });
  for (const f of [echo, other]) expect({ f, ...res.director[f] }).toEqual({ f, retval: XDP_PASS, passed: 0 });
});

test("backup_only: every packet to a virtual address passes to the kernel and is counted once; NAT replies stay xvs's", () => {
  for (const f of [synV4, synV6, ack, frag, echo]) expect({ f, ...res.backup_only[f] }).toEqual({ f, retval: XDP_PASS, passed: 1 });
  for (const f of [natReply, natReply6]) expect({ f, ...res.backup_only[f] }).toEqual({ f, retval: XDP_REDIRECT, passed: 0 });
  expect(res.backup_only[other]).toEqual({ retval: XDP_PASS, passed: 0 });
});

test("turned off again, the director balances again; the pass count is kept", () => {
  expect(res.director_again).toEqual(res.director);
  expect(res.total.passed.passed).toBe(5);
});
