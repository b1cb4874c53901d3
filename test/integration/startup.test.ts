/**
 * Starting the daemon wrong (bad input): each mistake gets one clear line
 * naming the cause and the fix, a non-zero exit, and nothing left attached.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab, sh } from "../../src/tools/lab/netns.ts";
import { selfCommand } from "../../src/tools/lab/self.ts";
import { startDaemon } from "../../src/tools/lab/daemon.ts";
import { requireRoot } from "./helpers.ts";

let lab: Lab;
const root = join(import.meta.dir, "../..");

beforeAll(async () => {
  requireRoot();
  await Lab.cleanupStale();
  lab = new Lab("start");
  await lab.addNs("a");
  await lab.addNs("b");
  await lab.veth("a", "x0", "b", "y0");
  await lab.ip("a", "addr", "add", "198.18.40.1/24", "dev", "x0");
}, 30_000);

afterAll(async () => {
  await lab?.teardown();
}, 30_000);

/** Run `xvs run ARGS` in host a with a fresh state dir; returns exit code and stderr lines. */
async function runFails(
  args: string[],
  env: Record<string, string> = {},
  prefix: string[] = [],
  self = selfCommand(),
): Promise<{ code: number; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "xvs-start-"));
  try {
    const p = Bun.spawn(["ip", "netns", "exec", lab.ns("a"), ...prefix, ...self, "run", ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, XVS_STATE_DIR: dir, ...env },
    });
    // a bound on a hang, not a speed check: a refused start loads the source first, which took
    // more than 15 s with other labs loading the 2-core machine (daemon.ts allows a start 45 s)
    const code = await Promise.race([
      p.exited,
      Bun.sleep(45_000).then(() => {
        p.kill("SIGKILL");
        return -1;
      }),
    ]);
    const err = await new Response(p.stderr).text();
    return { code, lines: err.trim().split("\n").filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function xdpAttached(ifname: string): Promise<boolean> {
  const r = await lab.ip("a", "link", "show", "dev", ifname);
  return /\bxdp/.test(r.stdout);
}

describe("xvs run refuses to start, with one line naming the cause and the fix", () => {
  test("without root", async () => {
    const nobody = ["runuser", "-u", "nobody", "--"];
    // nobody must be able to run xvs: a source tree where nobody cannot enter (a clone under
    // /root, mode 0700, as on a fresh machine) is run as a copy of the built executable instead
    const self = selfCommand();
    const canRun = (await sh(["runuser", "-u", "nobody", "--", "test", "-x", self[0], "-a", "-r", self[self.length - 1]], true)).code === 0;
    const dir = mkdtempSync(join(tmpdir(), "xvs-nobody-"));
    try {
      if (!canRun) {
        await sh([process.execPath, "run", join(root, "build.ts")]);
        copyFileSync(join(root, "dist/xvs"), join(dir, "xvs"));
        chmodSync(dir, 0o755);
        chmodSync(join(dir, "xvs"), 0o755);
      }
      const r = await runFails(["--iface", "x0"], {}, nobody, canRun ? self : [join(dir, "xvs")]);
      expect(r.code).not.toBe(0);
      expect(r.lines).toEqual(["xvs: xvs run needs root (XDP and AF_XDP need CAP_NET_ADMIN and CAP_BPF): run it as root, e.g. with sudo"]);
      expect(await xdpAttached("x0")).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  test("on an interface that does not exist", async () => {
    const r = await runFails(["--iface", "nope0"]);
    expect(r.code).toBe(1);
    expect(r.lines).toEqual(["xvs: interface nope0 does not exist in this network namespace: check the name with 'ip link'"]);
  }, 60_000);

  test("without an interface, or with an unknown option", async () => {
    expect((await runFails([])).lines).toEqual(["xvs: no interface given: use --iface IF (once per interface)"]);
    expect((await runFails(["--iface", "x0", "--frobnicate"])).lines).toEqual(["xvs: unknown option '--frobnicate' (see xvs run --help)"]);
    expect((await runFails(["--iface", "x0", "--api", "nowhere"])).lines).toEqual(["xvs: --api: 'nowhere' is not HOST:PORT"]);
  }, 120_000);

  test("when libxdp is missing on the host", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xvs-shim-"));
    try {
      // a shim that needs a library the host does not have, as on a host without libxdp1
      await sh([
        "bash",
        "-c",
        `cd ${dir} && echo 'int xvs_stub(void){return 0;}' > s.c && gcc -shared -fPIC -o libxdp-missing.so.1 -Wl,-soname,libxdp-missing.so.1 s.c && gcc -shared -fPIC -o shim.so ${root}/native/shim/*.c -L. -Wl,--no-as-needed -l:libxdp-missing.so.1 -lxdp -lbpf && rm libxdp-missing.so.1`,
      ]);
      const r = await runFails(["--iface", "x0"], { XVS_SHIM_PATH: join(dir, "shim.so") });
      expect(r.code).toBe(1);
      expect(r.lines.length).toBe(1);
      expect(r.lines[0]).toContain("libxdp-missing.so.1: cannot open shared object file");
      expect(r.lines[0]).toEndWith("Install the runtime libraries: apt-get install libxdp1 libbpf1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("on an interface that another XDP program owns, leaving that program in place", async () => {
    await lab.ip("a", "link", "set", "dev", "x0", "xdpdrv", "obj", join(root, "native/out/xvs_steer.bpf.o"), "sec", "xdp");
    try {
      const r = await runFails(["--iface", "x0"]);
      expect(r.code).toBe(1);
      expect(r.lines).toEqual(["xvs: x0 already has an XDP program (another xvs, or another tool): stop it, or remove it with 'ip link set dev x0 xdp off'"]);
      expect(await xdpAttached("x0")).toBe(true);
    } finally {
      await lab.ip("a", "link", "set", "dev", "x0", "xdp", "off");
    }
  }, 60_000);

  test("a second instance on the same interface is refused and the first keeps running; SIGTERM then leaves nothing attached", async () => {
    const first = await startDaemon(lab, "a", ["x0"]);
    try {
      expect(await xdpAttached("x0")).toBe(true);
      const r = await runFails(["--iface", "x0", "--api", "127.0.0.1:9173"]);
      expect(r.code).toBe(1);
      expect(r.lines[r.lines.length - 1]).toContain("x0 already has an XDP program");
      expect((await first.api("GET", "/v1/health")).status).toBe(200);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    expect(await xdpAttached("x0")).toBe(false);
    expect(first.log()).toContain("stopped: XDP detached, sockets closed");
  }, 120_000);
});
