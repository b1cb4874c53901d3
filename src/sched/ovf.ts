/**
 * Weighted overflow (ip_vs_ovf.c): the highest-weight dest whose active connections do not
 * exceed its weight (`active <= weight`), skipping weight 0 and OVERLOAD; a tie goes to the
 * earlier dest in list order. When every dest is full, no dest.
 */
import { listLen, listOff, weightOf, type Scheduler } from "./scheduler.ts";

export const ovf: Scheduler = {
  name: "ovf",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t,
      off = listOff(t, svc),
      n = listLen(t, svc);
    let best = -1,
      hw = 0;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      const w = weightOf(t, d);
      if (v.overload[d] !== 0 || v.active[d] > w || w === 0) continue;
      if (best < 0 || w > hw) {
        best = d;
        hw = w;
      }
    }
    return best;
  },
};
