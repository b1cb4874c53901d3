/**
 * Structured logs: one JSON object per line on stderr, with a level, a message and fields.
 * XVS_LOG_LEVEL (debug|info|warn|error) sets the threshold (default info).
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

let threshold: number = LEVELS[(process.env.XVS_LOG_LEVEL as Level) ?? "info"] ?? LEVELS.info;

/** Set the lowest level that is written. */
export function setLogLevel(l: Level): void {
  threshold = LEVELS[l];
}

/** Write one log line. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (LEVELS[level] < threshold) return;
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }) + "\n");
}
