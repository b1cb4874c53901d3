/**
 * Wire accessors over golden bytes, smoltcp style: deconstruct (read fields), construct
 * (write into a buffer pre-filled with 0xa5), and round trips through the incremental setters.
 * Golden frame: a TCP SYN 198.18.1.2:40000 -> 198.18.0.100:80, TTL 64, id 0x1c46, DF, MSS 1460
 * option, written by hand from RFC 791/9293 field layouts and checked with tcpdump -x.
 */
import { describe, expect, test } from "bun:test";
import * as eth from "../../../src/wire/eth.ts";
import * as ipv4 from "../../../src/wire/ipv4.ts";
import * as ipv6 from "../../../src/wire/ipv6.ts";
import { checksum } from "../../../src/wire/checksum.ts";
import { IPV4_DST, IPV4_SRC, IPV4_TTL, PROTO_TCP, PROTO_UDP, TCP_SYN } from "../../../src/wire/fields.ts";
import { FLOW_META, FLOW_PORTS, FLOW_WORDS, flowDport, flowFamily, flowMeta, flowProto } from "../../../src/wire/flow.ts";
import { dnat4, snat4 } from "../../../src/xmit/nat.ts";
import { checksumsValid } from "../../util/packet.ts";

const SYN = Uint8Array.from(
  Buffer.from(
    "020000000001020000000002" +
      "0800" +
      "4500002c1c4640004006" +
      "0000" +
      "c6120102c6120064" +
      "9c400050000003e80000000060022000" +
      "0000" +
      "0000" +
      "020405b4",
    "hex",
  ),
);
// fill in the two checksums once (kept out of the hex so the fields above stay readable)
{
  const dv = new DataView(SYN.buffer);
  ipv4.fillHeaderChecksum(SYN, dv, 14);
  let s = 0;
  const tcpLen = 24;
  for (let i = 0; i < tcpLen; i += 2) s += (SYN[34 + i] << 8) | SYN[34 + i + 1];
  s += 0xc612 + 0x0102 + 0xc612 + 0x0064 + 6 + tcpLen;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  dv.setUint16(34 + 16, ~s & 0xffff);
}

describe("ethernet", () => {
  test("deconstructs the EtherType and MACs", () => {
    const dv = new DataView(SYN.buffer);
    expect(eth.etherType(dv, 0)).toBe(0x0800);
    expect(eth.macText(eth.dstMacHi(dv, 0), eth.dstMacLo(dv, 0))).toBe("02:00:00:00:00:01");
    expect(eth.macText(eth.srcMacHi(dv, 0), eth.srcMacLo(dv, 0))).toBe("02:00:00:00:00:02");
    const b = SYN.slice(0, 14);
    eth.setEtherType(new DataView(b.buffer), 0, 0x86dd);
    expect(Buffer.from(b.subarray(12)).toString("hex")).toBe("86dd");
  });

  test("constructs MACs from (hi16, lo32) words and swaps them", () => {
    const b = new Uint8Array(14).fill(0xa5);
    const dv = new DataView(b.buffer);
    const [hi, lo] = eth.macWords("aa:bb:cc:dd:ee:ff");
    eth.setDstMac(dv, 0, hi, lo);
    eth.setSrcMac(dv, 0, ...eth.macWords("01:02:03:04:05:06"));
    expect(Buffer.from(b.subarray(0, 12)).toString("hex")).toBe("aabbccddeeff010203040506");
    eth.swapMacs(dv, 0);
    expect(Buffer.from(b.subarray(0, 12)).toString("hex")).toBe("010203040506aabbccddeeff");
    expect(b[12]).toBe(0xa5);
  });
});

describe("ipv4", () => {
  const headerOk = (b: Uint8Array) => checksum(b, 14, 20) === 0;

  test("the golden header's checksum, written whole", () => {
    expect(headerOk(SYN)).toBe(true);
    expect(new DataView(SYN.buffer).getUint16(14 + 10)).toBe(0x0000 + checksum(SYN.slice(14, 34).fill(0, 10, 12), 0, 20));
  });

  test("address and TTL setters fix the header checksum incrementally", () => {
    const b = SYN.slice();
    const d = new DataView(b.buffer);
    expect(ipv4.setAddrFix(d, 14, IPV4_DST, ipv4.parseAddr("198.18.2.11")!)).toBe(ipv4.parseAddr("198.18.0.100")!);
    expect(ipv4.setAddrFix(d, 14, IPV4_SRC, ipv4.parseAddr("198.18.9.9")!)).toBe(ipv4.parseAddr("198.18.1.2")!);
    ipv4.decTtlFix(d, 14);
    expect(b[14 + IPV4_TTL]).toBe(63);
    expect(headerOk(b)).toBe(true);
    expect(ipv4.addrText(d.getInt32(14 + IPV4_DST))).toBe("198.18.2.11");
    // the incremental result is the checksum computed from scratch, byte for byte
    const whole = b.slice();
    ipv4.fillHeaderChecksum(whole, new DataView(whole.buffer), 14);
    expect(Buffer.from(whole.subarray(14, 34)).toString("hex")).toBe(Buffer.from(b.subarray(14, 34)).toString("hex"));
  });

  test("writeHeader builds an option-less header with its checksum", () => {
    const b = new Uint8Array(20).fill(0xa5);
    ipv4.writeHeader(b, new DataView(b.buffer), 0, 0xc0, 56, 7, 0x4000, 64, 1, ipv4.parseAddr("198.18.0.1")!, ipv4.parseAddr("198.18.1.2")!);
    expect(Buffer.from(b).toString("hex").slice(0, 20)).toBe("45c0003800074000" + "4001");
    expect(checksum(b, 0, 20)).toBe(0);
  });

  test("parses and formats dotted quads, refusing malformed text", () => {
    expect(ipv4.parseAddr("255.255.255.255")).toBe(-1);
    expect(ipv4.addrText(ipv4.parseAddr("198.18.0.1")!)).toBe("198.18.0.1");
    for (const bad of ["256.1.1.1", "1.2.3", "01.2.3.4", "a.b.c.d", "1.2.3.4.5", ""]) expect(ipv4.parseAddr(bad)).toBeNull();
  });
});

describe("ipv6", () => {
  test("parses and formats RFC 5952 text", () => {
    const cases: [string, string][] = [
      ["2001:db8::1", "2001:db8::1"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["::", "::"],
      ["::1", "::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::ffff:198.18.0.1", "::ffff:198.18.0.1"],
      ["fe80::", "fe80::"],
    ];
    for (const [inp, out] of cases) expect(ipv6.addrText(ipv6.parseAddr(inp)!)).toBe(out);
    for (const bad of ["2001:db8:::1", "1:2:3:4:5:6:7:8:9", "g::1", "2001:db8::1::2", ":"]) expect(ipv6.parseAddr(bad)).toBeNull();
  });
});

describe("flow rows", () => {
  test("the meta word packs family, protocol and TCP flags; the accessors unpack them and the ports", () => {
    const f = new Int32Array(2 * FLOW_WORDS);
    const row = FLOW_WORDS;
    f[row + FLOW_META] = flowMeta(6, PROTO_TCP, TCP_SYN | 0x10);
    f[row + FLOW_PORTS] = (40000 << 16) | 443;
    // the layout the per-packet functions decode by hand (FastPath.handle, ConnTable.lookupRow)
    expect(f[row + FLOW_META]).toBe((6 << 16) | (PROTO_TCP << 8) | 0x12);
    expect([flowFamily(f, row), flowProto(f, row), flowDport(f, row)]).toEqual([6, PROTO_TCP, 443]);
    f[FLOW_META] = flowMeta(4, PROTO_UDP, 0);
    expect([flowFamily(f, 0), flowProto(f, 0)]).toEqual([4, PROTO_UDP]);
  });
});

describe("NAT rewrites (xmit/nat.ts: the one incremental L4 rewrite)", () => {
  test("DNAT then SNAT keep the IPv4 and TCP checksums valid", () => {
    const b = SYN.slice();
    const dv = new DataView(b.buffer);
    dnat4(b, dv, 14, 34, 24, PROTO_TCP, ipv4.parseAddr("198.18.2.12")!, 8080);
    expect(checksumsValid(b)).toBe(true);
    expect(dv.getUint16(34 + 2)).toBe(8080);
    snat4(b, dv, 14, 34, 24, PROTO_TCP, ipv4.parseAddr("198.18.0.99")!, 1);
    expect(checksumsValid(b)).toBe(true);
    expect(ipv4.addrText(dv.getInt32(14 + IPV4_SRC))).toBe("198.18.0.99");
  });

  test("a UDP datagram without a checksum keeps none; one with a checksum never gets 0", () => {
    // IPv4 header (checksum not checked here) + UDP 53 -> 53, no checksum
    const b = new Uint8Array(28);
    const dv = new DataView(b.buffer);
    b.set([0, 53, 0, 53, 0, 8, 0, 0], 20);
    dnat4(b, dv, 0, 20, 8, PROTO_UDP, 0, 54);
    expect(dv.getUint16(20 + 6)).toBe(0);
    // checksum 0x0001: replacing port 0 by 1 (no address change) gives 0, which must become 0xffff
    const c = new Uint8Array(28);
    const cdv = new DataView(c.buffer);
    c.set([0, 0, 0, 0, 0, 8, 0x00, 0x01], 20);
    snat4(c, cdv, 0, 20, 8, PROTO_UDP, 0, 1);
    expect(cdv.getUint16(20 + 6)).toBe(0xffff);
  });
});
