/**
 * Virtual services and their real servers: list, add (-A/-a), replace (-E/-e), delete (-D/-d),
 * flush (-C), zero (-Z). PUT replaces whole, as ipvsadm -E/-e do (what is left out gets its
 * default); PATCH changes only the fields given. Both answer with the fields they changed. Paths name a service by id (ids.ts: tcp:198.18.0.100:80,
 * udp:[2001:db8::1]:53, fwm:1, fwm6:1) and a real server by address:port.
 */
import { z } from "zod";
import { ErrorCode, LbError } from "../../errors.ts";
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";
import { destId, parseAddrPort, parseServiceId, serviceId } from "../ids.ts";
import {
  DestPatch,
  DestReplaced,
  DestSpec,
  DestView,
  ServiceList,
  ServicePatch,
  ServiceReplaced,
  ServiceSpec,
  ServiceView,
  type DestPatchT,
  type DestSpecT,
  type ServiceKeyT,
  type ServicePatchT,
  type ServiceSpecT,
} from "../schemas.ts";
import { DEST_FIELDS, destView, fieldChanges, SERVICE_FIELDS, serviceView } from "../views.ts";

const SVC_PARAM = { svc: "service id: proto:addr:port (tcp:198.18.0.100:80, udp:[2001:db8::1]:53) or fwm:MARK / fwm6:MARK" };
const DEST_PARAM = { ...SVC_PARAM, dest: "real server: addr:port (198.18.1.2:80, [2001:db8::2]:80)" };

function svcKey(id: string): ServiceKeyT {
  const k = parseServiceId(id);
  if (!k)
    throw new LbError(ErrorCode.Invalid, `svc: '${id}' is not a service id: expected proto:addr:port (tcp:198.18.0.100:80, udp:[2001:db8::1]:53) or fwm:MARK`);
  return k;
}

function destKey(id: string): { address: string; port: number } {
  const ap = parseAddrPort(id);
  if (!ap) throw new LbError(ErrorCode.Invalid, `dest: '${id}' is not a real server id: expected addr:port (198.18.1.2:80, [2001:db8::2]:80)`);
  return ap;
}

/** A body that names a real server (address, port) must name the path's. */
function checkDestNamed(body: { address?: string; port?: number }, ap: { address: string; port: number }): void {
  const named = destId(body.address ?? ap.address, body.port ?? ap.port);
  if (named !== destId(ap.address, ap.port)) throw new LbError(ErrorCode.Invalid, `body: names real server ${named}, the path ${destId(ap.address, ap.port)}`);
}

/** `current` with the fields of `patch` set (RFC 7396 style: null removes a field, absent keeps it). */
function mergePatch(current: object, patch: object): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(current) as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  }
  return out;
}

/** The routes of services and real servers. */
export function serviceRoutes(daemon: Daemon): Route[] {
  const find = (k: ServiceKeyT) => {
    const s = daemon.model.findService(k);
    if (!s) throw new LbError(ErrorCode.NotExist, "No such service");
    return s;
  };
  const view = (id: number) => serviceView(daemon, daemon.model.services.find((x) => x.id === id)!);
  const findDest = (k: ServiceKeyT, ap: { address: string; port: number }) => {
    const d = find(k).dests.find((x) => destId(x.spec.address, x.port) === destId(ap.address, ap.port));
    if (!d) throw new LbError(ErrorCode.NotExist, "No such destination");
    return d;
  };
  return [
    route({
      method: "get",
      path: "/v1/services",
      summary: "List virtual services with their real servers, counters and rates (ipvsadm -L)",
      responses: { 200: ServiceList },
      handler: () => ({ status: 200, body: { services: daemon.model.services.map((s) => serviceView(daemon, s)) } }),
    }),
    route<ServiceSpecT>({
      method: "post",
      path: "/v1/services",
      summary: "Add a virtual service (ipvsadm -A)",
      body: ServiceSpec,
      responses: { 201: ServiceView },
      handler: async ({ body }) => {
        const s = await daemon.mutate((m) => m.addService(body));
        return { status: 201, body: view(s.id) };
      },
    }),
    route({
      method: "delete",
      path: "/v1/services",
      summary: "Delete every virtual service (ipvsadm -C); connections are kept",
      responses: { 204: null },
      handler: async () => {
        await daemon.mutate((m) => m.clear());
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get",
      path: "/v1/services/:svc",
      summary: "One virtual service (ipvsadm -L -t ...)",
      params: SVC_PARAM,
      responses: { 200: ServiceView },
      handler: ({ param }) => ({ status: 200, body: serviceView(daemon, find(svcKey(param("svc")))) }),
    }),
    route<ServiceSpecT>({
      method: "put",
      path: "/v1/services/:svc",
      summary:
        "Replace a virtual service's options (ipvsadm -E): options left out get their defaults (scheduler wlc, no persistence); real servers are kept, and so are health settings the body does not name (PATCH health: null removes them). The answer lists each field that changed, old and new (PATCH changes only the fields given)",
      params: SVC_PARAM,
      body: ServiceSpec,
      responses: { 200: ServiceReplaced },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        if (serviceId(body) !== serviceId(key)) throw new LbError(ErrorCode.Invalid, `body: names service ${serviceId(body)}, the path ${serviceId(key)}`);
        const r = await daemon.mutate((m) => {
          const before = m.findService(key)?.spec;
          // health settings are not ipvsadm options: a PUT that does not name them (ipvsadm -E) keeps them
          const s = m.editService(body.health === undefined && before?.health ? { ...body, health: before.health } : body);
          return { id: s.id, changes: fieldChanges(before ?? {}, s.spec, SERVICE_FIELDS) };
        });
        return { status: 200, body: { ...view(r.id), changes: r.changes } };
      },
    }),
    route<ServicePatchT>({
      method: "patch",
      path: "/v1/services/:svc",
      summary:
        "Change some of a virtual service's options: only the fields given (persistence: null and pe: null remove them), checked whole, all or nothing. The answer lists each field that changed, old and new",
      params: SVC_PARAM,
      body: ServicePatch,
      responses: { 200: ServiceReplaced },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const r = await daemon.mutate((m) => {
          const svc = m.findService(key);
          if (!svc) throw new LbError(ErrorCode.NotExist, "No such service");
          const merged = ServiceSpec.parse(mergePatch(svc.spec, body));
          if (serviceId(merged) !== serviceId(key))
            throw new LbError(ErrorCode.Invalid, `body: names service ${serviceId(merged)}, the path ${serviceId(key)}`);
          const before = svc.spec;
          const s = m.editService(merged);
          return { id: s.id, changes: fieldChanges(before, s.spec, SERVICE_FIELDS) };
        });
        return { status: 200, body: { ...view(r.id), changes: r.changes } };
      },
    }),
    route({
      method: "delete",
      path: "/v1/services/:svc",
      summary: "Delete a virtual service (ipvsadm -D)",
      params: SVC_PARAM,
      responses: { 204: null },
      handler: async ({ param }) => {
        const key = svcKey(param("svc"));
        await daemon.mutate((m) => m.deleteService(key));
        return { status: 204, body: null };
      },
    }),
    route({
      method: "post",
      path: "/v1/services/:svc/zero",
      summary: "Zero a service's counters and rates, and its real servers' (ipvsadm -Z -t ...)",
      params: SVC_PARAM,
      responses: { 204: null },
      handler: ({ param }) => {
        daemon.zero(svcKey(param("svc")));
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get",
      path: "/v1/services/:svc/dests",
      summary: "The real servers of a service, in scheduling order",
      params: SVC_PARAM,
      responses: { 200: z.strictObject({ dests: z.array(DestView) }) },
      handler: ({ param }) => ({ status: 200, body: { dests: find(svcKey(param("svc"))).dests.map((d) => destView(daemon, d)) } }),
    }),
    route<DestSpecT>({
      method: "post",
      path: "/v1/services/:svc/dests",
      summary: "Add a real server (ipvsadm -a)",
      params: SVC_PARAM,
      body: DestSpec,
      responses: { 201: DestView },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const d = await daemon.mutate((m) => m.addDest(key, body));
        return { status: 201, body: destView(daemon, d) };
      },
    }),
    route({
      method: "get",
      path: "/v1/services/:svc/dests/:dest",
      summary: "One real server",
      params: DEST_PARAM,
      responses: { 200: DestView },
      handler: ({ param }) => ({ status: 200, body: destView(daemon, findDest(svcKey(param("svc")), destKey(param("dest")))) }),
    }),
    route<DestSpecT>({
      method: "put",
      path: "/v1/services/:svc/dests/:dest",
      summary:
        "Replace a real server's options (ipvsadm -e): options left out get their defaults (forward route, weight 1), as ipvsadm fills them in, so a NAT real server put without forward becomes DR; checkers and inhibit_on_failure the body does not name are kept (PATCH checkers: null removes them). The answer lists each field that changed, old and new (PATCH changes only the fields given)",
      params: DEST_PARAM,
      body: DestSpec,
      responses: { 200: DestReplaced },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const ap = destKey(param("dest"));
        checkDestNamed(body, ap);
        const r = await daemon.mutate((m) => {
          const before = m.dest(key, ap.address, ap.port).spec;
          // checkers are not ipvsadm options: a PUT that does not name them (ipvsadm -e) keeps them
          const kept = { checkers: body.checkers ?? before.checkers, inhibit_on_failure: body.inhibit_on_failure ?? before.inhibit_on_failure };
          const d = m.editDest(key, {
            ...body,
            ...(kept.checkers ? { checkers: kept.checkers } : {}),
            ...(kept.inhibit_on_failure !== undefined ? { inhibit_on_failure: kept.inhibit_on_failure } : {}),
            address: ap.address,
            port: ap.port,
          });
          return { d, changes: fieldChanges(before, d.spec, DEST_FIELDS) };
        });
        return { status: 200, body: { ...destView(daemon, r.d), changes: r.changes } };
      },
    }),
    route<DestPatchT>({
      method: "patch",
      path: "/v1/services/:svc/dests/:dest",
      summary:
        "Change some of a real server's options: only the fields given (a NAT real server stays NAT when only its weight is given; tunnel: null drops the tunnel options, and so does a forward other than tunnel), checked whole, all or nothing. The answer lists each field that changed, old and new",
      params: DEST_PARAM,
      body: DestPatch,
      responses: { 200: DestReplaced },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const ap = destKey(param("dest"));
        checkDestNamed(body, ap);
        const r = await daemon.mutate((m) => {
          const before = m.dest(key, ap.address, ap.port).spec;
          const patch = { ...body };
          // tunnel options belong to the tunnel method: another method given alone drops them
          if (patch.forward !== undefined && patch.forward !== "tunnel" && patch.tunnel === undefined) patch.tunnel = null;
          const merged = DestSpec.parse({ ...mergePatch(before, patch), address: ap.address, port: ap.port });
          const d = m.editDest(key, merged);
          return { d, changes: fieldChanges(before, d.spec, DEST_FIELDS) };
        });
        return { status: 200, body: { ...destView(daemon, r.d), changes: r.changes } };
      },
    }),
    route({
      method: "delete",
      path: "/v1/services/:svc/dests/:dest",
      summary: "Delete a real server (ipvsadm -d); its connections stay until they expire",
      params: DEST_PARAM,
      responses: { 204: null },
      handler: async ({ param }) => {
        const key = svcKey(param("svc"));
        const ap = destKey(param("dest"));
        await daemon.mutate((m) => {
          // a real server its health checks took out is only in the configuration: deleting it forgets it
          if (daemon.health?.forget(m, key, ap.address, ap.port)) return;
          m.deleteDest(key, ap.address, ap.port);
        });
        return { status: 204, body: null };
      },
    }),
  ];
}
