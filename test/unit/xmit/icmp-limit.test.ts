import { describe, expect, test } from "bun:test";
import { IcmpLimiter } from "../../../src/xmit/icmp-limit.ts";

const A = 0xc6120102 | 0,
  B = 0xc6120103 | 0;

describe("ICMP error rate limits (icmpv4_xrlim_allow, icmp_global_allow)", () => {
  test("a host gets a burst of 6 errors, then one per second", () => {
    const l = new IcmpLimiter();
    const sent = Array.from({ length: 10 }, () => l.allow(1000, false, A, 0, 0, 0));
    expect(sent).toEqual([true, true, true, true, true, true, false, false, false, false]);
    expect(l.allow(1000 + 99, false, A, 0, 0, 0)).toBe(false);
    expect(l.allow(1000 + 100, false, A, 0, 0, 0)).toBe(true);
    expect(l.allow(1000 + 150, false, A, 0, 0, 0)).toBe(false);
    expect(l.allow(1000 + 200, false, A, 0, 0, 0)).toBe(true);
  });

  test("hosts have separate budgets", () => {
    const l = new IcmpLimiter();
    for (let i = 0; i < 6; i++) l.allow(5, false, A, 0, 0, 0);
    expect(l.allow(5, false, A, 0, 0, 0)).toBe(false);
    expect(l.allow(5, false, B, 0, 0, 0)).toBe(true);
  });

  test("fragmentation needed / packet too big are never limited", () => {
    const l = new IcmpLimiter();
    for (let i = 0; i < 1000; i++) expect(l.allow(7, true, A, 0, 0, 0)).toBe(true);
  });

  test("all hosts together get at most a burst of 50, refilled at 1000 per second", () => {
    const l = new IcmpLimiter();
    let n = 0;
    for (let i = 0; i < 200; i++) if (l.allow(3, false, 0x0a000000 + i, 0, 0, 0)) n++;
    expect(n).toBe(50);
    n = 0;
    for (let i = 200; i < 400; i++) if (l.allow(3 + 1, false, 0x0a000000 + i, 0, 0, 0)) n++;
    expect(n).toBe(10); // 10 ms later: 10 more credits
  });
});
