/**
 * Opens a file and passes its descriptor to another process over a Unix socket (SCM_RIGHTS).
 *
 *   node --import tsx examples/fd-sender.ts --path /tmp/fd.sock --file /etc/hostname
 *
 * Contract (test/fd-examples.test.ts relies on it): connects to the Unix path (a path starting
 * with '@' names an abstract socket), opens FILE read-only, sends its fd with one byte of payload,
 * waits until that byte has left, and exits 0. A failure prints one line on stderr and exits 1.
 */
import { closeSync, openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Multiplexer, Socket } from '../lib/index.ts';

function fail(message: string): never {
  process.stderr.write(`fd-sender: ${message}\n`);
  process.exit(1);
}

let path: string;
let file: string;
try {
  const { values } = parseArgs({ options: { path: { type: 'string' }, file: { type: 'string' } }, strict: true });
  if (!values.path || !values.file) throw new Error('--path and --file are required');
  path = values.path.startsWith('@') ? `\0${values.path.slice(1)}` : values.path;
  file = values.file;
} catch (err) {
  process.stderr.write(`fd-sender: ${(err as Error).message}\nusage: fd-sender --path PATH --file FILE\n`);
  process.exit(2);
}

let fd: number;
try {
  fd = openSync(file, 'r');
} catch (err) {
  fail((err as Error).message);
}

let socket: Socket;
try {
  socket = Socket.connect({ path }); // a Unix connect completes (or fails) at once
} catch (err) {
  fail((err as Error).message);
}

const status = socket.sendWithFds(Buffer.from('F'), [fd]);
closeSync(fd); // the receiver has its own copy now (or the queue holds a duplicate)
if (status === 'closed') fail(`the receiver went away: ${socket.error?.message}`);
// Graceful close: a multiplexer drives the queue, should the byte not have gone at once.
const mux = new Multiplexer();
mux.add(socket, 0);
socket.close();
const deadline = Date.now() + 5000;
while (socket.state !== 'closed' && Date.now() < deadline) {
  for (const event of mux.wait(50)) if (event.error) fail(event.error.message);
}
mux.close();
if (socket.state !== 'closed') fail('the fd could not be sent within 5 s');
