/**
 * rtnetlink through the shim: interfaces, routes, neighbours, addresses, change events.
 * Control thread only; every call is a syscall round trip.
 */
import { ptr } from "bun:ffi";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "./abi.ts";
import { cstr, lastError, lib } from "./lib.ts";

export interface LinkInfo {
  name: string;
  ifindex: number;
  mtu: number;
  up: boolean;
  mac: Uint8Array;
}

export interface RouteInfo {
  family: 4 | 6;
  dst: Uint8Array;
  dstLen: number;
  type: number;
  oif: number;
  gateway: Uint8Array | null;
  prefsrc: Uint8Array | null;
  priority: number;
  mtu: number;
}

export interface NeighInfo {
  family: 4 | 6;
  addr: Uint8Array;
  ifindex: number;
  state: number;
  mac: Uint8Array | null;
}

export interface IfAddrInfo {
  family: 4 | 6;
  addr: Uint8Array;
  prefix: number;
  ifindex: number;
}

/** RTN_UNICAST: the only route type replies can follow. */
export const RTN_UNICAST = 1;
const IFF_UP = 1;

/** Read an interface's index, MTU, state and MAC. @throws LbError naming the interface. */
export function linkInfo(name: string): LinkInfo {
  const out = new Uint8Array(abi.XVS_LINK_SIZE);
  const rc = lib().xvs_link__info(cstr(name), ptr(out));
  if (rc < 0) throw new LbError(ErrorCode.Environment, lastError());
  const dv = new DataView(out.buffer);
  return {
    name,
    ifindex: dv.getUint32(abi.XVS_LINK_IFINDEX_OFF, true),
    mtu: dv.getUint32(abi.XVS_LINK_MTU_OFF, true),
    up: (dv.getUint32(abi.XVS_LINK_FLAGS_OFF, true) & IFF_UP) !== 0,
    mac: out.slice(abi.XVS_LINK_MAC_OFF, abi.XVS_LINK_MAC_OFF + 6),
  };
}

/**
 * linkInfo for a name an operator typed: a missing interface is reported in the words the CLI
 * uses everywhere; any other failure (not Ethernet, the shim missing) keeps its own message.
 */
export function operatorLink(name: string): LinkInfo {
  try {
    return linkInfo(name);
  } catch (e) {
    if (!(e instanceof LbError) || !/^no interface/.test(e.message)) throw e;
    throw new LbError(ErrorCode.Environment, `interface ${name} does not exist in this network namespace: check the name with 'ip link'`);
  }
}

function addrBytes(family: number, b: Uint8Array, off: number): Uint8Array {
  return b.slice(off, off + (family === 6 ? 16 : 4));
}

function parseRoute(b: Uint8Array, off: number): RouteInfo {
  const dv = new DataView(b.buffer, b.byteOffset + off, abi.XVS_ROUTE_SIZE);
  const family = b[off + abi.XVS_ROUTE_FAMILY_OFF] === abi.XVS_FAMILY_V6 ? 6 : 4;
  const prefsrc = addrBytes(family, b, off + abi.XVS_ROUTE_PREFSRC_OFF);
  return {
    family,
    dst: addrBytes(family, b, off + abi.XVS_ROUTE_DST_OFF),
    dstLen: b[off + abi.XVS_ROUTE_DST_LEN_OFF],
    type: b[off + abi.XVS_ROUTE_TYPE_OFF],
    oif: dv.getUint32(abi.XVS_ROUTE_OIF_OFF, true),
    gateway: b[off + abi.XVS_ROUTE_HAS_GW_OFF] ? addrBytes(family, b, off + abi.XVS_ROUTE_GW_OFF) : null,
    prefsrc: prefsrc.some((x) => x !== 0) ? prefsrc : null,
    priority: dv.getUint32(abi.XVS_ROUTE_PRIORITY_OFF, true),
    mtu: dv.getUint32(abi.XVS_ROUTE_MTU_OFF, true),
  };
}

/** Ask the kernel which route it would use to reach `addr`; null when it has none. */
export function routeGet(family: 4 | 6, addr: Uint8Array): RouteInfo | null {
  const dst = new Uint8Array(16);
  dst.set(addr);
  const out = new Uint8Array(abi.XVS_ROUTE_SIZE);
  const rc = lib().xvs_nl__route_get(family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4, ptr(dst), ptr(out));
  if (rc < 0) return null;
  return parseRoute(out, 0);
}

function dump<T>(what: string, size: number, call: (buf: Uint8Array, cap: number) => number, parse: (b: Uint8Array, off: number) => T): T[] {
  for (let cap = 256; cap <= 1 << 22; cap *= 4) {
    const buf = new Uint8Array(cap * size);
    const n = call(buf, cap);
    if (n === -28 /* ENOSPC */) continue;
    if (n < 0) throw new LbError(ErrorCode.System, `cannot read ${what}: ${lastError()}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(parse(buf, i * size));
    return out;
  }
  throw new LbError(ErrorCode.System, `too many ${what}`);
}

/** Return the main routing table of a family. */
export function dumpRoutes(family: 4 | 6): RouteInfo[] {
  const fam = family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4;
  return dump("routes", abi.XVS_ROUTE_SIZE, (b, cap) => lib().xvs_nl__dump_routes(fam, ptr(b), cap), parseRoute);
}

/** Return the neighbour table of a family. */
export function dumpNeighs(family: 4 | 6): NeighInfo[] {
  const fam = family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4;
  return dump(
    "neighbours",
    abi.XVS_NEIGH_SIZE,
    (b, cap) => lib().xvs_nl__dump_neighs(fam, ptr(b), cap),
    (b, off) => {
      const f = b[off + abi.XVS_NEIGH_FAMILY_OFF] === abi.XVS_FAMILY_V6 ? 6 : 4;
      const dv = new DataView(b.buffer, b.byteOffset + off, abi.XVS_NEIGH_SIZE);
      return {
        family: f,
        addr: addrBytes(f, b, off + abi.XVS_NEIGH_ADDR_OFF),
        ifindex: dv.getUint32(abi.XVS_NEIGH_IFINDEX_OFF, true),
        state: dv.getUint16(abi.XVS_NEIGH_STATE_OFF, true),
        mac: b[off + abi.XVS_NEIGH_HAS_MAC_OFF] ? b.slice(off + abi.XVS_NEIGH_MAC_OFF, off + abi.XVS_NEIGH_MAC_OFF + 6) : null,
      } satisfies NeighInfo;
    },
  );
}

/** Return every address configured in this network namespace. */
export function dumpAddrs(): IfAddrInfo[] {
  return dump(
    "addresses",
    abi.XVS_IFADDR_SIZE,
    (b, cap) => lib().xvs_nl__dump_addrs(ptr(b), cap),
    (b, off) => {
      const f = b[off + abi.XVS_IFADDR_FAMILY_OFF] === abi.XVS_FAMILY_V6 ? 6 : 4;
      const dv = new DataView(b.buffer, b.byteOffset + off, abi.XVS_IFADDR_SIZE);
      return {
        family: f,
        addr: addrBytes(f, b, off + abi.XVS_IFADDR_ADDR_OFF),
        prefix: b[off + abi.XVS_IFADDR_PREFIX_OFF],
        ifindex: dv.getUint32(abi.XVS_IFADDR_IFINDEX_OFF, true),
      } satisfies IfAddrInfo;
    },
  );
}

/** Ask the kernel to resolve a neighbour (ARP/ND) without sending anything ourselves. */
export function resolveNeigh(ifindex: number, family: 4 | 6, addr: Uint8Array): void {
  const a = new Uint8Array(16);
  a.set(addr);
  lib().xvs_nl__neigh_resolve(ifindex, family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4, ptr(a));
}

/** A subscription to link, address, route and neighbour changes. */
export class NetlinkEvents {
  private fd: number;
  constructor() {
    this.fd = lib().xvs_nl__events_open();
    if (this.fd < 0) throw new LbError(ErrorCode.System, `cannot subscribe to rtnetlink: ${lastError()}`);
  }
  /** Return how many notifications arrived since the last call (0: nothing changed). */
  drain(): number {
    return this.fd >= 0 ? lib().xvs_nl__events_drain(this.fd) : 0;
  }
  close(): void {
    lib().xvs_nl__close(this.fd);
    this.fd = -1;
  }
}
