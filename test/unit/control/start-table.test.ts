/**
 * Which table a start uses (issue 11 items 2 and 4): a saved table comes back only into the
 * network namespace that saved it, another namespace's table and token are set aside, and
 * `--config FILE` against the saved table: the saved table (with its `xvs adm` edits) wins
 * while the config file is unchanged; a changed config file wins, and the table it replaces is
 * kept when it differs.
 */
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyConfig } from "../../../src/control/batch.ts";
import { configHash, ConfigStore, loadConfigFile, TABLE_FILE } from "../../../src/control/config-store.ts";
import { Daemon } from "../../../src/control/daemon.ts";
import { dirInode, judgeOwner, type NetnsIdentity } from "../../../src/control/netns-identity.ts";
import { chooseStartTable, FOREIGN_TABLE_FILE, OWNER_FILE, prepareStartTable, REPLACED_TABLE_FILE, type SavedFacts } from "../../../src/control/start-table.ts";
import { ensureToken } from "../../../src/control/runtime.ts";
import { parseLogLine } from "../../../src/log.ts";
import { netnsCookie } from "../../../src/ffi/netns-cookie.ts";
import { currentIdentity } from "../../../src/control/netns-identity.ts";

const BOOT = "6cb4c936-0000-4000-8000-000000000001";
const OTHER_BOOT = "6cb4c936-0000-4000-8000-000000000002";
const host: NetnsIdentity = { cookie: "3", inode: "4026531833", boot: BOOT, initial: true };
const lab = (cookie: string | null, inode = "4026532173", boot = BOOT): NetnsIdentity => ({ cookie, inode, boot, initial: false });

describe("judgeOwner: is a saved table this namespace's?", () => {
  test("same boot: only the namespace with the same cookie, even when the inode is reused", () => {
    expect(judgeOwner(lab("37"), lab("37"), null).ours).toBe(true);
    const reused = judgeOwner(lab("37"), lab("41"), "4026532173");
    expect(reused.ours).toBe(false);
    expect(reused.why).toBe("saved by another network namespace (cookie 37, inode 4026532173, whose inode number this one reuses); this one is cookie 41");
    expect(judgeOwner(host, host, "4026531833").ours).toBe(true);
    expect(judgeOwner(lab("37"), host, null).ours).toBe(false);
    expect(judgeOwner(host, lab("37"), null).ours).toBe(false);
  });

  test("another boot: only the initial namespace continues; named namespaces did not survive", () => {
    const before = { ...host, cookie: "1", boot: OTHER_BOOT };
    expect(judgeOwner(before, host, "4026531833")).toEqual({ ours: true, why: `saved by the initial network namespace before a reboot (boot ${OTHER_BOOT})` });
    // a lab namespace after the reboot can even have the same cookie: still not the same namespace
    expect(judgeOwner(lab("37", "4026532173", OTHER_BOOT), lab("37"), null).ours).toBe(false);
    expect(judgeOwner(lab("37", "4026532173", OTHER_BOOT), host, null).ours).toBe(false);
    expect(judgeOwner(before, lab("37"), null).ours).toBe(false);
  });

  test("no cookie (kernel < 5.14): only the initial namespace is recognised", () => {
    expect(judgeOwner({ ...host, cookie: null }, { ...host, cookie: null }, null).ours).toBe(true);
    expect(judgeOwner(lab(null), lab(null), null).ours).toBe(false);
    expect(judgeOwner(lab("37"), lab(null), null).why).toContain("SO_NETNS_COOKIE");
  });

  test("a table of an older xvs (no identity): restored in the initial namespace from its own directory only", () => {
    expect(judgeOwner(null, host, "4026531833").ours).toBe(true);
    expect(judgeOwner(null, host, null).ours).toBe(true); // XVS_STATE_DIR: no inode in the name
    expect(judgeOwner(null, host, "4026532173").ours).toBe(false);
    expect(judgeOwner(null, lab("37"), "4026532173").ours).toBe(false);
    expect(judgeOwner(null, lab("37"), null).ours).toBe(false);
  });

  test("the state directory's inode is read from its name only", () => {
    expect(dirInode("/var/lib/xvs/net-4026532173")).toBe("4026532173");
    expect(dirInode("/var/lib/xvs/net-4026532173/")).toBe("4026532173");
    expect(dirInode("/tmp/xvs-state-net-12abc")).toBeNull();
  });
});

describe("chooseStartTable: saved table or config file", () => {
  const cfg = { path: "/etc/xvs/xvs.json", sha256: "a".repeat(64) };
  const changed = { path: "/etc/xvs/xvs.json", sha256: "b".repeat(64) };
  const ours = (config: typeof cfg | null, sameAsConfig = false): SavedFacts => ({
    origin: { by: host, at: "2026-12-03T23:00:00.000Z", config },
    owner: { ours: true, why: "saved by this network namespace (cookie 3)" },
    sameAsConfig,
  });
  const foreign: SavedFacts = {
    origin: { by: lab("37"), at: "2026-12-03T23:00:00.000Z", config: null },
    owner: { ours: false, why: "another's" },
    sameAsConfig: false,
  };

  test("nothing saved: the config file, or an empty table", () => {
    expect(chooseStartTable(null, cfg)).toMatchObject({ use: "config", setAside: null });
    expect(chooseStartTable(null, null)).toMatchObject({ use: "empty", setAside: null });
  });

  test("another namespace's table is set aside, never used", () => {
    expect(chooseStartTable(foreign, null)).toEqual({
      use: "empty",
      why: "the saved table is another network namespace's: starting with an empty table",
      setAside: { file: FOREIGN_TABLE_FILE, why: "another's" },
    });
    expect(chooseStartTable(foreign, cfg)).toMatchObject({ use: "config", setAside: { file: FOREIGN_TABLE_FILE } });
  });

  test("our table without --config is restored", () => {
    expect(chooseStartTable(ours(null), null)).toMatchObject({ use: "saved", setAside: null });
    expect(chooseStartTable(ours(cfg), null)).toMatchObject({ use: "saved", setAside: null });
  });

  test("--config unchanged since it was applied: the saved table (with the edits made since) wins", () => {
    const c = chooseStartTable(ours(cfg), cfg);
    expect(c.use).toBe("saved");
    expect(c.setAside).toBeNull();
    expect(c.why).toContain("the config file is unchanged since it was applied");
  });

  test("--config changed, or never applied to this table: the config file wins, and a table that differs is kept", () => {
    expect(chooseStartTable(ours(cfg), changed)).toMatchObject({ use: "config", setAside: { file: REPLACED_TABLE_FILE } });
    expect(chooseStartTable(ours(null), cfg)).toMatchObject({ use: "config", setAside: { file: REPLACED_TABLE_FILE } });
    expect(chooseStartTable(ours(cfg, true), changed)).toMatchObject({ use: "config", setAside: null });
    expect(chooseStartTable(ours(cfg), changed).why).toContain("the config file changed since it was last applied");
  });
});

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "xvs-start-test-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const svc = (port: number) => ({ protocol: "tcp" as const, address: "198.18.0.100", port, scheduler: "rr" as const, onePacket: false, schedFlags: [] });
const dest = (address: string, weight = 1) => ({ address, forward: "masq" as const, weight, upperThreshold: 0, lowerThreshold: 0 });

/** Run a daemon's start in `dir` as namespace `here`, apply `edit`, and return the log lines it wrote. */
async function startIn(
  dir: string,
  here: NetnsIdentity,
  configFile?: string,
  edit?: (d: Daemon) => Promise<unknown>,
): Promise<{ daemon: Daemon; log: Record<string, unknown>[]; source: string }> {
  const lines: string[] = [];
  const spy = spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    lines.push(String(s));
    return true;
  });
  try {
    const start = prepareStartTable(dir, configFile, here);
    ensureToken(dir);
    start.announce();
    const daemon = new Daemon(null, start.store);
    if (start.doc) {
      const doc = start.doc;
      await daemon.mutate((m) => applyConfig(m, doc));
    }
    if (edit) await edit(daemon);
    return {
      daemon,
      log: lines
        .join("")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => parseLogLine(l) ?? { unparsed: l }),
      source: start.source,
    };
  } finally {
    spy.mockRestore();
  }
}

const ports = (d: Daemon) => d.model.services.map((s) => ("port" in s.spec ? s.spec.port : 0));

describe("prepareStartTable over a state directory", () => {
  test("a restart in the same namespace restores its table; a namespace that reuses the inode gets an empty table and a new token", async () => {
    const dir = join(tempDir(), "net-4026532173");
    const first = await startIn(dir, lab("37"), undefined, (d) => d.mutate((m) => m.addService(svc(80))));
    expect(first.source).toBe("empty");
    const token = readFileSync(join(dir, "token"), "utf8");
    const saved = JSON.parse(readFileSync(join(dir, TABLE_FILE), "utf8"));
    expect(saved.saved.by).toEqual(lab("37"));

    const again = await startIn(dir, lab("37"));
    expect(ports(again.daemon)).toEqual([80]);
    expect(again.log[0]).toMatchObject({
      level: "info",
      msg: "table restored from the saved table",
      from: join(dir, TABLE_FILE),
      services: 1,
      why: "saved by this network namespace (cookie 37)",
    });
    expect(readFileSync(join(dir, "token"), "utf8")).toBe(token);

    // the restore saved the table again (same table, same identity): the time of that save is what the log names
    const resaved = JSON.parse(readFileSync(join(dir, TABLE_FILE), "utf8"));
    expect(resaved.saved.by).toEqual(lab("37"));
    const stranger = await startIn(dir, lab("41"));
    expect(stranger.daemon.model.services).toHaveLength(0);
    expect(stranger.source).toBe("empty");
    expect(stranger.log[0]).toMatchObject({
      level: "warn",
      msg: "saved table not restored: it is another network namespace's",
      keptAs: join(dir, FOREIGN_TABLE_FILE),
      services: 1,
      dests: 0,
      savedAt: resaved.saved.at,
    });
    expect(String(stranger.log[0].savedBy)).toContain("cookie 37");
    expect(stranger.log[1]).toMatchObject({ level: "warn", msg: "API token not reused: it was another network namespace's daemon's; a new one is generated" });
    expect(existsSync(join(dir, TABLE_FILE))).toBe(false);
    expect(readFileSync(join(dir, "token"), "utf8")).not.toBe(token);
    expect(JSON.parse(readFileSync(join(dir, OWNER_FILE), "utf8"))).toEqual(lab("41"));
    // the set-aside copy is a valid config file (its saved block is ignored there)
    expect(loadConfigFile(join(dir, FOREIGN_TABLE_FILE)).services).toHaveLength(1);
  });

  test("a table saved by an older xvs: kept on bare metal (initial namespace), set aside in a lab namespace", async () => {
    const old = join(tempDir(), "net-4026531833");
    mkdirSync(old);
    writeFileSync(join(old, TABLE_FILE), JSON.stringify({ version: 1, services: [{ ...svc(80), dests: [] }] }));
    writeFileSync(join(old, "token"), "0123456789abcdef0123456789abcdef\n");
    const bare = await startIn(old, host);
    expect(ports(bare.daemon)).toEqual([80]);
    expect(readFileSync(join(old, "token"), "utf8")).toBe("0123456789abcdef0123456789abcdef\n");
    // saved again at once, now with this namespace's identity
    expect(JSON.parse(readFileSync(join(old, TABLE_FILE), "utf8")).saved.by).toEqual(host);

    const labDir = join(tempDir(), "net-4026532173");
    mkdirSync(labDir);
    writeFileSync(join(labDir, TABLE_FILE), JSON.stringify({ version: 1, services: [{ ...svc(80), dests: [] }] }));
    const inLab = await startIn(labDir, lab("41"));
    expect(inLab.daemon.model.services).toHaveLength(0);
    expect(existsSync(join(labDir, FOREIGN_TABLE_FILE))).toBe(true);
  });

  test("after a reboot the initial namespace gets its table back", async () => {
    const dir = join(tempDir(), "net-4026531833");
    await startIn(dir, { ...host, boot: OTHER_BOOT, cookie: "1" }, undefined, (d) => d.mutate((m) => m.addService(svc(80))));
    const after = await startIn(dir, host);
    expect(ports(after.daemon)).toEqual([80]);
  });

  test("--config and an xvs adm edit: the edit survives restarts until the config file changes, and then it is kept aside", async () => {
    const dir = tempDir();
    const cfgPath = join(tempDir(), "xvs.json");
    const v1 = JSON.stringify({ services: [{ ...svc(80), scheduler: "rr", dests: [{ address: "198.18.1.11", forward: "masq" }] }] });
    writeFileSync(cfgPath, v1);
    const first = await startIn(dir, host, cfgPath, (d) => d.mutate((m) => m.editDest(svc(80), dest("198.18.1.11", 5))));
    expect(first.source).toBe(cfgPath);
    expect(first.log[0]).toMatchObject({ msg: "table loaded from the config file", sha256: configHash(v1), why: "no saved table: the config file is applied" });

    // restart with the same unit line: the weight set with `ipvsadm -e` stays
    const second = await startIn(dir, host, cfgPath);
    expect(second.source).toBe(join(dir, TABLE_FILE));
    expect(second.daemon.model.services[0].dests[0].spec.weight).toBe(5);
    expect(String(second.log[0].why)).toContain("the config file is unchanged since it was applied");
    // and again (the restore re-saved the table; the config file's hash is still recorded)
    expect((await startIn(dir, host, cfgPath)).daemon.model.services[0].dests[0].spec.weight).toBe(5);
    // without --config too
    expect((await startIn(dir, host)).daemon.model.services[0].dests[0].spec.weight).toBe(5);

    // the operator edits the config file: it wins, and the edited table is kept aside with a warning
    writeFileSync(cfgPath, JSON.stringify({ services: [{ ...svc(81), dests: [] }] }));
    const third = await startIn(dir, host, cfgPath);
    expect(ports(third.daemon)).toEqual([81]);
    expect(third.log[0]).toMatchObject({ level: "warn", msg: "saved table replaced by the config file", keptAs: join(dir, REPLACED_TABLE_FILE), services: 1 });
    expect(loadConfigFile(join(dir, REPLACED_TABLE_FILE)).services[0].dests[0].weight).toBe(5);
    expect(String(third.log[1].why)).toContain("the config file changed since it was last applied");
  });

  test("a config file that does not apply stops the start before anything is moved", async () => {
    const dir = tempDir();
    await startIn(dir, lab("41"), undefined, (d) => d.mutate((m) => m.addService(svc(80))));
    const cfgPath = join(tempDir(), "xvs.json");
    writeFileSync(
      cfgPath,
      JSON.stringify({
        services: [
          { ...svc(81), dests: [] },
          { ...svc(81), dests: [] },
        ],
      }),
    );
    expect(() => prepareStartTable(dir, cfgPath, lab("37"))).toThrow(new RegExp(`^config file ${cfgPath}: services.1: Service already exists`));
    expect(existsSync(join(dir, TABLE_FILE))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, OWNER_FILE), "utf8"))).toEqual(lab("41"));
  });
});

describe("the saved block of table.json", () => {
  test("written with every save once stamped, absent before; a block that is not an identity counts as an older xvs's table", () => {
    const dir = tempDir();
    const store = new ConfigStore(dir, {}, () => Date.UTC(2026, 11, 3, 23, 0, 0));
    const m = new Daemon(null).model;
    store.save(m);
    expect(JSON.parse(readFileSync(join(dir, TABLE_FILE), "utf8")).saved).toBeUndefined();
    expect(store.loadSaved()!.origin).toBeNull();
    store.stamp(lab("37"), { path: "/etc/xvs/xvs.json", sha256: "c".repeat(64) });
    store.save(m);
    expect(store.loadSaved()!.origin).toEqual({ by: lab("37"), at: "2026-12-03T23:00:00.000Z", config: { path: "/etc/xvs/xvs.json", sha256: "c".repeat(64) } });
    writeFileSync(join(dir, TABLE_FILE), JSON.stringify({ version: 1, services: [], saved: { by: { cookie: 37 }, at: 5 } }));
    expect(store.loadSaved()!.origin).toBeNull();
  });
});

describe("this machine", () => {
  test("the namespace cookie is read (Linux >= 5.14) and the test process is in the initial namespace or not, consistently", () => {
    const c = netnsCookie();
    expect(c).toMatch(/^\d+$/);
    expect(netnsCookie()).toBe(c);
    const id = currentIdentity();
    expect(id.cookie).toBe(c!);
    expect(id.boot).toMatch(/^[0-9a-f-]{36}$/);
    expect(id.inode).toMatch(/^\d+$/);
  });
});
