/**
 * IPv6 address text. Addresses are four int32 words, most significant first; header fields are
 * read and written at their wire/fields.ts offsets (IPv6 has no header checksum to keep).
 */

/** Parse IPv6 text into four int32 words; slow path. Returns null when malformed. */
export function parseAddr(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length < 2) return null;
  let head = text,
    tail = "";
  const dbl = text.indexOf("::");
  if (dbl >= 0) {
    if (text.indexOf("::", dbl + 1) >= 0) return null;
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const parsePart = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const groups = s.split(":");
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (i === groups.length - 1 && g.includes(".")) {
        const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(g);
        if (!m) return null;
        const o = m.slice(1).map(Number);
        if (o.some((x) => x > 255)) return null;
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const h = parsePart(head),
    t = parsePart(tail);
  if (!h || !t) return null;
  let groups: number[];
  if (dbl >= 0) {
    if (h.length + t.length > 7) return null;
    groups = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  } else {
    if (h.length !== 8) return null;
    groups = h;
  }
  return [0, 1, 2, 3].map((i) => (groups[2 * i] << 16) | groups[2 * i + 1] | 0);
}

/** Format four int32 words as canonical IPv6 text (RFC 5952); slow path. */
export function addrText(w: ArrayLike<number>, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((w[off + i] >>> 16) & 0xffff, w[off + i] & 0xffff);
  // longest run of zero groups (length >= 2) becomes "::"
  let bestAt = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-compatible and IPv4-mapped addresses keep a dotted tail, as glibc's inet_ntop prints them
  if (bestAt === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
    return `::${bestLen === 5 ? "ffff:" : ""}${g[6] >>> 8}.${g[6] & 0xff}.${g[7] >>> 8}.${g[7] & 0xff}`;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
