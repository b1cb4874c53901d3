/**
 * The health monitor against an in-process daemon (fake dataplane, tables compiled offline) with
 * a fake clock, fake timers and a scripted checker: keepalived's retry counting, remove vs
 * inhibit_on_failure, restore, alpha, quorum with hysteresis and the sorry server, misc_dynamic
 * weights, the configuration kept behind the live table, one log line per change, the API.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { HealthMonitor, type HealthDeps } from "../../../src/health/monitor.ts";
import type { CheckResult } from "../../../src/health/checkers.ts";
import type { CheckerT } from "../../../src/config/health.ts";
import { modelToConfig } from "../../../src/control/batch.ts";
import { DestSpec, ServiceList, ServiceSpec } from "../../../src/control/schemas.ts";
import { Daemon } from "../../../src/control/daemon.ts";
import { parseLogLine } from "../../../src/log.ts";
import { startXvs, TOKEN, type Xvs } from "../cli/fixture.ts";

const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const SVC_ID = "tcp:198.18.0.100:80";

/** Timers on a clock the test moves. */
class FakeClock {
  now = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  setTimer = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  };
  clearTimer = (id: unknown): void => {
    this.timers.delete(id as number);
  };
  /** Move the clock by `ms`, firing due timers in time order and letting their promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | null = null;
      for (const t of this.timers) if (t[1].at <= end && (!first || t[1].at < first[1].at)) first = t;
      if (!first) break;
      this.timers.delete(first[0]);
      this.now = first[1].at;
      first[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** What each real server's checks answer: address -> result (default success). */
class Script {
  results = new Map<string, CheckResult>();
  /** Results by checker kind, before those by address. */
  byKind = new Map<string, CheckResult>();
  calls: { address: string; kind: string; at: number }[] = [];
  constructor(private clock: FakeClock) {}
  run = async (c: CheckerT, t: { address: string; port: number }): Promise<CheckResult> => {
    this.calls.push({ address: t.address, kind: c.kind, at: this.clock.now });
    return this.byKind.get(c.kind) ?? this.results.get(t.address) ?? { ok: true, reason: "ok" };
  };
  fail(address: string): void {
    this.results.set(address, { ok: false, reason: "connect: ECONNREFUSED" });
  }
  pass(address: string, weight?: number): void {
    this.results.set(address, weight === undefined ? { ok: true, reason: "ok" } : { ok: true, reason: "ok", weight });
  }
}

interface Bench {
  x: Xvs;
  clock: FakeClock;
  script: Script;
  monitor: HealthMonitor;
  logs: Record<string, unknown>[];
}

let restoreStderr: (() => void) | null = null;
afterEach(() => {
  restoreStderr?.();
  restoreStderr = null;
});

function bench(): Bench {
  const x = startXvs();
  const clock = new FakeClock();
  const script = new Script(clock);
  const deps: Partial<HealthDeps> = {
    run: script.run,
    now: () => clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    random: () => 0.5,
    maxInFlight: 4,
  };
  const monitor = new HealthMonitor(x.daemon, deps);
  x.daemon.health = monitor;
  const logs: Record<string, unknown>[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => {
    for (const line of String(s).split("\n")) {
      const o = parseLogLine(line);
      if (o) logs.push(o);
    }
    return true;
  }) as typeof process.stderr.write;
  restoreStderr = () => {
    process.stderr.write = write;
  };
  return { x, clock, script, monitor, logs };
}

async function call(x: Xvs, method: string, path: string, body?: unknown) {
  const res = await x.app.request(path, { method, headers: AUTH, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const tcp = (extra: Record<string, unknown> = {}) => ({ kind: "tcp", delay_loop: 1, retry: 1, delay_before_retry: 1, connect_timeout: 1, ...extra });

async function setup(
  b: Bench,
  health: Record<string, unknown> | undefined,
  dests: { address: string; weight?: number; inhibit?: boolean; checkers?: unknown[] }[],
): Promise<void> {
  const svc = { protocol: "tcp", address: "198.18.0.100", port: 80, scheduler: "wrr", ...(health ? { health } : {}) };
  expect((await call(b.x, "POST", "/v1/services", svc)).status).toBe(201);
  for (const d of dests) {
    const r = await call(b.x, "POST", `/v1/services/${SVC_ID}/dests`, {
      address: d.address,
      port: 8080,
      forward: "masq",
      weight: d.weight ?? 1,
      checkers: d.checkers ?? [tcp()],
      ...(d.inhibit ? { inhibit_on_failure: true } : {}),
    });
    expect(r.status).toBe(201);
  }
}

/** The live table: address -> weight. */
function live(b: Bench): Record<string, number> {
  const s = b.x.daemon.model.services[0];
  return Object.fromEntries(s.dests.map((d) => [d.spec.address, d.spec.weight]));
}

/** The configuration (what is saved): address -> weight. */
function configured(b: Bench): Record<string, number> {
  const doc = modelToConfig(b.x.daemon.config());
  return Object.fromEntries(doc.services[0].dests.map((d) => [d.address, d.weight]));
}

const A = "198.18.1.11",
  B = "198.18.1.12",
  C = "198.18.1.13",
  D = "198.18.1.14",
  SORRY = "198.18.1.99";

describe("retry counting (keepalived retry_it)", () => {
  test("an up real server goes down after 1 + retry failed attempts, delay_before_retry apart, and returns on the first success", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A, checkers: [tcp({ retry: 2, delay_before_retry: 0.5 })] }, { address: B }]);
    await b.clock.advance(1000); // first attempts (phase 0.5 s): pass
    expect(Object.keys(live(b)).sort()).toEqual([A, B]);
    b.script.fail(A);
    const from = b.clock.now;
    await b.clock.advance(1000); // failure 1 (loop), then retry 1 0.5 s later
    expect(live(b)[A]).toBe(1);
    await b.clock.advance(400);
    expect(live(b)[A]).toBe(1);
    await b.clock.advance(200); // retry 2 fails: down
    expect(live(b)[A]).toBeUndefined();
    const attempts = b.script.calls.filter((c) => c.address === A && c.at > from).map((c) => c.at - from);
    expect(attempts).toEqual([500, 1000, 1500]);
    // detection within delay_loop + retry x delay_before_retry
    expect(attempts[2]).toBeLessThanOrEqual(1000 + 2 * 500);
    // a failing down server is not retried: next attempts are delay_loop apart
    await b.clock.advance(2000);
    const later = b.script.calls.filter((c) => c.address === A && c.at > from + 1500).map((c) => c.at - from);
    expect(later).toEqual([2500, 3500]);
    b.script.pass(A);
    await b.clock.advance(1000);
    expect(live(b)[A]).toBe(1);
    const lines = b.logs.filter((l) => l.server === `${A}:8080`);
    expect(lines.map((l) => `${l.msg} ${l.action}`)).toEqual(["real server down removed", "real server up restored"]);
    expect(lines[0].reason).toBe("tcp: connect: ECONNREFUSED");
  });

  test("retry 0 (MISC_CHECK's default) takes a real server down on the first failure", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A, checkers: [{ kind: "misc", misc_path: "/bin/true", delay_loop: 1 }] }]);
    await b.clock.advance(1000);
    b.script.fail(A);
    await b.clock.advance(1000);
    expect(live(b)[A]).toBeUndefined();
    expect(b.script.calls.filter((c) => c.address === A).length).toBe(2);
  });

  test("a real server is up only while every one of its checkers passes", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A, checkers: [tcp({ retry: 0 }), { kind: "http", urls: [{ path: "/" }], delay_loop: 1, retry: 0 }] }]);
    await b.clock.advance(1000);
    b.script.byKind.set("http", { ok: false, reason: "GET /: status 500" });
    await b.clock.advance(1000);
    expect(live(b)[A]).toBeUndefined();
    expect(b.monitor.serviceHealth(b.x.daemon.model.services[0])!.removed[0].health.reason).toBe("http: GET /: status 500");
  });
});

describe("what a failure does to the table", () => {
  test("removed: the live table loses the real server, the configuration keeps it; restored where the scheduler puts new servers", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [
      { address: A, weight: 3, checkers: [tcp({ retry: 0 })] },
      { address: B, weight: 2 },
    ]);
    await b.clock.advance(1000);
    const idBefore = b.x.daemon.model.services[0].dests.find((d) => d.spec.address === A)!.id;
    b.script.fail(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [B]: 2 });
    expect(configured(b)).toEqual({ [A]: 3, [B]: 2 });
    // the deleted dest waits in the trash with its id (its connections stay in the table, as in IPVS)
    expect(b.x.daemon.model.trash.map((d) => d.id)).toContain(idBefore);
    const list = ServiceList.parse((await call(b.x, "GET", "/v1/services")).json);
    expect(list.services[0].health!.removed).toMatchObject([{ address: A, port: 8080, weight: 3, health: { state: "down", last_result: "failure" } }]);
    b.script.pass(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 3, [B]: 2 });
    expect(b.x.daemon.model.services[0].dests.find((d) => d.spec.address === A)!.id).toBe(idBefore);
    const view = ServiceList.parse((await call(b.x, "GET", "/v1/services")).json).services[0];
    expect(view.dests.find((d) => d.address === A)!.health).toMatchObject({ state: "up", last_result: "success", reason: "all checkers pass" });
    expect(view.dests.find((d) => d.address === B)!.health!.state).toBe("up");
    // deleting it while it is out (ipvsadm -d) drops it from the configuration
    b.script.fail(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [B]: 2 });
    expect((await b.x.adm(["-d", "-t", "198.18.0.100:80", "-r", "198.18.1.11:8080"])).exit).toBe(0);
    expect(configured(b)).toEqual({ [B]: 2 });
    expect(b.monitor.size).toBe(1); // B's checks only
    expect((await b.x.adm(["-d", "-t", "198.18.0.100:80", "-r", "198.18.1.11:8080"])).stderr).toContain("No such destination");
  });

  test("inhibit_on_failure: weight 0 while down, the configured weight back when it passes; a user's weight change while down is kept for later", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A, weight: 5, inhibit: true, checkers: [tcp({ retry: 0 })] }]);
    await b.clock.advance(1000);
    b.script.fail(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 0 });
    expect(configured(b)).toEqual({ [A]: 5 });
    expect(b.logs.find((l) => l.msg === "real server down")!.action).toBe("weight 0");
    // PATCH the weight while it is down: live stays 0, the configuration takes 7
    expect((await call(b.x, "PATCH", `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`, { weight: 7 })).status).toBe(200);
    expect(live(b)).toEqual({ [A]: 0 });
    expect(configured(b)).toEqual({ [A]: 7 });
    // GET /v1/config shows the configuration
    expect((await call(b.x, "GET", "/v1/config")).json.services[0].dests[0].weight).toBe(7);
    b.script.pass(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 7 });
  });

  test("alpha: real servers start down until their first success", async () => {
    const b = bench();
    b.script.fail(A);
    await setup(b, { delay_loop: 1, alpha: true }, [{ address: A }, { address: B }]);
    expect(live(b)).toEqual({});
    expect(configured(b)).toEqual({ [A]: 1, [B]: 1 });
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [B]: 1 });
  });

  test("misc_dynamic: exit 2..255 sets the weight to code - 2, exit 0 brings back the configured weight", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A, weight: 10, checkers: [{ kind: "misc", misc_path: "/x", misc_dynamic: true, delay_loop: 1 }] }]);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 10 });
    b.script.pass(A, 5); // exit 7
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 5 });
    expect(configured(b)).toEqual({ [A]: 10 });
    expect(b.logs.filter((l) => l.msg === "real server weight set by its check script").map((l) => l.weight)).toEqual([5]);
    b.script.pass(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 10 });
  });

  test("deleting a real server or its checkers stops its checks", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1 }, [{ address: A }, { address: B }]);
    await b.clock.advance(1000);
    expect(b.monitor.size).toBe(2);
    expect((await call(b.x, "DELETE", `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`)).status).toBe(204);
    expect((await call(b.x, "PATCH", `/v1/services/${SVC_ID}/dests/198.18.1.12:8080`, { checkers: null })).status).toBe(200);
    expect(b.monitor.size).toBe(0);
    const n = b.script.calls.length;
    await b.clock.advance(5000);
    expect(b.script.calls.length).toBe(n);
  });
});

describe("quorum, hysteresis and the sorry server", () => {
  test("below quorum - hysteresis the sorry server replaces the live servers; back at quorum + hysteresis", async () => {
    const b = bench();
    const health = { delay_loop: 1, quorum: 3, hysteresis: 1, sorry_server: { address: SORRY, port: 8080 } };
    await setup(
      b,
      health,
      [A, B, C, D].map((address) => ({ address, checkers: [tcp({ retry: 0 })] })),
    );
    // while the service was being filled its live weight was below quorum (as keepalived, at start)
    expect(b.logs.filter((l) => String(l.msg).startsWith("quorum")).map((l) => `${l.msg} ${l.liveWeight}`)).toEqual(["quorum lost 0", "quorum regained 4"]);
    b.logs.length = 0;
    await b.clock.advance(1000);
    expect(Object.keys(live(b)).length).toBe(4);
    b.script.fail(A);
    b.script.fail(B);
    await b.clock.advance(1000); // live weight 2: not below quorum - hysteresis = 2
    expect(Object.keys(live(b)).sort()).toEqual([C, D]);
    b.script.fail(C);
    await b.clock.advance(1000); // live weight 1: quorum lost
    expect(live(b)).toEqual({ [SORRY]: 1 });
    expect(b.logs.filter((l) => String(l.msg).startsWith("quorum")).map((l) => `${l.msg} ${l.liveWeight} ${l.sorryServer}`)).toEqual(["quorum lost 1 added"]);
    expect(configured(b)).toEqual({ [A]: 1, [B]: 1, [C]: 1, [D]: 1 });
    b.script.pass(A);
    b.script.pass(B);
    await b.clock.advance(1000); // live weight 3 < quorum + hysteresis = 4: still the sorry server
    expect(live(b)).toEqual({ [SORRY]: 1 });
    b.script.pass(C);
    await b.clock.advance(1000); // 4: regained
    expect(Object.keys(live(b)).sort()).toEqual([A, B, C, D]);
    expect(b.logs.filter((l) => String(l.msg).startsWith("quorum")).map((l) => l.msg)).toEqual(["quorum lost", "quorum regained"]);
    const view = ServiceList.parse((await call(b.x, "GET", "/v1/services")).json).services[0];
    expect(view.health).toEqual({ quorum: "up", sorry_server_active: false, removed: [] });
  });

  test("sorry_server inhibit keeps it with weight 0 once the quorum is back", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1, quorum: 1, sorry_server: { address: SORRY, inhibit: true } }, [{ address: A, checkers: [tcp({ retry: 0 })] }]);
    await b.clock.advance(1000);
    b.script.fail(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [SORRY]: 1 });
    b.script.pass(A);
    await b.clock.advance(1000);
    expect(live(b)).toEqual({ [A]: 1, [SORRY]: 0 });
    expect(configured(b)).toEqual({ [A]: 1 });
  });
});

describe("scheduling", () => {
  test("first attempts spread over the first second; at most maxInFlight attempts at once", async () => {
    const x = startXvs();
    const clock = new FakeClock();
    let inFlight = 0,
      most = 0;
    const pending: (() => void)[] = [];
    const firsts: number[] = [];
    let r = 0;
    const monitor = new HealthMonitor(x.daemon, {
      now: () => clock.now,
      setTimer: clock.setTimer,
      clearTimer: clock.clearTimer,
      maxInFlight: 3,
      random: () => (r++ % 10) / 10,
      run: () => {
        inFlight++;
        most = Math.max(most, inFlight);
        firsts.push(clock.now);
        return new Promise((resolve) =>
          pending.push(() => {
            inFlight--;
            resolve({ ok: true, reason: "ok" });
          }),
        );
      },
    });
    x.daemon.health = monitor;
    expect((await call(x, "POST", "/v1/services", { protocol: "tcp", address: "198.18.0.100", port: 80 })).status).toBe(201);
    for (let i = 0; i < 10; i++) {
      expect((await call(x, "POST", `/v1/services/${SVC_ID}/dests`, { address: `198.18.1.${20 + i}`, checkers: [tcp({ delay_loop: 10 })] })).status).toBe(201);
    }
    await clock.advance(1000);
    expect(most).toBe(3);
    expect(monitor.running).toBe(3);
    for (let i = 0; i < 10; i++) {
      pending.shift()?.();
      await settle();
    }
    expect(firsts.length).toBe(10);
    expect(most).toBe(3);
    // phases differ: the attempts did not all start at the same instant
    expect(new Set(firsts).size).toBeGreaterThan(2);
    monitor.stop();
  });
});

describe("the API", () => {
  test("checkers and health are validated by the one schema; ipvsadm -E / -e (PUT) keep them, PATCH null removes them", async () => {
    const b = bench();
    await setup(b, { delay_loop: 1, quorum: 2 }, [{ address: A }]);
    const bad = await call(b.x, "POST", `/v1/services/${SVC_ID}/dests`, { address: B, checkers: [{ kind: "icmp" }] });
    expect(bad.status).toBe(400);
    const bad2 = await call(b.x, "POST", `/v1/services/${SVC_ID}/dests`, { address: B, checkers: [{ kind: "http", urls: [{ path: "/", digest: "xyz" }] }] });
    expect(bad2.status).toBe(400);
    expect(JSON.stringify(bad2.json)).toContain("not an MD5 digest");
    // ipvsadm -e -w 3 -t ... -r ... -m
    expect((await b.x.adm(["-e", "-t", "198.18.0.100:80", "-r", "198.18.1.11:8080", "-m", "-w", "3"])).exit).toBe(0);
    expect(b.x.daemon.model.services[0].dests[0].spec.checkers).toHaveLength(1);
    expect(b.x.daemon.model.services[0].dests[0].spec.weight).toBe(3);
    // ipvsadm -E -t ... -s rr
    expect((await b.x.adm(["-E", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    expect(b.x.daemon.model.services[0].spec.health?.quorum).toBe(2);
    const p = await call(b.x, "PATCH", `/v1/services/${SVC_ID}`, { health: null });
    expect(p.status).toBe(200);
    expect(p.json.changes.map((c: { field: string }) => c.field)).toEqual(["health"]);
    expect(b.x.daemon.model.services[0].spec.health).toBeUndefined();
    const d = await call(b.x, "PATCH", `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`, { checkers: null });
    expect(d.json.changes.map((c: { field: string }) => c.field)).toEqual(["checkers"]);
    expect(b.monitor.size).toBe(0);
  });
});

describe("what is saved", () => {
  test("every save is the configuration: a real server the checks took out is saved, at its configured weight, without the sorry server", async () => {
    const clock = new FakeClock();
    const down = new Set<string>();
    let saved: ReturnType<typeof modelToConfig> | null = null;
    const daemon = new Daemon(null, {
      save: (m) => {
        saved = modelToConfig(m);
      },
    });
    daemon.health = new HealthMonitor(daemon, {
      now: () => clock.now,
      setTimer: clock.setTimer,
      clearTimer: clock.clearTimer,
      random: () => 0.5,
      run: async (_c, t) => (down.has(t.address) ? { ok: false, reason: "connect: ECONNREFUSED" } : { ok: true, reason: "ok" }),
    });
    const key = { protocol: "tcp" as const, address: "198.18.0.100", port: 80 };
    await daemon.mutate((m) => {
      m.addService(ServiceSpec.parse({ ...key, health: { delay_loop: 1, quorum: 3, sorry_server: { address: SORRY } } }));
      m.addDest(key, DestSpec.parse({ address: A, weight: 2, checkers: [tcp({ retry: 0 })] }));
      m.addDest(key, DestSpec.parse({ address: B, weight: 1, inhibit_on_failure: true, checkers: [tcp({ retry: 0 })] }));
    });
    await clock.advance(1000);
    down.add(A);
    down.add(B);
    await clock.advance(1000);
    // live: quorum lost, the sorry server, and the inhibited real server at weight 0
    expect(daemon.model.services[0].dests.map((d) => [d.spec.address, d.spec.weight])).toEqual([
      [SORRY, 1],
      [B, 0],
    ]);
    const doc = saved as unknown as ReturnType<typeof modelToConfig>;
    expect(doc.services[0].dests.map((d) => [d.address, d.weight]).sort()).toEqual([
      [A, 2],
      [B, 1],
    ]);
    expect(doc.services[0].dests.every((d) => d.checkers?.length === 1)).toBe(true);
    daemon.health.stop();
  });
});
