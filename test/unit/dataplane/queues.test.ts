// Worker count and queue ownership (src/dataplane/queues.ts): what `xvs run` decides from
// --workers, the usable cores and each interface's rx queues, and how it reads the queues.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assignQueues, describeQueues, planWorkers, rxQueueCount, workerForNewQueue } from "../../../src/dataplane/queues.ts";

describe("planWorkers", () => {
  test("default: the usable cores, at most the fewest queues of an interface, with no warning", () => {
    expect(planWorkers(undefined, 2, [4, 4], ["c0", "s0"])).toEqual({ workers: 2, adjustments: [], served: [4, 4] });
    expect(planWorkers(undefined, 8, [4, 2], ["c0", "s0"])).toEqual({ workers: 2, adjustments: [], served: [4, 2] });
    expect(planWorkers(undefined, 2, [1], ["eth0"])).toEqual({ workers: 1, adjustments: [], served: [1] });
  });

  test("more workers than cores is lowered to the cores, and says so", () => {
    const p = planWorkers(4, 2, [8, 8], ["c0", "s0"]);
    expect(p.workers).toBe(2);
    expect(p.adjustments).toEqual(["--workers 4 is more than the 2 usable cores: running 2 workers (poll loops sharing a core slow each other down)"]);
  });

  test("more workers than an interface has queues is lowered to its queue count, naming it", () => {
    const p = planWorkers(2, 4, [4, 1], ["c0", "s0"]);
    expect(p.workers).toBe(1);
    expect(p.adjustments).toEqual(["2 workers but s0 has 1 rx queue: running 1 (every worker needs a queue of every interface to send on)"]);
  });

  test("more queues than xvs can serve (64) is an adjustment that names the unserved queues and the fix", () => {
    const p = planWorkers(undefined, 2, [96], ["eth0"]);
    expect(p.served).toEqual([64]);
    expect(p.adjustments[0]).toContain("queues 64..95 have no socket");
    expect(p.adjustments[0]).toContain("ethtool -L eth0 combined 64");
  });
});

describe("assignQueues and workerForNewQueue", () => {
  test("queue q of every interface goes to worker q mod N: every queue exactly once, spread evenly", () => {
    const owned = assignQueues(2, [4, 3]);
    expect(owned.map((qs) => describeQueues(qs, ["c0", "s0"]))).toEqual(["c0:0,2 s0:0,2", "c0:1,3 s0:1"]);
    expect(assignQueues(1, [2, 2]).map((qs) => qs.length)).toEqual([4]);
    // every worker opens its interfaces in the daemon's order (its port's numbers are the daemon's indices)
    for (const qs of assignQueues(3, [5, 3, 4])) expect([...new Set(qs.map((r) => r.iface))]).toEqual([0, 1, 2]);
  });

  test("a queue that appears later goes to the worker with the fewest queues of that interface", () => {
    const owned = assignQueues(2, [3, 3]); // worker 0: c0 0,2; worker 1: c0 1
    expect(workerForNewQueue(owned, 0)).toBe(1);
    owned[1].push({ iface: 0, queue: 3 });
    expect(workerForNewQueue(owned, 0)).toBe(0);
  });
});

describe("rxQueueCount", () => {
  const root = mkdtempSync(join(tmpdir(), "xvs-sysfs-"));
  mkdirSync(join(root, "eth0", "queues", "rx-0"), { recursive: true });
  for (const q of ["rx-1", "rx-2", "tx-0", "tx-1"]) mkdirSync(join(root, "eth0", "queues", q));
  writeFileSync(join(root, "eth0", "ifindex"), "7\n");

  test("counts the rx-N directories of the interface's sysfs entry", () => {
    expect(rxQueueCount("eth0", 7, root)).toBe(3);
  });

  test("another namespace's sysfs (its ifindex differs) or a missing entry is an error that says how to fix it", () => {
    expect(() => rxQueueCount("eth0", 9, root)).toThrow("is another namespace's interface (ifindex 7, here 9)");
    expect(() => rxQueueCount("eth1", 3, root)).toThrow("cannot read the rx queues of eth1");
  });

  afterAll(() => rmSync(root, { recursive: true }));
});
