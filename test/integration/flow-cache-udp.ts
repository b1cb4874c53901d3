/**
 * A long-lived UDP flow for the flow-cache lab: one socket, one source port; each stdin line is
 * sent to HOST:PORT as a datagram and the reply printed as one line ("timeout" after MS ms).
 * Prints "ready" once bound. Usage: bun flow-cache-udp.ts HOST PORT [MS]
 */
export {};

const [host, portText, msText] = process.argv.slice(2);
const port = Number(portText),
  waitMs = Number(msText ?? 1000);
let waiting: ((s: string) => void) | null = null;
const sock = await Bun.udpSocket({
  socket: {
    data(_s, buf) {
      const w = waiting;
      waiting = null;
      w?.(Buffer.from(buf).toString().trim());
    },
  },
});
process.stdout.write("ready\n");
const dec = new TextDecoder();
let pending = "";
for await (const chunk of Bun.stdin.stream()) {
  pending += dec.decode(chunk);
  for (let i = pending.indexOf("\n"); i >= 0; i = pending.indexOf("\n")) {
    const line = pending.slice(0, i);
    pending = pending.slice(i + 1);
    const reply = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => {
        waiting = null;
        resolve("timeout");
      }, waitMs);
      waiting = (s) => {
        clearTimeout(timer);
        resolve(s);
      };
      sock.send(line, port, host);
    });
    process.stdout.write(`${reply}\n`);
  }
}
sock.close();
