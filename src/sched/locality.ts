/**
 * The address caches of lblc and lblcr (ip_vs_lblc.c, ip_vs_lblcr.c): per service, destination
 * address -> dest (lblc) or -> a small set of dests (lblcr), with each entry's last use. Built
 * once per service by the scheduler's `init` as fixed typed arrays (open addressing, linear
 * probing, backward-shift deletion), so scheduling never allocates.
 *
 * Ageing follows the kernel's periodic check (every 60 s): every 30th check removes entries
 * unused for the expiration time (lblc_expiration / lblcr_expiration, 24 h by default); the
 * other checks, only while the table holds more than 16384 entries, remove entries idle for
 * 6 minutes until 4/3 of the excess is gone. The kernel runs that check from a timer; here the
 * checks due run, with the same arithmetic and at the times the timer would have, when the next
 * connection is scheduled, which nothing between two connections can tell apart.
 *
 * Bound: the kernel's table only grows (allocation failure aside); this one holds at most
 * LOCALITY_MAX_ENTRIES. When full, the dest is still chosen but not cached, which is what the
 * kernel does when it cannot allocate an entry ("we'll just use the valid dest").
 *
 * Shared by all workers, as the kernel has one cache per service: on the dataplane a table
 * lives in the locality pool, a growable SharedArrayBuffer every worker holds
 * (stats/counters.ts SharedCountBuffers.locality; its length is shared, so a table one worker
 * carves out is visible to all), and each worker wraps it in its own LocalityTable views.
 * Every field, the scalars included (header words), is in that memory, and every use is under
 * the service's lock (the scheduler runs under it). A table is carved out by the scheduler's
 * init (under the lock) and kept by the service id (re-zeroed by the next init); a full pool
 * (LOCALITY_POOL_MAX) leaves a service with per-worker tables, as before.
 */
import { TICKS_PER_SEC } from "../service/clock.ts";
import { hashTuple } from "../wire/flow.ts";
import { LOCALITY_POOL_HEADER, LP_BUMP, LP_LOCK, SL_LOC_OFF, SL_LOC_WIDTH, SL_WORDS } from "../stats/counters.ts";

/** Slots per table (a power of two). */
export const LOCALITY_SLOTS = 32768;
/** Most entries per table (load 0.75). */
export const LOCALITY_MAX_ENTRIES = 24576;
/** Size above which the 60-s check starts evicting idle entries (tbl->max_size = TAB_SIZE * 16). */
export const LOCALITY_SOFT_MAX = 1024 * 16;
/** CHECK_EXPIRE_INTERVAL, ticks. */
export const CHECK_INTERVAL_TICKS = 60 * TICKS_PER_SEC;
/** ENTRY_TIMEOUT: idle time after which an entry may be evicted from a full table, ticks. */
export const ENTRY_TIMEOUT_TICKS = 6 * 60 * TICKS_PER_SEC;
/** DEFAULT_EXPIRATION (lblc_expiration, lblcr_expiration): 24 h, ticks. */
export const DEFAULT_EXPIRATION_TICKS = 24 * 60 * 60 * TICKS_PER_SEC;
/** COUNT_FOR_FULL_EXPIRATION: every 30th check is a full one. */
const COUNT_FOR_FULL_EXPIRATION = 30;
/** Members of an lblcr set (the kernel's sets may hold every dest of the service; sets are rarely larger than 2). */
export const SET_MAX = 8;

const MASK = LOCALITY_SLOTS - 1;
const SEED = 0x2c1b3c6d;

/** Header words of a table: count, periodic check state (ip_vs_lblc_table), 16 words (a cache line). */
const H_COUNT = 0,
  H_LAST_CHECK = 1,
  H_COUNTER = 2,
  H_ROVER = 3,
  HEADER_BYTES = 64;

/** An address cache. `width` = int32 words of payload per entry (1 for lblc; the set for lblcr). */
export class LocalityTable {
  /** Address words of each slot. */
  readonly key: Int32Array;
  /** 1 when the slot holds an entry. */
  readonly used: Uint8Array;
  /** Last use, ticks. */
  readonly lastuse: Int32Array;
  /** Payload: lblc: [dest]; lblcr: [size, lastmod, members * SET_MAX] (members newest first). */
  readonly data: Int32Array;
  /** count, lastCheck, counter, rover. */
  private readonly hdr: Int32Array;

  /** Bytes of a table of `width` (in a pool: header, keys, last uses, payload, used flags). */
  static bytes(width: number): number {
    return HEADER_BYTES + LOCALITY_SLOTS * (16 + 4 + 4 * width + 1);
  }

  /**
   * A table over `buf` from byte `off` (a pool's memory, zeroed or in use), or over memory of
   * its own (no `buf`: a new, empty table started at `now`).
   */
  constructor(
    readonly width: number,
    now: number,
    buf?: ArrayBufferLike,
    readonly offset = 0,
  ) {
    const own = buf === undefined;
    const b = buf ?? new ArrayBuffer(LocalityTable.bytes(width));
    let o = offset;
    this.hdr = new Int32Array(b, o, HEADER_BYTES / 4);
    o += HEADER_BYTES;
    this.key = new Int32Array(b, o, LOCALITY_SLOTS * 4);
    o += LOCALITY_SLOTS * 16;
    this.lastuse = new Int32Array(b, o, LOCALITY_SLOTS);
    o += LOCALITY_SLOTS * 4;
    this.data = new Int32Array(b, o, LOCALITY_SLOTS * width);
    o += LOCALITY_SLOTS * 4 * width;
    this.used = new Uint8Array(b, o, LOCALITY_SLOTS);
    if (own) this.reset(now);
  }

  /** Empty the table and start its periodic checks at `now` (init_service). */
  reset(now: number): void {
    this.key.fill(0);
    this.lastuse.fill(0);
    this.data.fill(0);
    this.used.fill(0);
    this.hdr.fill(0);
    this.hdr[H_LAST_CHECK] = now;
    this.hdr[H_COUNTER] = 1;
  }

  get count(): number {
    return this.hdr[H_COUNT];
  }
  set count(n: number) {
    this.hdr[H_COUNT] = n;
  }
  /** Periodic check state: time of the last check, its counter and rover (ip_vs_lblc_table). */
  get lastCheck(): number {
    return this.hdr[H_LAST_CHECK];
  }
  set lastCheck(n: number) {
    this.hdr[H_LAST_CHECK] = n;
  }
  get counter(): number {
    return this.hdr[H_COUNTER];
  }
  set counter(n: number) {
    this.hdr[H_COUNTER] = n;
  }
  get rover(): number {
    return this.hdr[H_ROVER];
  }
  set rover(n: number) {
    this.hdr[H_ROVER] = n;
  }

  private home(a0: number, a1: number, a2: number, a3: number): number {
    return hashTuple(SEED, a0, a1, a2, a3, 0, 0, 0, 0, 0, 0) & MASK;
  }

  /** Return the slot of an address, or -1. */
  find(a0: number, a1: number, a2: number, a3: number): number {
    const k = this.key,
      u = this.used;
    let i = this.home(a0, a1, a2, a3);
    for (let probes = 0; probes < LOCALITY_SLOTS; probes++) {
      if (u[i] === 0) return -1;
      const o = i * 4;
      if (k[o] === a0 && k[o + 1] === a1 && k[o + 2] === a2 && k[o + 3] === a3) return i;
      i = (i + 1) & MASK;
    }
    return -1;
  }

  /** Add an address (absent) and return its slot, or -1 when the table is full. */
  insert(a0: number, a1: number, a2: number, a3: number, now: number): number {
    if (this.count >= LOCALITY_MAX_ENTRIES) return -1;
    let i = this.home(a0, a1, a2, a3);
    while (this.used[i] !== 0) i = (i + 1) & MASK;
    const o = i * 4;
    this.key[o] = a0;
    this.key[o + 1] = a1;
    this.key[o + 2] = a2;
    this.key[o + 3] = a3;
    this.used[i] = 1;
    this.lastuse[i] = now;
    this.count++;
    return i;
  }

  /** Remove the entry in slot `i` (backward shift: later entries of its cluster move up). */
  remove(i: number): void {
    const k = this.key,
      u = this.used,
      w = this.width,
      dt = this.data;
    let hole = i,
      j = i;
    for (;;) {
      j = (j + 1) & MASK;
      if (u[j] === 0) break;
      const o = j * 4;
      const home = this.home(k[o], k[o + 1], k[o + 2], k[o + 3]);
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        k.copyWithin(hole * 4, o, o + 4);
        dt.copyWithin(hole * w, j * w, j * w + w);
        this.lastuse[hole] = this.lastuse[j];
        hole = j;
      }
    }
    u[hole] = 0;
    this.count--;
  }

  /** Remove, starting after the rover, entries whose last use is at least `idleTicks` old; stop once `goal` are gone. */
  private sweep(now: number, idleTicks: number, goal: number): void {
    let j = this.rover;
    for (let n = 0; n < LOCALITY_SLOTS; n++) {
      j = (j + 1) & MASK;
      // a removal shifts the next entry into slot j: look at j again
      while (this.used[j] !== 0 && ((now - this.lastuse[j]) | 0) >= idleTicks) {
        this.remove(j);
        goal--;
      }
      if (goal <= 0) break;
    }
    this.rover = j;
  }

  /** Run the periodic checks due by `now` (ip_vs_lblc_check_expire), `expirationTicks` for full checks. */
  age(now: number, expirationTicks: number): void {
    let due = Math.floor(((now - this.lastCheck) | 0) / CHECK_INTERVAL_TICKS);
    // one check at a time while partial checks can act (above the soft maximum; each shrinks the table)
    while (due > 0 && this.count > LOCALITY_SOFT_MAX) {
      this.lastCheck = (this.lastCheck + CHECK_INTERVAL_TICKS) | 0;
      this.check(this.lastCheck, expirationTicks);
      due--;
    }
    if (due <= 0) return;
    // below it only the full checks act, and since no entry is used in between, a run of them
    // acts as its last one: find when that was, as the kernel's counter would have it
    const first = ((COUNT_FOR_FULL_EXPIRATION - (this.counter % COUNT_FOR_FULL_EXPIRATION)) % COUNT_FOR_FULL_EXPIRATION) + 1;
    if (due >= first) {
      const last = first + Math.floor((due - first) / COUNT_FOR_FULL_EXPIRATION) * COUNT_FOR_FULL_EXPIRATION;
      this.sweep((this.lastCheck + last * CHECK_INTERVAL_TICKS) | 0, expirationTicks, LOCALITY_SLOTS);
      this.counter = 1 + (due - last);
    } else {
      this.counter += due;
    }
    this.lastCheck = (this.lastCheck + due * CHECK_INTERVAL_TICKS) | 0;
  }

  /** One periodic check at time `t`. */
  private check(t: number, expirationTicks: number): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      this.sweep(t, expirationTicks, LOCALITY_SLOTS);
      this.counter = 1;
    } else if (this.count <= LOCALITY_SOFT_MAX) {
      this.counter++;
    } else {
      const goal = Math.min(Math.trunc(((this.count - LOCALITY_SOFT_MAX) * 4) / 3), LOCALITY_SOFT_MAX / 2);
      this.sweep(t, ENTRY_TIMEOUT_TICKS, goal);
    }
  }
}

/** The locality pool as a worker sees it: the pool and the service lines (stats/counters.ts). */
export interface LocalityPool {
  pool: SharedArrayBuffer;
  lines: Int32Array;
}

/**
 * Carve out, or re-zero, service `svc`'s shared table of `width` (the scheduler's init, under
 * the service's lock). Returns false when the pool is full (the service keeps per-worker tables).
 */
export function initSharedTable(p: LocalityPool, svc: number, width: number, now: number): boolean {
  const line = svc * SL_WORDS;
  let off = p.lines[line + SL_LOC_OFF] - 1;
  if (off < 0 || p.lines[line + SL_LOC_WIDTH] !== width) {
    off = carve(p.pool, LocalityTable.bytes(width));
    p.lines[line + SL_LOC_OFF] = off + 1;
    p.lines[line + SL_LOC_WIDTH] = off < 0 ? 0 : width;
    if (off < 0) return false;
  }
  new LocalityTable(width, now, p.pool, off).reset(now);
  return true;
}

/** The byte offset of `svc`'s shared table of `width`, or -1 (none: per-worker tables). */
export function sharedTableOffset(p: LocalityPool, svc: number, width: number): number {
  const line = svc * SL_WORDS;
  return p.lines[line + SL_LOC_WIDTH] === width ? p.lines[line + SL_LOC_OFF] - 1 : -1;
}

/** Take `bytes` from the pool (growing it), under the pool's own lock word; -1 when full. */
function carve(pool: SharedArrayBuffer, bytes: number): number {
  const h = new Int32Array(pool, 0, LOCALITY_POOL_HEADER / 4);
  while (Atomics.compareExchange(h, LP_LOCK, 0, 1) !== 0) {}
  try {
    const at = Math.max(h[LP_BUMP], LOCALITY_POOL_HEADER);
    const end = at + bytes;
    if (end > pool.maxByteLength) return -1;
    if (end > pool.byteLength) pool.grow(end);
    h[LP_BUMP] = end;
    return at;
  } finally {
    Atomics.store(h, LP_LOCK, 0);
  }
}
