import { describe, expect, test } from "bun:test";
import { runBenchAgent } from "../../../src/tools/bench/agents.ts";
import { AgentArgError, COUNT, FLAG, mode, parseAgentArgs, PORT, runAgent, TEXT, usageOf } from "../../../src/tools/lab/agent-args.ts";
import { runLabAgent } from "../../../src/tools/lab/agents.ts";

const SPEC = {
  host: { type: "string", required: true },
  port: PORT,
  count: COUNT,
  seconds: { type: "number", min: 0 },
  prog: { type: "string", choices: ["sink", "pass"] },
  path: TEXT,
  bodies: FLAG,
} as const;

/** The message of the AgentArgError that parsing `argv` throws. */
function failure(argv: string[]): string {
  try {
    parseAgentArgs(argv, SPEC);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentArgError);
    return (e as Error).message;
  }
  throw new Error(`parsing ${argv.join(" ")} succeeded`);
}

describe("parseAgentArgs: valid input", () => {
  test("strings, numbers, choices and flags come back typed; absent options are undefined or false", () => {
    const a = parseAgentArgs(["--host", "198.18.0.1", "--port", "8080", "--seconds", "0.5", "--prog", "pass", "--bodies"], SPEC);
    expect(a).toEqual({ host: "198.18.0.1", port: 8080, count: undefined, seconds: 0.5, prog: "pass", path: undefined, bodies: true });
  });

  test("a flag takes an explicit 1/0/true/false after it, and nothing else", () => {
    expect(parseAgentArgs(["--host", "h", "--bodies", "1"], SPEC).bodies).toBe(true);
    expect(parseAgentArgs(["--host", "h", "--bodies", "0"], SPEC).bodies).toBe(false);
    expect(parseAgentArgs(["--bodies", "false", "--host", "h"], SPEC).bodies).toBe(false);
    expect(parseAgentArgs(["--bodies", "--host", "h"], SPEC)).toMatchObject({ bodies: true, host: "h" });
    expect(failure(["--host", "h", "--bodies", "yes"])).toBe("unexpected argument 'yes'");
  });

  test("values that look like short options or are empty are values; the last of a repeated option wins", () => {
    const a = parseAgentArgs(["--host", "-h", "--path", "", "--port", "1", "--port", "2"], SPEC);
    expect(a).toMatchObject({ host: "-h", path: "", port: 2 });
  });

  test("bounds are inclusive", () => {
    expect(parseAgentArgs(["--host", "h", "--port", "0", "--count", "0"], SPEC)).toMatchObject({ port: 0, count: 0 });
    expect(parseAgentArgs(["--host", "h", "--port", "65535"], SPEC).port).toBe(65535);
  });
});

describe("parseAgentArgs: invalid input names the argument", () => {
  test.each([
    [["--host", "h", "--prot", "80"], "unknown option --prot"],
    [["--host", "h", "--port"], "--port needs a value"],
    [["--host", "--port", "80"], "--host needs a value"],
    [["--host", "h", "--port", "http"], "--port: 'http' is not a number"],
    [["--host", "h", "--port", ""], "--port: '' is not a number"],
    [["--host", "h", "--port", "Infinity"], "--port: 'Infinity' is not a number"],
    [["--host", "h", "--port", "80.5"], "--port: '80.5' is not an integer"],
    [["--host", "h", "--port", "65536"], "--port: 65536 is above 65535"],
    [["--host", "h", "--count", "-1"], "--count: -1 is below 0"],
    [["--host", "h", "--seconds", "-0.1"], "--seconds: -0.1 is below 0"],
    [["--host", "h", "--prog", "sink-tc"], "--prog: 'sink-tc' is not one of sink, pass"],
    [["--port", "80"], "--host is required"],
    [["h", "--port", "80"], "unexpected argument 'h'"],
    [["--host", "h", "--toString", "x"], "unknown option --toString"],
  ])("%j -> %s", (argv, message) => {
    expect(failure(argv as string[])).toBe(message);
  });
});

describe("runAgent", () => {
  const ran: unknown[] = [];
  const MODES = {
    echo: mode({ host: { type: "string", required: true }, port: PORT }, (a) => {
      ran.push(a);
      return 0;
    }),
  };

  test("a good command line runs the mode with its parsed options", async () => {
    ran.length = 0;
    expect(await runAgent("__t", MODES, ["echo", "--host", "h", "--port", "7"], () => {})).toBe(0);
    expect(ran).toEqual([{ host: "h", port: 7 }]);
  });

  test("a bad argument: exit code 2, one line naming it and the usage, the mode not run", async () => {
    ran.length = 0;
    let err = "";
    expect(await runAgent("__t", MODES, ["echo", "--host", "h", "--port", "x"], (s) => (err += s))).toBe(2);
    expect(err).toBe("xvs __t echo: --port: 'x' is not a number\nusage: xvs __t echo --host S [--port N]\n");
    expect(ran).toEqual([]);
  });

  test("an unknown or missing mode: exit code 2 listing the modes", async () => {
    let err = "";
    expect(await runAgent("__t", MODES, ["ehco"], (s) => (err += s))).toBe(2);
    expect(err).toBe("xvs __t: unknown mode ehco; modes: echo\n");
    err = "";
    expect(await runAgent("__t", MODES, [], (s) => (err += s))).toBe(2);
    expect(err).toContain("unknown mode (none)");
  });

  test("usage lists required options first, choices spelled out", () => {
    expect(usageOf(SPEC)).toBe("--host S [--port N] [--count N] [--seconds X] [--prog sink|pass] [--path S] [--bodies]");
  });
});

// The real agents: a bad argument stops them before they open a socket or load a program
// (a test that reached the mode would hang on a server or fail on a missing interface).
describe("the lab and bench agents share the behaviour", () => {
  async function run(agent: typeof runLabAgent, argv: string[]): Promise<[number, string]> {
    let err = "";
    const code = await agent(argv, (s) => (err += s));
    return [code, err.split("\n")[0]];
  }

  test("xvs __lab", async () => {
    expect(await run(runLabAgent, ["serve", "--name", "rs1", "--http", "eighty"])).toEqual([2, "xvs __lab serve: --http: 'eighty' is not a number"]);
    expect(await run(runLabAgent, ["http-get", "--port", "80"])).toEqual([2, "xvs __lab http-get: --host is required"]);
    expect(await run(runLabAgent, ["udp-ask", "--host", "198.18.0.1", "--count", "2.5"])).toEqual([2, "xvs __lab udp-ask: --count: '2.5' is not an integer"]);
    expect(await run(runLabAgent, ["tcp-chat", "--host", "198.18.0.1", "--conn", "3"])).toEqual([2, "xvs __lab tcp-chat: unknown option --conn"]);
    expect(await run(runLabAgent, ["http-loop", "--host", "198.18.0.1", "--concurrency", "0"])).toEqual([
      2,
      "xvs __lab http-loop: --concurrency: 0 is below 1",
    ]);
    expect(await run(runLabAgent, ["tcp-hold", "--host"])).toEqual([2, "xvs __lab tcp-hold: --host needs a value"]);
    expect(await run(runLabAgent, ["bogus"])).toEqual([2, "xvs __lab: unknown mode bogus; modes: serve, http-get, tcp-hold, udp-ask, tcp-chat, http-loop"]);
  });

  test("xvs __bench", async () => {
    expect(await run(runBenchAgent, ["gen", "--iface", "eth0", "--dst-mac", "02:00:00:00:00:01", "--src", "198.18.0.1"])).toEqual([
      2,
      "xvs __bench gen: --dst is required",
    ]);
    expect(await run(runBenchAgent, ["xdp", "--iface", "eth0", "--prog", "drop"])).toEqual([
      2,
      "xvs __bench xdp: --prog: 'drop' is not one of sink, sink-tc, pass",
    ]);
    expect(await run(runBenchAgent, ["udp-echo", "--port", "9001", "--cpu", "-1"])).toEqual([2, "xvs __bench udp-echo: --cpu: -1 is below 0"]);
    expect(await run(runBenchAgent, ["tcp-cli", "--hosts", "198.18.0.1", "--seconds", "two"])).toEqual([
      2,
      "xvs __bench tcp-cli: --seconds: 'two' is not a number",
    ]);
    expect(await run(runBenchAgent, ["udp-ping", "--host", "198.18.0.1", "stray"])).toEqual([2, "xvs __bench udp-ping: unexpected argument 'stray'"]);
  });
});
