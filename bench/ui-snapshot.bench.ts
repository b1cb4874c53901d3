/**
 * What the dashboard's feed costs the daemon (docs/ui.md), no I/O: a table of N real servers
 * (one service of N - 3 and one of 3), then the time to build and serialise one snapshot (what
 * GET /ui/stream sends every second, once for all connected pages) next to the time of one
 * GET /v1/services through the API (validation and JSON included).
 *
 *   bun run bench/ui-snapshot.bench.ts [--dests N]
 */
import { createApp } from "../src/control/app.ts";
import { Daemon } from "../src/control/daemon.ts";
import { DestSpec, ServiceSpec } from "../src/control/schemas.ts";
import { UiHub } from "../src/control/ui/stream.ts";

const arg = process.argv.indexOf("--dests");
const dests = arg > 0 ? Number(process.argv[arg + 1]) : 303;
const daemon = new Daemon(null, null);
const app = createApp(daemon, "b".repeat(24));
const big = { protocol: "tcp", address: "198.18.0.100", port: 8000 } as const;
const small = { protocol: "tcp", address: "198.18.0.100", port: 80 } as const;
await daemon.mutate((m) => {
  m.addService(ServiceSpec.parse({ ...big, scheduler: "wlc" }));
  for (let i = 0; i < dests - 3; i++)
    m.addDest(big, DestSpec.parse({ address: `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8000, forward: "masq", weight: 1 }));
  m.addService(ServiceSpec.parse({ ...small, scheduler: "rr" }));
  for (let i = 1; i <= 3; i++) m.addDest(small, DestSpec.parse({ address: `198.18.2.${10 + i}`, port: 80, forward: "masq", weight: i }));
});
const hub = new UiHub(daemon);

async function perCall(n: number, f: () => unknown): Promise<number> {
  for (let i = 0; i < 20; i++) await f();
  const t = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t) / n;
}

const snapMs = await perCall(300, () => JSON.stringify(hub.snapshot()));
const bytes = JSON.stringify(hub.snapshot()).length;
const getMs = await perCall(300, async () => (await app.request("/v1/services")).text());
console.log(`real servers                         ${dests}`);
console.log(`snapshot, built and serialised       ${snapMs.toFixed(2)} ms  (${(bytes / 1024).toFixed(0)} KiB, once a second for all pages)`);
console.log(`GET /v1/services                     ${getMs.toFixed(2)} ms`);
console.log(`feed's share of one core             ${(snapMs / 10).toFixed(2)} %`);
hub.close();
