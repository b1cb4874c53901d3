/**
 * The dashboard in a real headless Chromium, driven by playwright-core: the page is
 * served by the compiled executable (dist/xvs, copied alone into an empty directory, run with
 * the source tree hidden behind an empty tmpfs), shows the lab's services, its counters rise as
 * traffic flows, and a drain clicked in the page reaches the dataplane (no new connection goes
 * to that real server); remove and add back too. Screenshots go to docs/ui-desktop.png and
 * docs/ui-phone.png with XVS_UI_SCREENSHOTS=docs (to a temporary directory otherwise). Then the page's cost on the daemon: GET /v1/services served per second
 * while forwarding, with no dashboard, 5 stream readers, and 5 Chromium pages (printed, not
 * asserted: docs/ui.md has the numbers).
 *
 * Chromium runs in the root namespace, the daemon's API on the director namespace's loopback:
 * two socat processes bridge them through a Unix socket (a path is seen from every network
 * namespace), so no interface or route of the root namespace is touched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { sh } from "../../src/tools/lab/netns.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, httpGet, requireRoot, startServers, stopLab } from "./helpers.ts";

// the functions given to page.evaluate / waitForFunction run in the page, where these exist
// (the project compiles without the DOM library)
// biome-ignore lint/suspicious/noExplicitAny: the page's DOM, typed loosely on purpose
declare const document: any;

const root = join(import.meta.dir, "../..");
// screenshots: into docs/ only when asked (XVS_UI_SCREENSHOTS=docs), so that a test run leaves the
// tree as it was; otherwise into a temporary directory, still taken (and so still checked)
const shotDir = process.env.XVS_UI_SCREENSHOTS === "docs" ? join(root, "docs") : mkdtempSync(join(tmpdir(), "xvs-ui-shots-"));
const SVC = `tcp:${LAB_VIP}:80`;
/** A service with many real servers (no traffic goes to it): the page must stay usable. */
const BIG = `tcp:${LAB_VIP}:8000`;
const BIG_DESTS = 300;
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let L: DirectorLab;
let xvs: LabDaemon;
let dir: string;
let base: string;
let ctx: BrowserContext;
let page: Page;
const bridges: Subprocess[] = [];
let prevBin: string | undefined;

type DestView = { id: string; weight: number; stats: { conns: number } };
type ServiceView = { id: string; dests: DestView[] };

async function services(): Promise<ServiceView[]> {
  return ((await apiOk(xvs, "GET", "/v1/services")) as { services: ServiceView[] }).services;
}
async function dest(svc: string, id: string): Promise<DestView | undefined> {
  return (await services()).find((s) => s.id === svc)?.dests.find((d) => d.id === id);
}
function row(svc: string, destId: string) {
  return page.locator(`section.svc[data-svc="${svc}"] tr[data-dest="${destId}"]`);
}
/** Click a button of a real server's row, then the dialog's confirm button. */
async function act(svc: string, destId: string, action: string): Promise<void> {
  await row(svc, destId).locator(`button[data-act="${action}"]`).click();
  await page.locator("#modal:not([hidden]) #mOk").click();
}

/** A free port on the root namespace's loopback. */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

beforeAll(async () => {
  requireRoot();
  const v = Bun.spawnSync(["chromium", "--version"]);
  if (v.exitCode !== 0) throw new Error("chromium is not installed: bash .ci/setup.sh (Debian package chromium)");
  console.log(`browser: ${v.stdout.toString().trim()}`);
  await sh([process.execPath, "run", join(root, "build.ts")]);
  dir = mkdtempSync(join(tmpdir(), "xvs-ui-"));
  const bin = join(dir, "xvs");
  copyFileSync(join(root, "dist/xvs"), bin);
  await sh(["chmod", "755", bin]);
  prevBin = process.env.XVS_BIN;
  process.env.XVS_BIN = bin;
  L = await buildDirectorLab("ui", { reals: 3 });
  await startServers(L.lab, L.reals, { http: 80 });
  // the daemon sees an empty directory where the source tree is: the page must come from the binary
  const wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs xvs-no-source ${root} && exec "$@"`, "sh"];
  xvs = await startDaemon(L.lab, L.director, L.ifaces, [], undefined, { wrap });
  await apiOk(xvs, "POST", "/v1/services", { protocol: "tcp", address: LAB_VIP, port: 80, scheduler: "rr" });
  for (let i = 1; i <= 3; i++) await apiOk(xvs, "POST", `/v1/services/${SVC}/dests`, { address: realAddr(i), port: 80, forward: "masq", weight: i });
  const commands: unknown[] = [{ op: "add-service", service: { protocol: "tcp", address: LAB_VIP, port: 8000, scheduler: "wlc" } }];
  for (let i = 0; i < BIG_DESTS; i++) {
    commands.push({
      op: "add-dest",
      service: { protocol: "tcp", address: LAB_VIP, port: 8000 },
      dest: { address: `198.19.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8000, forward: "masq", weight: 1 + (i % 5) },
    });
  }
  await apiOk(xvs, "POST", "/v1/batch", { commands });

  // the bridge: root-namespace loopback -> Unix socket -> the director's loopback API
  const api = readFileSync(join(xvs.stateDir, "api"), "utf8").trim();
  const sock = join(dir, "api.sock");
  bridges.push(L.lab.spawn(L.director, ["socat", `UNIX-LISTEN:${sock},fork,mode=600`, `TCP:${api}`]) as Subprocess);
  for (let i = 0; i < 100 && (await sh(["test", "-S", sock], true)).code !== 0; i++) await Bun.sleep(50);
  const port = freePort();
  bridges.push(Bun.spawn(["socat", `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sock}`], { stdout: "ignore", stderr: "pipe" }));
  base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${base}/v1/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await Bun.sleep(50);
  }

  ctx = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  page = ctx.pages()[0] ?? (await ctx.newPage());
}, 180_000);

afterAll(async () => {
  await ctx?.close().catch(() => undefined);
  for (const b of bridges) {
    b.kill();
    await b.exited;
  }
  await stopLab(xvs, L);
  if (prevBin === undefined) delete process.env.XVS_BIN;
  else process.env.XVS_BIN = prevBin;
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("the dashboard in headless Chromium, served by the compiled binary", () => {
  test("the page loads from dist/xvs (source tree hidden) and shows the lab's services and real servers", async () => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const resp = await page.goto(`${base}/ui`);
    expect(resp?.status()).toBe(200);
    expect(await resp?.text()).toBe(readFileSync(join(root, "src/control/ui/index.html"), "utf8"));
    await page.waitForSelector(`section.svc[data-svc="${SVC}"] tr[data-dest="${realAddr(3)}:80"]`);
    await page.waitForFunction((n) => document.querySelectorAll(`section.svc[data-svc="tcp:198.18.0.100:8000"] tbody tr`).length === n, BIG_DESTS);
    for (let i = 1; i <= 3; i++)
      await expect(
        row(SVC, `${realAddr(i)}:80`)
          .locator("td.w")
          .textContent(),
      ).resolves.toBe(String(i));
    expect(await page.locator("#live").textContent()).toBe("live");
    expect(await page.locator(`section.svc[data-svc="${BIG}"] .sub`).textContent()).toContain(`${BIG_DESTS} real servers`);
    // the filter box narrows hundreds of rows to the matching ones
    await page.fill("#filter", "198.19.10.17:");
    await page.waitForFunction(
      () => [...document.querySelectorAll(`section.svc[data-svc="tcp:198.18.0.100:8000"] tbody tr`)].filter((r) => !r.hidden).length === 1,
    );
    await page.fill("#filter", "");
    await page.waitForFunction(() => [...document.querySelectorAll(`section.svc[data-svc="tcp:198.18.0.100:8000"] tbody tr`)].every((r) => !r.hidden));
    expect(errors).toEqual([]);
  }, 60_000);

  test("the page's counters rise as traffic flows", async () => {
    const conns = page.locator(`section.svc[data-svc="${SVC}"] .nums .conns`);
    const before = Number((await conns.textContent())!.replace(/\D/g, ""));
    const h = await httpGet(L.lab, L.client, LAB_VIP, 80, 60, 4);
    expect(h.ok).toBe(60);
    await page.waitForFunction(
      ([sel, n]) => Number(document.querySelector(sel as string)!.textContent!.replace(/\D/g, "")) >= (n as number),
      [`section.svc[data-svc="${SVC}"] .nums .conns`, before + 60] as const,
      { timeout: 10_000 },
    );
    // every real server's own count moved too, and the snapshots keep coming
    for (let i = 1; i <= 3; i++)
      expect(
        Number(
          await row(SVC, `${realAddr(i)}:80`)
            .locator("td.conns")
            .textContent(),
        ),
      ).toBeGreaterThan(0);
    const n = Number(await page.evaluate(() => document.body.dataset.snapshots));
    await page.waitForFunction((m) => Number(document.body.dataset.snapshots) > m, n, { timeout: 5000 });
  }, 60_000);

  test("a drain clicked in the page (token asked once, confirmed) reaches the dataplane: no new connection to that real server", async () => {
    const rs2 = `${realAddr(2)}:80`;
    await page.click("#tokenBtn");
    await page.fill("#mInput", readFileSync(join(xvs.stateDir, "token"), "utf8").trim());
    await page.click("#mOk");
    await page.waitForFunction(() => document.getElementById("tokenBtn")!.textContent === "Forget token");
    // a cancelled drain changes nothing
    await row(SVC, rs2).locator('button[data-act="drain"]').click();
    await page.click("#modal:not([hidden]) #mCancel");
    expect((await dest(SVC, rs2))!.weight).toBe(2);
    await act(SVC, rs2, "drain");
    // shown at once (optimistic), then confirmed by the daemon
    await page.waitForFunction(
      (sel) => document.querySelector(sel)!.textContent!.startsWith("0"),
      `section.svc[data-svc="${SVC}"] tr[data-dest="${rs2}"] td.w`,
      { timeout: 2000 },
    );
    await page.waitForFunction(() => !document.querySelector("tr.pending"));
    expect((await dest(SVC, rs2))!.weight).toBe(0);
    const conns2 = (await dest(SVC, rs2))!.stats.conns;
    const h = await httpGet(L.lab, L.client, LAB_VIP, 80, 40, 4);
    expect(h.ok).toBe(40);
    expect(h.byServer[L.reals[1]] ?? 0).toBe(0);
    expect((h.byServer[L.reals[0]] ?? 0) + (h.byServer[L.reals[2]] ?? 0)).toBe(40);
    expect((await dest(SVC, rs2))!.stats.conns).toBe(conns2);
    // the row stays marked drained once the daemon confirmed it (snapshots then agree)
    await page.waitForFunction((sel) => document.querySelector(sel)!.classList.contains("drained"), `section.svc[data-svc="${SVC}"] tr[data-dest="${rs2}"]`, {
      timeout: 3000,
    });
  }, 60_000);

  test("remove and add back from the page: the real server returns with its previous settings; both are in the events", async () => {
    const rs3 = `${realAddr(3)}:80`;
    await act(SVC, rs3, "remove");
    await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains("removed"), `section.svc[data-svc="${SVC}"] tr[data-dest="${rs3}"]`);
    // the row is greyed at once; the DELETE lands a moment later
    for (let i = 0; i < 50 && (await dest(SVC, rs3)) !== undefined; i++) await Bun.sleep(100);
    expect(await dest(SVC, rs3)).toBeUndefined();
    await page.waitForSelector(`section.svc[data-svc="${SVC}"] tr[data-dest="${rs3}"] button[data-act="addback"]`);
    await act(SVC, rs3, "addback");
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === "3", `section.svc[data-svc="${SVC}"] tr[data-dest="${rs3}"] td.w`, {
      timeout: 5000,
    });
    expect((await dest(SVC, rs3))!.weight).toBe(3);
    const r = (await services()).find((s) => s.id === SVC)!.dests.find((d) => d.id === rs3) as unknown as { forward: string };
    expect(r.forward).toBe("masq");
    // newest first: the add back, the remove, the drain
    await page.waitForFunction((t) => document.querySelector("#events li span:last-child")?.textContent === t, `${rs3} added to ${SVC} (masq, weight 3)`, {
      timeout: 5000,
    });
    const events = await page.locator("#events li span:last-child").allTextContents();
    expect(events.slice(0, 3)).toEqual([
      `${rs3} added to ${SVC} (masq, weight 3)`,
      `${rs3} removed from ${SVC} (weight was 3)`,
      `${realAddr(2)}:80 of ${SVC}: weight 2 -> 0`,
    ]);
  }, 60_000);

  test("screenshots while traffic flows: desktop (the big service collapsed) and phone", async () => {
    const traffic = L.lab.spawn(L.client, [
      ...selfCommand(),
      "__lab",
      "http-get",
      "--host",
      LAB_VIP,
      "--port",
      "80",
      "--count",
      "10000000",
      "--concurrency",
      "2",
    ]);
    try {
      // collapsing is remembered: the big service stays a one-line header, the panels below show
      await page.locator(`section.svc[data-svc="${BIG}"] button.toggle`).click();
      expect(await page.locator(`section.svc[data-svc="${BIG}"] table.dests`).isVisible()).toBe(false);
      await page.waitForFunction((sel) => Number(document.querySelector(sel)!.textContent!.replace(/\D/g, "")) > 0, `.card[data-k="cps"] .v`, {
        timeout: 10_000,
      });
      await page.waitForTimeout(4000);
      await page.screenshot({ path: join(shotDir, "ui-desktop.png"), fullPage: true });
      const phone = await ctx.newPage();
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${base}/ui`);
      await phone.waitForSelector(`section.svc[data-svc="${SVC}"] tr[data-dest="${realAddr(1)}:80"]`);
      // on a phone the rows are cards: no table header, the actions a full-width row of big buttons, nothing wider than the screen
      expect(await phone.locator(`section.svc[data-svc="${SVC}"] thead`).isVisible()).toBe(false);
      const btn = await phone.locator(`section.svc[data-svc="${SVC}"] tr[data-dest="${realAddr(1)}:80"] button[data-act="drain"]`).boundingBox();
      expect(btn!.height).toBeGreaterThanOrEqual(40);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.waitForTimeout(6000);
      await phone.screenshot({ path: join(shotDir, "ui-phone.png") });
      await phone.close();
    } finally {
      traffic.kill();
      await traffic.exited;
    }
  }, 60_000);
});

describe("the page's cost on the daemon", () => {
  /** GET /v1/services answered in `seconds` by 4 keep-alive clients inside the director namespace. */
  async function apiRate(seconds: number): Promise<number> {
    const script = join(dir, "load.ts");
    writeFileSync(
      script,
      `
      const [url, secs] = [process.argv[2], Number(process.argv[3])];
      const end = performance.now() + secs * 1000;
      let n = 0;
      const one = async () => { while (performance.now() < end) { const r = await fetch(url); await r.arrayBuffer(); if (r.ok) n++; } };
      await Promise.all([one(), one(), one(), one()]);
      console.log(n / secs);
    `,
    );
    const api = readFileSync(join(xvs.stateDir, "api"), "utf8").trim();
    const r = await L.lab.exec(L.director, [process.execPath, script, `http://${api}/v1/services`, String(seconds)]);
    return Number(r.stdout.trim());
  }

  test("GET /v1/services per second while forwarding: no dashboard, 5 stream readers, 5 Chromium pages", async () => {
    // forwarding all along: new HTTP connections from the client, as fast as the agent goes
    const traffic = L.lab.spawn(L.client, [
      ...selfCommand(),
      "__lab",
      "http-get",
      "--host",
      LAB_VIP,
      "--port",
      "80",
      "--count",
      "10000000",
      "--concurrency",
      "4",
    ]);
    const results: string[] = [];
    const measure = async (what: string) => {
      const c0 = (await services()).find((s) => s.id === SVC)!.dests.reduce((n, d) => n + d.stats.conns, 0);
      const t0 = performance.now();
      const rps = await apiRate(5);
      const c1 = (await services()).find((s) => s.id === SVC)!.dests.reduce((n, d) => n + d.stats.conns, 0);
      const cps = (c1 - c0) / ((performance.now() - t0) / 1000);
      results.push(`${what.padEnd(24)} ${rps.toFixed(0).padStart(6)} GET /v1/services/s   forwarding ${cps.toFixed(0).padStart(5)} conn/s`);
      expect(rps).toBeGreaterThan(0);
      expect(cps).toBeGreaterThan(0);
    };
    try {
      await page.goto("about:blank");
      await apiRate(2); // warm-up: the daemon's route and the load script, discarded
      await measure("no dashboard");
      const api = readFileSync(join(xvs.stateDir, "api"), "utf8").trim();
      const readers = Array.from({ length: 5 }, () => L.lab.spawn(L.director, ["curl", "-s", "-N", "-o", "/dev/null", `http://${api}/ui/stream`]));
      await Bun.sleep(1500);
      await measure("5 stream readers (curl)");
      for (const r of readers) {
        r.kill();
        await r.exited;
      }
      await measure("no dashboard, again");
      const pages: Page[] = [];
      for (let i = 0; i < 5; i++) {
        const p = await ctx.newPage();
        await p.goto(`${base}/ui`);
        await p.waitForSelector(`section.svc[data-svc="${SVC}"]`);
        pages.push(p);
      }
      await measure("5 Chromium pages");
      for (const p of pages) await p.close();
    } finally {
      traffic.kill();
      await traffic.exited;
    }
    console.log(
      `the page's cost (${3 + BIG_DESTS} real servers; the daemon, the load, the traffic and Chromium share the machine's cores):\n${results.join("\n")}`,
    );
  }, 240_000);
});
