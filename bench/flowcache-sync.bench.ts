/**
 * What a sync master adds to the flow cache's fold (flowcache.ts "Sync master"): per cached
 * connection and fold (every FOLD_TICKS), SyncFeed.forwarded counts the client packets XDP
 * forwarded into in_pkts and runs the send rule when a sync point was crossed. CPU only, no I/O:
 *
 *   bun run bench/flowcache-sync.bench.ts [--conns N] [--rounds R]
 *
 * Rows, interleaved round by round, medians over the rounds, ns per connection and fold:
 * - "no master": forwarded() with no master daemon (returns at once), the floor of the call;
 * - "master, no point": N connections each folding 40 packets that cross no sync point
 *   (fingerprint, count, lastPoint);
 * - "master, a point each": N connections each crossing one (fingerprint, count, the send rule,
 *   a ring copy; the ring is drained between folds as the main thread does).
 * The hold (no caching before sync_threshold client packets) costs packets, not CPU: a TCP
 * connection's 3rd client packet goes through AF_XDP (cached from its 4th, not its 3rd), a UDP
 * DR/TUN connection's 2nd and 3rd.
 */
import {
  CF_NOOUTPUT,
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_TIMEOUT,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
} from "../src/conn/table.ts";
import { drainFeed, FEED_MASTER, FEED_PERIOD, FEED_THRESHOLD, newFeedBuffer, SyncFeed } from "../src/dataplane/sync-feed.ts";

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
}
const N = arg("--conns", 100_000);
const ROUNDS = arg("--rounds", 15);

const t = new ConnTable(N + 16);
const ids = new Int32Array(N);
for (let i = 0; i < N; i++) {
  const id = t.alloc();
  const o = id * CONN_WORDS;
  t.rec[o + CONN_FLAGS] = CF_USED | CF_NOOUTPUT;
  t.rec[o + CONN_PROTO_STATE] = (6 << 8) | 1; // TCP ESTABLISHED
  t.rec[o + CONN_CADDR] = (10 << 24) | i;
  t.rec[o + CONN_VADDR] = (198 << 24) | (18 << 16) | 100;
  t.rec[o + CONN_CPORT_VPORT] = ((1024 + (i % 60000)) << 16) | 80;
  t.rec[o + CONN_TIMEOUT] = 90_000;
  ids[i] = id;
}
const feed = new SyncFeed(newFeedBuffer(N * 2), t.capacity);
feed.ring[FEED_THRESHOLD] = 3;
feed.ring[FEED_PERIOD] = 50;
const fp = { conns: t, now: 1000 };

/** One fold over the N connections, `n` packets each; ns per connection. */
function fold(master: boolean, n: number): number {
  feed.ring[FEED_MASTER] = master ? 1 : 0;
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < N; i++) feed.forwarded(fp, ids[i], n);
  const ns = (Bun.nanoseconds() - t0) / N;
  drainFeed(feed.ring, () => {});
  fp.now += 100;
  return ns;
}

// in_pkts at 3 + 50k + 5 after the warm-up: 40 packets cross nothing, 50 cross one point
feed.ring[FEED_MASTER] = 1;
for (let i = 0; i < N; i++) feed.forwarded(fp, ids[i], 8);
const rows: Record<string, number[]> = { "no master": [], "master, no point": [], "master, a point each": [] };
for (let r = 0; r < ROUNDS + 2; r++) {
  const a = fold(false, 40);
  const b = fold(true, 40); // 8 -> 48: crosses no point (53 is next)
  const c = fold(true, 10); // 48 -> 58: crosses 53
  fold(true, 45); // 58 -> 103: back to just past a point
  fold(true, 5); // 103 -> 108
  fold(true, 40); // 108 -> 148, then 148 -> 8 mod 50 again: 50 more
  fold(true, 10);
  if (r < 2) continue; // warm-up
  rows["no master"].push(a);
  rows["master, no point"].push(b);
  rows["master, a point each"].push(c);
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1];
console.log(`flowcache-sync: ${N} connections, ${ROUNDS} interleaved rounds, median ns per connection per fold`);
for (const [k, v] of Object.entries(rows)) console.log(`  ${k.padEnd(22)} ${median(v).toFixed(1)}`);
console.log(JSON.stringify({ conns: N, rounds: ROUNDS, nsPerConnFold: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)])) }));
