/**
 * Connection accounting as IPVS does it (ip_vs_conn.c ip_vs_bind_dest/ip_vs_unbind_dest,
 * ip_vs_proto_tcp.c set_tcp_state): which counter (ActiveConn, InActConn, PersistConn) a
 * connection is in, and the OVERLOAD flag that the upper and lower thresholds drive.
 */
import type { Counters } from "../stats/counters.ts";
import { DEST_LTHRESH, DEST_UTHRESH, DEST_WORDS, type Tables } from "../service/tables.ts";
import { CF_INACTIVE, CF_TEMPLATE, CONN_DEST, CONN_FLAGS, CONN_PROTO_STATE, CONN_WORDS, type ConnTable } from "./table.ts";
import { TCP_STATE_ACTIVE } from "./state.ts";

/** ip_vs_bind_dest: count a connection on its dest; raise OVERLOAD when the upper threshold is reached. */
export function bindDest(c: Counters, t: Tables, dest: number, flags: number): void {
  if (flags & CF_TEMPLATE) c.persist[dest] += 1;
  else if (flags & CF_INACTIVE) c.inactive[dest] += 1;
  else c.active[dest] += 1;
  const u = t.dest[dest * DEST_WORDS + DEST_UTHRESH];
  if (u !== 0 && c.active[dest] + c.inactive[dest] >= u) c.overload[dest] = 1;
}

/** ip_vs_unbind_dest: uncount; clear OVERLOAD below the lower threshold (or 3/4 of the upper one, or always when neither is set). */
export function unbindDest(c: Counters, t: Tables, dest: number, flags: number): void {
  if (flags & CF_TEMPLATE) c.persist[dest] -= 1;
  else if (flags & CF_INACTIVE) c.inactive[dest] -= 1;
  else c.active[dest] -= 1;
  const dOff = dest * DEST_WORDS;
  const l = t.dest[dOff + DEST_LTHRESH], u = t.dest[dOff + DEST_UTHRESH];
  const total = c.active[dest] + c.inactive[dest];
  if (l !== 0) {
    if (total < l) c.overload[dest] = 0;
  } else if (u !== 0) {
    if (total * 4 < u * 3) c.overload[dest] = 0;
  } else {
    c.overload[dest] = 0;
  }
}

/**
 * set_tcp_state's bookkeeping: move connection `id` to state `next`, moving it between
 * ActiveConn and InActConn as tcp_state_active says, and re-arm it with `timeoutTicks`.
 */
export function setTcpState(conns: ConnTable, c: Counters, id: number, proto: number, next: number, timeoutTicks: number, now: number): void {
  const rec = conns.rec, o = id * CONN_WORDS;
  const ps = rec[o + CONN_PROTO_STATE];
  if ((ps & 0xff) !== next) {
    const flags = rec[o + CONN_FLAGS];
    const dest = rec[o + CONN_DEST];
    if ((flags & CF_INACTIVE) === 0 && TCP_STATE_ACTIVE[next] === 0) {
      c.active[dest] -= 1;
      c.inactive[dest] += 1;
      rec[o + CONN_FLAGS] = flags | CF_INACTIVE;
    } else if ((flags & CF_INACTIVE) !== 0 && TCP_STATE_ACTIVE[next] !== 0) {
      c.active[dest] += 1;
      c.inactive[dest] -= 1;
      rec[o + CONN_FLAGS] = flags & ~CF_INACTIVE;
    }
    rec[o + CONN_PROTO_STATE] = (proto << 8) | next;
  }
  conns.rearm(id, now, timeoutTicks);
}
