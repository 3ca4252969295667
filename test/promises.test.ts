/**
 * Promise forms (lib/promises.ts): connect (literals, names, refusal, abort, timeout), listen with
 * a name, async iteration over accepted connections, closeGracefully, and `using` / `await using`
 * on sockets, listeners and reactors.
 *
 * The timeout and abort tests need a connect that stays pending on loopback: a listener with
 * backlog 0 takes one connection into its accept queue; while that one is not accepted the
 * kernel drops the SYNs of the next (tcp_abort_on_overflow=0: it waits for the client to retry,
 * the first retry after 1 s), so a second connect stays 'connecting' with no remote host.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket as NetSocket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { sys } from '../ffi/syscall.ts';
import { DatagramSocket, Interest, Listener, Multiplexer, Reactor, receiveDatagrams, Socket, SocketError, toStream, type TcpListener } from '../lib/index.ts';
import { accepts, closeGracefully, connect, listen } from '../lib/face/promises.ts';
import { fdTarget, openFds, trackFds } from './helpers/fd.ts';
import { pattern } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

function portOf(listener: TcpListener): number {
  return listener.port;
}

/** Accepts one connection through the reactor. */
function acceptOne(listener: Listener, reactor: Reactor): Promise<Socket> {
  return new Promise((resolve) => {
    reactor.add(listener, () => {
      const socket = listener.accept();
      if (socket === null) return;
      reactor.remove(listener);
      resolve(socket);
    });
  });
}

/**
 * A listener whose accept queue is full (backlog 0 plus one unaccepted connection), so the next
 * connect to it stays pending. See the file comment.
 */
async function fullListener(reactor: Reactor): Promise<{ port: number; close(): void }> {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0, backlog: 0 });
  const filler = await connect({ host: '127.0.0.1', port: portOf(listener), reactor });
  // The client is open when the SYN-ACK arrives; give the listener a moment to queue it too,
  // so that the next SYN surely finds the queue full.
  await delay(20);
  return {
    port: portOf(listener),
    close() {
      filler.destroy();
      listener.close();
    },
  };
}

describe('connect', () => {
  it('resolves with an open socket for IPv4, IPv6 and a host name, out of the reactor', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    for (const [listenHost, connectHost] of [
      ['127.0.0.1', '127.0.0.1'],
      ['::1', '::1'],
      ['::', 'localhost'], // dual-stack listener: whichever family localhost resolves to
    ]) {
      using listener = Listener.listen({ host: listenHost, port: 0 });
      const port = portOf(listener);
      const accepted = acceptOne(listener, reactor);
      using socket = await connect({ host: connectHost, port, reactor, socketOptions: { noDelay: true } });
      using server = await accepted;
      assert.equal(socket.state, 'open', connectHost);
      assert.equal(socket.getOption('noDelay'), true, 'options set before the connect');
      assert.equal(reactor.multiplexer.has(socket), false, 'the socket left the reactor once open');
      assert.equal((socket.remoteAddress as { port: number }).port, port);
      assert.equal(socket.send(Buffer.from('hi')), 'sent');
      assert.equal(server.state, 'open');
    }
    assert.equal(reactor.multiplexer.size, 0);
  });

  it('rejects with ECONNREFUSED naming the address, and closes the socket', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    // A port nobody listens on: bind one, note it, close it.
    using closedListener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const freePort = portOf(closedListener);
    closedListener.close();
    const before = openFds().length;
    const err = await connect({ host: '127.0.0.1', port: freePort, reactor }).catch((e: unknown) => e);
    assert.ok(err instanceof SocketError, String(err));
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.address, '127.0.0.1');
    assert.equal(err.port, freePort);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${freePort}`));
    assert.equal(openFds().length, before, 'the refused socket was closed');
    assert.equal(reactor.multiplexer.size, 0);
  });

  it('rejects with an AbortError when aborted before or during the connect, leaking no fd', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    const full = await fullListener(reactor);
    try {
      const before = openFds().length;
      const early = await connect({ port: full.port, reactor, signal: AbortSignal.abort('early') }).catch((e: unknown) => e);
      assert.equal((early as Error).name, 'AbortError');
      assert.equal((early as { code?: string }).code, 'ABORT_ERR');
      assert.equal((early as Error).cause, 'early');

      const controller = new AbortController();
      const pending = connect({ host: '127.0.0.1', port: full.port, reactor, signal: controller.signal });
      await delay(30);
      assert.equal(openFds().length, before + 1, 'the attempt holds a socket');
      assert.equal(reactor.multiplexer.size, 1, 'the attempt is in the reactor');
      controller.abort();
      const err = await pending.catch((e: unknown) => e);
      assert.equal((err as Error).name, 'AbortError');
      assert.equal(openFds().length, before, 'the aborted socket was closed');
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      full.close();
    }
  });

  it('rejects with ETIMEDOUT after timeoutMs, naming the address, leaking no fd', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    const full = await fullListener(reactor);
    try {
      const before = openFds().length;
      const started = performance.now();
      const err = await connect({ host: '127.0.0.1', port: full.port, reactor, timeoutMs: 100 }).catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      assert.ok(err instanceof SocketError, String(err));
      assert.equal(err.code, 'ETIMEDOUT');
      assert.equal(err.syscall, 'connect');
      assert.equal(err.address, '127.0.0.1');
      assert.equal(err.port, full.port);
      assert.ok(elapsed >= 90 && elapsed < 5000, `timed out after ${elapsed.toFixed(0)} ms`);
      assert.equal(openFds().length, before);
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      full.close();
    }
  });

  it('validates its options', async () => {
    using reactor = new Reactor();
    await assert.rejects(connect(null as never), /"options"/);
    await assert.rejects(connect({ port: 1 } as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"options.reactor"/ });
    await assert.rejects(connect({ reactor }), /"options.port"/);
    await assert.rejects(connect({ port: 1, reactor, timeoutMs: -1 }), /"options.timeoutMs"/);
    await assert.rejects(connect({ port: 1, reactor, signal: {} as never }), /"options.signal"/);
    await assert.rejects(connect({ port: 1, reactor, family: 5 as never }), /"options.family"/);
    await assert.rejects(connect({ path: '/x', port: 1, reactor }), /either path, or host and port/);
  });
});

describe('listen', () => {
  it('listens on a host name (its first address), on literals and on paths', async () => {
    using byName = await listen({ host: 'localhost', port: 0 });
    assert.ok(['127.0.0.1', '::1'].includes((byName.address as { address: string }).address));
    using literal = await listen({ host: '127.0.0.1', port: 0, backlog: 4 });
    assert.equal((literal.address as { address: string }).address, '127.0.0.1');
    using abstract = await listen({ path: `\0m-socket-promises-${process.pid}` });
    assert.equal(abstract.address.family, 'unix');
    await assert.rejects(listen({ host: 'localhost', signal: AbortSignal.abort() }), { name: 'AbortError' });
    await assert.rejects(listen({ host: '127.0.0.1', port: portOf(literal), reuseAddress: false }), { code: 'EADDRINUSE' });
  });
});

describe('accepts', () => {
  it('iterates over accepted connections with for await, and ends when the signal aborts', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const controller = new AbortController();
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect({ port: portOf(listener), reactor })));
    const served: Socket[] = [];
    try {
      for await (const socket of accepts(listener, reactor, { signal: controller.signal })) {
        served.push(socket);
        assert.equal(socket.state, 'open');
        assert.equal(reactor.multiplexer.has(listener), true, 'registered while iterating');
        if (served.length === 5) setTimeout(() => controller.abort(), 10); // abort while next() waits
      }
      assert.equal(served.length, 5);
      assert.equal(reactor.multiplexer.has(listener), false, 'the ended iteration left the reactor');
      assert.equal(listener.closed, false, 'the listener stays open');
      const ports = new Set(clients.map((c) => (c.localAddress as { port: number }).port));
      for (const s of served) assert.ok(ports.has((s.remoteAddress as { port: number }).port));
    } finally {
      for (const s of [...clients, ...served]) s.destroy();
    }
  });

  it('accepts only while next() waits; return() (break, await using) leaves the reactor', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const sockets: Socket[] = [];
    try {
      {
        await using iterator = accepts(listener, reactor);
        assert.equal(reactor.multiplexer.has(listener), true);
        const next = iterator.next(); // waits: nobody connected yet
        sockets.push(await connect({ port: portOf(listener), reactor }));
        const first = await next;
        assert.equal(first.done, false);
        sockets.push(first.value as Socket);
        // Connect two more with nobody asking: they wait in the kernel's backlog.
        sockets.push(await connect({ port: portOf(listener), reactor }), await connect({ port: portOf(listener), reactor }));
        await delay(20);
        for await (const socket of iterator) {
          sockets.push(socket);
          break; // return(): out of the reactor
        }
        assert.equal(reactor.multiplexer.has(listener), false);
        assert.deepEqual(await iterator.next(), { done: true, value: undefined });
      }
      // The third connection was never taken from the backlog: a plain accept still finds it.
      const waiting = listener.accept();
      assert.ok(waiting !== null, 'the unasked-for connection stayed in the backlog');
      sockets.push(waiting);
      // A closed listener ends the iteration at once.
      const ended = accepts(listener, reactor);
      listener.close();
      assert.deepEqual(await ended.next(), { done: true, value: undefined });
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe('accepts, edge cases', () => {
  it('ends at once on an aborted signal, takes over a registered listener, checks its arguments', async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const aborted = accepts(listener, reactor, { signal: AbortSignal.abort() });
    assert.equal(reactor.multiplexer.has(listener), false, 'an aborted iteration never registers');
    assert.deepEqual(await aborted.next(), { done: true, value: undefined });
    reactor.add(listener, () => assert.fail('the old handler must not run'));
    const iterator = accepts(listener, reactor);
    const [socket, accepted] = await Promise.all([connect({ port: portOf(listener), reactor }), iterator.next()]);
    try {
      assert.equal(accepted.done, false);
    } finally {
      socket.destroy();
      (accepted.value as Socket).destroy();
    }
    const pending = iterator.next();
    await iterator.return();
    assert.deepEqual(await pending, { done: true, value: undefined }, 'return() ends a pending next()');
    assert.throws(() => accepts({} as never, reactor), /"listener"/);
    assert.throws(() => accepts(listener, {} as never), /"reactor"/);
    assert.throws(() => accepts(listener, reactor, { signal: 1 as never }), /"options.signal"/);
  });
});

describe('closeGracefully', () => {
  it('closes at once when nothing is queued, refuses a closing socket, honours an aborted signal', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const sockets: Socket[] = [];
    try {
      const accepted = acceptOne(listener, reactor);
      const idle = await connect({ port: portOf(listener), reactor, sendQueueLimit: 64 * 1024 * 1024 });
      const peer = await accepted;
      sockets.push(idle, peer);
      await closeGracefully(idle, reactor);
      assert.equal(idle.state, 'closed', 'nothing queued: closed at once');
      await closeGracefully(idle, reactor); // already closed: nothing to do

      const accepted2 = acceptOne(listener, reactor);
      const busy = await connect({ port: portOf(listener), reactor, sendQueueLimit: 64 * 1024 * 1024 });
      sockets.push(busy, await accepted2);
      busy.send(pattern(16 * 1024 * 1024, 1));
      assert.ok(busy.queuedBytes > 0);
      await assert.rejects(closeGracefully(busy, reactor, { signal: AbortSignal.abort() }), { name: 'AbortError' });
      assert.equal(busy.state, 'closed', 'an abort destroys the socket');

      const accepted3 = acceptOne(listener, reactor);
      const closing = await connect({ port: portOf(listener), reactor, sendQueueLimit: 64 * 1024 * 1024 });
      sockets.push(closing, await accepted3);
      closing.send(pattern(16 * 1024 * 1024, 1));
      closing.close();
      assert.equal(closing.state, 'closing');
      await assert.rejects(closeGracefully(closing, reactor), /already closing/);
      closing.destroy();

      // Aborted while waiting for a peer that does not read: destroyed, AbortError.
      const accepted4 = acceptOne(listener, reactor);
      const stuck = await connect({ port: portOf(listener), reactor, sendQueueLimit: 64 * 1024 * 1024 });
      sockets.push(stuck, await accepted4);
      stuck.send(pattern(16 * 1024 * 1024, 1));
      const controller = new AbortController();
      const waiting = closeGracefully(stuck, reactor, { signal: controller.signal });
      await delay(30);
      assert.equal(stuck.state, 'open', 'still flushing: the peer does not read');
      controller.abort();
      await assert.rejects(waiting, { name: 'AbortError' });
      assert.equal(stuck.state, 'closed');
      assert.equal(reactor.multiplexer.has(stuck), false);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });


  it('resolves once the queued bytes are flushed and the socket closed; the peer gets them all', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const accepted = acceptOne(listener, reactor);
    const client = await connect({ port: portOf(listener), reactor, sendQueueLimit: 8 * 1024 * 1024 });
    using server = await accepted;
    const payload = pattern(4 * 1024 * 1024, 21);
    client.send(payload);
    assert.ok(client.queuedBytes > 0, 'the kernel could not take 4 MiB at once');
    const fd = client.fd;
    let closedAt = -1;
    const closing = closeGracefully(client, reactor).then(() => {
      closedAt = received;
    });
    let received = 0;
    let eof = false;
    const buffer = new Uint8Array(64 * 1024);
    await new Promise<void>((resolve) => {
      reactor.add(server, () => {
        for (let n = server.receiveInto(buffer); n !== 0; n = server.receiveInto(buffer)) {
          if (n < 0) {
            eof = true;
            reactor.remove(server);
            return resolve();
          }
          assert.ok(Buffer.from(buffer.subarray(0, n)).equals(payload.subarray(received, received + n)));
          received += n;
        }
      });
    });
    await closing;
    assert.equal(received, payload.byteLength);
    assert.ok(eof);
    assert.ok(closedAt >= 0, 'closeGracefully resolved');
    assert.equal(client.state, 'closed');
    assert.equal(fdTarget(fd), null);
    assert.equal(reactor.multiplexer.size, 0);
    await assert.rejects(closeGracefully({} as never, reactor), /"socket"/);
  });

  it('rejects with the SocketError when the peer resets first (unsentBytes says what was lost)', { timeout: 10_000 }, async () => {
    using reactor = new Reactor();
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const accepted = acceptOne(listener, reactor);
    const client = await connect({ port: portOf(listener), reactor, sendQueueLimit: 64 * 1024 * 1024 });
    const server = await accepted;
    client.send(pattern(16 * 1024 * 1024, 4));
    assert.ok(client.queuedBytes > 0);
    const closing = closeGracefully(client, reactor);
    sys.setsockopt(server.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), 8);
    server.destroy(); // RST
    const err = await closing.catch((e: unknown) => e);
    assert.ok(err instanceof SocketError, String(err));
    assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code), err.code);
    assert.ok((err as SocketError & { unsentBytes?: number }).unsentBytes! > 0);
    assert.equal(client.state, 'closed');
  });
});

describe('using / await using', () => {
  it('disposes sockets, listeners and reactors (Symbol.dispose exists on this Node)', { timeout: 10_000 }, async (t) => {
    t.diagnostic(`Node ${process.version}: typeof Symbol.dispose = ${typeof Symbol.dispose}, typeof Symbol.asyncDispose = ${typeof Symbol.asyncDispose}`);
    assert.equal(typeof Symbol.dispose, 'symbol');
    assert.equal(typeof Symbol.asyncDispose, 'symbol');
    let fds: number[];
    let outer: Reactor;
    {
      await using reactor = new Reactor(); // only [Symbol.dispose]: await using falls back to it
      outer = reactor;
      await using listener = await listen({ host: '127.0.0.1', port: 0 });
      const accepted = acceptOne(listener, reactor);
      using client = await connect({ port: portOf(listener), reactor });
      using server = await accepted;
      fds = [listener.fd, client.fd, server.fd];
      assert.ok(fds.every((fd) => fdTarget(fd) !== null));
    }
    assert.deepEqual(fds.map(fdTarget), [null, null, null], 'every fd closed at the end of the block');
    assert.equal(outer.closed, true);
  });

  it('await using a socket on a Multiplexer driven by hand returns at once; the next wait() calls finish the close, nothing lost', { timeout: 15_000 }, async () => {
    // Found from outside: it awaited a drain that only the awaiting code's next wait() could
    // make (a worker's own loop deadlocked).
    const [a, b] = Socket.pair();
    using mux = new Multiplexer();
    try {
      a.setOption('sendBufferSize', 4096);
      const data = pattern(1 << 20);
      mux.add(a, Interest.NONE);
      assert.notEqual(a.send(data), 'sent');
      const disposed = (async () => {
        await using s = a;
        void s;
      })();
      const first = await Promise.race([disposed.then(() => 'returned'), delay(2000).then(() => 'still waiting')]);
      assert.equal(first, 'returned');
      assert.equal(a.state, 'closing');
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(65536);
      for (let round = 0; round < 5000 && (a.state as string) !== 'closed'; round++) {
        mux.wait(1);
        for (let n = b.receiveInto(buffer); typeof n === 'number' && n > 0; n = b.receiveInto(buffer)) chunks.push(buffer.slice(0, n));
      }
      assert.equal(a.state, 'closed');
      for (let n = b.receiveInto(buffer); typeof n === 'number' && n > 0; n = b.receiveInto(buffer)) chunks.push(buffer.slice(0, n));
      assert.ok(Buffer.concat(chunks).equals(data), 'every byte, in order');
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('await using a socket no multiplexer drives: what is queued reaches the peer before the FIN', { timeout: 15_000 }, async () => {
    // Found from outside: the socket connect() resolves left the block with its queue dropped
    // behind a clean FIN (3.9 of 4 MiB arrived, and the peer could not tell).
    const reactor = new Reactor();
    const peers: NetSocket[] = [];
    const server = createServer((peer) => peers.push(peer));
    try {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      const received = new Promise<{ bytes: Buffer; how: string }>((resolve) =>
        server.once('connection', (peer) => {
          const chunks: Buffer[] = [];
          peer.pause(); // the kernel's buffers fill: the rest stays in the socket's queue
          setTimeout(() => peer.resume(), 200);
          peer.on('data', (chunk: Buffer) => chunks.push(chunk));
          peer.on('end', () => resolve({ bytes: Buffer.concat(chunks), how: 'end' }));
          peer.on('error', (err: NodeJS.ErrnoException) => resolve({ bytes: Buffer.concat(chunks), how: err.code ?? 'error' }));
        }),
      );
      const data = pattern(4 << 20);
      let socket: Socket;
      {
        await using s = await connect({ host: '127.0.0.1', port, reactor });
        socket = s;
        assert.equal(reactor.multiplexer.has(s), false);
        s.sendQueueLimit = 8 << 20;
        assert.notEqual(s.send(data), 'sent', 'the test needs bytes left in the queue');
        assert.ok(s.queuedBytes > 0);
      }
      assert.equal(socket.state, 'closed', 'the fd is closed when the block ends');
      assert.equal(socket.error, null);
      const { bytes, how } = await received;
      assert.equal(how, 'end');
      assert.equal(bytes.byteLength, data.byteLength);
      assert.ok(bytes.equals(data), 'every byte, in order');
    } finally {
      for (const peer of peers) peer.destroy();
      await new Promise((resolve) => server.close(resolve));
      reactor.close();
    }
  });
});

describe('a reactor closed while something waits on it (found from outside: each stayed pending for good)', () => {
  it('a toStream stream ends with ERR_SOCKET_CLOSED and closes its socket', { timeout: 10_000 }, async () => {
    const [a, b] = Socket.pair();
    const reactor = new Reactor();
    const stream = toStream(a, reactor);
    try {
      const events: string[] = [];
      stream.on('error', (err: NodeJS.ErrnoException) => events.push(`error ${err.code}`));
      const closed = new Promise((resolve) => stream.once('close', resolve));
      const data = new Promise((resolve) => stream.once('data', resolve));
      b.send(new Uint8Array([1]));
      await data; // reading, the socket armed in the reactor
      reactor.close();
      b.shutdown('write'); // nothing reads it now
      await closed;
      assert.deepEqual(events, ['error ERR_SOCKET_CLOSED']);
      assert.equal(a.state, 'closed');
    } finally {
      stream.destroy();
      b.destroy();
    }
  });

  it('closeGracefully rejects with ERR_SOCKET_CLOSED, the socket closed; a connect rejects, its socket destroyed; next() of receiveDatagrams and accepts answers done', { timeout: 10_000 }, async () => {
    const reactor = new Reactor();
    const [a, b] = Socket.pair();
    const datagrams = DatagramSocket.bind({ host: '127.0.0.1', port: 0 });
    const full = Listener.listen({ host: '127.0.0.1', port: 0, backlog: 0 });
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const fillers = Array.from({ length: 6 }, () => Socket.connect({ host: '127.0.0.1', port: full.port }));
    try {
      a.sendQueueLimit = 8 << 20;
      a.send(new Uint8Array(4 << 20)); // b never reads: the queue cannot drain
      const settle = (p: Promise<unknown>): Promise<string> => p.then((v) => `resolved ${JSON.stringify(v)}`, (err: NodeJS.ErrnoException) => `rejected ${err.code}`);
      const graceful = settle(closeGracefully(a, reactor));
      const datagram = settle(receiveDatagrams(datagrams, reactor)[Symbol.asyncIterator]().next());
      const accepted = settle(accepts(listener, reactor).next());
      await delay(30); // the backlog of `full` is full: the connect below waits for a SYN-ACK
      let connecting: Socket | null = null;
      const connected = settle(connect({ host: '127.0.0.1', port: full.port, reactor }).then((s) => ((connecting = s), 'connected')));
      await delay(30);
      reactor.close();
      assert.deepEqual(await Promise.all([graceful, datagram, accepted, connected]), [
        'rejected ERR_SOCKET_CLOSED',
        'resolved {"done":true}',
        'resolved {"done":true}',
        'rejected ERR_SOCKET_CLOSED',
      ]);
      assert.equal(connecting, null);
      assert.equal(a.state, 'closed');
      assert.equal(datagrams.state, 'open', 'an iterator\'s target stays open');
      assert.equal(listener.closed, false);
    } finally {
      for (const s of [a, b, ...fillers]) s.destroy();
      datagrams.destroy();
      full.close();
      listener.close();
    }
  });
});
