/**
 * A StatsD-style metrics receiver on m-socket: UDP and a Unix datagram socket at once, the way
 * a metrics agent listens (dogstatsd takes both). Each datagram holds one or more lines
 * `name:value|type` (`c` counter, `g` gauge, `ms` timer, optionally `|@rate`); once a second it
 * prints a summary line per metric and starts over. Datagrams are read in batches and parsed
 * straight from the batch's memory: only metric names become strings.
 *
 *   node --import tsx examples/statsd-server.ts [--host 127.0.0.1] [--port 8125] [--path P] [--interval MS]
 *
 * Contract (test/statsd.test.ts): the first stdout line is `listening on HOST:PORT` (and, with
 * --path, a second one `listening on PATH`); then one block per interval:
 *   `flush N` (datagrams in the interval), then `name counter SUM`, `name gauge LAST`,
 *   `name timer count=N min=A max=B mean=C`, sorted by name; malformed lines are counted as
 *   `bad N`. Bad arguments: exit 2; SIGINT/SIGTERM: a last flush, the path removed, exit 0.
 */
import { DatagramBatch, DatagramSocket, formatAddress, Reactor } from '../lib/index.ts';
import { commandLine } from './cli.ts';

const USAGE = `usage: statsd-server [--host IP] [--port N] [--path PATH] [--interval MS]
  --host IP            IP address for UDP (default 127.0.0.1)
  --port N             UDP port, 0..65535 (default 8125; 0: the kernel picks one)
  --path PATH          also take datagrams on this Unix datagram socket (removed on exit)
  --interval MS        how often to print and reset, 10..60000 (default 1000)
`;

const cli = commandLine('statsd-server', USAGE, {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8125' },
  path: { type: 'string' },
  interval: { type: 'string', default: '1000' },
});
const port = cli.integer('port', cli.values.port, 0, 65535);
const intervalMs = cli.integer('interval', cli.values.interval, 10, 60000);

// ---- Aggregation --------------------------------------------------------------------------------

interface Metric {
  kind: 'counter' | 'gauge' | 'timer';
  sum: number;
  count: number;
  min: number;
  max: number;
  last: number;
}
let metrics = new Map<string, Metric>();
let datagrams = 0;
let bad = 0;

const decoder = new TextDecoder();
const COLON = 0x3a;
const PIPE = 0x7c;
const NEWLINE = 0x0a;

/** Parses the lines of one datagram in `bytes[start, end)`. */
function parseDatagram(bytes: Uint8Array, start: number, end: number): void {
  datagrams++;
  for (let line = start; line < end; ) {
    let eol = bytes.indexOf(NEWLINE, line);
    if (eol < 0 || eol > end) eol = end;
    if (eol > line) parseLine(bytes, line, eol);
    line = eol + 1;
  }
}

function parseLine(bytes: Uint8Array, start: number, end: number): void {
  const colon = bytes.indexOf(COLON, start);
  const pipe = colon < 0 ? -1 : bytes.indexOf(PIPE, colon);
  // `name:|c` has no value (and Number('') would be 0): bad, like a line with no colon or pipe.
  if (colon <= start || pipe < 0 || pipe >= end || colon >= end || pipe === colon + 1) {
    bad++;
    return;
  }
  const value = Number(decoder.decode(bytes.subarray(colon + 1, pipe)));
  const rest = decoder.decode(bytes.subarray(pipe + 1, end)).split('|');
  const type = rest[0];
  const rate = rest[1]?.startsWith('@') ? Number(rest[1].slice(1)) : 1;
  const kind = type === 'c' ? 'counter' : type === 'g' ? 'gauge' : type === 'ms' ? 'timer' : null;
  if (kind === null || !Number.isFinite(value) || !(rate > 0 && rate <= 1)) {
    bad++;
    return;
  }
  const name = decoder.decode(bytes.subarray(start, colon));
  let m = metrics.get(name);
  if (m === undefined || m.kind !== kind) metrics.set(name, (m = { kind, sum: 0, count: 0, min: Infinity, max: -Infinity, last: 0 }));
  m.sum += kind === 'counter' ? value / rate : value;
  m.count++;
  m.min = Math.min(m.min, value);
  m.max = Math.max(m.max, value);
  m.last = value;
}

function flush(): void {
  const lines = [`flush ${datagrams}`];
  for (const [name, m] of [...metrics].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (m.kind === 'counter') lines.push(`${name} counter ${m.sum}`);
    else if (m.kind === 'gauge') lines.push(`${name} gauge ${m.last}`);
    else lines.push(`${name} timer count=${m.count} min=${m.min} max=${m.max} mean=${(m.sum / m.count).toFixed(3)}`);
  }
  if (bad > 0) lines.push(`bad ${bad}`);
  process.stdout.write(lines.join('\n') + '\n');
  metrics = new Map();
  datagrams = 0;
  bad = 0;
}

// ---- Sockets --------------------------------------------------------------------------------------

function bindOrExit(what: string, bind: () => DatagramSocket): DatagramSocket {
  try {
    return bind();
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_INVALID_ARG_VALUE') cli.usageError((err as Error).message);
    process.stderr.write(`statsd-server: cannot bind ${what}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

const reactor = new Reactor();
const batch = new DatagramBatch({ capacity: 64, datagramSize: 8192 });
const sockets = [bindOrExit(`${cli.values.host} port ${port}`, () => DatagramSocket.bind({ host: cli.values.host, port }))];
if (cli.values.path !== undefined) {
  const path = cli.values.path;
  sockets.push(bindOrExit(path, () => DatagramSocket.bind({ path })));
}
for (const socket of sockets) {
  reactor.add(socket, () => {
    for (let n = socket.receiveBatch(batch); n > 0; n = n === batch.capacity ? socket.receiveBatch(batch) : 0) {
      for (let i = 0; i < n; i++) {
        const slot = batch.slot(i);
        parseDatagram(slot, 0, batch.length(i));
      }
    }
  });
}

const timer = setInterval(flush, intervalMs);
function stop(): void {
  clearInterval(timer);
  flush();
  for (const socket of sockets) socket.destroy(); // a Unix socket removes the file its bind made
  reactor.close();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
for (const socket of sockets) {
  const local = socket.localAddress;
  process.stdout.write(`listening on ${local.family === 'unix' ? local.path : formatAddress(local)}\n`);
}
