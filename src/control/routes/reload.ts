/**
 * POST /v1/reload: re-read the keepalived.conf the daemon was started with
 * (`xvs run --keepalived-conf FILE`) and apply only the difference, all or nothing, as SIGHUP
 * does (src/control/keepalived/reload.ts). An error in the file answers 400 naming file and line; the
 * table is then unchanged.
 */
import { z } from "zod";
import { ErrorCode, LbError } from "../../errors.ts";
import { keepalivedConfOf } from "../keepalived/reload.ts";
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";

const Count = z.number().int().min(0);

/** What a reload did. */
export const ReloadResultView = z.strictObject({
  file: z.string(),
  sha256: z.string(),
  services: Count,
  changed: z.boolean(),
  servicesAdded: Count,
  servicesChanged: Count,
  servicesRemoved: Count,
  destsAdded: Count,
  destsChanged: Count,
  destsRemoved: Count,
});

/** The reload route. */
export function reloadRoutes(daemon: Daemon): Route[] {
  return [
    route({
      method: "post",
      path: "/v1/reload",
      summary: "Re-read the keepalived.conf given to xvs run --keepalived-conf and apply only the difference, all or nothing (same as SIGHUP)",
      responses: { 200: ReloadResultView },
      handler: async () => {
        const k = keepalivedConfOf(daemon);
        if (!k) throw new LbError(ErrorCode.NotExist, "nothing to reload: xvs was not started with --keepalived-conf FILE");
        return { status: 200, body: await k.reload("api") };
      },
    }),
  ];
}
