/**
 * JSON views of the table as the API lists it (schemas.ts ServiceView / DestView): the model's
 * specs plus what the workers counted, net of the -Z baselines, and the estimator's rates.
 */
import { addrPortText, ipText } from "../service/addr.ts";
import type { Dest, Service } from "../config/model.ts";
import type { Daemon } from "./daemon.ts";
import { destId, serviceId } from "./ids.ts";
import type { DestViewT, ServiceViewT } from "./schemas.ts";

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
  };
}

/** JSON view of a virtual service, real servers in scheduling (kernel list) order. */
export function serviceView(daemon: Daemon, s: Service): ServiceViewT {
  return {
    id: serviceId(s.spec),
    name: serviceName(s),
    family: s.family === 6 ? "ipv6" : "ipv4",
    spec: s.spec,
    stats: daemon.stats.serviceStats(s),
    rates: daemon.stats.serviceRates(s),
    dests: s.dests.map((d) => destView(daemon, d)),
  };
}
