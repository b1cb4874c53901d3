/**
 * The standard director lab, as an IPVS operator would cable it:
 *
 *   client (cl) eth0 198.18.1.2/24 ──veth── dir: c0 198.18.1.1/24        VIP 198.18.0.100/32 on lo
 *                                           dir: s0 198.18.2.1/24 ──veth── sw: bridge br0
 *   real servers rs1..rsN: eth0 198.18.2.(10+i)/24, default via 198.18.2.1 ──veth── sw: br0
 *
 * The director forwards (ip_forward=1) and holds the VIP, so ARP for the VIP and everything that
 * is not the balancer's stays with its kernel. Real servers sit on one L2 segment with the
 * director (a bridge in the switch namespace), which NAT, DR and the tests all use.
 */
import { Lab } from "./netns.ts";

export const LAB_VIP = "198.18.0.100";
export const LAB_VIP6 = "2001:db8:100::100";
export const CLIENT_ADDR = "198.18.1.2";
export const CLIENT_ADDR6 = "2001:db8:1::2";
export const DIRECTOR_CLIENT_ADDR = "198.18.1.1";
export const DIRECTOR_SERVER_ADDR = "198.18.2.1";

/** Address of real server i (1-based). */
export function realAddr(i: number): string {
  return `198.18.2.${10 + i}`;
}

/** IPv6 address of real server i (1-based). */
export function realAddr6(i: number): string {
  return `2001:db8:2::${10 + i}`;
}

export interface DirectorLab {
  lab: Lab;
  client: string;
  director: string;
  reals: string[];
  /** Director interfaces: client side, server side. */
  ifaces: [string, string];
  /** Real servers on the routed subnet behind `router` (routedReals option), else empty. */
  remoteReals?: string[];
  /** The router between the director's segment and the routed subnet ("rt"), when there is one. */
  router?: string;
}

/** Router on the director's server segment towards the routed subnet 198.18.3.0/24. */
export const ROUTER_ADDR = "198.18.2.254";
export const ROUTER_ADDR6 = "2001:db8:2::fe";
/** The routed subnet's gateway (the router's other side). */
export const REMOTE_GW = "198.18.3.1";
export const REMOTE_GW6 = "2001:db8:3::1";

/** Address of real server i (1-based) on the routed subnet. */
export function remoteAddr(i: number): string {
  return `198.18.3.${10 + i}`;
}

/** IPv6 address of real server i (1-based) on the routed subnet. */
export function remoteAddr6(i: number): string {
  return `2001:db8:3::${10 + i}`;
}

export interface DirectorLabOptions {
  reals: number;
  /** Also give every host an IPv6 address (2001:db8::/32). */
  ipv6?: boolean;
  /** Real servers route replies through the director (NAT needs it; DR does not). */
  realsViaDirector?: boolean;
  /**
   * Real servers on another subnet (tr1..trN, 198.18.3.10+i/24, 2001:db8:3::10+i/64) behind a
   * router "rt" (198.18.2.254 on the director's segment, 198.18.3.1 on theirs, default route via
   * the director), for TUN: the director reaches them through the routing table only.
   */
  routedReals?: number;
  /** MTU of the routed subnet (router side and real servers); 1500 by default. */
  routedMtu?: number;
  /** Queues of the director's two veth pairs (client side and server side); 1 by default. */
  queues?: number;
}

/** Build the lab. On failure, everything made so far is torn down before the error is thrown. */
export async function buildDirectorLab(tag: string, o: DirectorLabOptions): Promise<DirectorLab> {
  const lab = new Lab(tag);
  try {
    await Lab.cleanupStale();
    await lab.addNs("cl");
    await lab.addNs("dir");
    await lab.addNs("sw");
    await lab.veth("cl", "eth0", "dir", "c0", 1500, o.queues ?? 1);
    await lab.veth("dir", "s0", "sw", "p0", 1500, o.queues ?? 1);
    await lab.ip("sw", "link", "add", "br0", "type", "bridge");
    await lab.ip("sw", "link", "set", "br0", "up");
    await lab.ip("sw", "link", "set", "p0", "master", "br0");
    // default veth peers (GRO off, no XDP program), as containers and labs have them: they drop
    // the frames the flow cache sends with XDP, and xvs must notice and route those flows through
    // AF_XDP (dataplane/veth-xdp.ts); flow-cache-veth.test.ts also runs peers with GRO on

    await lab.ip("cl", "addr", "add", `${CLIENT_ADDR}/24`, "dev", "eth0");
    await lab.ip("cl", "route", "add", "default", "via", DIRECTOR_CLIENT_ADDR);
    await lab.ip("dir", "addr", "add", `${DIRECTOR_CLIENT_ADDR}/24`, "dev", "c0");
    await lab.ip("dir", "addr", "add", `${DIRECTOR_SERVER_ADDR}/24`, "dev", "s0");
    await lab.ip("dir", "addr", "add", `${LAB_VIP}/32`, "dev", "lo");
    await lab.sysctl("dir", "net.ipv4.ip_forward", 1);
    if (o.ipv6) {
      await lab.sysctl("dir", "net.ipv6.conf.all.forwarding", 1);
      await lab.ip("cl", "addr", "add", `${CLIENT_ADDR6}/64`, "dev", "eth0", "nodad");
      await lab.ip("cl", "-6", "route", "add", "default", "via", "2001:db8:1::1");
      await lab.ip("dir", "addr", "add", "2001:db8:1::1/64", "dev", "c0", "nodad");
      await lab.ip("dir", "addr", "add", "2001:db8:2::1/64", "dev", "s0", "nodad");
      await lab.ip("dir", "addr", "add", `${LAB_VIP6}/128`, "dev", "lo", "nodad");
    }
    const reals: string[] = [];
    for (let i = 1; i <= o.reals; i++) {
      const name = `rs${i}`;
      await lab.addNs(name);
      await lab.veth(name, "eth0", "sw", `p${i}`);
      await lab.ip("sw", "link", "set", `p${i}`, "master", "br0");
      await lab.ip(name, "addr", "add", `${realAddr(i)}/24`, "dev", "eth0");
      if (o.realsViaDirector !== false) await lab.ip(name, "route", "add", "default", "via", DIRECTOR_SERVER_ADDR);
      if (o.ipv6) {
        await lab.ip(name, "addr", "add", `${realAddr6(i)}/64`, "dev", "eth0", "nodad");
        if (o.realsViaDirector !== false) await lab.ip(name, "-6", "route", "add", "default", "via", "2001:db8:2::1");
      }
      reals.push(name);
    }
    const remoteReals = o.routedReals ? await addRoutedSubnet(lab, o.routedReals, o.routedMtu ?? 1500, o.ipv6 === true) : [];
    return { lab, client: "cl", director: "dir", reals, ifaces: ["c0", "s0"], remoteReals, router: o.routedReals ? "rt" : undefined };
  } catch (e) {
    await lab.teardown();
    throw e;
  }
}

/** The router "rt" and the real servers behind it (see DirectorLabOptions.routedReals). */
async function addRoutedSubnet(lab: Lab, n: number, mtu: number, ipv6: boolean): Promise<string[]> {
  await lab.addNs("rt");
  await lab.veth("rt", "r0", "sw", "pr");
  await lab.ip("sw", "link", "set", "pr", "master", "br0");
  await lab.ip("sw", "link", "add", "br1", "type", "bridge");
  await lab.ip("sw", "link", "set", "br1", "up");
  await lab.veth("rt", "r1", "sw", "q0", mtu);
  await lab.ip("sw", "link", "set", "q0", "master", "br1");
  await lab.ip("rt", "addr", "add", `${ROUTER_ADDR}/24`, "dev", "r0");
  await lab.ip("rt", "addr", "add", `${REMOTE_GW}/24`, "dev", "r1");
  await lab.ip("rt", "route", "add", "default", "via", DIRECTOR_SERVER_ADDR);
  await lab.sysctl("rt", "net.ipv4.ip_forward", 1);
  await lab.ip("dir", "route", "add", "198.18.3.0/24", "via", ROUTER_ADDR);
  if (ipv6) {
    await lab.sysctl("rt", "net.ipv6.conf.all.forwarding", 1);
    await lab.ip("rt", "addr", "add", `${ROUTER_ADDR6}/64`, "dev", "r0", "nodad");
    await lab.ip("rt", "addr", "add", `${REMOTE_GW6}/64`, "dev", "r1", "nodad");
    await lab.ip("rt", "-6", "route", "add", "default", "via", "2001:db8:2::1");
    await lab.ip("dir", "-6", "route", "add", "2001:db8:3::/64", "via", ROUTER_ADDR6);
  }
  const out: string[] = [];
  for (let i = 1; i <= n; i++) {
    const name = `tr${i}`;
    await lab.addNs(name);
    await lab.veth(name, "eth0", "sw", `q${i}`, mtu);
    await lab.ip("sw", "link", "set", `q${i}`, "master", "br1");
    await lab.ip(name, "addr", "add", `${remoteAddr(i)}/24`, "dev", "eth0");
    await lab.ip(name, "route", "add", "default", "via", REMOTE_GW);
    if (ipv6) {
      await lab.ip(name, "addr", "add", `${remoteAddr6(i)}/64`, "dev", "eth0", "nodad");
      await lab.ip(name, "-6", "route", "add", "default", "via", REMOTE_GW6);
    }
    out.push(name);
  }
  return out;
}

/**
 * Direct return for DR / TUN real servers: each real server holds the VIP(s) on lo and does not
 * answer ARP for it (arp_ignore=1, arp_announce=2); the director, which also holds the VIP and
 * routes the real servers' direct replies to the client, accepts packets from its own VIP
 * (accept_local=1, rp_filter=0: otherwise they are martians).
 */
export async function directReturn(lab: Lab, director: string, reals: string[], vips: string[]): Promise<void> {
  for (const k of ["all", "default", "s0"]) {
    await lab.sysctl(director, `net.ipv4.conf.${k}.accept_local`, 1);
    await lab.sysctl(director, `net.ipv4.conf.${k}.rp_filter`, 0);
  }
  for (const h of reals) {
    for (const v of vips) await lab.ip(h, "addr", "add", v.includes(":") ? `${v}/128` : `${v}/32`, "dev", "lo", ...(v.includes(":") ? ["nodad"] : []));
    for (const k of ["all", "eth0"]) {
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_ignore`, 1);
      await lab.sysctl(h, `net.ipv4.conf.${k}.arp_announce`, 2);
    }
  }
}
