/** The fuzz corpus: test/fuzz/corpus/*.bin (provenance in its README.md). */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const CORPUS_DIR = join(import.meta.dir, "corpus");

export interface CorpusFrame {
  name: string;
  bytes: Uint8Array;
}

/** Read every .bin frame of the corpus, sorted by name. */
export function loadCorpus(dir = CORPUS_DIR): CorpusFrame[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith(".bin"))
      .sort();
  } catch {
    return [];
  }
  return names.map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}
