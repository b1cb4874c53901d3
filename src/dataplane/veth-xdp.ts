/**
 * Which of our interfaces would lose the frames the flow cache sends with XDP (docs/flow-cache.md
 * "veth peers"). A veth takes a frame sent by XDP_TX, or redirected into it, only when its peer
 * has NAPI: GRO on, or an XDP program attached (veth_xdp_xmit). Default veth peers have neither
 * (containers, labs: the world users have), and the loss shows only in counters: a redirect is
 * refused by xdp_do_redirect and counted in the *ingress* veth's rx_queue_N_drops, an XDP_TX in
 * the veth's rx_queue_N_xdp_tx_errors.
 *
 * Proactive, so that no packet is lost: the kernel says it. A veth advertises
 * NETDEV_XDP_ACT_NDO_XMIT in its XDP features exactly while its peer has NAPI
 * (veth_set_xdp_features, re-run when the peer's GRO or XDP program changes). The features are
 * read (generic netlink "netdev") before the program is attached and at every housekeeping pass
 * (200 ms): a veth without the bit is marked XVS_FPORT_F_NO_XDP in the steering program's
 * `flow_ports` (flows out of it go to AF_XDP, XVS_FLOW_BYPASS_PORT, for every cached flow at
 * once: one array write), and unmarked when the bit appears (the user turned GRO on). So a
 * default veth never gets an XDP frame, and a fixed one gets XDP forwarding back without a restart.
 * Reactive, as a backstop for what the bit might not cover: when the veth's own XDP_TX errors
 * move while no XDP_TX succeeded in that pass, the port is marked for good (until a restart).
 * A peer that loses NAPI between two passes (GRO turned off) can cost one pass of its cached
 * flows' packets; TCP retransmits them through AF_XDP once the port is marked.
 * Every change is logged once with the fix and shown in /metrics. Control thread only.
 */
import { ethtoolDriver, ethtoolStats, XDP_ACT_NDO_XMIT, xdpFeatures } from "../ffi/ethtool.ts";
import { log } from "../log.ts";

/** What a pass reads of a veth's ethtool statistics. */
export interface VethCounters {
  /** Σ rx_queue_N_xdp_tx: XDP_TX frames the peer took. */
  tx: number;
  /** Σ rx_queue_N_xdp_tx_errors: XDP_TX frames the peer did not take. */
  txErrors: number;
}

/** Sum an interface's ethtool statistics into VethCounters. */
export function vethCounters(stats: Map<string, number>): VethCounters {
  const c: VethCounters = { tx: 0, txErrors: 0 };
  for (const [name, v] of stats) {
    if (/^rx_queue_\d+_xdp_tx_errors$/.test(name)) c.txErrors += v;
    else if (/^rx_queue_\d+_xdp_tx$/.test(name)) c.tx += v;
  }
  return c;
}

/**
 * XDP_TX frames lost for want of NAPI between two reads, or 0. Errors count only in a pass where
 * no XDP_TX succeeded: with NAPI, errors come from a full ring under load (transient; the peer
 * does take XDP frames), not a reason to give up XDP on that port.
 */
export function lostXdpFrames(before: VethCounters, now: VethCounters): number {
  return now.tx === before.tx ? Math.max(0, now.txErrors - before.txErrors) : 0;
}

interface Watched {
  port: number;
  name: string;
  ifindex: number;
  last: VethCounters;
  /** The kernel's word: no NDO_XMIT in its XDP features. */
  noXmit: boolean;
  /** Lost XDP_TX frames were seen (sticky). */
  lossSeen: boolean;
  lost: number;
  marked: boolean;
  /** Times the port was marked (metrics). */
  marks: number;
}

/** Per-interface state as /metrics shows it. */
export interface VethXdpState {
  iface: string;
  /** XDP_TX frames the veth lost (peer without NAPI), seen since start. */
  lost: number;
  /** Times the port was marked "does not take XDP frames". */
  marks: number;
  /** Marked now. */
  noXdp: boolean;
}

export class VethXdpWatch {
  private readonly watched: Watched[] = [];

  /**
   * `ports[i]` is flow port i (the order of --iface). `set(i, on)` writes the port's flag.
   * Reads every veth once and marks those whose peers would drop XDP frames. Interfaces that
   * are not veths are not watched (a physical NIC's ndo_xdp_xmit takes the frames). `veth(i)` is
   * called once for each veth port: its frames back out of it go by redirect (xvs_flow.h
   * xf_transmit: after XDP_TX a peer with GRO but no XDP program is never woken).
   */
  constructor(
    ports: { name: string; ifindex: number }[],
    private readonly set: (port: number, on: boolean) => void,
    veth: (port: number) => void = () => {},
  ) {
    ports.forEach((p, i) => {
      try {
        if (ethtoolDriver(p.name) !== "veth") return;
        veth(i);
        const last = vethCounters(ethtoolStats(p.name));
        this.watched.push({ port: i, name: p.name, ifindex: p.ifindex, last, noXmit: false, lossSeen: false, lost: 0, marked: false, marks: 0 });
      } catch (e) {
        log("warn", "flow cache: cannot read the driver of an interface; its XDP transmissions are not watched", {
          iface: p.name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    });
    this.check();
  }

  /** Housekeeping: re-read features and counters, mark or unmark ports. */
  check(): void {
    for (const w of this.watched) {
      try {
        w.noXmit = (xdpFeatures(w.ifindex) & XDP_ACT_NDO_XMIT) === 0;
        const now = vethCounters(ethtoolStats(w.name));
        const lost = lostXdpFrames(w.last, now);
        w.last = now;
        if (lost > 0) {
          w.lost += lost;
          w.lossSeen = true;
        }
      } catch {
        continue; // the interface went away: the dataplane's other checks say so
      }
      const want = w.noXmit || w.lossSeen;
      if (want === w.marked) continue;
      w.marked = want;
      this.set(w.port, want);
      if (want) {
        w.marks++;
        log("warn", "flow cache: the veth's peer does not take XDP frames (no NAPI); flows leaving through it go through AF_XDP", {
          iface: w.name,
          why: w.noXmit ? "no ndo-xmit in its XDP features" : `${w.lost} XDP_TX frames lost`,
          fix: "enable GRO on the veth peer (ethtool -K PEER gro on) or attach an XDP program to it for XDP forwarding",
        });
      } else {
        log("info", "flow cache: the veth's peer takes XDP frames now; flows leaving through it are forwarded by XDP again", { iface: w.name });
      }
    }
  }

  /** For /metrics. */
  state(): VethXdpState[] {
    return this.watched.map((w) => ({ iface: w.name, lost: w.lost, marks: w.marks, noXdp: w.marked }));
  }
}
