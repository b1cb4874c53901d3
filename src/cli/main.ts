/**
 * The ipvsadm-compatible client: `xvs adm ARGS`, or `ipvsadm ARGS` when the executable is
 * invoked under that name. It parses and checks the line exactly as ipvsadm 1.31 does (same
 * messages, exit 2 for option errors, 255 for kernel errors) and talks to the daemon of this
 * network namespace only through its HTTP API (runtime.ts finds its address and token).
 *
 * Everything the client touches comes in through `AdmEnv`, so tests run it in process against
 * `app.request`.
 */
import { apiBase, readToken } from "../control/runtime.ts";
import { ApiClient, ApiError, kernelMessage, type Fetch } from "./client.ts";
import { execute, type AdmContext } from "./commands.ts";
import { NameDb } from "./names.ts";
import { AdmExit, parseCommand } from "./parse.ts";

/** What the client needs from the outside world. */
export interface AdmEnv {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  fetch: Fetch;
  /** Base URL of the daemon's API, e.g. http://127.0.0.1:9172. */
  apiBase: string;
  /** Bearer token for changes; null: not readable (changes are then refused with EPERM's words). */
  token: string | null;
  /** All of stdin (for -R). */
  readStdin(): Promise<string>;
  /** /etc/hosts and /etc/services. */
  names: NameDb;
  /** argv[0] as ipvsadm prints it in "Try `ipvsadm -h' ...". */
  program: string;
}

function defaultEnv(): AdmEnv {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    fetch: (input, init) => fetch(input, init),
    apiBase: apiBase(),
    token: readToken(),
    readStdin: () => Bun.stdin.text(),
    names: NameDb.fromFiles(),
    program: "ipvsadm",
  };
}

/**
 * Run one ipvsadm command line (without the program name); resolves with the exit code.
 * @example
 *   await runAdm(["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
 */
export async function runAdm(argv: string[], env: Partial<AdmEnv> = {}): Promise<number> {
  const e: AdmEnv = { ...defaultEnv(), ...env };
  // buffered like stdio: a listing reaches stdout in one piece
  let out = "";
  const ctx: AdmContext = {
    api: new ApiClient(e.fetch, e.apiBase, e.token),
    out: (s) => {
      out += s;
    },
    err: (s) => {
      if (out) {
        e.stdout.write(out);
        out = "";
      }
      e.stderr.write(s);
    },
    names: e.names,
    program: e.program,
    readStdin: e.readStdin,
    parse: (args) => parseCommand(args, e.program, e.names),
  };
  let code: number;
  try {
    // no arguments at all: list the table, names resolved (ipvsadm's main)
    const ce = ctx.parse(argv.length === 0 ? ["-L"] : argv);
    code = await execute(ce, ctx);
  } catch (err) {
    if (err instanceof ApiError) {
      // a listing the daemon refused: ipvsadm prints ipvs_strerror and exits 1
      ctx.err(`${kernelMessage(err)}\n`);
      code = 1;
    } else if (err instanceof AdmExit) {
      out += err.stdout;
      if (err.stderr) ctx.err(err.stderr);
      code = err.code;
    } else {
      throw err;
    }
  }
  if (out) e.stdout.write(out);
  return code;
}
