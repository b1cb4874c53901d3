/**
 * The order of `ipvsadm -L` and `-S`: libipvs sorts services (ipvs_cmp_services) and real
 * servers (ipvs_cmp_dests) with qsort, which in glibc 2.36 (Debian 12) is a top-down merge
 * sort. The comparators subtract unsigned values and read the result as int, so addresses
 * 2^31 or more apart compare the "wrong" way round (198.18.0.1 sorts before 10.0.0.1, fwmark
 * 4294967295 before every address) and the order is not even transitive; reproducing both the
 * comparator and the merge sort gives the same order as ipvsadm for any table.
 */

/** glibc msort_with_tmp: split at n/2, sort both halves, merge taking the left one on ties. */
export function glibcMergeSort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  const n = items.length;
  if (n <= 1) return items.slice();
  const n1 = n >> 1;
  const left = glibcMergeSort(items.slice(0, n1), cmp);
  const right = glibcMergeSort(items.slice(n1), cmp);
  const out: T[] = [];
  let i = 0,
    j = 0;
  while (i < left.length && j < right.length) out.push(cmp(left[i], right[j]) <= 0 ? left[i++] : right[j++]);
  while (i < left.length) out.push(left[i++]);
  while (j < right.length) out.push(right[j++]);
  return out;
}

/** What the comparators look at. */
export interface SortKey {
  af: 4 | 6;
  /** Big-endian address words as int32 (IPv4 in the first). */
  addr: readonly number[];
  port: number;
}

export interface ServiceSortKey extends SortKey {
  fwmark: number;
  protocol: number;
}

// AF_INET and AF_INET6 as the comparator subtracts them
const AF_NUM = { 4: 2, 6: 10 } as const;

/** `ntohl(a) - ntohl(b)` read as a C int. */
const diff32 = (a: number, b: number) => (a - b) | 0;

function cmpAddr(af: 4 | 6, a: readonly number[], b: readonly number[]): number {
  if (af === 6) {
    let r = 0;
    for (let i = 0; r === 0 && i < 4; i++) r = diff32(a[i], b[i]);
    return r;
  }
  return diff32(a[0], b[0]);
}

/** ipvs_cmp_services: fwmark, family, protocol, address, port. */
export function cmpServices(a: ServiceSortKey, b: ServiceSortKey): number {
  let r = diff32(a.fwmark, b.fwmark);
  if (r !== 0) return r;
  r = AF_NUM[a.af] - AF_NUM[b.af];
  if (r !== 0) return r;
  r = a.protocol - b.protocol;
  if (r !== 0) return r;
  r = cmpAddr(a.af, a.addr, b.addr);
  if (r !== 0) return r;
  return a.port - b.port;
}

/** ipvs_cmp_dests: address (as the first one's family), port. */
export function cmpDests(a: SortKey, b: SortKey): number {
  const r = cmpAddr(a.af, a.addr, b.addr);
  if (r !== 0) return r;
  return a.port - b.port;
}
