/**
 * Client of the restart lab (restart.test.ts), run inside the client namespace: holds N TCP
 * connections to HOST:PORT, sends one numbered line on each every INTERVAL ms, and checks the
 * real servers' echoes ("<server> <conn> <seq>"): in order, and from the same server as the
 * connection's first reply. On each stdin line "report" it prints a JSON summary; on end of
 * stdin it closes the connections and exits.
 *   bun restart-chat.ts HOST PORT CONNS INTERVAL_MS
 */
export {}; // a module: top-level await
const [host, portText, connsText, intervalText] = process.argv.slice(2);
const n = Number(connsText),
  interval = Number(intervalText);

interface Chat {
  sock: { write(t: string): unknown; end(): unknown } | null;
  server: string;
  next: number;
  received: number;
  buf: string;
  closed: boolean;
}
const chats: Chat[] = [];
let outOfOrder = 0,
  changedServer = 0;
const errors: string[] = [];

await Promise.all(
  Array.from({ length: n }, async (_, id) => {
    const c: Chat = { sock: null, server: "", next: 0, received: 0, buf: "", closed: false };
    chats.push(c);
    c.sock = await Bun.connect({
      hostname: host,
      port: Number(portText),
      socket: {
        data(_s, chunk) {
          c.buf += chunk.toString();
          for (let k = c.buf.indexOf("\n"); k >= 0; k = c.buf.indexOf("\n")) {
            const [server, conn, seq] = c.buf.slice(0, k).split(" ");
            c.buf = c.buf.slice(k + 1);
            if (Number(conn) !== id || Number(seq) !== c.received) outOfOrder++;
            if (c.server === "") c.server = server;
            else if (server !== c.server) changedServer++;
            c.received++;
          }
        },
        close() {
          c.closed = true;
        },
        error(_s, e) {
          errors.push(String(e));
        },
      },
    });
  }),
);
// the ids are the order of connect calls; chats[] was filled in that order before any await
const timer = setInterval(() => {
  chats.forEach((c, id) => {
    if (c.closed || c.sock === null || c.next - c.received > 20) return; // no more than 20 lines in flight
    c.sock.write(`${id} ${c.next++}\n`);
  });
}, interval);

function report(): string {
  const byServer: Record<string, number> = {};
  for (const c of chats) byServer[c.server] = (byServer[c.server] ?? 0) + 1;
  return JSON.stringify({
    conns: chats.length,
    closed: chats.filter((c) => c.closed).length,
    sent: chats.map((c) => c.next),
    received: chats.map((c) => c.received),
    outOfOrder,
    changedServer,
    byServer,
    errors: errors.slice(0, 5),
  });
}

let input = "";
for await (const chunk of Bun.stdin.stream()) {
  input += new TextDecoder().decode(chunk);
  for (let k = input.indexOf("\n"); k >= 0; k = input.indexOf("\n")) {
    if (input.slice(0, k).trim() === "report") process.stdout.write(`${report()}\n`);
    input = input.slice(k + 1);
  }
}
clearInterval(timer);
for (const c of chats) c.sock?.end();
process.exit(0);
