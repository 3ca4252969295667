/**
 * A StatsD client that sends through a Unix datagram socket, the way dogstatsd clients do
 * (`unix:///var/run/datadog/dsd.socket`), or over UDP. It packs metric lines into datagrams of at
 * most `--max-size` bytes and never drops one silently: a full receiver makes `sendTo` answer
 * `'queued'` (the multiplexer sends it when there is room) and the client waits for its queue to
 * drain before it exits.
 *
 *   node --import tsx examples/statsd-client.ts --path /tmp/statsd.sock name:1|c other:42|g ...
 *   node --import tsx examples/statsd-client.ts --host 127.0.0.1 --port 8125 --repeat 1000 hits:1|c
 *
 * Prints `sent N lines in M datagrams` and exits 0; exit 2 for bad arguments, 1 when the server is
 * not there (ECONNREFUSED / ENOENT on a Unix path).
 */
import { parseArgs } from 'node:util';
import { DatagramSocket, Interest, Multiplexer, type DatagramDestination } from '../lib/index.ts';

const USAGE = `usage: statsd-client (--path PATH | --host IP --port N) [--repeat N] [--max-size BYTES] LINE...
  LINE                 a metric: name:value|c, name:value|g, name:value|ms (optionally |@rate)
  --repeat N           send the lines N times (default 1)
  --max-size BYTES     pack lines into datagrams of at most this size (default 1432)
`;
function usageError(message: string): never {
  process.stderr.write(`statsd-client: ${message}\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: { path: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, repeat: { type: 'string', default: '1' }, 'max-size': { type: 'string', default: '1432' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
} catch (err) {
  usageError((err as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const repeat = Number(values.repeat);
const maxSize = Number(values['max-size']);
if (!Number.isInteger(repeat) || repeat < 1 || repeat > 1_000_000) usageError('--repeat must be an integer from 1 to 1000000');
if (!Number.isInteger(maxSize) || maxSize < 16 || maxSize > 65507) usageError('--max-size must be an integer from 16 to 65507');
if (positionals.length === 0) usageError('no metric lines given');
for (const line of positionals) if (!/^[^:|\n]+:-?[\d.]+\|(c|g|ms)(\|@[\d.]+)?$/.test(line)) usageError(`not a metric line: ${JSON.stringify(line)}`);
if ((values.path === undefined) === (values.host === undefined)) usageError('give --path, or --host and --port');

const to: DatagramDestination = values.path !== undefined ? { path: values.path } : { host: values.host!, port: Number(values.port) };
const socket = DatagramSocket.create({ family: values.path !== undefined ? 'unix' : values.host!.includes(':') ? 'IPv6' : 'IPv4', sendQueueLimit: 1 << 20 });
const encoder = new TextEncoder();
const packet = new Uint8Array(maxSize);
let fill = 0;
let lines = 0;
let datagrams = 0;

// Connected, as dogstatsd clients are: the kernel then says when the server's queue has room
// (an unconnected Unix datagram socket only knows its own buffer), and refusals come back.
try {
  socket.connect(to);
} catch (err) {
  process.stderr.write(`statsd-client: ${(err as Error).message}\n`);
  process.exit(1);
}
using mux = new Multiplexer();
mux.add(socket, Interest.NONE);

/** Sends what is packed; waits (bounded) while the queue is at its cap. */
function sendPacket(): void {
  if (fill === 0) return;
  for (let tries = 0; ; tries++) {
    let status;
    try {
      status = socket.send(packet, fill);
    } catch (err) {
      process.stderr.write(`statsd-client: ${(err as Error).message}\n`);
      process.exit(1);
    }
    if (status === 'sent' || status === 'queued') break;
    if (status === 'refused') {
      process.stderr.write(`statsd-client: ${socket.lastError?.message}\n`);
      process.exit(1);
    }
    if (tries > 1000) {
      process.stderr.write('statsd-client: the server does not read (send queue full for 10 s)\n');
      process.exit(1);
    }
    mux.wait(10); // 'not-sent': the queue is at its cap; let the multiplexer flush it
  }
  datagrams++;
  fill = 0;
}

for (let r = 0; r < repeat; r++) {
  for (const line of positionals) {
    const bytes = encoder.encode(line);
    if (bytes.byteLength > maxSize) usageError(`a line is longer than --max-size: ${line}`);
    if (fill > 0 && fill + 1 + bytes.byteLength > maxSize) sendPacket();
    if (fill > 0) packet[fill++] = 0x0a;
    packet.set(bytes, fill);
    fill += bytes.byteLength;
    lines++;
  }
}
sendPacket();
for (let i = 0; i < 1000 && socket.flush() > 0; i++) mux.wait(10);
if (socket.queuedDatagrams > 0) {
  process.stderr.write(`statsd-client: ${socket.queuedDatagrams} datagrams still queued after 10 s: the server does not read\n`);
  process.exit(1);
}
if (socket.lastError !== null) process.stderr.write(`statsd-client: warning: ${socket.lastError.message}\n`);
socket.close();
process.stdout.write(`sent ${lines} lines in ${datagrams} datagrams\n`);
