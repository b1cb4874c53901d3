/**
 * The web dashboard (docs/ui.md): GET /ui serves one self-contained page (ui/index.html: HTML,
 * CSS and script, no framework, nothing fetched from elsewhere), GET /ui/stream its live feed
 * (server-sent events, ui/stream.ts). Both are reads, open like every GET of the API; the page's
 * actions call the ordinary /v1 routes with the token the operator types in.
 *
 * The page is imported as text so that `bun build --compile` embeds it in dist/xvs: it is
 * served from memory, never read from the source tree. Served outside the route records
 * (http.ts), which are JSON; not in the OpenAPI document.
 */
import type { Hono } from "hono";
import { ErrorCode } from "../../errors.ts";
import type { Daemon } from "../daemon.ts";
import page from "../ui/index.html" with { type: "text" };
import { MAX_UI_CLIENTS, UiHub } from "../ui/stream.ts";

/** The page's HTML (the import is a string at run time; bun-types declares *.html as a bundle). */
export const UI_PAGE = page as unknown as string;

/** Nothing but this origin: no CDN, no inline frames; inline script and style are the page itself. */
const CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Serve the dashboard and its feed on `app`; returns the hub (tests close it). */
export function mountUi(app: Hono, daemon: Daemon): UiHub {
  const hub = new UiHub(daemon);
  const servePage = () =>
    new Response(UI_PAGE, {
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "content-security-policy": CSP, "x-content-type-options": "nosniff" },
    });
  app.get("/ui", servePage);
  app.get("/ui/", servePage);
  app.get("/ui/stream", (c) => {
    const stream = hub.open(c.req.raw.signal);
    if (!stream) {
      return c.json({ error: { code: ErrorCode.Busy, message: `${MAX_UI_CLIENTS} dashboards are connected already; close one` } }, 503, { "retry-after": "5" });
    }
    return new Response(stream, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" },
    });
  });
  return hub;
}
