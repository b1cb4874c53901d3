/**
 * Weighted round robin (ip_vs_wrr.c): passes over the list with a falling weight threshold
 * cw = mw, mw - di, ..., 1, where di is the gcd of the positive weights and mw the largest
 * weight less (di - 1). Every change of the dest set or of a weight resets the position to the
 * list head and adjusts cw the way ip_vs_wrr_dest_changed does, which is what makes the first
 * cycle after changes differ from a fresh start.
 */
import { DEST_WEIGHT, DEST_WORDS, SVC_DEST_N, SVC_DEST_OFF, SVC_WORDS, type Tables } from "../service/tables.ts";
import { SCHED_STATE_WORDS, type SchedView, type Scheduler } from "./scheduler.ts";

/** state words: current list index + 1 (0 = head), cw, mw, di. */
const CL = 0, CW = 1, MW = 2, DI = 3;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function weights(t: Tables, svc: number): { di: number; max: number } {
  const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF], n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
  let g = 0, max = 0;
  for (let i = 0; i < n; i++) {
    const w = t.dest[t.destList[off + i] * DEST_WORDS + DEST_WEIGHT];
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > max) max = w;
  }
  return { di: g || 1, max };
}

export const wrr: Scheduler = {
  name: "wrr",
  init(v, svc) {
    const s = svc * SCHED_STATE_WORDS;
    const { di, max } = weights(v.t, svc);
    v.state[s + CL] = 0;
    v.state[s + DI] = di;
    v.state[s + MW] = max - (di - 1);
    v.state[s + CW] = v.state[s + MW];
  },
  update(v, svc) {
    const s = svc * SCHED_STATE_WORDS;
    const { di, max } = weights(v.t, svc);
    v.state[s + CL] = 0;
    v.state[s + DI] = di;
    const mw = max - (di - 1);
    v.state[s + MW] = mw;
    const cw = v.state[s + CW];
    if (cw > mw || cw === 0) v.state[s + CW] = mw;
    else if (di > 1) v.state[s + CW] = Math.trunc(cw / di) * di + 1;
  },
  schedule(v, svc) {
    const t = v.t, st = v.state;
    const s = svc * SCHED_STATE_WORDS;
    const off = t.svc[svc * SVC_WORDS + SVC_DEST_OFF], n = t.svc[svc * SVC_WORDS + SVC_DEST_N];
    if (st[s + MW] === 0) return -1;
    // positions: 0 = head, i + 1 = list index i; `last` is where this call started
    const last = st[s + CL];
    let pos = last;
    let stop = -1;
    let lastPass = false, restarted = false;
    for (;;) {
      // list_for_each_entry_continue: the entries after `pos` up to the end of the list
      for (let i = pos; i < n; i++) {
        const d = t.destList[off + i];
        if (v.overload[d] === 0 && t.dest[d * DEST_WORDS + DEST_WEIGHT] >= st[s + CW]) {
          st[s + CL] = i + 1;
          return d;
        }
        if (i + 1 === stop) {
          st[s + CL] = i + 1;
          return -1; // all destinations are overloaded
        }
      }
      pos = 0;
      st[s + CW] -= st[s + DI];
      if (st[s + CW] <= 0) {
        st[s + CW] = st[s + MW];
        if (lastPass || last === 0) {
          st[s + CL] = 0;
          return -1;
        }
        restarted = true;
      }
      lastPass = st[s + CW] <= st[s + DI];
      if (lastPass && restarted && last !== 0) stop = last;
    }
  },
};
