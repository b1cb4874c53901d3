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
import * as tcp from "../../../src/wire/tcp.ts";
import * as udp from "../../../src/wire/udp.ts";
import { checksumsValid } from "../../util/packet.ts";

const SYN = Uint8Array.from(Buffer.from(
  "020000000001020000000002" + "0800" +
  "4500002c1c4640004006" + "0000" + "c6120102c6120064" +
  "9c400050000003e80000000060022000" + "0000" + "0000" + "020405b4", "hex"));
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
  const dv = new DataView(SYN.buffer);
  test("deconstructs every field of the golden header", () => {
    expect(ipv4.version(dv, 14)).toBe(4);
    expect(ipv4.headerLen(dv, 14)).toBe(20);
    expect(ipv4.totalLen(dv, 14)).toBe(44);
    expect(ipv4.ident(dv, 14)).toBe(0x1c46);
    expect(ipv4.fragWord(dv, 14)).toBe(0x4000);
    expect(ipv4.ttl(dv, 14)).toBe(64);
    expect(ipv4.protocol(dv, 14)).toBe(6);
    expect(ipv4.addrText(ipv4.srcAddr(dv, 14))).toBe("198.18.1.2");
    expect(ipv4.addrText(ipv4.dstAddr(dv, 14))).toBe("198.18.0.100");
    expect(ipv4.headerChecksumOk(SYN, dv, 14)).toBe(true);
  });

  test("setters fix the header checksum incrementally", () => {
    const b = SYN.slice();
    const d = new DataView(b.buffer);
    ipv4.setDstAddrFix(d, 14, ipv4.parseAddr("198.18.2.11")!);
    ipv4.setSrcAddrFix(d, 14, ipv4.parseAddr("198.18.9.9")!);
    expect(ipv4.decTtlFix(d, 14)).toBe(63);
    expect(ipv4.headerChecksumOk(b, d, 14)).toBe(true);
    expect(ipv4.addrText(ipv4.dstAddr(d, 14))).toBe("198.18.2.11");
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
      ["2001:db8::1", "2001:db8::1"], ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"], ["::", "::"], ["::1", "::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], ["::ffff:198.18.0.1", "::ffff:198.18.0.1"], ["fe80::", "fe80::"],
    ];
    for (const [inp, out] of cases) expect(ipv6.addrText(ipv6.parseAddr(inp)!)).toBe(out);
    for (const bad of ["2001:db8:::1", "1:2:3:4:5:6:7:8:9", "g::1", "2001:db8::1::2", ":"]) expect(ipv6.parseAddr(bad)).toBeNull();
  });

  test("reads and writes the fixed header", () => {
    const b = new Uint8Array(40).fill(0xa5);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 0x6a012345);
    dv.setUint16(4, 8);
    b[6] = 17;
    ipv6.setHopLimit(dv, 0, 9);
    const w = ipv6.parseAddr("2001:db8::2")!;
    for (let i = 0; i < 4; i++) ipv6.setDstWord(dv, 0, i, w[i]);
    expect(ipv6.version(dv, 0)).toBe(6);
    expect(ipv6.trafficClass(dv, 0)).toBe(0xa0);
    expect(ipv6.payloadLen(dv, 0)).toBe(8);
    expect(ipv6.nextHeader(dv, 0)).toBe(17);
    expect(ipv6.hopLimit(dv, 0)).toBe(9);
    expect(ipv6.addrText([0, 1, 2, 3].map((i) => ipv6.dstWord(dv, 0, i)))).toBe("2001:db8::2");
  });
});

describe("tcp and udp", () => {
  test("deconstructs the golden TCP header", () => {
    const dv = new DataView(SYN.buffer);
    expect(tcp.srcPort(dv, 34)).toBe(40000);
    expect(tcp.dstPort(dv, 34)).toBe(80);
    expect(tcp.headerLen(dv, 34)).toBe(24);
    expect(tcp.flags(dv, 34)).toBe(0x02);
    expect(checksumsValid(SYN)).toBe(true);
  });

  test("port setters and address fix-ups keep the TCP checksum valid", () => {
    const b = SYN.slice();
    const dv = new DataView(b.buffer);
    const na = ipv4.parseAddr("198.18.2.12")!;
    tcp.fixForAddr(dv, 34, ipv4.dstAddr(dv, 14), na);
    ipv4.setDstAddrFix(dv, 14, na);
    tcp.setDstPortFix(dv, 34, 8080);
    tcp.setSrcPortFix(dv, 34, 1);
    expect(checksumsValid(b)).toBe(true);
  });

  test("a UDP datagram without a checksum keeps none; one with a checksum never gets 0", () => {
    const b = new Uint8Array([0, 53, 0, 53, 0, 8, 0, 0]);
    const dv = new DataView(b.buffer);
    udp.setDstPortFix(dv, 0, 54);
    expect(udp.checksumField(dv, 0)).toBe(0);
    // checksum 0x0001: replacing port 0 by 1 gives 0 after the update, which must become 0xffff
    const c = new Uint8Array([0, 0, 0, 0, 0, 8, 0x00, 0x01]);
    const cdv = new DataView(c.buffer);
    udp.setSrcPortFix(cdv, 0, 1);
    expect(udp.checksumField(cdv, 0)).toBe(0xffff);
    expect(udp.length(cdv, 0)).toBe(8);
  });
});
