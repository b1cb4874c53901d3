/**
 * The control API (Hono). Reads are open on the loopback address the daemon listens on; every
 * mutating request needs the daemon's token (`Authorization: Bearer <token>`). Bodies are
 * limited in size, parsed as JSON and validated whole by the zod schemas before anything
 * changes; errors are JSON `{ error: { code, message, issues? } }` with the matching status.
 *
 * @example
 *   curl -s -X POST -H "Authorization: Bearer $(cat token)" -d '{"protocol":"tcp","address":"198.18.0.100","port":80,"scheduler":"rr"}' http://127.0.0.1:9172/v1/services
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { ErrorCode, LbError } from "../errors.ts";
import { addrPortText, ipText } from "../service/addr.ts";
import type { Dest, Service } from "../service/model.ts";
import type { Daemon } from "./daemon.ts";
import { destId, parseAddrPort, parseServiceId, serviceId } from "./ids.ts";
import { DestSpec, ServiceSpec, Timeouts, type ServiceKeyT } from "./schemas.ts";

/** Largest request body, bytes (a full restore of thousands of services fits). */
export const MAX_BODY_BYTES = 1 << 20;

const STATUS: Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 500 | 503> = {
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

function issues(e: z.ZodError): { path: string; message: string }[] {
  return e.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new LbError(ErrorCode.Invalid, `body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function parse<T extends z.ZodType>(schema: T, data: unknown): z.infer<T> {
  const r = schema.safeParse(data);
  if (!r.success) throw r.error;
  return r.data;
}

function svcKeyParam(c: Context): ServiceKeyT {
  const id = c.req.param("svc") ?? "";
  const k = parseServiceId(decodeURIComponent(id));
  if (!k) throw new LbError(ErrorCode.Invalid, `bad service id '${id}': expected proto:addr:port (tcp:198.18.0.100:80, udp:[2001:db8::1]:53) or fwm:MARK`);
  return k;
}

function destParam(c: Context): { address: string; port: number } {
  const id = c.req.param("dest") ?? "";
  const ap = parseAddrPort(decodeURIComponent(id));
  if (!ap) throw new LbError(ErrorCode.Invalid, `bad real server id '${id}': expected addr:port`);
  return ap;
}

/** JSON view of a real server. */
function destView(daemon: Daemon, d: Dest) {
  return {
    id: destId(ipText(d.addr), d.port),
    address: ipText(d.addr),
    port: d.port,
    forward: d.spec.forward,
    weight: d.spec.weight,
    upperThreshold: d.spec.upperThreshold,
    lowerThreshold: d.spec.lowerThreshold,
    tunnel: d.spec.tunnel ?? null,
    ...daemon.destConns(d.id),
    stats: daemon.destTraffic(d.id),
  };
}

/** JSON view of a virtual service, real servers in scheduling (kernel list) order. */
function serviceView(daemon: Daemon, s: Service) {
  return {
    id: serviceId(s.spec),
    name: s.fwmark ? `FWM  ${s.fwmark}` : `${s.proto === 6 ? "TCP" : s.proto === 17 ? "UDP" : "SCTP"} ${addrPortText(s.addr!, s.port)}`,
    spec: s.spec,
    stats: daemon.serviceTraffic(s.id),
    dests: s.dests.map((d) => destView(daemon, d)),
  };
}

/**
 * Build the API over a daemon. `token`: the bearer token mutating requests must carry.
 */
export function createApp(daemon: Daemon, token: string): Hono {
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof z.ZodError) {
      return c.json({ error: { code: "invalid", message: err.issues[0]?.message ?? "invalid request", issues: issues(err) } }, 400);
    }
    if (err instanceof LbError) return c.json({ error: { code: err.code, message: err.message } }, STATUS[err.code]);
    return c.json({ error: { code: "internal", message: err instanceof Error ? err.message : String(err) } }, 500);
  });
  app.notFound((c) => c.json({ error: { code: ErrorCode.NotExist, message: `no route ${c.req.method} ${c.req.path}` } }, 404));

  app.use("*", bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json({ error: { code: "too_large", message: `request body larger than ${MAX_BODY_BYTES} bytes` } }, 413),
  }));
  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const auth = c.req.header("authorization") ?? "";
      if (auth !== `Bearer ${token}`) {
        return c.json({ error: { code: ErrorCode.Permission, message: auth ? "wrong token" : "this request needs the daemon's token: Authorization: Bearer <token>" } }, 401);
      }
    }
    await next();
  });

  app.get("/v1/health", (c) => c.json({ ok: true, generation: daemon.tables().generation, dataplane: daemon.dataplane !== null }));

  app.get("/v1/services", (c) => c.json({ services: daemon.model.services.map((s) => serviceView(daemon, s)) }));
  app.get("/v1/services/:svc", (c) => {
    const s = daemon.model.findService(svcKeyParam(c));
    if (!s) throw new LbError(ErrorCode.NotExist, "No such service");
    return c.json(serviceView(daemon, s));
  });
  app.post("/v1/services", async (c) => {
    const spec = parse(ServiceSpec, await jsonBody(c));
    const s = await daemon.mutate((m) => m.addService(spec));
    return c.json(serviceView(daemon, daemon.model.services.find((x) => x.id === s.id)!), 201);
  });
  app.put("/v1/services/:svc", async (c) => {
    const key = svcKeyParam(c);
    const spec = parse(ServiceSpec, await jsonBody(c));
    if (serviceId(spec) !== serviceId(key)) throw new LbError(ErrorCode.Invalid, "the body names another service than the path");
    const s = await daemon.mutate((m) => m.editService(spec));
    return c.json(serviceView(daemon, daemon.model.services.find((x) => x.id === s.id)!));
  });
  app.delete("/v1/services/:svc", async (c) => {
    const key = svcKeyParam(c);
    await daemon.mutate((m) => m.deleteService(key));
    return c.body(null, 204);
  });
  app.delete("/v1/services", async (c) => {
    await daemon.mutate((m) => m.clear());
    return c.body(null, 204);
  });

  app.post("/v1/services/:svc/dests", async (c) => {
    const key = svcKeyParam(c);
    const spec = parse(DestSpec, await jsonBody(c));
    const d = await daemon.mutate((m) => m.addDest(key, spec));
    return c.json(destView(daemon, d), 201);
  });
  app.put("/v1/services/:svc/dests/:dest", async (c) => {
    const key = svcKeyParam(c);
    const ap = destParam(c);
    const spec = parse(DestSpec, await jsonBody(c));
    const d = await daemon.mutate((m) => m.editDest(key, { ...spec, address: ap.address, port: ap.port }));
    return c.json(destView(daemon, d));
  });
  app.delete("/v1/services/:svc/dests/:dest", async (c) => {
    const key = svcKeyParam(c);
    const ap = destParam(c);
    await daemon.mutate((m) => m.deleteDest(key, ap.address, ap.port));
    return c.body(null, 204);
  });

  app.get("/v1/timeouts", (c) => c.json(daemon.model.timeouts));
  app.put("/v1/timeouts", async (c) => {
    const t = parse(Timeouts, await jsonBody(c));
    await daemon.mutate((m) => m.setTimeouts(t));
    return c.json(daemon.model.timeouts);
  });

  app.get("/v1/stats", (c) => c.json({
    verdicts: daemon.verdicts(),
    xdp: daemon.dataplane?.xdpStats() ?? [],
    generation: daemon.tables().generation,
  }));

  return app;
}
