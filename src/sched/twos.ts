/**
 * Weighted random twos choice (ip_vs_twos.c, Linux 6.3 and later; the 6.1 oracle does not have
 * it): draw two dests at random in proportion to their weights (r in [0, sum of usable weights],
 * the first dest where r minus the running weight sum reaches <= 0), then keep the second one if
 * its overhead per weight is strictly smaller: w2 * oh1 > w1 * oh2. The kernel multiplies int by
 * int; Math.imul reproduces its 32-bit wrap.
 */
import { connOverhead, listLen, listOff, weightOf, type Scheduler } from "./scheduler.ts";

export const twos: Scheduler = {
  name: "twos",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t,
      off = listOff(t, svc),
      n = listLen(t, svc);
    let total = 0,
      any = -1;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      const w = weightOf(t, d);
      if (v.overload[d] === 0 && w > 0) {
        total = (total + w) | 0;
        any = d;
      }
    }
    if (any < 0) return -1;
    // "+ 1" so that both ends of [0, total] can be drawn, as the kernel does
    total = (total + 1) >>> 0;
    let r1 = v.random() % total,
      r2 = v.random() % total;
    let c1 = any,
      c2 = -1,
      w1 = -1,
      w2 = -1,
      oh1 = 0,
      oh2 = 0;
    for (let i = 0; i < n; i++) {
      const d = t.destList[off + i];
      if (v.overload[d] !== 0) continue;
      const w = weightOf(t, d);
      if (w <= 0) continue;
      r1 -= w;
      r2 -= w;
      if (r1 <= 0 && w1 === -1) {
        c1 = d;
        w1 = w;
        oh1 = connOverhead(v, d);
      }
      if (r2 <= 0 && w2 === -1) {
        c2 = d;
        w2 = w;
        oh2 = connOverhead(v, d);
      }
      if (w1 !== -1 && w2 !== -1) break;
    }
    if (c2 >= 0 && Math.imul(w2, oh1) > Math.imul(w1, oh2)) c1 = c2;
    return c1;
  },
};
