/**
 * net.ipv4.vs.backup_only: "If set, disable the director function while the server is in backup
 * mode to avoid packet loops for DR/TUN methods" (ip-sysctl's IPVS section). The kernel's
 * sysctl_backup_only() is true while the backup sync daemon runs and the sysctl is 1; then
 * ip_vs_in_hook and ip_vs_forward_icmp accept every packet untouched, so the host's stack gets
 * what is addressed to a virtual address (a real server of the other director, say), while
 * ip_vs_out_hook still handles NAT replies.
 *
 * xvs's packets reach its sockets through the XDP steering program, and an AF_XDP socket cannot
 * hand a frame back to the kernel, so the program itself passes them: SyncManager calls
 * `applyBackupOnly` whenever the backup daemon starts or stops or the sysctl changes, and the
 * program's `steer_cfg` entry (native/bpf/xvs_steer.bpf.c) passes every packet to a virtual
 * address while it is set, before the flow cache, and counts them.
 */
import type { Daemon } from "./daemon.ts";

/** What the steering program offers for it (the dataplane's SteerProgram; absent without XDP). */
interface BackupOnlyTarget {
  setBackupOnly(on: boolean): void;
  backupOnlyPassed(): number;
}

function target(daemon: Daemon): BackupOnlyTarget | null {
  const prog = (daemon.dataplane as { prog?: Partial<BackupOnlyTarget> } | null)?.prog;
  return prog && typeof prog.setBackupOnly === "function" && typeof prog.backupOnlyPassed === "function" ? (prog as BackupOnlyTarget) : null;
}

/** sysctl_backup_only(): the director function is off while both hold. */
export function backupOnlyActive(backupRunning: boolean, backupOnly: number): boolean {
  return backupRunning && backupOnly !== 0;
}

/** Tell the steering program (when there is one) whether to pass packets to virtual addresses. */
export function applyBackupOnly(daemon: Daemon, on: boolean): void {
  target(daemon)?.setBackupOnly(on);
}

/** Packets backup_only passed to the kernel since the dataplane started; null without one. */
export function backupOnlyPassed(daemon: Daemon): number | null {
  return target(daemon)?.backupOnlyPassed() ?? null;
}
