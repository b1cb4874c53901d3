/**
 * Which table `xvs run` starts with: the saved table, the config file, or none, and what
 * happens to the files of the state directory that are not this namespace's.
 *
 * 1. A saved table is restored only into the network namespace that saved it
 *    (netns-identity.ts judgeOwner). Another namespace's table is not deleted: it is renamed to
 *    `table.foreign.json` (one copy) and the log says what it held and whose it was. The token
 *    of another namespace's daemon is not reused either: a new one is generated.
 * 2. `--config FILE` against this namespace's own saved table: the saved table is the running
 *    state, changes made with `xvs adm` (ipvsadm -e ...) included, and it records the SHA-256 of
 *    the config file it started from. If the config file is unchanged since, the saved table
 *    wins (a restart keeps the edits, as ipvsadm-save/restore units do); if the config file
 *    changed (or was never applied to this table), the operator declared a new state and it
 *    wins; a saved table that differs from it is kept as `table.replaced.json` with a warning,
 *    so an edit is never lost without a word.
 * `chooseStartTable` is the rule as a pure function; `prepareStartTable` reads the files, applies
 * the rule, moves files and writes the log lines.
 */
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, LbError } from "../errors.ts";
import { log } from "../log.ts";
import { Model } from "../config/model.ts";
import { applyConfig, modelToConfig } from "./batch.ts";
import { type ConfigStamp, ConfigStore, readConfigFile, type SavedTable, type TableOrigin, writeFileAtomic } from "./config-store.ts";
import { currentIdentity, describeIdentity, dirInode, judgeOwner, type NetnsIdentity, type Ownership, parseIdentity } from "./netns-identity.ts";
import type { ConfigDocT } from "./schemas.ts";

/** Where another namespace's table is moved (one copy). */
export const FOREIGN_TABLE_FILE = "table.foreign.json";
/** Where this namespace's table goes when a changed config file replaces it (one copy). */
export const REPLACED_TABLE_FILE = "table.replaced.json";
/** The identity of the namespace whose daemon last started in the directory (owns its token). */
export const OWNER_FILE = "netns.json";
const TOKEN_FILE = "token";

/** What the start does with the saved table, decided by `chooseStartTable`. */
export interface StartChoice {
  use: "saved" | "config" | "empty";
  /** One clause for the log: why this source. */
  why: string;
  /** The saved table is moved to this file first (null: left where it is, or none). */
  setAside: { file: string; why: string } | null;
}

/** The saved table as the rule sees it. */
export interface SavedFacts {
  origin: TableOrigin | null;
  owner: Ownership;
  /** True when it holds the same table as the config file (nothing would be lost replacing it). */
  sameAsConfig: boolean;
}

/** The rule: which table a start uses, given the saved table (null: none) and the config file given (null: none). */
export function chooseStartTable(saved: SavedFacts | null, config: ConfigStamp | null): StartChoice {
  const fallback = (why: string, setAside: StartChoice["setAside"]): StartChoice =>
    config ? { use: "config", why: `${why}: the config file is applied`, setAside } : { use: "empty", why: `${why}: starting with an empty table`, setAside };
  if (!saved) return fallback("no saved table", null);
  if (!saved.owner.ours) return fallback("the saved table is another network namespace's", { file: FOREIGN_TABLE_FILE, why: saved.owner.why });
  if (!config) return { use: "saved", why: saved.owner.why, setAside: null };
  const applied = saved.origin?.config ?? null;
  if (applied && applied.sha256 === config.sha256) {
    return {
      use: "saved",
      why: `${saved.owner.why}; the config file is unchanged since it was applied to this table (sha256 ${config.sha256.slice(0, 12)}), so the saved table, which holds every change made since, wins`,
      setAside: null,
    };
  }
  const why = applied
    ? `the config file changed since it was last applied to the saved table (sha256 ${applied.sha256.slice(0, 12)} then, ${config.sha256.slice(0, 12)} now): it is applied`
    : "the saved table was never started from this config file: it is applied";
  if (saved.sameAsConfig) return { use: "config", why: `${why} (it holds the same table)`, setAside: null };
  return {
    use: "config",
    why,
    setAside: {
      file: REPLACED_TABLE_FILE,
      why: "it differs from the config file: changes made through the API since the config file was applied are kept there",
    },
  };
}

/** The table a start uses, and the store that saves it from now on. */
export interface StartTable {
  store: ConfigStore;
  doc: ConfigDocT | null;
  /** The file the table came from (for error messages and the "xvs running" line), or "empty". */
  source: string;
  /**
   * Log which table was used and why: called once the daemon runs, so that a start that fails
   * later (an interface, XDP) still prints only its one error line. Files moved aside were
   * logged when they were moved.
   */
  announce(): void;
}

/** The table as applying it would build it: a document to compare, and the check that it applies. @throws LbError naming `where`. */
function normalise(doc: ConfigDocT, where: string): string {
  const m = new Model();
  try {
    applyConfig(m, doc);
  } catch (e) {
    throw new LbError(e instanceof LbError ? e.code : ErrorCode.Invalid, `${where}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return JSON.stringify(modelToConfig(m));
}

/** What a saved table held and whose it was, for the log. */
function summary(saved: SavedTable): Record<string, unknown> {
  return {
    services: saved.doc.services.length,
    dests: saved.doc.services.reduce((n, s) => n + s.dests.length, 0),
    savedAt: saved.origin?.at ?? saved.mtime.toISOString(),
    savedBy: saved.origin ? describeIdentity(saved.origin.by) : "an older xvs (no namespace identity)",
  };
}

/**
 * Read the config file (if given) and the saved table, decide which one the start uses, move a
 * table that must not be restored aside, claim the state directory for this namespace (a
 * stranger's token is removed, so a new one is generated) and log what was chosen and why.
 * Nothing is moved before both files are read and the chosen table applies cleanly.
 * @throws LbError when the config file or the saved table is broken (one line naming it).
 */
export function prepareStartTable(
  dir: string,
  configFile: string | { doc: ConfigDocT; stamp: ConfigStamp } | undefined,
  here: NetnsIdentity = currentIdentity(),
): StartTable {
  // a file read already (--keepalived-conf, converted) follows the same rule as --config
  const config = typeof configFile === "string" ? readConfigFile(configFile) : (configFile ?? null);
  const store = new ConfigStore(dir);
  const saved = store.loadSaved();
  const configText = config ? normalise(config.doc, `config file ${config.stamp.path}`) : null;
  let facts: SavedFacts | null = null;
  if (saved) {
    const owner = judgeOwner(saved.origin?.by ?? null, here, dirInode(dir));
    // compared only when it could be used or replaced: a stranger's table is not ours to check
    const savedText = owner.ours ? normalise(saved.doc, `saved table ${store.path} (move it away to start with an empty table)`) : null;
    facts = { origin: saved.origin, owner, sameAsConfig: savedText !== null && savedText === configText };
  }
  const choice = chooseStartTable(facts, config?.stamp ?? null);

  if (saved && choice.setAside) {
    const to = store.setAside(choice.setAside.file);
    log(
      "warn",
      choice.setAside.file === FOREIGN_TABLE_FILE ? "saved table not restored: it is another network namespace's" : "saved table replaced by the config file",
      {
        table: store.path,
        keptAs: to,
        why: choice.setAside.why,
        ...summary(saved),
      },
    );
  }
  claimStateDir(dir, here);

  let doc: ConfigDocT | null = null;
  let source = "empty";
  let stamp: ConfigStamp | null = null;
  let announce: () => void;
  if (choice.use === "saved" && saved) {
    doc = saved.doc;
    source = store.path;
    // the config file it started from stays recorded (given now or not): its hash decides later starts
    stamp = config?.stamp ?? saved.origin?.config ?? null;
    announce = () => log("info", "table restored from the saved table", { from: store.path, why: choice.why, ...summary(saved), config: config?.stamp.path });
  } else if (choice.use === "config" && config) {
    const loaded = config.doc;
    doc = loaded;
    source = config.stamp.path;
    stamp = config.stamp;
    announce = () =>
      log("info", "table loaded from the config file", {
        from: config.stamp.path,
        sha256: config.stamp.sha256,
        why: choice.why,
        services: loaded.services.length,
      });
  } else {
    announce = () => log("info", "starting with an empty table", { why: choice.why, state: dir });
  }
  store.stamp(here, stamp);
  return { store, doc, source, announce };
}

/**
 * Make the state directory this namespace's: if the daemon that last started in it was in
 * another namespace, its token is removed (ensureToken then generates a new one: a token issued
 * for another namespace's daemon must not open this one); then record this namespace as owner.
 */
export function claimStateDir(dir: string, here: NetnsIdentity): void {
  const ownerPath = join(dir, OWNER_FILE);
  const tokenPath = join(dir, TOKEN_FILE);
  let prev: NetnsIdentity | null = null;
  try {
    prev = parseIdentity(JSON.parse(readFileSync(ownerPath, "utf8")));
  } catch {
    // none yet (or unreadable): judged as an older xvs's directory
  }
  if (existsSync(tokenPath)) {
    const owner = judgeOwner(prev, here, dirInode(dir));
    if (!owner.ours) {
      unlinkSync(tokenPath);
      log("warn", "API token not reused: it was another network namespace's daemon's; a new one is generated", { token: tokenPath, why: owner.why });
    }
  }
  writeFileAtomic(ownerPath, `${JSON.stringify(here)}\n`);
}
