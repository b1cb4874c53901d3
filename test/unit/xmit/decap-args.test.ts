/** `xvs decap` argument parsing: defaults, repeated and invalid options, usage errors. */
import { describe, expect, test } from "bun:test";
import { parseDecapArgs } from "../../../src/decap/cli.ts";

describe("xvs decap arguments", () => {
  test("attach defaults to GUE port 6080 and mode auto", () => {
    expect(parseDecapArgs(["attach", "eth0"])).toEqual({ cmd: "attach", iface: "eth0", guePorts: [6080], mode: "auto" });
  });

  test("--gue-port repeats (duplicates once), --mode native|generic", () => {
    expect(parseDecapArgs(["attach", "eth1", "--gue-port", "7080", "--gue-port", "5555", "--gue-port", "7080", "--mode", "generic"])).toEqual({
      cmd: "attach",
      iface: "eth1",
      guePorts: [7080, 5555],
      mode: "generic",
    });
  });

  test("detach and stats take only the interface", () => {
    expect(parseDecapArgs(["detach", "eth0"]).cmd).toBe("detach");
    expect(parseDecapArgs(["stats", "eth0"]).cmd).toBe("stats");
    expect(() => parseDecapArgs(["detach", "eth0", "--gue-port", "1"])).toThrow("unexpected argument '--gue-port'");
  });

  test("bad input is refused with the reason", () => {
    expect(() => parseDecapArgs(["attach"])).toThrow("missing interface");
    expect(() => parseDecapArgs(["attach", "eth0", "--gue-port", "0"])).toThrow("--gue-port wants a port 1..65535, got '0'");
    expect(() => parseDecapArgs(["attach", "eth0", "--gue-port", "70000"])).toThrow("got '70000'");
    expect(() => parseDecapArgs(["attach", "eth0", "--gue-port"])).toThrow("got ''");
    expect(() => parseDecapArgs(["attach", "eth0", "--mode", "fast"])).toThrow("--mode is auto, native or generic");
    expect(() => parseDecapArgs(["open", "eth0"])).toThrow("expected attach, detach or stats");
    const many = Array.from({ length: 17 }, (_, i) => ["--gue-port", String(6000 + i)]).flat();
    expect(() => parseDecapArgs(["attach", "eth0", ...many])).toThrow("at most 16 GUE ports");
  });
});
