/**
 * Least connection (ip_vs_lc.c): the dest with the smallest overhead (active * 256 + inactive),
 * ignoring weights except that weight 0 is skipped; ties go to the earlier dest in list order.
 */
import { DEST_WEIGHT, DEST_WORDS, SVC_DEST_N, SVC_DEST_OFF, SVC_WORDS } from "../service/tables.ts";
import { connOverhead, type Scheduler } from "./scheduler.ts";

export const lc: Scheduler = {
  name: "lc",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t;
    const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF], n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
    let least = -1, loh = 0;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      if (v.overload[d] !== 0 || t.dest[d * DEST_WORDS + DEST_WEIGHT] === 0) continue;
      const doh = connOverhead(v, d);
      if (least < 0 || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
