/**
 * Schedulers by name and by id (the id is the index in service/schedulers.ts SCHEDULERS, which
 * is what compiled tables store). Every name ipvsadm knows has an entry, plus twos (Linux 6.3+).
 */
import { SCHEDULERS } from "../service/schedulers.ts";
import { dh } from "./dh.ts";
import { fo } from "./fo.ts";
import { lblc } from "./lblc.ts";
import { lblcr } from "./lblcr.ts";
import { lc } from "./lc.ts";
import { mh } from "./mh.ts";
import { nq } from "./nq.ts";
import { ovf } from "./ovf.ts";
import { rr } from "./rr.ts";
import type { Scheduler } from "./scheduler.ts";
import { sed } from "./sed.ts";
import { sh } from "./sh.ts";
import { twos } from "./twos.ts";
import { wlc } from "./wlc.ts";
import { wrr } from "./wrr.ts";

const byName: Record<string, Scheduler> = { rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos };

/** Schedulers indexed by scheduler id; undefined where none is implemented. */
export const SCHEDULER_BY_ID: (Scheduler | undefined)[] = SCHEDULERS.map((n) => byName[n]);

/** Return the scheduler of a name, or undefined. */
export function schedulerByName(name: string): Scheduler | undefined {
  return byName[name];
}
