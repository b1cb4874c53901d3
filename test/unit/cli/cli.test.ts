/**
 * The ipvsadm-compatible client beyond the golden transcripts: -S | -R round trips, number
 * formatting, the C library parsing it reproduces, the sort quirk, -R line splitting, and what
 * it says when the daemon is missing or the token is.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { largeNum } from "../../../src/cli/format.ts";
import { inetAton, stringToNumber } from "../../../src/cli/libc.ts";
import { runAdm } from "../../../src/cli/main.ts";
import { NameDb } from "../../../src/cli/names.ts";
import { FMT_EXACT } from "../../../src/cli/parse.ts";
import { Popt } from "../../../src/cli/popt.ts";
import { readRestoreLines } from "../../../src/cli/restore.ts";
import { cmpServices, glibcMergeSort, type ServiceSortKey } from "../../../src/cli/sort.ts";
import { DestSpec, ErrorBody, FWMARK_UNSUPPORTED_MESSAGE, IpvsServiceSpec } from "../../../src/control/schemas.ts";
import { ApiError, kernelMessage } from "../../../src/cli/client.ts";
import { loadTranscripts, startXvs, TOKEN, type AdmStep } from "./fixture.ts";

const TABLE = [
  "-A -t 198.18.0.100:80 -s wrr -p 120 -M 255.255.255.0",
  "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3",
  "-a -t 198.18.0.100:80 -r 198.18.1.12 -g -w 0",
  "-a -t 198.18.0.100:80 -r 198.18.1.13 -i --tun-type gue --tun-port 6080 --tun-csum",
  "-a -t 198.18.0.100:80 -r 198.18.1.14 -i --tun-type gre",
  "-A -u 198.18.0.100:53 -s sh -b sh-fallback,sh-port -o",
  "-a -u 198.18.0.100:53 -r 198.18.1.11:5353 -m -x 10 -y 5",
  "-A -t [2001:db8::100]:443 -s lc",
  "-a -t [2001:db8::100]:443 -r [2001:db8::11]:8443 -m -w 9",
  "-a -t [2001:db8::100]:443 -r 198.18.1.20 -i",
  "-A --sctp-service 198.18.0.100:38412 -s rr -b flag-2 --pe sip -p 30",
  "--set 100 20 30",
];

async function build() {
  const x = startXvs();
  for (const line of TABLE) expect(await x.adm(line.split(" "))).toEqual({ stdout: "", stderr: "", exit: 0 });
  return x;
}

describe("save and restore", () => {
  test("-Sn fed to -R on an empty daemon rebuilds the same table", async () => {
    const x = await build();
    const saved = await x.adm(["-Sn"]);
    const listed = await x.adm(["-Ln"]);
    const y = startXvs();
    expect(await y.adm(["-R"], saved.stdout)).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect((await y.adm(["-Sn"])).stdout).toBe(saved.stdout);
    expect((await y.adm(["-Ln"])).stdout).toBe(listed.stdout);
  });

  test("-S with names round-trips too (ports come back through /etc/services)", async () => {
    const x = await build();
    const saved = await x.adm(["-S"]);
    expect(saved.stdout).toContain("-A -t 198.18.0.100:http -s wrr");
    const y = startXvs();
    expect((await y.adm(["-R"], saved.stdout)).exit).toBe(0);
    expect((await y.adm(["-Sn"])).stdout).toBe((await x.adm(["-Sn"])).stdout);
  });

  test("-C then -R of a saved table restores it after a flush", async () => {
    const x = await build();
    const saved = (await x.adm(["-Sn"])).stdout;
    expect((await x.adm(["-C"])).exit).toBe(0);
    expect((await x.adm(["-Sn"])).stdout).toBe("");
    expect((await x.adm(["-R"], saved)).exit).toBe(0);
    expect((await x.adm(["-Sn"])).stdout).toBe(saved);
  });

  test("a failing line in -R leaves the table exactly as it was", async () => {
    const x = await build();
    const before = (await x.adm(["-Sn"])).stdout;
    const r = await x.adm(["-R"], "-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.9:80 -r 198.18.1.1 -m\n");
    expect(r).toEqual({ stdout: "", stderr: "Service not defined\n", exit: 255 });
    expect((await x.adm(["-Sn"])).stdout).toBe(before);
  });

  test("--set is part of the restored state", async () => {
    const x = await build();
    expect((await x.adm(["-L", "--timeout"])).stdout).toBe("Timeout (tcp tcpfin udp): 100 20 30\n");
  });
});

describe("firewall-mark services", () => {
  const refused = { stdout: "", stderr: `${FWMARK_UNSUPPORTED_MESSAGE}\n`, exit: 255 };

  test("-A and -E of a fwmark service are refused with one line and exit 255; the table is unchanged", async () => {
    const x = await build();
    const before = (await x.adm(["-Sn"])).stdout;
    expect(await x.adm(["-A", "-f", "7", "-s", "rr"])).toEqual(refused);
    expect(await x.adm(["--add-service", "--fwmark-service=7", "--ipv6", "--scheduler", "sh"])).toEqual(refused);
    expect(await x.adm(["-E", "-f", "7", "-s", "wrr"])).toEqual(refused);
    expect((await x.adm(["-Sn"])).stdout).toBe(before);
    // what names one afterwards gets the kernel's answer for a service that does not exist
    expect(await x.adm(["-a", "-f", "7", "-r", "198.18.1.11", "-m"])).toEqual({ stdout: "", stderr: "Service not defined\n", exit: 255 });
    expect(await x.adm(["-L", "-n", "-f", "7"])).toEqual({ stdout: "", stderr: "No such service\n", exit: 1 });
  });

  test("the daemon's own refusal reads the same in the CLI's words (a client that sent one anyway)", async () => {
    const x = startXvs();
    const res = await x.app.request("/v1/services", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ fwmark: 7, scheduler: "rr" }),
    });
    expect(res.status).toBe(400);
    expect(kernelMessage(new ApiError(res.status, ErrorBody.parse(await res.json())))).toBe(FWMARK_UNSUPPORTED_MESSAGE);
  });

  test("ipvsadm's own parse errors still come first (exit 2, the guest's words)", async () => {
    const x = startXvs();
    expect(await x.adm(["-A", "-f", "0"])).toEqual({ stdout: "", stderr: "invalid fwmark value `0' specified\n", exit: 2 });
    expect(await x.adm(["-A", "-f", "5", "-6", "-p", "100", "-M", "129"])).toEqual({ stdout: "", stderr: "illegal ipv6 netmask specified\n", exit: 2 });
  });

  test("-R with a fwmark line anywhere is refused whole: no line before or after it is applied", async () => {
    const x = startXvs();
    const input = "-A -t 198.18.0.100:80 -s rr\n-L -n\n-A -f 9 -s rr -p 30\n-A -u 198.18.0.100:53 -s rr\n";
    expect(await x.adm(["-R"], input)).toEqual(refused);
    expect((await x.adm(["-Sn"])).stdout).toBe("");
  });

  test("the FWM listing and save formats still print what the guest printed (services put in the model directly)", async () => {
    // the daemon refuses fwmark services, but the listing code keeps their formats (mark 4294967295
    // as -1, IPv6, masks, sort position) for the day xvs classifies by mark
    const seq = loadTranscripts().sequences.find((s) => s.name === "fwmark-services")!;
    const step = (argv: string) => seq.steps.find((s): s is AdmStep => s.kind === "adm" && s.argv.join(" ") === argv)!;
    const x = startXvs();
    await x.daemon.mutate((m) => {
      const svc = (spec: object) => m.addService(IpvsServiceSpec.parse(spec));
      const dest = (mark: number, family: "ipv4" | "ipv6", spec: object) => m.addDest({ fwmark: mark, family }, DestSpec.parse(spec));
      svc({ fwmark: 1, scheduler: "rr" });
      svc({ fwmark: 2, family: "ipv6", scheduler: "rr" });
      svc({ fwmark: 4294967295, scheduler: "wrr" });
      svc({ fwmark: 3, persistence: { timeout: 360, netmask: "255.255.0.0" } });
      svc({ fwmark: 4, family: "ipv6", persistence: { timeout: 100, netmask: "64" } });
      dest(1, "ipv4", { address: "198.18.1.11", port: 8080, forward: "masq" });
      dest(1, "ipv4", { address: "198.18.1.12", forward: "masq" });
      dest(1, "ipv4", { address: "198.18.1.13", port: 8080, forward: "route" });
      dest(2, "ipv6", { address: "2001:db8::11", port: 80, forward: "masq" });
    });
    for (const argv of ["-Ln", "-Sn", "-L -n -f 1", "-L -n -f 2 -6"]) {
      const want = step(argv);
      expect(await x.adm(argv.split(" "))).toEqual({ stdout: want.stdout, stderr: want.stderr, exit: want.exit });
    }
  });
});

describe("number formatting", () => {
  test("print_largenum rounds to K, M, G and T and keeps 9 columns", () => {
    expect(largeNum(99999999, 0)).toBe(" 99999999");
    expect(largeNum(123456789, 0)).toBe("  123456K");
    expect(largeNum(9876543210, 0)).toBe("    9876M");
    expect(largeNum(99999999999, 0)).toBe("   99999M");
    expect(largeNum(100000000000, 0)).toBe("     100G");
    expect(largeNum(123456789012345, 0)).toBe("     123T");
  });

  test("--exact prints every digit, one column wider than the number past 8 digits", () => {
    expect(largeNum(5, FMT_EXACT)).toBe("        5");
    expect(largeNum(123456789, FMT_EXACT)).toBe(" 123456789");
    expect(largeNum(9876543210, FMT_EXACT)).toBe(" 9876543210");
  });
});

describe("C library parsing", () => {
  test("inet_aton takes short, octal and hex forms as glibc does", () => {
    const q = (s: string) => {
      const v = inetAton(s);
      return v === null ? null : [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
    };
    expect(q("198.18.1")).toBe("198.18.0.1");
    expect(q("0xc6.18.0.1")).toBe("198.18.0.1");
    expect(q("198.0x12.0.010")).toBe("198.18.0.8");
    expect(q("3322019841")).toBe("198.2.0.1");
    expect(q("1.2.3.4 junk")).toBe("1.2.3.4");
    for (const bad of ["300.1.1.1", "1.2.3.4.5", "08.1.1.1", "", ".1", "1..2", "0x", "1.2.3.256"]) expect(q(bad)).toBeNull();
  });

  test("string_to_number takes a sign and leading blanks but nothing after the digits", () => {
    expect(stringToNumber("+81", 0, 65535)).toBe(81);
    expect(stringToNumber("081", 0, 65535)).toBe(81);
    expect(stringToNumber(" 7", 0, 10)).toBe(7);
    expect(stringToNumber("0x51", 0, 65535)).toBe(-1);
    expect(stringToNumber("1x", 0, 65535)).toBe(-1);
    expect(stringToNumber("99999999999999999999", 0, 65535)).toBe(-1);
  });

  test("popt splits bundles, takes required arguments even when they start with '-', and keeps leftovers", () => {
    const p = new Popt(["-Lnt", "198.18.0.1:80", "extra", "-w", "-1", "--", "-x"]);
    const seen: string[] = [];
    for (let r = p.next(); r.kind === "opt"; r = p.next()) seen.push(`${r.def.tag}=${r.arg}`);
    expect(seen).toEqual(["L=null", "n=null", "t=198.18.0.1:80", "w=-1"]);
    expect(p.leftover).toEqual(["extra", "-x"]);
  });
});

describe("sort order", () => {
  test("addresses 2^31 apart compare the wrong way round, as ipvs_cmp_services does", () => {
    const svc = (a: number, port = 80): ServiceSortKey => ({ fwmark: 0, af: 4, protocol: 6, addr: [a | 0, 0, 0, 0], port });
    const ten = svc(0x0a000001),
      bench = svc(0xc6120001),
      cgnat = svc(0x64400001);
    expect(cmpServices(bench, ten)).toBeLessThan(0);
    // 198 < 10 < 100 < 198: not transitive, so the order depends on where each started
    const order = (list: ServiceSortKey[]) => glibcMergeSort(list, cmpServices).map((s) => s.addr[0] >>> 24);
    expect(order([ten, cgnat, bench])).toEqual([10, 100, 198]);
    expect(order([bench, ten, cgnat])).toEqual([198, 10, 100]);
  });
});

describe("-R input", () => {
  test("lines split on blanks, drop the word ipvsadm, and keep '#' as a word", () => {
    expect(readRestoreLines("-A -t 198.18.0.1:80\n\n ipvsadm -C\t\r\n# x\n-L")).toEqual([["-A", "-t", "198.18.0.1:80"], ["-C"], ["#", "x"], ["-L"]]);
  });

  test("a last line ending in blanks without a newline is dropped, as config_stream_read drops it", () => {
    expect(readRestoreLines("-C\n-L  ")).toEqual([["-C"]]);
  });
});

describe("talking to the daemon", () => {
  test("with no daemon, a command that needs one says so and exits 2", async () => {
    let err = "";
    const code = await runAdm(["-Ln"], {
      stdout: { write: () => 0 },
      stderr: {
        write: (s: string) => {
          err += s;
        },
      },
      fetch: () => Promise.reject(new Error("Connection refused")),
      apiBase: "http://127.0.0.1:1",
      token: null,
      readStdin: async () => "",
      names: new NameDb("", ""),
      program: "ipvsadm",
    });
    expect(code).toBe(2);
    expect(err).toStartWith("Can't initialize ipvs: no xvs daemon answers at http://127.0.0.1:1");
  });

  test("help, version and option errors need no daemon", async () => {
    let out = "";
    const code = await runAdm(["-v"], {
      stdout: {
        write: (s: string) => {
          out += s;
        },
      },
      stderr: { write: () => 0 },
      fetch: () => Promise.reject(new Error("no daemon")),
      apiBase: "http://127.0.0.1:1",
      token: null,
      readStdin: async () => "",
      names: new NameDb("", ""),
      program: "ipvsadm",
    });
    expect(code).toBe(0);
    expect(out).toBe("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n");
  });

  test("without the token a change is refused with EPERM's words and the table is unchanged", async () => {
    const x = startXvs();
    let err = "";
    const code = await runAdm(["-A", "-t", "198.18.0.1:80"], {
      stdout: { write: () => 0 },
      stderr: {
        write: (s: string) => {
          err += s;
        },
      },
      fetch: (i, init) => x.app.request(i, init),
      apiBase: "http://127.0.0.1:9172",
      token: null,
      readStdin: async () => "",
      names: new NameDb("", ""),
      program: "ipvsadm",
    });
    expect({ code, err }).toEqual({ code: 255, err: "Permission denied (you must be root)\n" });
    expect(x.daemon.model.services).toHaveLength(0);
  });

  test("--start-daemon / -L --daemon / --stop-daemon: ipvsadm's lines and refusals", async () => {
    const x = startXvs();
    expect(await x.adm(["--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "7"])).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect(await x.adm(["--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "3", "--sync-maxlen", "9000", "--mcast-port", "9001"])).toEqual({
      stdout: "",
      stderr: "",
      exit: 0,
    });
    expect((await x.adm(["-L", "--daemon"])).stdout).toBe(
      "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
        "backup sync daemon (mcast=lo, syncid=3, maxlen=9000, group=224.0.0.81, port=9001, ttl=1)\n",
    );
    expect(await x.adm(["--start-daemon", "master", "--mcast-interface", "lo"])).toEqual({ stdout: "", stderr: "Daemon has already run\n", exit: 255 });
    expect(await x.adm(["--stop-daemon", "master"])).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect(await x.adm(["--stop-daemon", "master"])).toEqual({ stdout: "", stderr: "No daemon is running\n", exit: 255 });
    expect(await x.adm(["--stop-daemon", "backup"])).toEqual({ stdout: "", stderr: "", exit: 0 });
    expect((await x.adm(["-L", "--daemon"])).stdout).toBe("");
    expect(await x.adm(["--start-daemon", "backup", "--mcast-interface", "xvsnosuch0"])).toEqual({ stdout: "", stderr: "No such device\n", exit: 255 });
  });

  test("the client reaches the dataplane only through the HTTP API (no import of dataplane or model code)", () => {
    const dir = join(import.meta.dir, "../../../src/cli");
    for (const f of readdirSync(dir)) {
      const src = readFileSync(join(dir, f), "utf8");
      for (const m of src.matchAll(/from "([^"]+)"/g)) expect(m[1]).not.toMatch(/dataplane|conn\/|service\/model|sched\/|xmit|ffi|control\/(daemon|app)/);
    }
  });
});
