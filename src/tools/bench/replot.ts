/**
 * Re-render the SVG plots of earlier bench runs from their JSON, and nothing else (the table
 * and markdown stay as they are; `xvs bench --render FILE.json` rewrites those too):
 *
 *     bun src/tools/bench/replot.ts                      # every bench/results/*.json that is a bench report
 *     bun src/tools/bench/replot.ts a.json b.json        # these
 *
 * Files that are not bench reports (schema other than xvs-bench/1, e.g. the fuzz results) are
 * skipped with a line saying so.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderSvg } from "./plot.ts";
import type { BenchReport } from "./report.ts";

/** Write FILE.svg next to FILE.json; false when the file is not a bench report. */
export function replot(file: string): boolean {
  const report = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
  if (report.schema !== "xvs-bench/1") return false;
  writeFileSync(file.replace(/\.json$/, ".svg"), renderSvg(report));
  return true;
}

if (import.meta.main) {
  const dir = join(import.meta.dir, "../../../bench/results");
  const files =
    process.argv.length > 2
      ? process.argv.slice(2)
      : readdirSync(dir)
          .filter((f) => f.endsWith(".json"))
          .sort()
          .map((f) => join(dir, f));
  for (const f of files) process.stdout.write(replot(f) ? `wrote ${f.replace(/\.json$/, ".svg")}\n` : `skipped ${f}: not a bench report\n`);
}
