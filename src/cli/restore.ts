/**
 * How `ipvsadm -R` cuts stdin into command lines (config_stream_read in ipvsadm's
 * config_stream.c): words are separated by spaces, tabs and carriage returns, a newline ends a
 * line, a word that is exactly "ipvsadm" is dropped wherever it is, and '#' means nothing
 * special (ipvsadm's comment test never fires, so "# x" is a line whose first word is "#").
 * Quirk kept: a last line that ends in blanks without a newline is dropped, and blank lines
 * at the very end stop the reading.
 */

const BLANK = new Set([" ", "\t", "\r"]);
const SEPARATOR = new Set([" ", "\t", "\r", "\n"]);

/** Split stdin into the argument vectors ipvsadm -R would run (lines without words are skipped). */
export function readRestoreLines(input: string): string[][] {
  const lines: string[][] = [];
  let pos = 0;
  const readLine = (): string[] | null => {
    const words: string[] = [];
    for (;;) {
      if (pos >= input.length) return words.length === 0 ? null : words;
      if (SEPARATOR.has(input[pos])) {
        // fscanf matched nothing: skip blanks by hand; EOF here drops the line
        for (;;) {
          if (pos >= input.length) return null;
          const c = input[pos++];
          if (c === "\n") return words;
          if (!BLANK.has(c)) {
            pos--;
            break;
          }
        }
        continue;
      }
      let end = pos;
      while (end < input.length && !SEPARATOR.has(input[end])) end++;
      const word = input.slice(pos, end);
      pos = end;
      const tail = pos < input.length ? input[pos++] : "";
      if (word !== "ipvsadm") words.push(word);
      if (tail === "\n") return words;
    }
  };
  for (let words = readLine(); words !== null; words = readLine()) {
    if (words.length > 0) lines.push(words);
  }
  return lines;
}
