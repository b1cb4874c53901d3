// Owner thread for peers.test.ts "deletion under lookup": moves and deletes connections in a table
// another thread looks up through a view (once the keys it looks for exist, it says -1), until
// told to stop; then answers the rounds it did.
import {
  CF_USED,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
  ConnTable,
  type ConnTableBuffers,
} from "../../../src/conn/table.ts";
import { hashTuple } from "../../../src/wire/flow.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<{ buffers: ConnTableBuffers; stop: SharedArrayBuffer; stable: number }>) => {
  const { buffers, stop, stable } = ev.data;
  const t = new ConnTable(buffers.capacity, 0, buffers);
  t.shared = process.env.XVS_TEST_NO_SEQLOCK !== "1"; // 1: show what the sequence word prevents
  const add = (ports: number): number => {
    const id = t.alloc();
    if (id < 0) return -1;
    const o = id * CONN_WORDS;
    t.rec[o + CONN_FLAGS] = CF_USED;
    t.rec[o + CONN_PROTO_STATE] = 17 << 8;
    t.rec[o + CONN_CADDR] = 0x0a000001;
    t.rec[o + CONN_VADDR] = 0x0a000002;
    t.rec[o + CONN_CPORT_VPORT] = ports;
    t.link(id, 0);
    return id;
  };
  // the keys the other thread looks for (client ports 1..stable), each with a key X of ours that
  // hashes to the same index slot, so that they share a cluster: each round, [X, S] -> release X
  // (S shifted back over the hole while the reader may be probing for it) -> [S] -> add X ->
  // [S, X] -> add a second S -> [S, X, S'] -> release the first S (X and S' shifted) -> [X, S'].
  // One record of each key S always exists.
  const mask = t.index.length - 1;
  const home = (ports: number): number => hashTuple(t.seedConn, 0x0a000001, 0, 0, 0, 0x0a000002, 0, 0, 0, ports, 17) & mask;
  const xs: number[] = [],
    xid: number[] = [],
    sid: number[] = [];
  let probe = 10000;
  for (let k = 1; k <= stable; k++) {
    const h = home((k << 16) | 53);
    while (home((probe << 16) | 53) !== h) probe++;
    xs.push((probe++ << 16) | 53);
    xid.push(add(xs[k - 1]));
    sid.push(add((k << 16) | 53));
  }
  self.postMessage(-1);
  const stopW = new Int32Array(stop);
  let rounds = 0;
  while (Atomics.load(stopW, 0) === 0) {
    for (let k = 0; k < stable; k++) {
      const ports = ((k + 1) << 16) | 53;
      t.release(xid[k]);
      xid[k] = add(xs[k]);
      const second = add(ports);
      t.release(sid[k]);
      sid[k] = second;
    }
    rounds++;
  }
  self.postMessage(rounds);
};
