/**
 * The layering of src/ as docs/architecture.md declares it ("Dependencies go one way"): the
 * folder graph (every import counted: type imports, `export ... from`, dynamic import(),
 * side-effect imports) has no cycle, every edge goes from a higher layer to a lower one of the
 * table in the docs, and the dataplane worker loads neither zod, hono nor anything of control/.
 * Imports are read with TypeScript's own scanner (ts.preProcessFile), which skips comments and
 * strings and keeps type-only imports that the transpiler would drop.
 */
import { describe, expect, test } from "bun:test";
import ts from "typescript";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const SRC = join(ROOT, "src");

/** folder -> imported folder -> importing files (for the failure message). */
type FolderGraph = Map<string, Map<string, string[]>>;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !p.endsWith(".d.ts")) out.push(p); // .d.ts: ambient declarations, never loaded
  }
  return out;
}

/** Every module specifier a source text names. */
function scan(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

function specifiers(file: string): string[] {
  return scan(readFileSync(file, "utf8"));
}

/** The .ts file a relative specifier names, or null (assets, files outside the tree). */
function resolveTs(from: string, spec: string): string | null {
  const p = resolve(dirname(from), spec);
  for (const c of [p, `${p}.ts`, join(p, "index.ts")]) if (c.endsWith(".ts") && existsSync(c)) return c;
  return null;
}

/**
 * The folder of src/ a file belongs to; a file directly in src/ is its own "folder" (errors, log,
 * main); under src/tools/ (the labs, demo and bench, which serve tests and operators, not the
 * daemon) each tool is its own folder ("tools/lab").
 */
function folderOf(file: string): string {
  const parts = relative(SRC, file).split("/");
  if (parts[0] === "tools" && parts.length > 2) return `tools/${parts[1]}`;
  return parts[0].replace(/\.ts$/, "");
}

function folderGraph(): FolderGraph {
  const g: FolderGraph = new Map();
  for (const f of sourceFiles(SRC)) {
    const a = folderOf(f);
    if (!g.has(a)) g.set(a, new Map());
    for (const s of specifiers(f)) {
      if (!s.startsWith(".")) continue;
      const t = resolve(dirname(f), s);
      if (relative(SRC, t).startsWith("..")) continue; // native/out assets, package.json
      const b = folderOf(t);
      if (a === b) continue;
      const e = g.get(a)!;
      if (!e.has(b)) e.set(b, []);
      e.get(b)!.push(relative(SRC, f));
    }
  }
  return g;
}

/** A cycle of the graph as a path that starts and ends at the same node, or null. */
function findCycle(g: ReadonlyMap<string, ReadonlyMap<string, unknown>>): string[] | null {
  const state = new Map<string, 1 | 2>(); // 1: on the stack, 2: done
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const m of [...(g.get(n)?.keys() ?? [])].sort()) {
      if (state.get(m) === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (state.get(m) === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...g.keys()].sort()) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

/** Edges that do not go strictly down the layer table (or name a folder the table lacks). */
function orderViolations(g: ReadonlyMap<string, ReadonlyMap<string, unknown>>, layers: readonly (readonly string[])[]): string[] {
  const rank = new Map<string, number>();
  layers.forEach((row, i) => {
    for (const f of row) rank.set(f, i);
  });
  const bad: string[] = [];
  for (const [a, targets] of g) {
    if (!rank.has(a)) bad.push(`${a}: not in the layer table`);
    for (const b of targets.keys()) {
      if (!rank.has(b)) bad.push(`${b}: not in the layer table`);
      else if (rank.has(a) && rank.get(b)! >= rank.get(a)!) bad.push(`${a} -> ${b} (layer ${rank.get(a)} imports layer ${rank.get(b)})`);
    }
  }
  return [...new Set(bad)].sort();
}

/**
 * The layer table of docs/architecture.md: the rows `| N | \`folder\`, ... | ... |` of the
 * section "Dependencies go one way", lowest layer first.
 */
function declaredLayers(): string[][] {
  const doc = readFileSync(join(ROOT, "docs/architecture.md"), "utf8");
  const start = doc.indexOf("## Dependencies go one way");
  const section = doc.slice(start, doc.indexOf("\n## ", start + 1));
  const rows: string[][] = [];
  for (const line of section.split("\n")) {
    const m = /^\|\s*(\d+)\s*\|([^|]*)\|/.exec(line);
    if (!m) continue;
    expect(Number(m[1])).toBe(rows.length);
    rows.push([...m[2].matchAll(/`([^`]+)`/g)].map((x) => x[1].replace(/\/$/, "").replace(/\.ts$/, "")));
  }
  return rows;
}

/** Every file a module loads, transitively, and every package it names (type imports included). */
function closure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>(),
    packages = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const s of specifiers(f)) {
      if (!s.startsWith(".")) {
        packages.add(s);
        continue;
      }
      const t = resolveTs(f, s);
      if (t) todo.push(t);
    }
  }
  return { files, packages };
}

function edges(g: FolderGraph): string {
  return [...g]
    .sort()
    .map(([a, m]) => `${a} -> ${[...m.keys()].sort().join(" ")}`)
    .join("\n");
}

describe("the checks themselves", () => {
  test("a cycle in a tiny graph is found and printed", () => {
    const g = new Map([
      ["a", new Map([["b", 1]])],
      ["b", new Map([["c", 1]])],
      [
        "c",
        new Map([
          ["a", 1],
          ["d", 1],
        ]),
      ],
      ["d", new Map()],
    ]);
    expect(findCycle(g)).toEqual(["a", "b", "c", "a"]);
    g.get("c")!.delete("a");
    expect(findCycle(g)).toBeNull();
  });

  test("an edge going up, one within a layer and an unknown folder are reported", () => {
    const g = new Map([
      ["low", new Map([["high", 1]])],
      [
        "high",
        new Map([
          ["low", 1],
          ["peer", 1],
          ["new", 1],
        ]),
      ],
      ["peer", new Map()],
    ]);
    expect(orderViolations(g, [["low"], ["high", "peer"]])).toEqual([
      "high -> peer (layer 1 imports layer 1)",
      "low -> high (layer 0 imports layer 1)",
      "new: not in the layer table",
    ]);
  });

  test("the scanner sees type imports, export-from, side-effect and dynamic imports, not comments or strings", () => {
    const text = [
      'import type { A } from "./a.ts";',
      'import { type B } from "./b.ts";',
      'export * from "./c.ts";',
      'export type { D } from "./d.ts";',
      '// import { E } from "./not-in-a-comment.ts";',
      "const s = \"import { F } from './not-in-a-string.ts'\";",
      'import "./g.ts";',
      'const h = await import("./h.ts");',
      'let i: import("./i.ts").I;',
    ].join("\n");
    expect(scan(text)).toEqual(["./a.ts", "./b.ts", "./c.ts", "./d.ts", "./g.ts", "./h.ts", "./i.ts"]);
    // main.ts reaches the CLI only through `await import("./cli/main.ts")`
    expect(folderGraph().get("main")?.has("cli")).toBe(true);
  });
});

describe("src/ layers", () => {
  const g = folderGraph();

  test("no folder cycle", () => {
    const c = findCycle(g);
    if (c)
      console.error(
        `folder cycle: ${c.join(" -> ")}\n${c
          .slice(1)
          .map((b, i) => `  ${c[i]} -> ${b}: ${g.get(c[i])!.get(b)!.join(", ")}`)
          .join("\n")}`,
      );
    expect(c).toBeNull();
  });

  test("every import goes down the layer table of docs/architecture.md", () => {
    const layers = declaredLayers();
    expect(layers.length).toBeGreaterThan(5);
    const bad = orderViolations(g, layers);
    if (bad.length) console.error(`graph:\n${edges(g)}`);
    expect(bad).toEqual([]);
  });

  test("zod and hono only in control/ and cli/", () => {
    const users: string[] = [];
    for (const f of sourceFiles(SRC)) {
      if (specifiers(f).some((s) => s === "zod" || s === "hono" || s.startsWith("hono/") || s.startsWith("@hono/"))) users.push(relative(SRC, f));
    }
    expect(users.length).toBeGreaterThan(0);
    expect(users.filter((f) => !f.startsWith("control/") && !f.startsWith("cli/"))).toEqual([]);
  });

  test("the dataplane worker loads neither zod, hono nor control/", () => {
    const { files, packages } = closure(join(SRC, "dataplane/worker.ts"));
    const rel = [...files].map((f) => relative(SRC, f)).sort();
    // the walk does reach the fast path and the schedulers
    expect(rel).toContain("dataplane/fastpath.ts");
    expect(rel).toContain("sched/wrr.ts");
    expect([...packages].filter((p) => p === "zod" || p === "hono" || p.startsWith("hono/") || p.startsWith("@hono/"))).toEqual([]);
    expect(rel.filter((f) => f.startsWith("control/"))).toEqual([]);
  });
});
