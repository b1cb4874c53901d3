/**
 * completePartialChecksum (src/wire/partial-csum.ts) on its own: partial checksums become the
 * full ones, complete frames are never written, corrupt ones are not "repaired".
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { completePartialChecksum } from "../../../src/wire/partial-csum.ts";
import { pseudoSumV4, pseudoSumV6, pseudoSumWords } from "../../../src/wire/checksum.ts";
import { Classified, classify } from "../../../src/dataplane/classify.ts";
import { FLOW_WORDS } from "../../../src/wire/flow.ts";
import {
  checksumsValid,
  correctFrameWithFieldP,
  l4ChecksumField,
  PacketBuilder,
  partialChecksum,
  pseudoFold,
  sctpCrcValid,
  sctpPacket,
} from "../../util/packet.ts";

/** Classify a copy of `frame` (as the fast path's pass 1 does) and run the completion on it; returns [result, frame after]. */
function complete(frame: Uint8Array): [number, Uint8Array] {
  const f = new Uint8Array(frame);
  const dv = new DataView(f.buffer);
  const flow = new Int32Array(FLOW_WORDS),
    l3Len = new Int32Array(1);
  expect(classify(f, dv, 0, f.length, flow, 0, l3Len, 0)).toBe(Classified.Continue);
  return [completePartialChecksum(f, dv, flow, 0, l3Len[0]), f];
}

const build = (v6: boolean, proto: "tcp" | "udp", payload: number[], tcpOptions: number[] = []) => {
  const b = new PacketBuilder().eth();
  if (v6) b.ipv6({ src: "2001:db8:1::2", dst: "2001:db8:100::100" });
  else b.ipv4({ src: "198.18.1.2", dst: "198.18.0.100", options: payload.length % 3 === 0 ? [1, 1, 1, 0] : [] });
  if (proto === "tcp") b.tcp({ sport: 40000, dport: 80, flags: 0x18, options: tcpOptions });
  else b.udp({ sport: 40000, dport: 53 });
  return b.payload(payload).build();
};

describe("completePartialChecksum", () => {
  test("a partial TCP/UDP checksum (IPv4, IPv6, odd lengths, TCP options) becomes the full one, byte for byte", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom("tcp" as const, "udp" as const),
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }),
        fc.boolean(),
        (v6, proto, payload, opts) => {
          const good = build(v6, proto, payload, opts && proto === "tcp" ? [2, 4, 5, 0xb4, 1, 1, 4, 2] : []);
          if (l4ChecksumField(good) === pseudoFold(good)) return; // already reads as partial: the next test's case
          const partial = partialChecksum(good);
          expect(checksumsValid(partial)).toBe(false);
          const [r, out] = complete(partial);
          expect(r).toBe(1);
          expect(checksumsValid(out)).toBe(true);
          // the builder writes 0xffff for a UDP 0 (RFC 768); a TCP sum of 0 is written 0xffff by xvs
          // (skb_checksum_help's CSUM_MANGLED_0), the same ones'-complement value
          const want = l4ChecksumField(good);
          expect(l4ChecksumField(out) === want || (want === 0 && l4ChecksumField(out) === 0xffff)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  test("a complete frame is never written; a corrupt one whose field is not P is not repaired", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom("tcp" as const, "udp" as const),
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 0xffff }),
        (v6, proto, payload, delta) => {
          const good = build(v6, proto, payload);
          const [r, out] = complete(good);
          expect(r).toBe(0);
          expect(Buffer.from(out)).toEqual(Buffer.from(good));
          const bad = new Uint8Array(good);
          const dv = new DataView(bad.buffer);
          const co = (v6 ? 54 : 14 + (bad[14] & 15) * 4) + (proto === "tcp" ? 16 : 6);
          dv.setUint16(co, (dv.getUint16(co) + delta) & 0xffff);
          if (dv.getUint16(co) === pseudoFold(bad) || (proto === "udp" && !v6 && dv.getUint16(co) === 0)) return;
          const [rb, outBad] = complete(bad);
          expect(rb).toBe(0);
          expect(Buffer.from(outBad)).toEqual(Buffer.from(bad));
        },
      ),
      { numRuns: 400 },
    );
  });

  test("a correct frame whose checksum happens to equal the pseudo-header sum P is left untouched", () => {
    const f = correctFrameWithFieldP(false);
    expect(checksumsValid(f)).toBe(true);
    expect(l4ChecksumField(f)).toBe(pseudoFold(f));
    const [r, out] = complete(f);
    expect(r).toBe(0);
    expect(Buffer.from(out)).toEqual(Buffer.from(f));
    const f6 = correctFrameWithFieldP(true);
    expect(complete(f6)[0]).toBe(0);
  });

  test("UDP over IPv4 without a checksum (0) keeps none", () => {
    const f = new PacketBuilder().eth().ipv4({ src: "198.18.1.2", dst: "198.18.0.100" }).udp({ sport: 1, dport: 53, noChecksum: true }).payload("q").build();
    const [r, out] = complete(f);
    expect(r).toBe(0);
    expect(l4ChecksumField(out)).toBe(0);
  });

  test("SCTP: a zero CRC32c is filled in; a present one, right or wrong, is left alone", () => {
    const body = [...Buffer.from("sctp data chunk payload")];
    const good = new PacketBuilder()
      .eth()
      .ipv4({ src: "198.18.1.2", dst: "198.18.0.100" })
      .raw(132, sctpPacket(40000, 80, body))
      .build();
    expect(sctpCrcValid(good)).toBe(true);
    const zero = partialChecksum(good);
    expect(l4ChecksumField(zero)).toBe(0);
    const [r, out] = complete(zero);
    expect(r).toBe(1);
    expect(Buffer.from(out)).toEqual(Buffer.from(good));
    expect(complete(good)[0]).toBe(0);
    const wrong = new Uint8Array(good);
    wrong[14 + 20 + 8] ^= 1;
    const [rw, outWrong] = complete(wrong);
    expect(rw).toBe(0);
    expect(Buffer.from(outWrong)).toEqual(Buffer.from(wrong));
    const v6 = new PacketBuilder()
      .eth()
      .ipv6({ src: "2001:db8:1::2", dst: "2001:db8:100::100" })
      .raw(132, sctpPacket(40000, 80, body, false))
      .build();
    const [r6, out6] = complete(v6);
    expect(r6).toBe(1);
    expect(sctpCrcValid(out6)).toBe(true);
  });
});

describe("pseudoSumWords", () => {
  test("equals pseudoSumV6 for 8 address words, and pseudoSumV4 for IPv4 ones (words 1..3 zero)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffff }),
        (addrs, proto, len) => {
          const dv = new DataView(addrs.buffer, addrs.byteOffset, addrs.byteLength);
          const w = new Int32Array(9);
          for (let i = 0; i < 8; i++) w[1 + i] = dv.getInt32(4 * i);
          expect(pseudoSumWords(w, 1, proto, len)).toBe(pseudoSumV6(addrs, 0, 16, proto, len));
          const v4 = new Int32Array([w[1], 0, 0, 0, w[5], 0, 0, 0]);
          expect(pseudoSumWords(v4, 0, proto, len)).toBe(pseudoSumV4(w[1], w[5], proto, len));
        },
      ),
    );
  });
});
