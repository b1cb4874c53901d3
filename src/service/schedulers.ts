/**
 * The scheduler names xvs knows, in id order: a compiled service stores its scheduler as the
 * index in SCHEDULERS (tables.ts SVC_SCHED), sched/registry.ts maps the same index to the code,
 * and the API, config file and CLI take the names. Every name ipvsadm knows, plus twos (6.3+).
 */
export const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/** ipvsadm's -b flags (IP_VS_SVC_F_SCHED1..3 under their generic and per-scheduler names). */
export const SCHED_FLAGS = ["flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"] as const;
export type SchedFlag = (typeof SCHED_FLAGS)[number];

/** Scheduler of `-A` without `-s` (ipvsadm DEF_SCHED). */
export const DEFAULT_SCHEDULER: SchedulerName = "wlc";
