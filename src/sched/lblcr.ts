/**
 * Locality-based least connection with replication (ip_vs_lblcr.c): the per-service cache maps
 * a destination address to a *set* of dests (newest first). The set's least loaded member
 * (overhead per weight; weight > 0, available, not OVERLOADed) serves the connection unless it
 * is missing or overloaded in lblc's sense; then wlc's pick over the whole service joins the set
 * and serves. A set of more than one member that has not changed for lblcr_expiration loses its
 * most loaded member. Entries age as locality.ts describes.
 */
import { FLOW_DST } from "../wire/flow.ts";
import { DEFAULT_EXPIRATION_TICKS, type LocalityTable, SET_MAX } from "./locality.ts";
import { initLocality, localityOverloaded, localityTable, ownDest } from "./lblc.ts";
import { connOverhead, productGreater, weightOf, type Scheduler, type SchedView } from "./scheduler.ts";
import { wlc } from "./wlc.ts";

/** Payload words: set size, set lastmod (ticks), members. */
const SIZE = 0,
  LASTMOD = 1,
  MEMBERS = 2;
const WIDTH = MEMBERS + SET_MAX;

/** ip_vs_dest_set_min: the member with the least overhead per weight, or -1. */
function setMin(v: SchedView, svc: number, tb: LocalityTable, slot: number): number {
  const o = slot * WIDTH,
    n = tb.data[o + SIZE];
  let i = 0,
    least = -1,
    loh = 0,
    lw = 0;
  for (; i < n; i++) {
    const d = tb.data[o + MEMBERS + i];
    if (v.overload[d] !== 0) continue;
    if (weightOf(v.t, d) > 0 && ownDest(v, svc, d)) {
      least = d;
      loh = connOverhead(v, d);
      lw = weightOf(v.t, d);
      break;
    }
  }
  if (least < 0) return -1;
  for (i++; i < n; i++) {
    const d = tb.data[o + MEMBERS + i];
    if (v.overload[d] !== 0) continue;
    const doh = connOverhead(v, d),
      w = weightOf(v.t, d);
    if (productGreater(loh, w, doh, lw) && ownDest(v, svc, d)) {
      least = d;
      loh = doh;
      lw = w;
    }
  }
  return least;
}

/** ip_vs_dest_set_max: the member with the most overhead per weight (weight > 0), or -1. */
function setMax(v: SchedView, tb: LocalityTable, slot: number): number {
  const o = slot * WIDTH,
    n = tb.data[o + SIZE];
  let i = 0,
    most = -1,
    moh = 0,
    mw = 0;
  for (; i < n; i++) {
    const d = tb.data[o + MEMBERS + i];
    if (weightOf(v.t, d) > 0) {
      most = d;
      moh = connOverhead(v, d);
      mw = weightOf(v.t, d);
      break;
    }
  }
  if (most < 0) return -1;
  for (i++; i < n; i++) {
    const d = tb.data[o + MEMBERS + i];
    const doh = connOverhead(v, d),
      w = weightOf(v.t, d);
    // moh / mw < doh / w
    if (productGreater(doh, mw, moh, w) && w > 0) {
      most = d;
      moh = doh;
      mw = w;
    }
  }
  return most;
}

/** ip_vs_dest_set_insert: add at the head unless present (a full set stays as it is). */
function setInsert(tb: LocalityTable, slot: number, d: number, now: number): void {
  const o = slot * WIDTH,
    n = tb.data[o + SIZE];
  for (let i = 0; i < n; i++) if (tb.data[o + MEMBERS + i] === d) return;
  if (n >= SET_MAX) return;
  tb.data.copyWithin(o + MEMBERS + 1, o + MEMBERS, o + MEMBERS + n);
  tb.data[o + MEMBERS] = d;
  tb.data[o + SIZE] = n + 1;
  tb.data[o + LASTMOD] = now;
}

/** ip_vs_dest_set_erase. */
function setErase(tb: LocalityTable, slot: number, d: number, now: number): void {
  const o = slot * WIDTH,
    n = tb.data[o + SIZE];
  for (let i = 0; i < n; i++) {
    if (tb.data[o + MEMBERS + i] !== d) continue;
    tb.data.copyWithin(o + MEMBERS + i, o + MEMBERS + i + 1, o + MEMBERS + n);
    tb.data[o + SIZE] = n - 1;
    tb.data[o + LASTMOD] = now;
    return;
  }
}

export const lblcr: Scheduler = {
  name: "lblcr",
  init(v, svc) {
    initLocality(v, svc, WIDTH);
  },
  update() {},
  schedule(v, svc, flow, row) {
    const now = v.now ?? 0;
    const tb = localityTable(v, svc, WIDTH);
    tb.age(now, DEFAULT_EXPIRATION_TICKS);
    const a0 = flow[row + FLOW_DST],
      a1 = flow[row + FLOW_DST + 1],
      a2 = flow[row + FLOW_DST + 2],
      a3 = flow[row + FLOW_DST + 3];
    const slot = tb.find(a0, a1, a2, a3);
    if (slot >= 0) {
      tb.lastuse[slot] = now;
      let d = setMin(v, svc, tb, slot);
      const o = slot * WIDTH;
      // more than one member and unchanged for the expiration time: drop the most loaded
      if (tb.data[o + SIZE] > 1 && ((now - tb.data[o + LASTMOD]) | 0) > DEFAULT_EXPIRATION_TICKS) {
        const m = setMax(v, tb, slot);
        if (m >= 0) setErase(tb, slot, m, now);
      }
      if (d >= 0 && !localityOverloaded(v, svc, d)) return d;
      d = wlc.schedule(v, svc, flow, row);
      if (d < 0) return -1;
      setInsert(tb, slot, d, now);
      return d;
    }
    const d = wlc.schedule(v, svc, flow, row);
    if (d < 0) return -1;
    const ns = tb.insert(a0, a1, a2, a3, now);
    if (ns >= 0) {
      tb.data[ns * WIDTH + SIZE] = 0;
      setInsert(tb, ns, d, now);
    }
    return d;
  },
};
