/**
 * The OpenAPI 3.1 document of the control API, generated from the route records (http.ts) and
 * their zod schemas (schemas.ts): what the daemon validates is what the document describes.
 * Served at GET /v1/openapi.json.
 */
import { z } from "zod";
import { mutating, type Route } from "./http.ts";
import { ErrorBody } from "./schemas.ts";
import { XVS_VERSION } from "./routes/system.ts";

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): Json {
  // cross-field checks (superRefine) have no JSON Schema form: they are described in prose
  const s = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as Json;
  delete s.$schema;
  return s;
}

const ERRORS: Record<number, string> = {
  400: "Invalid request: malformed JSON, a field of the wrong type or out of range, an unknown field, a firewall-mark service (not supported by xvs: XDP sees packets before any mark is set); `issues` names each field, its value and the reason",
  404: "No such service, real server or route",
  409: "Already exists (service, real server)",
  413: "Request body too large",
  500: "Internal error",
  503: "A table is full, or the daemon is not ready",
};

function operation(r: Route): Json {
  const parameters: Json[] = [];
  for (const [name, description] of Object.entries(r.params ?? {})) {
    parameters.push({ name, in: "path", required: true, description, schema: { type: "string" } });
  }
  if (r.query) {
    const q = jsonSchema(r.query, "input") as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      parameters.push({ name, in: "query", required: (q.required ?? []).includes(name), schema });
    }
  }
  const responses: Json = {};
  for (const [status, schema] of Object.entries(r.responses)) {
    responses[status] = schema
      ? { description: "OK", content: { "application/json": { schema: jsonSchema(schema, "output") } } }
      : { description: "Done (no body)" };
  }
  const errorStatuses = [400, 404, 500, ...(mutating(r.method.toUpperCase()) ? [401, 409, 413, 503] : [])];
  const errorSchema = jsonSchema(ErrorBody, "output");
  for (const st of errorStatuses.sort()) {
    responses[st] = {
      description: st === 401 ? "Missing or wrong bearer token" : ERRORS[st],
      content: { "application/json": { schema: errorSchema } },
    };
  }
  const op: Json = {
    operationId: `${r.method}${r.path.replace(/\/:?([a-z0-9]+)/gi, (_m, p: string) => p[0].toUpperCase() + p.slice(1))}`,
    summary: r.summary,
    parameters,
    responses,
  };
  if (r.body) op.requestBody = { required: true, content: { "application/json": { schema: jsonSchema(r.body, "input") } } };
  if (mutating(r.method.toUpperCase())) op.security = [{ bearer: [] }];
  return op;
}

/** Build the OpenAPI document of `routes`. */
export function openApiDocument(routes: Route[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const p = r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
    paths[p] = { ...(paths[p] ?? {}), [r.method]: operation(r) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "xvs control API",
      version: XVS_VERSION,
      description:
        "IPVS in userspace: virtual services, real servers, connections, statistics. Reads are open on the loopback address; every mutating request needs `Authorization: Bearer <token>` (the token file in the state directory).",
    },
    servers: [{ url: "http://127.0.0.1:9172" }],
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
