/**
 * Weighted least connection (ip_vs_wlc.c), the default scheduler: the first usable dest in list
 * order starts as the least loaded; a later dest replaces it when loh * w(d) > doh * w(least),
 * i.e. when its overhead per weight is strictly smaller. Products are compared exactly (they
 * can exceed 2^53 only for absurd weights, where doubles still order them correctly).
 */
import { DEST_WEIGHT, DEST_WORDS, SVC_DEST_N, SVC_DEST_OFF, SVC_WORDS } from "../service/tables.ts";
import { connOverhead, type Scheduler } from "./scheduler.ts";

export const wlc: Scheduler = {
  name: "wlc",
  init() {},
  update() {},
  schedule(v, svc) {
    const t = v.t;
    const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF], n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
    let i = 0, least = -1, loh = 0, lw = 0;
    for (; i < n; i++) {
      const d = t.destList[off + i];
      const w = t.dest[d * DEST_WORDS + DEST_WEIGHT];
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
      const w = t.dest[d * DEST_WORDS + DEST_WEIGHT];
      const doh = connOverhead(v, d);
      if (loh * w > doh * lw) {
        least = d;
        loh = doh;
        lw = w;
      }
    }
    return least;
  },
};
