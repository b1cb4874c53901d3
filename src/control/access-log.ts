/**
 * The access log: one JSON log line (log.ts) per mutating API request, refused ones included,
 * saying who (peer address and port, and whether the request carried the daemon's token: valid,
 * wrong, missing), what (method, path, a short summary of the body) and the result (status,
 * milliseconds). Reads (GET, HEAD, OPTIONS) are not logged: scrapers and listings would drown
 * the changes.
 *
 * The summary is taken only from requests that carried the valid token and were not refused
 * as too large: a stranger's body is never read for the log. It names the top-level fields and
 * their values when they are short (`address=198.18.1.11 port=80 weight=2`), the size of
 * lists (`services=[12]`), and is cut at SUMMARY_MAX characters. Tokens are headers and never
 * appear.
 */
import type { Context, MiddlewareHandler } from "hono";
import { log } from "../log.ts";
import { mutating } from "./http.ts";

/** Longest summary, characters. */
export const SUMMARY_MAX = 160;

/** How a request's Authorization header compares with the daemon's token. */
export type TokenCheck = "valid" | "wrong" | "missing";

/** One access log record (the fields of the log line besides ts, level and msg). */
export interface AccessRecord {
  peer: string;
  token: TokenCheck;
  method: string;
  path: string;
  summary: string;
  status: number;
  ms: number;
}

function short(v: unknown): string {
  if (v === null || typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "string") return /^[\w.:/@-]{1,64}$/.test(v) ? v : JSON.stringify(v.length > 64 ? `${v.slice(0, 61)}...` : v);
  if (Array.isArray(v)) return `[${v.length}]`;
  return "{...}";
}

/** A short summary of a request body: `key=value` for each top-level field, cut at SUMMARY_MAX. */
export function summarizeBody(text: string): string {
  if (text.trim() === "") return "";
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `${text.length} bytes, not JSON`;
  }
  const s =
    body !== null && typeof body === "object" && !Array.isArray(body)
      ? Object.entries(body as Record<string, unknown>)
          .map(([k, v]) => `${k}=${short(v)}`)
          .join(" ")
      : short(body);
  return s.length > SUMMARY_MAX ? `${s.slice(0, SUMMARY_MAX - 3)}...` : s;
}

/** "address:port" of the peer, from the Bun server Hono got as its env; "" when unknown (app.request in tests). */
function peerOf(c: Context): string {
  const server = c.env as { requestIP?(r: Request): { address: string; port: number } | null } | undefined;
  try {
    const ip = server?.requestIP?.(c.req.raw);
    if (!ip) return "";
    return ip.address.includes(":") ? `[${ip.address}]:${ip.port}` : `${ip.address}:${ip.port}`;
  } catch {
    return "";
  }
}

/**
 * The middleware; register it before any other so that it sees refused requests too.
 * `checkToken`: whether an Authorization header carries the daemon's token.
 */
export function accessLog(checkToken: (authorization: string) => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (!mutating(c.req.method)) return next();
    const started = performance.now();
    const peer = peerOf(c); // before the body limit wraps the request
    const auth = c.req.header("authorization") ?? "";
    const token: TokenCheck = auth === "" ? "missing" : checkToken(auth) ? "valid" : "wrong";
    await next();
    const status = c.res.status;
    let summary = "";
    if (token === "valid" && status !== 413) {
      try {
        summary = summarizeBody(await c.req.text()); // the handler's read is cached
      } catch {
        summary = "body unreadable";
      }
    }
    const rec: AccessRecord = { peer, token, method: c.req.method, path: c.req.path, summary, status, ms: Math.round((performance.now() - started) * 10) / 10 };
    log(status >= 400 ? "warn" : "info", "api access", { ...rec });
  };
}
