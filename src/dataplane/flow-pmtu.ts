/**
 * The path MTUs the workers learn from ICMP errors (icmp.ts PathMtu, one shared memory for all
 * workers), as the flow cache's mirror of `flow_reals` reads them on the control thread: a TUN
 * real server's learned MTU (and its end after PMTU_EXPIRES) must reach XDP, or a cached flow
 * keeps being tunnelled at the route's MTU where TS answers "fragmentation needed" / "too big".
 * Read-only here: only the workers learn (and clear an expired entry, PathMtu.effective).
 */
import { DEST_FLAGS, DEST_FWD, DEST_WORDS, DESTF_USED, FWD_TUNNEL, MAX_DESTS, type Tables } from "../service/tables.ts";
import type { TunnelMtu } from "./flow-maps.ts";
import { PathMtu, pmtuKey } from "./icmp.ts";

export class FlowPathMtu {
  private readonly pm = new PathMtu();
  /** Per dest, the learned MTU last mirrored (0: none); -1 everywhere: mirror again whatever it is. */
  private readonly mirrored = new Int32Array(MAX_DESTS);

  /** `buffer`: the workers' shared path MTUs (PathMtu.allocate, InitMessage.pmtu). */
  constructor(buffer: SharedArrayBuffer) {
    this.pm.share(buffer);
  }

  /** The learned MTU in force for TUN dest `d` of `t` at tick `now`; 0 when none (or it expired, or the id names another server now). */
  learned(t: Tables, d: number, now: number): number {
    const m = this.pm.mtu[d];
    if (m === 0) return 0;
    const o = d * DEST_WORDS;
    if (o + DEST_WORDS > t.dest.length) return 0;
    if (this.pm.key[d] !== pmtuKey(t.dest, o) || ((this.pm.expires[d] - now) | 0) <= 0) return 0;
    return m;
  }

  /** Whether some TUN dest's learned MTU differs from what was last mirrored (learned, lowered, expired). */
  changed(t: Tables, now: number): boolean {
    const n = Math.min(MAX_DESTS, (t.dest.length / DEST_WORDS) | 0);
    for (let d = 0; d < n; d++) {
      const o = d * DEST_WORDS;
      if ((t.dest[o + DEST_FLAGS] & DESTF_USED) === 0 || t.dest[o + DEST_FWD] !== FWD_TUNNEL) continue;
      if (this.learned(t, d, now) !== this.mirrored[d]) return true;
    }
    return false;
  }

  /**
   * For FlowMaps.sync/syncReals: the MTU a TUN dest is tunnelled with, as FastPath.tunnelOut
   * takes it (PathMtu.effective: the lower of the route's and the learned one); records what
   * it hands out as mirrored.
   */
  tunnelMtu(t: Tables, now: number): TunnelMtu {
    return (d, tablesMtu) => {
      const m = this.learned(t, d, now);
      this.mirrored[d] = m;
      if (m === 0) return tablesMtu;
      return tablesMtu > 0 && tablesMtu < m ? tablesMtu : m;
    };
  }

  /** The mirror failed: compare against nothing, so the next check writes again. */
  forget(): void {
    this.mirrored.fill(-1);
  }
}
