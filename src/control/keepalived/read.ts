/**
 * Reads keepalived.conf into a tree of statements the way keepalived 2.x's parser (lib/parser.c)
 * splits it, checked against Debian 12's keepalived 2.2.7 (`keepalived --config-test`):
 *
 * - A line is split into words at blanks. `!` or `#` outside double quotes starts a comment
 *   that runs to the end of the line, also in the middle of a word (`80#x {` is the word `80`:
 *   the `{` is commented out, keepalived then reports a missing '{').
 * - `"..."` is one word without its quotes (blanks, `#` and `!` kept); `{` and `}` are words
 *   of their own even when glued to another (`80{`).
 * - A statement is a keyword and the words after it on its line; a `{` after it (on the same
 *   line or starting the next one) opens its block, `}` closes it. Several statements may share
 *   a line through braces (`real_server 198.18.1.2 80 { weight 1 }`).
 * - `include GLOB` (first word of a line) reads the files the glob matches, sorted, in place;
 *   a relative pattern is relative to the directory of the file that includes it (keepalived
 *   changes into that directory while it reads the file).
 *
 * Where xvs is stricter than keepalived, on purpose: an include that matches no file is an
 * error (keepalived logs "Config files missing" and goes on; on a reload that would silently
 * remove every service the missing file held), as is an unterminated quote or an unbalanced
 * brace (keepalived logs and guesses).
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { createHash } from "node:crypto";
import { ErrorCode, LbError } from "../../errors.ts";

/** Deepest include nesting (keepalived has none; a loop would otherwise never end). */
export const MAX_INCLUDE_DEPTH = 16;
/** Largest file read, bytes (a config file, not a data set). */
export const MAX_FILE_BYTES = 8 << 20;

/** One statement: `keyword args... [{ block }]`, with where it was written. */
export interface Stmt {
  keyword: string;
  args: string[];
  file: string;
  line: number;
  /** null: no block followed the statement. */
  block: Stmt[] | null;
}

/** A configuration error at a place in a file: the message reads `FILE:LINE: what`. */
export class ConfError extends LbError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(ErrorCode.Invalid, `${file}:${line}: ${reason}`);
  }
}

/** What was read: the statements and every file that took part (for the content hash). */
export interface ReadResult {
  stmts: Stmt[];
  files: { path: string; text: string }[];
}

/** One word of a line, and whether it was quoted (a quoted `{` is not a brace). */
interface Word {
  text: string;
  quoted: boolean;
}

/** Split one line into words (see the header for the rules). @throws ConfError on an unterminated quote. */
export function splitLine(text: string, file: string, line: number): Word[] {
  const words: Word[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") {
      i++;
      continue;
    }
    if (c === "!" || c === "#") break;
    if (c === "{" || c === "}") {
      words.push({ text: c, quoted: false });
      i++;
      continue;
    }
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new ConfError(file, line, "unterminated quoted string");
      words.push({ text: text.slice(i + 1, end), quoted: true });
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < n && !' \t\r\f\v{}"!#'.includes(text[j])) j++;
    words.push({ text: text.slice(i, j), quoted: false });
    i = j;
  }
  return words;
}

/** Files an include pattern names, sorted (glob(3) order). */
function expandInclude(pattern: string, baseDir: string): string[] {
  const abs = isAbsolute(pattern) ? pattern : resolve(baseDir, pattern);
  if (!/[*?[]/.test(abs)) {
    try {
      return statSync(abs).isFile() ? [abs] : [];
    } catch {
      return [];
    }
  }
  const glob = new Bun.Glob(abs.slice(1));
  return [...glob.scanSync({ cwd: "/", absolute: true, onlyFiles: true, dot: false })].sort();
}

/** Read a file's text. @throws ConfError naming the include that asked for it. */
function readText(path: string, from: { file: string; line: number } | null): string {
  try {
    const st = statSync(path);
    if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    return readFileSync(path, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
    if (from) throw new ConfError(from.file, from.line, `include: cannot read ${path} (${why})`);
    throw new LbError(ErrorCode.Invalid, `keepalived config ${path}: cannot read it (${why})`);
  }
}

/**
 * Read a keepalived.conf with its includes into statements. @throws ConfError (FILE:LINE) or
 * LbError when the main file cannot be read.
 */
export function readKeepalivedConf(path: string): ReadResult {
  const files: ReadResult["files"] = [];
  const top: Stmt[] = [];
  // open blocks, innermost last; the root is `top`
  const stack: { stmts: Stmt[]; opener: Stmt | null }[] = [{ stmts: top, opener: null }];
  /** The statement a `{` would open: the last one of the current block, if it has no block yet. */
  let canOpen: Stmt | null = null;

  const readFile = (file: string, depth: number, from: { file: string; line: number } | null): void => {
    const text = readText(file, from);
    files.push({ path: file, text });
    const lines = text.split("\n");
    for (let ln = 0; ln < lines.length; ln++) {
      const lineNo = ln + 1;
      const words = splitLine(lines[ln], file, lineNo);
      if (words.length === 0) continue;
      if (!words[0].quoted && words[0].text === "include") {
        if (words.length !== 2) throw new ConfError(file, lineNo, "include takes one file name or glob pattern");
        if (depth >= MAX_INCLUDE_DEPTH) throw new ConfError(file, lineNo, `includes nested deeper than ${MAX_INCLUDE_DEPTH} (an include loop?)`);
        const found = expandInclude(words[1].text, dirname(file));
        if (found.length === 0) {
          throw new ConfError(
            file,
            lineNo,
            `include ${words[1].text}: no file matches (keepalived goes on without it; xvs refuses, so that a reload never drops the services of a missing file)`,
          );
        }
        for (const f of found) readFile(f, depth + 1, { file, line: lineNo });
        canOpen = null;
        continue;
      }
      let cur: Stmt | null = null;
      for (const w of words) {
        if (!w.quoted && w.text === "{") {
          const opener = cur ?? canOpen;
          if (!opener || opener.block) throw new ConfError(file, lineNo, "'{' without a keyword before it");
          opener.block = [];
          stack.push({ stmts: opener.block, opener });
          cur = null;
          canOpen = null;
          continue;
        }
        if (!w.quoted && w.text === "}") {
          if (stack.length === 1) throw new ConfError(file, lineNo, "'}' without a block to close");
          stack.pop();
          cur = null;
          canOpen = null;
          continue;
        }
        if (cur) {
          cur.args.push(w.text);
          continue;
        }
        cur = { keyword: w.text, args: [], file, line: lineNo, block: null };
        stack[stack.length - 1].stmts.push(cur);
      }
      canOpen = cur;
    }
  };

  readFile(resolve(path), 0, null);
  if (stack.length > 1) {
    const open = stack[stack.length - 1].opener!;
    throw new ConfError(open.file, open.line, `'${open.keyword}' block is never closed (missing '}')`);
  }
  return { stmts: top, files };
}

/** SHA-256 of every file read, in order (what tells whether the configuration changed). */
export function contentHash(files: ReadResult["files"]): string {
  const h = createHash("sha256");
  for (const f of files) h.update(f.path).update("\0").update(f.text).update("\0");
  return h.digest("hex");
}
