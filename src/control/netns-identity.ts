/**
 * Which network namespace wrote a state directory's files, and whether the daemon starting now
 * is in that namespace.
 *
 * The state directory is named after the namespace's inode number (runtime.ts), and the kernel
 * reuses those numbers as soon as a namespace is freed: a daemon started in a new lab namespace
 * found the table (and token) another namespace's daemon had saved under the same number. So
 * the table and the directory carry the identity of the namespace that wrote them: its cookie
 * (never reused within a boot), its inode, the boot id, and whether it was the initial
 * namespace (the one PID 1 runs in, the only one that comes back after a reboot).
 *
 * The rule (`judgeOwner`), pure so that it is tested over every case:
 * - same boot: ours only if the cookies are equal. Without a cookie (kernel < 5.14) on either
 *   side, only the initial namespace can be recognised (it lives for the whole boot).
 * - another boot (the host rebooted): every namespace of that boot is gone except the initial
 *   one, which the new boot's initial namespace continues: ours only if both are initial.
 * - written by an older xvs without an identity: ours only in the initial namespace and when
 *   the directory is the one of our inode (an operator upgrading on bare metal keeps the
 *   table; in any other namespace it may be a stranger's, as reported in issue 11).
 */
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { netnsCookie } from "../ffi/netns-cookie.ts";

/** The identity of a network namespace, as saved with a table. */
export interface NetnsIdentity {
  /** SO_NETNS_COOKIE as a decimal string; null when the kernel has none. */
  cookie: string | null;
  /** The namespace's inode number (what /proc/self/ns/net links to). */
  inode: string;
  /** /proc/sys/kernel/random/boot_id of the boot it was read in. */
  boot: string;
  /** True for the namespace PID 1 runs in (the host's, outside containers). */
  initial: boolean;
}

/** Whether files written by `saved` belong to the namespace `here`, and why (one clause for the log). */
export interface Ownership {
  ours: boolean;
  why: string;
}

/** Read the identity of the calling process's network namespace. */
export function currentIdentity(): NetnsIdentity {
  let inode = "unknown";
  try {
    inode = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/net"))?.[1] ?? "unknown";
  } catch {
    // no /proc: the inode stays unknown, the cookie still decides
  }
  let boot = "unknown";
  try {
    boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // no boot id: every saved identity then looks like another boot's
  }
  return { cookie: netnsCookie(), inode, boot, initial: isInitialNetns() };
}

/** True when this process shares PID 1's network namespace (same nsfs device and inode). */
function isInitialNetns(): boolean {
  try {
    const self = statSync("/proc/self/ns/net");
    const init = statSync("/proc/1/ns/net");
    return self.ino === init.ino && self.dev === init.dev;
  } catch {
    // PID 1's namespace cannot be read (no CAP_SYS_PTRACE): do not claim to be initial
    return false;
  }
}

/** Parse an identity read from a file; null when it is not one (an older format). */
export function parseIdentity(v: unknown): NetnsIdentity | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.inode !== "string" || typeof o.boot !== "string" || typeof o.initial !== "boolean") return null;
  if (o.cookie !== null && typeof o.cookie !== "string") return null;
  return { cookie: o.cookie, inode: o.inode, boot: o.boot, initial: o.initial };
}

/** The inode a state directory is named after (`net-<inode>`), or null for another name (XVS_STATE_DIR). */
export function dirInode(dir: string): string | null {
  return /(?:^|\/)net-(\d+)\/?$/.exec(dir)?.[1] ?? null;
}

/** Say which namespace an identity names, for the log. */
export function describeIdentity(id: NetnsIdentity): string {
  return `${id.initial ? "initial " : ""}namespace cookie ${id.cookie ?? "unknown"}, inode ${id.inode}, boot ${id.boot}`;
}

/**
 * Decide whether files saved by `saved` (null: by an older xvs that saved no identity) belong
 * to the namespace `here`. `inodeOfDir`: the inode the state directory is named after, if any.
 */
export function judgeOwner(saved: NetnsIdentity | null, here: NetnsIdentity, inodeOfDir: string | null): Ownership {
  if (saved === null) {
    if (!here.initial)
      return {
        ours: false,
        why: "saved by an older xvs that kept no namespace identity, and this is not the initial network namespace: it may be another namespace's whose inode number this one reuses",
      };
    if (inodeOfDir !== null && inodeOfDir !== here.inode)
      return {
        ours: false,
        why: `saved by an older xvs that kept no namespace identity, in the directory of inode ${inodeOfDir}, not this namespace's ${here.inode}`,
      };
    return {
      ours: true,
      why: "saved by an older xvs that kept no namespace identity; this is the initial network namespace, whose inode no other namespace can have had",
    };
  }
  if (saved.boot !== here.boot) {
    if (saved.initial && here.initial) return { ours: true, why: `saved by the initial network namespace before a reboot (boot ${saved.boot})` };
    if (!saved.initial)
      return {
        ours: false,
        why: `saved before a reboot (boot ${saved.boot}) by a namespace that did not survive it (cookie ${saved.cookie ?? "unknown"}, inode ${saved.inode})`,
      };
    return { ours: false, why: `saved before a reboot (boot ${saved.boot}) by the initial namespace, and this is not the initial namespace` };
  }
  if (saved.cookie !== null && here.cookie !== null) {
    if (saved.cookie === here.cookie) return { ours: true, why: `saved by this network namespace (cookie ${here.cookie})` };
    const reuse = saved.inode === here.inode ? ", whose inode number this one reuses" : "";
    return { ours: false, why: `saved by another network namespace (cookie ${saved.cookie}, inode ${saved.inode}${reuse}); this one is cookie ${here.cookie}` };
  }
  // a kernel without SO_NETNS_COOKIE: only the initial namespace is known to be the same one
  if (saved.initial && here.initial) return { ours: true, why: "saved by the initial network namespace in this boot (the kernel gives no namespace cookie)" };
  return {
    ours: false,
    why: "the kernel gives no namespace cookie (SO_NETNS_COOKIE, Linux >= 5.14), so a namespace other than the initial one cannot be told apart from an earlier one with the same inode",
  };
}
