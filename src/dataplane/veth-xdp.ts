/**
 * Which of our interfaces lose the frames the flow cache sends with XDP (docs/flow-cache.md
 * "veth peers"). A veth takes a frame sent by XDP_TX, or redirected into it, only when its peer
 * has NAPI: GRO on, or an XDP program attached (veth_xdp_xmit returns -ENXIO otherwise, and the
 * kernel drops the frame). Default veth peers have GRO off: containers and labs, the world users
 * have. The loss shows only in counters:
 * - XDP_TX (out the port it came in on): the veth's ethtool `rx_queue_N_xdp_tx_errors`
 *   (veth_xdp_flush_bq);
 * - a devmap redirect into it: its `tx_dropped` (veth_ndo_xdp_xmit adds to priv->dropped),
 *   while `tx_queue_N_xdp_xmit` (frames the peer's NAPI ring took) stays where it was.
 * Every housekeeping pass reads them for each veth we serve; when they move, the port is marked
 * XVS_FPORT_F_NO_XDP in the steering program's `flow_ports` (flows out of it then go to AF_XDP,
 * XVS_FLOW_BYPASS_PORT), logged once with the fix, and counted (/metrics).
 *
 * Why react rather than start veths unverified: nothing in our namespace says whether the peer
 * (usually in another namespace) has NAPI, and the only test is sending it an XDP frame. Marking
 * at the first pass that sees a loss bounds it to one pass (200 ms) of the first cached flows: a
 * TCP connection's retransmits then go through AF_XDP (the mark takes effect for every cached
 * flow at once: one array write) and it recovers; starting every veth as "no XDP" would give up
 * the cache on every correctly set-up veth, which is what the bench and GRO-on users run.
 * A false mark (tx_dropped moved for another reason, e.g. the peer down, while no XDP frame
 * reached the peer in that pass) costs speed, never packets; a mark lasts until xvs restarts.
 * Control thread only: one ioctl and one sysfs read per veth per pass.
 */
import { readFileSync } from "node:fs";
import { ethtoolDriver, ethtoolStats } from "../ffi/ethtool.ts";
import { log } from "../log.ts";

/** What one pass reads of a veth. */
export interface VethCounters {
  /** Σ rx_queue_N_xdp_tx: XDP_TX frames the peer took. */
  tx: number;
  /** Σ rx_queue_N_xdp_tx_errors: XDP_TX frames the peer did not take. */
  txErrors: number;
  /** Σ tx_queue_N_xdp_xmit: redirected frames the peer's NAPI ring took. */
  xmit: number;
  /** The interface's tx_dropped (a redirect the peer could not take at all lands here). */
  txDropped: number;
}

/** Sum an interface's ethtool statistics into VethCounters. */
export function vethCounters(stats: Map<string, number>, txDropped: number): VethCounters {
  const c: VethCounters = { tx: 0, txErrors: 0, xmit: 0, txDropped };
  for (const [name, v] of stats) {
    if (/^rx_queue_\d+_xdp_tx_errors$/.test(name)) c.txErrors += v;
    else if (/^rx_queue_\d+_xdp_tx$/.test(name)) c.tx += v;
    else if (/^tx_queue_\d+_xdp_xmit$/.test(name)) c.xmit += v;
  }
  return c;
}

/**
 * Frames XDP sent out of this veth and lost for want of NAPI between two reads, or 0. A loss
 * counts only in a pass where the peer took no XDP frame of that kind: with NAPI, every
 * XDP_TX that succeeds moves `tx` and every redirect moves `xmit`, and the errors then come
 * from a full ring under load (transient, the peer does take XDP frames) and tx_dropped from
 * the skb path, neither a reason to give up XDP on that port.
 */
export function lostXdpFrames(before: VethCounters, now: VethCounters): number {
  const tx = now.tx === before.tx ? now.txErrors - before.txErrors : 0;
  const redirect = now.xmit === before.xmit ? now.txDropped - before.txDropped : 0;
  return Math.max(0, tx) + Math.max(0, redirect);
}

interface Watched {
  port: number;
  name: string;
  last: VethCounters;
  lost: number;
  marked: boolean;
}

/** Per-interface state as /metrics shows it. */
export interface VethXdpState {
  iface: string;
  /** Frames sent by XDP that the veth lost, seen since start. */
  lost: number;
  /** 1 once the port is marked "does not take XDP frames". */
  noXdp: boolean;
}

export class VethXdpWatch {
  private readonly watched: Watched[] = [];

  /**
   * `ports[i]` is flow port i (the order of --iface). `mark(i)` writes the port's flag.
   * Interfaces ethtool cannot read or that are not veths are not watched.
   */
  constructor(
    ports: { name: string }[],
    private readonly mark: (port: number) => void,
  ) {
    ports.forEach((p, i) => {
      try {
        if (ethtoolDriver(p.name) !== "veth") return;
        this.watched.push({ port: i, name: p.name, last: read(p.name), lost: 0, marked: false });
      } catch (e) {
        log("warn", "flow cache: cannot read the driver of an interface; its XDP transmissions are not watched", {
          iface: p.name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    });
  }

  /** Housekeeping: read the counters, mark the ports whose XDP frames were lost. */
  check(): void {
    for (const w of this.watched) {
      let now: VethCounters;
      try {
        now = read(w.name);
      } catch {
        continue; // the interface went away: the dataplane's other checks say so
      }
      const lost = lostXdpFrames(w.last, now);
      w.last = now;
      if (lost === 0) continue;
      w.lost += lost;
      if (w.marked) continue;
      w.marked = true;
      this.mark(w.port);
      log("warn", "flow cache: the veth drops the frames XDP sends into it (its peer has no NAPI); its flows now go through AF_XDP", {
        iface: w.name,
        lost,
        fix: "enable GRO on the veth peer (ethtool -K PEER gro on) or attach an XDP program to it for XDP forwarding, then restart xvs",
      });
    }
  }

  /** For /metrics. */
  state(): VethXdpState[] {
    return this.watched.map((w) => ({ iface: w.name, lost: w.lost, noXdp: w.marked }));
  }
}

function read(name: string): VethCounters {
  const dropped = Number(readFileSync(`/sys/class/net/${name}/statistics/tx_dropped`, "utf8").trim()) || 0;
  return vethCounters(ethtoolStats(name), dropped);
}
