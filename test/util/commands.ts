/**
 * Which external commands the project's code spawns, read from its source text, and the list of
 * them that `.ci/setup.sh` installs (`.ci/commands.txt`). Used by test/unit/commands.test.ts.
 *
 * Deliberately simple: a command is a string literal at argv[0] of an array literal given to one
 * of the known spawn helpers (Bun.spawn, Bun.spawnSync, netns.ts `sh`, `lab.exec`/`lab.spawn`,
 * the local `run` of build.ts and ipvsvm.ts, execFile), or of an array assigned to `cmd`/`wrap`
 * (the two places that build an argv before spawning it). Wrappers are followed: `ip netns exec
 * NS CMD`, `env VAR=... CMD`, `... -- CMD` (perf record, runuser) and `sh|bash -c SCRIPT`, whose
 * script is read like a shell file (first word of each simple command, $(...) included).
 * An argv[0] that is not a literal must be one of the project's own executables (OWN_EXECUTABLES);
 * anything else is reported as unknown rather than silently skipped.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/** argv[0] expressions and names of the project's own executables (dist/xvs) and of those npm installs (package.json). */
export const OWN_EXECUTABLES = new Set([
  "...selfCommand()", // the running xvs: dist/xvs, or bun + src/main.ts in a source tree (src/tools/lab/self.ts)
  "process.execPath", // bun itself (build.ts under test)
  "bin", // a copy of dist/xvs (test/integration/binary.test.ts)
  "link", // a symlink named ipvsadm to dist/xvs (same test)
  "./dist/xvs", // the same, named in .ci/setup.sh
  "node_modules/.bin/bun", // bun as npm installs it (bench/ipvs-vm.sh)
  "bun", // the same, on PATH (.ci/setup.sh puts node_modules/.bin there)
  "tsc", // typescript, a devDependency, on the same PATH
  "biome", // @biomejs/biome, a devDependency, on the same PATH (format and lint check)
]);

/**
 * Non-literal argv[0] expressions that forward an argv built elsewhere: the helper's own
 * parameter, checked where the literal array is written (netns.ts `sh(cmd)` and `exec(host, cmd)`,
 * startDaemon's `launch.wrap`, built as `const wrap = [...]`). `prefix` in startup.test.ts is
 * passed as an argument to a test-local function, which this scanner does not follow.
 */
const FORWARDED = new Set(["...cmd", "...(launch.wrap ?? [])", "...prefix"]);

/** What a quoted string, $(...) or ${...} becomes in a script's skeleton: never a command name. */
const QUOTED = "\u0001";

/** Shell words that are not commands found on PATH. */
const SHELL_BUILTINS = new Set([
  "cd",
  "echo",
  "printf",
  "set",
  "export",
  "local",
  "shift",
  "exit",
  "return",
  "true",
  "false",
  ":",
  "[",
  "[[",
  "test",
  "trap",
  "read",
  "wait",
  "eval",
  "source",
  ".",
  "unset",
  "break",
  "continue",
  "command",
  "type",
  "declare",
  "readonly",
  "let",
  "case",
  "esac",
  "for",
  "in",
  "select",
  "function",
]);
const SHELL_KEYWORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "time"]);

export interface Found {
  command: string;
  where: string; // file:line
}

/** One entry of .ci/commands.txt: a command (or a file, for headers) and the Debian package that provides it. */
export interface Listed {
  what: string;
  pkg: string;
}

export function readList(text: string): Listed[] {
  const out: Listed[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const [what, pkg, ...rest] = line.split(/\s+/);
    if (!pkg || rest.length) throw new Error(`commands.txt: expected 'COMMAND PACKAGE': ${raw}`);
    out.push({ what, pkg });
  }
  return out;
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Index just past the string literal starting at `i` (quote char at text[i]); template `${}` skipped whole. */
function skipString(text: string, i: number): number {
  const q = text[i];
  i++;
  while (i < text.length && text[i] !== q) {
    if (text[i] === "\\") i += 2;
    else if (q === "`" && text[i] === "$" && text[i + 1] === "{") i = skipBalanced(text, i + 1);
    else i++;
  }
  return i + 1;
}

/** `text[i]` opens ( [ or {: index just past its matching closer, strings respected. */
function skipBalanced(text: string, i: number): number {
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'" || c === "`") {
      i = skipString(text, i);
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return i;
}

/** Top-level elements of the array literal whose `[` is at `i`, as source text. */
function arrayElements(text: string, i: number): string[] {
  const end = skipBalanced(text, i) - 1;
  const out: string[] = [];
  let start = i + 1;
  let j = start;
  while (j < end) {
    const c = text[j];
    if (c === '"' || c === "'" || c === "`") j = skipString(text, j);
    else if (c === "(" || c === "[" || c === "{") j = skipBalanced(text, j);
    else if (c === ",") {
      out.push(text.slice(start, j).trim());
      start = ++j;
    } else j++;
  }
  const last = text.slice(start, end).trim();
  if (last) out.push(last);
  return out;
}

/** The value of a string literal element (template `${...}` parts become X), or null if not a literal. */
function literal(el: string): string | null {
  const m = /^(["'`])([\s\S]*)\1$/.exec(el);
  if (!m) return null;
  return m[1] === "`" ? m[2].replace(/\$\{[^}]*\}/g, "X") : m[2];
}

/** Commands an argv (array literal elements) runs, following the wrappers. */
function argvCommands(els: string[], where: string, out: Found[]): void {
  let k = 0;
  while (k < els.length) {
    const el = els[k];
    const v = literal(el);
    if (v === null) {
      if (!OWN_EXECUTABLES.has(el) && !FORWARDED.has(el)) out.push({ command: `<not a literal: ${el}>`, where });
      return;
    }
    if (!OWN_EXECUTABLES.has(v)) out.push({ command: v, where });
    if (v === "timeout") {
      k++; // timeout [-s SIG] [-k D] DURATION CMD...
      while (k < els.length && (literal(els[k]) ?? "").startsWith("-")) k += /^-[sk]$/.test(literal(els[k]) ?? "") ? 2 : 1;
      k++;
      continue;
    }
    if (v === "ip" && literal(els[k + 1] ?? "") === "netns" && literal(els[k + 2] ?? "") === "exec") {
      k += 4; // ip netns exec NS CMD...
      continue;
    }
    if (v === "env") {
      k++;
      while (k < els.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(literal(els[k]) ?? "")) k++;
      continue;
    }
    if ((v === "sh" || v === "bash") && literal(els[k + 1] ?? "") === "-c") {
      const script = literal(els[k + 2] ?? "");
      if (script === null) out.push({ command: `<script not a literal: ${els[k + 2]}>`, where });
      else for (const c of shellCommands(script)) out.push({ command: c, where });
      return;
    }
    const dd = els.findIndex((e, j) => j > k && literal(e) === "--");
    if (dd < 0) return;
    k = dd + 1; // perf record ... -- sleep N, runuser -u U -- CMD
  }
}

/** `run([...])`: a spawn helper only in files that define it so (elsewhere `run` may take options). */
const RUN_SITE = /(?<![.\w])run\(\s*(?=\[)/g;
const RUN_IS_SPAWN = /\bfunction run\(cmd: string\[\]/;

/** Where an argv array literal starts in a spawn call, by helper; the match ends just before `[`. */
const SPAWN_SITES = [
  /\bBun\.spawn(?:Sync)?\(\s*(?=\[)/g,
  /(?<![.\w])sh\(\s*(?=\[)/g, // src/tools/lab/netns.ts
  RUN_SITE, // build.ts, src/tools/bench/ipvsvm.ts
  /\bexecFile(?:Sync)?\(\s*(?=["'`])/g,
  /\.(?:exec|spawn)\(\s*[^,()]+(?:\([^()]*\))?,\s*(?=\[)/g, // lab.exec(host, [...]), lab.spawn(host, [...])
  /\b(?:const|let)\s+(?:cmd|wrap)\s*=\s*(?=\[)/g,
];

/** Commands spawned by one TypeScript file. */
export function tsCommands(text: string, file: string): Found[] {
  const out: Found[] = [];
  for (const re of SPAWN_SITES) {
    if (re === RUN_SITE && !RUN_IS_SPAWN.test(text)) continue;
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const at = m.index + m[0].length;
      const where = `${file}:${lineOf(text, m.index)}`;
      if (text[at] === "[") argvCommands(arrayElements(text, at), where, out);
      else {
        const v = literal(text.slice(at, skipString(text, at)));
        if (v !== null) out.push({ command: v, where });
      }
    }
  }
  return out;
}

/**
 * Shell text reduced to its commands: comments dropped, quoted strings replaced by QUOTED, the
 * contents of $(...) collected (and read the same way) wherever they appear outside single quotes.
 */
function skeleton(text: string, subs: string[]): string {
  let out = "";
  let i = 0;
  const takeSub = (at: number): number => {
    const end = skipBalanced(text, at + 1);
    subs.push(text.slice(at + 2, end - 1));
    return end;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === "#" && (i === 0 || /\s/.test(text[i - 1]))) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "'") {
      i = text.indexOf("'", i + 1) + 1 || text.length;
      out += QUOTED;
    } else if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") i += 2;
        else if (text[i] === "$" && text[i + 1] === "(") i = takeSub(i);
        else i++;
      }
      i++;
      out += QUOTED;
    } else if (c === "$" && text[i + 1] === "(" && text[i + 2] === "(") {
      i = skipBalanced(text, i + 1); // $((arithmetic))
      out += QUOTED;
    } else if (c === "$" && text[i + 1] === "(") {
      i = takeSub(i);
      out += QUOTED;
    } else if (c === "$" && text[i + 1] === "{") {
      i = skipBalanced(text, i + 1); // ${name:-default}, ${#list[@]}
      out += QUOTED;
    } else if (c === "\\" && text[i + 1] === "\n") {
      i += 2;
      out += " ";
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Commands a shell script runs: the first word of each simple command, builtins and its own functions excluded. */
export function shellCommands(script: string, outer: Set<string> = new Set()): string[] {
  const subs: string[] = [];
  const sk = skeleton(script, subs);
  const functions = new Set([...outer, ...[...sk.matchAll(/^\s*([\w-]+)\s*\(\)\s*\{/gm)].map((m) => m[1])]);
  const out: string[] = [];
  const body = sk
    .replace(/\d*[<>]&\d*-?/g, " ") // 2>&1, >&2
    .replace(/^\s*[^\s()]+(?:\s*\|\s*[^\s()]+)*\)/gm, " ") // case arms: `demo)`, `"")`, `*)`
    .replace(/^\s*[\w-]+\s*\(\)\s*\{/gm, " ") // function headers
    .replace(/;;/g, " ");
  for (const seg of body.split(/\n|;|&&|\|\||\||&|\(|\)|\{|\}/)) {
    const words = seg.trim().split(/\s+/).filter(Boolean);
    let w = 0;
    while (w < words.length && (SHELL_KEYWORDS.has(words[w]) || /^[A-Za-z_][A-Za-z0-9_]*\+?=/.test(words[w]))) w++;
    if (words[w] === "exec") w++;
    if (words[w] === "timeout") {
      out.push("timeout");
      for (w++; words[w]?.startsWith("-"); w += /^-[sk]$/.test(words[w]) ? 2 : 1);
      w++; // the duration
    }
    const word = words[w];
    if (!word || word === "for" || word === "case") continue;
    if (word.startsWith(QUOTED) || /^[$<>*?]|^\d*>/.test(word) || SHELL_BUILTINS.has(word) || functions.has(word) || OWN_EXECUTABLES.has(word)) continue;
    out.push(word);
  }
  for (const s of subs) out.push(...shellCommands(s, functions));
  return out;
}

/** Every .ts file under `dir` (recursively), relative to `root`. */
export function tsFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(relative(root, p));
    }
  };
  walk(join(root, dir));
  return out;
}

/** What the project spawns: TypeScript under src/, test/, bench/ and build.ts; the shell scripts of .ci/ and bench/. */
export function scanProject(root: string): Found[] {
  const found: Found[] = [];
  const ts = [...tsFiles(root, "src"), ...tsFiles(root, "test"), ...tsFiles(root, "bench"), "build.ts"];
  // the scanner and its test hold spawn patterns and snippets as text, not spawns
  const notSpawning = new Set(["test/util/commands.ts", "test/unit/commands.test.ts"]);
  for (const f of ts.filter((f) => !notSpawning.has(f))) found.push(...tsCommands(readFileSync(join(root, f), "utf8"), f));
  const shells = [
    ...readdirSync(join(root, ".ci"))
      .filter((f) => f.endsWith(".sh") || f === "run")
      .map((f) => `.ci/${f}`),
    ...readdirSync(join(root, "bench"))
      .filter((f) => f.endsWith(".sh"))
      .map((f) => `bench/${f}`),
  ];
  for (const f of shells) {
    for (const c of shellCommands(readFileSync(join(root, f), "utf8"))) found.push({ command: c, where: f });
  }
  return found;
}
