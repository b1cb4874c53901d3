/**
 * Least connection (ip_vs_lc.c): the dest with the smallest overhead (active * 256 + inactive),
 * ignoring weights except that weight 0 is skipped; ties go to the earlier dest in list order
 * (strict `<`), overloaded dests are skipped.
 */
import { connOverhead, listLen, listOff, weightOf, type Scheduler } from "./scheduler.ts";

export const lc: Scheduler = {
  name: "lc",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t,
      off = listOff(t, svc),
      n = listLen(t, svc);
    let least = -1,
      loh = 0;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      if (v.overload[d] !== 0 || weightOf(t, d) === 0) continue;
      const doh = connOverhead(v, d);
      if (least < 0 || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
