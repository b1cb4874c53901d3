// xvs-encoded sync datagrams, good and damaged (probes.ts), were sent to a kernel IPVS backup
// (test/kernel/sync/probe.sh); its `ipvsadm -Lnc` afterwards says which records the kernel
// installed from each. The decoder must take exactly those, except the few it refuses on purpose
// (docs/sync.md), which the kernel must really have taken.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSyncMessage } from "../../../src/sync/decode.ts";
import { buildProbes } from "./probes.ts";

const dir = join(import.meta.dir, "../../kernel/sync");
const probes = buildProbes();

/** Client ports of the connections the kernel backup listed (a template's cport 0 counts for the probe of its service). */
function kernelPorts(): { cport: number; vport: number; state: string }[] {
  return readFileSync(join(dir, "probes-bk.txt"), "utf8")
    .split("\n")
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.trim().split(/\s+/);
      const port = (hp: string) => Number(hp.slice(hp.lastIndexOf(":") + 1));
      return { cport: port(f[3]), vport: port(f[4]), state: f[2] };
    });
}

describe("kernel backup vs decoder, datagram by datagram", () => {
  test("the fixture's probes are the ones probes.ts builds", () => {
    const lines = readFileSync(join(dir, "probes.hex"), "utf8").trim().split("\n");
    expect(lines).toEqual(probes.map((p) => `${p.base} ${Buffer.from(p.bytes).toString("hex")}`));
  });

  const listed = kernelPorts();
  for (const p of probes) {
    test(`${p.name}: the decoder takes what the kernel installed`, () => {
      const inRange = (c: number) => c >= p.base && c < p.base + 10;
      const kernel = listed
        .filter((e) => inRange(e.cport) || (e.cport === 0 && e.vport === 5060 && p.base === 50010))
        .map((e) => e.cport)
        .sort();
      const r = decodeSyncMessage(p.bytes, { syncid: 7, maxlen: 1472 });
      const ours = r.records.map((x) => x.conn.cport).sort();
      const stricter = p.stricter ?? [];
      expect(ours).toEqual(kernel.filter((c) => !stricter.includes(c)));
      for (const c of stricter) expect(kernel).toContain(c);
    });
  }

  test("the kernel took the encoder's records whole: states as sent, the SIP template with its engine", () => {
    const byPort = new Map(kernelPorts().map((e) => [e.cport, e.state]));
    expect([byPort.get(50010), byPort.get(50011), byPort.get(50012), byPort.get(0)]).toEqual(["ESTABLISHED", "ESTABLISHED", "UDP", "ASSURED"]);
    expect([byPort.get(50020), byPort.get(50021), byPort.get(50030)]).toEqual(["ESTABLISHED", "ESTABLISHED", "ESTABLISHED"]);
  });
});
