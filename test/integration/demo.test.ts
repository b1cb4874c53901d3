/**
 * `xvs demo --check` with each forwarding method and with the schedulers whose traffic shape
 * differs (binary.test.ts runs the default, NAT with rr, from the compiled executable): DR and
 * TUN real servers answer the client directly through the director, sh and mh spread the
 * client's 16 source addresses and move a quiesced server's clients on (fallback flag), dh
 * sends everything for the one VIP to one real server.
 */
import { describe, expect, test } from "bun:test";
import { selfCommand } from "../../src/lab/self.ts";
import { requireRoot } from "./helpers.ts";

async function demo(args: string[]): Promise<{ code: number; out: string }> {
  requireRoot();
  const p = Bun.spawn([...selfCommand(), "demo", "--check", "--act-seconds", "2", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) console.log(out.slice(-3000), err);
  return { code, out };
}

/** The per-act summary lines the demo ends with. */
const acts = (out: string) => out.split("\n").filter((l) => /^act \d: /.test(l));

describe("xvs demo --check", () => {
  test("DR with wlc: every real server answers, none fails, the quiesced one drains", async () => {
    const r = await demo(["--forward", "route", "--scheduler", "wlc"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("demo ok: every real server answered, no request failed");
    expect(acts(r.out)[0]).toMatch(/(?=.*rs1 \d+)(?=.*rs2 \d+)(?=.*rs3 \d+).*, 0 failed$/);
  }, 90_000);

  test("TUN (IPIP, decap helper on the real servers) with mh and its fallback flag", async () => {
    const r = await demo(["--forward", "tunnel", "--scheduler", "mh"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("demo ok: every real server answered, no request failed");
  }, 90_000);

  test("NAT with sh: the 16 client addresses reach all three real servers", async () => {
    const r = await demo(["--scheduler", "sh"]);
    expect(r.code).toBe(0);
    expect(acts(r.out)[0]).toMatch(/(?=.*rs1 \d+)(?=.*rs2 \d+)(?=.*rs3 \d+).*, 0 failed$/);
  }, 90_000);

  test("NAT with dh: one real server takes the VIP's traffic; act 1 is judged", async () => {
    const r = await demo(["--scheduler", "dh"]);
    expect(r.code).toBe(0);
    expect(acts(r.out)[0]).toMatch(/^act 1: \d+ requests answered \(rs\d \d+\), 0 failed$/);
    expect(r.out).toContain("demo ok: the scheduler's real servers answered, no request failed in act 1");
  }, 90_000);
});
