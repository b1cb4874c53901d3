/**
 * Write the mutated part of the fuzz corpus (test/fuzz/corpus/mut-*.bin): for every frame kind
 * of gen.ts, the first frames of a fixed seed that took a hostile edit, plus each real frame
 * with one classic mutation (truncated mid-header, IHL 15, total length +1, MF set, checksum
 * zeroed). Deterministic: rerunning gives the same files.
 *
 *   bun test/fuzz/make-corpus.ts
 */
import { readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CORPUS_DIR, loadCorpus } from "./corpus.ts";
import { FrameGen, KIND_NAMES, Rng } from "./gen.ts";

const PER_KIND = 6;

for (const f of readdirSync(CORPUS_DIR).filter((n) => n.startsWith("mut-"))) unlinkSync(join(CORPUS_DIR, f));
const real = loadCorpus().filter((c) => c.name.startsWith("real-"));
const gen = new FrameGen({ frames: real.map((c) => c.bytes) });
const rng = new Rng(0x5eed);
const count = new Array(KIND_NAMES.length).fill(0);
let written = 0;
for (let i = 0; i < 200000 && count.some((c) => c < PER_KIND); i++) {
  const before = Array.from(gen.kinds);
  const n = gen.frame(rng);
  const kind = before.findIndex((v, k) => gen.kinds[k] !== v);
  if (count[kind] >= PER_KIND) continue;
  count[kind]++;
  writeFileSync(join(CORPUS_DIR, `mut-gen${kind}-${count[kind]}.bin`), gen.out.slice(0, n));
  written++;
}
const edits: [string, (b: Uint8Array) => Uint8Array][] = [
  ["cut34", (b) => b.slice(0, 34)],
  [
    "ihl15",
    (b) => {
      const c = b.slice();
      c[14] = (c[14] & 0xf0) | 15;
      return c;
    },
  ],
  [
    "totlen+1",
    (b) => {
      const c = b.slice();
      const v = ((c[16] << 8) | c[17]) + 1;
      c[16] = v >> 8;
      c[17] = v & 255;
      return c;
    },
  ],
  [
    "mf",
    (b) => {
      const c = b.slice();
      c[20] |= 0x20;
      return c;
    },
  ],
  [
    "csum0",
    (b) => {
      const c = b.slice();
      c[24] = 0;
      c[25] = 0;
      return c;
    },
  ],
];
for (const r of real.filter((c) => c.bytes[12] === 8 && c.bytes[13] === 0).slice(0, 8)) {
  for (const [name, e] of edits) {
    writeFileSync(join(CORPUS_DIR, `mut-${name}-${r.name.slice(5, 16)}.bin`), e(r.bytes));
    written++;
  }
}
process.stdout.write(`wrote ${written} mutated frames\n`);
