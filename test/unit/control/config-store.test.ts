/**
 * The saved table and the config file: atomic saves that survive a crash at any step, loading
 * what was saved, and one clear line for every broken file.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyConfig, modelToConfig } from "../../../src/control/batch.ts";
import { ConfigStore, loadConfigFile, TABLE_FILE } from "../../../src/control/config-store.ts";
import { Daemon } from "../../../src/control/daemon.ts";
import { LbError } from "../../../src/errors.ts";
import { Model } from "../../../src/config/model.ts";
import type { ConfigDocIn } from "../../../src/control/schemas.ts";
import { ConfigDoc } from "../../../src/control/schemas.ts";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "xvs-store-test-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const svc = (port: number) => ({ protocol: "tcp" as const, address: "198.18.0.100", port, scheduler: "rr" as const, onePacket: false, schedFlags: [] });

class Crash extends Error {}

describe("saved table", () => {
  test("every committed change is saved and loads back as the same table", async () => {
    const dir = tempDir();
    const daemon = new Daemon(null, new ConfigStore(dir));
    await daemon.mutate((m) => m.addService(svc(80)));
    await daemon.mutate((m) => m.addDest(svc(80), { address: "198.18.1.11", forward: "masq", weight: 3, upperThreshold: 0, lowerThreshold: 0 }));
    await daemon.mutate((m) => m.addDest(svc(80), { address: "198.18.1.12", forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 }));
    await daemon.mutate((m) => m.setTimeouts({ tcp: 0, tcpfin: 30, udp: 0 }));
    const loaded = new ConfigStore(dir).load()!;
    expect(loaded).toEqual(modelToConfig(daemon.model));
    const m = new Model();
    applyConfig(m, loaded);
    // same list (scheduling) order: newest first
    expect(m.services[0].dests.map((d) => d.port === 80 && d.spec.address)).toEqual(["198.18.1.12", "198.18.1.11"]);
    expect(m.timeouts).toEqual({ tcp: 900, tcpfin: 30, udp: 300 });
  });

  test("a crash between writing the temporary file and the rename leaves the old table, and the stray file is removed on load", async () => {
    const dir = tempDir();
    let crash = false;
    const daemon = new Daemon(
      null,
      new ConfigStore(dir, {
        afterWrite: () => {
          if (crash) throw new Crash("power cut");
        },
      }),
    );
    await daemon.mutate((m) => m.addService(svc(80)));
    const before = readFileSync(join(dir, TABLE_FILE), "utf8");
    crash = true;
    await expect(daemon.mutate((m) => m.addService(svc(81)))).rejects.toThrow(/saving the table failed: power cut/);
    expect(readFileSync(join(dir, TABLE_FILE), "utf8")).toBe(before);
    expect(readdirSync(dir).some((f) => f.includes(".tmp-"))).toBe(true);
    const loaded = new ConfigStore(dir).load()!;
    expect(loaded.services.map((s) => ("port" in s ? s.port : 0))).toEqual([80]);
    expect(readdirSync(dir).some((f) => f.includes(".tmp-"))).toBe(false);
  });

  test("a change whose save failed is not applied: model and tables stay as they were", async () => {
    const dir = tempDir();
    let crash = false;
    const daemon = new Daemon(
      null,
      new ConfigStore(dir, {
        afterWrite: () => {
          if (crash) throw new Crash("disk full");
        },
      }),
    );
    await daemon.mutate((m) => m.addService(svc(80)));
    const gen = daemon.tables().generation;
    crash = true;
    await expect(daemon.mutate((m) => m.deleteService(svc(80)))).rejects.toBeInstanceOf(LbError);
    expect(daemon.model.services).toHaveLength(1);
    // the tables were recompiled from the old model: same content, newer generation
    expect(daemon.tables().generation).toBeGreaterThan(gen);
    crash = false;
    await daemon.mutate((m) => m.addService(svc(81)));
    expect(new ConfigStore(dir).load()!.services).toHaveLength(2);
  });

  test("a half-written temporary file from a crashed process is ignored", () => {
    const dir = tempDir();
    const m = new Model();
    m.addService(svc(80));
    new ConfigStore(dir).save(m);
    writeFileSync(join(dir, `${TABLE_FILE}.tmp-999999`), '{"version":1,"services":[{"protocol":"tc');
    expect(new ConfigStore(dir).load()!.services).toHaveLength(1);
    expect(existsSync(join(dir, `${TABLE_FILE}.tmp-999999`))).toBe(false);
  });

  test("a crash right after the rename keeps the new table", () => {
    const dir = tempDir();
    const m = new Model();
    m.addService(svc(80));
    expect(() =>
      new ConfigStore(dir, {
        afterRename: () => {
          throw new Crash("after rename");
        },
      }).save(m),
    ).toThrow(Crash);
    expect(new ConfigStore(dir).load()!.services).toHaveLength(1);
  });

  test("no saved table loads as null, and a corrupt one stops the start with one line naming the file", () => {
    const dir = tempDir();
    expect(new ConfigStore(dir).load()).toBeNull();
    writeFileSync(join(dir, TABLE_FILE), "{ not json");
    expect(() => new ConfigStore(dir).load()).toThrow(new RegExp(`^saved table ${join(dir, TABLE_FILE)} .*: not valid JSON`));
  });

  test("the saved file is readable by root only", () => {
    const dir = tempDir();
    new ConfigStore(dir).save(new Model());
    expect(statSync(join(dir, TABLE_FILE)).mode & 0o777).toBe(0o600);
  });
});

describe("config file", () => {
  function file(content: string): string {
    const p = join(tempDir(), "xvs.json");
    writeFileSync(p, content);
    return p;
  }

  test("services, real servers and timeouts load in order", () => {
    const doc: ConfigDocIn = {
      timeouts: { tcp: 600 },
      services: [
        {
          protocol: "tcp",
          address: "198.18.0.100",
          port: 80,
          scheduler: "wrr",
          dests: [
            { address: "198.18.1.11", forward: "masq", weight: 2 },
            { address: "198.18.1.12", forward: "masq" },
          ],
        },
        { protocol: "udp", address: "2001:db8::9", port: 53, scheduler: "sh", schedFlags: ["sh-port"] },
      ],
    };
    const loaded = loadConfigFile(file(JSON.stringify(doc)));
    const m = new Model();
    applyConfig(m, loaded);
    expect(m.services).toHaveLength(2);
    expect(m.services[0].dests.map((d) => [d.spec.address, d.port, d.spec.weight])).toEqual([
      ["198.18.1.12", 80, 1],
      ["198.18.1.11", 80, 2],
    ]);
    expect(m.timeouts).toEqual({ tcp: 600, tcpfin: 120, udp: 300 });
  });

  test("a missing file, bad JSON, a bad field and an unknown scheduler each give one line naming the problem", () => {
    const one = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(LbError);
        expect((e as Error).message).not.toContain("\n");
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(one(() => loadConfigFile("/nonexistent/xvs.json"))).toBe("config file /nonexistent/xvs.json: cannot read it (ENOENT)");
    expect(one(() => loadConfigFile(file('{"services": [')))).toMatch(/^config file .*xvs\.json: not valid JSON/);
    expect(
      one(() =>
        loadConfigFile(
          file(JSON.stringify({ services: [{ protocol: "tcp", address: "198.18.0.100", port: 80, dests: [{ address: "198.18.1.1", weight: -5 }] }] })),
        ),
      ),
    ).toMatch(/: services\.0\.dests\.0\.weight: Too small: expected number to be >=0 \(value -5\)$/);
    expect(one(() => loadConfigFile(file(JSON.stringify({ services: [{ protocol: "tcp", address: "198.18.0.100", port: 80, color: 1 }] }))))).toMatch(
      /: services\.0\.color: unknown field \(value 1\)$/,
    );
    expect(one(() => loadConfigFile(file(JSON.stringify({ services: [{ protocol: "tcp", address: "2001:db8::1", port: 0 }] }))))).toMatch(
      /: services\.0\.port: Zero port specified for non-persistent service/,
    );
  });

  test("a file that validates but cannot be applied is refused whole", () => {
    const doc = ConfigDoc.parse({
      services: [{ protocol: "tcp", address: "198.18.0.100", port: 80, dests: [{ address: "198.18.1.1" }, { address: "198.18.1.1" }] }],
    });
    expect(() => applyConfig(new Model(), doc)).toThrow(/^services\.0: Destination already exists$/);
  });
});
