/**
 * The control API in process (app.request): every route, every error path, authentication,
 * and the bad input of issue 4 (malformed JSON, wrong types, unknown fields, out-of-range
 * values, IPv6 where IPv4 is expected, duplicates, a real server on a missing service, missing
 * or wrong tokens, oversized bodies, a hundred concurrent writers).
 */
import { describe, expect, test } from "bun:test";
import { MAX_BODY_BYTES } from "../../../src/control/app.ts";
import {
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
} from "../../../src/conn/table.ts";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigStore, loadConfigFile, TABLE_FILE } from "../../../src/control/config-store.ts";
import {
  ConnsPage,
  DestReplaced,
  ErrorBody,
  FWMARK_UNSUPPORTED_MESSAGE,
  Health,
  Info,
  ServiceList,
  ServiceReplaced,
  ServiceView,
} from "../../../src/control/schemas.ts";
import { MAX_SERVICES, SET_CONN_REUSE_MODE, SET_EXPIRE_NODEST_CONN, SET_SLOPPY_TCP } from "../../../src/service/tables.ts";
import { NOW_MS, startXvs, TOKEN, type Xvs } from "../cli/fixture.ts";

const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

async function call(x: Xvs, method: string, path: string, body?: unknown, headers: Record<string, string> = AUTH) {
  const res = await x.app.request(path, { method, headers, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const SVC = { protocol: "tcp", address: "198.18.0.100", port: 80, scheduler: "rr" };
const SVC_ID = "tcp:198.18.0.100:80";
const DEST = { address: "198.18.1.11", port: 8080, forward: "masq", weight: 2 };

async function withService(): Promise<Xvs> {
  const x = startXvs();
  expect((await call(x, "POST", "/v1/services", SVC)).status).toBe(201);
  expect((await call(x, "POST", `/v1/services/${SVC_ID}/dests`, DEST)).status).toBe(201);
  return x;
}

/** The error body is well formed and says what `want` says. */
function expectError(r: { status: number; json: unknown }, status: number, want: RegExp): void {
  expect(r.status).toBe(status);
  expect(ErrorBody.safeParse(r.json).success).toBe(true);
  expect((r.json as { error: { message: string } }).error.message).toMatch(want);
}

describe("read routes", () => {
  test("health says whether a dataplane runs and which generation is live", async () => {
    const r = await call(startXvs(), "GET", "/v1/health");
    expect(r.status).toBe(200);
    expect(Health.parse(r.json)).toMatchObject({ ok: true, dataplane: true });
  });

  test("info gives the IPVS version and connection table size for the listing header", async () => {
    const r = await call(startXvs(), "GET", "/v1/info");
    expect(Info.parse(r.json)).toMatchObject({ version: "1.2.1", connTableSize: 4096 });
  });

  test("stats returns the verdict counters by name", async () => {
    const r = await call(startXvs(), "GET", "/v1/stats");
    expect(r.status).toBe(200);
    expect(typeof (r.json as { verdicts: Record<string, number> }).verdicts).toBe("object");
  });

  test("daemons lists no connection sync daemon", async () => {
    expect((await call(startXvs(), "GET", "/v1/daemons")).json).toEqual({ daemons: [] });
  });

  test("an unknown route is a JSON 404", async () => {
    expectError(await call(startXvs(), "GET", "/v1/nothing"), 404, /no route GET \/v1\/nothing/);
  });

  test("reads need no token", async () => {
    const x = await withService();
    expect((await call(x, "GET", "/v1/services", undefined, {})).status).toBe(200);
  });
});

describe("services", () => {
  test("a service is added, listed, replaced and deleted", async () => {
    const x = startXvs();
    const added = await call(x, "POST", "/v1/services", SVC);
    expect(added.status).toBe(201);
    expect(ServiceView.parse(added.json)).toMatchObject({ id: SVC_ID, name: "TCP  198.18.0.100:80" });
    const list = ServiceList.parse((await call(x, "GET", "/v1/services")).json);
    expect(list.services.map((s) => s.id)).toEqual([SVC_ID]);
    const edited = await call(x, "PUT", `/v1/services/${SVC_ID}`, { ...SVC, scheduler: "wlc", persistence: { timeout: 60 } });
    expect(edited.status).toBe(200);
    expect((edited.json as { spec: { scheduler: string } }).spec.scheduler).toBe("wlc");
    expect((await call(x, "GET", `/v1/services/${SVC_ID}`)).status).toBe(200);
    expect((await call(x, "DELETE", `/v1/services/${SVC_ID}`)).status).toBe(204);
    expectError(await call(x, "GET", `/v1/services/${SVC_ID}`), 404, /^No such service$/);
  });

  test("IPv6, UDP and SCTP services are all addressed by their ids", async () => {
    const x = startXvs();
    const specs = [
      [{ protocol: "udp", address: "2001:db8::1", port: 53, scheduler: "rr" }, "udp:[2001:db8::1]:53"],
      [{ protocol: "sctp", address: "198.18.0.100", port: 9, scheduler: "rr" }, "sctp:198.18.0.100:9"],
    ] as const;
    for (const [spec, id] of specs) {
      expect((await call(x, "POST", "/v1/services", spec)).status).toBe(201);
      expect(((await call(x, "GET", `/v1/services/${encodeURIComponent(id)}`)).json as { id: string }).id).toBe(id);
    }
  });

  test("a fwmark service is refused (400 naming the fwmark field, saying why) by add, replace, batch and restore; nothing changes", async () => {
    const x = await withService();
    const before = (await call(x, "GET", "/v1/config")).json;
    const fwm = { fwmark: 7, family: "ipv6", scheduler: "rr" };
    const refused = (r: { status: number; json: unknown }, path = "fwmark") => {
      expect(r.status).toBe(400);
      expect(ErrorBody.parse(r.json).error).toMatchObject({
        code: "INVAL",
        message: `${path}: ${FWMARK_UNSUPPORTED_MESSAGE}`,
        issues: [{ path, message: FWMARK_UNSUPPORTED_MESSAGE, value: 7 }],
      });
    };
    expect(FWMARK_UNSUPPORTED_MESSAGE).toMatch(/^Firewall-mark services are not supported by xvs: .*XDP.*never match a packet$/);
    refused(await call(x, "POST", "/v1/services", fwm));
    refused(await call(x, "PUT", "/v1/services/fwm6:7", fwm));
    refused(
      await call(x, "POST", "/v1/batch", {
        commands: [
          { op: "add-service", service: SVC },
          { op: "add-service", service: fwm },
        ],
      }),
      "commands.1.service.fwmark",
    );
    refused(
      await call(x, "PUT", "/v1/config", {
        services: [
          { ...SVC, port: 81 },
          { ...fwm, dests: [] },
        ],
      }),
      "services.1.fwmark",
    );
    expect((await call(x, "GET", "/v1/config")).json).toEqual(before);
    // a fwmark id still parses: asking for one is the ordinary 404
    expectError(await call(x, "GET", "/v1/services/fwm:7"), 404, /^No such service$/);
  });

  test("a duplicate service is 409 Service already exists", async () => {
    const x = await withService();
    expectError(await call(x, "POST", "/v1/services", SVC), 409, /^Service already exists$/);
  });

  test("flushing deletes every service", async () => {
    const x = await withService();
    expect((await call(x, "DELETE", "/v1/services")).status).toBe(204);
    expect((await call(x, "GET", "/v1/services")).json).toEqual({ services: [] });
  });

  test("replacing a missing service is 404 and a body naming another service is 400", async () => {
    const x = await withService();
    expectError(await call(x, "PUT", "/v1/services/tcp:198.18.0.100:81", { ...SVC, port: 81 }), 404, /^No such service$/);
    expectError(await call(x, "PUT", `/v1/services/${SVC_ID}`, { ...SVC, port: 81 }), 400, /names service tcp:198.18.0.100:81/);
  });

  test("a malformed service id is 400 and names the expected form", async () => {
    expectError(await call(startXvs(), "GET", "/v1/services/tcp:300.1.1.1:80"), 400, /not a service id/);
    expectError(await call(startXvs(), "DELETE", "/v1/services/bogus"), 400, /not a service id/);
  });

  test("a scheduler name ipvsadm does not know is 400 naming the scheduler field", async () => {
    // every scheduler of ipvsadm's list is implemented: a name outside the list is a 400 from the schema
    const r = await call(startXvs(), "POST", "/v1/services", { ...SVC, scheduler: "nosuch" });
    expect(r.status).toBe(400);
    expect((r.json as { error: { issues: { path: string }[] } }).error.issues[0].path).toBe("scheduler");
  });
});

describe("real servers", () => {
  test("a real server is added, read, replaced and deleted", async () => {
    const x = await withService();
    const path = `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`;
    expect(((await call(x, "GET", path)).json as { weight: number }).weight).toBe(2);
    const r = await call(x, "PUT", path, { ...DEST, weight: 5 });
    expect(r.status).toBe(200);
    expect((r.json as { weight: number }).weight).toBe(5);
    expect(((await call(x, "GET", `/v1/services/${SVC_ID}/dests`)).json as { dests: unknown[] }).dests).toHaveLength(1);
    expect((await call(x, "DELETE", path)).status).toBe(204);
    expectError(await call(x, "GET", path), 404, /^No such destination$/);
  });

  test("a real server on a missing service is 404 Service not defined", async () => {
    expectError(await call(startXvs(), "POST", `/v1/services/${SVC_ID}/dests`, DEST), 404, /^Service not defined$/);
  });

  test("a duplicate real server is 409 Destination already exists", async () => {
    expectError(await call(await withService(), "POST", `/v1/services/${SVC_ID}/dests`, DEST), 409, /^Destination already exists$/);
  });

  test("replacing or deleting a missing real server is 404 No such destination", async () => {
    const x = await withService();
    expectError(
      await call(x, "PUT", `/v1/services/${SVC_ID}/dests/198.18.1.12:80`, { ...DEST, address: "198.18.1.12", port: 80 }),
      404,
      /^No such destination$/,
    );
    expectError(await call(x, "DELETE", `/v1/services/${SVC_ID}/dests/198.18.1.12:80`), 404, /^No such destination$/);
  });

  test("a body naming another real server than the path is 400", async () => {
    expectError(
      await call(await withService(), "PUT", `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`, { ...DEST, address: "198.18.1.99" }),
      400,
      /names real server/,
    );
  });

  test("an IPv6 real server behind an IPv4 service is refused unless it is tunnelled", async () => {
    const x = await withService();
    expectError(
      await call(x, "POST", `/v1/services/${SVC_ID}/dests`, { address: "2001:db8::11", port: 80, forward: "masq" }),
      400,
      /Different address family is allowed only for tunneling servers/,
    );
    expect((await call(x, "POST", `/v1/services/${SVC_ID}/dests`, { address: "2001:db8::11", port: 80, forward: "tunnel" })).status).toBe(201);
  });

  test("a lower threshold above the upper one is refused", async () => {
    const r = await call(await withService(), "POST", `/v1/services/${SVC_ID}/dests`, { address: "198.18.1.12", lowerThreshold: 5, upperThreshold: 2 });
    expect(r.status).toBe(400);
    expect((r.json as { error: { issues: { path: string }[] } }).error.issues[0].path).toBe("lowerThreshold");
  });
});

describe("partial updates (PATCH) and what a replace (PUT) changed", () => {
  const DEST_PATH = `/v1/services/${SVC_ID}/dests/198.18.1.11:8080`;
  const dest = (x: Xvs) => x.daemon.model.services[0].dests[0].spec;

  test("PATCH of a NAT real server's weight changes only the weight: it stays NAT, thresholds kept", async () => {
    const x = await withService();
    expect((await call(x, "PATCH", DEST_PATH, { upperThreshold: 9, lowerThreshold: 2 })).status).toBe(200);
    const r = await call(x, "PATCH", DEST_PATH, { weight: 7 });
    expect(r.status).toBe(200);
    expect(DestReplaced.parse(r.json)).toMatchObject({
      forward: "masq",
      weight: 7,
      upperThreshold: 9,
      lowerThreshold: 2,
      changes: [{ field: "weight", old: 2, new: 7 }],
    });
    expect(dest(x)).toMatchObject({ forward: "masq", weight: 7, upperThreshold: 9, lowerThreshold: 2 });
  });

  test("PUT says what it changed: a NAT real server put without forward becomes DR, and the answer shows it", async () => {
    const x = await withService();
    const r = await call(x, "PUT", DEST_PATH, { address: "198.18.1.11", port: 8080, weight: 3 });
    expect(r.status).toBe(200);
    expect(DestReplaced.parse(r.json).changes).toEqual([
      { field: "forward", old: "masq", new: "route" },
      { field: "weight", old: 2, new: 3 },
    ]);
    expect(dest(x).forward).toBe("route");
    // the same PUT again changes nothing and says so
    expect(DestReplaced.parse((await call(x, "PUT", DEST_PATH, { address: "198.18.1.11", port: 8080, weight: 3 })).json).changes).toEqual([]);
  });

  test("PATCH to another method drops the tunnel options; tunnel: null drops them too", async () => {
    const x = await withService();
    const r1 = await call(x, "PATCH", DEST_PATH, { forward: "tunnel", tunnel: { type: "gue", port: 6080 } });
    expect(DestReplaced.parse(r1.json).changes).toEqual([
      { field: "forward", old: "masq", new: "tunnel" },
      { field: "tunnel", old: null, new: { type: "gue", port: 6080 } },
    ]);
    const r2 = await call(x, "PATCH", DEST_PATH, { forward: "masq" });
    expect(DestReplaced.parse(r2.json)).toMatchObject({ forward: "masq", tunnel: null });
    expect(dest(x).tunnel).toBeUndefined();
  });

  test("a PATCH that is invalid as a whole, or names an unknown field, or another real server, changes nothing", async () => {
    const x = await withService();
    expect((await call(x, "PATCH", DEST_PATH, { upperThreshold: 9, lowerThreshold: 2 })).status).toBe(200);
    const before = structuredClone(dest(x));
    const generation = x.daemon.tables().generation;
    // merged with the stored upper threshold 9, a lower threshold of 10 breaks the order rule
    const r = await call(x, "PATCH", DEST_PATH, { weight: 5, lowerThreshold: 10 });
    expect(r.status).toBe(400);
    expect(ErrorBody.parse(r.json).error.issues?.[0].path).toBe("lowerThreshold");
    const u = await call(x, "PATCH", DEST_PATH, { weight: 5, colour: "red" });
    expect(u.status).toBe(400);
    expect(ErrorBody.parse(u.json).error.issues?.[0]).toMatchObject({ path: "colour", message: "unknown field" });
    expectError(await call(x, "PATCH", DEST_PATH, { address: "198.18.1.99" }), 400, /names real server 198\.18\.1\.99:8080/);
    expectError(await call(x, "PATCH", `/v1/services/${SVC_ID}/dests/198.18.1.12:80`, { weight: 1 }), 404, /^No such destination$/);
    expect(dest(x)).toEqual(before);
    expect(x.daemon.tables().generation).toBe(generation);
  });

  test("PATCH of a service changes only the fields given; PUT lists what it reset", async () => {
    const x = await withService();
    const svc = () => x.daemon.model.services[0].spec;
    let r = await call(x, "PATCH", `/v1/services/${SVC_ID}`, { persistence: { timeout: 60 } });
    expect(ServiceReplaced.parse(r.json).changes).toEqual([{ field: "persistence", old: null, new: { timeout: 60 } }]);
    expect(svc()).toMatchObject({ scheduler: "rr", persistence: { timeout: 60 } });
    r = await call(x, "PATCH", `/v1/services/${SVC_ID}`, { persistence: null, scheduler: "wrr" });
    expect(ServiceReplaced.parse(r.json).changes).toEqual([
      { field: "scheduler", old: "rr", new: "wrr" },
      { field: "persistence", old: { timeout: 60 }, new: null },
    ]);
    // ipvsadm -E semantics: PUT without a scheduler is wlc
    r = await call(x, "PUT", `/v1/services/${SVC_ID}`, { protocol: "tcp", address: "198.18.0.100", port: 80 });
    expect(ServiceReplaced.parse(r.json).changes).toEqual([{ field: "scheduler", old: "wrr", new: "wlc" }]);
    expect(x.daemon.model.services[0].dests).toHaveLength(1);
    expectError(await call(x, "PATCH", `/v1/services/${SVC_ID}`, { port: 81 }), 400, /names service tcp:198\.18\.0\.100:81/);
    expectError(await call(x, "PATCH", `/v1/services/${SVC_ID}`, { onePacket: true }), 400, /One-Packet Scheduling is only for UDP virtual services/);
    expectError(await call(x, "PATCH", "/v1/services/tcp:198.18.0.100:81", { scheduler: "rr" }), 404, /^No such service$/);
    expect(svc().scheduler).toBe("wlc");
  });

  test("PATCH needs the token", async () => {
    const x = await withService();
    expect((await call(x, "PATCH", DEST_PATH, { weight: 9 }, { "content-type": "application/json" })).status).toBe(401);
    expect(dest(x).weight).toBe(2);
  });

  test("xvs adm -e stays ipvsadm: without -m a NAT real server becomes DR (the kernel does the same)", async () => {
    const x = startXvs();
    expect((await x.adm(["-A", "-t", "198.18.0.100:80", "-s", "rr"])).exit).toBe(0);
    expect((await x.adm(["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.11:80", "-m", "-w", "2"])).exit).toBe(0);
    expect(await x.adm(["-e", "-t", "198.18.0.100:80", "-r", "198.18.1.11:80", "-w", "3"])).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect(x.daemon.model.services[0].dests[0].spec).toMatchObject({ forward: "route", weight: 3 });
  });
});

describe("bad input", () => {
  test("malformed JSON is 400 naming the parse error", async () => {
    expectError(await call(startXvs(), "POST", "/v1/services", '{"protocol": tcp'), 400, /^body: not valid JSON/);
  });

  test("an empty body is 400", async () => {
    expectError(await call(startXvs(), "POST", "/v1/services", ""), 400, /^body: empty/);
  });

  test("a wrong type names the field, the value and the reason", async () => {
    const r = await call(startXvs(), "POST", "/v1/services", { ...SVC, port: "80" });
    expect(r.status).toBe(400);
    expect((r.json as { error: { issues: unknown[] } }).error.issues).toContainEqual({
      path: "port",
      message: expect.stringMatching(/expected number/),
      value: "80",
    });
  });

  test("an unknown field is 400 naming the field", async () => {
    const r = await call(startXvs(), "POST", "/v1/services", { ...SVC, colour: "blue" });
    expect(r.status).toBe(400);
    expect((r.json as { error: { issues: unknown[] } }).error.issues).toContainEqual({ path: "colour", message: "unknown field", value: "blue" });
  });

  test("addresses and ports out of range are 400 with the value", async () => {
    const x = startXvs();
    for (const [body, path, value] of [
      [{ ...SVC, address: "198.18.0.256" }, "address", "198.18.0.256"],
      [{ ...SVC, port: 65536 }, "port", 65536],
      [{ ...SVC, port: -1 }, "port", -1],
      [{ fwmark: 0 }, "fwmark", 0],
    ] as const) {
      const r = await call(x, "POST", "/v1/services", body);
      expect(r.status).toBe(400);
      expect((r.json as { error: { issues: { path: string; value: unknown }[] } }).error.issues).toContainEqual(expect.objectContaining({ path, value }));
    }
  });

  test("an IPv6 netmask on an IPv4 service is refused with ipvsadm's words", async () => {
    expectError(
      await call(startXvs(), "POST", "/v1/services", { ...SVC, persistence: { netmask: "64" } }),
      400,
      /illegal virtual server persistent mask specified/,
    );
  });

  test("a mutating request without a token is 401 and changes nothing", async () => {
    const x = startXvs();
    expectError(await call(x, "POST", "/v1/services", SVC, { "content-type": "application/json" }), 401, /needs the daemon's token/);
    expect(x.daemon.model.services).toHaveLength(0);
  });

  test("a wrong token is 401", async () => {
    expectError(await call(startXvs(), "DELETE", "/v1/services", undefined, { authorization: "Bearer not-the-token" }), 401, /^wrong token$/);
  });

  test("a body larger than the limit is 413", async () => {
    const big = JSON.stringify({ ...SVC, pad: "x".repeat(MAX_BODY_BYTES) });
    expectError(await call(startXvs(), "POST", "/v1/services", big), 413, /larger than/);
  });
});

describe("timeouts and zeroing", () => {
  test("--set semantics: 0 keeps a timeout", async () => {
    const x = startXvs();
    expect((await call(x, "PUT", "/v1/timeouts", { tcp: 0, tcpfin: 60, udp: 0 })).json).toEqual({ tcp: 900, tcpfin: 60, udp: 300 });
    expect((await call(x, "GET", "/v1/timeouts")).json).toEqual({ tcp: 900, tcpfin: 60, udp: 300 });
  });

  test("settings: the kernel's defaults, a partial change keeps the rest, the next generation carries them", async () => {
    const x = startXvs();
    expect((await call(x, "GET", "/v1/settings")).json).toEqual({
      expireNodestConn: false,
      expireQuiescentTemplate: false,
      sloppyTcp: false,
      connReuseMode: 1,
    });
    const gen = x.daemon.tables().generation;
    const r = await call(x, "PUT", "/v1/settings", { expireNodestConn: true, connReuseMode: 3 });
    expect(r.json).toEqual({ expireNodestConn: true, expireQuiescentTemplate: false, sloppyTcp: false, connReuseMode: 3 });
    const t = x.daemon.tables();
    expect(t.generation).toBeGreaterThan(gen);
    expect([t.settings[SET_EXPIRE_NODEST_CONN], t.settings[SET_SLOPPY_TCP], t.settings[SET_CONN_REUSE_MODE]]).toEqual([1, 0, 3]);
    // saved with the table, and a restore without settings goes back to the defaults
    expect(((await call(x, "GET", "/v1/config")).json as { settings: unknown }).settings).toEqual(r.json);
    await call(x, "PUT", "/v1/config", { services: [] });
    expect((await call(x, "GET", "/v1/settings")).json).toEqual({
      expireNodestConn: false,
      expireQuiescentTemplate: false,
      sloppyTcp: false,
      connReuseMode: 1,
    });
  });

  test("settings: a bad value or an unknown name is 400 and changes nothing; a write needs the token", async () => {
    const x = startXvs();
    expectError(await call(x, "PUT", "/v1/settings", { connReuseMode: 4 }), 400, /connReuseMode/);
    expectError(await call(x, "PUT", "/v1/settings", { sloppyTcp: 1 }), 400, /sloppyTcp/);
    expectError(await call(x, "PUT", "/v1/settings", { expire_nodest_conn: true }), 400, /expire_nodest_conn/);
    expect((await call(x, "PUT", "/v1/settings", { sloppyTcp: true }, { "content-type": "application/json" })).status).toBe(401);
    expect((await call(x, "GET", "/v1/settings")).json).toEqual({
      expireNodestConn: false,
      expireQuiescentTemplate: false,
      sloppyTcp: false,
      connReuseMode: 1,
    });
  });

  test("a timeout beyond 31 days is 400", async () => {
    expect((await call(startXvs(), "PUT", "/v1/timeouts", { tcp: 2678401, tcpfin: 0, udp: 0 })).status).toBe(400);
  });

  test("zeroing a service resets its counters and zeroing a missing one is 404", async () => {
    const x = await withService();
    const s = x.daemon.model.services[0];
    x.dataplane.workers[0].counters.traffic[s.id * 5] = 7;
    expect(((await call(x, "GET", `/v1/services/${SVC_ID}`)).json as { stats: { conns: number } }).stats.conns).toBe(7);
    expect((await call(x, "POST", `/v1/services/${SVC_ID}/zero`)).status).toBe(204);
    expect(((await call(x, "GET", `/v1/services/${SVC_ID}`)).json as { stats: { conns: number } }).stats.conns).toBe(0);
    x.dataplane.workers[0].counters.traffic[s.id * 5] = 9;
    expect((await call(x, "POST", "/v1/zero")).status).toBe(204);
    expect(((await call(x, "GET", `/v1/services/${SVC_ID}`)).json as { stats: { conns: number } }).stats.conns).toBe(0);
    expectError(await call(x, "POST", "/v1/services/udp:198.18.0.100:53/zero"), 404, /^No such service$/);
  });
});

describe("connections", () => {
  function fill(x: Xvs, n: number): void {
    const t = x.dataplane.workers[0].conns;
    for (let i = 0; i < n; i++) {
      const id = t.alloc();
      const o = id * CONN_WORDS;
      t.rec[o + CONN_FLAGS] = CF_USED | 0; // masq
      t.rec[o + CONN_PROTO_STATE] = (6 << 8) | 1;
      t.rec[o + CONN_CADDR] = (198 << 24) | (18 << 16) | (1 << 8) | 2;
      t.rec[o + CONN_VADDR] = (198 << 24) | (18 << 16) | 100;
      t.rec[o + CONN_DADDR] = (198 << 24) | (18 << 16) | (11 << 8) | 2;
      t.rec[o + CONN_CPORT_VPORT] = ((10000 + i) << 16) | 80;
      t.rec[o + CONN_DPORT] = 80;
      t.rec[o + CONN_EXPIRES] = NOW_MS / 10 + 900 * 100;
    }
  }

  test("with no connections the list is empty", async () => {
    expect((await call(startXvs(), "GET", "/v1/conns")).json).toEqual({ conns: [], next: null });
  });

  test("pages follow the cursor until every connection was listed once", async () => {
    const x = startXvs();
    fill(x, 250);
    const ports: number[] = [];
    let cursor: string | null = "";
    let pages = 0;
    while (cursor !== null) {
      const r = await call(x, "GET", `/v1/conns?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
      const page = ConnsPage.parse(r.json);
      ports.push(...page.conns.map((c) => c.client.port));
      cursor = page.next;
      pages++;
    }
    expect(pages).toBe(3);
    expect(ports).toEqual(Array.from({ length: 250 }, (_, i) => 10000 + i));
    const first = ConnsPage.parse((await call(x, "GET", "/v1/conns?limit=1")).json).conns[0];
    expect(first).toEqual({
      protocol: "TCP",
      state: "ESTABLISHED",
      expiresSec: 900,
      template: false,
      forward: "masq",
      client: { address: "198.18.1.2", port: 10000 },
      virtual: { address: "198.18.0.100", port: 80 },
      dest: { address: "198.18.11.2", port: 80 },
    });
  });

  test("a limit above the cap and a malformed cursor are 400", async () => {
    expect((await call(startXvs(), "GET", "/v1/conns?limit=1001")).status).toBe(400);
    expect((await call(startXvs(), "GET", "/v1/conns?limit=0")).status).toBe(400);
    expectError(await call(startXvs(), "GET", "/v1/conns?cursor=x"), 400, /^cursor: not a cursor/);
  });

  test("without a dataplane the connection list is empty", async () => {
    const x = startXvs();
    x.daemon.dataplane = null;
    expect((await call(x, "GET", "/v1/conns")).json).toEqual({ conns: [], next: null });
  });
});

describe("save, restore and batches", () => {
  test("GET /v1/config fed to PUT /v1/config rebuilds the same table", async () => {
    const x = await withService();
    await call(x, "POST", "/v1/services", {
      protocol: "udp",
      address: "2001:db8::3",
      port: 0,
      scheduler: "sh",
      schedFlags: ["sh-port"],
      persistence: { timeout: 30, netmask: "64" },
    });
    await call(x, "POST", `/v1/services/${SVC_ID}/dests`, { address: "198.18.1.12", forward: "tunnel", tunnel: { type: "gue", port: 6080, csum: "csum" } });
    const saved = (await call(x, "GET", "/v1/config")).json;
    const y = startXvs();
    expect((await call(y, "PUT", "/v1/config", saved)).status).toBe(200);
    expect((await call(y, "GET", "/v1/config")).json).toEqual(saved);
    // real servers keep their scheduling (list) order
    expect(y.daemon.model.services[0].dests.map((d) => d.port)).toEqual(x.daemon.model.services[0].dests.map((d) => d.port));
  });

  test("a restore that fails changes nothing", async () => {
    const x = await withService();
    const before = (await call(x, "GET", "/v1/config")).json;
    const bad = { services: [{ ...SVC, dests: [DEST, DEST] }] };
    expectError(await call(x, "PUT", "/v1/config", bad), 409, /services\.0: Destination already exists/);
    expect((await call(x, "GET", "/v1/config")).json).toEqual(before);
  });

  test("a batch is applied whole or not at all, and its error names the failing command", async () => {
    const x = startXvs();
    const ok = await call(x, "POST", "/v1/batch", {
      commands: [
        { op: "add-service", service: SVC },
        { op: "add-dest", service: { protocol: "tcp", address: "198.18.0.100", port: 80 }, dest: DEST },
      ],
    });
    expect(ok.json).toEqual({ applied: 2 });
    const r = await call(x, "POST", "/v1/batch", {
      commands: [
        { op: "clear" },
        { op: "add-service", service: { ...SVC, port: 81 } },
        { op: "delete-service", service: { protocol: "udp", address: "198.18.0.1", port: 1 } },
      ],
    });
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ error: { code: "NOTEXIST", message: "No such service", index: 2 } });
    expect(x.daemon.model.services.map((s) => s.port)).toEqual([80]);
    expect(x.daemon.model.services[0].dests).toHaveLength(1);
  });

  test("a batch that would overfill the service table is 503 and leaves nothing behind", async () => {
    const x = startXvs();
    const commands = Array.from({ length: MAX_SERVICES + 1 }, (_, i) => ({
      op: "add-service",
      service: { protocol: "udp", address: "198.18.0.100", port: i + 1, scheduler: "rr" },
    }));
    const r = await call(x, "POST", "/v1/batch", { commands });
    expect(r.status).toBe(503);
    expect(r.json).toEqual({ error: { code: "NOROOM", message: `too many virtual services (at most ${MAX_SERVICES})`, index: MAX_SERVICES } });
    expect(x.daemon.model.services).toHaveLength(0);
  });

  test("an invalid command anywhere in a batch is refused before anything runs", async () => {
    const x = startXvs();
    const r = await call(x, "POST", "/v1/batch", { commands: [{ op: "add-service", service: SVC }, { op: "explode" }] });
    expect(r.status).toBe(400);
    expect(x.daemon.model.services).toHaveLength(0);
  });
});

describe("config file and saved table with a fwmark service", () => {
  test("refused at load with one line naming the file, the service and why; nothing is applied", () => {
    const dir = mkdtempSync(join(tmpdir(), "xvs-fwmark-"));
    const path = join(dir, "xvs.json");
    writeFileSync(
      path,
      JSON.stringify({
        services: [
          { ...SVC, dests: [DEST] },
          { fwmark: 9, scheduler: "rr", dests: [{ address: "198.18.1.11" }] },
        ],
      }),
    );
    try {
      expect(() => loadConfigFile(path)).toThrow(`config file ${path}: services.1.fwmark: ${FWMARK_UNSUPPORTED_MESSAGE} (value 9)`);
      // a saved table of an older xvs that held one: the same refusal at start, before anything is applied
      mkdirSync(join(dir, "state"));
      writeFileSync(join(dir, "state", TABLE_FILE), readFileSync(path));
      expect(() => new ConfigStore(join(dir, "state")).load()).toThrow(`services.1.fwmark: ${FWMARK_UNSUPPORTED_MESSAGE} (value 9)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("concurrency", () => {
  test("a hundred concurrent writers never leave the table half changed and never crash the daemon", async () => {
    const x = startXvs();
    const svc = (i: number) => ({ protocol: "tcp", address: "198.18.0.100", port: 1000 + i, scheduler: "wrr" });
    const key = (i: number) => ({ protocol: "tcp", address: "198.18.0.100", port: 1000 + i });
    const writers = Array.from({ length: 100 }, (_, i) => {
      const commands: unknown[] = [{ op: "add-service", service: svc(i) }];
      for (let d = 1; d <= 3; d++) commands.push({ op: "add-dest", service: key(i), dest: { address: `198.18.1.${d}`, forward: "masq" } });
      // every third writer ends with a duplicate: its whole batch must vanish
      if (i % 3 === 0) commands.push({ op: "add-dest", service: key(i), dest: { address: "198.18.1.1", forward: "masq" } });
      return call(x, "POST", "/v1/batch", { commands });
    });
    const readers = Array.from({ length: 20 }, async () => {
      const list = ServiceList.parse((await call(x, "GET", "/v1/services")).json);
      for (const s of list.services) expect(s.dests).toHaveLength(3);
    });
    const results = await Promise.all([...writers, ...readers]);
    const statuses = results.slice(0, 100).map((r) => (r as { status: number }).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(66);
    expect(statuses.filter((s) => s === 409)).toHaveLength(34);
    const ports = x.daemon.model.services.map((s) => s.port - 1000).sort((a, b) => a - b);
    expect(ports).toEqual(Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 3 !== 0));
    for (const s of x.daemon.model.services) expect(s.dests).toHaveLength(3);
    expect((await call(x, "GET", "/v1/health")).status).toBe(200);
  });
});

describe("OpenAPI document", () => {
  test("describes every route with its schemas and the bearer scheme", async () => {
    const x = startXvs();
    const doc = (await call(x, "GET", "/v1/openapi.json")).json as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown; requestBody?: unknown; responses: Record<string, unknown> }>>;
    };
    expect(doc.openapi).toBe("3.1.0");
    const { apiRoutes } = await import("../../../src/control/app.ts");
    for (const r of apiRoutes(x.daemon)) {
      const op = doc.paths[r.path.replace(/:(\w+)/g, "{$1}")]?.[r.method];
      expect(op).toBeDefined();
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(Object.keys(r.responses)));
      if (r.method !== "get") expect(op.security).toEqual([{ bearer: [] }]);
      if (r.body) expect(op.requestBody).toBeDefined();
    }
  });

  test("documents PATCH of services and real servers, and the changes a PUT or PATCH answers with", async () => {
    const doc = (await call(startXvs(), "GET", "/v1/openapi.json")).json as {
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown>; additionalProperties?: boolean; required?: string[] } }> };
            responses: Record<
              string,
              { content?: Record<string, { schema: { properties: Record<string, { items?: { properties: Record<string, unknown> } }> } }> }
            >;
          }
        >
      >;
    };
    for (const path of ["/v1/services/{svc}", "/v1/services/{svc}/dests/{dest}"]) {
      for (const method of ["put", "patch"]) {
        const changes = doc.paths[path][method].responses["200"].content!["application/json"].schema.properties.changes;
        expect(Object.keys(changes.items!.properties)).toEqual(["field", "old", "new"]);
      }
      const patchBody = doc.paths[path].patch.requestBody!.content["application/json"].schema;
      expect(patchBody.additionalProperties).toBe(false);
      expect(patchBody.required ?? []).toEqual([]);
    }
  });
});
