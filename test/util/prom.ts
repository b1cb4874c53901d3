/**
 * A strict reader of the Prometheus text exposition for the tests: it checks what the format
 * requires of a page (HELP and TYPE once per family and before its samples, samples of one
 * family together, label values quoted and escaped) and returns every sample, so that a test
 * can look values up by name and labels. It throws on anything it does not understand, so a
 * page it reads is one Prometheus would read too (promtool checks the same pages in the labs).
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromPage {
  samples: PromSample[];
  help: Map<string, string>;
  type: Map<string, string>;
  /** Samples of `name` whose labels include every pair of `match`. */
  find(name: string, match?: Record<string, string>): PromSample[];
  /** The one sample of `name` matching `match`; throws unless exactly one. */
  value(name: string, match?: Record<string, string>): number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 1; // after "{"
  while (i < text.length - 1) {
    const eq = text.indexOf("=", i);
    const name = text.slice(i, eq);
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || text[eq + 1] !== '"') throw new Error(`bad label in: ${line}`);
    let j = eq + 2,
      v = "";
    for (;;) {
      const ch = text[j];
      if (ch === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (ch === '"') break;
      if (ch === "\\") {
        const e = text[j + 1];
        if (e === "n") v += "\n";
        else if (e === "\\" || e === '"') v += e;
        else throw new Error(`bad escape \\${e} in: ${line}`);
        j += 2;
        continue;
      }
      if (ch === "\n") throw new Error(`raw newline in: ${line}`);
      v += ch;
      j++;
    }
    if (name in out) throw new Error(`label ${name} twice in: ${line}`);
    out[name] = v;
    i = j + 1;
    if (text[i] === ",") i++;
  }
  return out;
}

function parseValue(s: string, line: string): number {
  if (s === "NaN") return NaN;
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  const n = Number(s);
  if (s === "" || Number.isNaN(n)) throw new Error(`bad value in: ${line}`);
  return n;
}

/** Read a page; throws on any line the format does not allow. */
export function parseExposition(text: string): PromPage {
  if (text !== "" && !text.endsWith("\n")) throw new Error("page does not end with a newline");
  const samples: PromSample[] = [];
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const closed = new Set<string>();
  let current = "";
  for (const line of text.split("\n").slice(0, -1)) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      const map = kind === "HELP" ? help : type;
      if (map.has(name)) throw new Error(`${kind} of ${name} twice`);
      if (samples.some((s) => s.name === name)) throw new Error(`${kind} of ${name} after its samples`);
      if (kind === "TYPE" && !["counter", "gauge", "untyped", "summary", "histogram"].includes(rest)) throw new Error(`bad type: ${line}`);
      map.set(name, kind === "HELP" ? rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\") : rest);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = m[1];
    if (name !== current) {
      if (closed.has(name)) throw new Error(`samples of ${name} are not together`);
      if (current) closed.add(current);
      current = name;
    }
    samples.push({ name, labels: m[2] ? parseLabels(m[2], line) : {}, value: parseValue(m[3], line) });
  }
  const find = (name: string, match: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    help,
    type,
    find,
    value(name, match = {}) {
      const f = find(name, match);
      if (f.length !== 1) throw new Error(`${f.length} samples of ${name} ${JSON.stringify(match)}`);
      return f[0].value;
    },
  };
}
