/**
 * Rate limits on the ICMP errors xvs generates, as the kernel's icmp_send applies them
 * (net/ipv4/icmp.c icmpv4_global_allow + icmpv4_xrlim_allow, net/ipv4/inetpeer.c
 * inet_peer_xrlim_allow): a global budget of icmp_msgs_per_sec (1000/s, burst 50), and per
 * destination host a token bucket of one message per icmp_ratelimit (1 s) with a burst of 6.
 * "Fragmentation needed" (and ICMPv6 "packet too big") are never limited: path MTU discovery
 * depends on them (icmp_ratemask 0x1818 leaves them out).
 *
 * Per-host state is a direct-mapped table (a host that collides with another starts afresh, as
 * a new inet_peer would): bounded memory, no allocation per packet.
 */

/** Peers tracked (power of two). */
const PEERS = 4096;
const P_A0 = 0,
  P_A3 = 3,
  P_TOKENS = 4,
  P_LAST = 5,
  P_WORDS = 6;
/** icmp_ratelimit: 1000 ms, in 10 ms ticks. */
const PEER_INTERVAL = 100;
/** XRLIM_BURST_FACTOR. */
const BURST_FACTOR = 6;
/** icmp_msgs_per_sec and icmp_msgs_burst. */
const GLOBAL_PER_SEC = 1000;
const GLOBAL_BURST = 50;

export class IcmpLimiter {
  private readonly peers = new Int32Array(PEERS * P_WORDS);
  private globalCredit = GLOBAL_BURST;
  private globalLast = 0;

  constructor() {
    // an empty slot must not look like a known peer with no tokens: mark it unused
    for (let i = 0; i < PEERS; i++) this.peers[i * P_WORDS + P_LAST] = 0x7fffffff;
  }

  /**
   * May an ICMP error of (type, code) go to host (a0..a3) at tick `now`? Consumes budget when
   * it may. `exempt` marks fragmentation needed / packet too big.
   */
  allow(now: number, exempt: boolean, a0: number, a1: number, a2: number, a3: number): boolean {
    if (exempt) return true;
    // global credit, refilled continuously (icmp_global_allow)
    const dt = (now - this.globalLast) | 0;
    if (dt > 0) {
      this.globalCredit = Math.min(GLOBAL_BURST, this.globalCredit + Math.floor((dt * GLOBAL_PER_SEC) / 100));
      this.globalLast = now;
    }
    if (this.globalCredit <= 0) return false;
    let h = Math.imul(a0 ^ Math.imul(a1, 0x9e3779b1) ^ Math.imul(a2, 0x85ebca6b) ^ Math.imul(a3, 0xc2b2ae35), 0x27d4eb2d);
    h ^= h >>> 15;
    const o = (h & (PEERS - 1)) * P_WORDS;
    const p = this.peers;
    let tokens: number;
    if (p[o + P_LAST] === 0x7fffffff || p[o + P_A0] !== a0 || p[o + 1] !== a1 || p[o + 2] !== a2 || p[o + P_A3] !== a3) {
      // a new peer starts with a full burst (inet_getpeer sets rate_last 60 s back)
      p[o + P_A0] = a0;
      p[o + 1] = a1;
      p[o + 2] = a2;
      p[o + P_A3] = a3;
      tokens = BURST_FACTOR * PEER_INTERVAL;
    } else {
      tokens = p[o + P_TOKENS] + ((now - p[o + P_LAST]) | 0);
      if (tokens > BURST_FACTOR * PEER_INTERVAL) tokens = BURST_FACTOR * PEER_INTERVAL;
    }
    p[o + P_LAST] = now;
    if (tokens < PEER_INTERVAL) {
      p[o + P_TOKENS] = tokens;
      return false;
    }
    p[o + P_TOKENS] = tokens - PEER_INTERVAL;
    this.globalCredit -= 1;
    return true;
  }
}
