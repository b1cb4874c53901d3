/**
 * What the dashboard gets every second: the services as GET /v1/services lists them (health
 * included when the daemon has it), the verdict and XDP counters, the workers, and the recent
 * events. Raw counters, not rates: the page computes per-second rates from two snapshots and
 * their timestamps, so every chart point is exactly one second of traffic (the API's `rates`
 * are the kernel's 2-second estimator, smoothed, and come along for whoever wants them).
 */
import { HDR_LIVE } from "../../conn/table.ts";
import { STAT_NAMES } from "../../dataplane/verdict.ts";
import type { Daemon } from "../daemon.ts";
import { XDP_COUNTER_NAMES } from "../metrics.ts";
import type { ServiceViewT } from "../schemas.ts";
import { serviceView } from "../views.ts";
import { WL_BUSY_NS, WL_LOOP_NS } from "../../stats/counters.ts";
import type { UiEvent } from "./events.ts";

/** Events a snapshot carries (the newest; the ring keeps more). */
export const SNAPSHOT_EVENTS = 50;

const RX = STAT_NAMES.indexOf("rx_packets");
const TX = STAT_NAMES.indexOf("tx_packets");
const DROPS = STAT_NAMES.flatMap((n, i) => (n.startsWith("drop_") ? [i] : []));

/** One dataplane worker (it serves a set of rx queues: docs/architecture.md, "Several queues"). */
export interface WorkerSnapshot {
  /** The worker's index (0 .. workers - 1). */
  worker: number;
  /** Per interface, whether the socket is bound in zero-copy mode. */
  zeroCopy: boolean[];
  /** Connection records in use (connections and templates) and the table's capacity. */
  conns: number;
  capacity: number;
  rxPackets: number;
  txPackets: number;
  drops: number;
  /** Seconds spent on bursts with frames, and seconds the loop ran (the page shows their rate ratio). */
  busySec: number;
  loopSec: number;
}

export interface Snapshot {
  /** ms since the epoch, when it was taken. */
  ts: number;
  uptimeSec: number;
  generation: number;
  dataplane: boolean;
  services: ServiceViewT[];
  verdicts: Record<string, number>;
  xdp: Record<string, number>;
  workers: WorkerSnapshot[];
  events: UiEvent[];
  /** Dashboards connected to the stream. */
  clients: number;
}

/** The workers of a daemon as the page shows them. */
export function workerSnapshots(daemon: Daemon): WorkerSnapshot[] {
  return (daemon.dataplane?.workers ?? []).map((w, worker) => {
    const v = w.counters.verdicts;
    let drops = 0;
    for (const i of DROPS) drops += v[i];
    return {
      worker,
      zeroCopy: [...w.zeroCopy],
      conns: Atomics.load(w.conns.header, HDR_LIVE),
      capacity: w.conns.capacity,
      rxPackets: v[RX],
      txPackets: v[TX],
      drops,
      busySec: w.counters.loop[WL_BUSY_NS] / 1e9,
      loopSec: w.counters.loop[WL_LOOP_NS] / 1e9,
    };
  });
}

/** Take a snapshot of `daemon`. */
export function takeSnapshot(daemon: Daemon, events: UiEvent[], clients: number): Snapshot {
  const ts = daemon.clock();
  const xdpCounts = daemon.dataplane?.xdpStats() ?? [];
  const xdp: Record<string, number> = {};
  xdpCounts.forEach((n, i) => {
    xdp[XDP_COUNTER_NAMES[i] ?? `xdp_${i}`] = n;
  });
  return {
    ts,
    uptimeSec: Math.max(0, (ts - daemon.startedMs) / 1000),
    generation: daemon.tables().generation,
    dataplane: daemon.dataplane !== null,
    services: daemon.model.services.map((s) => serviceView(daemon, s)),
    verdicts: daemon.verdicts(),
    xdp,
    workers: workerSnapshots(daemon),
    events,
    clients,
  };
}
