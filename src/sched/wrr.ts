/**
 * Weighted round robin (ip_vs_wrr.c): passes over the list with a falling weight threshold
 * cw = mw, mw - di, ..., 1, where di is the gcd of the positive weights and mw the largest
 * weight less (di - 1); each pick is the next dest from the current position whose weight is
 * >= cw. Every add, delete or edit of a dest (ip_vs_wrr_dest_changed) resets the position to
 * the list head and adjusts cw: cw = mw when cw > mw or cw == 0, else cw rounded down to a
 * multiple of di, plus 1. That adjustment is why the first cycle after the dests are added one
 * by one differs from a fresh start (checklist 20-21: the guest's sequences are in
 * test/kernel/oracle). The kernel runs it once per change, so the worker replays every
 * change it has not seen from the service's change log (config/model.ts destChanges), which
 * config/compile.ts stores as this scheduler's table: [count, (epoch, gcd, max weight, bind) *
 * count].
 */
import { DEST_CHANGE_WORDS, SVC_EPOCH, SVC_WORDS } from "../service/tables.ts";
import { listLen, listOff, SCHED_STATE_WORDS, tableOff, weightOf, type Scheduler, type SchedView, type TableInput } from "./scheduler.ts";

/** State words: current list index + 1 (0 = head), cw, mw, di. */
const CL = 0,
  CW = 1,
  MW = 2,
  DI = 3;

/** Apply one log entry: init_svc (bind) or dest_changed. */
function apply(st: Int32Array, s: number, g: number, max: number, bind: boolean): void {
  const di = g > 0 ? g : 1;
  const mw = max - (di - 1);
  st[s + CL] = 0;
  st[s + DI] = di;
  st[s + MW] = mw;
  const cw = st[s + CW];
  if (bind || cw > mw || cw === 0) st[s + CW] = mw;
  else if (di > 1) st[s + CW] = Math.trunc(cw / di) * di + 1;
}

/** Replay the service's log entries newer than `afterEpoch` (all of them when it is -1). */
function replay(v: SchedView, svc: number, afterEpoch: number): void {
  const b = v.t.buckets,
    off = tableOff(v.t, svc),
    s = svc * SCHED_STATE_WORDS;
  const n = b[off];
  for (let i = 0; i < n; i++) {
    const e = off + 1 + i * DEST_CHANGE_WORDS;
    if (afterEpoch >= 0 && b[e] <= afterEpoch) continue;
    // a log cut short by a long batch starts at its oldest kept entry as if bound there
    apply(v.state, s, b[e + 1], b[e + 2], b[e + 3] !== 0 || (afterEpoch < 0 && i === 0));
  }
}

export const wrr: Scheduler = {
  name: "wrr",
  tableSize: (svc: TableInput) => 1 + svc.destChanges.length,
  buildTable(svc, out, off) {
    out[off] = svc.destChanges.length / DEST_CHANGE_WORDS;
    for (let i = 0; i < svc.destChanges.length; i++) out[off + 1 + i] = svc.destChanges[i];
  },
  init(v, svc) {
    v.state.fill(0, svc * SCHED_STATE_WORDS, (svc + 1) * SCHED_STATE_WORDS);
    replay(v, svc, -1);
  },
  update(v, svc, prev) {
    replay(v, svc, prev.svc[svc * SVC_WORDS + SVC_EPOCH]);
  },
  schedule(v, svc) {
    const t = v.t,
      st = v.state;
    const s = svc * SCHED_STATE_WORDS;
    const off = listOff(t, svc),
      n = listLen(t, svc);
    if (st[s + MW] === 0) return -1;
    // positions: 0 = the list head, i + 1 = list index i; `last` is where this call started
    const last = st[s + CL];
    let pos = last;
    let stop = -1;
    let lastPass = false,
      restarted = false;
    for (;;) {
      // list_for_each_entry_continue: the entries after `pos` up to the end of the list
      for (let i = pos; i < n; i++) {
        const d = t.destList[off + i];
        if (v.overload[d] === 0 && weightOf(t, d) >= st[s + CW]) {
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
        // stop after a full pass with cw <= di, or when the first pass started at the head
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
