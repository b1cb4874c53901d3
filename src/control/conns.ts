/**
 * Connection listing (GET /v1/conns, `ipvsadm -Lnc`): reads the workers' connection records
 * read-only, through the shared buffers, one bounded page at a time so that a large table
 * never stalls the control thread. The worker keeps writing while we read: a record that
 * changes under us may show a mixed state for one listing, which is what /proc/net/ip_vs_conn
 * readers of a busy kernel see too; nothing here can throw on such a record.
 *
 * Rows come in (worker, record id) order; the cursor is "worker:record" of the next row.
 */
import {
  CF_ASSURED,
  CF_DEST_V6,
  CF_FWD_MASK,
  CF_TEMPLATE,
  CF_USED,
  CF_V6,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
  HDR_HIGH,
  TICKS_PER_SEC,
} from "../conn/table.ts";
import { TCP_STATE_NAMES } from "../conn/state.ts";
import { ipText, type IpAddr } from "../service/addr.ts";
import { FORWARD_BY_CODE } from "../service/forwarding.ts";
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from "../wire/fields.ts";
import type { ConnViewT, ConnsPageT } from "./schemas.ts";

/** What the listing needs of one worker's table. */
export interface ConnRecords {
  rec: Int32Array;
  header: Int32Array;
  capacity: number;
}

function addr(rec: Int32Array, o: number, v6: boolean): IpAddr {
  return v6 ? { family: 6, words: [rec[o], rec[o + 1], rec[o + 2], rec[o + 3]] } : { family: 4, words: [rec[o], 0, 0, 0] };
}

function protoName(proto: number): ConnViewT["protocol"] {
  return proto === PROTO_TCP ? "TCP" : proto === PROTO_UDP ? "UDP" : proto === PROTO_SCTP ? "SCTP" : "IP";
}

/** Decode one record; null when the slot is free. */
export function connView(rec: Int32Array, id: number, nowTick: number): ConnViewT | null {
  const o = id * CONN_WORDS;
  const fl = rec[o + CONN_FLAGS];
  if ((fl & CF_USED) === 0) return null;
  const ps = rec[o + CONN_PROTO_STATE];
  const proto = (ps >>> 8) & 0xff;
  const state = ps & 0xff;
  const template = (fl & CF_TEMPLATE) !== 0;
  const v6 = (fl & CF_V6) !== 0;
  const cv = rec[o + CONN_CPORT_VPORT];
  const left = (rec[o + CONN_EXPIRES] - nowTick) | 0;
  // ip_vs_state_name: templates are NONE until a controlled connection is established
  const stateName = template
    ? (fl & CF_ASSURED) !== 0
      ? "ASSURED"
      : "NONE"
    : proto === PROTO_TCP
      ? (TCP_STATE_NAMES[state] ?? "ERR!")
      : proto === PROTO_UDP
        ? "UDP"
        : "NONE";
  // a fwmark template's "virtual address" is the mark (ip_vs_conn_fill_param with &fwmark)
  const fwmarkTemplate = template && proto === 0;
  return {
    protocol: protoName(proto),
    state: stateName,
    expiresSec: left > 0 ? Math.floor(left / TICKS_PER_SEC) : 0,
    template,
    forward: FORWARD_BY_CODE[fl & CF_FWD_MASK & 3],
    client: { address: ipText(addr(rec, o + CONN_CADDR, v6)), port: (cv >>> 16) & 0xffff },
    virtual: { address: ipText(addr(rec, o + CONN_VADDR, v6 && !fwmarkTemplate)), port: cv & 0xffff },
    // CF_DEST_V6 marks a v4 service's IPv6 tunnel real server; a v6 client side implies a v6 one
    dest: { address: ipText(addr(rec, o + CONN_DADDR, v6 || (fl & CF_DEST_V6) !== 0)), port: rec[o + CONN_DPORT] & 0xffff },
  };
}

/** Parse a cursor "worker:record" (already validated by the schema). */
function parseCursor(cursor: string | undefined): [number, number] {
  if (!cursor) return [0, 0];
  const [w, r] = cursor.split(":").map(Number);
  return [w, r];
}

/**
 * Return up to `limit` connections starting at `cursor`, and the cursor of the next page.
 * `nowTick` is the table clock (dataplane/protocol.ts ticksSince).
 */
export function listConns(tables: ConnRecords[], nowTick: number, cursor: string | undefined, limit: number): ConnsPageT {
  const conns: ConnViewT[] = [];
  let [w, id] = parseCursor(cursor);
  for (; w < tables.length; w++, id = 0) {
    const t = tables[w];
    const high = Math.min(t.header[HDR_HIGH], t.capacity);
    for (; id < high; id++) {
      if (conns.length === limit) return { conns, next: `${w}:${id}` };
      const c = connView(t.rec, id, nowTick);
      if (c) conns.push(c);
    }
  }
  return { conns, next: null };
}
