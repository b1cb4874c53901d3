/**
 * `xvs sysctl`: the daemon's IPVS sysctls under the kernel's names, printed as sysctl(8) prints
 * them, against the in-process daemon of fixture.ts.
 */
import { describe, expect, test } from "bun:test";
import { runSysctl } from "../../../src/cli/sysctl.ts";
import { startXvs, TOKEN, type Xvs } from "./fixture.ts";

async function sysctl(x: Xvs, argv: string[], token: string | null = TOKEN) {
  let stdout = "",
    stderr = "";
  const exit = await runSysctl(argv, {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
      },
    },
    fetch: (input, init) => x.app.request(input, init),
    apiBase: "http://127.0.0.1:9172",
    token,
  });
  return { stdout, stderr, exit };
}

describe("xvs sysctl", () => {
  test("with no name it prints every setting with the kernel's defaults", async () => {
    expect(await sysctl(startXvs(), [])).toEqual({
      stdout: [
        "net.ipv4.vs.backup_only = 0",
        "net.ipv4.vs.conn_reuse_mode = 1",
        "net.ipv4.vs.expire_nodest_conn = 0",
        "net.ipv4.vs.expire_quiescent_template = 0",
        "net.ipv4.vs.sloppy_tcp = 0",
        "net.ipv4.vs.sync_persist_mode = 0",
        "net.ipv4.vs.sync_ports = 1",
        "net.ipv4.vs.sync_qlen_max = 32",
        "net.ipv4.vs.sync_refresh_period = 0",
        "net.ipv4.vs.sync_retries = 0",
        "net.ipv4.vs.sync_sock_size = 0",
        "net.ipv4.vs.sync_threshold = 3\t50",
        "net.ipv4.vs.sync_version = 1",
        "",
      ].join("\n"),
      stderr: "",
      exit: 0,
    });
  });

  test("NAME=VALUE sets (with or without -w and the prefix), all in one change, and prints what it set", async () => {
    const x = startXvs();
    const r = await sysctl(x, ["-w", "net.ipv4.vs.expire_nodest_conn=1", "conn_reuse_mode=3"]);
    expect(r).toEqual({ stdout: "net.ipv4.vs.expire_nodest_conn = 1\nnet.ipv4.vs.conn_reuse_mode = 3\n", stderr: "", exit: 0 });
    expect(x.daemon.model.settings).toEqual({ expireNodestConn: true, expireQuiescentTemplate: false, sloppyTcp: false, connReuseMode: 3 });
    expect((await sysctl(x, ["net.ipv4.vs.sloppy_tcp"])).stdout).toBe("net.ipv4.vs.sloppy_tcp = 0\n");
  });

  test("an unknown name or a bad value is refused in sysctl's words and nothing changes", async () => {
    const x = startXvs();
    expect(await sysctl(x, ["net.ipv4.vs.sloppy_tcp=1", "net.ipv4.vs.am_droprate=1"])).toEqual({
      stdout: "",
      stderr: "sysctl: cannot stat /proc/sys/net/ipv4/vs/am_droprate: No such file or directory\n",
      exit: 255,
    });
    expect((await sysctl(x, ["net.ipv4.vs.sloppy_tcp=2"])).stderr).toBe('sysctl: setting key "net.ipv4.vs.sloppy_tcp": Invalid argument\n');
    expect((await sysctl(x, ["net.ipv4.vs.conn_reuse_mode=4"])).exit).toBe(255);
    expect((await sysctl(x, ["net.ipv4.vs.expire_nodest_conn=yes"])).exit).toBe(255);
    expect(x.daemon.model.settings.sloppyTcp).toBe(false);
    expect(x.daemon.model.settings.connReuseMode).toBe(1);
  });

  test("without the token a change is refused; reading still works", async () => {
    const x = startXvs();
    const r = await sysctl(x, ["net.ipv4.vs.sloppy_tcp=1"], null);
    expect(r.exit).toBe(255);
    expect(r.stderr).toContain("permission denied");
    expect((await sysctl(x, ["sloppy_tcp"], null)).stdout).toBe("net.ipv4.vs.sloppy_tcp = 0\n");
  });

  test("the sync sysctls: read, set (sync_threshold takes two numbers), refused out of the kernel's ranges", async () => {
    const x = startXvs();
    expect((await sysctl(x, ["net.ipv4.vs.sync_version=0", "sync_threshold=5 100", "sync_refresh_period=30"])).stdout).toBe(
      "net.ipv4.vs.sync_version = 0\nnet.ipv4.vs.sync_threshold = 5\t100\nnet.ipv4.vs.sync_refresh_period = 30\n",
    );
    expect((await sysctl(x, ["sync_threshold"])).stdout).toBe("net.ipv4.vs.sync_threshold = 5\t100\n");
    for (const bad of ["sync_threshold=50 50", "sync_threshold=3", "sync_version=2", "sync_retries=4", "sync_ports=0", "sync_ports=3", "backup_only=x"]) {
      const r = await sysctl(x, [bad]);
      expect(r.exit).toBe(255);
      expect(r.stderr).toContain("Invalid argument");
    }
    expect((await sysctl(x, ["sync_version", "sync_retries"])).stdout).toBe("net.ipv4.vs.sync_version = 0\nnet.ipv4.vs.sync_retries = 0\n");
  });
});
