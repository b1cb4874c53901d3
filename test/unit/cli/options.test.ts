/**
 * The option forms users type, in every xvs subcommand with its own parser: `--opt value` and
 * `--opt=value` (run, demo, bench, decap through src/argv.ts), and `xvs adm`, whose popt
 * emulation takes `--opt=value` as ipvsadm 1.31's popt does.
 */
import { describe, expect, test } from "bun:test";
import { splitOptionValues } from "../../../src/argv.ts";
import { parseBenchArgs } from "../../../src/tools/bench/options.ts";
import { parseRunArgs } from "../../../src/control/serve.ts";
import { parseDecapArgs } from "../../../src/decap/cli.ts";
import { parseDemoArgs } from "../../../src/tools/demo/demo.ts";
import { startXvs } from "./fixture.ts";

describe("splitOptionValues", () => {
  test("splits --name=value into two words, keeps everything else, refuses a value on a flag or an empty one", () => {
    expect(splitOptionValues(["--iface=eth0", "-i", "eth1", "--copy", "plain", "--api=127.0.0.1:9300"], ["--copy"])).toEqual([
      "--iface",
      "eth0",
      "-i",
      "eth1",
      "--copy",
      "plain",
      "--api",
      "127.0.0.1:9300",
    ]);
    // only the first '=' splits: a value may hold more
    expect(splitOptionValues(["--note=a=b c"])).toEqual(["--note", "a=b c"]);
    expect(() => splitOptionValues(["--copy=yes"], ["--copy"])).toThrow("option '--copy' takes no value (got '--copy=yes')");
    expect(() => splitOptionValues(["--iface="])).toThrow("option '--iface' needs a value after '=' (got '--iface=')");
  });
});

describe("xvs run", () => {
  test("--iface=eth0, --iface eth0 and -i eth0 all name an interface", () => {
    const a = parseRunArgs(["--iface=eth0", "--iface", "eth1", "-i", "eth2"]);
    expect(a.ifaces).toEqual(["eth0", "eth1", "eth2"]);
  });

  test("every option with a value takes the = form, and gives the same options as the spaced form", () => {
    const spaced = parseRunArgs([
      "--iface",
      "eth0",
      "--workers",
      "2",
      "--conn-max",
      "4096",
      "--idle-ms",
      "0",
      "--config",
      "/etc/xvs.json",
      "--token-file",
      "/etc/xvs.token",
      "--api",
      "127.0.0.1:9300",
      "--copy",
    ]);
    const joined = parseRunArgs([
      "--iface=eth0",
      "--workers=2",
      "--conn-max=4096",
      "--idle-ms=0",
      "--config=/etc/xvs.json",
      "--token-file=/etc/xvs.token",
      "--api=127.0.0.1:9300",
      "--copy",
    ]);
    expect(joined).toEqual(spaced);
    expect(joined).toMatchObject({ ifaces: ["eth0"], workers: 2, connCapacity: 4096, idleMs: 0, configFile: "/etc/xvs.json", apiPort: 9300, bindMode: "copy" });
  });

  test("bad values are still refused with the option's own words; a flag with a value is refused", () => {
    expect(() => parseRunArgs(["--iface=eth0", "--workers=0"])).toThrow("--workers: '0' is not a whole number of poll workers in 1..64");
    expect(() => parseRunArgs(["--iface=eth0", "--workers", "1.5"])).toThrow("--workers: '1.5' is not a whole number");
    expect(() => parseRunArgs(["--iface=eth0", "--workers", "65"])).toThrow("--workers: '65' is not a whole number");
    expect(() => parseRunArgs(["--iface=eth0", "--queues", "2"])).toThrow("--queues was removed");
    expect(() => parseRunArgs(["--iface=eth0", "--zerocopy=1"])).toThrow("option '--zerocopy' takes no value");
    expect(() => parseRunArgs(["--iface=eth0", "--colour=red"])).toThrow("unknown option '--colour'");
  });
});

describe("xvs demo, bench and decap", () => {
  test("demo takes --scheduler=wlc --forward=route --act-seconds=2 like the spaced form", () => {
    expect(parseDemoArgs(["--scheduler=wlc", "--forward=route", "--act-seconds=2", "--check"])).toEqual(
      parseDemoArgs(["--scheduler", "wlc", "--forward", "route", "--act-seconds", "2", "--check"]),
    );
    expect(parseDemoArgs(["--scheduler=wlc"]).scheduler).toBe("wlc");
    expect(() => parseDemoArgs(["--check=yes"])).toThrow("option '--check' takes no value");
    expect(() => parseDemoArgs(["--scheduler=nosuch"])).toThrow("unknown scheduler 'nosuch'");
  });

  test("bench takes --rounds=3 --duration=0.5 --modes=... like the spaced form", () => {
    const joined = parseBenchArgs(["--rounds=3", "--duration=0.5", "--flow-counts=100,200", "--name=mine", "--no-pin"]);
    expect(joined).toEqual(parseBenchArgs(["--rounds", "3", "--duration", "0.5", "--flow-counts", "100,200", "--name", "mine", "--no-pin"]));
    expect(joined).toMatchObject({ rounds: 3, duration: 0.5, flowCounts: [100, 200], name: "mine", pin: false });
    expect(() => parseBenchArgs(["--quick=1"])).toThrow("option '--quick' takes no value");
  });

  test("decap attach takes --gue-port=7080 and --mode=generic", () => {
    expect(parseDecapArgs(["attach", "eth0", "--gue-port=7080", "--gue-port", "5555", "--mode=generic"])).toEqual({
      cmd: "attach",
      iface: "eth0",
      guePorts: [7080, 5555],
      mode: "generic",
    });
    expect(() => parseDecapArgs(["attach", "eth0", "--gue-port=0"])).toThrow("--gue-port wants a port 1..65535, got '0'");
  });
});

describe("xvs adm (popt, as ipvsadm 1.31)", () => {
  test("--opt=value and --opt value give the same table; a flag with =value is popt's error (exit 255)", async () => {
    const x = startXvs();
    expect(await x.adm(["--add-service", "--tcp-service=198.18.0.100:80", "--scheduler=rr", "--persistent=60"])).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect(await x.adm(["--add-server", "--tcp-service=198.18.0.100:80", "--real-server=198.18.1.11:80", "--masquerading", "--weight=3"])).toEqual({
      stdout: "",
      stderr: "",
      exit: 0,
    });
    expect((await x.adm(["-Sn"])).stdout).toBe("-A -t 198.18.0.100:80 -s rr -p 60\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 3\n");
    // parse_options returns -1 on a popt error: ipvsadm prints popt's words and exits 255
    expect(await x.adm(["-L", "--numeric=1"])).toEqual({ stdout: "", stderr: "--numeric=1: option does not take an argument\n", exit: 255 });
  });
});
