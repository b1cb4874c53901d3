/**
 * IPVS protocol states and timeouts (net/netfilter/ipvs/ip_vs_proto_tcp.c, ip_vs_proto_udp.c):
 * the TCP state table indexed by direction, event and current state, which states count as
 * active connections, and the default per-state timeouts.
 */

export const S_NONE = 0;
export const S_ESTABLISHED = 1;
export const S_SYN_SENT = 2;
export const S_SYN_RECV = 3;
export const S_FIN_WAIT = 4;
export const S_TIME_WAIT = 5;
export const S_CLOSE = 6;
export const S_CLOSE_WAIT = 7;
export const S_LAST_ACK = 8;
export const S_LISTEN = 9;
export const S_SYNACK = 10;
/** Number of TCP states. */
export const TCP_STATES = 11;
/** The state a UDP (or other non-TCP) connection has for its whole life; shown as "UDP". */
export const S_UDP = 0;

/** State names as /proc/net/ip_vs_conn and `ipvsadm -Lnc` print them. */
export const TCP_STATE_NAMES = ["NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"];

/** States counted in ActiveConn (tcp_state_active_table; SYN_RECV counts since Linux 4.x). */
export const TCP_STATE_ACTIVE = new Uint8Array([0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]);

/** Default TCP timeouts in seconds, by state (tcp_timeouts[]). */
export const TCP_TIMEOUTS_SEC = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
/** Default UDP timeout in seconds. */
export const UDP_TIMEOUT_SEC = 300;
/** Timeout of a brand-new connection before its first state transition (ip_vs_conn_new: 3 s). */
export const NEW_CONN_TIMEOUT_SEC = 3;
/** Retry period for a template that still controls connections (ip_vs_conn_expire: 60 s). */
export const TEMPLATE_RETRY_SEC = 60;

/** Direction offsets into the state table (tcp_state_off). */
export const DIR_INPUT = 0;
export const DIR_OUTPUT = 4;
export const DIR_INPUT_ONLY = 8;

/** Event index for a TCP flags byte: rst 3, else syn 0, else fin 1, else ack 2, else -1. */
export function tcpEvent(flags: number): number {
  if (flags & 0x04) return 3;
  if (flags & 0x02) return 0;
  if (flags & 0x01) return 1;
  if (flags & 0x10) return 2;
  return -1;
}

// biome-ignore-start lint/correctness/noUnusedVariables: sNO and sSA name the table's first and last columns as the kernel does; the header comments use them
const sNO = S_NONE,
  sES = S_ESTABLISHED,
  sSS = S_SYN_SENT,
  sSR = S_SYN_RECV,
  sFW = S_FIN_WAIT,
  sTW = S_TIME_WAIT,
  sCL = S_CLOSE,
  sCW = S_CLOSE_WAIT,
  sLA = S_LAST_ACK,
  sLI = S_LISTEN,
  sSA = S_SYNACK;
// biome-ignore-end lint/correctness/noUnusedVariables: end of the column names

/**
 * next state = TCP_NEXT[(dirOff + event) * TCP_STATES + state]. Rows in the kernel's order:
 * INPUT syn/fin/ack/rst, OUTPUT syn/fin/ack/rst, INPUT_ONLY syn/fin/ack/rst.
 */
export const TCP_NEXT = new Uint8Array([
  // INPUT          sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
  /* syn */ sSR,
  sES,
  sES,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  /* fin */ sCL,
  sCW,
  sSS,
  sTW,
  sTW,
  sTW,
  sCL,
  sCW,
  sLA,
  sLI,
  sTW,
  /* ack */ sES,
  sES,
  sSS,
  sES,
  sFW,
  sTW,
  sCL,
  sCW,
  sCL,
  sLI,
  sES,
  /* rst */ sCL,
  sCL,
  sCL,
  sSR,
  sCL,
  sCL,
  sCL,
  sCL,
  sLA,
  sLI,
  sSR,
  // OUTPUT
  /* syn */ sSS,
  sES,
  sSS,
  sSR,
  sSS,
  sSS,
  sSS,
  sSS,
  sSS,
  sLI,
  sSR,
  /* fin */ sTW,
  sFW,
  sSS,
  sTW,
  sFW,
  sTW,
  sCL,
  sTW,
  sLA,
  sLI,
  sTW,
  /* ack */ sES,
  sES,
  sSS,
  sES,
  sFW,
  sTW,
  sCL,
  sCW,
  sLA,
  sES,
  sES,
  /* rst */ sCL,
  sCL,
  sSS,
  sCL,
  sCL,
  sTW,
  sCL,
  sCL,
  sCL,
  sCL,
  sCL,
  // INPUT_ONLY
  /* syn */ sSR,
  sES,
  sES,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  sSR,
  /* fin */ sCL,
  sFW,
  sSS,
  sTW,
  sFW,
  sTW,
  sCL,
  sCW,
  sLA,
  sLI,
  sTW,
  /* ack */ sES,
  sES,
  sSS,
  sES,
  sFW,
  sTW,
  sCL,
  sCW,
  sCL,
  sLI,
  sES,
  /* rst */ sCL,
  sCL,
  sCL,
  sSR,
  sCL,
  sCL,
  sCL,
  sCL,
  sLA,
  sLI,
  sCL,
]);

/**
 * Return the next TCP state for a packet with `flags` seen in direction `dirOff` (DIR_*) by a
 * connection in `state`. Packets without SYN/FIN/ACK/RST move the connection to CLOSE, as in
 * set_tcp_state.
 */
export function tcpNextState(dirOff: number, flags: number, state: number): number {
  const ev = tcpEvent(flags);
  if (ev < 0) return S_CLOSE;
  return TCP_NEXT[(dirOff + ev) * TCP_STATES + state];
}
