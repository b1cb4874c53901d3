/**
 * Bad input for schedulers, weights, thresholds and persistence, as the schemas (shared by the
 * API, the CLI and config files) refuse it. What the 6.1 guest answered for each is recorded in
 * test/kernel/oracle (scenario bad-input): the guest accepts weight 65536 and anything
 * up to INT_MAX, refuses l > u (also with u = 0) with ERANGE ("Numerical result out of range";
 * the CLI maps THRESHOLD_ORDER_MESSAGE to it), and refuses -p 0 and -p above 31 days. twos is
 * newer than the guest's kernel; xvs has it.
 */
import { describe, expect, test } from "bun:test";
import { DestSpec, MAX_WEIGHT, ServiceSpec, THRESHOLD_ORDER_MESSAGE } from "../../../src/control/schemas.ts";
import { SCHEDULER_BY_ID, schedulerByName } from "../../../src/sched/registry.ts";
import { SCHEDULERS } from "../../../src/control/schemas.ts";
import observations from "../../kernel/oracle/observations.json";

const svc = (o: Record<string, unknown>) => ServiceSpec.safeParse({ protocol: "tcp", address: "198.18.0.100", port: 80, ...o });
const dst = (o: Record<string, unknown>) => DestSpec.safeParse({ address: "198.18.17.2", ...o });
const messages = (r: { success: boolean; error?: { issues: { message: string }[] } }) => (r.success ? [] : r.error!.issues.map((i) => i.message));

describe("scheduler-related bad input", () => {
  test("every scheduler name ipvsadm knows, and twos, is implemented; unknown names are refused", () => {
    for (const n of SCHEDULERS) expect(schedulerByName(n)?.name).toBe(n);
    expect(SCHEDULER_BY_ID.every((s) => s !== undefined)).toBe(true);
    expect(svc({ scheduler: "nosuch" }).success).toBe(false);
    expect(svc({ scheduler: "twos" }).success).toBe(true);
  });

  test("scheduler flags: sh-*/mh-* only with their scheduler, unknown flags refused", () => {
    expect(messages(svc({ scheduler: "rr", schedFlags: ["sh-port"] }))).toEqual(["incompatible scheduler flag `sh-port'"]);
    expect(messages(svc({ scheduler: "sh", schedFlags: ["mh-fallback"] }))).toEqual(["incompatible scheduler flag `mh-fallback'"]);
    expect(svc({ scheduler: "sh", schedFlags: ["bogus"] }).success).toBe(false);
    expect(svc({ scheduler: "mh", schedFlags: ["mh-port", "mh-fallback"] }).success).toBe(true);
  });

  test("weights 0..INT_MAX are accepted (the guest takes 65536), others refused", () => {
    for (const w of [0, 1, 65535, 65536, MAX_WEIGHT]) expect(dst({ weight: w }).success).toBe(true);
    for (const w of [-1, MAX_WEIGHT + 1, 1.5]) expect(dst({ weight: w }).success).toBe(false);
    expect(MAX_WEIGHT).toBe(2147483647);
  });

  test("a lower threshold above the upper one is refused, also with no upper threshold", () => {
    expect(messages(dst({ upperThreshold: 5, lowerThreshold: 10 }))).toEqual([THRESHOLD_ORDER_MESSAGE]);
    expect(messages(dst({ upperThreshold: 0, lowerThreshold: 3 }))).toEqual([THRESHOLD_ORDER_MESSAGE]);
    expect(dst({ upperThreshold: MAX_WEIGHT, lowerThreshold: MAX_WEIGHT }).success).toBe(true);
  });

  test("persistence timeout 1..31 days (default 360 s); 0 and more are refused", () => {
    expect(svc({ scheduler: "rr", persistence: {} })).toMatchObject({ success: true, data: { persistence: { timeout: 360 } } });
    expect(svc({ scheduler: "rr", persistence: { timeout: 2678400 } }).success).toBe(true);
    expect(svc({ scheduler: "rr", persistence: { timeout: 0 } }).success).toBe(false);
    expect(svc({ scheduler: "rr", persistence: { timeout: 2678401 } }).success).toBe(false);
  });

  test("the guest refused exactly the lines the schemas refuse (bad-input scenario), twos aside", () => {
    const obs = (observations as { scenarios: Record<string, { obs: { rc?: number; err?: string }[] }> }).scenarios["bad-input"].obs;
    const errs = obs.filter((o) => o.rc !== undefined && o.rc !== 0).map((o) => o.err);
    expect(errs).toContain("Numerical result out of range");
    expect(errs).toContain("illegal weight specified");
    expect(errs).toContain("invalid timeout value `0' specified");
    expect(errs.filter((e) => e === "Scheduler or persistence engine not found").length).toBe(2); // nosuch, and twos on 6.1
  });
});
