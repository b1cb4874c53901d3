/**
 * Recent events for the dashboard: a small ring of what changed in the table (services and real
 * servers added, removed, edited; weights; health state), newest last.
 *
 * Events are found by comparing the table before and after each committed change
 * (Daemon.changeListeners), not by hooking each route: every change goes through Daemon.mutate,
 * so the diff catches changes from every source (the API, the CLI, a config reload, the health
 * checker) alike; a changed `daemon.model` identity is the cheap "something changed" test. A removed real server's event carries its
 * spec, so that the page can add it back with its previous settings even after a reload.
 */
import { ipText } from "../../service/addr.ts";
import type { Dest, Model, Service } from "../../config/model.ts";
import { destId, serviceId } from "../ids.ts";

/** Events kept (the page shows the newest of them). */
export const EVENT_RING_SIZE = 200;

export type UiEventKind = "service-added" | "service-removed" | "service-changed" | "dest-added" | "dest-removed" | "dest-changed" | "health";

/** One event as the page gets it. */
export interface UiEvent {
  /** Grows by one per event, from 1: the page keeps what it has seen. */
  seq: number;
  /** When it was seen, ms since the epoch. */
  ts: number;
  kind: UiEventKind;
  /** Service id (ids.ts). */
  service: string;
  /** Real server id, for dest-* and health events. */
  dest?: string;
  /** What happened, for a human. */
  text: string;
  /** dest-removed: the real server's spec as it was (what "add back" posts). */
  spec?: unknown;
}

/** A bounded ring of events, oldest dropped first. */
export class EventRing {
  private readonly items: UiEvent[] = [];
  private seq = 0;

  constructor(private readonly capacity = EVENT_RING_SIZE) {}

  push(e: Omit<UiEvent, "seq">): UiEvent {
    const ev = { seq: ++this.seq, ...e };
    this.items.push(ev);
    if (this.items.length > this.capacity) this.items.shift();
    return ev;
  }

  /** The newest `n` events, oldest first. */
  recent(n = this.capacity): UiEvent[] {
    return this.items.slice(Math.max(0, this.items.length - n));
  }

  get size(): number {
    return this.items.length;
  }
}

function destKey(d: Dest): string {
  return destId(ipText(d.addr), d.port);
}

/** The fields that make a real server's line in the page differ, as text ("weight 3 -> 0"). */
function destChange(a: Dest, b: Dest): string {
  const parts: string[] = [];
  if (a.spec.weight !== b.spec.weight) parts.push(`weight ${a.spec.weight} -> ${b.spec.weight}`);
  if (a.spec.forward !== b.spec.forward) parts.push(`forward ${a.spec.forward} -> ${b.spec.forward}`);
  if (a.spec.upperThreshold !== b.spec.upperThreshold || a.spec.lowerThreshold !== b.spec.lowerThreshold) {
    parts.push(`thresholds ${a.spec.upperThreshold}/${a.spec.lowerThreshold} -> ${b.spec.upperThreshold}/${b.spec.lowerThreshold}`);
  }
  if (parts.length === 0 && JSON.stringify(a.spec) !== JSON.stringify(b.spec)) parts.push("options changed");
  return parts.join(", ");
}

/**
 * Record in `ring` what differs between two tables, at time `ts`. Services are matched by id,
 * real servers by address:port within their service.
 */
export function diffModels(before: Model, after: Model, ring: EventRing, ts: number): void {
  const old = new Map<string, Service>(before.services.map((s) => [serviceId(s.spec), s]));
  const now = new Map<string, Service>(after.services.map((s) => [serviceId(s.spec), s]));
  for (const [id, s] of old) {
    if (!now.has(id)) ring.push({ ts, kind: "service-removed", service: id, text: `service ${id} removed (${s.dests.length} real servers)` });
  }
  for (const [id, s] of now) {
    const was = old.get(id);
    if (!was) {
      ring.push({ ts, kind: "service-added", service: id, text: `service ${id} added (${s.spec.scheduler ?? "wlc"}, ${s.dests.length} real servers)` });
      continue;
    }
    if (JSON.stringify(was.spec) !== JSON.stringify(s.spec))
      ring.push({ ts, kind: "service-changed", service: id, text: `service ${id} options changed (scheduler ${s.spec.scheduler ?? "wlc"})` });
    const wasDests = new Map(was.dests.map((d) => [destKey(d), d]));
    const nowDests = new Map(s.dests.map((d) => [destKey(d), d]));
    for (const [k, d] of wasDests) {
      if (!nowDests.has(k))
        ring.push({
          ts,
          kind: "dest-removed",
          service: id,
          dest: k,
          text: `${k} removed from ${id} (weight was ${d.spec.weight})`,
          spec: structuredClone(d.spec),
        });
    }
    for (const [k, d] of nowDests) {
      const w = wasDests.get(k);
      if (!w) ring.push({ ts, kind: "dest-added", service: id, dest: k, text: `${k} added to ${id} (${d.spec.forward}, weight ${d.spec.weight})` });
      else {
        const change = destChange(w, d);
        if (change) ring.push({ ts, kind: "dest-changed", service: id, dest: k, text: `${k} of ${id}: ${change}` });
      }
    }
  }
}

/** Watches a daemon's table and health states and records their changes. */
export class ChangeWatcher {
  readonly ring: EventRing;
  private model: Model;
  /** Last health state seen per "service|dest". */
  private health = new Map<string, string>();

  constructor(model: Model, ring = new EventRing()) {
    this.model = model;
    this.ring = ring;
  }

  /** Compare with the table seen last time (cheap when it is the same object). */
  observeModel(model: Model, ts: number): void {
    if (model === this.model) return;
    diffModels(this.model, model, this.ring, ts);
    this.model = model;
  }

  /**
   * Record health state changes of real servers as the API shows them (`health.state` of a
   * dest view, when the daemon runs checkers). The first state seen is not an event.
   */
  observeHealth(services: readonly { id: string; dests: readonly { id: string; health?: { state?: string; reason?: string } }[] }[], ts: number): void {
    const seen = new Map<string, string>();
    for (const s of services) {
      for (const d of s.dests) {
        const state = d.health?.state;
        if (state === undefined) continue;
        const key = `${s.id}|${d.id}`;
        seen.set(key, state);
        const was = this.health.get(key);
        if (was !== undefined && was !== state) {
          const why = d.health?.reason ? `: ${d.health.reason}` : "";
          this.ring.push({ ts, kind: "health", service: s.id, dest: d.id, text: `${d.id} of ${s.id} is ${state}${why}` });
        }
      }
    }
    this.health = seen;
  }
}
