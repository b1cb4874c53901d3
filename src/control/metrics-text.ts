/**
 * Prometheus text exposition format 0.0.4, written by hand: one `# HELP` and one `# TYPE` line
 * per family, then one line per sample, `name{label="value",...} value`. The format is small
 * (escaping, names, number spelling) and a library would add a dependency to the single
 * executable for a few dozen lines (docs/metrics.md says why).
 *
 * Escaping, as the format specifies: in HELP text `\` and newline (`\\`, `\n`); in label values
 * `\`, `"` and newline (`\\`, `\"`, `\n`). Metric and label names are checked, not escaped: a
 * bad name here is a bug in the caller, and it throws rather than write a page Prometheus would
 * reject as a whole.
 */

/** Content-Type of the exposition (what Prometheus and node_exporter send and expect). */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The sample types this exposition writes. */
export type MetricType = "counter" | "gauge" | "untyped";

/** One sample of a family: its labels (in the order written) and its value. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

/** A metric family: every sample of one name, with its help text and type. */
export interface Family {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escape HELP text: backslash and line feed. */
export function escapeHelp(s: string): string {
  if (!/[\\\n]/.test(s)) return s;
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Escape a label value: backslash, double quote and line feed. */
export function escapeLabelValue(s: string): string {
  if (!/[\\"\n]/.test(s)) return s; // the common case: nothing to escape
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * Spell a sample value: integers in full (counters up to 2^53 stay exact), other numbers as
 * JavaScript prints them (Go's ParseFloat reads that, exponent included), and the format's
 * `NaN`, `+Inf`, `-Inf`.
 */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return v.toFixed(0);
  return String(v);
}

function labelText(labels: Readonly<Record<string, string>> | undefined, family: string): string {
  if (!labels) return "";
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  const parts: string[] = [];
  for (const k of keys) {
    if (!LABEL_NAME.test(k) || k.startsWith("__")) throw new Error(`metric ${family}: '${k}' is not a valid label name`);
    parts.push(`${k}="${escapeLabelValue(labels[k])}"`);
  }
  return `{${parts.join(",")}}`;
}

/**
 * Write families as one exposition page. Families without samples are left out (as
 * client_golang does); a repeated family name or a repeated label set within a family throws.
 * A labels object shared by several families (a real server's, in every backend family) is
 * checked and escaped once.
 */
export function exposition(families: readonly Family[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  const texts = new Map<object, string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`'${f.name}' is not a valid metric name`);
    if (seen.has(f.name)) throw new Error(`metric family ${f.name} written twice`);
    seen.add(f.name);
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    const sets = new Set<string>();
    for (const s of f.samples) {
      let l = s.labels ? texts.get(s.labels) : "";
      if (l === undefined) {
        l = labelText(s.labels, f.name);
        texts.set(s.labels!, l);
      }
      if (sets.has(l)) throw new Error(`metric ${f.name}: label set ${l || "{}"} written twice`);
      sets.add(l);
      out.push(`${f.name}${l} ${formatValue(s.value)}`);
    }
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}
