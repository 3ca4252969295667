/**
 * node:net echo server, the peer m-socket is compared with.
 *
 * Usage: node --import tsx bench/servers/net-echo.ts [pipe|data] [LIFETIME_S=900]
 * Prints "PORT <n>" once listening on 127.0.0.1. `pipe` is `socket.pipe(socket)` (backpressure
 * handled by streams, the idiomatic echo); `data` writes each chunk back from the 'data' handler.
 * TCP_NODELAY is on, as in the other servers and the clients.
 */
import net from 'node:net';

const mode = process.argv[2] ?? 'pipe';
const lifetimeS = Number(process.argv[3] ?? 900);

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  if (mode === 'pipe') socket.pipe(socket);
  else {
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end());
  }
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 511 }, () => {
  process.stdout.write(`PORT ${(server.address() as net.AddressInfo).port}\n`);
});
// SIGUSR2: collect garbage (with --expose-gc) and report memory, for the memory-per-connection bench.
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`MEM rss=${m.rss} heapUsed=${m.heapUsed} external=${m.external} arrayBuffers=${m.arrayBuffers}\n`);
});
setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
