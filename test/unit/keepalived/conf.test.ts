// keepalived.conf reader and converter (src/control/keepalived/read.ts, convert.ts) over the files in
// test/fixtures/keepalived/. Each file is also given to the real keepalived (Debian 12's 2.2.7,
// `keepalived --config-test -f FILE`): the files it accepts convert to the expected JSON; the
// files it rejects are rejected here too, at the line keepalived names; the files it accepts
// and xvs refuses (fwmark, notify scripts, PING_CHECK, an include of nothing) say why.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convertKeepalived } from "../../../src/control/keepalived/convert.ts";
import { ConfError, readKeepalivedConf, splitLine } from "../../../src/control/keepalived/read.ts";
import { loadKeepalivedConf } from "../../../src/control/keepalived/reload.ts";
import { applyConfig } from "../../../src/control/batch.ts";
import { Model } from "../../../src/config/model.ts";

const dir = join(import.meta.dir, "../../fixtures/keepalived");
const fixture = (name: string) => join(dir, name);

/** What `keepalived --config-test -f FILE` says: exit code and the lines it names (deduplicated: its processes each print them). */
function keepalivedTest(path: string): { code: number; lines: number[]; out: string } {
  const r = Bun.spawnSync(["keepalived", "--config-test", "-f", path], { stdout: "pipe", stderr: "pipe" });
  const out = `${r.stdout.toString()}${r.stderr.toString()}`;
  const lines = [...new Set([...out.matchAll(/\(([^()]*): Line (\d+)\)/g)].map((m) => Number(m[2])))].sort((a, b) => a - b);
  return { code: r.exitCode ?? -1, lines, out };
}

function convertFile(path: string) {
  return convertKeepalived(readKeepalivedConf(path).stmts);
}

function errorOf(f: () => unknown): ConfError {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfError) return e;
    throw e;
  }
  throw new Error("no error");
}

describe("files keepalived accepts convert to xvs's document", () => {
  for (const name of ["web", "include", "group"]) {
    test(`${name}.conf`, () => {
      const k = keepalivedTest(fixture(`${name}.conf`));
      expect({ code: k.code, out: k.out }).toEqual({ code: 0, out: "" });
      const expected = JSON.parse(readFileSync(fixture(`${name}.expected.json`), "utf8"));
      expect(convertFile(fixture(`${name}.conf`))).toEqual(expected);
      // the table part is a valid config document that applies to a model
      const loaded = loadKeepalivedConf(fixture(`${name}.conf`));
      // nothing is lost on the way into the table: health and checkers are part of ConfigDoc
      expect(loaded.table.services).toEqual(expected.services);
      const m = new Model();
      applyConfig(m, loaded.table);
      expect(m.services.length).toBe(expected.services.length);
      expect(m.services.map((s) => s.dests.length)).toEqual(expected.services.map((s: { dests: unknown[] }) => s.dests.length));
    });
  }

  test("the include reads every file of the glob, relative to the including file, in sorted order", () => {
    const loaded = loadKeepalivedConf(fixture("include.conf"));
    expect(loaded.files.map((f) => f.slice(dir.length + 1))).toEqual([
      "include.conf",
      "include.d/10-dns.conf",
      "include.d/20-mail.conf",
      "include.rs/mail-servers.conf",
    ]);
    expect(loaded.stamp.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("files keepalived rejects are rejected at the line it names", () => {
  const cases: [string, RegExp][] = [
    ["bad-keyword.conf", /unknown keyword 'connect_timout' in TCP_CHECK/],
    ["bad-brace.conf", /'}' without a block to close/],
    ["bad-weight.conf", /'weight': 'heavy' is not a whole number/],
    ["bad-quote.conf", /unterminated quoted string/],
    ["bad-persistence.conf", /'persistence_timeout': '0' is not a whole number in 1\.\./],
  ];
  for (const [name, why] of cases) {
    test(name, () => {
      const k = keepalivedTest(fixture(name));
      expect(k.code).not.toBe(0);
      const e = errorOf(() => convertFile(fixture(name)));
      expect(e.reason).toMatch(why);
      expect(e.file).toBe(fixture(name));
      expect(e.message.startsWith(`${fixture(name)}:${e.line}: `)).toBe(true);
      // the first line keepalived complains about (bad-brace: it also notes the line before, where the '{' went missing)
      expect(k.lines.at(-1)).toBe(e.line);
    });
  }
});

describe("files keepalived accepts and xvs refuses say why, with file and line", () => {
  const cases: [string, number, RegExp][] = [
    ["refused-fwmark.conf", 2, /virtual_server fwmark 7: Firewall-mark services are not supported by xvs/],
    ["refused-notify.conf", 11, /'notify_down' in real_server is not supported/],
    ["refused-ping.conf", 7, /'PING_CHECK' in real_server is not supported/],
    ["refused-missing-include.conf", 9, /include services\.d\/\*\.conf: no file matches/],
  ];
  for (const [name, line, why] of cases) {
    test(name, () => {
      expect(keepalivedTest(fixture(name)).code).toBe(0);
      const e = errorOf(() => convertFile(fixture(name)));
      expect({ file: e.file, line: e.line }).toEqual({ file: fixture(name), line });
      expect(e.reason).toMatch(why);
    });
  }
});

describe("splitLine (keepalived's word rules)", () => {
  const words = (s: string) => splitLine(s, "f", 1).map((w) => w.text);
  test("comments start at ! or # anywhere outside quotes, also inside a word", () => {
    expect(words("lb_algo rr ! the old name")).toEqual(["lb_algo", "rr"]);
    expect(words("real_server 198.18.1.2 80#x {")).toEqual(["real_server", "198.18.1.2", "80"]);
    expect(words("  # a comment line")).toEqual([]);
    expect(words('path "/a#b c!d" # tail')).toEqual(["path", "/a#b c!d"]);
  });
  test("braces are words of their own", () => {
    expect(words("real_server 1.2.3.4 80{weight 1}")).toEqual(["real_server", "1.2.3.4", "80", "{", "weight", "1", "}"]);
  });
  test("an unterminated quote is an error at its line", () => {
    expect(() => splitLine('path "/x', "f.conf", 7)).toThrow("f.conf:7: unterminated quoted string");
  });
});

describe("readKeepalivedConf", () => {
  const tmp = () => mkdtempSync(join(tmpdir(), "xvs-ka-"));

  test("a '{' on the line after its keyword opens the keyword's block", () => {
    const d = tmp();
    try {
      writeFileSync(join(d, "k.conf"), "virtual_server 198.18.0.1 80\n{\n  protocol TCP\n  real_server 198.18.1.1 80\n  {\n    weight 2\n  }\n}\n");
      const [vs] = readKeepalivedConf(join(d, "k.conf")).stmts;
      expect(vs.keyword).toBe("virtual_server");
      expect(vs.block!.map((s) => s.keyword)).toEqual(["protocol", "real_server"]);
      expect(vs.block![1].block!.map((s) => [s.keyword, ...s.args, s.line])).toEqual([["weight", "2", 6]]);
    } finally {
      rmSync(d, { recursive: true });
    }
  });

  test("an unclosed block names the line of its keyword; an include loop ends with an error", () => {
    const d = tmp();
    try {
      writeFileSync(join(d, "open.conf"), "virtual_server 198.18.0.1 80 {\n  protocol TCP\n");
      expect(() => readKeepalivedConf(join(d, "open.conf"))).toThrow(`${join(d, "open.conf")}:1: 'virtual_server' block is never closed`);
      mkdirSync(join(d, "sub"));
      writeFileSync(join(d, "loop.conf"), "include sub/again.conf\n");
      writeFileSync(join(d, "sub", "again.conf"), "include ../loop.conf\n");
      expect(() => readKeepalivedConf(join(d, "loop.conf"))).toThrow(/includes nested deeper than 16/);
    } finally {
      rmSync(d, { recursive: true });
    }
  });

  test("a keyword inside a block of its own is given its block's statements; extra words are refused", () => {
    const d = tmp();
    try {
      writeFileSync(join(d, "k.conf"), "virtual_server 198.18.0.1 80 {\n  protocol TCP\n  real_server 198.18.1.1 80 { weight 1 ; }\n}\n");
      expect(() => convertFile(join(d, "k.conf"))).toThrow(`${join(d, "k.conf")}:3: 'weight' takes 1 value, not 2`);
    } finally {
      rmSync(d, { recursive: true });
    }
  });
});

describe("convert", () => {
  const tmp = mkdtempSync(join(tmpdir(), "xvs-ka-"));
  const conv = (body: string) => {
    const p = join(tmp, `c${Math.random().toString(36).slice(2)}.conf`);
    writeFileSync(p, body);
    return convertFile(p);
  };
  const vs = (inner: string) => `virtual_server 198.18.0.1 80 {\n  protocol TCP\n${inner}\n}\n`;

  test("defaults as keepalived: protocol UDP when none, NAT, wlc, weight 1, persistence 360 s", () => {
    const doc = conv("virtual_server 198.18.0.1 80 {\n  persistence_timeout\n  real_server 198.18.1.1 80 {\n  }\n}\n");
    const s = doc.services[0];
    expect([s.protocol, s.scheduler, s.persistence?.timeout, s.dests[0].forward, s.dests[0].weight]).toEqual(["udp", "wlc", 360, "masq", 1]);
    expect(s.health.delay_loop).toBe(60);
  });

  test("checkers inherit retry, delay_before_retry, connect_timeout, delay_loop from real server, then virtual server", () => {
    const doc = conv(
      vs(
        "  retry 5\n  connect_timeout 7\n  delay_before_retry 9\n  real_server 198.18.1.1 80 {\n    retry 2\n    TCP_CHECK {\n    }\n    TCP_CHECK {\n      retry 0\n      connect_timeout 1.5\n    }\n  }",
      ),
    );
    const [a, b] = doc.services[0].dests[0].checkers!;
    expect([a.retry, a.connect_timeout, a.delay_before_retry]).toEqual([2, 7, 9]);
    expect([b.retry, b.connect_timeout, b.delay_before_retry]).toEqual([0, 1.5, 9]);
  });

  test("an unknown keyword is an error with file and line, at every level", () => {
    expect(() => conv(vs("  lb_algoo rr"))).toThrow(/:3: unknown keyword 'lb_algoo' in virtual_server/);
    expect(() => conv(vs("  real_server 198.18.1.1 80 {\n    wieght 1\n  }"))).toThrow(/:4: unknown keyword 'wieght' in real_server/);
    expect(() => conv("net_namespace blue\n")).toThrow(/:1: unknown keyword 'net_namespace' at the top level/);
    expect(() => conv(vs("  real_server 198.18.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        regex ok\n      }\n    }\n  }"))).toThrow(
      /:7: 'regex' in url is not supported/,
    );
  });

  test("a scheduler xvs does not have, a service defined twice, a group of nothing", () => {
    expect(() => conv(vs("  lb_algo wlb"))).toThrow(/:3: 'lb_algo': scheduler 'wlb' is not one xvs implements/);
    expect(() => conv(vs("") + vs(""))).toThrow(/:5: virtual service tcp 198.18.0.1 80 is already defined at .*:1/);
    expect(() => conv("virtual_server group NONE {\n  protocol TCP\n}\n")).toThrow(/:1: virtual_server group NONE: no virtual_server_group NONE is defined/);
  });

  test("a real server listed twice (also once without its port, which is the service's) is an error at the second", () => {
    expect(() => conv(vs("  real_server 198.18.1.1 80 {\n  }\n  real_server 198.18.1.1 {\n  }"))).toThrow(
      /:5: real_server 198.18.1.1 is already defined at .*:3/,
    );
    expect(conv(vs("  real_server 198.18.1.1 80 {\n  }\n  real_server 198.18.1.1 81 {\n  }")).services[0].dests.length).toBe(2);
    expect(() => conv(vs("  lb_kind DR\n  real_server 2001:db8::1 80 {\n  }"))).toThrow(
      /:4: real_server 2001:db8::1: address family differs from the virtual server's 198.18.0.1/,
    );
    expect(conv(vs("  lb_kind TUN\n  real_server 2001:db8::1 80 {\n  }")).services[0].dests[0].forward).toBe("tunnel");
  });

  test("hysteresis not below quorum is lowered to quorum - 1, as keepalived does (check_data.c)", () => {
    expect(conv(vs("  quorum 3\n  hysteresis 5")).services[0].health).toMatchObject({ quorum: 3, hysteresis: 2 });
    expect(conv(vs("  hysteresis 1")).services[0].health).toMatchObject({ quorum: 1, hysteresis: 0 });
  });

  test("IPv6 ranges run over the last group, in hex", () => {
    const doc = conv("virtual_server_group G {\n  2001:db8::8-a 80\n}\nvirtual_server group G {\n  protocol TCP\n}\n");
    expect(doc.services.map((s) => s.address)).toEqual(["2001:db8::8", "2001:db8::9", "2001:db8::a"]);
  });
});
