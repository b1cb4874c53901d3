/**
 * One executable: build dist/xvs, copy it alone into an empty directory (no source
 * tree, no node_modules), and run the demo from there; measure the time from `xvs run` to the
 * first forwarded packet.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sh } from "../../src/tools/lab/netns.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { startDaemon } from "../../src/tools/lab/daemon.ts";
import { requireRoot } from "./helpers.ts";

const root = join(import.meta.dir, "../..");
let dir: string;
let bin: string;

beforeAll(async () => {
  requireRoot();
  await sh([process.execPath, "run", join(root, "build.ts")]);
  dir = mkdtempSync(join(tmpdir(), "xvs-bin-"));
  bin = join(dir, "xvs");
  copyFileSync(join(root, "dist/xvs"), bin);
  await sh(["chmod", "755", bin]);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the single executable", () => {
  test("runs from an empty directory: version and help", async () => {
    const v = Bun.spawnSync([bin, "version"], { cwd: dir });
    expect(v.exitCode).toBe(0);
    expect(v.stdout.toString()).toMatch(/^xvs \d+\.\d+\.\d+\n$/);
    const h = Bun.spawnSync([bin, "--help"], { cwd: dir });
    expect(h.stdout.toString()).toContain("xvs run --iface IF");
    console.log(`binary size: ${(statSync(bin).size / 1e6).toFixed(1)} MB`);
  });

  test("invoked through a symlink named ipvsadm it is ipvsadm", async () => {
    const link = join(dir, "ipvsadm");
    await sh(["ln", "-sf", bin, link]);
    const v = Bun.spawnSync([link, "-v"], { cwd: dir });
    expect(v.stdout.toString()).toBe("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n");
    const bad = Bun.spawnSync([link, "-A", "-t", "198.18.0.100:0"], { cwd: dir });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toBe("Zero port specified for non-persistent service\n");
  });

  test("`xvs demo --check` from the empty directory sends traffic through every real server and exits 0", async () => {
    const p = Bun.spawn([bin, "demo", "--check", "--act-seconds", "2"], { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, XVS_BIN: "" } });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) console.log(out, err);
    expect(code).toBe(0);
    expect(out).toContain("demo ok: every real server answered, no request failed");
    expect(out).toMatch(/act 1: \d+ requests answered \((?=.*rs1 \d+)(?=.*rs2 \d+)(?=.*rs3 \d+).*\), 0 failed/);
  }, 120_000);

  test("start-up time to the first forwarded packet is measured, on a host without libxdp and libbpf", async () => {
    let L: DirectorLab | null = null;
    const prev = process.env.XVS_BIN;
    process.env.XVS_BIN = bin;
    try {
      L = await buildDirectorLab("bin", { reals: 1 });
      const srv = L.lab.spawn(L.reals[0], [bin, "__lab", "serve", "--name", "rs1", "--udp", "9000"]);
      const reader = srv.stdout.getReader();
      await reader.read();
      reader.releaseLock();
      // the daemon runs in a private mount namespace where the host's libxdp and libbpf are
      // empty files (the host itself is untouched): it must use the copies the binary carries
      const hostLibs = ["libxdp.so.1", "libbpf.so.1"].map((l) =>
        realpathSync(
          Bun.spawnSync(["gcc", `-print-file-name=${l}`])
            .stdout.toString()
            .trim(),
        ),
      );
      const hide = hostLibs.map((l) => `mount --bind /dev/null ${l}`).join(" && ");
      const wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", `${hide} && exec "$@"`, "sh"];
      const t0 = performance.now();
      const d = await startDaemon(L.lab, L.director, L.ifaces, [], undefined, { wrap });
      const tApi = performance.now();
      const maps = readFileSync(`/proc/${d.proc.pid}/maps`, "utf8").split("\n");
      for (const name of ["libxvs.so", "libxdp.so.1", "libbpf.so.1"]) {
        const from = new Set(maps.filter((l) => l.endsWith(`/${name}`)).map((l) => l.slice(l.indexOf("/"))));
        expect([...from]).toEqual([expect.stringMatching(new RegExp(`/xvs-lib-0-[0-9a-f]{16}/${name.replaceAll(".", "\\.")}$`))]);
      }
      await d.api("POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port: 9000, scheduler: "rr" });
      await d.api("POST", `/v1/services/udp:${LAB_VIP}:9000/dests`, { address: realAddr(1), port: 9000, forward: "masq" });
      let answered = false;
      for (let i = 0; i < 200 && !answered; i++) {
        const r = await L.lab.exec(L.client, [bin, "__lab", "udp-ask", "--host", LAB_VIP, "--port", "9000", "--count", "1", "--timeout", "100"], true);
        answered = r.stdout.includes('"ok":1');
      }
      const tFirst = performance.now();
      expect(answered).toBe(true);
      console.log(
        `start-up: API ready after ${(tApi - t0).toFixed(0)} ms, first forwarded packet ${(tFirst - t0).toFixed(0)} ms after \`xvs run\` (configuration included)`,
      );
      await d.stop();
    } finally {
      if (prev === undefined) delete process.env.XVS_BIN;
      else process.env.XVS_BIN = prev;
      await L?.lab.teardown();
    }
  }, 60_000);
});
