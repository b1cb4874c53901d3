// Reload of --keepalived-conf (src/control/keepalived/reload.ts, POST /v1/reload): only the difference is
// applied, services and real servers keep their ids (no delete and re-add), what the file never
// declared is left alone, a broken file changes nothing, and the saved table records the file's
// content so that a restart follows start-table.ts's rule.
import { describe, expect, spyOn, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../../src/control/app.ts";
import { applyConfig } from "../../../src/control/batch.ts";
import { TABLE_FILE } from "../../../src/control/config-store.ts";
import { Daemon } from "../../../src/control/daemon.ts";
import type { NetnsIdentity } from "../../../src/control/netns-identity.ts";
import { prepareStartTable } from "../../../src/control/start-table.ts";
import { applyReload, attachKeepalivedConf, KeepalivedConf, loadKeepalivedConf } from "../../../src/control/keepalived/reload.ts";
import { Model } from "../../../src/config/model.ts";
import { HealthMonitor } from "../../../src/health/monitor.ts";

const here: NetnsIdentity = { cookie: "37", inode: "4026532173", boot: "6cb4c936-0000-4000-8000-000000000001", initial: false };
const TOKEN = "keepalived-reload-test-token";

/** A keepalived.conf with services on ports `ports`, real servers `rs` (address last byte -> weight). */
function conf(ports: number[], rs: Record<number, number>, extra = ""): string {
  return ports
    .map(
      (p) => `virtual_server 198.18.0.100 ${p} {
  lb_algo rr
  lb_kind NAT
  protocol TCP
${extra}
${Object.entries(rs)
  .map(([b, w]) => `  real_server 198.18.1.${b} ${p} {\n    weight ${w}\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }`)
  .join("\n")}
}
`,
    )
    .join("");
}

/** Quiet the log lines of a block; return them. */
async function quiet<T>(f: () => Promise<T> | T): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const spy = spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    lines.push(String(s));
    return true;
  });
  try {
    return { value: await f(), lines };
  } finally {
    spy.mockRestore();
  }
}

/** A daemon started from a keepalived.conf in a fresh state directory, as serve.ts does it. */
async function start(dir: string, path: string): Promise<{ daemon: Daemon; k: KeepalivedConf }> {
  return (
    await quiet(async () => {
      const ka = loadKeepalivedConf(path);
      const st = prepareStartTable(join(dir, "state"), { doc: ka.table, stamp: ka.stamp }, here);
      const daemon = new Daemon(null, st.store);
      const doc = st.doc;
      if (doc) await daemon.mutate((m) => applyConfig(m, doc));
      const k = new KeepalivedConf(ka.stamp.path, daemon, st.store, ka.table, ka.stamp, here);
      attachKeepalivedConf(daemon, k);
      return { daemon, k };
    })
  ).value;
}

const ids = (d: Daemon) => d.model.services.map((s) => [s.id, ...s.dests.map((x) => x.id)]);
const weights = (d: Daemon) => d.model.services.map((s) => Object.fromEntries(s.dests.map((x) => [x.spec.address, x.spec.weight])));

describe("applyReload", () => {
  test("an unchanged file changes nothing; a weight is an edit in place; a new real server is added; a removed one deleted", () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80], { 2: 1, 3: 1 }));
    const before = loadKeepalivedConf(f).table;
    const m = new Model();
    applyConfig(m, before);
    const svcId = m.services[0].id;
    const dest3 = m.services[0].dests.find((d) => d.spec.address === "198.18.1.3")!.id;
    const v = m.version;
    expect(applyReload(m, before, before)).toEqual({
      servicesAdded: 0,
      servicesChanged: 0,
      servicesRemoved: 0,
      destsAdded: 0,
      destsChanged: 0,
      destsRemoved: 0,
    });
    expect(m.version).toBe(v);

    writeFileSync(f, conf([80], { 3: 5, 4: 1 }));
    const after = loadKeepalivedConf(f).table;
    expect(applyReload(m, before, after)).toEqual({
      servicesAdded: 0,
      servicesChanged: 0,
      servicesRemoved: 0,
      destsAdded: 1,
      destsChanged: 1,
      destsRemoved: 1,
    });
    expect(m.services[0].id).toBe(svcId);
    const d3 = m.services[0].dests.find((d) => d.spec.address === "198.18.1.3")!;
    expect([d3.id, d3.spec.weight]).toEqual([dest3, 5]);
    expect(m.services[0].dests.map((d) => d.spec.address).sort()).toEqual(["198.18.1.3", "198.18.1.4"]);
  });

  test("a service option is an edit (same id); a service gone from the file is deleted, one the file never had is left alone", () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80, 81], { 2: 1 }));
    const before = loadKeepalivedConf(f).table;
    const m = new Model();
    applyConfig(m, before);
    m.addService({ protocol: "tcp", address: "198.18.0.100", port: 9000, scheduler: "wlc", onePacket: false, schedFlags: [] });
    const id80 = m.findService({ protocol: "tcp", address: "198.18.0.100", port: 80 })!.id;
    writeFileSync(f, conf([80], { 2: 1 }, "  persistence_timeout 60"));
    const after = loadKeepalivedConf(f).table;
    expect(applyReload(m, before, after)).toMatchObject({ servicesChanged: 1, servicesRemoved: 1, servicesAdded: 0, destsAdded: 0, destsRemoved: 0 });
    const s80 = m.findService({ protocol: "tcp", address: "198.18.0.100", port: 80 })!;
    expect([s80.id, s80.spec.persistence?.timeout]).toEqual([id80, 60]);
    expect(m.services.map((s) => ("port" in s.spec ? s.spec.port : 0)).sort()).toEqual([80, 9000]);
  });
});

describe("what the file did not change is not touched", () => {
  test("an xvs adm edit of a listed real server stays until the file changes that real server; a service deleted with xvs adm stays deleted while its block is unchanged", () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80, 81], { 2: 1, 3: 1 }));
    const v1 = loadKeepalivedConf(f).table;
    const m = new Model();
    applyConfig(m, v1);
    const svc80 = { protocol: "tcp" as const, address: "198.18.0.100", port: 80 };
    const edit = (address: string, weight: number) => m.editDest(svc80, { ...m.dest(svc80, address, 80).spec, weight });
    edit("198.18.1.2", 7);
    edit("198.18.1.3", 8);
    m.deleteService({ protocol: "tcp", address: "198.18.0.100", port: 81 });
    const w80 = () => Object.fromEntries(m.findService(svc80)!.dests.map((d) => [d.spec.address, d.spec.weight]));

    expect(applyReload(m, v1, v1)).toEqual({ servicesAdded: 0, servicesChanged: 0, servicesRemoved: 0, destsAdded: 0, destsChanged: 0, destsRemoved: 0 });
    expect(w80()).toEqual({ "198.18.1.2": 7, "198.18.1.3": 8 });
    expect(m.findService({ protocol: "tcp", address: "198.18.0.100", port: 81 })).toBeUndefined();

    // the file changes rs3's weight only: rs3 gets the file's weight, rs2 keeps the edit
    writeFileSync(f, conf([80, 81], { 2: 1, 3: 2 }));
    const v2 = loadKeepalivedConf(f).table;
    expect(applyReload(m, v1, v2)).toEqual({ servicesAdded: 1, servicesChanged: 0, servicesRemoved: 0, destsAdded: 2, destsChanged: 1, destsRemoved: 0 });
    expect(w80()).toEqual({ "198.18.1.2": 7, "198.18.1.3": 2 });
    // its block changed: the deleted service is declared anew, with its real servers
    expect(m.findService({ protocol: "tcp", address: "198.18.0.100", port: 81 })!.dests.length).toBe(2);
  });
});

describe("KeepalivedConf.reload (SIGHUP, POST /v1/reload)", () => {
  test("applies the difference, keeps every id, saves the file's hash; a restart then keeps the saved table", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80, 443], { 2: 1, 3: 1 }));
    const { daemon, k } = await start(tmp, f);
    const idsBefore = ids(daemon);
    const gen = daemon.tables().generation;

    // unchanged file: nothing to do, no new generation
    const same = (await quiet(() => k.reload("test"))).value;
    expect(same).toMatchObject({
      changed: false,
      servicesAdded: 0,
      servicesChanged: 0,
      servicesRemoved: 0,
      destsAdded: 0,
      destsChanged: 0,
      destsRemoved: 0,
      services: 2,
    });

    writeFileSync(f, conf([80, 443], { 2: 1, 3: 4 }));
    const r = await quiet(() => k.reload("test"));
    expect(r.value).toMatchObject({ changed: true, destsChanged: 2, destsAdded: 0, destsRemoved: 0, servicesAdded: 0, servicesRemoved: 0 });
    expect(ids(daemon)).toEqual(idsBefore);
    expect(weights(daemon)).toEqual([
      { "198.18.1.2": 1, "198.18.1.3": 4 },
      { "198.18.1.2": 1, "198.18.1.3": 4 },
    ]);
    expect(daemon.tables().generation).toBeGreaterThan(gen);
    expect(r.lines.some((l) => l.includes('"msg":"keepalived config reloaded"') && l.includes('"trigger":"test"'))).toBe(true);

    // the saved table carries the new hash: a restart with the same file restores the saved table
    const saved = JSON.parse(readFileSync(join(tmp, "state", TABLE_FILE), "utf8"));
    expect(saved.saved.config).toEqual({ path: f, sha256: r.value.sha256 });
    const startFrom = () =>
      quiet(() => prepareStartTable(join(tmp, "state"), (({ table, stamp }) => ({ doc: table, stamp }))(loadKeepalivedConf(f)), here)).then((r) => r.value);
    expect((await startFrom()).source).toBe(join(tmp, "state", TABLE_FILE));
    // changed since it was last applied (no reload): at the next start the file wins
    writeFileSync(f, conf([80], { 2: 1 }));
    const changed = await startFrom();
    expect(changed.source).toBe(f);
    expect(changed.doc!.services.length).toBe(1);
  });

  test("a broken file changes nothing: error at file:line, same model, same saved table", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80], { 2: 1 }));
    const { daemon, k } = await start(tmp, f);
    const model = daemon.model;
    const savedText = readFileSync(join(tmp, "state", TABLE_FILE), "utf8");
    writeFileSync(f, `${conf([80], { 2: 3 })}virtual_server 198.18.0.100 81 {\n  protocol TCP\n  lb_algo nosuch\n}\n`);
    const r = await quiet(() =>
      k.reload("test").then(
        () => "resolved",
        (e: Error) => e.message,
      ),
    );
    expect(r.value).toBe(`${f}:15: 'lb_algo': scheduler 'nosuch' is not one xvs implements (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)`);
    expect(r.lines.some((l) => l.includes("keepalived config not reloaded"))).toBe(true);
    expect(daemon.model).toBe(model);
    expect(weights(daemon)).toEqual([{ "198.18.1.2": 1 }]);
    expect(readFileSync(join(tmp, "state", TABLE_FILE), "utf8")).toBe(savedText);
  });

  test("POST /v1/reload: the result; 400 with file:line for a broken file; 404 without --keepalived-conf", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80], { 2: 1 }));
    const { daemon } = await start(tmp, f);
    const app = createApp(daemon, TOKEN);
    const post = async (a = app) => {
      const res = await quiet(() => a.request("/v1/reload", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } }));
      return { status: res.value.status, json: (await res.value.json()) as Record<string, unknown> };
    };
    writeFileSync(f, conf([80], { 2: 1, 5: 2 }));
    expect(await post()).toMatchObject({ status: 200, json: { file: f, changed: true, destsAdded: 1, services: 1 } });
    writeFileSync(f, "virtual_server 198.18.0.100 80 {\n  protocol TCP\n  real_server 198.18.1.2 80 {\n    weight one\n  }\n}\n");
    const bad = await post();
    expect(bad.status).toBe(400);
    expect((bad.json.error as { message: string }).message).toBe(`${f}:4: 'weight': 'one' is not a whole number in 0..2147483647`);
    expect(weights(daemon)).toEqual([{ "198.18.1.2": 1, "198.18.1.5": 2 }]);
    const plain = createApp(new Daemon(), TOKEN);
    const none = await post(plain);
    expect(none.status).toBe(404);
    expect((none.json.error as { message: string }).message).toContain("--keepalived-conf");
    // mutating: the token is needed
    expect((await app.request("/v1/reload", { method: "POST" })).status).toBe(401);
  });
});

describe("reload with health checks running (src/health/monitor.ts)", () => {
  /** A monitor on a clock the test moves, whose checks answer from `down`. */
  function withMonitor(daemon: Daemon) {
    let now = 0;
    const timers = new Map<number, { at: number; fn: () => void }>();
    let seq = 0;
    const down = new Set<string>();
    const monitor = new HealthMonitor(daemon, {
      now: () => now,
      setTimer: (fn, ms) => {
        timers.set(++seq, { at: now + ms, fn });
        return seq;
      },
      clearTimer: (t) => void timers.delete(t as number),
      random: () => 0,
      run: async (_c, t) => (down.has(t.address) ? { ok: false, reason: "connect: ECONNREFUSED" } : { ok: true, reason: "ok" }),
    });
    daemon.health = monitor;
    const advance = async (ms: number) => {
      const end = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      }
      now = end;
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    };
    return { monitor, down, advance };
  }

  test("a real server the checkers took out is no change; a new weight for it is kept in the configuration while it stays out", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80], { 2: 1, 3: 1 }, "  delay_loop 1\n  retry 0"));
    const { daemon, k } = await start(tmp, f);
    const h = withMonitor(daemon);
    await quiet(() => daemon.mutate(() => undefined)); // the monitor learns the table
    h.down.add("198.18.1.2");
    await quiet(() => h.advance(5000));
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1 }]);

    const same = (await quiet(() => k.reload("test"))).value;
    expect(same).toMatchObject({ destsAdded: 0, destsChanged: 0, destsRemoved: 0, servicesChanged: 0 });
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1 }]);

    writeFileSync(f, conf([80], { 2: 4, 3: 1 }, "  delay_loop 1\n  retry 0"));
    const changed = (await quiet(() => k.reload("test"))).value;
    expect(changed).toMatchObject({ destsAdded: 0, destsChanged: 1, destsRemoved: 0 });
    // still down: out of the live table, in the configuration with its new weight
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1 }]);
    expect(Object.fromEntries(daemon.config().services[0].dests.map((d) => [d.spec.address, d.spec.weight]))).toEqual({ "198.18.1.2": 4, "198.18.1.3": 1 });
    // back up: it returns with the weight the file gave it
    h.down.delete("198.18.1.2");
    await quiet(() => h.advance(5000));
    expect(weights(daemon)).toEqual([{ "198.18.1.2": 4, "198.18.1.3": 1 }]);
    h.monitor.stop();
  });

  test("real servers the file no longer lists leave table and configuration, also one the checkers took out", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "xvs-kar-"));
    const f = join(tmp, "k.conf");
    writeFileSync(f, conf([80], { 2: 1, 3: 1, 4: 1 }, "  delay_loop 1\n  retry 0"));
    const { daemon, k } = await start(tmp, f);
    const h = withMonitor(daemon);
    await quiet(() => daemon.mutate(() => undefined));
    h.down.add("198.18.1.2");
    await quiet(() => h.advance(5000));
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1, "198.18.1.4": 1 }]);
    writeFileSync(f, conf([80], { 3: 1 }, "  delay_loop 1\n  retry 0"));
    const r = (await quiet(() => k.reload("test"))).value;
    expect(r).toMatchObject({ destsRemoved: 2, destsAdded: 0, destsChanged: 0 });
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1 }]);
    expect(daemon.config().services[0].dests.map((d) => d.spec.address)).toEqual(["198.18.1.3"]);
    // and it does not come back when its service does
    h.down.delete("198.18.1.2");
    await quiet(() => h.advance(5000));
    expect(weights(daemon)).toEqual([{ "198.18.1.3": 1 }]);
    expect(h.monitor.size).toBe(1);
    h.monitor.stop();
  });
});
