/**
 * The sync daemons' families on GET /metrics (docs/metrics.md "Sync daemon"). node_exporter has
 * nothing for the IPVS sync daemon (the kernel shows its counters nowhere but its log), so these
 * are xvs_sync_* only. Values are SyncManager.stats(): each daemon counts from its own start, so
 * a --stop-daemon / --start-daemon is a counter reset to Prometheus (rate() handles it); while a
 * daemon does not run, only xvs_sync_daemon_running says so (its other samples are left out).
 */
import { SYNC_DROP_NAMES } from "../sync/drops.ts";
import type { Daemon } from "./daemon.ts";
import type { Family, MetricType, Sample } from "./metrics-text.ts";
import { backupOnlyActive, backupOnlyPassed } from "./backup-only.ts";
import { syncManager } from "./sync-daemon.ts";

function family(name: string, type: MetricType, help: string, samples: Sample[]): Family {
  return { name, type, help, samples };
}

/** Every xvs_sync_* family of `daemon`. */
export function syncFamilies(daemon: Daemon): Family[] {
  const m = syncManager(daemon);
  const master = m.stats("master");
  const backup = m.stats("backup");
  const one = (v: number | undefined): Sample[] => (v === undefined ? [] : [{ value: v }]);
  const passed = backupOnlyPassed(daemon);
  return [
    family(
      "xvs_sync_backup_only",
      "gauge",
      "1 while backup_only is in effect (the backup daemon runs and net.ipv4.vs.backup_only is 1): packets to virtual addresses go to the kernel, not balanced.",
      [{ value: backupOnlyActive(backup !== null, m.sysctls.backupOnly) ? 1 : 0 }],
    ),
    family(
      "xvs_sync_backup_only_passed_packets_total",
      "counter",
      "Packets to virtual addresses the XDP program passed to the kernel because of backup_only, since the dataplane started.",
      one(passed ?? undefined),
    ),
    family("xvs_sync_daemon_running", "gauge", "1 while the sync daemon of the state (master, backup) runs (ipvsadm -L --daemon), else 0.", [
      { labels: { state: "master" }, value: master ? 1 : 0 },
      { labels: { state: "backup" }, value: backup ? 1 : 0 },
    ]),
    family("xvs_sync_messages_sent_total", "counter", "Sync messages the master daemon handed to its socket, since it started.", one(master?.messages)),
    family("xvs_sync_records_sent_total", "counter", "Connection records the master daemon packed into messages, since it started.", one(master?.records)),
    family(
      "xvs_sync_feed_lost_records_total",
      "counter",
      "Records the workers' feed rings dropped because the master daemon had not drained them (ring full), since the master started.",
      one(master?.feedLost),
    ),
    family(
      "xvs_sync_queue_dropped_messages_total",
      "counter",
      "Messages the master dropped because sync_qlen_max messages were already queued, since it started.",
      one(master?.queueDropped),
    ),
    family("xvs_sync_send_errors_total", "counter", "Send errors of the master daemon's socket, since it started.", one(master?.sendErrors)),
    family("xvs_sync_messages_received_total", "counter", "Datagrams the backup daemon received (taken or dropped), since it started.", one(backup?.messages)),
    family(
      "xvs_sync_records_received_total",
      "counter",
      "Records the backup daemon decoded, resolved to a local service and real server and handed to the workers, since it started.",
      one(backup?.records),
    ),
    family(
      "xvs_sync_records_installed_total",
      "counter",
      "Received records the workers applied, by result: created (a new connection or template), updated (an existing one), refused (table full).",
      backup
        ? [
            { labels: { result: "created" }, value: backup.created },
            { labels: { result: "updated" }, value: backup.updated },
            { labels: { result: "refused" }, value: backup.refused },
          ]
        : [],
    ),
    family(
      "xvs_sync_drops_total",
      "counter",
      "Received sync messages or records dropped, by reason (msg_* and frame_* end the message, rec_* skip one record; src/sync/drops.ts), since the backup started.",
      backup ? SYNC_DROP_NAMES.map((reason) => ({ labels: { reason }, value: backup.drops[reason] ?? 0 })) : [],
    ),
  ];
}
