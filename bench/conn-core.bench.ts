/**
 * CPU benchmark of the connection core, no I/O: frames already in memory go through
 * the real FastPath.processBurst on one core.
 *
 *   bun run bench/conn-core.bench.ts [--conns N] [--burst B] [--rounds R]
 *
 * Rows:
 * - "new conns (SCHED)": SYNs of N distinct clients: parse (classify), hash, connection lookup
 *   (a miss), service lookup, scheduling with SCHED over 8 real servers, connection insert and
 *   counting, then the NAT rewrite (addresses, checksums, TTL, MACs). The table has room to
 *   spare, so the SYN-flood defence stays idle.
 * - "lookups (1M conns), packets": ACKs of random existing connections among N established
 *   ones in a table of exactly N records, through processBurst: lookup hit, TCP state, counters,
 *   NAT rewrite.
 * - "lookups (1M conns), table": ConnTable.lookup alone, in bursts like the fast path's pass 1
 *   (hash all, touch every slot, then look up), over random existing connections.
 * - "copy baseline": refreshing the frames from a pristine copy, which the packet rows include
 *   (processBurst rewrites frames in place).
 * Memory per tracked connection: the table's buffers divided by its capacity, and the RSS growth
 * measured while N connections were created. Prints a table, then one JSON object.
 */
import * as abi from "../src/ffi/abi.ts";
import { FLOW_WORDS, hashFlow } from "../src/wire/flow.ts";
import { Classified, classify } from "../src/dataplane/classify.ts";
import { FRAME_SIZE, HEADROOM, Harness } from "../test/util/harness.ts";
import { ACK, PacketBuilder, SYN } from "../test/util/packet.ts";
import { SCHEDULERS } from "../src/control/schemas.ts";
import { CONN_WORDS, type ConnTable } from "../src/conn/table.ts";
import type { FastPath } from "../src/dataplane/fastpath.ts";
import { adviseHugePages } from "../src/ffi/mem.ts";

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
}
const N = arg("--conns", 1 << 20);
const BURST = Math.min(arg("--burst", 64), abi.XVS_MAX_BURST);
const ROUNDS = arg("--rounds", 3);
const VIP = "198.18.0.100";
const D = abi.XVS_DESC_WORDS;

/** N template frames (client i = address 10.x.y.z, port 1024 + i % 60000) for `flags`, packed FRAME_BYTES apart. */
const FRAME_BYTES = 64;
function frames(flags: number): Uint8Array {
  const t = new PacketBuilder()
    .eth("02:00:00:00:0a:00", "02:00:00:00:00:fe")
    .ipv4({ src: "10.0.0.1", dst: VIP })
    .tcp({ sport: 1024, dport: 80, flags })
    .build();
  const out = new Uint8Array(N * FRAME_BYTES);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < N; i++) {
    const o = i * FRAME_BYTES;
    out.set(t, o);
    const client = (0x0a000000 | (Math.floor(i / 60000) + 1)) >>> 0;
    dv.setUint32(o + 26, client);
    dv.setUint16(o + 34, 1024 + (i % 60000));
    // IPv4 header checksum over the changed source
    dv.setUint16(o + 24, 0);
    let s = 0;
    for (let k = 0; k < 20; k += 2) s += dv.getUint16(o + 14 + k);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    dv.setUint16(o + 24, ~s & 0xffff);
  }
  return out;
}

const FLEN = 54;
/** Word views of the frame sources and the burst buffers (copies without allocation). */
const words = new Map<ArrayBufferLike, Int32Array>();
function w32(b: Uint8Array): Int32Array {
  let v = words.get(b.buffer);
  if (!v) {
    v = new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
    words.set(b.buffer, v);
  }
  return v;
}

/** Copy frames[order[from..from+n)] into the burst slots: 14 words each. */
function copyOnly(dst: Int32Array, descs: Uint32Array, src: Int32Array, order: Int32Array | null, from: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const k = order ? order[from + i] : from + i;
    const addr = i * FRAME_SIZE + HEADROOM;
    const s = (k * FRAME_BYTES) >> 2,
      d = addr >> 2;
    for (let j = 0; j < 14; j++) dst[d + j] = src[s + j];
    descs[i * D + abi.XVS_DESC_ADDR] = addr;
    descs[i * D + abi.XVS_DESC_LEN] = FLEN;
    descs[i * D + abi.XVS_DESC_IN_PORT] = 0;
  }
}

/** Push frames[order[from..from+n)] through one burst. */
function burst(fp: FastPath, buf: Uint8Array, descs: Uint32Array, src: Uint8Array, order: Int32Array | null, from: number, n: number): void {
  copyOnly(w32(buf), descs, w32(src), order, from, n);
  fp.processBurst(descs, n);
}

function shuffled(n: number, seed: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let x = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/**
 * Look up every parsed key, a burst at a time as the fast path does: hash the burst and touch
 * each index slot (their cache misses overlap), then look each up. Returns the number found.
 * (In a function: JSC compiles loops in module top-level code far less well.)
 */
function tableLookups(conns: ConnTable, keys: Int32Array, hashes: Int32Array, index: Int32Array, mask: number): number {
  let found = 0,
    sink = 0;
  for (let i = 0; i < N; i += BURST) {
    const n = Math.min(BURST, N - i);
    for (let k = 0; k < n; k++) {
      const hsh = hashFlow(conns.seedConn, keys, (i + k) * FLOW_WORDS);
      hashes[k] = hsh;
      sink ^= index[hsh & mask];
    }
    for (let k = 0; k < n; k++) {
      const o = (i + k) * FLOW_WORDS;
      if (conns.lookup(hashes[k], 0, keys[o + 1], 0, 0, 0, keys[o + 5], 0, 0, 0, keys[o + 9], 6) >= 0) found++;
    }
  }
  return sink === 0x7fffffff ? found + 1 : found;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: { name: string; mpps: number; note: string }[] = [];
const gc = () => Bun.gc(true);

const syns = frames(SYN),
  acks = frames(ACK);
const descs = new Uint32Array(abi.XVS_MAX_BURST * D);

// the ACKs in a random order of their connections, laid out one after the other as a burst's
// frames arrive (the random access is in the connection table, not in the frame source)
const order = shuffled(N, 11);
const acksRandom = new Uint8Array(N * FRAME_BYTES);
for (let i = 0; i < N; i++) acksRandom.set(acks.subarray(order[i] * FRAME_BYTES, (order[i] + 1) * FRAME_BYTES), i * FRAME_BYTES);

// ---- copy baseline ----
{
  const buf = new Uint8Array(abi.XVS_MAX_BURST * FRAME_SIZE);
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i += BURST) copyOnly(w32(buf), descs, w32(acksRandom), null, i, Math.min(BURST, N - i));
    times.push(performance.now() - t0);
  }
  rows.push({ name: "copy baseline (frame refresh)", mpps: N / median(times) / 1000, note: "54-byte frames into burst slots" });
}

/** A NAT fast path (next hops known) over 8 real servers with weights 1..8. */
function natPath(scheduler: string, capacity: number): Harness {
  const h = new Harness(capacity);
  // as the daemon does (dataplane.ts): huge pages under the table before its first touch
  adviseHugePages(h.conns.buffers.records);
  adviseHugePages(h.conns.buffers.index);
  h.model.addService({ protocol: "tcp", address: VIP, port: 80, scheduler: scheduler as "wlc", onePacket: false, schedFlags: [] });
  for (let i = 1; i <= 8; i++)
    h.model.addDest(
      { protocol: "tcp", address: VIP, port: 80 },
      { address: `198.18.2.${10 + i}`, forward: "masq", weight: i, upperThreshold: 0, lowerThreshold: 0 },
    );
  h.apply();
  return h;
}

// ---- new connections per scheduler (room to spare: the SYN-flood defence stays idle) ----
for (const sched of ["rr", "wlc", "mh", "lblc"]) {
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    gc();
    const h = natPath(sched, N + (N >> 3) + 1024);
    const t0 = performance.now();
    for (let i = 0; i < N; i += BURST) burst(h.fp, h.buf, descs, syns, null, i, Math.min(BURST, N - i));
    times.push(performance.now() - t0);
    if (h.conns.size !== N || h.stats().fwd_in !== N) throw new Error(`${sched}: ${h.conns.size} connections, ${h.stats().fwd_in} forwarded of ${N}`);
  }
  rows.push({ name: `new conns (${sched})`, mpps: N / median(times) / 1000, note: "classify+lookup miss+schedule+insert+DNAT" });
}

// ---- N established connections in a table of exactly N records: lookups, memory ----
let memory = { tableBytesPerConn: 0, rssBytesPerConn: 0 };
{
  gc();
  const rss0 = process.memoryUsage().rss;
  const h = natPath("wlc", N);
  const fp = h.fp;
  // SYN then ACK of each client in the same burst: every connection is ESTABLISHED at once
  const pair = new Uint8Array(2 * FRAME_BYTES * BURST);
  for (let i = 0; i < N; i += BURST / 2) {
    const n = Math.min(BURST / 2, N - i);
    for (let k = 0; k < n; k++) {
      pair.set(syns.subarray((i + k) * FRAME_BYTES, (i + k + 1) * FRAME_BYTES), 2 * k * FRAME_BYTES);
      pair.set(acks.subarray((i + k) * FRAME_BYTES, (i + k + 1) * FRAME_BYTES), (2 * k + 1) * FRAME_BYTES);
    }
    burst(fp, h.buf, descs, pair, null, 0, 2 * n);
  }
  if (h.conns.size !== N) throw new Error(`fill: ${h.conns.size} of ${N} connections (${JSON.stringify(h.stats())})`);
  const b = h.conns.buffers;
  gc();
  memory = { tableBytesPerConn: (b.records.byteLength + b.index.byteLength + fp.synGuard.bytes) / N, rssBytesPerConn: (process.memoryUsage().rss - rss0) / N };

  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i += BURST) burst(fp, h.buf, descs, acksRandom, null, i, Math.min(BURST, N - i));
    times.push(performance.now() - t0);
  }
  if (h.stats().new_conns !== N || h.conns.size !== N) throw new Error("lookups created connections");
  rows.push({ name: `lookups (${N} conns), packets`, mpps: N / median(times) / 1000, note: "processBurst: parse + hit + state + DNAT, random flows" });

  // table lookups alone, burst-shaped: hash + touch a burst, then look it up
  const l3 = new Int32Array(BURST),
    hashes = new Int32Array(BURST);
  const dv = new DataView(acksRandom.buffer);
  const conns = h.conns,
    index = conns.index,
    mask = index.length - 1;
  // the parsed keys of the randomly ordered ACKs, as pass 1 leaves them in the flow rows
  const keys = new Int32Array(N * FLOW_WORDS);
  for (let i = 0; i < N; i++) {
    if (classify(acksRandom, dv, i * FRAME_BYTES, FLEN, keys, i * FLOW_WORDS, l3, 0) !== Classified.Continue) throw new Error("bad frame");
  }
  const lt: number[] = [];
  let found = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    found += tableLookups(conns, keys, hashes, index, mask);
    lt.push(performance.now() - t0);
  }
  if (found !== N * ROUNDS) throw new Error(`lookups found ${found} of ${N * ROUNDS}`);
  rows.push({ name: `lookups (${N} conns), table`, mpps: N / median(lt) / 1000, note: "hash + touch + ConnTable.lookup, random flows" });
}

const w = Math.max(...rows.map((r) => r.name.length));
console.log(`conn-core: ${N} connections, burst ${BURST}, median of ${ROUNDS}, one core (bun ${Bun.version})`);
console.log(`${"row".padEnd(w)}  ${"Mpps".padStart(6)}  what`);
for (const r of rows) console.log(`${r.name.padEnd(w)}  ${r.mpps.toFixed(2).padStart(6)}  ${r.note}`);
console.log(
  `memory per tracked connection: ${memory.tableBytesPerConn.toFixed(1)} bytes in the connection table (record ${CONN_WORDS * 4} + index + the SYN-flood ring; free records chain through themselves); RSS growth while filling ${memory.rssBytesPerConn.toFixed(1)} bytes (includes the fast path's own per-record arrays)`,
);
console.log(
  JSON.stringify({
    command: `bun run bench/conn-core.bench.ts --conns ${N} --burst ${BURST} --rounds ${ROUNDS}`,
    date: new Date().toISOString(),
    bun: Bun.version,
    cpu: (await Bun.file("/proc/cpuinfo").text()).match(/model name\s*:\s*(.*)/)?.[1] ?? "?",
    conns: N,
    burst: BURST,
    rounds: ROUNDS,
    mpps: Object.fromEntries(rows.map((r) => [r.name, Number(r.mpps.toFixed(3))])),
    memory: { tableBytesPerConn: Number(memory.tableBytesPerConn.toFixed(1)), rssBytesPerConn: Number(memory.rssBytesPerConn.toFixed(1)) },
    targets: { lookupMppsAt1M: 10, bytesPerConn: 128 },
    schedulers: SCHEDULERS.length,
  }),
);
