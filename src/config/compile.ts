/**
 * Compile the control-plane model (and the kernel's routes) into one `Tables` generation:
 * fresh SharedArrayBuffers the workers can share without copying. Called on the control thread
 * after every change; the workers swap to the new generation between bursts.
 */
import { SCHEDULER_BY_ID } from "../sched/registry.ts";
import type { RouteSnapshot } from "../nexthop/resolver.ts";
import type { Model } from "./model.ts";
import { TICKS_PER_SEC } from "../service/clock.ts";
import { FORWARD_CODE, TUNNEL_CSUM_CODE, TUNNEL_TYPE_CODE } from "../service/forwarding.ts";
import {
  DEST_ADDR,
  DEST_EPOCH,
  DEST_FLAGS,
  DEST_FWD,
  DEST_LAST_WEIGHT,
  DEST_LTHRESH,
  DEST_MTU,
  DEST_NEXTHOP,
  DEST_PORT,
  DEST_SVC,
  DEST_TUN,
  DEST_TUN_PORT,
  DEST_TUN_SRC,
  DEST_UTHRESH,
  DEST_WEIGHT,
  DEST_WORDS,
  DESTF_AVAILABLE,
  DESTF_USED,
  DESTF_V6,
  hashService,
  MAX_DESTS,
  MAX_SERVICES,
  SET_CONN_REUSE_MODE,
  SET_EXPIRE_NODEST_CONN,
  SET_EXPIRE_QUIESCENT_TEMPLATE,
  SET_SLOPPY_TCP,
  SET_TCP_TICKS,
  SET_TCPFIN_TICKS,
  SET_UDP_TICKS,
  SET_WORDS,
  SVC_ADDR,
  SVC_DEST_N,
  SVC_DEST_OFF,
  SVC_EPOCH,
  SVC_FLAGS,
  SVC_FWMARK,
  SVC_NETMASK,
  SVC_PORT,
  SVC_PROTO,
  SVC_PTIMEOUT,
  SVC_SCHED,
  SVC_SCHED_EPOCH,
  SVC_TABLE_N,
  SVC_TABLE_OFF,
  SVC_WORDS,
  SVCF_FWMARK,
  SVCF_ONEPACKET,
  SVCF_PERSISTENT,
  SVCF_SCHED1,
  SVCF_SCHED2,
  SVCF_SCHED3,
  SVCF_USED,
  SVCF_V6,
  type Tables,
} from "../service/tables.ts";

function shared(words: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Math.max(1, words) * 4));
}

/** Build generation `generation` from the model and a route snapshot. */
export function compile(model: Model, routes: RouteSnapshot, generation: number): Tables {
  const svc = shared(MAX_SERVICES * SVC_WORDS);
  const dest = shared(MAX_DESTS * DEST_WORDS);
  const destList = shared(model.services.reduce((n, s) => n + s.dests.length, 0));
  let bucketWords = 0;
  for (const s of model.services) bucketWords += SCHEDULER_BY_ID[s.schedId]?.tableSize?.(s) ?? 0;
  const buckets = shared(bucketWords);

  let listOff = 0,
    bucketOff = 0,
    hasPortZero = false;
  let slots = 1;
  while (slots < model.services.length * 2) slots *= 2;
  const svcIndex = shared(slots);

  for (const s of model.services) {
    const o = s.id * SVC_WORDS;
    const spec = s.spec;
    let flags = SVCF_USED;
    if (spec.persistence) flags |= SVCF_PERSISTENT;
    if (spec.onePacket) flags |= SVCF_ONEPACKET;
    if (s.fwmark) flags |= SVCF_FWMARK;
    if (s.family === 6) flags |= SVCF_V6;
    for (const f of spec.schedFlags) {
      if (f === "sh-fallback" || f === "mh-fallback" || f === "flag-1") flags |= SVCF_SCHED1;
      if (f === "sh-port" || f === "mh-port" || f === "flag-2") flags |= SVCF_SCHED2;
      if (f === "flag-3") flags |= SVCF_SCHED3;
    }
    svc[o + SVC_FLAGS] = flags;
    svc[o + SVC_PROTO] = s.proto;
    if (s.addr) for (let k = 0; k < 4; k++) svc[o + SVC_ADDR + k] = s.addr.words[k];
    svc[o + SVC_PORT] = s.port;
    svc[o + SVC_FWMARK] = s.fwmark | 0;
    svc[o + SVC_SCHED] = s.schedId;
    svc[o + SVC_PTIMEOUT] = (spec.persistence?.timeout ?? 0) * TICKS_PER_SEC;
    for (let k = 0; k < 4; k++) svc[o + SVC_NETMASK + k] = s.netmask[k];
    svc[o + SVC_DEST_OFF] = listOff;
    svc[o + SVC_DEST_N] = s.dests.length;
    svc[o + SVC_EPOCH] = s.epoch;
    svc[o + SVC_SCHED_EPOCH] = s.schedEpoch;
    for (const d of s.dests) destList[listOff++] = d.id;
    const sched = SCHEDULER_BY_ID[s.schedId];
    const n = sched?.tableSize?.(s) ?? 0;
    if (n > 0) {
      sched!.buildTable!(s, buckets, bucketOff);
      svc[o + SVC_TABLE_OFF] = bucketOff;
      svc[o + SVC_TABLE_N] = n;
      bucketOff += n;
    } else {
      svc[o + SVC_TABLE_OFF] = -1;
    }
    if (!s.fwmark) {
      if (s.port === 0) hasPortZero = true;
      const a = s.addr!.words;
      let i = hashService(s.proto, a[0], a[1], a[2], a[3], s.port) & (slots - 1);
      while (svcIndex[i] !== 0) i = (i + 1) & (slots - 1);
      svcIndex[i] = s.id + 1;
    }
  }

  for (const d of model.allDests()) {
    const o = d.id * DEST_WORDS;
    const spec = d.spec;
    dest[o + DEST_FLAGS] = DESTF_USED | (d.available ? DESTF_AVAILABLE : 0) | (d.addr.family === 6 ? DESTF_V6 : 0);
    dest[o + DEST_FWD] = FORWARD_CODE[spec.forward];
    dest[o + DEST_WEIGHT] = spec.weight;
    dest[o + DEST_LAST_WEIGHT] = d.lastWeight;
    dest[o + DEST_UTHRESH] = spec.upperThreshold;
    dest[o + DEST_LTHRESH] = spec.lowerThreshold;
    for (let k = 0; k < 4; k++) dest[o + DEST_ADDR + k] = d.addr.words[k];
    dest[o + DEST_PORT] = d.port;
    dest[o + DEST_SVC] = d.svcId;
    const r = routes.dests.get(d.id);
    dest[o + DEST_NEXTHOP] = r ? r.nexthop : -1;
    dest[o + DEST_MTU] = r ? r.mtu : 0;
    if (r) for (let k = 0; k < 4; k++) dest[o + DEST_TUN_SRC + k] = r.src[k];
    const tun = spec.tunnel;
    dest[o + DEST_TUN] = tun ? TUNNEL_TYPE_CODE[tun.type] | (TUNNEL_CSUM_CODE[tun.csum ?? "nocsum"] << 8) : 0;
    dest[o + DEST_TUN_PORT] = tun?.port ?? 0;
    dest[o + DEST_EPOCH] = d.epoch;
  }

  const settings = shared(SET_WORDS);
  settings[SET_TCP_TICKS] = model.timeouts.tcp * TICKS_PER_SEC;
  settings[SET_TCPFIN_TICKS] = model.timeouts.tcpfin * TICKS_PER_SEC;
  settings[SET_UDP_TICKS] = model.timeouts.udp * TICKS_PER_SEC;
  settings[SET_EXPIRE_NODEST_CONN] = model.settings.expireNodestConn ? 1 : 0;
  settings[SET_EXPIRE_QUIESCENT_TEMPLATE] = model.settings.expireQuiescentTemplate ? 1 : 0;
  settings[SET_SLOPPY_TCP] = model.settings.sloppyTcp ? 1 : 0;
  settings[SET_CONN_REUSE_MODE] = model.settings.connReuseMode;

  return {
    generation,
    svc,
    svcIndex,
    hasPortZero,
    destList,
    dest,
    buckets,
    settings,
    ports: routes.ports,
    fib: routes.fib,
    fibRows: routes.fibRows,
    neigh: routes.neigh,
  };
}

/** Route words for a model without a dataplane (tests, the CLI's dry runs). */
export function emptyRoutes(): RouteSnapshot {
  return { ports: shared(0), fib: shared(0), fibRows: 0, neigh: shared(6), dests: new Map(), localAddrs: [] };
}
