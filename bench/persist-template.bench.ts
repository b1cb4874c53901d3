/**
 * What one persistence template over all workers (conn/persist-template.ts) costs per new
 * connection, against per-worker copies (what xvs did before: a worker that found another
 * worker's template copied its real server into a template of its own, and from then on hit
 * that copy in its own table).
 *
 *   bun run bench/persist-template.bench.ts [TREE_A TREE_B] [--rounds R]
 *
 * With two trees (e.g. `git archive <base> | tar -x -C /tmp/a`, plus node_modules and
 * src/ffi/abi.ts of a built tree), both are loaded into one process and run alternately a round
 * at a time (as bench/fastpath-ab.bench.ts), so the load of a shared machine hits both alike.
 * Each round pushes 2048 TCP SYNs of one client (a new source port each) through the test
 * harness's fast paths (test/util/harness.ts: a persistent DR service, rr over three real
 * servers, 32 frames per burst), then lets them expire, in process CPU time (the frames' copy
 * into the buffer, processBurst, the expiry: a connection's making and its end, when the
 * template's count goes up and down). Rows, ns per new connection (median of R rounds):
 * - "1 worker": every connection finds the template in its own table (the single-queue path).
 * - "2 workers, template on the other": worker 0 made the template; every connection arrives on
 *   worker 1. Before: a copy in worker 1's table, hit there. Now: a miss in its own table, the
 *   lookup in worker 0's and a compareExchange on the template's count.
 * Prints a table, then one JSON object.
 */
import { resolve } from "node:path";

const args = process.argv.slice(2);
const ri = args.indexOf("--rounds");
const ROUNDS = ri >= 0 ? Number(args[ri + 1]) : 15;
const trees = args.filter((a, i) => !a.startsWith("--") && (ri < 0 || i !== ri + 1));
if (trees.length === 0) trees.push(resolve(import.meta.dir, ".."));

const BURST = 32,
  BURSTS = 64;
const VIP = "198.18.0.100",
  CLIENT = "198.18.1.2";

/** Process CPU time in ns (microsecond resolution; a round lasts milliseconds). */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

interface Side {
  name: string;
  one: Rig;
  two: Rig;
}

interface Rig {
  /** Time (ns) to make BURST * BURSTS connections; then expire them (untimed). */
  round(): number;
}

async function load(tree: string): Promise<Side> {
  const { Harness, GATEWAY_MAC, PORT_MACS } = await import(`${tree}/test/util/harness.ts`);
  const { PacketBuilder, SYN } = await import(`${tree}/test/util/packet.ts`);
  const { Counters } = await import(`${tree}/src/stats/counters.ts`);
  const { applyPeersMessage, peersMessages } = await import(`${tree}/src/dataplane/peers.ts`);
  const abi = await import(`${tree}/src/ffi/abi.ts`);
  const setup = (h: InstanceType<typeof Harness>) => {
    h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: "rr", onePacket: false, schedFlags: [], persistence: { timeout: 86400 } });
    for (const rs of ["198.18.17.2", "198.18.17.3", "198.18.17.4"])
      h.model.addDest(
        { protocol: "tcp", address: VIP, port: 80 },
        { address: rs, port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 },
      );
    h.apply();
  };
  const syn = (sport: number): Uint8Array =>
    new PacketBuilder().eth(PORT_MACS[0], GATEWAY_MAC).ipv4({ src: CLIENT, dst: VIP }).tcp({ sport, dport: 80, flags: SYN }).build();
  // frames of ports 1024.. in bursts; ports come round again only after the connections expired
  const bursts: Uint8Array[][] = [];
  for (let b = 0; b < BURSTS; b++) bursts.push(Array.from({ length: BURST }, (_, i) => syn(1024 + b * BURST + i)));
  const rig = (n: number): Rig => {
    const shared = Counters.allocateShared();
    const hs = Array.from({ length: n }, (_, i) => new Harness({ seed: 7 + i, shared, connCapacity: 8192 }));
    for (const h of hs) setup(h);
    if (n > 1) {
      const msgs = peersMessages(hs.map((h) => h.conns.buffers));
      for (let i = 0; i < n; i++) applyPeersMessage(hs[i].fp, msgs[i]);
    }
    // the template is worker 0's
    hs[0].one(syn(60000));
    const on = hs[n - 1];
    // the frames are copied into the harness's buffer once per burst (SYNs are rewritten in
    // place: MACs only); processBurst and the expiry of the burst's connections are timed
    const { XVS_DESC_WORDS: D, XVS_DESC_ADDR, XVS_DESC_LEN, XVS_DESC_IN_PORT, XVS_DESC_OUT_PORT, XVS_OUT_DROP } = abi;
    const load = (frames: Uint8Array[]) => {
      frames.forEach((f, i) => {
        const addr = i * 4096 + 512;
        on.buf.set(f, addr);
        on.descs[i * D + XVS_DESC_ADDR] = addr;
        on.descs[i * D + XVS_DESC_LEN] = f.length;
        on.descs[i * D + XVS_DESC_IN_PORT] = 0;
        on.descs[i * D + XVS_DESC_OUT_PORT] = XVS_OUT_DROP;
      });
    };
    return {
      round(): number {
        // process CPU time, not wall time: on a loaded host wall time varies tenfold (fastpath-ab)
        const t0 = cpuNs();
        for (const frames of bursts) {
          load(frames);
          on.fp.processBurst(on.descs, BURST);
        }
        // SYN_RECV's 60 s: every connection goes, the template (a day) stays; one clock for all
        for (const h of hs) h.advance(61_000);
        return (cpuNs() - t0) / (BURST * BURSTS);
      },
    };
  };
  return { name: tree, one: rig(1), two: rig(2) };
}

const sides: Side[] = [];
for (const t of trees) sides.push(await load(t));
const rows: Record<string, number[][]> = { "1 worker": sides.map(() => []), "2 workers, template on the other": sides.map(() => []) };
for (let r = 0; r < ROUNDS + 2; r++) {
  for (let s = 0; s < sides.length; s++) {
    const one = sides[s].one.round(),
      two = sides[s].two.round();
    if (r < 2) continue; // warm-up rounds: JIT tiers
    rows["1 worker"][s].push(one);
    rows["2 workers, template on the other"][s].push(two);
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const out: Record<string, Record<string, number>> = {};
console.log(`ns per new persistent connection, median of ${ROUNDS} rounds of ${BURST * BURSTS}`);
for (const [row, per] of Object.entries(rows)) {
  out[row] = {};
  const cells = per.map((v, s) => {
    out[row][sides[s].name] = Math.round(median(v));
    return `${sides[s].name}: ${Math.round(median(v))}`;
  });
  if (per.length === 2) {
    const ratios = per[0].map((a, i) => per[1][i] / a);
    out[row].ratio = Number(median(ratios).toFixed(3));
    cells.push(`B/A ${median(ratios).toFixed(2)}`);
  }
  console.log(`${row.padEnd(34)} ${cells.join("  ")}`);
}
console.log(JSON.stringify(out));
