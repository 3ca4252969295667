/**
 * shutdownServer: a server with connections mid-transfer (each has megabytes queued for its
 * client, and its client keeps sending) stops accepting at once, delivers every byte it had
 * accepted, closes each connection once drained and ended, and at the deadline destroys the one
 * whose client never reads, saying how many.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Listener, Reactor, Socket, shutdownServer } from '../lib/index.ts';
import { pattern } from './helpers/sockets.ts';
import { trackFds } from './helpers/fd.ts';

const MiB = 1024 * 1024;
let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

interface Client {
  socket: net.Socket;
  /** Everything received, once the server's FIN arrived. */
  received: Promise<Buffer>;
}

/** A client that keeps sending until the server's FIN, and reads (unless `stuck`). */
function client(port: number, stuck: boolean): Client {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  if (stuck) socket.pause();
  socket.on('data', (c: Buffer) => chunks.push(c));
  const noise = Buffer.alloc(16 * 1024, 1);
  const writeSome = (): void => {
    while (!socket.writableEnded && !socket.destroyed && socket.write(noise));
  };
  socket.on('connect', writeSome);
  socket.on('drain', writeSome);
  const received = new Promise<Buffer>((ok) => socket.on('end', () => ok(Buffer.concat(chunks))));
  return { socket, received };
}

describe('shutdownServer', () => {
  it('stops accepting at once, delivers every accepted byte, closes drained connections, destroys the rest at the deadline', { timeout: 30_000 }, async () => {
    const reactor = new Reactor();
    const listener = Listener.listen({ host: '127.0.0.1', port: 0, socket: { sendQueueLimit: 8 * MiB } });
    const port = listener.port!;
    const payload = pattern(4 * MiB, 11);
    const sockets: Socket[] = [];
    let accepted!: () => void;
    const allAccepted = new Promise<void>((ok) => (accepted = ok));
    const CLIENTS = 4;
    // The server: each connection gets the whole payload queued at once, and its input dropped.
    reactor.add(listener, () => {
      for (let s = listener.accept(); s !== null; s = listener.accept()) {
        sockets.push(s);
        s.setOption('sendBufferSize', 64 * 1024);
        assert.notEqual(s.send(payload), 'not-sent');
        reactor.add(s, () => void s.receive());
        if (sockets.length === CLIENTS) accepted();
      }
    });
    const clients = [client(port, false), client(port, false), client(port, false), client(port, true)];
    try {
      await allAccepted;
      assert.ok(sockets.every((s) => s.queuedBytes > 0), 'every connection is mid-transfer');
      const done = shutdownServer(listener, sockets, reactor, { timeoutMs: 1500 });
      // Stopped accepting at once: a new connection is refused.
      assert.equal(listener.closed, true);
      const refused = await new Promise<string>((ok) => net.connect({ host: '127.0.0.1', port }).on('error', (e: NodeJS.ErrnoException) => ok(e.code!)).on('connect', () => ok('connected')));
      assert.equal(refused, 'ECONNREFUSED');
      for (const c of clients.slice(0, 3)) {
        const got = await c.received;
        assert.equal(got.length, payload.length);
        assert.ok(got.equals(Buffer.from(payload)), 'a client got other bytes than were queued for it');
      }
      const result = await done;
      assert.deepEqual({ ...result, errors: result.errors.length }, { closed: 3, failed: 0, destroyed: 1, errors: 0 });
      assert.ok(sockets.every((s) => s.state === 'closed'));
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      for (const c of clients) c.socket.destroy();
      for (const s of sockets) s.destroy();
      listener.close();
      reactor.close();
    }
  });

  it('closes at once a connection whose peer had already ended, and counts closed sockets', { timeout: 10_000 }, async () => {
    const reactor = new Reactor();
    const [a, b] = Socket.pair();
    const [c, d] = Socket.pair();
    c.destroy();
    try {
      b.shutdown('write');
      while (a.receiveInto(new Uint8Array(4)) !== -1); // a has read its peer's end
      const result = await shutdownServer([], [a, c], reactor, { timeoutMs: 5000 });
      assert.deepEqual(result, { closed: 2, failed: 0, destroyed: 0, errors: [] });
      assert.equal(a.state, 'closed');
    } finally {
      a.destroy();
      b.destroy();
      d.destroy();
      reactor.close();
    }
  });

  it('refuses bad arguments, naming them', async () => {
    const reactor = new Reactor();
    try {
      await assert.rejects(shutdownServer(5 as never, [], reactor, { timeoutMs: 1 }), { code: 'ERR_INVALID_ARG_TYPE', message: /"listeners"/ });
      await assert.rejects(shutdownServer([], [5] as never, reactor, { timeoutMs: 1 }), { code: 'ERR_INVALID_ARG_TYPE', message: /"sockets\[0\]"/ });
      await assert.rejects(shutdownServer([], [], null as never, { timeoutMs: 1 }), { code: 'ERR_INVALID_ARG_TYPE', message: /"reactor"/ });
      await assert.rejects(shutdownServer([], [], reactor, { timeoutMs: -1 }), { code: 'ERR_OUT_OF_RANGE', message: /"options.timeoutMs"/ });
    } finally {
      reactor.close();
    }
  });
});
