/**
 * Host and service names for the ipvsadm-compatible CLI, from the files glibc reads first:
 * /etc/services (getservbyname / getservbyport) and /etc/hosts (gethostbyname /
 * gethostbyaddr). DNS is not asked: a listing without -n shows the numeric address when the
 * hosts file has no name for it, which is what ipvsadm shows on a host without a resolver.
 */
import { readFileSync } from "node:fs";
import { ipText, parseIp, type IpAddr } from "../service/addr.ts";

const PROTOS: Record<number, string> = { 6: "tcp", 17: "udp", 132: "sctp" };

export class NameDb {
  private readonly portByName = new Map<string, number>();
  private readonly nameByPort = new Map<string, string>();
  private readonly hostByName = new Map<string, number>();
  private readonly nameByAddr = new Map<string, string>();

  constructor(servicesText: string, hostsText: string) {
    for (const raw of servicesText.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      const [name, portProto, ...aliases] = line.split(/\s+/);
      const m = /^(\d+)\/(\w+)$/.exec(portProto ?? "");
      if (!m) continue;
      const port = Number(m[1]);
      const proto = m[2];
      // the first entry wins, as getservby* return the first match of the file
      if (!this.nameByPort.has(`${port}/${proto}`)) this.nameByPort.set(`${port}/${proto}`, name);
      for (const n of [name, ...aliases]) if (!this.portByName.has(`${n}/${proto}`)) this.portByName.set(`${n}/${proto}`, port);
    }
    for (const raw of hostsText.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      const [addrText, ...names] = line.split(/\s+/);
      const a = parseIp(addrText);
      if (!a || names.length === 0) continue;
      const key = ipText(a);
      if (!this.nameByAddr.has(key)) this.nameByAddr.set(key, names[0]);
      // gethostbyname is IPv4-only in ipvsadm (host_to_addr refuses other families)
      if (a.family === 4) for (const n of names) if (!this.hostByName.has(n.toLowerCase())) this.hostByName.set(n.toLowerCase(), a.words[0] >>> 0);
    }
  }

  /** Read the system's files (missing files: no names). */
  static fromFiles(servicesPath = "/etc/services", hostsPath = "/etc/hosts"): NameDb {
    const read = (p: string) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return "";
      }
    };
    return new NameDb(read(servicesPath), read(hostsPath));
  }

  /** getservbyname(name, proto of `protocol`): the port, or -1. */
  serviceToPort(name: string, protocol: number): number {
    const p = PROTOS[protocol];
    return p ? (this.portByName.get(`${name}/${p}`) ?? -1) : -1;
  }

  /** getservbyport: the service name, or null. */
  portToService(port: number, protocol: number): string | null {
    const p = PROTOS[protocol];
    return p ? (this.nameByPort.get(`${port}/${p}`) ?? null) : null;
  }

  /** gethostbyname for IPv4: the address as an unsigned number, or null. */
  hostToAddr(name: string): number | null {
    return this.hostByName.get(name.toLowerCase()) ?? null;
  }

  /** gethostbyaddr: the host's name, or null. */
  addrToHost(a: IpAddr): string | null {
    return this.nameByAddr.get(ipText(a)) ?? null;
  }
}
