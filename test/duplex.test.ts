/**
 * SocketStream (lib/face/duplex.ts): a Duplex over a Socket and a Reactor. Echo, pipeline, for await,
 * half-close, destroy, reset, and backpressure in both directions (a paused reader stops taking
 * bytes from the kernel; a slow consumer keeps the sender's queue within its cap and RSS flat).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { sys } from '../ffi/syscall.ts';
import { Listener, pipeSockets, Reactor, Socket, SocketError } from '../lib/index.ts';
import { toStream, type SocketStream, type SocketStreamOptions } from '../lib/face/duplex.ts';
import { fdTarget, trackFds } from './helpers/fd.ts';
import { pattern } from './helpers/sockets.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

interface StreamPair {
  client: SocketStream;
  server: SocketStream;
}

/** Runs `body` with a fresh reactor; afterwards destroys every stream it made and closes the reactor. */
async function withReactor(body: (reactor: Reactor, pair: (options?: SocketStreamOptions) => Promise<StreamPair>) => Promise<void>): Promise<void> {
  const reactor = new Reactor();
  const made: SocketStream[] = [];
  try {
    await body(reactor, async (options) => {
      const p = await streamPair(reactor, options);
      made.push(p.client, p.server);
      return p;
    });
  } finally {
    for (const stream of made) stream.destroy();
    reactor.close();
  }
}

/** A connected pair of streams on 127.0.0.1 (the client is still connecting when this returns). */
async function streamPair(reactor: Reactor, options: SocketStreamOptions = {}): Promise<StreamPair> {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
  try {
    const port = listener.port;
    const client = toStream(Socket.connect({ host: '127.0.0.1', port }), reactor, options);
    const accepted = await new Promise<Socket>((resolve) => {
      reactor.add(listener, () => {
        const socket = listener.accept();
        if (socket !== null) resolve(socket);
      });
    });
    return { client, server: toStream(accepted, reactor, options) };
  } finally {
    listener.close();
  }
}

/** Resolves once `stream` has emitted 'close' (at once if it already has). */
async function closed(stream: SocketStream): Promise<void> {
  if (!stream.closed) await once(stream, 'close');
}

/** Everything a readable gives until its end. */
async function collect(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A Readable of `total` bytes in `chunk`-byte slices of a repeating 1 MiB pattern; `onChunk` sees each push. */
function source(total: number, chunk: number, onChunk: () => void = () => {}): { readable: Readable; hash: () => string } {
  const block = Buffer.from(pattern(MiB, 3));
  const digest = createHash('sha256');
  let produced = 0;
  const readable = new Readable({
    highWaterMark: chunk,
    read() {
      onChunk();
      if (produced >= total) return void this.push(null);
      const start = produced % MiB;
      const piece = block.subarray(start, Math.min(start + chunk, MiB, start + total - produced));
      produced += piece.byteLength;
      digest.update(piece);
      this.push(piece);
    },
  });
  return { readable, hash: () => digest.digest('hex') };
}

describe('SocketStream', () => {
  it('echoes through streams on both ends, and validates its arguments', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      assert.ok(client.socket instanceof Socket);
      const echo = pipeline(server, server); // the server's readable feeds its own writable
      const reply = collect(client);
      for (const word of ['hello', ' ', 'stream', ' ', 'world']) client.write(word);
      // Corked writes reach _writev: small ones are joined into one send, big ones sent in turn.
      const big = Buffer.from(pattern(3 * 64 * KiB, 2));
      client.cork();
      for (const word of [' and', ' corked', ' words;']) client.write(word);
      client.uncork();
      client.cork();
      for (let at = 0; at < big.byteLength; at += 64 * KiB) client.write(big.subarray(at, at + 64 * KiB));
      client.uncork();
      client.end();
      const text = 'hello stream world and corked words;';
      const got = await reply;
      assert.equal(got.subarray(0, text.length).toString(), text);
      assert.ok(got.subarray(text.length).equals(big), 'the big corked chunks came back in order');
      await echo;
      await Promise.all([closed(client), closed(server)]);
      assert.equal(client.socket.state, 'closed', 'autoDestroy closed the socket once both sides ended');
      assert.equal(server.socket.state, 'closed');
      assert.equal(reactor.multiplexer.size, 0, 'both sockets left the reactor');

      const socket = Socket.connect({ host: '127.0.0.1', port: 9 }); // never driven: stays connecting
      try {
        assert.throws(() => toStream({} as never, reactor), { code: 'ERR_INVALID_ARG_TYPE', message: /"socket"/ });
        assert.throws(() => toStream(socket, {} as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"reactor"/ });
        assert.throws(() => toStream(socket, reactor, { highWaterMark: 0 }), { code: 'ERR_OUT_OF_RANGE', message: /"options.highWaterMark"/ });
        assert.throws(() => toStream(socket, reactor, { allowHalfOpen: 1 as never }), /"options.allowHalfOpen"/);
        assert.throws(() => toStream(socket, reactor, null as never), /"options"/);
        // Found from outside: a second stream (or a pipe) took the socket over and the first went silent for good.
        const first = toStream(socket, reactor);
        assert.throws(() => toStream(socket, reactor), { code: 'ERR_INVALID_ARG_VALUE', message: /"socket".*another toStream or pipeSockets/ });
        const [x, y] = Socket.pair();
        try {
          assert.throws(() => pipeSockets(socket, x, reactor), { code: 'ERR_INVALID_ARG_VALUE', message: /"a".*another toStream or pipeSockets/ });
        } finally {
          x.destroy();
          y.destroy();
        }
        first.destroy();
      } finally {
        socket.destroy();
      }
    });
  });

  it('pipes 8 MiB from a Readable through the socket and back into a Writable, intact', { timeout: 15_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      const { readable, hash } = source(8 * MiB, 48 * KiB + 7); // an odd size: chunks straddle receives
      const back = createHash('sha256');
      let received = 0;
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          back.update(chunk);
          received += chunk.byteLength;
          callback();
        },
      });
      await Promise.all([pipeline(server, server), pipeline(readable, client), pipeline(client, sink)]);
      assert.equal(received, 8 * MiB);
      assert.equal(back.digest('hex'), hash(), 'the bytes came back in order, none lost or doubled');
    });
  });

  it('can be read with for await', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      const payload = Buffer.from(pattern(300 * KiB, 9));
      server.end(payload);
      let total = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of client) {
        assert.ok(Buffer.isBuffer(chunk));
        chunks.push(chunk);
        total += chunk.byteLength;
      }
      assert.equal(total, payload.byteLength);
      assert.ok(Buffer.concat(chunks).equals(payload));
      server.resume(); // the server closes once it has read our FIN (allowHalfOpen false)
      await closed(server);
    });
  });

  it('half-closes: the peer shutdown ends our readable side while we keep writing', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open({ allowHalfOpen: true });
      const serverGot = collect(server);
      client.resume();
      server.end('bye'); // FIN from the server
      await once(client, 'end');
      assert.equal(client.writable, true, 'the write side is still open after the peer ended');
      assert.equal(client.socket.state, 'open');
      const late = Buffer.from(pattern(256 * KiB, 5));
      client.write('after end: ');
      client.end(late);
      const got = await serverGot;
      assert.equal(got.subarray(0, 11).toString(), 'after end: ');
      assert.ok(got.subarray(11).equals(late), 'everything written after the peer ended arrived');
      await Promise.all([closed(client), closed(server)]);
    });
  });

  it('ends its own side when the peer ends, by default (allowHalfOpen false, like net.Socket)', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      client.resume();
      server.resume();
      server.end();
      await Promise.all([once(client, 'finish'), once(client, 'close'), once(server, 'close')]);
      assert.equal(client.socket.state, 'closed');
    });
  });

  it('destroy() closes the fd at once and the peer sees the end', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      const fd = server.socket.fd;
      assert.match(fdTarget(fd) ?? '', /^socket:/);
      const sizeBefore = reactor.multiplexer.size;
      const ended = collect(client);
      server.destroy();
      assert.equal(server.socket.fd, -1);
      assert.equal(fdTarget(fd), null, 'the fd is closed at once');
      assert.equal(reactor.multiplexer.size, sizeBefore - 1, 'the socket left the reactor');
      await once(server, 'close');
      assert.equal((await ended).byteLength, 0);
      // A write cut short by destroy() is called back, with Node's ERR_STREAM_DESTROYED.
      const written = new Promise<Error | null | undefined>((resolve) => client.write('x', resolve));
      client.destroy();
      const err = await written;
      assert.ok(err instanceof Error);
    });
  });

  it('a reset by the peer is an error event carrying the SocketError (ECONNRESET)', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      client.resume();
      client.write('ping');
      await once(server, 'data');
      // SO_LINGER {on, 0}: close() sends RST instead of FIN.
      sys.setsockopt(server.socket.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), 8);
      server.destroy();
      const [err] = (await once(client, 'error').catch((e: unknown) => [e])) as [unknown];
      assert.ok(err instanceof SocketError, `got ${String(err)}`);
      assert.equal(err.code, 'ECONNRESET');
      await closed(client);
      assert.equal(client.destroyed, true);
      assert.equal(client.socket.state, 'closed');
    });
  });

  it('end() sends FIN only after the send queue has drained; destroy() calls a waiting write back', { timeout: 10_000 }, async () => {
    await withReactor(async (_reactor, open) => {
      const { client, server } = await open({ allowHalfOpen: true });
      const got: Buffer[] = [];
      server.on('data', (chunk: Buffer) => got.push(chunk));
      server.pause();
      const chunk = Buffer.from(pattern(256 * KiB, 8));
      let written = 0;
      // Fill the kernel buffers and our queue (as in the paused-reader test), then end().
      while (written < 64 * MiB) {
        written += chunk.byteLength;
        if (!client.write(chunk) && !(await Promise.race([once(client, 'drain').then(() => true), delay(300).then(() => false)]))) break;
      }
      let finished = false;
      client.end(() => {
        finished = true;
      });
      await delay(100);
      assert.equal(finished, false, "'finish' waits for the queue");
      assert.ok(client.socket.queuedBytes > 0);
      server.resume();
      await once(server, 'end'); // the FIN came after every byte
      assert.equal(Buffer.concat(got).byteLength, written);
      assert.equal(finished, true);

      // A write held until the queue drains is called back when the stream is destroyed.
      const second = await open();
      second.server.pause();
      const held = new Promise<Error | null | undefined>((resolve) => {
        const pump = (): void => {
          while (second.client.write(chunk));
          if (second.client.socket.queuedBytes >= second.client.socket.sendQueueLimit && second.client.writableLength > 0) {
            // The last write's callback is held: destroy now.
            second.client.write(chunk, resolve);
            second.client.destroy();
          } else second.client.once('drain', pump);
        };
        pump();
      });
      const err = await held;
      assert.equal((err as { code?: string } | null | undefined)?.code, 'ERR_STREAM_DESTROYED');
    });
  });

  it('a refused connect is an error event (ECONNREFUSED), fails the writes made while connecting, and a closed socket is refused', { timeout: 10_000 }, async () => {
    await withReactor(async (reactor) => {
      const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
      const port = listener.port;
      listener.close(); // nobody listens there any more
      const stream = toStream(Socket.connect({ host: '127.0.0.1', port }), reactor);
      // As net.Socket: a write made while connecting calls back with the connect's error (found
      // from outside: it called back with success, the bytes never left).
      const written = new Promise<Error | null | undefined>((resolve) => stream.write('queued while connecting', resolve));
      const [err] = (await once(stream, 'error').catch((e: unknown) => [e])) as [unknown];
      const writeError = await written;
      assert.equal((writeError as NodeJS.ErrnoException | null | undefined)?.code, 'ECONNREFUSED', 'the write failed with the connect');
      assert.ok(err instanceof SocketError, String(err));
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.port, port);
      await closed(stream);
      assert.equal(stream.socket.state, 'closed');
      assert.equal(reactor.multiplexer.size, 0);
      assert.throws(() => toStream(stream.socket, reactor), { code: 'ERR_SOCKET_CLOSED' });
    });
  });

  it('a paused reader stops taking bytes from the kernel: the sender queue fills, not our memory', { timeout: 15_000 }, async () => {
    const hwm = 64 * KiB;
    await withReactor(async (_reactor, open) => {
      const { client, server } = await open({ highWaterMark: hwm });
      const got: Buffer[] = [];
      server.on('data', (chunk: Buffer) => got.push(chunk));
      server.pause();
      got.length = 0; // nothing can have arrived yet; data events stop until resume()
      const chunk = Buffer.from(pattern(64 * KiB, 11));
      let written = 0;
      // Write until the whole path is full: our queue at its cap and write() stuck for 300 ms.
      while (written < 64 * MiB) {
        written += chunk.byteLength;
        if (!client.write(chunk)) {
          const drained = await Promise.race([once(client, 'drain').then(() => true), delay(300).then(() => false)]);
          if (!drained) break;
        }
      }
      assert.ok(written < 64 * MiB, 'the writer was stopped before 64 MiB');
      const limit = client.socket.sendQueueLimit;
      assert.ok(client.socket.queuedBytes >= limit, `sender queue at its cap (${client.socket.queuedBytes} of ${limit})`);
      assert.ok(client.socket.queuedBytes <= limit + chunk.byteLength);
      assert.ok(server.readableLength <= hwm + 64 * KiB, `the paused reader holds ${server.readableLength} bytes, at most hwm + one receive`);
      // The rest waits in the kernel's buffers, not in this process.
      const inKernel = written - client.socket.queuedBytes - client.writableLength - server.readableLength;
      assert.ok(inKernel > 0, `${inKernel} bytes left to the kernel`);

      server.resume();
      client.end();
      await once(server, 'end');
      const all = Buffer.concat(got);
      assert.equal(all.byteLength, written, 'every byte arrived after resume()');
      for (let at = 0; at < all.byteLength; at += chunk.byteLength) assert.ok(all.subarray(at, at + chunk.byteLength).equals(chunk));
    });
  });

  it('64 MiB to a slow consumer: the send queue stays within its cap and RSS stays bounded', { timeout: 20_000 }, async (t) => {
    await withReactor(async (reactor, open) => {
      const { client, server } = await open();
      const chunk = 64 * KiB;
      const limit = client.socket.sendQueueLimit;
      let maxQueued = 0;
      let maxBuffered = 0;
      let samples = 0;
      const rssBefore = process.memoryUsage.rss();
      let maxRss = rssBefore;
      const sample = (): void => {
        samples++;
        maxQueued = Math.max(maxQueued, client.socket.queuedBytes);
        maxBuffered = Math.max(maxBuffered, server.readableLength);
        if (samples % 64 === 0) maxRss = Math.max(maxRss, process.memoryUsage.rss());
      };
      const { readable, hash } = source(64 * MiB, chunk, sample);
      const ticker = setInterval(sample, 2);
      const back = createHash('sha256');
      let received = 0;
      let sinceNap = 0;
      const slow = new Writable({
        highWaterMark: chunk,
        write(data: Buffer, _encoding, callback) {
          back.update(data);
          received += data.byteLength;
          sinceNap += data.byteLength;
          sample();
          // Slow: a 1 ms nap per 256 KiB, a turn of the loop for every other chunk.
          if (sinceNap >= 256 * KiB) {
            sinceNap = 0;
            setTimeout(callback, 1);
          } else setImmediate(callback);
        },
      });
      const started = performance.now();
      try {
        await Promise.all([pipeline(readable, client), pipeline(server, slow)]);
      } finally {
        clearInterval(ticker);
      }
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      const seconds = (performance.now() - started) / 1000;
      const growth = (maxRss - rssBefore) / MiB;
      t.diagnostic(
        `64 MiB in ${seconds.toFixed(2)} s; ${samples} samples; max queuedBytes ${maxQueued} (cap ${limit} + chunk ${chunk}); ` +
          `max bytes buffered by the reading stream ${maxBuffered}; ` +
          `RSS ${(rssBefore / MiB).toFixed(0)} -> max ${(maxRss / MiB).toFixed(0)} MiB (+${growth.toFixed(1)} MiB)`,
      );
      assert.equal(received, 64 * MiB);
      assert.equal(back.digest('hex'), hash());
      assert.ok(maxQueued > 0, 'the consumer was slow enough for bytes to queue');
      assert.ok(maxQueued <= limit + chunk, `queuedBytes peaked at ${maxQueued}, over cap + one chunk (${limit + chunk})`);
      // The reader stops receiving when its buffer is full: at most highWaterMark + one receive.
      assert.ok(maxBuffered <= server.readableHighWaterMark + 64 * KiB, `the reading stream buffered ${maxBuffered} bytes`);
      assert.ok(growth < 200, `RSS grew ${growth.toFixed(1)} MiB`);
    });
  });
});
