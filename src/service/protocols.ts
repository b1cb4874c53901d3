/** The protocols a virtual service balances, by the names the API and config file use. */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from "../wire/fields.ts";

export const PROTOCOLS = ["tcp", "udp", "sctp"] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

/** IP protocol number of each name (IPPROTO_*, as tables.ts SVC_PROTO stores it). */
export const PROTOCOL_NUMBER: Readonly<Record<ProtocolName, number>> = { tcp: PROTO_TCP, udp: PROTO_UDP, sctp: PROTO_SCTP };
