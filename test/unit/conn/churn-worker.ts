// Owner thread for peers.test.ts "deletion under lookup": adds and deletes connections in a table
// another thread looks up through a view (after adding `stable` records, it says -1), until
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

declare const self: Worker;

self.onmessage = (ev: MessageEvent<{ buffers: ConnTableBuffers; stop: SharedArrayBuffer; stable: number; batch: number }>) => {
  const { buffers, stop, stable, batch } = ev.data;
  const t = new ConnTable(buffers.capacity, 0, buffers);
  t.shared = true;
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
  // the stable records the other thread looks for: client ports 1..stable
  for (let k = 1; k <= stable; k++) add((k << 16) | 53);
  self.postMessage(-1);
  const stopW = new Int32Array(stop);
  const ids: number[] = [];
  let k = 0,
    rounds = 0;
  while (Atomics.load(stopW, 0) === 0) {
    for (let i = 0; i < batch; i++) {
      // others around them, client ports 10000..59999
      const id = add(((10000 + (k++ % 50000)) << 16) | 53);
      if (id < 0) break;
      ids.push(id);
    }
    while (ids.length > 0) t.release(ids.pop()!);
    rounds++;
  }
  self.postMessage(rounds);
};
