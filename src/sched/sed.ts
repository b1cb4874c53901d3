/**
 * Shortest expected delay (ip_vs_sed.c): wlc's walk with overhead = active + 1 (inactive
 * connections are ignored), so with everything idle the largest weight wins whatever the list
 * order: (0 + 1) * w(d) > (0 + 1) * w(least).
 */
import { listLen, listOff, productGreater, weightOf, type Scheduler } from "./scheduler.ts";

export const sed: Scheduler = {
  name: "sed",
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
        loh = v.active[d] + 1;
        lw = w;
        break;
      }
    }
    if (least < 0) return -1;
    for (i++; i < n; i++) {
      const d = t.destList[off + i];
      if (v.overload[d] !== 0) continue;
      const w = weightOf(t, d);
      const doh = v.active[d] + 1;
      if (productGreater(loh, w, doh, lw)) {
        least = d;
        loh = doh;
        lw = w;
      }
    }
    return least;
  },
};
