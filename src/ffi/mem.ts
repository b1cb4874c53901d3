/**
 * Memory advice through the shim (native/shim/xvs_mem.c), for tables allocated once at start.
 */
import { ptr } from "bun:ffi";
import { lib } from "./lib.ts";

/**
 * Ask for transparent huge pages under a large buffer the fast path reads at random, before
 * anything touches it (pages already faulted in stay small until khugepaged merges them). Best
 * effort: returns the number of 2 MiB pages advised, 0 when the buffer is too small, the kernel
 * has THP disabled, or the shim cannot be loaded.
 */
export function adviseHugePages(buf: ArrayBufferLike): number {
  if (buf.byteLength < 4 << 20) return 0;
  try {
    const r = lib().xvs_mem__hugepages(ptr(new Uint8Array(buf)), buf.byteLength);
    return r > 0 ? r : 0;
  } catch {
    return 0;
  }
}
