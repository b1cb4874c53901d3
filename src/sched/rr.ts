/**
 * Round robin (ip_vs_rr.c). The position is the last chosen dest (or the list head); the next
 * pick walks on from there in list order, wrapping once, skipping weight-0 and overloaded dests
 * (the dest at the position itself is the last candidate). Dests added with ipvsadm -a go to
 * the list head, so A, B, C added in that order are served C, B, A (checklist 19). When the dest
 * at the position is deleted, the position moves to its predecessor, as ip_vs_rr_del_dest
 * does, so the walk continues with the dest that followed it.
 */
import { DEST_WEIGHT, DEST_WORDS, SVC_DEST_N, SVC_DEST_OFF, SVC_WORDS, type Tables } from "../service/tables.ts";
import { SCHED_STATE_WORDS, type Scheduler } from "./scheduler.ts";

/** state[0]: dest id + 1 of the position, 0 = list head. */
const POS = 0;

function indexOf(t: Tables, svc: number, destId: number): number {
  const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF],
    n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
  for (let i = 0; i < n; i++) if (t.destList[off + i] === destId) return i;
  return -1;
}

export const rr: Scheduler = {
  name: "rr",
  init(v, svc) {
    v.state[svc * SCHED_STATE_WORDS + POS] = 0;
  },
  update(v, svc, prev) {
    const s = svc * SCHED_STATE_WORDS + POS;
    const pos = v.state[s] - 1;
    if (pos < 0 || indexOf(v.t, svc, pos) >= 0) return;
    // the position's dest is gone: step back in the old list to the nearest dest still listed
    let i = indexOf(prev, svc, pos);
    const off = prev.svc[svc * SVC_WORDS + SVC_DEST_OFF];
    while (--i >= 0) {
      const d = prev.destList[off + i];
      if (indexOf(v.t, svc, d) >= 0) {
        v.state[s] = d + 1;
        return;
      }
    }
    v.state[s] = 0;
  },
  schedule(v, svc) {
    const t = v.t;
    const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF],
      n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
    if (n === 0) return -1;
    const s = svc * SCHED_STATE_WORDS + POS;
    const pos = v.state[s] - 1;
    const start = pos < 0 ? -1 : indexOf(t, svc, pos);
    for (let k = 1; k <= n; k++) {
      const i = start < 0 ? k - 1 : (start + k) % n;
      const d = t.destList[off + i];
      if (v.overload[d] === 0 && t.dest[d * DEST_WORDS + DEST_WEIGHT] > 0) {
        v.state[s] = d + 1;
        return d;
      }
    }
    return -1;
  },
};
