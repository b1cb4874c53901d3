/**
 * Keeps the table across restarts. Every committed change is written to `table.json` in the
 * state directory the way that survives a crash at any instant: the whole document goes to a
 * temporary file, which is fsynced, renamed over the old one (atomic on one filesystem), and
 * the directory is fsynced so the rename itself is durable. A crash before the rename leaves
 * the old table and a stray temporary file, which the next load ignores and removes; a crash
 * after it leaves the new table. No instant leaves a half-written table.json.
 *
 * The same document format (schemas.ts ConfigDoc) is the declarative config file of
 * `xvs run --config FILE`.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ErrorCode, LbError } from "../errors.ts";
import type { Model } from "../config/model.ts";
import { schedulerByName } from "../sched/registry.ts";
import { modelToConfig } from "./batch.ts";
import type { ConfigSink } from "./daemon.ts";
import { zodErrorBody } from "./http.ts";
import { ConfigDoc, type ConfigDocT } from "./schemas.ts";

/** Name of the saved table in the state directory. */
export const TABLE_FILE = "table.json";
const TMP_MARK = ".tmp-";

/** Test hooks: run between the steps of a write, to simulate a crash there. */
export interface WriteHooks {
  afterWrite?(tmpPath: string): void;
  afterRename?(path: string): void;
}

/** Write `data` to `path` atomically and durably (write temp, fsync, rename, fsync dir). */
export function writeFileAtomic(path: string, data: string, hooks: WriteHooks = {}): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `${basename(path)}${TMP_MARK}${process.pid}`);
  const fd = openSync(tmp, "w", 0o600);
  try {
    const buf = Buffer.from(data);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  hooks.afterWrite?.(tmp);
  renameSync(tmp, path);
  hooks.afterRename?.(path);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Parse and validate a config document; errors name the file, the field, the value and the reason in one line. */
export function parseConfig(text: string, where: string): ConfigDocT {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const r = ConfigDoc.safeParse(json, { reportInput: true });
  if (!r.success) {
    const i = zodErrorBody(r.error, "document").error.issues![0];
    const value = i.value === undefined || typeof i.value === "object" ? "" : ` (value ${JSON.stringify(i.value)})`;
    throw new LbError(ErrorCode.Invalid, `${where}: ${i.path}: ${i.message}${value}`);
  }
  r.data.services.forEach((s, i) => {
    if (!schedulerByName(s.scheduler)) {
      throw new LbError(ErrorCode.NotExist, `${where}: services.${i}.scheduler: '${s.scheduler}': Scheduler or persistence engine not found (xvs does not implement it yet)`);
    }
  });
  return r.data;
}

/** Read a config file (`xvs run --config FILE`). @throws LbError with one line naming the problem. */
export function loadConfigFile(path: string): ConfigDocT {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `config file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseConfig(text, `config file ${path}`);
}

/** The saved table of one state directory. */
export class ConfigStore implements ConfigSink {
  readonly path: string;

  constructor(readonly dir: string, private readonly hooks: WriteHooks = {}) {
    this.path = join(dir, TABLE_FILE);
  }

  /** Save the table (called by Daemon.mutate before a change counts as done). */
  save(model: Model): void {
    writeFileAtomic(this.path, `${JSON.stringify(modelToConfig(model), null, 1)}\n`, this.hooks);
  }

  /**
   * Return the saved table, or null when none was saved yet. Temporary files of an interrupted
   * write are removed. @throws LbError when table.json exists but is not a valid table.
   */
  load(): ConfigDocT | null {
    let text: string;
    try {
      if (existsSync(this.dir)) {
        for (const f of readdirSync(this.dir)) {
          if (f.startsWith(`${TABLE_FILE}${TMP_MARK}`)) unlinkSync(join(this.dir, f));
        }
      }
      if (!existsSync(this.path)) return null;
      text = readFileSync(this.path, "utf8");
    } catch (e) {
      throw new LbError(ErrorCode.Permission, `cannot read the saved table in ${this.dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}): run xvs as root, or set XVS_STATE_DIR`);
    }
    return parseConfig(text, `saved table ${this.path} (move it away to start with an empty table)`);
  }
}
