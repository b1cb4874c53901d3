/**
 * GET /metrics: the Prometheus exposition (metrics.ts), read-only and open like every GET of
 * the API (no token), on the API listener and, with `xvs run --metrics HOST:PORT`, alone on a
 * listener of its own (a scrape address that serves nothing else). Text, not JSON: it is served
 * outside the route records (http.ts), which validate JSON bodies, and is not in the OpenAPI
 * document.
 */
import { Hono } from "hono";
import type { Daemon } from "../daemon.ts";
import { renderMetrics } from "../metrics.ts";
import { EXPOSITION_CONTENT_TYPE } from "../metrics-text.ts";

/** Where the exposition is served. */
export const METRICS_PATH = "/metrics";

/** Serve GET /metrics (and HEAD) on `app`. */
export function mountMetrics(app: Hono, daemon: Daemon): void {
  app.get(METRICS_PATH, (c) => c.body(renderMetrics(daemon), 200, { "content-type": EXPOSITION_CONTENT_TYPE }));
}

/** The app of the separate metrics listener: GET /metrics, 404 for anything else. */
export function metricsApp(daemon: Daemon): Hono {
  const app = new Hono();
  mountMetrics(app, daemon);
  app.notFound((c) => c.text(`only GET ${METRICS_PATH} is served here\n`, 404));
  return app;
}
