/**
 * Multiplexer: readiness, tokens, the queue flushing it does, and its own lifecycle.
 * Scenarios from mio (tests/registering.rs, regression mio#219) and CPython's test_selectors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Interest, Listener, Multiplexer, Socket, SocketClosedError, type MultiplexerEvent } from '../lib/index.ts';
import { fdFlags, trackFds } from './helpers/fd.ts';
import { sys } from '../ffi/syscall.ts';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { SIZEOF } from '../ffi/layouts.ts';
import { connectedPair, pattern, pumpUntil, readToEnd, type Pair } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** A snapshot of an event (event objects are reused by the next wait). */
function copy(event: MultiplexerEvent) {
  const { target, readable, writable, hangup, error, data } = event;
  return { target, readable, writable, hangup, error, data };
}

describe('Multiplexer', () => {
  it('wait(0) with nothing registered returns [] at once', () => {
    const mux = new Multiplexer();
    try {
      const start = performance.now();
      assert.deepEqual([...mux.wait(0)], []);
      assert.deepEqual([...mux.wait()], []);
      assert.ok(performance.now() - start < 50);
      // epoll_create1 takes only EPOLL_CLOEXEC; the epoll fd is never read, so blocking is moot.
      assert.equal(fdFlags(mux.fd).cloexec, true);
    } finally {
      mux.close();
    }
  });

  it('rounds a fractional timeout up to a whole millisecond (never a busy 0)', () => {
    const mux = new Multiplexer();
    try {
      const start = performance.now();
      mux.wait(0.01);
      assert.ok(performance.now() - start >= 0.9, 'waited about 1 ms');
      assert.throws(() => mux.wait(Number.NaN), { code: 'ERR_INVALID_ARG_VALUE', message: /timeoutMs/ });
      assert.throws(() => mux.wait('5' as never), { code: 'ERR_INVALID_ARG_TYPE', message: /timeoutMs/ });
    } finally {
      mux.close();
    }
  });

  it('reports a readable socket with its data, and nothing after remove', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      mux.add(pair.server, Interest.READABLE, 'server-data');
      assert.equal(mux.wait(0).length, 0);
      pair.client.send(Buffer.from('ping'));
      const events: ReturnType<typeof copy>[] = [];
      pumpUntil(mux, () => events.length > 0, (e) => events.push(copy(e)));
      assert.equal(events[0].target, pair.server);
      assert.equal(events[0].readable, true);
      assert.equal(events[0].writable, false, 'write interest was not asked for');
      assert.equal(events[0].data, 'server-data');
      mux.remove(pair.server);
      assert.equal(mux.has(pair.server), false);
      assert.deepEqual([...mux.wait(20)], [], 'no events after remove, though data is still unread');
      assert.equal(pair.server.state, 'open', 'remove does not close');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('reports writable only when asked, and modify changes interest and data', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      mux.add(pair.client, Interest.READABLE);
      assert.equal(mux.wait(0).length, 0, 'an idle writable socket costs nothing');
      mux.modify(pair.client, Interest.READABLE | Interest.WRITABLE, 'now-writable');
      const [event] = mux.wait(100);
      assert.equal(event?.writable, true);
      assert.equal(event?.data, 'now-writable');
      mux.modify(pair.client, 0);
      assert.equal(mux.wait(0).length, 0);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('a closed socket leaves the multiplexer by itself', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      mux.add(pair.server);
      mux.add(pair.client);
      assert.equal(mux.size, 2);
      pair.server.close();
      assert.equal(mux.size, 1);
      assert.equal(mux.has(pair.server), false);
      // The client sees EOF; the closed server is never reported.
      const targets = new Set<unknown>();
      pumpUntil(mux, () => targets.size > 0, (e) => targets.add(e.target));
      assert.deepEqual([...targets], [pair.client]);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('close + fd reuse gives no stale event (mio#219, CPython fd reuse)', () => {
    const first = connectedPair();
    const mux = new Multiplexer();
    const pairs: Pair[] = [first];
    try {
      mux.add(first.server, Interest.READABLE, 'old owner');
      first.client.send(Buffer.from('for the old owner'));
      pumpUntil(mux, () => mux.wait(0).length > 0 || first.server.receiveInto(new Uint8Array(1)) !== 0);
      // Data is pending for the old fd. Close it, then make sockets until one reuses the number.
      const oldFd = first.server.fd;
      first.server.destroy();
      let reused: Socket | Listener | null = null;
      for (let i = 0; i < 20 && reused === null; i++) {
        const pair = connectedPair();
        pairs.push(pair);
        for (const s of [pair.listener, pair.client, pair.server]) if (s.fd === oldFd) reused = s;
      }
      assert.ok(reused !== null, `fd ${oldFd} was reused`);
      mux.add(reused, Interest.READABLE, 'new owner');
      assert.deepEqual([...mux.wait(20)].map(copy), [], 'the old registration is gone; the new owner has no data');
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });

  it('serves 12 socket pairs in one multiplexer', () => {
    const pairs = Array.from({ length: 12 }, () => connectedPair());
    const mux = new Multiplexer();
    try {
      pairs.forEach((p, i) => mux.add(p.server, Interest.READABLE, i));
      pairs.forEach((p, i) => p.client.send(Buffer.from(`message ${i}`)));
      const got = new Map<number, string>();
      pumpUntil(mux, () => got.size === 12, (e) => {
        const { bytes } = (e.target as Socket).receive();
        got.set(e.data as number, Buffer.from(bytes).toString());
      });
      for (let i = 0; i < 12; i++) assert.equal(got.get(i), `message ${i}`);
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });

  it('no stall: one 8 KiB receive per read event still gets all of 1 MiB', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const data = pattern(1024 * 1024, 21);
      pair.client.send(data);
      pair.client.shutdown('write');
      mux.add(pair.client, 0);
      mux.add(pair.server);
      const buffer = new Uint8Array(8 * 1024);
      const chunks: Buffer[] = [];
      let ended = false;
      pumpUntil(mux, () => ended, (e) => {
        if (e.target !== pair.server) return;
        const n = pair.server.receiveInto(buffer); // exactly one receive per event
        if (n > 0) chunks.push(Buffer.from(buffer.subarray(0, n)));
        if (n < 0) ended = true;
      }, 'EOF after 1 MiB');
      assert.ok(Buffer.concat(chunks).equals(data));
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('arms write interest only while a queue is waiting, and reports the drain', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      mux.add(pair.client, Interest.READABLE);
      const data = pattern(8 * 1024 * 1024, 2);
      const status = pair.client.send(data);
      assert.notEqual(status, 'sent');
      let drained = false;
      const reader = new Multiplexer();
      reader.add(pair.server);
      const buffer = new Uint8Array(256 * 1024);
      let received = 0;
      const deadline = performance.now() + 10_000;
      while (!drained && performance.now() < deadline) {
        for (const e of mux.wait(0)) if (e.writable) drained = true;
        for (const e of reader.wait(1)) {
          const n = (e.target as Socket).receiveInto(buffer);
          if (n > 0) received += n;
        }
      }
      reader.close();
      assert.ok(drained, 'a writable event said the queue drained');
      assert.equal(pair.client.queuedBytes, 0);
      assert.equal(mux.wait(10).length, 0, 'no write events once the queue is empty');
      assert.ok(received > 0);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('finishes a non-blocking connect: queued sends flushed on success', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const mux = new Multiplexer();
    const port = (listener.address as { port: number }).port;
    const client = Socket.connect({ host: '127.0.0.1', port });
    let server: Socket | null = null;
    try {
      assert.equal(client.state, 'connecting');
      assert.equal(client.remoteAddress, null);
      assert.equal(client.send(Buffer.from('sent while connecting')), 'queued');
      assert.equal(client.receive(new Uint8Array(4)).status, 'alive');
      mux.add(client, Interest.READABLE);
      mux.add(listener);
      const events: ReturnType<typeof copy>[] = [];
      pumpUntil(mux, () => client.state === 'open' && server !== null, (e) => {
        if (e.target === listener) server = listener.accept();
        else events.push(copy(e));
      });
      assert.equal(events.filter((e) => e.writable).length, 1, 'connect reported once');
      assert.equal(events[0].error, null);
      mux.add(server!);
      client.close();
      assert.equal(Buffer.from(readToEnd(mux, server!)).toString(), 'sent while connecting');
    } finally {
      mux.close();
      client.destroy();
      (server as Socket | null)?.destroy();
      listener.close();
    }
  });

  it('reports a refused connect once, as ECONNREFUSED naming the address', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const port = (listener.address as { port: number }).port;
    listener.close();
    const mux = new Multiplexer();
    const client = Socket.connect({ host: '127.0.0.1', port });
    try {
      client.send(Buffer.from('lost'));
      mux.add(client, Interest.READABLE);
      const events: ReturnType<typeof copy>[] = [];
      pumpUntil(mux, () => events.length > 0, (e) => events.push(copy(e)));
      assert.equal(events.length, 1);
      const err = events[0].error as NodeJS.ErrnoException & { address: string; port: number; unsentBytes: number };
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.syscall, 'connect');
      assert.equal(err.address, '127.0.0.1');
      assert.equal(err.port, port);
      assert.equal(err.unsentBytes, 4, 'the loss of queued bytes is reported');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.equal(client.error, err);
      assert.equal(client.send(Buffer.from('x')), 'closed');
      assert.deepEqual([...mux.wait(20)], [], 'reported exactly once');
    } finally {
      mux.close();
      client.destroy();
    }
  });

  it('a peer reset while flushing is reported as an error event with the stranded bytes', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      pair.client.send(pattern(16 * 1024 * 1024, 4));
      assert.ok(pair.client.queuedBytes > 0);
      mux.add(pair.client, 0);
      // Reset the server end (SO_LINGER 0, then close: RST instead of FIN), so that the client's
      // queued bytes can never be delivered.
      sys.setsockopt(pair.server.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), SIZEOF.linger);
      pair.server.destroy();
      const events: ReturnType<typeof copy>[] = [];
      pumpUntil(mux, () => events.some((e) => e.error !== null), (e) => events.push(copy(e)));
      const err = events.find((e) => e.error !== null)!.error as Error & { code: string; unsentBytes?: number };
      assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code), err.message);
      assert.ok((err.unsentBytes ?? 0) > 0, 'how much was lost is said');
      assert.equal(pair.client.queuedBytes, 0);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('rejects bad targets and interests, naming the argument', () => {
    const mux = new Multiplexer();
    const pair = connectedPair();
    const other = new Multiplexer();
    try {
      assert.throws(() => mux.add({ fd: 3 } as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"target"/ });
      assert.throws(() => mux.add(pair.client, 4), { name: 'RangeError', message: /"interest"/ });
      mux.add(pair.client);
      assert.throws(() => mux.add(pair.client), /already in this multiplexer/);
      assert.throws(() => other.add(pair.client), /already in another multiplexer/);
      assert.throws(() => other.remove(pair.client), /not in this multiplexer/);
      pair.server.destroy();
      assert.throws(() => mux.add(pair.server), SocketClosedError);
      assert.throws(() => new Multiplexer({ backend: 'kqueue' as never }), /options.backend/);
      assert.throws(() => new Multiplexer({ maxEvents: 0 }), /options.maxEvents/);
    } finally {
      other.close();
      mux.close();
      pair.close();
    }
  });

  it('closing with sockets inside is safe: they stay usable; closing sockets are finished', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    mux.add(pair.client);
    mux.add(pair.server);
    pair.client.send(pattern(8 * 1024 * 1024, 8));
    pair.client.close();
    assert.equal(pair.client.state, 'closing');
    mux.close();
    mux.close();
    assert.equal(mux.closed, true);
    assert.throws(() => mux.wait(0), { code: 'ERR_SOCKET_CLOSED' });
    assert.throws(() => mux.add(pair.server), { code: 'ERR_SOCKET_CLOSED' });
    assert.equal(pair.client.state, 'closed', 'a closing socket cannot be driven any more: closed');
    assert.equal(pair.server.state, 'open');
    const again = new Multiplexer();
    again.add(pair.server);
    again.close();
    pair.close();
  });
});

