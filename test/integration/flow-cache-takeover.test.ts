/**
 * A NAT connection that takes over a cached connection's reply tuple (docs/flow-cache.md "A reply
 * tuple taken over"): one client UDP port talks to virtual port 9300, long enough for XDP to
 * forward the flow both ways, then the same port talks to virtual port 9301 of the same real
 * server:port. The real server's replies to the second have the same tuple as those to the
 * first: they must come back from 9301 (the fast path finds the newer connection), never from
 * 9300 (the older connection's XDP entry, which FlowCache.replyTaken removes when the newer
 * connection is made).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as abi from "../../src/ffi/abi.ts";
import { startDaemon, type LabDaemon } from "../../src/tools/lab/daemon.ts";
import { buildDirectorLab, LAB_VIP, realAddr, type DirectorLab } from "../../src/tools/lab/topology.ts";
import { apiOk, requireRoot, startServers, stopLab } from "./helpers.ts";

let L: DirectorLab;
let xvs: LabDaemon;

/** Packets the steering program forwarded from the flow cache (XDP_TX + redirect). */
async function cachedPackets(): Promise<number> {
  const x = ((await xvs.api("GET", "/v1/stats")).json as { xdp: number[] }).xdp;
  return (x[abi.XVS_XDP_FLOW_TX] ?? 0) + (x[abi.XVS_XDP_FLOW_REDIRECT] ?? 0);
}

// one socket, one source port: N datagrams to argv[2], then M to argv[3]; prints "vport reply" per answer
const client = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 41999))
s.settimeout(1.0)
for port, n in ((int(sys.argv[2]), int(sys.argv[3])), (int(sys.argv[4]), int(sys.argv[5]))):
    for i in range(n):
        s.sendto(("p%d-%d" % (port, i)).encode(), (sys.argv[1], port))
        try:
            data, src = s.recvfrom(2048)
            print(src[1], data.decode().strip(), flush=True)
        except socket.timeout:
            print(0, "timeout", flush=True)
    if port == int(sys.argv[2]):
        sys.stdin.readline()
`;

beforeAll(async () => {
  requireRoot();
  L = await buildDirectorLab("flowt", { reals: 1 });
  // as flow-cache.test.ts: NAPI at the director's veth peers, so that XDP forwards cached flows
  // (default peers take no XDP frames: their flows stay on AF_XDP); the hosts keep their offloads
  await L.lab.exec("cl", ["ethtool", "-K", "eth0", "gro", "on"]);
  await L.lab.exec("sw", ["ethtool", "-K", "p0", "gro", "on"]);
  await startServers(L.lab, L.reals);
  xvs = await startDaemon(L.lab, L.director, L.ifaces, ["--flow-cache", "on"]);
  for (const port of [9300, 9301]) {
    await apiOk(xvs, "POST", "/v1/services", { protocol: "udp", address: LAB_VIP, port, scheduler: "rr" });
    await apiOk(xvs, "POST", `/v1/services/udp:${LAB_VIP}:${port}/dests`, { address: realAddr(1), port: 9000, forward: "masq" });
  }
}, 90_000);

afterAll(() => stopLab(xvs, L), 30_000);

test("UDP: the replies of a connection that reuses a cached connection's reply tuple come from its own virtual port", async () => {
  const p = L.lab.spawn(L.client, ["python3", "-c", client, LAB_VIP, "9300", "20", "9301", "10"], { stdin: "pipe" });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  let buf = "";
  const lines = async (n: number): Promise<string[]> => {
    const deadline = Date.now() + 30_000;
    while (buf.split("\n").length - 1 < n) {
      const r = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
      if (r === null || r.done) throw new Error(`client: ${buf}`);
      buf += new TextDecoder().decode(r.value);
    }
    const all = buf.split("\n");
    buf = all.slice(n).join("\n");
    return all.slice(0, n);
  };
  const before = await cachedPackets();
  const first = await lines(20);
  expect(first.every((l, i) => l === `9300 rs1 p9300-${i}`)).toBe(true);
  // the first connection's flow was forwarded by XDP (both ways once its first reply was seen)
  expect((await cachedPackets()) - before).toBeGreaterThanOrEqual(20);
  const stdin = p.stdin as unknown as { write(s: string): void; flush(): void; end(): void };
  stdin.write("\n");
  stdin.flush();
  const second = await lines(10);
  stdin.end();
  expect(second).toEqual(Array.from({ length: 10 }, (_, i) => `9301 rs1 p9301-${i}`));
}, 60_000);
