/**
 * The control API (Hono). Reads are open on the loopback address the daemon listens on; every
 * mutating request needs the daemon's token (`Authorization: Bearer <token>`). Bodies are
 * limited in size, parsed as JSON and validated whole by the zod schemas before anything
 * changes; responses are validated too. Errors are JSON `{ error: { code, message, issues?,
 * index? } }` with the matching status (400, 401, 404, 409, 413, 503).
 *
 * Routes live in routes/*.ts as records (http.ts); the OpenAPI document at
 * GET /v1/openapi.json is generated from the same records. GET /metrics is the Prometheus
 * exposition (routes/metrics.ts); every mutating request is logged (access-log.ts).
 *
 * @example
 *   curl -s -X POST -H "Authorization: Bearer $(cat token)" -d '{"protocol":"tcp","address":"198.18.0.100","port":80,"scheduler":"rr"}' http://127.0.0.1:9172/v1/services
 */
import { timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ErrorCode } from "../errors.ts";
import { accessLog } from "./access-log.ts";
import type { Daemon } from "./daemon.ts";
import { errorReply, mount, mutating, type Route } from "./http.ts";
import { openApiDocument } from "./openapi.ts";
import { configRoutes } from "./routes/config.ts";
import { connRoutes } from "./routes/conns.ts";
import { mountMetrics } from "./routes/metrics.ts";
import { reloadRoutes } from "./routes/reload.ts";
import { serviceRoutes } from "./routes/services.ts";
import { syncRoutes } from "./routes/sync.ts";
import { systemRoutes } from "./routes/system.ts";
import { mountUi } from "./routes/ui.ts";

/** Largest request body, bytes (a restore of thousands of services fits). */
export const MAX_BODY_BYTES = 1 << 20;

/** Every route of the API. */
export function apiRoutes(daemon: Daemon): Route[] {
  return [...systemRoutes(daemon), ...serviceRoutes(daemon), ...connRoutes(daemon), ...configRoutes(daemon), ...reloadRoutes(daemon), ...syncRoutes(daemon)];
}

function tokenMatches(header: string, token: string): boolean {
  const want = Buffer.from(`Bearer ${token}`);
  const got = Buffer.from(header);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Build the API over a daemon. `token`: the bearer token mutating requests must carry.
 */
export function createApp(daemon: Daemon, token: string): Hono {
  const app = new Hono();
  const routes = apiRoutes(daemon);

  app.onError((err, c) => {
    const r = errorReply(err);
    return c.json(r.body, r.status as 400);
  });
  app.notFound((c) => c.json({ error: { code: ErrorCode.NotExist, message: `no route ${c.req.method} ${c.req.path} (see GET /v1/openapi.json)` } }, 404));

  app.use(
    "*",
    accessLog((auth) => tokenMatches(auth, token)),
  );
  app.use("*", async (c, next) => {
    if (mutating(c.req.method)) {
      const auth = c.req.header("authorization") ?? "";
      if (!tokenMatches(auth, token)) {
        return c.json(
          { error: { code: ErrorCode.Permission, message: auth ? "wrong token" : "this request needs the daemon's token: Authorization: Bearer <token>" } },
          401,
        );
      }
    }
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: { code: "TOOBIG", message: `request body larger than ${MAX_BODY_BYTES} bytes` } }, 413),
    }),
  );

  mount(app, routes);
  mountMetrics(app, daemon);
  mountUi(app, daemon);
  const doc = openApiDocument([...routes]);
  app.get("/v1/openapi.json", (c) => c.json(doc));
  return app;
}
