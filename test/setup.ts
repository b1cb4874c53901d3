// Preloaded by bun test (bunfig.toml): make sure the generated constants and the native
// artifacts exist before any test imports them.
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
if (!existsSync(join(root, "src/ffi/abi.ts")) || !existsSync(join(root, "native/out/libxvs.so"))) {
  const r = Bun.spawnSync([process.execPath, "run", join(root, "build.ts"), "--native"], { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("native build failed: run `bun run build.ts --native` to see why");
}
