/**
 * backup_only in the real steering program (backup-only.test.ts runs this inside its lab
 * namespace): frames of steer-fixture.ts go through xvs_steer.bpf.o with BPF_PROG_TEST_RUN, maps
 * filled by Dataplane.start as in `xvs run`, first as a director (backup_only off), then with
 * the program's steer_cfg set (SteerProgram.setBackupOnly, what SyncManager does while a backup
 * daemon runs with backup_only=1), then off again. Prints one JSON object: per phase and frame
 * name, the verdict and how much the pass count moved.
 */
import { Dataplane } from "../../src/dataplane/dataplane.ts";
import { progTestRun } from "../../src/ffi/bpf.ts";
import { CASES, steerModel } from "./steer-fixture.ts";

export const FRAMES = [
  "TCP SYN to a VIP:port is redirected into the queue's socket",
  "TCP SYN to an IPv6 VIP:port is redirected",
  "a later TCP segment (ACK) to a VIP:port is redirected too",
  "a non-first fragment to a VIP address is redirected (no ports to read)",
  "ICMP echo request to a VIP passes (the kernel answers it)",
  "a NAT real server's reply (RS:port -> client) is redirected",
  "an IPv6 NAT real server's reply is redirected",
  "TCP to an address that is no VIP passes",
];

if (import.meta.main) {
  const dp = await Dataplane.start({ ifaces: ["eth0"], workers: 1, connCapacity: 1024, bindMode: "copy", idleMs: 50 }, steerModel());
  const out: Record<string, Record<string, { retval: number; passed: number }>> = {};
  try {
    const eth0 = dp.ports[0].ifindex;
    const phase = (name: string) => {
      out[name] = {};
      for (const f of FRAMES) {
        const c = CASES.find((x) => x.name === f);
        if (!c) throw new Error(`no case '${f}'`);
        const before = dp.prog.backupOnlyPassed();
        const run = progTestRun(dp.prog.progFd, c.frame, eth0, 0);
        out[name][f] = { retval: run.retval, passed: dp.prog.backupOnlyPassed() - before };
      }
    };
    phase("director");
    dp.prog.setBackupOnly(true);
    phase("backup_only");
    dp.prog.setBackupOnly(false);
    phase("director_again");
    out.total = { passed: { retval: 0, passed: dp.prog.backupOnlyPassed() } };
  } finally {
    await dp.stop();
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}
