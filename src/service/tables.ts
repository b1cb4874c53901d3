/**
 * Layout of the compiled configuration the dataplane reads: flat Int32Arrays built by
 * config/compile.ts on the control thread and handed to the workers as a new generation. A worker
 * swaps its whole `Tables` between bursts; nothing here is edited in place while in use.
 *
 * Ids: services and real servers (dests) have ids that stay the same across generations (an
 * edit does not move them), so connection records, counters and scheduler state can refer to
 * them. A deleted dest keeps its id while it sits in the trash (its connections still name it).
 */

/** Most virtual services (also the steering map size). */
export const MAX_SERVICES = 4096;
/** Most real servers over all services, trash included. */
export const MAX_DESTS = 16384;

// ---- per-service record ----
export const SVC_FLAGS = 0;
export const SVC_PROTO = 1;
/** Virtual address, 4 words. */
export const SVC_ADDR = 2;
export const SVC_PORT = 6;
export const SVC_FWMARK = 7;
/** Scheduler id (index in SCHEDULERS of schedulers.ts). */
export const SVC_SCHED = 8;
/** Persistence timeout in ticks. */
export const SVC_PTIMEOUT = 9;
/** Persistence netmask, 4 words (applied with & to the client address). */
export const SVC_NETMASK = 10;
/** Offset and count of this service's dest ids in `destList`, in kernel list order. */
export const SVC_DEST_OFF = 14;
export const SVC_DEST_N = 15;
/** Offset and size of this service's bucket table in `buckets` (sh, dh, mh), or -1. */
export const SVC_TABLE_OFF = 16;
export const SVC_TABLE_N = 17;
/** Bumped when the dest set or a weight changes (scheduler update). */
export const SVC_EPOCH = 18;
/** Bumped when the service is (re)created or its scheduler changes (scheduler reset). */
export const SVC_SCHED_EPOCH = 19;
export const SVC_WORDS = 20;

export const SVCF_USED = 0x1;
/** IP_VS_SVC_F_PERSISTENT */
export const SVCF_PERSISTENT = 0x2;
/** IP_VS_SVC_F_ONEPACKET */
export const SVCF_ONEPACKET = 0x4;
export const SVCF_FWMARK = 0x8;
export const SVCF_V6 = 0x10;
/** IP_VS_SVC_F_SCHED1: sh-fallback / mh-fallback. */
export const SVCF_SCHED1 = 0x20;
/** IP_VS_SVC_F_SCHED2: sh-port / mh-port. */
export const SVCF_SCHED2 = 0x40;
/** IP_VS_SVC_F_SCHED3: flag-3. */
export const SVCF_SCHED3 = 0x80;

// ---- per-dest record ----
export const DEST_FLAGS = 0;
/** Forwarding method: FWD_* below. */
export const DEST_FWD = 1;
export const DEST_WEIGHT = 2;
/** Last non-zero weight (mh keeps a quiesced dest's slots). */
export const DEST_LAST_WEIGHT = 3;
export const DEST_UTHRESH = 4;
export const DEST_LTHRESH = 5;
/** Real server address, 4 words. */
export const DEST_ADDR = 6;
export const DEST_PORT = 10;
export const DEST_SVC = 11;
/** Next hop towards the real server (id in the next-hop table), -1 when unresolved. */
export const DEST_NEXTHOP = 12;
/** Tunnel type (TUN_*) | csum mode << 8. */
export const DEST_TUN = 13;
export const DEST_TUN_PORT = 14;
/** Path MTU towards the real server (route or interface MTU). */
export const DEST_MTU = 15;
/** Source address for tunnel headers (the route's preferred source), 4 words. */
export const DEST_TUN_SRC = 16;
/** Bumped when thresholds are edited: the overload flag is re-evaluated (kernel __ip_vs_update_dest). */
export const DEST_EPOCH = 20;
export const DEST_WORDS = 21;

export const DESTF_USED = 0x1;
/** IP_VS_DEST_F_AVAILABLE: cleared while the dest is in the trash. */
export const DESTF_AVAILABLE = 0x2;
export const DESTF_V6 = 0x4;

/** Forwarding methods, with IPVS's IP_VS_CONN_F_* values. */
export const FWD_MASQ = 0;
export const FWD_LOCAL = 1;
export const FWD_TUNNEL = 2;
export const FWD_ROUTE = 3;

export const TUN_IPIP = 0;
export const TUN_GUE = 1;
export const TUN_GRE = 2;
export const TUN_CSUM_NONE = 0;
export const TUN_CSUM = 1;
export const TUN_REMCSUM = 2;

/**
 * Service lookup index: open addressing over SVCIDX entries (svc id + 1, 0 = empty), keyed by
 * (proto, address, port) through hashService().
 */
export function hashService(proto: number, a0: number, a1: number, a2: number, a3: number, port: number): number {
  let h = Math.imul(proto ^ 0x9e3779b9, 0x85ebca6b) ^ a0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ a1;
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39) ^ a2;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ a3;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ port;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 13)) | 0;
}

/** One generation of compiled configuration. */
export interface Tables {
  generation: number;
  svc: Int32Array;
  svcIndex: Int32Array;
  /** Set when some service has port 0 (lookup then tries port 0 after the exact port). */
  hasPortZero: boolean;
  destList: Int32Array;
  dest: Int32Array;
  buckets: Int32Array;
  /** Global settings: SET_* words. */
  settings: Int32Array;
  /** Interfaces of the AF_XDP port, PORT_WORDS each (nexthop/table.ts). */
  ports: Int32Array;
  /** Routes towards clients, FIB_WORDS per row, longest prefix first. */
  fib: Int32Array;
  fibRows: number;
  /** On-link neighbours: (port, address) -> next hop id. */
  neigh: Int32Array;
}

// ---- wrr's table in `buckets`: [count, count entries of DEST_CHANGE_WORDS] ----
/** Numbers per config/model.ts destChanges entry: epoch, gcd of the positive weights (0: none), largest weight, 1 = scheduler bound (init_service). */
export const DEST_CHANGE_WORDS = 4;

// ---- settings words ----
/** TCP ESTABLISHED timeout, ticks (--set tcp). */
export const SET_TCP_TICKS = 0;
/** TCP FIN_WAIT timeout, ticks (--set tcpfin). */
export const SET_TCPFIN_TICKS = 1;
/** UDP timeout, ticks (--set udp). */
export const SET_UDP_TICKS = 2;
/** sysctl expire_nodest_conn (default 0). */
export const SET_EXPIRE_NODEST_CONN = 3;
/** sysctl expire_quiescent_template (default 0). */
export const SET_EXPIRE_QUIESCENT_TEMPLATE = 4;
/** sysctl sloppy_tcp (default 0). */
export const SET_SLOPPY_TCP = 5;
/** sysctl conn_reuse_mode (default 1). */
export const SET_CONN_REUSE_MODE = 6;
export const SET_WORDS = 8;

/**
 * Find the service for a packet to (proto, addr, port): the exact port first, then port 0
 * (persistent all-ports services), as ip_vs_service_find does. Returns the svc id or -1.
 */
export function findService(t: Tables, proto: number, a0: number, a1: number, a2: number, a3: number, port: number): number {
  const s = lookupExact(t, proto, a0, a1, a2, a3, port);
  if (s >= 0 || !t.hasPortZero) return s;
  return lookupExact(t, proto, a0, a1, a2, a3, 0);
}

function lookupExact(t: Tables, proto: number, a0: number, a1: number, a2: number, a3: number, port: number): number {
  const idx = t.svcIndex,
    svc = t.svc;
  const mask = idx.length - 1;
  let i = hashService(proto, a0, a1, a2, a3, port) & mask;
  for (;;) {
    const e = idx[i];
    if (e === 0) return -1;
    const o = (e - 1) * SVC_WORDS;
    if (
      svc[o + SVC_PORT] === port &&
      svc[o + SVC_PROTO] === proto &&
      svc[o + SVC_ADDR] === a0 &&
      svc[o + SVC_ADDR + 1] === a1 &&
      svc[o + SVC_ADDR + 2] === a2 &&
      svc[o + SVC_ADDR + 3] === a3 &&
      (svc[o + SVC_FLAGS] & SVCF_FWMARK) === 0
    )
      return e - 1;
    i = (i + 1) & mask;
  }
}
