/**
 * Daemon-wide routes: health, the listing header's info, verdict counters, timeouts (--set,
 * --timeout), the sysctl-like settings (net.ipv4.vs.*), zeroing everything (-Z). The sync
 * daemons' routes are in sync.ts.
 */
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";
import { Health, Info, Settings, type SettingsT, StatsView, Timeouts, type TimeoutsT } from "../schemas.ts";

/** Version of xvs reported by /v1/info. */
export const XVS_VERSION = "0.1.0";
/** The IPVS version xvs behaves as (IP_VS_VERSION_CODE 0x010201). */
export const IPVS_VERSION = "1.2.1";

/** The daemon-wide routes. */
export function systemRoutes(daemon: Daemon): Route[] {
  return [
    route({
      method: "get",
      path: "/v1/health",
      summary: "Is the daemon up, does it run a dataplane, which table generation",
      responses: { 200: Health },
      handler: () => ({
        status: 200,
        body: {
          ok: true,
          dataplane: daemon.dataplane !== null,
          generation: daemon.tables().generation,
          uptimeSec: Math.max(0, (daemon.clock() - daemon.startedMs) / 1000),
        },
      }),
    }),
    route({
      method: "get",
      path: "/v1/info",
      summary: "What the header of ipvsadm -L shows: IPVS version and connection table size",
      responses: { 200: Info },
      handler: () => ({ status: 200, body: { version: IPVS_VERSION, connTableSize: daemon.connTableSize(), xvsVersion: XVS_VERSION } }),
    }),
    route({
      method: "get",
      path: "/v1/stats",
      summary: "Verdict counters of the dataplane (summed over workers) and of the XDP program",
      responses: { 200: StatsView },
      handler: () => ({ status: 200, body: { verdicts: daemon.verdicts(), xdp: daemon.dataplane?.xdpStats() ?? [], generation: daemon.tables().generation } }),
    }),
    route({
      method: "post",
      path: "/v1/zero",
      summary: "Zero the counters and rates of every service and real server (ipvsadm -Z)",
      responses: { 204: null },
      handler: () => {
        daemon.zero();
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get",
      path: "/v1/timeouts",
      summary: "Timeouts in seconds: tcp (ESTABLISHED), tcpfin (FIN_WAIT), udp (ipvsadm -L --timeout)",
      responses: { 200: Timeouts },
      handler: () => ({ status: 200, body: daemon.model.timeouts }),
    }),
    route<TimeoutsT>({
      method: "put",
      path: "/v1/timeouts",
      summary: "Set timeouts; 0 keeps a value (ipvsadm --set tcp tcpfin udp)",
      body: Timeouts,
      responses: { 200: Timeouts },
      handler: async ({ body }) => {
        await daemon.mutate((m) => m.setTimeouts(body));
        return { status: 200, body: daemon.model.timeouts };
      },
    }),
    route({
      method: "get",
      path: "/v1/settings",
      summary: "The IPVS sysctls xvs keeps (net.ipv4.vs.expire_nodest_conn, expire_quiescent_template, sloppy_tcp, conn_reuse_mode)",
      responses: { 200: Settings },
      handler: () => ({ status: 200, body: daemon.model.settings }),
    }),
    route<Partial<SettingsT>>({
      method: "put",
      path: "/v1/settings",
      summary: "Change some of the settings (the others keep their values); applied to new packets at once, saved with the table",
      body: Settings.partial(),
      responses: { 200: Settings },
      handler: async ({ body }) => {
        await daemon.mutate((m) => m.setSettings(body));
        return { status: 200, body: daemon.model.settings };
      },
    }),
  ];
}
