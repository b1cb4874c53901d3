/**
 * Forwarding methods and tunnel options by the names the API and config file use, with the
 * codes tables.ts stores for them (DEST_FWD, DEST_TUN): one mapping for the compiler, the CLI
 * and the views.
 */
import { FWD_LOCAL, FWD_MASQ, FWD_ROUTE, FWD_TUNNEL, TUN_CSUM, TUN_CSUM_NONE, TUN_GRE, TUN_GUE, TUN_IPIP, TUN_REMCSUM } from "./tables.ts";

export const FORWARDS = ["masq", "route", "tunnel", "local"] as const;
export type ForwardName = (typeof FORWARDS)[number];
/** IP_VS_CONN_F_* code of each method (tables.ts FWD_*). */
export const FORWARD_CODE: Readonly<Record<ForwardName, number>> = { masq: FWD_MASQ, local: FWD_LOCAL, tunnel: FWD_TUNNEL, route: FWD_ROUTE };
/** Method name of each code (index: FWD_*), for what the connection table stores. */
export const FORWARD_BY_CODE: readonly ForwardName[] = [...FORWARDS].sort((a, b) => FORWARD_CODE[a] - FORWARD_CODE[b]);

export const TUNNEL_TYPES = ["ipip", "gue", "gre"] as const;
export type TunnelTypeName = (typeof TUNNEL_TYPES)[number];
/** IP_VS_CONN_F_TUNNEL_TYPE_* code of each type (tables.ts TUN_*). */
export const TUNNEL_TYPE_CODE: Readonly<Record<TunnelTypeName, number>> = { ipip: TUN_IPIP, gue: TUN_GUE, gre: TUN_GRE };

export const TUNNEL_CSUMS = ["nocsum", "csum", "remcsum"] as const;
export type TunnelCsumName = (typeof TUNNEL_CSUMS)[number];
/** Checksum mode code of each option (tables.ts TUN_CSUM*). */
export const TUNNEL_CSUM_CODE: Readonly<Record<TunnelCsumName, number>> = { nocsum: TUN_CSUM_NONE, csum: TUN_CSUM, remcsum: TUN_REMCSUM };
