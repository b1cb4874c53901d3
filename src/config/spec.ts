/**
 * What a virtual service and a real server are, as plain types: the model, the compiler and the
 * schedulers' table builders read these, and need no validation library to do so.
 * control/schemas.ts (zod) checks requests, responses and config files against schemas whose
 * inferred types it asserts equal to these at compile time, so the two cannot drift apart.
 */
import type { ForwardName, TunnelCsumName, TunnelTypeName } from "../service/forwarding.ts";
import type { ProtocolName } from "../service/protocols.ts";
import type { SchedFlag, SchedulerName } from "../service/schedulers.ts";
import type { CheckerT, ServiceHealthT } from "./health.ts";

export type AddressFamilyName = "ipv4" | "ipv6";

/** Identity of a virtual service by (protocol, address, port). */
export interface AddrServiceKeyT {
  protocol: ProtocolName;
  /** IPv4 or IPv6 address in text form. */
  address: string;
  port: number;
}

/** Identity of a virtual service by firewall mark. */
export interface FwmarkServiceKeyT {
  fwmark: number;
  family: AddressFamilyName;
}

export type ServiceKeyT = AddrServiceKeyT | FwmarkServiceKeyT;

export interface PersistenceT {
  /** Seconds. */
  timeout: number;
  /** IPv4: a dotted mask; IPv6: a prefix length 1..128 as text. */
  netmask?: string;
}

/** The options of a virtual service (everything but its identity). */
export interface ServiceOptionsT {
  scheduler: SchedulerName;
  persistence?: PersistenceT;
  onePacket: boolean;
  schedFlags: SchedFlag[];
  pe?: "sip";
  /** Health-check settings (keepalived's virtual_server keywords). */
  health?: ServiceHealthT;
}

export interface AddrServiceSpecT extends AddrServiceKeyT, ServiceOptionsT {}
export interface FwmarkServiceSpecT extends FwmarkServiceKeyT, ServiceOptionsT {}

/** A virtual service as created by `-A` (and replaced by `-E`). */
export type ServiceSpecT = AddrServiceSpecT | FwmarkServiceSpecT;

export interface TunnelSpecT {
  type: TunnelTypeName;
  port?: number;
  csum?: TunnelCsumName;
}

/** A real server as created by `-a` (and replaced by `-e`). */
export interface DestSpecT {
  /** IPv4 or IPv6 address in text form. */
  address: string;
  /** Omitted: the service port (ipvsadm's rule). */
  port?: number;
  forward: ForwardName;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnel?: TunnelSpecT;
  /** Omitted or empty: never checked, always in the table. */
  checkers?: CheckerT[];
  /** Down: weight 0 instead of removal (keepalived inhibit_on_failure). */
  inhibit_on_failure?: boolean;
}

/** Timeouts set by `--set tcp tcpfin udp`, seconds; 0 leaves a value unchanged. */
export interface TimeoutsT {
  tcp: number;
  tcpfin: number;
  udp: number;
}

/** The IPVS sysctls (net.ipv4.vs.*) that change how connections are handled (schemas.ts Settings). */
export interface SettingsT {
  expireNodestConn: boolean;
  expireQuiescentTemplate: boolean;
  sloppyTcp: boolean;
  connReuseMode: number;
}
