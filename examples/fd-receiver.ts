/**
 * Receives a file descriptor over a Unix socket and prints what it reads from it: the fd-passing
 * (SCM_RIGHTS) half that node:net cannot do.
 *
 *   node --import tsx examples/fd-receiver.ts --path /tmp/fd.sock
 *
 * Contract (test/fd-examples.test.ts relies on it):
 * - listens on the Unix path (a path starting with '@' means the abstract name after it) and
 *   prints `listening on PATH` as its first stdout line;
 * - accepts one connection, receives one fd together with the bytes sent alongside (reported on
 *   stderr), reads that fd to its end (a file, a pipe, or a stream socket), writes what it read
 *   to stdout, and exits 0;
 * - removes the socket file it made; a failure prints one line on stderr and exits 1.
 */
import { unlinkSync } from 'node:fs';
import { read } from 'node:fs';
import { parseArgs } from 'node:util';
import { Listener, Multiplexer, OwnedFd, Socket, type ReceivedFd } from '../lib/index.ts';

function fail(message: string): never {
  process.stderr.write(`fd-receiver: ${message}\n`);
  process.exit(1);
}

let path: string;
try {
  const { values } = parseArgs({ options: { path: { type: 'string' } }, strict: true });
  if (!values.path) throw new Error('--path is required');
  path = values.path.startsWith('@') ? `\0${values.path.slice(1)}` : values.path;
} catch (err) {
  process.stderr.write(`fd-receiver: ${(err as Error).message}\nusage: fd-receiver --path PATH\n`);
  process.exit(2);
}

/** Waits (without blocking the loop for long) until `ready()` gives a value. */
function pollFor<T>(mux: Multiplexer, ready: () => T | null): Promise<T> {
  return new Promise((resolve, reject) => {
    const step = (): void => {
      try {
        mux.wait(0);
        const value = ready();
        if (value !== null) resolve(value);
        else setTimeout(step, 2);
      } catch (err) {
        reject(err);
      }
    };
    step();
  });
}

/** Reads a plain fd (file or pipe, maybe non-blocking: it is shared with the sender) to its end. */
function readFd(fd: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const next = (): void =>
      read(fd, Buffer.alloc(64 * 1024), 0, 64 * 1024, null, (err, n, buffer) => {
        if (err && (err as NodeJS.ErrnoException).code === 'EAGAIN') return void setTimeout(next, 2);
        if (err) return reject(err);
        if (n === 0) return resolve(Buffer.concat(chunks));
        chunks.push(buffer.subarray(0, n));
        next();
      });
    next();
  });
}

/** Reads a received stream socket until its peer closes. */
async function readSocket(mux: Multiplexer, socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  mux.add(socket);
  await pollFor(mux, () => {
    for (;;) {
      const { bytes, status } = socket.receive();
      if (bytes.byteLength > 0) chunks.push(Buffer.from(bytes));
      if (status === 'closed') return true;
      if (bytes.byteLength === 0) return null;
    }
  });
  return Buffer.concat(chunks);
}

const mux = new Multiplexer();
let listener: Listener;
try {
  listener = Listener.listen({ path });
} catch (err) {
  fail((err as Error).message);
}
const shown = path.startsWith('\0') ? `@${path.slice(1)}` : path;
process.stdout.write(`listening on ${shown}\n`);
const cleanup = (): void => {
  listener.close();
  if (!path.startsWith('\0')) {
    try {
      unlinkSync(path);
    } catch {
      // Already gone: nothing to clean.
    }
  }
};

try {
  mux.add(listener);
  const connection = await pollFor(mux, () => listener.accept());
  mux.add(connection);
  const buffer = new Uint8Array(4096);
  const sentAlong: Buffer[] = [];
  const received = await pollFor(mux, (): ReceivedFd | null => {
    const { bytes, status, fds } = connection.receiveWithFds(buffer);
    if (bytes.byteLength > 0) sentAlong.push(Buffer.from(bytes));
    if (fds.length > 0) {
      for (const extra of fds.slice(1)) (extra instanceof Socket ? extra.destroy() : extra.close());
      return fds[0];
    }
    if (status === 'closed') fail('the sender closed the connection without passing an fd');
    return null;
  });
  process.stderr.write(`fd-receiver: got an fd with ${Buffer.concat(sentAlong).byteLength} byte(s) alongside\n`);
  connection.close();
  let contents: Buffer;
  if (received instanceof OwnedFd) {
    const fd = received.fd;
    contents = await readFd(fd);
    received.close();
  } else if (received instanceof Socket) {
    contents = await readSocket(mux, received);
    received.destroy();
  } else {
    received.close();
    fail('received a listening socket: nothing to read from it');
  }
  process.stdout.write(contents);
  cleanup();
  mux.close();
} catch (err) {
  cleanup();
  fail((err as Error).message);
}
