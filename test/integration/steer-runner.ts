/**
 * Run the golden packets of steer-fixture.ts through the real steering program with
 * BPF_PROG_TEST_RUN, inside the lab namespace steer.test.ts made (`ip netns exec NS bun this`).
 *
 * The program and its maps are set up by the dataplane itself (Dataplane.start over eth0 with
 * steerModel()): the embedded object is loaded, if_slots/vips/vip_addrs/nat_reals/local_addrs
 * are written by the same code as in `xvs run`, the program is attached and a worker binds a
 * live AF_XDP socket on each of eth0's two queues into the XSKMAP; queue 1's is then taken out
 * of the XSKMAP again, to stand for a queue that has no socket (yet: one added by `ethtool -L`
 * in the moment before xvs binds it), which the "no socket" cases run on. Only with a socket in the slot does
 * bpf_redirect_map return XDP_REDIRECT; the test run (non-live) reports that verdict without
 * carrying the redirect out, so the worker never sees these frames.
 *
 * Prints one JSON array of SteerResult on stdout.
 */
import { Dataplane } from "../../src/dataplane/dataplane.ts";
import { progTestRun } from "../../src/ffi/bpf.ts";
import { linkInfo } from "../../src/ffi/netlink.ts";
import { CASES, CASES_AFTER_CHANGE, changeModel, type SteerCase, steerModel, type SteerResult } from "./steer-fixture.ts";

const model = steerModel();
const dp = await Dataplane.start({ ifaces: ["eth0"], workers: 1, connCapacity: 1024, bindMode: "copy", idleMs: 50 }, model);
const results: SteerResult[] = [];
try {
  // eth0's slots start at 0 (its index in the interface list times XVS_MAX_QUEUES): slot 1 is queue 1
  dp.prog.delete("xsks", new Uint8Array(new Uint32Array([1]).buffer));
  const eth0 = dp.ports[0].ifindex,
    eth1 = linkInfo("eth1").ifindex;
  const runAll = (cases: SteerCase[]) => {
    for (const c of cases) {
      const before = dp.prog.stats();
      const r: SteerResult = { name: c.name, moved: {}, unchanged: false };
      try {
        const ifindex = c.ingress === "eth1" ? eth1 : eth0;
        const run = progTestRun(dp.prog.progFd, c.frame, ifindex, c.ingress === "eth0-queue1" ? 1 : 0);
        r.retval = run.retval;
        r.unchanged = Buffer.from(run.frame).equals(Buffer.from(c.frame));
      } catch (e) {
        r.error = (e as Error).message;
      }
      const after = dp.prog.stats();
      after.forEach((v, i) => {
        if (v !== before[i]) r.moved[i] = v - before[i];
      });
      results.push(r);
    }
  };
  runAll(CASES);
  // a new generation, as the daemon applies every change: the maps get the difference
  const next = model.clone();
  changeModel(next);
  dp.apply(next);
  runAll(CASES_AFTER_CHANGE);
} finally {
  await dp.stop();
}
console.log(JSON.stringify(results));
process.exit(0);
