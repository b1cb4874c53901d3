/**
 * The failover lab's client (run with bun inside the client namespace): opens --conns TCP
 * connections to HOST:PORT at once and keeps them. Each stdin line "ask TAG" sends "TAG i" on
 * connection i and prints one JSON line {answered, failed, servers: [per connection, the
 * server that answered or null]} after every connection answered or --timeout ms passed.
 * Prints "connected N" once all are open. The servers answer "NAME LINE" (xvs __lab serve --tcp).
 */
import { createConnection, type Socket } from "node:net";

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i >= 0 ? process.argv[i + 1] : d;
};
const host = arg("host", "198.18.0.100");
const port = Number(arg("port", "7000"));
const n = Number(arg("conns", "100"));
const timeoutMs = Number(arg("timeout", "5000"));

const socks: Socket[] = [];
const bufs: string[] = [];
const waiting: ((line: string | null) => void)[] = [];

await Promise.all(
  Array.from(
    { length: n },
    (_, i) =>
      new Promise<void>((res, rej) => {
        const s = createConnection({ host, port }, () => res());
        s.setNoDelay(true);
        s.on("error", (e) => {
          waiting[i]?.(null);
          rej(e);
        });
        bufs[i] = "";
        s.on("data", (d) => {
          bufs[i] += d.toString();
          const nl = bufs[i].indexOf("\n");
          if (nl >= 0) {
            const line = bufs[i].slice(0, nl);
            bufs[i] = bufs[i].slice(nl + 1);
            const w = waiting[i];
            delete waiting[i];
            w?.(line);
          }
        });
        s.on("close", () => waiting[i]?.(null));
        socks[i] = s;
      }),
  ),
);
console.log(`connected ${n}`);

async function ask(tag: string): Promise<void> {
  const servers = await Promise.all(
    socks.map(
      (s, i) =>
        new Promise<string | null>((res) => {
          const t = setTimeout(() => {
            delete waiting[i];
            res(null);
          }, timeoutMs);
          waiting[i] = (line) => {
            clearTimeout(t);
            // "rs1 TAG i": the server's name, and the line must be this connection's own
            res(line?.endsWith(` ${tag} ${i}`) ? line.split(" ")[0] : null);
          };
          if (!s.destroyed) s.write(`${tag} ${i}\n`);
        }),
    ),
  );
  const answered = servers.filter((x) => x !== null).length;
  console.log(JSON.stringify({ answered, failed: n - answered, servers }));
}

let pending = "";
for await (const chunk of Bun.stdin.stream()) {
  pending += new TextDecoder().decode(chunk);
  for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
    const line = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (line.startsWith("ask ")) await ask(line.slice(4));
  }
}
for (const s of socks) s.destroy();
