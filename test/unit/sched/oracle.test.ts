/**
 * Kernel-exact means observed: every scenario of test/fixtures/ipvs-oracle/scenarios.ts was run
 * through real kernel IPVS (observations.json: kernel, ipvsadm and date in its provenance; made
 * by run-oracle.sh), and is replayed here through the xvs fast path. Step by step, the same
 * real server must get each packet (or the same answer must go to the client), and at every
 * snapshot the per-dest ActiveConn/InActConn/PersistConn and the connection table (templates
 * included: addresses, ports, state, seconds left within 3 s) must be the kernel's.
 *
 * Known, documented deviations:
 * - a TCP packet that may not start a connection is answered by the director's own stack in
 *   the kernel (a RST); xvs cannot pass frames to the kernel from AF_XDP and drops it
 *   (Stat.DropTcpNoConn; src/dataplane/schedule.ts);
 * (The kernel's ICMP rate limits, a burst of 6 then 1 per second per host, are xvs's too:
 * src/xmit/icmp-limit.ts; the silence after the 6th refused connection is compared like the rest.)
 * - twos exists from Linux 6.3; the 6.1 guest refuses `-s twos`, xvs accepts it;
 * - fwmark services: an XDP frame carries no mark, so the replay hands marked packets to the
 *   scheduling code directly (replay.ts markedService).
 * ipvsadm's own option parsing is the CLI's business (test/golden/cli); here only the
 * accept/refuse decision of each bad-input line is compared.
 */
import { describe, expect, test } from "bun:test";
import observations from "../../fixtures/ipvs-oracle/observations.json";
import { SCENARIOS } from "../../fixtures/ipvs-oracle/scenarios.ts";
import { guestSnap, replay, type AdmObs, type PacketObs, type SnapObs } from "./replay.ts";

type GuestObs = { out?: string[]; rx?: string[]; rc?: number; err?: string; ln?: string; persist?: string; conns?: string[] };
const guest = (observations as { scenarios: Record<string, { obs: GuestObs[] }> }).scenarios;

/** A RST from the VIP itself: the kernel's local stack answering a packet IPVS passed up. */
const localRst = (o: GuestObs) => o.out?.length === 1 && o.out[0] === "c0" && (o.rx ?? []).some((x) => /^tcp 198\.18\.0\.100:\d+>\S+ R/.test(x));

describe("kernel IPVS oracle (Debian 6.1 guest) replayed through the xvs fast path", () => {
  for (const sc of SCENARIOS) {
    test(`${sc.name}: same real server for every packet, same counts and connection table at every snapshot`, () => {
      const g = guest[sc.name];
      expect(g, `no observation for ${sc.name}: run test/fixtures/ipvs-oracle/run-oracle.sh`).toBeDefined();
      const { obs } = replay(sc);
      sc.steps.forEach((st, i) => {
        const want = g.obs[i], got = obs[i];
        const where = `${sc.name} step ${i}: ${JSON.stringify(st)}`;
        if ("ipvsadm" in st) {
          // accepted by both, or refused by both (the exact texts are the CLI's)
          const twos = / -s twos\b/.test(st.ipvsadm);
          expect((got as AdmObs).rc === 0, where).toBe(twos ? true : want.rc === 0);
        } else if ("c" in st || "r" in st) {
          const p = got as PacketObs;
          if (localRst(want)) {
            expect(p.out, `${where}: xvs drops what the kernel passes to its stack`).toEqual([]);
            expect(p.drops, where).toEqual(["drop_tcp_no_conn"]);
            return;
          }
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
