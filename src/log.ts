/**
 * Structured logs: one JSON object per line on stderr, with a level, a message and fields.
 * XVS_LOG_LEVEL (debug|info|warn|error) sets the threshold (default info).
 *
 * Each line starts with its syslog priority as sd-daemon(3) describes (`<3>` error, `<4>`
 * warning, `<6>` info, `<7>` debug), so that journald, reading a service's stderr, files a
 * warning as a warning (`journalctl -p warning`) and strips the prefix. XVS_LOG_PRIORITY=0
 * leaves the prefixes out (plain JSON lines for collectors that parse stderr themselves).
 * Programs reading the log back use `parseLogLine`, which takes lines with or without it.
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

/** The syslog priority of each level (LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR). */
export const PRIORITIES: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

let threshold: number = LEVELS[(process.env.XVS_LOG_LEVEL as Level) ?? "info"] ?? LEVELS.info;
const prefixed = process.env.XVS_LOG_PRIORITY !== "0";

/** Set the lowest level that is written. */
export function setLogLevel(l: Level): void {
  threshold = LEVELS[l];
}

/** Write one log line. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (LEVELS[level] < threshold) return;
  const line = JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields });
  process.stderr.write(prefixed ? `<${PRIORITIES[level]}>${line}\n` : `${line}\n`);
}

const PRIORITY_PREFIX = /^<[0-7]>/;

/** A log line without its priority prefix (lines without one are returned as they are). */
export function stripPriority(line: string): string {
  return line.replace(PRIORITY_PREFIX, "");
}

/** Every line of `text` without its priority prefix. */
export function stripPriorities(text: string): string {
  return text.replace(/^<[0-7]>/gm, "");
}

/** One log line as its JSON object (priority prefix or not); null for a line that is not one. */
export function parseLogLine(line: string): Record<string, unknown> | null {
  const s = stripPriority(line.trim());
  if (!s.startsWith("{")) return null;
  try {
    const v = JSON.parse(s) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
