/**
 * An in-process xvs for CLI tests: a Daemon with a stand-in dataplane (real Counters and
 * ConnTables that the test fills, tables compiled offline), its Hono app, and `adm(argv)`
 * running runAdm against `app.request` with the golden fixtures' /etc/services and /etc/hosts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../../src/control/app.ts";
import { Daemon } from "../../../src/control/daemon.ts";
import { runAdm } from "../../../src/cli/main.ts";
import { NameDb } from "../../../src/cli/names.ts";
import { ConnTable } from "../../../src/conn/table.ts";
import type { Dataplane } from "../../../src/dataplane/dataplane.ts";
import { compile, emptyRoutes } from "../../../src/config/compile.ts";
import type { Model } from "../../../src/config/model.ts";
import type { Tables } from "../../../src/service/tables.ts";
import { Counters } from "../../../src/stats/counters.ts";

export const GOLDEN_DIR = join(import.meta.dir, "../../kernel/ipvsadm");
export const TOKEN = "golden-test-token-0123456789";
/** The daemon's clock in these tests, ms (the table clock then reads NOW_MS / 10 ticks). */
export const NOW_MS = 10_000_000;

/** The stand-in dataplane: what Daemon reads of a Dataplane, with counters a test can set. */
export class FakeDataplane {
  readonly epochMs = 0;
  readonly workers: { counters: Counters; conns: ConnTable }[];
  private tables: Tables;
  private gen = 0;

  constructor(model: Model, connCapacity = 4096) {
    this.workers = [{ counters: new Counters(), conns: new ConnTable(connCapacity) }];
    this.tables = compile(model, emptyRoutes(), 0);
  }

  apply(m: Model): Tables {
    this.tables = compile(m, emptyRoutes(), ++this.gen);
    return this.tables;
  }

  current(): Tables {
    return this.tables;
  }

  xdpStats(): number[] {
    return [];
  }

  /** Empty the connection table (a fresh one of the same size). */
  resetConns(): ConnTable {
    const w = this.workers[0];
    w.conns = new ConnTable(w.conns.capacity);
    return w.conns;
  }
}

export interface Xvs {
  daemon: Daemon;
  dataplane: FakeDataplane;
  app: ReturnType<typeof createApp>;
  /** Run `ipvsadm ARGS` through runAdm; stdin for -R. */
  adm(argv: string[], stdin?: string): Promise<{ stdout: string; stderr: string; exit: number }>;
}

export const goldenNames = () => new NameDb(readFileSync(join(GOLDEN_DIR, "etc-services"), "utf8"), readFileSync(join(GOLDEN_DIR, "etc-hosts"), "utf8"));

/** A fresh daemon with an empty table, its API, and an ipvsadm bound to it. */
export function startXvs(names = goldenNames()): Xvs {
  const daemon = new Daemon(null, null, () => NOW_MS);
  const dataplane = new FakeDataplane(daemon.model);
  daemon.dataplane = dataplane as unknown as Dataplane;
  const app = createApp(daemon, TOKEN);
  const adm = async (argv: string[], stdin = "") => {
    let stdout = "",
      stderr = "";
    const exit = await runAdm(argv, {
      stdout: {
        write: (s: string) => {
          stdout += s;
        },
      },
      stderr: {
        write: (s: string) => {
          stderr += s;
        },
      },
      fetch: (input, init) => app.request(input, init),
      apiBase: "http://127.0.0.1:9172",
      token: TOKEN,
      readStdin: async () => stdin,
      names,
      program: "ipvsadm",
    });
    return { stdout, stderr, exit };
  };
  return { daemon, dataplane, app, adm };
}

// ---- golden transcripts (transcripts.json, written by capture.py in the ipvs-vm guest) ----

export interface AdmStep {
  kind: "adm";
  argv: string[];
  stdout: string;
  stderr: string;
  exit: number;
  stdin?: string;
}
export interface ShStep {
  kind: "sh";
  sh: string;
  exit: number;
}
export interface Sequence {
  name: string;
  steps: (AdmStep | ShStep)[];
}

export function loadTranscripts(): { provenance: Record<string, unknown>; sequences: Sequence[] } {
  return JSON.parse(readFileSync(join(GOLDEN_DIR, "transcripts.json"), "utf8"));
}
