/**
 * Copies a file through a TCP connection on loopback with `stream.pipeline` on both ends:
 * file -> socket stream -> (kernel) -> socket stream -> file. Backpressure holds all the way: a
 * slow disk on the receiving end stops the reader of the sending end, and memory stays flat
 * whatever the file size.
 *
 *   node --import tsx examples/pipe-file.ts SOURCE DESTINATION [--host 127.0.0.1]
 *
 * Prints `copied N bytes in T s (R MiB/s), sha256 ok` and exits 0, or prints why on stderr and
 * exits 1 (2 for bad arguments).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { accepts, connect, listen, Reactor, toStream } from '../lib/index.ts';

const USAGE = 'usage: pipe-file SOURCE DESTINATION [--host IP]\n';

let parsed;
try {
  parsed = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' } }, allowPositionals: true, strict: true });
} catch (err) {
  process.stderr.write(`pipe-file: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const [source, destination] = parsed.positionals;
if (source === undefined || destination === undefined || parsed.positionals.length > 2) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const host = parsed.values.host;

/** A pass-through that hashes what flows by (to check the copy without reading it back). */
function hashing(): { stream: PassThrough; digest: () => string } {
  const hash = createHash('sha256');
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => hash.update(chunk));
  return { stream, digest: () => hash.digest('hex') };
}

const reactor = new Reactor();
const listener = await listen({ host, port: 0 });
try {
  const port = listener.port;
  const started = performance.now();
  const sent = hashing();
  const received = hashing();

  // Receiving end: take one connection, write what it brings into DESTINATION.
  const receiving = (async () => {
    const connections = accepts(listener, reactor);
    const { value: socket } = await connections.next();
    await connections.return();
    if (socket === undefined) throw new Error('the listener closed before the sender connected');
    await pipeline(toStream(socket, reactor), received.stream, createWriteStream(destination));
  })();

  // Sending end: SOURCE into the connection; end() sends FIN once everything is flushed.
  const socket = await connect({ host, port, reactor });
  const outgoing = toStream(socket, reactor);
  const sending = pipeline(createReadStream(source), sent.stream, outgoing);

  await Promise.all([sending, receiving]);
  outgoing.destroy(); // its write side is finished; nobody reads the (empty) reply direction
  const seconds = (performance.now() - started) / 1000;
  const bytes = statSync(destination).size;
  const same = sent.digest() === received.digest();
  process.stdout.write(
    `copied ${bytes} bytes in ${seconds.toFixed(3)} s (${(bytes / 1048576 / seconds).toFixed(1)} MiB/s), sha256 ${same ? 'ok' : 'MISMATCH'}\n`,
  );
  process.exitCode = same ? 0 : 1;
} catch (err) {
  process.stderr.write(`pipe-file: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  listener.close();
  reactor.close();
}
