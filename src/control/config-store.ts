/**
 * Keeps the table across restarts. Every committed change is written to `table.json` in the
 * state directory the way that survives a crash at any instant: the whole document goes to a
 * temporary file, which is fsynced, renamed over the old one (atomic on one filesystem), and
 * the directory is fsynced so the rename itself is durable. A crash before the rename leaves
 * the old table and a stray temporary file, which the next load ignores and removes; a crash
 * after it leaves the new table. No instant leaves a half-written table.json.
 *
 * The same document format (schemas.ts ConfigDoc) is the declarative config file of
 * `xvs run --config FILE`. The saved table adds one block, `saved`: the identity of the network
 * namespace that saved it (netns-identity.ts), when, and the hash of the config file last
 * applied (start-table.ts decides from it which table a start uses). Written in the same
 * atomic rename as the table, so a table never carries another one's identity. A config file
 * may carry the block too (a copy of table.json): it is ignored there.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ErrorCode, LbError } from "../errors.ts";
import type { Model } from "../config/model.ts";
import { schedulerByName } from "../sched/registry.ts";
import { modelToConfig } from "./batch.ts";
import type { ConfigSink } from "./daemon.ts";
import { zodErrorBody } from "./http.ts";
import { type NetnsIdentity, parseIdentity } from "./netns-identity.ts";
import { ConfigDoc, type ConfigDocT } from "./schemas.ts";

/** Name of the saved table in the state directory. */
export const TABLE_FILE = "table.json";
const TMP_MARK = ".tmp-";
/** The block of table.json that is not part of the table. */
const SAVED_KEY = "saved";

/** A config file as last applied: where it was and the SHA-256 of its bytes. */
export interface ConfigStamp {
  path: string;
  sha256: string;
}

/** Where a saved table came from (its `saved` block). */
export interface TableOrigin {
  by: NetnsIdentity;
  /** ISO time of the save. */
  at: string;
  /** The config file whose content the table started from, when one was applied; null otherwise. */
  config: ConfigStamp | null;
}

/** A saved table as loaded: the table, its origin (null: saved by an older xvs), the file's mtime. */
export interface SavedTable {
  doc: ConfigDocT;
  origin: TableOrigin | null;
  mtime: Date;
}

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
  return parseDocument(text, where).doc;
}

/** Parse a config document or a saved table: the table, and its `saved` block (unchecked) if any. */
function parseDocument(text: string, where: string): { doc: ConfigDocT; saved: unknown } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  let saved: unknown;
  if (typeof json === "object" && json !== null && !Array.isArray(json) && SAVED_KEY in json) {
    ({ [SAVED_KEY]: saved, ...json } = json as Record<string, unknown>);
  }
  const r = ConfigDoc.safeParse(json, { reportInput: true });
  if (!r.success) {
    const i = zodErrorBody(r.error, "document").error.issues![0];
    const value = i.value === undefined || typeof i.value === "object" ? "" : ` (value ${JSON.stringify(i.value)})`;
    throw new LbError(ErrorCode.Invalid, `${where}: ${i.path}: ${i.message}${value}`);
  }
  r.data.services.forEach((s, i) => {
    if (!schedulerByName(s.scheduler)) {
      throw new LbError(
        ErrorCode.NotExist,
        `${where}: services.${i}.scheduler: '${s.scheduler}': Scheduler or persistence engine not found (xvs does not implement it yet)`,
      );
    }
  });
  return { doc: r.data, saved };
}

/** The SHA-256 of a config file's text (what tells whether it changed since it was applied). */
export function configHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Read a config file (`xvs run --config FILE`). @throws LbError with one line naming the problem. */
export function loadConfigFile(path: string): ConfigDocT {
  return readConfigFile(path).doc;
}

/** Read a config file with the stamp that identifies its content. @throws LbError with one line naming the problem. */
export function readConfigFile(path: string): { doc: ConfigDocT; stamp: ConfigStamp } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `config file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return { doc: parseConfig(text, `config file ${path}`), stamp: { path, sha256: configHash(text) } };
}

/** Parse a `saved` block; null when it is missing or not one (the table then counts as an older xvs's). */
function parseOrigin(v: unknown): TableOrigin | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  const by = parseIdentity(o.by);
  if (!by || typeof o.at !== "string") return null;
  const c = o.config as Record<string, unknown> | null | undefined;
  const config = c && typeof c.path === "string" && typeof c.sha256 === "string" ? { path: c.path, sha256: c.sha256 } : null;
  return { by, at: o.at, config };
}

/** The saved table of one state directory. */
export class ConfigStore implements ConfigSink {
  readonly path: string;
  /** Written with every save once set (`stamp`); a store never stamped saves the bare table. */
  private by: NetnsIdentity | null = null;
  private config: ConfigStamp | null = null;

  constructor(
    readonly dir: string,
    private readonly hooks: WriteHooks = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.path = join(dir, TABLE_FILE);
  }

  /** Save from now on as namespace `by`, recording `config` as the config file last applied. */
  stamp(by: NetnsIdentity, config: ConfigStamp | null): void {
    this.by = by;
    this.config = config;
  }

  /** Save the table (called by Daemon.mutate before a change counts as done). */
  save(model: Model): void {
    const doc: Record<string, unknown> = { ...modelToConfig(model) };
    if (this.by) doc[SAVED_KEY] = { by: this.by, at: new Date(this.clock()).toISOString(), config: this.config } satisfies TableOrigin;
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 1)}\n`, this.hooks);
  }

  /**
   * Move the saved table aside as `name` in the same directory (one copy: an older one of that
   * name is replaced). Returns the new path, or null when there was no table.
   */
  setAside(name: string): string | null {
    if (!existsSync(this.path)) return null;
    const to = join(this.dir, name);
    renameSync(this.path, to);
    return to;
  }

  /**
   * Return the saved table, or null when none was saved yet. Temporary files of an interrupted
   * write are removed. @throws LbError when table.json exists but is not a valid table.
   */
  load(): ConfigDocT | null {
    return this.loadSaved()?.doc ?? null;
  }

  /** Like `load`, with the table's origin and the time of its last save. */
  loadSaved(): SavedTable | null {
    let text: string;
    let mtime: Date;
    try {
      if (existsSync(this.dir)) {
        for (const f of readdirSync(this.dir)) {
          if (f.startsWith(`${TABLE_FILE}${TMP_MARK}`)) unlinkSync(join(this.dir, f));
        }
      }
      if (!existsSync(this.path)) return null;
      text = readFileSync(this.path, "utf8");
      mtime = statSync(this.path).mtime;
    } catch (e) {
      throw new LbError(
        ErrorCode.Permission,
        `cannot read the saved table in ${this.dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}): run xvs as root, or set XVS_STATE_DIR`,
      );
    }
    const { doc, saved } = parseDocument(text, `saved table ${this.path} (move it away to start with an empty table)`);
    return { doc, origin: parseOrigin(saved), mtime };
  }
}
