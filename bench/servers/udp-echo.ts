/**
 * m-socket UDP echo server for the datagram benchmark, on the public API only.
 *
 * Usage: node --import tsx bench/servers/udp-echo.ts [batch|single] [LIFETIME_S=300] [v6]
 * Prints "PORT <n>" once bound to 127.0.0.1 (or ::1).
 * - `batch`: on each reactor event, `receiveBatch` (recvmmsg, 64 slots) and `sendBatch` of the
 *   same slots back to their senders (sendmmsg), until a batch comes back short.
 * - `single`: `receiveFrom` into one buffer, `sendTo(buffer, receipt, length)` back, one datagram
 *   per call (node:dgram's shape, without its allocations).
 */
import { DatagramBatch, DatagramSocket, Reactor } from '../../lib/index.ts';

const mode = process.argv[2] ?? 'batch';
const lifetimeS = Number(process.argv[3] ?? 300);
const v6 = process.argv[4] === 'v6';
if (mode !== 'batch' && mode !== 'single') throw new Error(`unknown mode ${mode}`);

const socket = DatagramSocket.bind({ host: v6 ? '::1' : '127.0.0.1', socketOptions: { receiveBufferSize: 4 << 20, sendBufferSize: 4 << 20 } });
const reactor = new Reactor();
const batch = new DatagramBatch({ capacity: 64, datagramSize: 2048 });
const buffer = new Uint8Array(65536);

reactor.add(
  socket,
  mode === 'batch'
    ? () => {
        for (let round = 0; round < 16; round++) {
          const n = socket.receiveBatch(batch);
          if (n === 0) return;
          socket.sendBatch(batch, n);
          if (n < batch.capacity) return;
        }
      }
    : () => {
        for (let k = 0; k < 1024; k++) {
          const got = socket.receiveFrom(buffer);
          if (got === null) return;
          socket.sendTo(buffer, got, got.length);
        }
      },
);
process.stdout.write(`PORT ${socket.port}\n`);
setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
