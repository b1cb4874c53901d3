/**
 * Never queue (ip_vs_nq.c): the first dest in list order without active connections wins at
 * once, whatever its weight; otherwise sed's rule (overhead active + 1 per weight). Weight-0
 * and overloaded dests are skipped.
 */
import { listLen, listOff, productGreater, weightOf, type Scheduler } from "./scheduler.ts";

export const nq: Scheduler = {
  name: "nq",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t,
      off = listOff(t, svc),
      n = listLen(t, svc);
    let least = -1,
      loh = 0,
      lw = 0;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      const w = weightOf(t, d);
      if (v.overload[d] !== 0 || w === 0) continue;
      if (v.active[d] === 0) return d;
      const doh = v.active[d] + 1;
      if (least < 0 || productGreater(loh, w, doh, lw)) {
        least = d;
        loh = doh;
        lw = w;
      }
    }
    return least;
  },
};
