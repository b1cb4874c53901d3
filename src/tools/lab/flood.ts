/**
 * SYN flood from a lab namespace: src/tools/lab/synflood.c, compiled with the system C
 * compiler on first use, sends TCP SYNs with spoofed sources (only from the prefix given, which
 * the tests keep inside 198.18.0.0/15) through an AF_PACKET socket, at a fixed rate.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type Lab, LabError, sh } from "./netns.ts";

export interface FloodOptions {
  iface: string;
  dstMac: string;
  dst: string;
  dport: number;
  /** Spoofed sources: base address and prefix length, e.g. 198.19.0.0/16. */
  srcBase: string;
  srcPrefix: number;
  pps: number;
  seconds: number;
}

/** Compile the generator once per source version; returns the binary's path. */
export async function floodBinary(): Promise<string> {
  // read from the source tree: the generator serves the tests, it is not part of the executable
  const source = readFileSync(join(import.meta.dir, "synflood.c"), "utf8");
  const hash = Bun.hash(source).toString(16);
  const dir = join(tmpdir(), "xvs-lab-bin");
  const bin = join(dir, `synflood-${hash}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const src = join(dir, `synflood-${hash}.c`);
  writeFileSync(src, source);
  const r = await sh(["cc", "-O2", "-o", bin, src], true);
  if (r.code !== 0) throw new LabError(`cannot compile the SYN flood generator (needs a C compiler: apt-get install gcc): ${r.stderr.trim()}`);
  return bin;
}

/** Start a flood in `host`; resolves to the process (stdout: frames sent, at exit). */
export async function startFlood(lab: Lab, host: string, o: FloodOptions): Promise<Subprocess<"pipe" | "ignore", "pipe", "pipe">> {
  if (!/^198\.(18|19)\./.test(o.srcBase) || o.srcPrefix < 15) throw new LabError("spoofed sources must stay inside 198.18.0.0/15");
  const bin = await floodBinary();
  return lab.spawn(host, [bin, o.iface, o.dstMac, o.dst, String(o.dport), o.srcBase, String(o.srcPrefix), String(o.pps), String(o.seconds)]);
}
