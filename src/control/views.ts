/**
 * JSON views of the table as the API lists it (schemas.ts ServiceView / DestView): the model's
 * specs plus what the workers counted, net of the -Z baselines, and the estimator's rates.
 */
import { addrPortText, ipText } from "../service/addr.ts";
import type { Dest, Service } from "../config/model.ts";
import type { Daemon } from "./daemon.ts";
import { destId, serviceId } from "./ids.ts";
import type { FieldChangeT, ServiceViewT, DestViewT } from "./schemas.ts";
import type { DestHealthViewT } from "./health-schemas.ts";

const PROTO_NAMES: Record<number, string> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

/** Return ipvsadm's name of a service: "TCP  198.18.0.100:80", "FWM  1". */
export function serviceName(s: Service): string {
  if (s.fwmark) return `FWM  ${s.fwmark}${s.family === 6 ? " IPv6" : ""}`;
  return `${(PROTO_NAMES[s.proto] ?? "?").padEnd(4)} ${addrPortText(s.addr!, s.port)}`;
}

/** JSON view of a real server. */
export function destView(daemon: Daemon, d: Dest): DestViewT {
  const conns = daemon.destConns(d.id);
  return {
    id: destId(ipText(d.addr), d.port),
    address: ipText(d.addr),
    port: d.port,
    family: d.addr.family === 6 ? "ipv6" : "ipv4",
    forward: d.spec.forward,
    weight: d.spec.weight,
    upperThreshold: d.spec.upperThreshold,
    lowerThreshold: d.spec.lowerThreshold,
    tunnel: d.spec.tunnel ?? null,
    activeConns: conns.active,
    inactiveConns: conns.inactive,
    persistentConns: conns.persist,
    stats: daemon.stats.destStats(d),
    rates: daemon.stats.destRates(d),
    ...healthOf(daemon, d),
  };
}

/** `{health}` of a real server with checkers, else nothing (the view stays as it was without checks). */
function healthOf(daemon: Daemon, d: Dest): { health?: DestHealthViewT } {
  const s = daemon.model.services.find((x) => x.id === d.svcId);
  const h = s && daemon.health?.destHealth(s, ipText(d.addr), d.port);
  return h ? { health: h } : {};
}

/** JSON view of a virtual service, real servers in scheduling (kernel list) order. */
export function serviceView(daemon: Daemon, s: Service): ServiceViewT {
  const health = daemon.health?.serviceHealth(s);
  return {
    id: serviceId(s.spec),
    name: serviceName(s),
    family: s.family === 6 ? "ipv6" : "ipv4",
    spec: s.spec,
    stats: daemon.stats.serviceStats(s),
    rates: daemon.stats.serviceRates(s),
    dests: s.dests.map((d) => destView(daemon, d)),
    ...(health ? { health } : {}),
  };
}

/** The fields of a real server a PUT or PATCH may change (address and port name it). */
export const DEST_FIELDS = ["forward", "weight", "upperThreshold", "lowerThreshold", "tunnel", "checkers", "inhibit_on_failure"] as const;
/** The fields of a service a PUT or PATCH may change (protocol, address and port name it). */
export const SERVICE_FIELDS = ["scheduler", "persistence", "onePacket", "schedFlags", "pe", "health"] as const;

/** The fields among `fields` whose value differs between two specs, with both values (null: not set). */
export function fieldChanges(before: object, after: object, fields: readonly string[]): FieldChangeT[] {
  const value = (o: object, f: string) => structuredClone((o as Record<string, unknown>)[f] ?? null) as FieldChangeT["old"];
  return fields
    .filter((f) => JSON.stringify(value(before, f)) !== JSON.stringify(value(after, f)))
    .map((f) => ({ field: f, old: value(before, f), new: value(after, f) }));
}
