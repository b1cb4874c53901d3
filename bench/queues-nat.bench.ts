/**
 * What finding a NAT reply's connection costs when the reply came in on another worker's queue
 * (conn/peers.ts), per packet, against the same-queue hit:
 *   hit      : lookupRow hits in the worker's own table (the single-queue path, unchanged)
 *   peer k/N : own table misses, then ConnPeers.find over the N-1 other tables hits in the k-th
 *   handoff  : candidate (c), the frame's bytes copied into another UMEM (64 / 1500 bytes) plus a
 *              ring slot written and read (before the owner's second pass over the frame)
 * Tables of `FLOWS` UDP connections each, on this thread (no contention); each its own seed,
 * or with SAME_SEED=1 one seed for all (as the dataplane gives them). Results: conn/peers.ts.
 *   [SAME_SEED=1] bun run bench/queues-nat.bench.ts [flows]
 */
import { ConnPeers } from "../src/conn/peers.ts";
import {
  CF_OUT_ENTRY,
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
} from "../src/conn/table.ts";
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS, flowMeta, hashFlow } from "../src/wire/flow.ts";

const FLOWS = Number(process.argv[2] ?? 4096);
const WORKERS = 4;
const ROUNDS = 1_000_000;

// SAME_SEED=1: every table hashes with one seed (the reply's hash from pass 1 serves every table)
const tables = Array.from({ length: WORKERS }, (_, w) => new ConnTable(FLOWS * 2, process.env.SAME_SEED === "1" ? 1000 : 1000 + w));
// worker w owns the connections of clients w, w+4, ...: real server 10.0.0.9:8080 -> client c:cport
for (let i = 0; i < FLOWS * WORKERS; i++) {
  const t = tables[i % WORKERS];
  const id = t.alloc();
  const o = id * CONN_WORDS;
  t.rec[o + CONN_FLAGS] = CF_USED | CF_OUT_ENTRY;
  t.rec[o + CONN_PROTO_STATE] = 17 << 8;
  t.rec[o + CONN_CADDR] = 0x0a010000 + i;
  t.rec[o + CONN_VADDR] = 0x0a000001;
  t.rec[o + CONN_DADDR] = 0x0a000009;
  t.rec[o + CONN_CPORT_VPORT] = (40000 << 16) | 53;
  t.rec[o + CONN_DPORT] = 8080;
  t.link(id, 0);
}
const peers = new ConnPeers(
  tables[0],
  tables.map((t) => t.buffers),
  0,
);
const f = new Int32Array(FLOW_WORDS * 64);
function replyRow(row: number, i: number): void {
  f[row + FLOW_META] = flowMeta(4, 17, 0);
  f[row + FLOW_SRC] = 0x0a000009;
  f[row + FLOW_DST] = 0x0a010000 + i;
  f[row + FLOW_PORTS] = (8080 << 16) | 40000;
}

const own = tables[0];
const seed = own.seedConn;
// candidate (c): copy the frame into the owner's UMEM and pass its address through a ring
const umemA = new Uint8Array(4096 * 64),
  umemB = new Uint8Array(4096 * 64);
const ring = new Int32Array(new SharedArrayBuffer(1024 * 4 + 8));
// views made here, not per packet (a frame's bytes as one typed-array view per slot and length)
const views64 = Array.from({ length: 64 }, (_, k) => umemA.subarray(k * 4096 + 512, k * 4096 + 576));
const views1500 = Array.from({ length: 64 }, (_, k) => umemA.subarray(k * 4096 + 512, k * 4096 + 2012));
let tail = 0,
  head = 0;

/** One packet of workload `kind`: 0 own hit, 1..3 reply held by the k-th other table, 4/5 hand-off of 64/1500 bytes. */
function step(kind: number, i: number): number {
  if (kind <= 3) {
    replyRow(0, ((i * 4 + kind) % (FLOWS * WORKERS)) | 0);
    const h = hashFlow(seed, f, 0);
    const r = own.lookupRow(h, f, 0);
    return r >= 0 || kind === 0 ? r : peers.find(h, seed, f, 0);
  }
  const dst = ((i + 7) & 63) * 4096 + 512;
  umemB.set(kind === 4 ? views64[i & 63] : views1500[i & 63], dst);
  ring[2 + (tail & 1023)] = dst;
  Atomics.store(ring, 0, ++tail);
  const t = Atomics.load(ring, 0);
  let got = 0;
  while (head !== t) got = ring[2 + (head++ & 1023)];
  Atomics.store(ring, 1, head);
  return got;
}

const NAMES = [
  "hit (own table)",
  "peer 1/3 (miss + find)",
  "peer 2/3 (miss + find)",
  "peer 3/3 (miss + find)",
  "handoff copy 64 B + ring",
  "handoff copy 1500 B + ring",
];
// warm up every kind first (one JIT state for all), then time each; best of 3 runs
for (let k = 0; k < NAMES.length; k++) for (let i = 0; i < ROUNDS / 4; i++) step(k, i);
for (let k = 0; k < NAMES.length; k++) {
  let best = Infinity,
    sink = 0;
  for (let run = 0; run < 3; run++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < ROUNDS; i++) sink ^= step(k, i);
    best = Math.min(best, (Bun.nanoseconds() - t0) / ROUNDS);
  }
  console.log(`${NAMES[k].padEnd(28)} ${best.toFixed(1).padStart(6)} ns/packet  (${sink & 1})`);
}
