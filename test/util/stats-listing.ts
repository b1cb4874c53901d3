/**
 * Read `ipvsadm -L -n --stats --exact` (xvs adm) back into numbers, one row per service and per
 * real server, so that tests can hold the listing against other views (GET /metrics).
 */

export interface StatsRow {
  /** "TCP 198.18.0.100:80" (IPv6: "TCP [2001:db8::100]:80"). */
  service: string;
  /** The real server's "address:port", null on the service's own row. */
  dest: string | null;
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

/** The key a metric's labels give a row: `${proto} ${addr}:${port}` with IPv6 in brackets. */
export function endpoint(address: string, port: string | number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Parse the listing; throws on a row it does not understand. */
export function parseStatsListing(text: string): StatsRow[] {
  const rows: StatsRow[] = [];
  let service = "";
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("IP Virtual Server") || line.startsWith("Prot ") || line.trim() === "-> RemoteAddress:Port") continue;
    const f = line.trim().split(/\s+/);
    const nums = (from: number) => {
      const n = f.slice(from, from + 5).map(Number);
      if (n.length !== 5 || n.some((x) => !Number.isInteger(x))) throw new Error(`not a --stats --exact row: ${line}`);
      return { conns: n[0], inpkts: n[1], outpkts: n[2], inbytes: n[3], outbytes: n[4] };
    };
    if (f[0] === "->") {
      if (!service) throw new Error(`real server before any service: ${line}`);
      rows.push({ service, dest: f[1], ...nums(2) });
    } else {
      service = `${f[0]} ${f[1]}`;
      rows.push({ service, dest: null, ...nums(2) });
    }
  }
  return rows;
}
