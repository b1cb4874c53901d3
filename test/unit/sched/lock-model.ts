/** The model every lock-stress worker builds (same ids everywhere): see lock-stress.test.ts. */
import { Model } from "../../../src/config/model.ts";

export const THRESHOLD = 5;

/** Distinct destination addresses the lblc service sees (its cache must end with exactly these). */
export const LBLC_ADDRS = 64;

export function buildModel(): {
  model: Model;
  split: number;
  capped: number;
  cappedDest: number;
  sibling: number;
  threshold: number;
  lblcSvc: number;
} {
  const model = new Model();
  const base = { protocol: "tcp" as const, address: "198.18.0.100", onePacket: false, schedFlags: [] };
  const split = model.addService({ ...base, port: 80, scheduler: "rr" }).id;
  for (const a of ["198.18.17.2", "198.18.18.2", "198.18.19.2"])
    model.addDest({ ...base, port: 80 }, { address: a, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  const capped = model.addService({ ...base, port: 81, scheduler: "rr" }).id;
  const cappedDest = model.addDest(
    { ...base, port: 81 },
    { address: "198.18.17.2", forward: "route", weight: 1, upperThreshold: THRESHOLD, lowerThreshold: 0 },
  ).id;
  const sibling = model.addDest({ ...base, port: 81 }, { address: "198.18.18.2", forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 }).id;
  // lblc with weights far above anything held: every address stays on the dest first chosen for it
  const lblcSvc = model.addService({ ...base, port: 82, scheduler: "lblc" }).id;
  for (const a of ["198.18.17.2", "198.18.18.2"])
    model.addDest({ ...base, port: 82 }, { address: a, forward: "route", weight: 1000, upperThreshold: 0, lowerThreshold: 0 });
  return { model, split, capped, cappedDest, sibling, threshold: THRESHOLD, lblcSvc };
}
