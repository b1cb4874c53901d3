/**
 * The argument parser of the small programs the labs and `xvs bench` run inside their
 * namespaces (`xvs __lab MODE ...`, `xvs __bench MODE ...`): one for both, so a bad argument
 * fails the same way everywhere.
 *
 * Each mode declares its options: a string (optionally one of a few choices), a number
 * (optionally an integer in a range) or a flag. Every argument is checked before the mode
 * starts: an unknown option, an option without its value, a value that is not a number or is
 * out of range, a choice not in the list, a missing required option or a stray word ends the
 * agent with one line naming the argument and exit code 2 (the agent did nothing). A flag stands
 * alone or takes an explicit 1/0/true/false (`--bodies 1`). An option given twice keeps its last
 * value.
 */

export type OptionSpec =
  | { type: "string"; required?: boolean; choices?: readonly string[] }
  | { type: "number"; required?: boolean; integer?: boolean; min?: number; max?: number }
  | { type: "flag" };

export type OptionsSpec = Record<string, OptionSpec>;

/** The parsed options of a spec: strings and numbers, `undefined` when optional and absent. */
export type ParsedOptions<S extends OptionsSpec> = {
  [K in keyof S]: S[K] extends { type: "flag" }
    ? boolean
    : S[K] extends { type: "number" }
      ? S[K] extends { required: true }
        ? number
        : number | undefined
      : S[K] extends { required: true }
        ? string
        : string | undefined;
};

/** A bad command line; `message` names the argument. */
export class AgentArgError extends Error {
  override name = "AgentArgError";
}

/** An integer TCP/UDP port number (0 where the agent reads it as "none"). */
export const PORT = { type: "number", integer: true, min: 0, max: 65535 } as const;
/** A count or size: an integer, at least 0. */
export const COUNT = { type: "number", integer: true, min: 0 } as const;
/** A duration or rate: a number, at least 0. */
export const AMOUNT = { type: "number", min: 0 } as const;
export const TEXT = { type: "string" } as const;
export const FLAG = { type: "flag" } as const;

const FLAG_VALUES: Record<string, boolean> = { "1": true, true: true, "0": false, false: false };

/**
 * Parse `argv` (the words after the mode) against `spec`.
 * @throws AgentArgError naming the first bad argument.
 */
export function parseAgentArgs<const S extends OptionsSpec>(argv: readonly string[], spec: S): ParsedOptions<S> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const [k, o] of Object.entries(spec)) out[k] = o.type === "flag" ? false : undefined;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (!word.startsWith("--")) throw new AgentArgError(`unexpected argument '${word}'`);
    const key = word.slice(2);
    const o = Object.hasOwn(spec, key) ? spec[key] : undefined;
    if (o === undefined) throw new AgentArgError(`unknown option ${word}`);
    if (o.type === "flag") {
      const next = argv[i + 1];
      if (next !== undefined && Object.hasOwn(FLAG_VALUES, next)) {
        out[key] = FLAG_VALUES[next];
        i++;
      } else out[key] = true;
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new AgentArgError(`${word} needs a value`);
    i++;
    if (o.type === "string") {
      if (o.choices && !o.choices.includes(v)) throw new AgentArgError(`${word}: '${v}' is not one of ${o.choices.join(", ")}`);
      out[key] = v;
      continue;
    }
    const n = v.trim() === "" ? NaN : Number(v);
    if (!Number.isFinite(n)) throw new AgentArgError(`${word}: '${v}' is not a number`);
    if (o.integer && !Number.isInteger(n)) throw new AgentArgError(`${word}: '${v}' is not an integer`);
    if (o.min !== undefined && n < o.min) throw new AgentArgError(`${word}: ${v} is below ${o.min}`);
    if (o.max !== undefined && n > o.max) throw new AgentArgError(`${word}: ${v} is above ${o.max}`);
    out[key] = n;
  }
  for (const [k, o] of Object.entries(spec)) {
    if (o.type !== "flag" && o.required && out[k] === undefined) throw new AgentArgError(`--${k} is required`);
  }
  return out as ParsedOptions<S>;
}

/** One line of usage from a spec: required options first, optional ones in brackets. */
export function usageOf(spec: OptionsSpec): string {
  const word = (k: string, o: OptionSpec) =>
    o.type === "flag" ? `--${k}` : `--${k} ${o.type === "string" ? (o.choices ? o.choices.join("|") : "S") : o.integer ? "N" : "X"}`;
  const entries = Object.entries(spec);
  const req = entries.filter(([, o]) => o.type !== "flag" && o.required).map(([k, o]) => word(k, o));
  const opt = entries.filter(([, o]) => o.type === "flag" || !o.required).map(([k, o]) => `[${word(k, o)}]`);
  return [...req, ...opt].join(" ");
}

/** A mode of an agent program: the options it takes and what it does with them. */
export interface AgentMode {
  options: OptionsSpec;
  // the options were parsed against `options`: `mode()` ties the two types together
  run(a: Record<string, unknown>): Promise<number> | number;
}

/** Declare a mode; `run` gets its options parsed and typed. */
export function mode<const S extends OptionsSpec>(options: S, run: (a: ParsedOptions<S>) => Promise<number> | number): AgentMode {
  return { options, run: run as AgentMode["run"] };
}

/**
 * Run `argv` (mode first) against `modes`. A bad mode or argument writes one line
 * `xvs TOOL MODE: <what is wrong>` and the mode's usage to `err`, and returns 2.
 */
export async function runAgent(
  tool: string,
  modes: Record<string, AgentMode>,
  argv: readonly string[],
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  const [name, ...rest] = argv;
  const m = name !== undefined && Object.hasOwn(modes, name) ? modes[name] : undefined;
  if (m === undefined) {
    err(`xvs ${tool}: unknown mode ${name ?? "(none)"}; modes: ${Object.keys(modes).join(", ")}\n`);
    return 2;
  }
  let a: Record<string, unknown>;
  try {
    a = parseAgentArgs(rest, m.options);
  } catch (e) {
    if (!(e instanceof AgentArgError)) throw e;
    err(`xvs ${tool} ${name}: ${e.message}\nusage: xvs ${tool} ${name} ${usageOf(m.options)}\n`);
    return 2;
  }
  return m.run(a);
}
