/**
 * Locality-based least connection (ip_vs_lblc.c): a per-service cache maps a packet's
 * destination address (for a fwmark service, whatever address was marked) to the dest last
 * chosen for it. The cached dest is used while it is available, has weight > 0 and is not
 * "overloaded" in lblc's own sense: more active connections than its weight while some dest of
 * the service has fewer than half its weight active (the OVERLOAD flag is not consulted here).
 * Otherwise wlc picks a dest and replaces the entry. Entries age as locality.ts describes.
 */
import { DEST_SVC, DEST_WORDS } from "../service/tables.ts";
import { FLOW_DST } from "../wire/flow.ts";
import { DEFAULT_EXPIRATION_TICKS, initSharedTable, LocalityTable, sharedTableOffset } from "./locality.ts";
import { available, listLen, listOff, weightOf, type Scheduler, type SchedView } from "./scheduler.ts";
import { wlc } from "./wlc.ts";

/** lblc's is_overloaded: active > weight while another dest has active * 2 < weight. */
export function localityOverloaded(v: SchedView, svc: number, d: number): boolean {
  const t = v.t;
  if (v.active[d] <= weightOf(t, d)) return false;
  const off = listOff(t, svc),
    n = listLen(t, svc);
  for (let i = 0; i < n; i++) {
    const x = t.destList[off + i];
    if (v.active[x] * 2 < weightOf(t, x)) return true;
  }
  return false;
}

/**
 * Return the service's cache: the shared one in the locality pool when it has one (this
 * worker's views over it are made once per table), else this view's own, made on first use.
 */
export function localityTable(v: SchedView, svc: number, width: number): LocalityTable {
  v.aux ??= [];
  const aux = v.aux;
  let tb = aux[svc] as LocalityTable | undefined;
  const p = v.locality;
  const off = p !== undefined ? sharedTableOffset(p, svc, width) : -1;
  if (off >= 0) {
    if (!tb || tb.offset !== off || tb.width !== width || tb.data.buffer !== p!.pool) aux[svc] = tb = new LocalityTable(width, 0, p!.pool, off);
    return tb;
  }
  if (!tb || tb.width !== width || tb.data.buffer === p?.pool) aux[svc] = tb = new LocalityTable(width, v.now ?? 0);
  return tb;
}

/**
 * done_service + init_service: a fresh, empty cache. With a locality pool the service's shared
 * table is carved out or re-zeroed (init runs once over all workers, under the service's lock);
 * this view's own table, if any, is dropped.
 */
export function initLocality(v: SchedView, svc: number, width: number): void {
  v.aux ??= [];
  const aux = v.aux;
  if (v.locality !== undefined && initSharedTable(v.locality, svc, width, v.now ?? 0)) aux[svc] = undefined;
  else aux[svc] = new LocalityTable(width, v.now ?? 0);
}

/** True when dest id `d` is a live dest of service `svc` (ids of purged dests are reused). */
export function ownDest(v: SchedView, svc: number, d: number): boolean {
  return available(v.t, d) && v.t.dest[d * DEST_WORDS + DEST_SVC] === svc;
}

export const lblc: Scheduler = {
  name: "lblc",
  init(v, svc) {
    initLocality(v, svc, 1);
  },
  update() {},
  schedule(v, svc, flow, row) {
    const now = v.now ?? 0;
    const tb = localityTable(v, svc, 1);
    tb.age(now, DEFAULT_EXPIRATION_TICKS);
    const a0 = flow[row + FLOW_DST],
      a1 = flow[row + FLOW_DST + 1],
      a2 = flow[row + FLOW_DST + 2],
      a3 = flow[row + FLOW_DST + 3];
    let slot = tb.find(a0, a1, a2, a3);
    if (slot >= 0) {
      tb.lastuse[slot] = now;
      const d = tb.data[slot];
      if (ownDest(v, svc, d) && weightOf(v.t, d) > 0 && !localityOverloaded(v, svc, d)) return d;
    }
    const d = wlc.schedule(v, svc, flow, row);
    if (d < 0) return -1;
    // ip_vs_lblc_new: a new entry, or the old one pointed at the new dest
    if (slot < 0) slot = tb.insert(a0, a1, a2, a3, now);
    else tb.lastuse[slot] = now;
    if (slot >= 0) tb.data[slot] = d;
    return d;
  },
};
