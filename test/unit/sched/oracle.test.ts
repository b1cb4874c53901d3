/**
 * Kernel-exact means observed: every scenario of test/kernel/oracle/scenarios.ts was run
 * through real kernel IPVS (observations.json: kernel, ipvsadm and date in its provenance; made
 * by run-oracle.sh), and is replayed here through the xvs fast path. Step by step, the same
 * real server must get each packet (or the same answer must go to the client), and at every
 * snapshot the per-dest ActiveConn/InActConn/PersistConn and the connection table (templates
 * included: addresses, ports, state, seconds left within 3 s) must be the kernel's.
 *
 * A TCP packet that may not start a connection is answered by the director's own stack in the
 * kernel (a RST from the VIP); xvs sends that RST itself (src/xmit/tcp-reset.ts), compared here
 * like every other answer to the client.
 * The kernel's ICMP rate limits, a burst of 6 then 1 per second per host, are xvs's too
 * (src/xmit/icmp-limit.ts): the silence after the 6th refused connection is compared like the rest.
 *
 * Known, documented deviations:
 * - twos exists from Linux 6.3; the 6.1 guest refuses `-s twos`, xvs accepts it;
 * - fwmark services: an XDP frame carries no mark, so the replay hands marked packets to the
 *   scheduling code directly (replay.ts markedService).
 * ipvsadm's own option parsing is the CLI's business (test/kernel/ipvsadm); here only the
 * accept/refuse decision of each bad-input line is compared.
 */
import { describe, expect, test } from "bun:test";
import observations from "../../kernel/oracle/observations.json";
import { SCENARIOS } from "../../kernel/oracle/scenarios.ts";
import { guestSnap, replay, type AdmObs, type PacketObs, type SnapObs } from "./replay.ts";

type GuestObs = { out?: string[]; rx?: string[]; rc?: number; err?: string; ln?: string; persist?: string; conns?: string[] };
const guest = (observations as { scenarios: Record<string, { obs: GuestObs[] }> }).scenarios;

describe("kernel IPVS oracle (Debian 6.1 guest) replayed through the xvs fast path", () => {
  for (const sc of SCENARIOS) {
    test(`${sc.name}: same real server for every packet, same counts and connection table at every snapshot`, () => {
      const g = guest[sc.name];
      expect(g, `no observation for ${sc.name}: run test/kernel/oracle/run-oracle.sh`).toBeDefined();
      const { obs } = replay(sc);
      sc.steps.forEach((st, i) => {
        const want = g.obs[i],
          got = obs[i];
        const where = `${sc.name} step ${i}: ${JSON.stringify(st)}`;
        if ("ipvsadm" in st) {
          // accepted by both, or refused by both (the exact texts are the CLI's)
          const twos = / -s twos\b/.test(st.ipvsadm);
          expect((got as AdmObs).rc === 0, where).toBe(twos ? true : want.rc === 0);
        } else if ("c" in st || "r" in st) {
          const p = got as PacketObs;
          expect(p.out, where).toEqual(want.out!);
          if (want.out!.includes("c0")) expect(p.rx, where).toEqual(want.rx!);
        } else if ("snap" in st) {
          const s = got as SnapObs;
          const w = guestSnap(want as { ln: string; persist: string; conns: string[] });
          expect(s.dests, where).toEqual(w.dests);
          const rows = s.conns.map((x) => x.slice(0, x.lastIndexOf(" ")));
          expect(rows, where).toEqual(w.conns.map((x) => x.row));
          s.conns.forEach((x, k) => {
            const secs = Number(x.slice(x.lastIndexOf(" ") + 1));
            expect(Math.abs(secs - w.conns[k].secs), `${where}: seconds left of ${x}`).toBeLessThanOrEqual(3);
          });
        }
      });
    });
  }
});
