/**
 * Schedulers by name and by id (the id is the index in schemas.ts SCHEDULERS, which is what
 * compiled tables store). A name that is valid in ipvsadm but not implemented here has no entry:
 * the control plane refuses it with the kernel's "Scheduler or persistence engine not found".
 */
import { SCHEDULERS } from "../control/schemas.ts";
import { lc } from "./lc.ts";
import { rr } from "./rr.ts";
import type { Scheduler } from "./scheduler.ts";
import { sh } from "./sh.ts";
import { wlc } from "./wlc.ts";
import { wrr } from "./wrr.ts";

const byName: Record<string, Scheduler> = { rr, wrr, lc, wlc, sh };

/** Schedulers indexed by scheduler id; undefined where none is implemented. */
export const SCHEDULER_BY_ID: (Scheduler | undefined)[] = SCHEDULERS.map((n) => byName[n]);

/** Return the scheduler of a name, or undefined. */
export function schedulerByName(name: string): Scheduler | undefined {
  return byName[name];
}
