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
      stdout: "net.ipv4.vs.conn_reuse_mode = 1\nnet.ipv4.vs.expire_nodest_conn = 0\nnet.ipv4.vs.expire_quiescent_template = 0\nnet.ipv4.vs.sloppy_tcp = 0\n",
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
});
