/**
 * Which persistence engines a backup can install synced templates for.
 *
 * A v1 record of a template made by a persistence engine carries the engine's name and its data
 * (IPVS_OPT_PE_NAME, IPVS_OPT_PE_DATA: for `--pe sip`, the Call-ID), and the kernel keys that
 * template with the data: one template per (client, service, Call-ID), next to the plain one a v0
 * record makes. The kernel's backup looks the engine up by name (ip_vs_conn_fill_param_sync,
 * __ip_vs_pe_getbyname); when it is not loaded it logs "no %s engine found/loaded" and skips that
 * record alone (ip_vs_proc_sync_conn: error 50, the message goes on).
 *
 * xvs has no persistence engine: `--pe sip` is accepted and listed as ipvsadm does, but the
 * dataplane never reads a Call-ID and keys every template by client address only. It is the
 * kernel without the module, so it does what that kernel does: such a record is skipped and
 * counted (`rec_unknown_pe`). Installing it without its data instead would make a template keyed
 * by the client address alone, one the record did not describe, which a v0 record for the same
 * client would then overwrite.
 */

/** The engines whose PE data xvs keys templates with: none. */
const ENGINES: ReadonlySet<string> = new Set();

/**
 * True when a record may be installed as far as its persistence engine goes: it carries no PE
 * data (a PE name alone is ignored, as the kernel only looks the engine up for data), or its
 * engine is one xvs has.
 */
export function peInstallable(c: { peData?: Uint8Array; peName?: string }): boolean {
  if (c.peData === undefined || c.peData.length === 0) return true;
  return c.peName !== undefined && ENGINES.has(c.peName);
}
