/**
 * Weighted least connection (ip_vs_wlc.c), the default scheduler: the first dest in list order
 * with weight > 0 and no OVERLOAD starts as the least loaded; a later non-overloaded dest d
 * replaces it when loh * w(d) > doh * w(least), i.e. when its overhead per weight is strictly
 * smaller (a weight-0 dest can never win: 0 > doh * w is false). Ties keep the earlier dest.
 */
import { connOverhead, listLen, listOff, productGreater, weightOf, type Scheduler } from "./scheduler.ts";

export const wlc: Scheduler = {
  name: "wlc",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t,
      off = listOff(t, svc),
      n = listLen(t, svc);
    let i = 0,
      least = -1,
      loh = 0,
      lw = 0;
    for (; i < n; i++) {
      const d = t.destList[off + i];
      const w = weightOf(t, d);
      if (v.overload[d] === 0 && w > 0) {
        least = d;
        loh = connOverhead(v, d);
        lw = w;
        break;
      }
    }
    if (least < 0) return -1;
    for (i++; i < n; i++) {
      const d = t.destList[off + i];
      if (v.overload[d] !== 0) continue;
      const w = weightOf(t, d);
      const doh = connOverhead(v, d);
      if (productGreater(loh, w, doh, lw)) {
        least = d;
        loh = doh;
        lw = w;
      }
    }
    return least;
  },
};
