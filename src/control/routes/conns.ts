/** GET /v1/conns: the connection table, one bounded page per request (ipvsadm -Lnc). */
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";
import { ConnsPage, ConnsQuery, type ConnsPageT } from "../schemas.ts";
import type { z } from "zod";

/** The connection listing route. */
export function connRoutes(daemon: Daemon): Route[] {
  return [
    route<undefined, z.infer<typeof ConnsQuery>>({
      method: "get",
      path: "/v1/conns",
      summary: "Connections and persistence templates, paged: pass `next` back as `cursor`",
      query: ConnsQuery,
      responses: { 200: ConnsPage },
      handler: ({ query }) => ({ status: 200, body: daemon.conns(query.cursor, query.limit) satisfies ConnsPageT }),
    }),
  ];
}
