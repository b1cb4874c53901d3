/**
 * The flow cache as the dataplane's control thread drives it (docs/flow-cache.md): turns the
 * steering program's flow lookups on or off (`xvs run --flow-cache on|off`), mirrors every Tables
 * generation and the next-hop MACs into the program's flow arrays (flow-maps.ts: a removed or
 * unavailable real server, a MAC or route change reach every cached flow with one array write),
 * mirrors the path MTUs the workers learn (flow-pmtu.ts), and tells each worker which map to
 * fill (flowcache.ts does the rest, per worker).
 */
import * as abi from "../ffi/abi.ts";
import type { SteerProgram } from "../ffi/bpf.ts";
import { log } from "../log.ts";
import type { Tables } from "../service/tables.ts";
import { FlowMaps } from "./flow-maps.ts";
import { FlowPathMtu } from "./flow-pmtu.ts";
import { PathMtu } from "./icmp.ts";

/** Default `flows` map size (--flow-cache-entries). */
export const FLOW_CACHE_DEFAULT_ENTRIES = abi.XVS_FLOW_DEFAULT_ENTRIES;
/** Largest --flow-cache-entries (16M: 112 bytes each in the kernel, ~2 GiB). */
export const FLOW_CACHE_MAX_ENTRIES = 1 << 24;

/** What a worker needs to fill the map (InitMessage.flowCache); absent when the cache is off. */
export interface FlowCacheInit {
  /** The `flows` map's fd (valid in every worker thread of this process). */
  fd: number;
  /** The map's size: a worker never tracks more. */
  entries: number;
}

export class FlowCacheControl {
  private readonly maps: FlowMaps | null;
  private readonly pmtu: FlowPathMtu;
  /** The generation last mirrored: what the path MTUs are mirrored against between generations. */
  private last: Tables | null = null;

  /**
   * `pmtu`: the path MTUs every worker learns into (PathMtu.allocate, InitMessage.pmtu); `now`:
   * the table clock (ticks) their expiry runs on.
   */
  constructor(
    private readonly prog: SteerProgram,
    readonly enabled: boolean,
    readonly entries: number,
    pmtu: SharedArrayBuffer = PathMtu.allocate(),
    private readonly now: () => number = () => 0,
  ) {
    prog.setFlowCache(enabled);
    this.maps = enabled ? new FlowMaps(prog) : null;
    this.pmtu = new FlowPathMtu(pmtu);
  }

  /** For a worker's init message. */
  workerInit(): FlowCacheInit | undefined {
    return this.enabled ? { fd: this.prog.fd("flows"), entries: this.entries } : undefined;
  }

  /** A new Tables generation (and the next hops as they are now). */
  tables(t: Tables, nh: Int32Array): void {
    if (!this.maps) return;
    this.last = t;
    try {
      this.maps.sync(t, nh, this.pmtu.tunnelMtu(t, this.now()));
    } catch (e) {
      this.pmtu.forget();
      // the XDP program trusts these arrays for every cached flow: a stale one could keep
      // forwarding to a real server just removed, so say so loudly
      log("error", "flow cache: cannot mirror the tables into the steering program", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** The program's flow stage counters summed over CPUs, in XVS_FLOW_* order; none while the cache is off. */
  stats(): number[] {
    return this.enabled ? this.prog.flowStats() : [];
  }

  /** Port `port` is a veth (veth-xdp.ts): frames back out of it are redirected to it, not XDP_TX'd. */
  setTxRedirect(port: number): void {
    if (!this.maps) return;
    try {
      this.maps.setTxRedirect(port, true);
    } catch (e) {
      log("error", "flow cache: cannot mark a veth port for transmission by redirect", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Port `port` does not take XDP frames (veth-xdp.ts): flows out of it go to AF_XDP while `on`. */
  setNoXdp(port: number, on: boolean): void {
    if (!this.maps) return;
    try {
      this.maps.setNoXdp(port, on);
    } catch (e) {
      log("error", "flow cache: cannot mark a port as not taking XDP frames", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /**
   * Periodic (housekeeping): a path MTU a worker learned from an ICMP error, or one that expired,
   * reaches the real server's `flow_reals` entry (that entry alone), so XDP leaves a cached TUN
   * flow's packets over it to TS (`bypass_mtu`), which answers them as the kernel would. Costs a
   * scan of the learned MTUs when nothing changed.
   */
  pathMtus(): void {
    if (!this.maps || !this.last) return;
    const t = this.last,
      now = this.now();
    if (!this.pmtu.changed(t, now)) return;
    try {
      this.maps.syncReals(t, this.pmtu.tunnelMtu(t, now));
    } catch (e) {
      this.pmtu.forget();
      log("error", "flow cache: cannot mirror learned path MTUs", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Periodic: next-hop MACs the resolver changed (only the differences are written). */
  nexthops(nh: Int32Array): void {
    if (!this.maps) return;
    try {
      this.maps.syncNexthops(nh);
    } catch (e) {
      log("error", "flow cache: cannot mirror next-hop MACs", { error: e instanceof Error ? e.message : String(e) });
    }
  }
}
