/**
 * Virtual services and their real servers: list, add (-A/-a), replace (-E/-e), delete (-D/-d),
 * flush (-C), zero (-Z). Paths name a service by id (ids.ts: tcp:198.18.0.100:80,
 * udp:[2001:db8::1]:53, fwm:1, fwm6:1) and a real server by address:port.
 */
import { z } from "zod";
import { ErrorCode, LbError } from "../../errors.ts";
import type { Daemon } from "../daemon.ts";
import { route, type Route } from "../http.ts";
import { destId, parseAddrPort, parseServiceId, serviceId } from "../ids.ts";
import { DestSpec, DestView, ServiceList, ServiceSpec, ServiceView, type DestSpecT, type ServiceKeyT, type ServiceSpecT } from "../schemas.ts";
import { destView, serviceView } from "../views.ts";

const SVC_PARAM = { svc: "service id: proto:addr:port (tcp:198.18.0.100:80, udp:[2001:db8::1]:53) or fwm:MARK / fwm6:MARK" };
const DEST_PARAM = { ...SVC_PARAM, dest: "real server: addr:port (198.18.1.2:80, [2001:db8::2]:80)" };

function svcKey(id: string): ServiceKeyT {
  const k = parseServiceId(id);
  if (!k) throw new LbError(ErrorCode.Invalid, `svc: '${id}' is not a service id: expected proto:addr:port (tcp:198.18.0.100:80, udp:[2001:db8::1]:53) or fwm:MARK`);
  return k;
}

function destKey(id: string): { address: string; port: number } {
  const ap = parseAddrPort(id);
  if (!ap) throw new LbError(ErrorCode.Invalid, `dest: '${id}' is not a real server id: expected addr:port (198.18.1.2:80, [2001:db8::2]:80)`);
  return ap;
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
      method: "get", path: "/v1/services", summary: "List virtual services with their real servers, counters and rates (ipvsadm -L)",
      responses: { 200: ServiceList },
      handler: () => ({ status: 200, body: { services: daemon.model.services.map((s) => serviceView(daemon, s)) } }),
    }),
    route<ServiceSpecT>({
      method: "post", path: "/v1/services", summary: "Add a virtual service (ipvsadm -A)", body: ServiceSpec,
      responses: { 201: ServiceView },
      handler: async ({ body }) => {
        const s = await daemon.mutate((m) => m.addService(body));
        return { status: 201, body: view(s.id) };
      },
    }),
    route({
      method: "delete", path: "/v1/services", summary: "Delete every virtual service (ipvsadm -C); connections are kept",
      responses: { 204: null },
      handler: async () => {
        await daemon.mutate((m) => m.clear());
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get", path: "/v1/services/:svc", summary: "One virtual service (ipvsadm -L -t ...)", params: SVC_PARAM,
      responses: { 200: ServiceView },
      handler: ({ param }) => ({ status: 200, body: serviceView(daemon, find(svcKey(param("svc")))) }),
    }),
    route<ServiceSpecT>({
      method: "put", path: "/v1/services/:svc", summary: "Replace a virtual service's options (ipvsadm -E); real servers are kept", params: SVC_PARAM,
      body: ServiceSpec, responses: { 200: ServiceView },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        if (serviceId(body) !== serviceId(key)) throw new LbError(ErrorCode.Invalid, `body: names service ${serviceId(body)}, the path ${serviceId(key)}`);
        const s = await daemon.mutate((m) => m.editService(body));
        return { status: 200, body: view(s.id) };
      },
    }),
    route({
      method: "delete", path: "/v1/services/:svc", summary: "Delete a virtual service (ipvsadm -D)", params: SVC_PARAM,
      responses: { 204: null },
      handler: async ({ param }) => {
        const key = svcKey(param("svc"));
        await daemon.mutate((m) => m.deleteService(key));
        return { status: 204, body: null };
      },
    }),
    route({
      method: "post", path: "/v1/services/:svc/zero", summary: "Zero a service's counters and rates, and its real servers' (ipvsadm -Z -t ...)", params: SVC_PARAM,
      responses: { 204: null },
      handler: ({ param }) => {
        daemon.zero(svcKey(param("svc")));
        return { status: 204, body: null };
      },
    }),
    route({
      method: "get", path: "/v1/services/:svc/dests", summary: "The real servers of a service, in scheduling order", params: SVC_PARAM,
      responses: { 200: z.strictObject({ dests: z.array(DestView) }) },
      handler: ({ param }) => ({ status: 200, body: { dests: find(svcKey(param("svc"))).dests.map((d) => destView(daemon, d)) } }),
    }),
    route<DestSpecT>({
      method: "post", path: "/v1/services/:svc/dests", summary: "Add a real server (ipvsadm -a)", params: SVC_PARAM,
      body: DestSpec, responses: { 201: DestView },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const d = await daemon.mutate((m) => m.addDest(key, body));
        return { status: 201, body: destView(daemon, d) };
      },
    }),
    route({
      method: "get", path: "/v1/services/:svc/dests/:dest", summary: "One real server", params: DEST_PARAM,
      responses: { 200: DestView },
      handler: ({ param }) => ({ status: 200, body: destView(daemon, findDest(svcKey(param("svc")), destKey(param("dest")))) }),
    }),
    route<DestSpecT>({
      method: "put", path: "/v1/services/:svc/dests/:dest", summary: "Replace a real server's options (ipvsadm -e)", params: DEST_PARAM,
      body: DestSpec, responses: { 200: DestView },
      handler: async ({ param, body }) => {
        const key = svcKey(param("svc"));
        const ap = destKey(param("dest"));
        if (destId(body.address, body.port ?? ap.port) !== destId(ap.address, ap.port)) {
          throw new LbError(ErrorCode.Invalid, `body: names real server ${destId(body.address, body.port ?? ap.port)}, the path ${destId(ap.address, ap.port)}`);
        }
        const d = await daemon.mutate((m) => m.editDest(key, { ...body, address: ap.address, port: ap.port }));
        return { status: 200, body: destView(daemon, d) };
      },
    }),
    route({
      method: "delete", path: "/v1/services/:svc/dests/:dest", summary: "Delete a real server (ipvsadm -d); its connections stay until they expire", params: DEST_PARAM,
      responses: { 204: null },
      handler: async ({ param }) => {
        const key = svcKey(param("svc"));
        const ap = destKey(param("dest"));
        await daemon.mutate((m) => m.deleteDest(key, ap.address, ap.port));
        return { status: 204, body: null };
      },
    }),
  ];
}
