/**
 * The dashboard's server side without a dataplane: the page is served whole with a strict CSP,
 * the event ring records each committed change (a removed real server with its spec), the
 * stream sends a snapshot at once, admits at most MAX_UI_CLIENTS and forgets a client that went
 * away.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Daemon } from "../../../src/control/daemon.ts";
import { createApp } from "../../../src/control/app.ts";
import { DestSpec, ServiceSpec } from "../../../src/control/schemas.ts";
import { EventRing } from "../../../src/control/ui/events.ts";
import { MAX_UI_CLIENTS, type UiHub } from "../../../src/control/ui/stream.ts";
import { mountUi, UI_PAGE } from "../../../src/control/routes/ui.ts";
import { Hono } from "hono";

const TOKEN = "t".repeat(24);
const SVC = { protocol: "tcp" as const, address: "198.18.0.100", port: 80 };
const hubs: UiHub[] = [];
afterEach(() => {
  for (const h of hubs.splice(0)) h.close();
});

function setup() {
  const daemon = new Daemon(null, null);
  const app = new Hono();
  hubs.push(mountUi(app, daemon));
  return { daemon, app, hub: hubs[hubs.length - 1] };
}

/** The parts of a snapshot event these tests read, as parsed off the wire. */
interface SnapshotJson {
  services: { id: string }[];
  verdicts: Record<string, number>;
  events: { kind: string }[];
  clients: number;
}

async function firstEvent(body: ReadableStream<Uint8Array>): Promise<{ event: string; data: SnapshotJson }> {
  const r = body.getReader();
  let text = "";
  while (!text.includes("\n\n")) {
    const { value, done } = await r.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  r.releaseLock();
  const event = /^event: (.*)$/m.exec(text)?.[1] ?? "";
  return { event, data: JSON.parse(/^data: (.*)$/m.exec(text)![1]) };
}

describe("GET /ui", () => {
  test("serves the embedded page: HTML, no-store, a CSP that allows no other origin", async () => {
    const app = createApp(new Daemon(null, null), TOKEN);
    const r = await app.request("/ui");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(r.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(r.headers.get("content-security-policy")).toContain("connect-src 'self'");
    const html = await r.text();
    expect(html).toBe(UI_PAGE);
    expect(html).toContain('<meta name="viewport"');
    expect(html).toContain('new EventSource("/ui/stream")');
    // nothing from elsewhere: no absolute URL but the SVG namespace
    expect(html.match(/https?:\/\/[^\s"')]+/g)).toEqual(["http://www.w3.org/2000/svg"]);
  });
});

describe("the event ring", () => {
  test("keeps the newest events, numbered", () => {
    const ring = new EventRing(3);
    for (let i = 0; i < 5; i++) ring.push({ ts: i, kind: "service-added", service: `s${i}`, text: "" });
    expect(ring.recent().map((e) => [e.seq, e.service])).toEqual([
      [3, "s2"],
      [4, "s3"],
      [5, "s4"],
    ]);
    expect(ring.recent(1).map((e) => e.seq)).toEqual([5]);
  });

  test("each committed change is an event, a removed real server carries its spec; a refused change is none", async () => {
    const { daemon, hub } = setup();
    await daemon.mutate((m) => m.addService(ServiceSpec.parse({ ...SVC, scheduler: "rr" })));
    await daemon.mutate((m) => m.addDest(SVC, DestSpec.parse({ address: "198.18.1.5", port: 80, forward: "masq", weight: 3 })));
    await daemon.mutate((m) => m.editDest(SVC, DestSpec.parse({ address: "198.18.1.5", port: 80, forward: "masq", weight: 0 })));
    await daemon.mutate((m) => m.deleteDest(SVC, "198.18.1.5", 80));
    await expect(daemon.mutate((m) => m.deleteDest(SVC, "198.18.1.5", 80))).rejects.toThrow();
    const ev = hub.watcher.ring.recent();
    expect(ev.map((e) => e.kind)).toEqual(["service-added", "dest-added", "dest-changed", "dest-removed"]);
    expect(ev[2].text).toBe("198.18.1.5:80 of tcp:198.18.0.100:80: weight 3 -> 0");
    expect(ev[3]).toMatchObject({
      service: "tcp:198.18.0.100:80",
      dest: "198.18.1.5:80",
      spec: { address: "198.18.1.5", port: 80, forward: "masq", weight: 0 },
    });
  });

  test("health state changes seen in the views are events; the first state seen is not", () => {
    const { hub } = setup();
    const view = (state: string) => [{ id: "tcp:198.18.0.100:80", dests: [{ id: "198.18.1.5:80", health: { state, reason: "connect refused" } }] }];
    hub.watcher.observeHealth(view("up"), 1);
    hub.watcher.observeHealth(view("up"), 2);
    hub.watcher.observeHealth(view("down"), 3);
    expect(hub.watcher.ring.recent().map((e) => [e.kind, e.text])).toEqual([["health", "198.18.1.5:80 of tcp:198.18.0.100:80 is down: connect refused"]]);
  });
});

describe("GET /ui/stream", () => {
  test("sends a snapshot at once: services, verdicts, events, the number of clients", async () => {
    const { daemon, app } = setup();
    await daemon.mutate((m) => m.addService(ServiceSpec.parse({ ...SVC, scheduler: "rr" })));
    const ac = new AbortController();
    const r = await app.request("/ui/stream", { signal: ac.signal });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const { event, data } = await firstEvent(r.body!);
    expect(event).toBe("snapshot");
    expect(data.services.map((s: { id: string }) => s.id)).toEqual(["tcp:198.18.0.100:80"]);
    expect(data.verdicts).toHaveProperty("drop_no_dest", 0);
    expect(data.events.map((e: { kind: string }) => e.kind)).toEqual(["service-added"]);
    expect(data.clients).toBe(1);
    ac.abort();
  });

  test(`admits ${MAX_UI_CLIENTS} clients, refuses the next with 503, and forgets those that go away`, async () => {
    const { app, hub } = setup();
    const open: AbortController[] = [];
    for (let i = 0; i < MAX_UI_CLIENTS; i++) {
      const ac = new AbortController();
      const r = await app.request("/ui/stream", { signal: ac.signal });
      expect(r.status).toBe(200);
      open.push(ac);
    }
    expect(hub.clientCount).toBe(MAX_UI_CLIENTS);
    const refused = await app.request("/ui/stream");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("BUSY");
    open[0].abort();
    open[1].abort();
    expect(hub.clientCount).toBe(MAX_UI_CLIENTS - 2);
    expect((await app.request("/ui/stream", { signal: open[2].signal })).status).toBe(200);
    for (const ac of open) ac.abort();
    expect(hub.clientCount).toBe(0);
  });
});
