/**
 * The in-process fast path (test/util/harness.ts) laid out like the director of the kernel
 * captures in test/kernel/frames/dr-tun.ts: port 0 = client side (c0, 02:00:00:00:01:01; the client
 * 02:00:00:00:01:02 is the next hop of every client route), port 1 = server side (s0,
 * 02:00:00:00:02:01). Each real server gets a next hop with its own MAC (default
 * 02:00:00:00:02:0b), route MTU and tunnel source address, settable per address in `rs` before
 * apply().
 */
import { Harness } from "../../util/harness.ts";

export { FRAME_SIZE, HEADROOM, hex, type Out, type RsRoute } from "../../util/harness.ts";
export const PORT_MACS = ["02:00:00:00:01:01", "02:00:00:00:02:01"];
export const CLIENT_MAC = "02:00:00:00:01:02";
export const RS_MAC = "02:00:00:00:02:0b";

export class XmitHarness extends Harness {
  constructor() {
    super({ connCapacity: 4096, seed: 777, portMacs: PORT_MACS, gatewayMac: CLIENT_MAC, realMac: () => RS_MAC });
  }
}
