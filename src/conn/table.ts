/**
 * Connection table: records in one Int32Array (CONN_WORDS per connection), an open-addressing
 * index over them, and a timer wheel. Owned and written by one dataplane worker; the control
 * plane may read the records (listing) through the same SharedArrayBuffers.
 *
 * Index: linear probing over Int32 entries `tag7 << 25 | (id + 1) << 1 | dir`, 0 = empty,
 * deletion by backward shift (no tombstones, so probe lengths never degrade). Each connection
 * has an IN entry keyed by the client's packet (caddr:cport -> vaddr:vport) and, for NAT, an
 * OUT entry keyed by the real server's reply (daddr:dport -> caddr:cport). Templates
 * (persistence) have one TEMPLATE entry, hashed with another seed.
 *
 * Expiry: each connection sits in one slot of a wheel of 1-second slots. A packet only moves
 * CONN_EXPIRES forward (one store); when the slot comes round, a connection whose deadline has
 * moved is re-filed instead of expired. A deadline moved *earlier* (a shorter state timeout)
 * re-files it at once (`rearm`). So no batch ever scans the table.
 *
 * Memory per connection: CONN_WORDS * 4 = 108 bytes of record + 2 index entries at load <= 0.5
 * (16 bytes) = 124 bytes; free records are chained through the record itself.
 *
 * Several workers (conn/peers.ts): every worker looks up the other workers' tables when its own
 * misses, through a read-only *view* (`ConnTable.view`) of their buffers. The owner stays the
 * only writer of its index, wheel, free list, flags and counters. For its readers it brackets
 * every index change with an odd/even sequence word (HDR_SEQ, a seqlock), so a reader that saw
 * the word move retries instead of trusting a probe that crossed a backward shift; the hash
 * seeds live in the header, so a view hashes as the owner does. A view writes only a
 * connection's state word (compareExchange), its timeout and deadline; when that moves the
 * deadline earlier or changes the state, it posts the id to the owner's request ring (one
 * single-producer ring per worker), and the owner re-files the record and brings flags and
 * counters in line (`drainRequests`, between bursts). A shared table reuses the oldest freed
 * record first, and only once REUSE_DELAY others were freed after it (while records never used
 * remain), so a reader that matched a record just before its release reads the old connection's
 * words, not a new one's half-written ones (and sees CF_USED cleared: no hit).
 */
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS, flowMeta, hashTuple } from "../wire/flow.ts";
import { TICKS_PER_SEC } from "../service/clock.ts";

// ---- record layout (int32 words) ----
/** Flags: CF_* below. */
export const CONN_FLAGS = 0;
/** proto << 8 | state. */
export const CONN_PROTO_STATE = 1;
/** Client address (4 words). For templates: the masked client network. */
export const CONN_CADDR = 2;
/** Virtual address (4 words). For fwmark templates: the mark. */
export const CONN_VADDR = 6;
/** Real server address (4 words). */
export const CONN_DADDR = 10;
/** cport << 16 | vport. */
export const CONN_CPORT_VPORT = 14;
/** dport (low 16 bits). */
export const CONN_DPORT = 15;
/** Service id. */
export const CONN_SVC = 16;
/** Real server (dest) id. */
export const CONN_DEST = 17;
/** Deadline in ticks (wrapping int32; compare with `(a - b) | 0`). */
export const CONN_EXPIRES = 18;
/** Timeout of the current state, in ticks. */
export const CONN_TIMEOUT = 19;
/** Wheel list links (id + 1, 0 = none) and the slot the record is filed in (-1 = none). */
export const CONN_WHEEL_NEXT = 20;
export const CONN_WHEEL_PREV = 21;
export const CONN_WHEEL_SLOT = 22;
/** Connection: its template's id + 1 (0 = none). Template: how many connections it controls. */
export const CONN_CONTROL = 23;
/** Next hop towards the client for NAT replies: >= 0 a next-hop id, < 0 `~port` (fallback MAC below). */
export const CONN_NEXTHOP = 24;
/** Fallback MAC towards the client (the frame's source MAC when no neighbour entry was known). */
export const CONN_MAC_HI = 25;
export const CONN_MAC_LO = 26;
export const CONN_WORDS = 27;

// ---- flags ----
/** Forwarding method, low 3 bits (IPVS IP_VS_CONN_F_FWD_MASK values: 0 masq, 1 local, 2 tunnel, 3 route). */
export const CF_FWD_MASK = 0x7;
/** Record in use. */
export const CF_USED = 0x8;
/** IPv6 client side. */
export const CF_V6 = 0x10;
/** NAT: has an OUT index entry. */
export const CF_OUT_ENTRY = 0x20;
/** Counted in InActConn (IPVS IP_VS_CONN_F_INACTIVE). */
export const CF_INACTIVE = 0x100;
/** No reply seen through us (DR/TUN): TCP uses the INPUT_ONLY table (IP_VS_CONN_F_NOOUTPUT). */
export const CF_NOOUTPUT = 0x80;
/** Persistence template (IP_VS_CONN_F_TEMPLATE). */
export const CF_TEMPLATE = 0x1000;
/** Template: a controlled connection got established (IP_VS_CTPL_S_ASSURED shown as ASSURED). */
export const CF_ASSURED = 0x10000;
/** Real server address is IPv6 (a v4 service may tunnel to a v6 real server). */
export const CF_DEST_V6 = 0x20000;

/** Index entry direction: the client's packets. */
export const DIR_IN = 0;
/** Index entry direction: the real server's replies (NAT). */
export const DIR_OUT = 1;

/** Return a record's IP protocol (templates: 0 for fwmark ones). */
export function connProto(rec: Int32Array, o: number): number {
  return (rec[o + CONN_PROTO_STATE] >>> 8) & 0xff;
}

/** Return a record's protocol state (conn/state.ts S_*). */
export function connState(rec: Int32Array, o: number): number {
  return rec[o + CONN_PROTO_STATE] & 0xff;
}

// ---- index entries: `tag7 << 25 | (id + 1) << 1 | dir`, 0 = empty ----

/** Return the index entry of connection `id`'s `dir` side whose key hashes to `hash`. */
function makeEntry(hash: number, id: number, dir: number): number {
  return ((hash >>> 25) << 25) | ((id + 1) << 1) | dir;
}

/** Return the tag of an entry (the top 7 bits of its key's hash): most probes that miss stop at it. */
function entryTag(e: number): number {
  return e >>> 25;
}

/** Return the connection id of a (non-empty) entry. */
function entryId(e: number): number {
  return ((e >>> 1) & 0xffffff) - 1;
}

/** Return the direction (DIR_IN / DIR_OUT) of an entry. */
function entryDir(e: number): number {
  return e & 1;
}

// ---- lookup results: `id << 1 | dir`, -1 = none (also what FragTable keeps) ----

/** Return the connection id of a lookup hit. */
export function hitId(r: number): number {
  return r >> 1;
}

/** Return the direction (DIR_IN / DIR_OUT) of a lookup hit. */
export function hitDir(r: number): number {
  return r & 1;
}

/** Ticks per second: the table's clock runs in 10 ms ticks (service/clock.ts, shared with the compiler). */
export { TICKS_PER_SEC };
/** Wheel slots (one second each); deadlines further out are re-filed when their slot comes. */
const WHEEL_SLOTS = 4096;
const WHEEL_MASK = WHEEL_SLOTS - 1;
/** Largest conn id the index entry can hold (24 bits). */
export const MAX_CONNS_LIMIT = (1 << 24) - 2;

/** Shared buffers of one table, passed from the worker to the control plane for listing. */
export interface ConnTableBuffers {
  records: SharedArrayBuffer;
  index: SharedArrayBuffer;
  /** [0] live count, [1] templates, [2] high-water id, [3] epoch ms (as two halves: see epochMs) */
  header: SharedArrayBuffer;
  /** Requests from other workers' views (re-file / reconcile a record): REQ_PRODUCERS rings. */
  requests: SharedArrayBuffer;
  capacity: number;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Header words. */
export const HDR_LIVE = 0;
export const HDR_TEMPLATES = 1;
export const HDR_HIGH = 2;
/** Index sequence word: odd while the owner changes the index (only when shared). */
export const HDR_SEQ = 8;
/** The hash seeds (connections, templates) and whether they are set (1). */
export const HDR_SEED = 9;
export const HDR_SEED_TPL = 10;
export const HDR_SEEDED = 11;
const HDR_WORDS = 16;

/** Shared tables: freed records younger than this many others are not reused while fresh ones remain. */
const REUSE_DELAY = 1024;
/** Request rings per table: one per producing worker (the worker index is its slot). */
export const REQ_PRODUCERS = 64;
/** Entries per request ring (a full ring loses the request: the record is then re-filed late, at its old slot). */
const REQ_RING = 256;
const REQ_MASK = REQ_RING - 1;
/** Ring words: [0] tail (producer), [1] head (owner), then the entries (id + 1). */
const REQ_STRIDE = REQ_RING + 2;

/**
 * A connection table. Methods used per packet (`lookup*`, `touch`) do not allocate.
 */
export class ConnTable {
  readonly capacity: number;
  readonly rec: Int32Array;
  readonly index: Int32Array;
  readonly header: Int32Array;
  private readonly mask: number;
  /** Free records released so far form a chain through CONN_WHEEL_NEXT (id + 1, 0 = end): no
   * free-list array, and nothing to initialise (records never used are taken in id order). */
  private freeHead = 0;
  /** Last free record (id + 1, 0 = none): a shared table reuses the oldest freed record first. */
  private freeTail = 0;
  /** Records in the free chain. */
  private freeLen = 0;
  private fresh = 0;
  private nfree: number;
  private readonly wheel = new Int32Array(WHEEL_SLOTS);
  /** Last wheel second processed. */
  private wheelSec = -1;
  readonly seedConn: number;
  readonly seedTpl: number;
  readonly buffers: ConnTableBuffers;
  /** Request rings (conn/peers.ts); null on buffers allocated before they existed. */
  readonly requests: Int32Array | null;
  /**
   * -1: the owner's table. >= 0: a view of another worker's table, held by worker `producer`,
   * which may only look up, move a state word and post requests (see the header comment).
   */
  producer = -1;
  /** Set by the owner once other workers read this table: index changes bump HDR_SEQ. */
  shared = false;
  /**
   * Several workers: every worker's table by worker index as this thread sees them (the own table
   * and views), set by ConnPeers; a connection's negative CONN_CONTROL names a template in one of
   * them (conn/persist-template.ts). Null with one worker.
   */
  byWorker: ConnTable[] | null = null;

  /** Allocate the shared buffers of a table (the control thread does, so it can read them). */
  static allocate(capacity: number): ConnTableBuffers {
    if (!(capacity >= 1 && capacity <= MAX_CONNS_LIMIT)) throw new RangeError(`connection table capacity must be 1..${MAX_CONNS_LIMIT}`);
    return {
      records: new SharedArrayBuffer(capacity * CONN_WORDS * 4),
      index: new SharedArrayBuffer(nextPow2(capacity * 4) * 4),
      header: new SharedArrayBuffer(HDR_WORDS * 4),
      requests: new SharedArrayBuffer(REQ_PRODUCERS * REQ_STRIDE * 4),
      capacity,
    };
  }

  constructor(capacity: number, seed = (Math.random() * 0x7fffffff) | 0, buffers?: ConnTableBuffers) {
    this.buffers = buffers ?? ConnTable.allocate(capacity);
    this.capacity = this.buffers.capacity;
    capacity = this.capacity;
    this.rec = new Int32Array(this.buffers.records);
    this.index = new Int32Array(this.buffers.index);
    this.header = new Int32Array(this.buffers.header);
    this.mask = this.index.length - 1;
    this.nfree = capacity;
    this.requests = this.buffers.requests ? new Int32Array(this.buffers.requests) : null;
    // the seeds live in the header: whoever constructs a table over existing buffers (the worker
    // after the control thread, a view in another worker) hashes as the table's first user did
    if (Atomics.load(this.header, HDR_SEEDED) === 1) {
      this.seedConn = this.header[HDR_SEED];
      this.seedTpl = this.header[HDR_SEED_TPL];
    } else {
      this.seedConn = seed | 0;
      this.seedTpl = (seed ^ 0x5bd1e995) | 0;
      this.header[HDR_SEED] = this.seedConn;
      this.header[HDR_SEED_TPL] = this.seedTpl;
      Atomics.store(this.header, HDR_SEEDED, 1);
    }
  }

  /**
   * A view of another worker's table for worker `producer` (its index: its request ring slot).
   * Lookups only; `rearm` / `touch` store the deadline and post requests; never alloc, link,
   * release or expire through a view.
   */
  static view(buffers: ConnTableBuffers, producer: number): ConnTable {
    if (!(producer >= 0 && producer < REQ_PRODUCERS)) throw new RangeError(`worker index must be 0..${REQ_PRODUCERS - 1}`);
    const t = new ConnTable(buffers.capacity, 0, buffers);
    t.producer = producer;
    return t;
  }

  /** Index sequence: odd while the owner changes the index (a seqlock for views). */
  private beginIndexChange(): void {
    if (this.shared) Atomics.add(this.header, HDR_SEQ, 1);
  }

  private endIndexChange(): void {
    if (this.shared) Atomics.add(this.header, HDR_SEQ, 1);
  }

  /**
   * View: ask the owner to re-file record `id` and bring its flags and counters in line with its
   * state word. Returns false when the ring is full (the request is lost; see REQ_RING).
   */
  postRequest(id: number): boolean {
    const q = this.requests;
    if (q === null || this.producer < 0) return false;
    const b = this.producer * REQ_STRIDE;
    const tail = q[b];
    if (((tail - Atomics.load(q, b + 1)) | 0) >= REQ_RING) return false;
    q[b + 2 + (tail & REQ_MASK)] = id + 1;
    Atomics.store(q, b, (tail + 1) | 0);
    return true;
  }

  /** Owner: take the requests of producers 0..producers-1, calling `onRequest(id)` for each; returns how many. */
  drainRequests(producers: number, onRequest: (id: number) => void): number {
    const q = this.requests;
    if (q === null) return 0;
    let n = 0;
    for (let p = 0; p < producers; p++) {
      const b = p * REQ_STRIDE;
      const tail = Atomics.load(q, b);
      let head = q[b + 1];
      if (head === tail) continue;
      while (head !== tail) {
        onRequest(q[b + 2 + (head & REQ_MASK)] - 1);
        head = (head + 1) | 0;
        n++;
      }
      Atomics.store(q, b + 1, head);
    }
    return n;
  }

  /** Owner: file record `id` again by its current deadline (a view moved it). */
  refile(id: number, now: number): void {
    if ((this.rec[id * CONN_WORDS + CONN_FLAGS] & CF_USED) === 0) return;
    this.unfile(id);
    this.file(id, now);
  }

  /** Return the number of live records (connections and templates). */
  get size(): number {
    return this.capacity - this.nfree;
  }

  /** Return true when no record is free. */
  get full(): boolean {
    return this.nfree === 0;
  }

  // ---- index primitives ----

  private entryHash(id: number, dir: number): number {
    const r = this.rec,
      o = id * CONN_WORDS;
    if (r[o + CONN_FLAGS] & CF_TEMPLATE) {
      return hashTuple(
        this.seedTpl,
        r[o + CONN_CADDR],
        r[o + CONN_CADDR + 1],
        r[o + CONN_CADDR + 2],
        r[o + CONN_CADDR + 3],
        r[o + CONN_VADDR],
        r[o + CONN_VADDR + 1],
        r[o + CONN_VADDR + 2],
        r[o + CONN_VADDR + 3],
        r[o + CONN_CPORT_VPORT] & 0xffff,
        r[o + CONN_PROTO_STATE] >>> 8,
      );
    }
    const cv = r[o + CONN_CPORT_VPORT];
    if (dir === DIR_IN) {
      return hashTuple(
        this.seedConn,
        r[o + CONN_CADDR],
        r[o + CONN_CADDR + 1],
        r[o + CONN_CADDR + 2],
        r[o + CONN_CADDR + 3],
        r[o + CONN_VADDR],
        r[o + CONN_VADDR + 1],
        r[o + CONN_VADDR + 2],
        r[o + CONN_VADDR + 3],
        cv,
        r[o + CONN_PROTO_STATE] >>> 8,
      );
    }
    return hashTuple(
      this.seedConn,
      r[o + CONN_DADDR],
      r[o + CONN_DADDR + 1],
      r[o + CONN_DADDR + 2],
      r[o + CONN_DADDR + 3],
      r[o + CONN_CADDR],
      r[o + CONN_CADDR + 1],
      r[o + CONN_CADDR + 2],
      r[o + CONN_CADDR + 3],
      ((r[o + CONN_DPORT] & 0xffff) << 16) | (cv >>> 16),
      r[o + CONN_PROTO_STATE] >>> 8,
    );
  }

  /**
   * Index one entry of a connection. Two NAT connections can share a reply tuple (the same
   * client port sent to two virtual services of one real server:port, the older one lingering
   * in TIME_WAIT); the kernel then finds the newest, as its hash chains hold connections newest
   * first (ip_vs_conn_hash adds at the head). So a new OUT entry takes the probe position of the
   * first entry with its reply tuple, that one moves to the next such position, and so on, the
   * last to the free slot: they all share one home slot, so every probe sequence stays unbroken
   * and their order stays newest first.
   */
  private indexInsert(id: number, dir: number): void {
    const h = this.entryHash(id, dir);
    let carry = makeEntry(h, id, dir);
    const tag = entryTag(carry),
      idx = this.index,
      mask = this.mask;
    let i = h & mask;
    for (let x = idx[i]; x !== 0; x = idx[i]) {
      if (dir === DIR_OUT && entryDir(x) === DIR_OUT && entryTag(x) === tag && this.sameReply(id, entryId(x))) {
        idx[i] = carry;
        carry = x;
      }
      i = (i + 1) & mask;
    }
    idx[i] = carry;
  }

  /** Do connections a and b (NAT, not templates) expect the same reply tuple? */
  private sameReply(a: number, b: number): boolean {
    const r = this.rec,
      oa = a * CONN_WORDS,
      ob = b * CONN_WORDS;
    if (((r[oa + CONN_FLAGS] ^ r[ob + CONN_FLAGS]) & (CF_V6 | CF_TEMPLATE)) !== 0) return false;
    if (r[oa + CONN_PROTO_STATE] >>> 8 !== r[ob + CONN_PROTO_STATE] >>> 8) return false;
    if ((r[oa + CONN_DPORT] & 0xffff) !== (r[ob + CONN_DPORT] & 0xffff)) return false;
    if (r[oa + CONN_CPORT_VPORT] >>> 16 !== r[ob + CONN_CPORT_VPORT] >>> 16) return false;
    for (let k = 0; k < 4; k++) {
      if (r[oa + CONN_DADDR + k] !== r[ob + CONN_DADDR + k] || r[oa + CONN_CADDR + k] !== r[ob + CONN_CADDR + k]) return false;
    }
    return true;
  }

  private indexRemove(id: number, dir: number): void {
    const h = this.entryHash(id, dir);
    const idx = this.index,
      mask = this.mask;
    let i = h & mask;
    for (;;) {
      const e = idx[i];
      if (e === 0) return; // not indexed (never happens for consistent callers)
      if (entryId(e) === id && entryDir(e) === dir) break;
      i = (i + 1) & mask;
    }
    // backward-shift deletion: pull later entries of the same cluster into the hole when their
    // home slot does not lie cyclically in (hole, j]
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = idx[j];
      if (e === 0) break;
      const home = this.entryHash(entryId(e), entryDir(e)) & mask;
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        idx[hole] = e;
        hole = j;
      }
    }
    idx[hole] = 0;
  }

  // ---- lookups (per packet; no allocation) ----

  /** Scratch flow row for `lookup` (slow-path callers with loose values). */
  private readonly scratch = new Int32Array(FLOW_WORDS);

  /**
   * Find the connection a packet belongs to, given the packet's own (src, dst, ports, proto)
   * and its hash (hashTuple with seedConn over the same values). Returns `id << 1 | dir` or -1.
   * For callers that hold loose values (ICMP errors, fragments); the fast path uses lookupRow.
   */
  lookup(
    hash: number,
    v6: number,
    s0: number,
    s1: number,
    s2: number,
    s3: number,
    d0: number,
    d1: number,
    d2: number,
    d3: number,
    ports: number,
    proto: number,
  ): number {
    const f = this.scratch;
    f[FLOW_META] = flowMeta(v6 !== 0 ? 6 : 4, proto, 0);
    f[FLOW_SRC] = s0;
    f[FLOW_SRC + 1] = s1;
    f[FLOW_SRC + 2] = s2;
    f[FLOW_SRC + 3] = s3;
    f[FLOW_DST] = d0;
    f[FLOW_DST + 1] = d1;
    f[FLOW_DST + 2] = d2;
    f[FLOW_DST + 3] = d3;
    f[FLOW_PORTS] = ports;
    return this.lookupRow(hash, f, 0);
  }

  /**
   * Find the connection of a packet given its flow row (wire/flow.ts): the row's words are
   * read only for an index entry whose tag matches, so a probe costs one index load, and a hit
   * one record line. Returns `id << 1 | dir` or -1.
   */
  lookupRow(hash: number, f: Int32Array, row: number): number {
    const idx = this.index,
      r = this.rec,
      mask = this.mask;
    // the per-packet probe: the flow row, index entries and record decoded by hand, not with
    // flowProto / entryTag / entryId / connProto: JSC inlines those, but inlined they grew this
    // function's FTL code from 1344 to 1856 bytes (BUN_JSC_reportCompileTimes=1, micro benchmark)
    const tag = hash >>> 25;
    const meta = f[row + FLOW_META];
    const v6 = meta >>> 16 === 6 ? CF_V6 : 0;
    const proto = (meta >>> 8) & 0xff;
    let i = hash & mask;
    for (;;) {
      const e = idx[i];
      if (e === 0) return -1;
      if (e >>> 25 === tag) {
        const id = ((e >>> 1) & 0xffffff) - 1;
        const o = id * CONN_WORDS;
        const fl = r[o + CONN_FLAGS];
        if ((fl & CF_TEMPLATE) === 0 && r[o + CONN_PROTO_STATE] >>> 8 === proto && (fl & CF_V6) === v6) {
          const ports = f[row + FLOW_PORTS];
          if ((e & 1) === DIR_IN) {
            if (
              r[o + CONN_CPORT_VPORT] === ports &&
              r[o + CONN_CADDR] === f[row + FLOW_SRC] &&
              r[o + CONN_VADDR] === f[row + FLOW_DST] &&
              (v6 === 0 ||
                (r[o + CONN_CADDR + 1] === f[row + FLOW_SRC + 1] &&
                  r[o + CONN_CADDR + 2] === f[row + FLOW_SRC + 2] &&
                  r[o + CONN_CADDR + 3] === f[row + FLOW_SRC + 3] &&
                  r[o + CONN_VADDR + 1] === f[row + FLOW_DST + 1] &&
                  r[o + CONN_VADDR + 2] === f[row + FLOW_DST + 2] &&
                  r[o + CONN_VADDR + 3] === f[row + FLOW_DST + 3]))
            )
              return id << 1;
          } else {
            const cv = r[o + CONN_CPORT_VPORT];
            if (
              (((r[o + CONN_DPORT] & 0xffff) << 16) | (cv >>> 16)) === ports &&
              r[o + CONN_DADDR] === f[row + FLOW_SRC] &&
              r[o + CONN_CADDR] === f[row + FLOW_DST] &&
              (v6 === 0 ||
                (r[o + CONN_DADDR + 1] === f[row + FLOW_SRC + 1] &&
                  r[o + CONN_DADDR + 2] === f[row + FLOW_SRC + 2] &&
                  r[o + CONN_DADDR + 3] === f[row + FLOW_SRC + 3] &&
                  r[o + CONN_CADDR + 1] === f[row + FLOW_DST + 1] &&
                  r[o + CONN_CADDR + 2] === f[row + FLOW_DST + 2] &&
                  r[o + CONN_CADDR + 3] === f[row + FLOW_DST + 3]))
            )
              return (id << 1) | 1;
          }
        }
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Find a persistence template by (proto, masked client network, virtual address or fwmark,
   * vport). Returns the template id or -1.
   */
  lookupTemplate(
    v6: number,
    n0: number,
    n1: number,
    n2: number,
    n3: number,
    v0: number,
    v1: number,
    v2: number,
    v3: number,
    vport: number,
    proto: number,
  ): number {
    const hash = hashTuple(this.seedTpl, n0, n1, n2, n3, v0, v1, v2, v3, vport, proto);
    const idx = this.index,
      r = this.rec,
      mask = this.mask;
    const tag = hash >>> 25;
    let i = hash & mask;
    for (;;) {
      const e = idx[i];
      if (e === 0) return -1;
      if (entryTag(e) === tag) {
        const id = entryId(e);
        const o = id * CONN_WORDS;
        const fl = r[o + CONN_FLAGS];
        if (
          (fl & CF_TEMPLATE) !== 0 &&
          (fl & CF_V6) === v6 &&
          connProto(r, o) === proto &&
          (r[o + CONN_CPORT_VPORT] & 0xffff) === vport &&
          r[o + CONN_CADDR] === n0 &&
          r[o + CONN_CADDR + 1] === n1 &&
          r[o + CONN_CADDR + 2] === n2 &&
          r[o + CONN_CADDR + 3] === n3 &&
          r[o + CONN_VADDR] === v0 &&
          r[o + CONN_VADDR + 1] === v1 &&
          r[o + CONN_VADDR + 2] === v2 &&
          r[o + CONN_VADDR + 3] === v3
        )
          return id;
      }
      i = (i + 1) & mask;
    }
  }

  // ---- create / delete ----

  /**
   * Take a free record and fill its identity; returns the id, or -1 when the table is full.
   * The caller sets the remaining fields, then calls `link` to index and file it.
   */
  alloc(): number {
    let id: number;
    // shared: a freed record waits until REUSE_DELAY others were freed after it (while records
    // never used remain), so a reader that matched it just before its release reads old words
    if (this.freeHead !== 0 && (!this.shared || this.freeLen > REUSE_DELAY || this.fresh >= this.capacity)) {
      id = this.freeHead - 1;
      this.freeHead = this.rec[id * CONN_WORDS + CONN_WHEEL_NEXT];
      if (this.freeHead === 0) this.freeTail = 0;
      this.freeLen--;
    } else if (this.fresh < this.capacity) {
      id = this.fresh++;
    } else {
      return -1;
    }
    this.nfree--;
    const o = id * CONN_WORDS;
    this.rec.fill(0, o, o + CONN_WORDS);
    this.rec[o + CONN_FLAGS] = CF_USED;
    this.rec[o + CONN_WHEEL_SLOT] = -1;
    if (id + 1 > this.header[HDR_HIGH]) this.header[HDR_HIGH] = id + 1;
    return id;
  }

  /** Index a filled record (IN entry, plus OUT when CF_OUT_ENTRY; templates one entry) and file it in the wheel. */
  link(id: number, now: number): void {
    const o = id * CONN_WORDS;
    const fl = this.rec[o + CONN_FLAGS];
    this.beginIndexChange();
    this.indexInsert(id, DIR_IN);
    if ((fl & (CF_OUT_ENTRY | CF_TEMPLATE)) === CF_OUT_ENTRY) this.indexInsert(id, DIR_OUT);
    this.endIndexChange();
    this.file(id, now);
    Atomics.add(this.header, HDR_LIVE, 1);
    if (fl & CF_TEMPLATE) Atomics.add(this.header, HDR_TEMPLATES, 1);
  }

  /** Remove a record from the index and the wheel and free it. */
  release(id: number): void {
    const o = id * CONN_WORDS;
    const fl = this.rec[o + CONN_FLAGS];
    if ((fl & CF_USED) === 0) return;
    // the seqlock spans the record's release too: a view that matched the record mid-way retries
    this.beginIndexChange();
    this.indexRemove(id, DIR_IN);
    if ((fl & (CF_OUT_ENTRY | CF_TEMPLATE)) === CF_OUT_ENTRY) this.indexRemove(id, DIR_OUT);
    this.unfile(id);
    this.rec[o + CONN_FLAGS] = 0;
    this.endIndexChange();
    if (this.shared && this.freeTail !== 0) {
      // other workers may still be reading this record (a probe, a reply in flight): it goes to
      // the end of the free chain, so it keeps its old contents for the longest time
      this.rec[o + CONN_WHEEL_NEXT] = 0;
      this.rec[(this.freeTail - 1) * CONN_WORDS + CONN_WHEEL_NEXT] = id + 1;
      this.freeTail = id + 1;
    } else {
      // one worker: the most recently freed record (warm in the cache) is reused first
      this.rec[o + CONN_WHEEL_NEXT] = this.freeHead;
      if (this.freeHead === 0) this.freeTail = id + 1;
      this.freeHead = id + 1;
    }
    this.freeLen++;
    this.nfree++;
    Atomics.sub(this.header, HDR_LIVE, 1);
    if (fl & CF_TEMPLATE) Atomics.sub(this.header, HDR_TEMPLATES, 1);
  }

  /**
   * Change the client-side identity used by the IN entry (templates invalidated by the
   * kernel are rehashed with ports 0xffff so they no longer match).
   */
  rekeyPorts(id: number, cportVport: number): void {
    const o = id * CONN_WORDS;
    this.beginIndexChange();
    this.indexRemove(id, DIR_IN);
    this.rec[o + CONN_CPORT_VPORT] = cportVport;
    this.indexInsert(id, DIR_IN);
    this.endIndexChange();
  }

  // ---- timers ----

  /** Set a new state timeout and re-arm: deadline = now + timeout; re-file if it moved earlier. */
  rearm(id: number, now: number, timeoutTicks: number): void {
    const o = id * CONN_WORDS;
    const r = this.rec;
    const old = r[o + CONN_EXPIRES];
    r[o + CONN_TIMEOUT] = timeoutTicks;
    const exp = (now + timeoutTicks) | 0;
    r[o + CONN_EXPIRES] = exp;
    if (((exp - old) | 0) < 0) {
      // a view cannot touch the owner's wheel: the owner re-files it (drainRequests)
      if (this.producer >= 0) {
        this.postRequest(id);
        return;
      }
      this.unfile(id);
      this.file(id, now);
    }
  }

  /** Re-arm with the current timeout (every packet): one store. */
  touch(id: number, now: number): void {
    const o = id * CONN_WORDS;
    this.rec[o + CONN_EXPIRES] = (now + this.rec[o + CONN_TIMEOUT]) | 0;
  }

  private file(id: number, now: number): void {
    const o = id * CONN_WORDS;
    const r = this.rec;
    let secs = Math.floor(((r[o + CONN_EXPIRES] - now) | 0) / TICKS_PER_SEC);
    if (secs < 0) secs = 0;
    if (secs > WHEEL_SLOTS - 2) secs = WHEEL_SLOTS - 2;
    // file into the slot of the second *after* the deadline, so expiry is never early
    const slot = (Math.floor(now / TICKS_PER_SEC) + secs + 1) & WHEEL_MASK;
    const head = this.wheel[slot];
    r[o + CONN_WHEEL_NEXT] = head;
    r[o + CONN_WHEEL_PREV] = 0;
    if (head !== 0) r[(head - 1) * CONN_WORDS + CONN_WHEEL_PREV] = id + 1;
    this.wheel[slot] = id + 1;
    r[o + CONN_WHEEL_SLOT] = slot;
  }

  private unfile(id: number): void {
    const o = id * CONN_WORDS;
    const r = this.rec;
    const slot = r[o + CONN_WHEEL_SLOT];
    if (slot < 0) return;
    const next = r[o + CONN_WHEEL_NEXT],
      prev = r[o + CONN_WHEEL_PREV];
    if (prev !== 0) r[(prev - 1) * CONN_WORDS + CONN_WHEEL_NEXT] = next;
    else this.wheel[slot] = next;
    if (next !== 0) r[(next - 1) * CONN_WORDS + CONN_WHEEL_PREV] = prev;
    r[o + CONN_WHEEL_SLOT] = -1;
  }

  /**
   * Walk the wheel up to `now`, calling `onExpire(id)` for each record whose deadline passed
   * (the callback decides: release it, or re-arm it, e.g. a template that still controls
   * connections). At most `budget` records are examined per call, so one call is bounded;
   * the rest waits for the next call. Returns the number examined.
   */
  expire(now: number, budget: number, onExpire: (id: number) => void): number {
    const nowSec = Math.floor(now / TICKS_PER_SEC);
    // a stalled caller (suspended process) skips whole rounds: every slot is visited once anyway
    if (this.wheelSec < 0 || nowSec - this.wheelSec > WHEEL_SLOTS) this.wheelSec = Math.max(0, nowSec - WHEEL_SLOTS);
    let examined = 0;
    const r = this.rec;
    while (this.wheelSec <= nowSec) {
      const slot = this.wheelSec & WHEEL_MASK;
      let cur = this.wheel[slot];
      while (cur !== 0) {
        if (examined >= budget) return examined;
        examined++;
        const id = cur - 1;
        const o = id * CONN_WORDS;
        cur = r[o + CONN_WHEEL_NEXT];
        this.unfile(id);
        if (((r[o + CONN_EXPIRES] - now) | 0) <= 0) onExpire(id);
        else this.file(id, now);
        // onExpire either released the record or re-armed it (re-filed elsewhere)
        if ((r[o + CONN_FLAGS] & CF_USED) !== 0 && r[o + CONN_WHEEL_SLOT] < 0) this.file(id, now);
      }
      this.wheelSec++;
    }
    this.wheelSec = nowSec; // the current second is not finished: visit it again next time
    return examined;
  }
}
