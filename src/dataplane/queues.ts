/**
 * Which rx queues exist and which worker serves each. xvs binds an AF_XDP socket on every rx
 * queue of every interface (the steering program can redirect a frame only into a socket bound
 * to the queue it arrived on: a queue without a socket would hand our packets to the kernel,
 * counted as the XDP counter `pass_no_socket`). `--workers N` poll workers share the queues.
 *
 * Worker count: the requested one (default: the usable cores, os.availableParallelism(), which
 * follows the process's CPU affinity), at most the cores, at most the fewest queues of any
 * interface: a worker sends a frame out of an interface through a socket of its own on that
 * interface, and a (device, queue) can carry the sockets of one UMEM only, so every worker must
 * own at least one queue of every interface. A clamp is a logged adjustment, never an error.
 * Queue q of an interface belongs to worker q mod N, so queues and load spread evenly; a queue
 * that appears later (`ethtool -L`) goes to the worker with the fewest queues of that interface.
 */
import { readdirSync, readFileSync } from "node:fs";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "../ffi/abi.ts";

/** One (interface, rx queue): `iface` indexes the daemon's interface list. */
export interface QueueRef {
  iface: number;
  queue: number;
}

/**
 * Return the number of rx queues `name` has now (the kernel's real_num_rx_queues: one
 * `queues/rx-N` directory each in sysfs). The sysfs must be this network namespace's (as under
 * `ip netns exec`): its `ifindex` must be `ifindex`.
 * @throws LbError(Environment) when sysfs does not show this interface.
 */
export function rxQueueCount(name: string, ifindex: number, sysClassNet = "/sys/class/net"): number {
  let seen: number;
  let n: number;
  try {
    seen = Number(readFileSync(`${sysClassNet}/${name}/ifindex`, "utf8").trim());
    n = readdirSync(`${sysClassNet}/${name}/queues`).filter((d) => /^rx-\d+$/.test(d)).length;
  } catch (e) {
    throw new LbError(
      ErrorCode.Environment,
      `cannot read the rx queues of ${name} from ${sysClassNet} (${(e as NodeJS.ErrnoException).code ?? String(e)}): is /sys mounted for this network namespace (ip netns exec does it)?`,
    );
  }
  if (seen !== ifindex) {
    throw new LbError(
      ErrorCode.Environment,
      `${sysClassNet}/${name} is another namespace's interface (ifindex ${seen}, here ${ifindex}): mount /sys for this network namespace (ip netns exec does it)`,
    );
  }
  return Math.max(1, n);
}

export interface WorkerPlan {
  workers: number;
  /** Why the count differs from the request, one sentence each (logged as warnings). */
  adjustments: string[];
  /** Queues of each interface that get a socket (at most XVS_MAX_QUEUES; more: an adjustment). */
  served: number[];
}

/**
 * Decide the worker count from the request (undefined: the default), the usable cores and each
 * interface's rx queue count.
 */
export function planWorkers(requested: number | undefined, cores: number, queueCounts: readonly number[], names: readonly string[]): WorkerPlan {
  const adjustments: string[] = [];
  const served = queueCounts.map((n, i) => {
    if (n <= abi.XVS_MAX_QUEUES) return n;
    adjustments.push(
      `${names[i]} has ${n} rx queues, xvs serves at most ${abi.XVS_MAX_QUEUES}: queues ${abi.XVS_MAX_QUEUES}..${n - 1} have no socket and pass their packets to the kernel (counted as pass_no_socket); reduce them with 'ethtool -L ${names[i]} combined ${abi.XVS_MAX_QUEUES}'`,
    );
    return abi.XVS_MAX_QUEUES;
  });
  const fewest = Math.min(...served);
  const usable = Math.max(1, cores | 0);
  let workers = requested ?? usable;
  if (requested !== undefined && requested > usable) {
    adjustments.push(
      `--workers ${requested} is more than the ${usable} usable cores: running ${usable} workers (poll loops sharing a core slow each other down)`,
    );
    workers = usable;
  }
  if (workers > fewest) {
    const which = names[served.indexOf(fewest)];
    if (requested !== undefined) {
      adjustments.push(
        `${workers} workers but ${which} has ${fewest} rx queue${fewest === 1 ? "" : "s"}: running ${fewest} (every worker needs a queue of every interface to send on)`,
      );
    }
    workers = fewest;
  }
  return { workers, adjustments, served };
}

/**
 * Queue q of every interface to worker q mod `workers`. Returns each worker's queues, interface by
 * interface in the daemon's order, and every worker has a queue of every interface (workers <=
 * the fewest queues): its port numbers the interfaces as they first appear (xvs_xsk.c), so that
 * number is the daemon's interface index, which the fast path's ports mean.
 */
export function assignQueues(workers: number, served: readonly number[]): QueueRef[][] {
  const owned: QueueRef[][] = Array.from({ length: workers }, () => []);
  served.forEach((n, iface) => {
    for (let q = 0; q < n; q++) owned[q % workers].push({ iface, queue: q });
  });
  return owned;
}

/** The worker that takes a new queue of `iface`: the one with the fewest queues of it (first on ties). */
export function workerForNewQueue(owned: readonly QueueRef[][], iface: number): number {
  let best = 0,
    bestN = Infinity;
  owned.forEach((qs, w) => {
    const n = qs.filter((r) => r.iface === iface).length;
    if (n < bestN) {
      best = w;
      bestN = n;
    }
  });
  return best;
}

/** "c0:0,2 s0:0,2": a worker's queues, for log lines. */
export function describeQueues(qs: readonly QueueRef[], names: readonly string[]): string {
  const by = new Map<number, number[]>();
  for (const r of qs) by.set(r.iface, [...(by.get(r.iface) ?? []), r.queue]);
  return [...by].map(([i, q]) => `${names[i]}:${q.join(",")}`).join(" ");
}

/**
 * Each worker's connection table capacity from `--conn-max` (`total`): the daemon's size over all
 * workers, as `ipvsadm -L` shows one `(size=N)` and an operator sizes memory for one number
 * (124 bytes a connection), not N times it. Worker w gets total / workers, the first
 * total mod workers one more, so the shares add up to `total`. Each table stays its worker's own
 * (no locks on the fast path), so a worker whose share is full refuses new connections
 * (drop_table_full) while another still has room: RSS spreads connections evenly over the
 * queues, and the others' tables serve replies and later packets that land there. Fewer than one
 * per worker: one each (an adjustment, logged).
 */
export function connShares(total: number, workers: number): { shares: number[]; adjustments: string[] } {
  if (total < workers) {
    return {
      shares: Array.from({ length: workers }, () => 1),
      adjustments: [`--conn-max ${total} is less than one connection per worker (${workers} workers): each worker's table holds 1`],
    };
  }
  const base = Math.floor(total / workers),
    extra = total % workers;
  return { shares: Array.from({ length: workers }, (_, w) => base + (w < extra ? 1 : 0)), adjustments: [] };
}
