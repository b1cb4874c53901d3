/**
 * How routes are declared and served. A route is data: method, path, the zod schemas of its
 * body, query and responses, and a handler that gets the validated input and returns a status
 * and a body. `mount` wires routes into Hono so that every body and query is validated whole
 * before the handler runs and every response is validated before it leaves; openapi.ts builds
 * the OpenAPI document from the same records.
 *
 * Errors are mapped here, in one place: zod failures are 400 with one issue per field (path,
 * value, reason); LbError codes map to statuses through STATUS.
 */
import type { Context, Hono } from "hono";
import { z } from "zod";
import { ErrorCode, LbError } from "../errors.ts";
import { BatchError } from "./batch.ts";
import type { ErrorBodyT } from "./schemas.ts";

/** HTTP status of each LbError code. */
export const STATUS: Record<ErrorCode, 400 | 401 | 404 | 409 | 413 | 500 | 503> = {
  [ErrorCode.Exists]: 409,
  [ErrorCode.NotExist]: 404,
  [ErrorCode.Invalid]: 400,
  [ErrorCode.NoRoom]: 503,
  [ErrorCode.Permission]: 401,
  [ErrorCode.Environment]: 500,
  [ErrorCode.Busy]: 409,
  [ErrorCode.System]: 500,
  [ErrorCode.Unavailable]: 503,
};

/** HTTP methods of the API's routes. */
export type Method = "get" | "post" | "put" | "patch" | "delete";

/** What a handler gets: validated body and query, and the path parameters. */
export interface RouteInput<B, Q> {
  c: Context;
  body: B;
  query: Q;
  param(name: string): string;
}

/** What a handler returns; `body` is validated against `responses[status]`. */
export interface Reply {
  status: number;
  body: unknown;
}

/** One route: what it takes, what it answers, what it does. */
export interface Route<B = unknown, Q = unknown> {
  method: Method;
  /** Hono path, e.g. "/v1/services/:svc". */
  path: string;
  summary: string;
  /** Path parameters and what they look like (for the OpenAPI document). */
  params?: Record<string, string>;
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  /** Success statuses and their body schema (null: no body). */
  responses: Record<number, z.ZodType | null>;
  handler(input: RouteInput<B, Q>): Reply | Promise<Reply>;
}

/** Declare a route (keeps the body and query types tied to their schemas). */
export function route<B = undefined, Q = undefined>(r: Route<B, Q>): Route {
  return r as unknown as Route;
}

/** True for methods that change something: they need the token. */
export function mutating(method: string): boolean {
  return method !== "GET" && method !== "HEAD" && method !== "OPTIONS";
}

/** Largest value echoed back in an issue, characters of JSON. */
const MAX_ECHO = 200;

function echo(v: unknown): unknown {
  if (v === undefined) return undefined;
  try {
    const s = JSON.stringify(v);
    return s !== undefined && s.length <= MAX_ECHO ? v : undefined;
  } catch {
    return undefined;
  }
}

type Issue = z.core.$ZodIssue;

/**
 * Replace each failed union (a service is an address service or a fwmark service) by the
 * issues of the branch that came closest, so that the client reads "port: expected number"
 * rather than "Invalid input".
 */
function flattenUnions(issues: readonly Issue[], prefix: PropertyKey[] = []): Issue[] {
  return issues.flatMap((i): Issue[] => {
    const path = [...prefix, ...i.path];
    if (i.code === "invalid_union" && i.errors.length > 0) {
      const best = i.errors.reduce((a, b) => (b.length < a.length ? b : a));
      if (best.length > 0) return flattenUnions(best, path);
    }
    return [{ ...i, path } as Issue];
  });
}

/** Turn a zod error into the API's error body. */
export function zodErrorBody(e: z.ZodError, where: string): ErrorBodyT {
  const issues = flattenUnions(e.issues).flatMap((i) => {
    const path = i.path.map(String).join(".");
    const input = (i as { input?: unknown }).input;
    if (i.code === "unrecognized_keys") {
      // one issue per unknown field, named by its own path
      return i.keys.map((k) => {
        const value = echo(input && typeof input === "object" ? (input as Record<string, unknown>)[k] : undefined);
        const p = path ? `${path}.${k}` : k;
        return value === undefined ? { path: p, message: "unknown field" } : { path: p, message: "unknown field", value };
      });
    }
    const value = echo(input);
    return [value === undefined ? { path: path || where, message: i.message } : { path: path || where, message: i.message, value }];
  });
  const first = issues[0];
  const message = first ? `${first.path}: ${first.message}` : `invalid ${where}`;
  return { error: { code: ErrorCode.Invalid, message, issues } };
}

class InputError extends Error {
  constructor(readonly body: ErrorBodyT) {
    super(body.error.message);
  }
}

function validate<T>(schema: z.ZodType<T>, data: unknown, where: string): T {
  const r = schema.safeParse(data, { reportInput: true });
  if (!r.success) throw new InputError(zodErrorBody(r.error, where));
  return r.data;
}

async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw new InputError({ error: { code: ErrorCode.Invalid, message: "body: empty; expected a JSON document" } });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError({ error: { code: ErrorCode.Invalid, message: `body: not valid JSON (${e instanceof Error ? e.message : String(e)})` } });
  }
}

/** The error body and status of anything a handler threw. */
export function errorReply(err: unknown): { status: number; body: ErrorBodyT } {
  if (err instanceof InputError) return { status: 400, body: err.body };
  if (err instanceof z.ZodError) return { status: 400, body: zodErrorBody(err, "body") };
  if (err instanceof BatchError) return { status: STATUS[err.code], body: { error: { code: err.code, message: err.message, index: err.index } } };
  if (err instanceof LbError) return { status: STATUS[err.code], body: { error: { code: err.code, message: err.message } } };
  return { status: 500, body: { error: { code: "internal", message: err instanceof Error ? err.message : String(err) } } };
}

/** Serve `routes` on `app`. */
export function mount(app: Hono, routes: Route[]): void {
  for (const r of routes) {
    app.on(r.method.toUpperCase(), r.path, async (c) => {
      const body = r.body ? validate(r.body, await readJson(c), "body") : undefined;
      const query = r.query ? validate(r.query, c.req.query(), "query") : undefined;
      const reply = await r.handler({ c, body, query, param: (n) => c.req.param(n) ?? "" });
      const schema = r.responses[reply.status];
      if (schema === undefined) throw new Error(`${r.method.toUpperCase()} ${r.path} answered ${reply.status}, which it does not declare`);
      if (schema === null) return c.body(null, reply.status as 204);
      // a response that breaks its own schema is a bug here, never the client's: 500
      const checked = schema.safeParse(reply.body);
      if (!checked.success)
        throw new Error(
          `${r.method.toUpperCase()} ${r.path}: response does not match its schema: ${checked.error.issues[0]?.path.join(".")}: ${checked.error.issues[0]?.message}`,
        );
      return c.json(checked.data as object, reply.status as 200);
    });
  }
}
