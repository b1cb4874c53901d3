/**
 * The dashboard's live feed: server-sent events (text/event-stream), one `snapshot` event per
 * second to every connected page.
 *
 * Cost on the daemon is bounded: one snapshot is built and serialised per tick whatever the
 * number of clients (each gets the same bytes); at most MAX_UI_CLIENTS streams are open (the
 * next one gets 503); a client that does not read (its queue grows past MAX_BACKLOG_BYTES) is
 * dropped rather than buffered without end; a closed connection is removed at once (the
 * stream's cancel, or the request's abort signal). With no client connected the tick does
 * nothing but compare table identities (the event ring is fed by Daemon.changeListeners).
 */
import type { Daemon } from "../daemon.ts";
import { ChangeWatcher } from "./events.ts";
import { SNAPSHOT_EVENTS, takeSnapshot } from "./snapshot.ts";

/** Streams open at once. */
export const MAX_UI_CLIENTS = 16;
/** Period of snapshots and of the change watcher, ms. */
export const UI_TICK_MS = 1000;
/** Bytes queued for one client beyond which it is considered gone. */
export const MAX_BACKLOG_BYTES = 4 << 20;

interface Client {
  controller: ReadableStreamDefaultController<Uint8Array>;
}

const enc = new TextEncoder();

/** The feed of one daemon: the change watcher, the clients, the tick. */
export class UiHub {
  readonly watcher: ChangeWatcher;
  private readonly clients = new Set<Client>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly daemon: Daemon) {
    this.watcher = new ChangeWatcher(daemon.model);
    // every committed change, at once: two changes within a tick stay two events
    daemon.changeListeners.push((_before, after) => {
      try {
        this.watcher.observeModel(after, daemon.clock());
      } catch {
        // the dashboard's bookkeeping never fails a change that is already committed
      }
    });
    // the watcher runs whether or not a page is open, so that an operator who opens one after
    // an incident sees what changed; unref: it never keeps a process alive
    this.timer = setInterval(() => this.tick(), UI_TICK_MS);
    this.timer.unref?.();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Build the current snapshot (the watcher is brought up to date first). */
  snapshot() {
    const now = this.daemon.clock();
    this.watcher.observeModel(this.daemon.model, now);
    const snap = takeSnapshot(this.daemon, [], this.clients.size);
    this.watcher.observeHealth(snap.services, now);
    snap.events = this.watcher.ring.recent(SNAPSHOT_EVENTS);
    return snap;
  }

  private tick(): void {
    if (this.clients.size === 0) {
      this.watcher.observeModel(this.daemon.model, this.daemon.clock());
      return;
    }
    const bytes = enc.encode(`event: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`);
    for (const c of this.clients) this.send(c, bytes);
  }

  private send(c: Client, bytes: Uint8Array): void {
    // with a high-water mark of 0, desiredSize is minus the bytes the client has not read yet
    const backlog = -(c.controller.desiredSize ?? 0);
    if (backlog > MAX_BACKLOG_BYTES) {
      this.drop(c);
      try {
        c.controller.close();
      } catch {
        // already closed
      }
      return;
    }
    try {
      c.controller.enqueue(bytes);
    } catch {
      this.drop(c);
    }
  }

  private drop(c: Client): void {
    this.clients.delete(c);
  }

  /**
   * Open a stream for one page, or null when MAX_UI_CLIENTS are connected. `signal`: the
   * request's, aborted when the client goes away.
   */
  open(signal?: AbortSignal): ReadableStream<Uint8Array> | null {
    if (this.clients.size >= MAX_UI_CLIENTS) return null;
    let client: Client | null = null;
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          client = { controller };
          this.clients.add(client);
          // the first snapshot at once: the page has something to show before the next tick
          controller.enqueue(enc.encode(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`));
        },
        cancel: () => {
          if (client) this.drop(client);
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
    signal?.addEventListener(
      "abort",
      () => {
        if (!client) return;
        this.drop(client);
        try {
          client.controller.close();
        } catch {
          // already closed
        }
      },
      { once: true },
    );
    return stream;
  }

  /** Stop the tick and close every stream (tests; a daemon's hub lives as long as it). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const c of this.clients) {
      try {
        c.controller.close();
      } catch {
        // already closed
      }
    }
    this.clients.clear();
  }
}
