/**
 * The table as one document (save/restore) and batches of commands (ipvsadm -R). Both are
 * applied all-or-nothing: validated whole, run on a clone of the model inside one mutate, and
 * committed only if every step succeeded.
 */
import type { Daemon } from "../daemon.ts";
import { applyBatch, applyConfig, modelToConfig } from "../batch.ts";
import { route, type Route } from "../http.ts";
import { Batch, BatchResult, ConfigDoc, type ConfigDocT } from "../schemas.ts";
import type { z } from "zod";

/** Save, restore and batch routes. */
export function configRoutes(daemon: Daemon): Route[] {
  return [
    route({
      method: "get",
      path: "/v1/config",
      summary: "Save: the whole table as a document (the config file format)",
      responses: { 200: ConfigDoc },
      handler: () => ({ status: 200, body: modelToConfig(daemon.config()) }),
    }),
    route<ConfigDocT>({
      method: "put",
      path: "/v1/config",
      summary: "Restore: replace the whole table with a document, all or nothing",
      body: ConfigDoc,
      responses: { 200: ConfigDoc },
      handler: async ({ body }) => {
        await daemon.mutate((m) => applyConfig(m, body));
        return { status: 200, body: modelToConfig(daemon.config()) };
      },
    }),
    route<z.infer<typeof Batch>>({
      method: "post",
      path: "/v1/batch",
      summary: "Apply a list of table commands (ipvsadm -R) all or nothing; an error names the failing command's index",
      body: Batch,
      responses: { 200: BatchResult },
      handler: async ({ body }) => {
        const applied = await daemon.mutate((m) => applyBatch(m, body.commands));
        return { status: 200, body: { applied } };
      },
    }),
  ];
}
