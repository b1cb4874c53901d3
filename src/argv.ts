/**
 * The long-option forms users type, for the xvs subcommands that have their own small parsers
 * (run, demo, bench, decap): `--opt value` and `--opt=value`, the two forms of GNU
 * getopt_long. Each parser reads `--opt value`; this turns every `--opt=value` into those two
 * words first, so the parsers stay as they are and accept both. `xvs adm` is not served here:
 * it is ipvsadm's popt emulation (popt.ts), which takes `--opt=value` itself, as popt does.
 */
import { ErrorCode, LbError } from "./errors.ts";

const LONG_WITH_VALUE = /^(--[A-Za-z0-9][A-Za-z0-9-]*)=(.*)$/s;

/**
 * Split every `--name=value` of `argv` into `--name`, `value`. `flags`: the parser's options
 * that take no value; `--flag=x` is refused naming the option (getopt_long: "doesn't allow an
 * argument") rather than leaving `x` for the parser to call an unknown option.
 * @throws LbError(Invalid) for a flag given a value, or an empty value (`--iface=`).
 * @example
 *   splitOptionValues(["--iface=eth0", "--copy"], ["--copy"]) // ["--iface", "eth0", "--copy"]
 */
export function splitOptionValues(argv: readonly string[], flags: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const a of argv) {
    const m = LONG_WITH_VALUE.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    const [, name, value] = m;
    if (flags.includes(name)) throw new LbError(ErrorCode.Invalid, `option '${name}' takes no value (got '${a}')`);
    if (value === "") throw new LbError(ErrorCode.Invalid, `option '${name}' needs a value after '=' (got '${a}')`);
    out.push(name, value);
  }
  return out;
}
