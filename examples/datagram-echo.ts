/**
 * A datagram echo server on m-socket: every datagram comes back to its sender, whole. UDP
 * (`--host`, `--port`) or a Unix datagram socket (`--path`). It moves datagrams in batches:
 * one recvmmsg brings up to 64, and one sendmmsg answers them from the same memory, with no copy.
 *
 *   node --import tsx examples/datagram-echo.ts [--host 127.0.0.1] [--port 0] [--batch 64] [--verbose]
 *   node --import tsx examples/datagram-echo.ts --path /tmp/echo.sock
 *
 * Contract (test/datagram-echo.test.ts relies on it), the same as the stream servers':
 * - the first stdout line is `listening on HOST:PORT` (`[::1]:PORT` for IPv6), or
 *   `listening on PATH`; nothing else goes to stdout unless --verbose;
 * - bad arguments: a usage message on stderr and exit code 2; a failure to bind: exit 1;
 * - SIGINT / SIGTERM: stop, send what is queued, remove the Unix path, exit 0.
 */
import { DatagramBatch, DatagramSocket, formatAddress, Reactor } from '../lib/index.ts';
import { commandLine } from './cli.ts';

const USAGE = `usage: datagram-echo [--host IP] [--port N] [--path PATH] [--batch N] [--verbose]
  --host IP            IP address to bind (default 127.0.0.1; ::1 or :: for IPv6)
  --port N             UDP port, 0..65535 (default 0: the kernel picks a free one)
  --path PATH          a Unix datagram socket instead (removed on exit)
  --batch N            datagrams per system call, 1..1024 (default 64)
  --verbose            report each batch on stdout
`;

const cli = commandLine('datagram-echo', USAGE, {
  host: { type: 'string' },
  port: { type: 'string' },
  path: { type: 'string' },
  batch: { type: 'string', default: '64' },
  verbose: { type: 'boolean', default: false },
});
const { values } = cli;
if (values.path !== undefined && (values.host !== undefined || values.port !== undefined)) cli.usageError('--path goes without --host and --port');
const capacity = cli.integer('batch', values.batch, 1, 1024);
const port = cli.integer('port', values.port ?? '0', 0, 65535);

let socket: DatagramSocket;
try {
  socket = values.path !== undefined ? DatagramSocket.bind({ path: values.path }) : DatagramSocket.bind({ host: values.host ?? '127.0.0.1', port });
} catch (err) {
  if ((err as { code?: string }).code === 'ERR_INVALID_ARG_VALUE') cli.usageError((err as Error).message);
  process.stderr.write(`datagram-echo: cannot bind: ${(err as Error).message}\n`);
  process.exit(1);
}

// One batch for the life of the server: the memory every datagram is received into and sent from.
const batch = new DatagramBatch({ capacity, datagramSize: 65536 });
const reactor = new Reactor();
let echoed = 0;
let refused = 0;

reactor.add(socket, (event) => {
  if (event.error !== null && values.verbose) process.stdout.write(`network error: ${event.error.message}\n`);
  // Read until a batch comes back short (the kernel had no more), at most 16 batches per wakeup
  // so other work on the loop gets its turn; what is left keeps the socket readable.
  for (let round = 0; round < 16; round++) {
    const n = socket.receiveBatch(batch);
    if (n === 0) break;
    // Every datagram goes back to the address it came from, from the slot it arrived in.
    const taken = socket.sendBatch(batch, n);
    echoed += taken;
    if (taken < n) {
      // The send queue is at its cap, or the kernel refused one (a vanished Unix peer): say so, never drop in silence.
      refused += n - taken;
      if (values.verbose) process.stdout.write(`not echoed: ${n - taken} (${socket.lastError?.message ?? 'send queue full'})\n`);
    }
    if (values.verbose) process.stdout.write(`batch of ${n}\n`);
    if (n < capacity) break;
  }
});

function stop(): void {
  socket.close(); // sends what is queued first, then closes (and removes its Unix socket file)
  void socket.whenClosed().then(() => {
    if (values.verbose) process.stdout.write(`echoed ${echoed}, not echoed ${refused}\n`);
    reactor.close();
  });
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const local = socket.localAddress;
process.stdout.write(`listening on ${local.family === 'unix' ? local.path : formatAddress(local)}\n`);
