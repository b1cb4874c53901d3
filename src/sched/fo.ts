/**
 * Weighted failover (ip_vs_fo.c): every new connection goes to the dest with the highest
 * weight that is not overloaded; a tie goes to the earlier dest in list order (strict `>`), i.e.
 * the one added last. Weight 0 never wins (the walk starts from weight 0).
 */
import { listLen, listOff, weightOf, type Scheduler } from "./scheduler.ts";

export const fo: Scheduler = {
  name: "fo",
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
      if (v.overload[d] === 0 && w > hw) {
        best = d;
        hw = w;
      }
    }
    return best;
  },
};
