import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { checksum, csumReplace16, csumReplace32, fold, sumBytes } from "../../../src/wire/checksum.ts";

describe("internet checksum", () => {
  test("RFC 1071 section 3 example sums 00 01 f2 03 f4 f5 f6 f7 to 0xddf2", () => {
    const b = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(fold(sumBytes(b, 0, b.length, 0))).toBe(0xddf2);
    expect(checksum(b, 0, b.length)).toBe(0x220d);
  });

  test("an odd trailing byte is padded with zero", () => {
    expect(fold(sumBytes(new Uint8Array([0x12, 0x34, 0x56]), 0, 3, 0))).toBe(0x1234 + 0x5600);
  });

  test("RFC 1624 section 4 example: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives HC' 0x0000 (eqn. 3, not 0xFFFF)", () => {
    expect(csumReplace16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  test("incremental updates of a 16-bit word equal a full recomputation", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 64 }), fc.nat(), fc.integer({ min: 0, max: 0xffff }), (data, at, nv) => {
        const b = data.length % 2 ? new Uint8Array([...data, 0]) : new Uint8Array(data);
        const pos = (at % (b.length / 2)) * 2;
        const c0 = checksum(b, 0, b.length);
        const old = (b[pos] << 8) | b[pos + 1];
        b[pos] = nv >>> 8;
        b[pos + 1] = nv & 0xff;
        // a checksum of 0x0000 and 0xffff are the same ones'-complement value
        const inc = csumReplace16(c0, old, nv),
          full = checksum(b, 0, b.length);
        expect(inc === full || (inc ^ full) === 0xffff).toBe(true);
      }),
    );
  });

  test("incremental updates of a 32-bit address equal a full recomputation", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.integer(), (b, nv) => {
        const dv = new DataView(b.buffer);
        const c0 = checksum(b, 0, 8);
        const old = dv.getInt32(0);
        dv.setInt32(0, nv);
        const inc = csumReplace32(c0, old, nv | 0),
          full = checksum(b, 0, 8);
        expect(inc === full || (inc ^ full) === 0xffff).toBe(true);
      }),
    );
  });

  test("a header containing its own checksum sums to zero", () => {
    const hdr = new Uint8Array([0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 1, 2, 198, 18, 0, 100]);
    const c = checksum(hdr, 0, 20);
    hdr[10] = c >>> 8;
    hdr[11] = c & 0xff;
    expect(checksum(hdr, 0, 20)).toBe(0);
  });
});
