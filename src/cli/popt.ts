/**
 * The part of popt (libpopt, poptGetNextOpt) that ipvsadm relies on, so that xvs splits a
 * command line exactly as ipvsadm does: bundled short options (-Ln, -At ADDR), attached
 * arguments (-srr, --scheduler=rr), a required argument taken from the next word even when it
 * starts with '-' (-w -1), an optional one only when the next word does not (-p -s rr), words
 * that are not options kept as leftover arguments wherever they appear, and `--` ending the
 * options. Errors carry popt's words and the word poptBadOption would name.
 */
import { OPTION_TABLE, type OptionDef } from "./options.ts";

/** popt's error texts (poptStrerror). */
export const POPT_ERRORS = {
  noarg: "missing argument",
  badopt: "unknown option",
  unwantedarg: "option does not take an argument",
} as const;

/** What one step of option parsing yields. */
export type PoptResult =
  | { kind: "opt"; def: OptionDef; arg: string | null; word: string }
  | { kind: "end" }
  | { kind: "error"; error: keyof typeof POPT_ERRORS; word: string };

/** A popt context over argv (without the program name). */
export class Popt {
  private i = 0;
  /** Rest of a bundle of short options being taken apart, and the word it came from. */
  private chars = "";
  private charsWord = "";
  private onlyArgs = false;
  /** Words that are not options, in order (poptGetArg). */
  readonly leftover: string[] = [];

  constructor(
    private readonly argv: string[],
    private readonly table: OptionDef[] = OPTION_TABLE,
  ) {}

  private takeArg(def: OptionDef, word: string): PoptResult {
    if (def.arg === "none") return { kind: "opt", def, arg: null, word };
    if (this.i >= this.argv.length) {
      return def.arg === "optional" ? { kind: "opt", def, arg: null, word } : { kind: "error", error: "noarg", word };
    }
    const next = this.argv[this.i];
    if (def.arg === "optional" && next.startsWith("-")) return { kind: "opt", def, arg: null, word };
    this.i++;
    return { kind: "opt", def, arg: next, word: next };
  }

  /** Return the next option, the end, or an error (poptGetNextOpt). */
  next(): PoptResult {
    for (;;) {
      if (this.chars) {
        const c = this.chars[0];
        const rest = this.chars.slice(1);
        const word = this.charsWord;
        this.chars = "";
        const def = this.table.find((d) => d.short === c);
        if (!def) return { kind: "error", error: "badopt", word };
        if (def.arg !== "none" && rest) return { kind: "opt", def, arg: rest, word };
        this.chars = rest;
        return this.takeArg(def, word);
      }
      if (this.i >= this.argv.length) return { kind: "end" };
      const a = this.argv[this.i++];
      if (this.onlyArgs || a[0] !== "-" || a === "-") {
        this.leftover.push(a);
        continue;
      }
      if (a === "--") {
        this.onlyArgs = true;
        continue;
      }
      if (a.startsWith("--")) {
        const eq = a.indexOf("=");
        const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
        const def = this.table.find((d) => d.long === name);
        if (!def) return { kind: "error", error: "badopt", word: a };
        if (eq >= 0) {
          if (def.arg === "none") return { kind: "error", error: "unwantedarg", word: a };
          return { kind: "opt", def, arg: a.slice(eq + 1), word: a };
        }
        return this.takeArg(def, a);
      }
      this.chars = a.slice(1);
      this.charsWord = a;
    }
  }

  /** Return the next leftover argument, or null (poptGetArg). */
  arg(): string | null {
    return this.leftover.shift() ?? null;
  }
}
