/**
 * How to run this program again as a child (lab agents, the daemon in a namespace): the
 * executable alone when compiled, or bun with src/main.ts from a source tree.
 */
import { join } from "node:path";

/** Return true inside a `bun build --compile` executable. */
export function isCompiled(): boolean {
  return import.meta.path.startsWith("/$bunfs/") || import.meta.dir.startsWith("/$bunfs");
}

/** Return the argv prefix that runs `xvs` (XVS_BIN names a compiled binary to use instead). */
export function selfCommand(): string[] {
  if (process.env.XVS_BIN) return [process.env.XVS_BIN];
  if (isCompiled()) return [process.execPath];
  return [process.execPath, join(import.meta.dir, "..", "..", "main.ts")];
}
