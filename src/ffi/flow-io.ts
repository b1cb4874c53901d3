/**
 * The flow cache's `flows` map as a dataplane worker reaches it: by file descriptor (the
 * steering program is loaded by the control thread of the same process, so its fds are valid in
 * every worker thread). Unlike SteerProgram's methods these never throw: a worker's flush must
 * not end its loop; a failed call returns -errno and the caller counts the entries as refused.
 */
import { ptr } from "bun:ffi";
import * as abi from "./abi.ts";
import { lib } from "./lib.ts";

/** A batch as FlowBatch (dataplane/flow-entry.ts) holds it. */
export interface FlowBatchView {
  keys: Uint8Array;
  values: Uint8Array;
  status: Uint8Array;
  n: number;
}

export class FlowMapFd {
  constructor(private readonly fd: number) {}

  /** Write b.n entries; b.status per entry. Returns how many were written, or -errno. */
  update(b: FlowBatchView): number {
    if (b.n === 0) return 0;
    return lib().xvs_map__update_batch(this.fd, ptr(b.keys), ptr(b.values), b.n, abi.XVS_FLOW_KEY_SIZE, abi.XVS_FLOW_VALUE_SIZE, 0, ptr(b.status));
  }

  /** Delete b.n keys (a missing one: status ENOENT). Returns how many were deleted, or -errno. */
  delete(b: FlowBatchView): number {
    if (b.n === 0) return 0;
    return lib().xvs_map__delete_batch(this.fd, ptr(b.keys), b.n, abi.XVS_FLOW_KEY_SIZE, ptr(b.status));
  }

  /** Read the values of b.n keys into b.values. Returns how many were found, or -errno. */
  lookup(b: FlowBatchView): number {
    if (b.n === 0) return 0;
    return lib().xvs_map__lookup_keys(this.fd, ptr(b.keys), ptr(b.values), b.n, abi.XVS_FLOW_KEY_SIZE, abi.XVS_FLOW_VALUE_SIZE, ptr(b.status));
  }
}
