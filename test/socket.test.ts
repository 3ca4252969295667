/**
 * Socket: receive, send and its queue, graceful close and shutdown, closed-socket rules.
 * Scenarios ported from mio's tcp_stream tests and CPython's test_socket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Linger, SIZEOF } from '../ffi/layouts.ts';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { sys } from '../ffi/syscall.ts';
import { Listener, Multiplexer, Socket, SocketClosedError, SocketError, END_OF_STREAM } from '../lib/index.ts';
import { assertNonBlockingCloexec, trackFds } from './helpers/fd.ts';
import { connectedPair, pattern, pumpUntil, readToEnd } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** Resets the connection on close (SO_LINGER 0): the peer sees ECONNRESET, not EOF. */
function lingerZero(socket: Socket): void {
  const linger = new Int32Array([1, 0]);
  assert.equal(linger.byteLength, SIZEOF.linger, `struct linger is ${SIZEOF.linger} bytes (${Linger})`);
  sys.setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, linger, linger.byteLength);
}

describe('Socket', () => {
  it('a multiplexer closed under a closing TCP socket with a queue resets the peer too; so does destroy() of a connecting socket with a queue', () => {
    // Found from outside: both sent a clean FIN (the peer read 3.9 of 8 MiB, or 0 bytes, and an end).
    const p = connectedPair({ sendQueueLimit: 8 << 20 });
    try {
      p.client.setOption('sendBufferSize', 4096);
      assert.notEqual(p.client.send(pattern(1 << 20)), 'sent');
      const mux = new Multiplexer();
      mux.add(p.client, 0);
      p.client.close();
      mux.close();
      assert.equal(p.client.error?.code, 'ECANCELED');
      using reader = new Multiplexer();
      reader.add(p.server);
      readToEnd(reader, p.server);
      assert.equal(p.server.error?.code, 'ECONNRESET');
    } finally {
      p.close();
    }
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
      assert.equal(client.state, 'connecting');
      assert.equal(client.send(pattern(1 << 16)), 'queued');
      using mux = new Multiplexer();
      mux.add(listener);
      let server: Socket | null = null;
      pumpUntil(mux, () => server !== null, () => (server ??= listener.accept()), 'the connection');
      client.destroy();
      mux.add(server!);
      const got = readToEnd(mux, server!);
      assert.equal(server!.error?.code, 'ECONNRESET', `the peer got ${got.byteLength} bytes and a clean end`);
      server!.destroy();
    } finally {
      listener.close();
    }
  });

  it('destroy() that drops queued bytes resets a TCP peer (ECONNRESET, not an end that passes the cut stream off as whole); with nothing queued the peer gets a clean end', () => {
    for (const queued of [true, false]) {
      const p = connectedPair({ sendQueueLimit: 8 << 20 });
      try {
        if (queued) {
          p.client.setOption('sendBufferSize', 4096);
          assert.notEqual(p.client.send(pattern(1 << 20)), 'sent');
          assert.ok(p.client.queuedBytes > 0);
        } else assert.equal(p.client.send(pattern(100)), 'sent');
        p.client.destroy();
        using mux = new Multiplexer();
        mux.add(p.server);
        const got = readToEnd(mux, p.server);
        if (queued) {
          assert.equal(p.server.error?.code, 'ECONNRESET', `the peer got ${got.byteLength} bytes and ${p.server.error === null ? 'a clean end' : p.server.error.code}`);
        } else {
          assert.equal(p.server.error, null);
          assert.equal(got.byteLength, 100);
        }
      } finally {
        p.close();
      }
    }
  });

  it('is non-blocking and close-on-exec on both ends', () => {
    const pair = connectedPair();
    try {
      assertNonBlockingCloexec(pair.client.fd);
      assertNonBlockingCloexec(pair.server.fd);
      assert.equal(pair.client.state, 'open');
      assert.equal(pair.client.blocking, false);
    } finally {
      pair.close();
    }
  });

  it('receives nothing (status alive) when no data is waiting, without blocking', () => {
    const pair = connectedPair();
    try {
      const { bytes, status } = pair.server.receive(new Uint8Array(16));
      assert.equal(bytes.byteLength, 0);
      assert.equal(status, 'alive');
      assert.equal(pair.server.receiveInto(new Uint8Array(16)), 0);
    } finally {
      pair.close();
    }
  });

  it('receives into the caller buffer with no copy, honouring byteOffset', () => {
    const pair = connectedPair();
    try {
      assert.equal(pair.client.send(Buffer.from('hello')), 'sent');
      const backing = new Uint8Array(32);
      const window = backing.subarray(10, 20);
      const mux = new Multiplexer();
      mux.add(pair.server);
      pumpUntil(mux, () => mux.wait(10).length > 0 || true);
      let result = pair.server.receive(window);
      for (let i = 0; i < 100 && result.bytes.byteLength === 0; i++) {
        mux.wait(10);
        result = pair.server.receive(window);
      }
      mux.close();
      assert.equal(Buffer.from(result.bytes).toString(), 'hello');
      assert.equal(result.bytes.buffer, backing.buffer, 'a view of the caller buffer');
      assert.equal(result.bytes.byteOffset, 10);
      assert.equal(Buffer.from(backing.subarray(10, 15)).toString(), 'hello');
      assert.ok(backing.subarray(0, 10).every((b) => b === 0), 'nothing written before the window');
    } finally {
      pair.close();
    }
  });

  it('reports EOF as status closed, then keeps answering closed without error', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      pair.client.send(Buffer.from('last words'));
      pair.client.close();
      mux.add(pair.server);
      assert.equal(Buffer.from(readToEnd(mux, pair.server)).toString(), 'last words');
      assert.equal(pair.server.receive(new Uint8Array(8)).status, 'closed');
      assert.equal(pair.server.receiveInto(new Uint8Array(8)), END_OF_STREAM);
      assert.equal(pair.server.error, null, 'an orderly EOF is not an error');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('sees a reset by the peer (SO_LINGER 0) as closed, with ECONNRESET in error', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      lingerZero(pair.client);
      pair.client.destroy();
      mux.add(pair.server);
      let status = 'alive';
      pumpUntil(mux, () => status === 'closed', () => {
        status = pair.server.receive(new Uint8Array(64)).status;
      }, 'the reset');
      assert.equal(pair.server.error?.code, 'ECONNRESET');
      assert.equal(pair.server.error?.syscall, 'recv');
      assert.equal(pair.server.send(Buffer.from('x')), 'closed', 'send after reset answers closed');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('write then close delivers everything, then EOF', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const data = pattern(200_000, 7);
      const status = pair.client.send(data);
      assert.ok(['sent', 'partial', 'queued'].includes(status), status);
      mux.add(pair.client);
      pair.client.close();
      mux.add(pair.server);
      const got = readToEnd(mux, pair.server);
      assert.equal(got.byteLength, data.byteLength);
      assert.deepEqual(got, Buffer.from(data));
      assert.equal(pair.client.state, 'closed');
      assert.equal(mux.size, 1, 'the closed client left the multiplexer by itself');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it("answers 'not-sent' once the queue holds its cap, and takes nothing", () => {
    const pair = connectedPair({ sendQueueLimit: 1024 });
    try {
      const chunk = pattern(64 * 1024, 3);
      const statuses: string[] = [];
      for (let i = 0; i < 1000 && statuses.at(-1) !== 'not-sent'; i++) statuses.push(pair.client.send(chunk));
      assert.equal(statuses.at(-1), 'not-sent', `statuses: ${statuses.slice(-3)}`);
      const queued = pair.client.queuedBytes;
      assert.ok(queued >= 1024, `queue holds at least the cap (${queued})`);
      assert.equal(pair.client.send(chunk), 'not-sent');
      assert.equal(pair.client.queuedBytes, queued, 'a refused send queues nothing');
    } finally {
      pair.close();
    }
  });

  it('lets the caller reuse its buffer as soon as send returns (queued bytes are copies)', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const buffer = new Uint8Array(256 * 1024);
      const expected: Uint8Array[] = [];
      // Fill the kernel buffers first, so that the following sends are queued.
      for (let round = 0; round < 40; round++) {
        buffer.fill(round);
        const status = pair.client.send(buffer);
        assert.notEqual(status, 'not-sent', 'the default cap is not reached by one send at a time');
        expected.push(buffer.slice());
        if (status === 'queued') break;
      }
      buffer.fill(255);
      mux.add(pair.client);
      pair.client.close();
      mux.add(pair.server);
      const got = readToEnd(mux, pair.server);
      assert.deepEqual(got, Buffer.concat(expected));
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('graceful close after a large queued send delivers every byte', () => {
    const pair = connectedPair({ sendQueueLimit: 64 * 1024 });
    const mux = new Multiplexer();
    try {
      const data = pattern(8 * 1024 * 1024, 11);
      const status = pair.client.send(data);
      assert.ok(status === 'partial' || status === 'queued', `8 MiB does not fit the kernel at once (${status})`);
      assert.ok(pair.client.queuedBytes > 0);
      mux.add(pair.client);
      pair.client.close();
      assert.equal(pair.client.state, 'closing');
      assert.throws(() => pair.client.send(data), SocketClosedError);
      mux.add(pair.server);
      const got = readToEnd(mux, pair.server, 10_000);
      assert.equal(got.byteLength, data.byteLength);
      assert.ok(Buffer.from(data).equals(got), 'same bytes in the same order');
      assert.equal(pair.client.state, 'closed');
      assert.equal(pair.client.fd, -1);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it("shutdown('write') gives the peer EOF after the queue, while we still read", () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const data = pattern(4 * 1024 * 1024, 5);
      pair.client.send(data);
      pair.client.shutdown('write');
      assert.throws(() => pair.client.send(data), /shut down for writing/);
      mux.add(pair.client);
      mux.add(pair.server);
      const got = readToEnd(mux, pair.server, 10_000);
      assert.ok(Buffer.from(data).equals(got));
      // The other direction still works.
      assert.equal(pair.server.send(Buffer.from('reply')), 'sent');
      pair.server.close();
      assert.equal(Buffer.from(readToEnd(mux, pair.client)).toString(), 'reply');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it("shutdown('read') makes receive answer closed at once", () => {
    const pair = connectedPair();
    try {
      pair.client.send(Buffer.from('unread'));
      pair.server.shutdown('read');
      assert.equal(pair.server.receive(new Uint8Array(8)).status, 'closed');
      assert.throws(() => pair.server.shutdown('sideways' as never), { code: 'ERR_INVALID_ARG_VALUE', message: /"how"/ });
    } finally {
      pair.close();
    }
  });

  it('after close, every operation throws SocketClosedError and never reaches libc; close twice is harmless', () => {
    const pair = connectedPair();
    const { client } = pair;
    client.close();
    client.close();
    client.destroy();
    assert.equal(client.fd, -1);
    assert.equal(client.state, 'closed');
    const closed = { name: 'SocketClosedError', code: 'ERR_SOCKET_CLOSED' };
    assert.throws(() => client.send(Buffer.from('x')), closed);
    assert.throws(() => client.receive(), closed);
    assert.throws(() => client.receiveInto(new Uint8Array(1)), closed);
    assert.throws(() => client.shutdown(), closed);
    assert.throws(() => client.blocking, closed);
    assert.throws(() => client.localAddress, closed);
    assert.throws(() => client.remoteAddress, closed);
    assert.equal(client.flush(), 0);
    pair.close();
  });

  it('toggles blocking mode (the original BLOCKING?)', () => {
    const pair = connectedPair();
    try {
      pair.server.blocking = true;
      assert.equal(pair.server.blocking, true);
      pair.client.send(Buffer.from('abc'));
      // Blocking recv returns as soon as bytes arrive; they were sent before, so this cannot hang.
      assert.equal(Buffer.from(pair.server.receive(new Uint8Array(3)).bytes).toString(), 'abc');
      pair.server.blocking = false;
      assert.equal(pair.server.blocking, false);
      assertNonBlockingCloexec(pair.server.fd);
      assert.throws(() => {
        pair.server.blocking = 1 as never;
      }, { code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      pair.close();
    }
  });

  it('reports local and remote addresses', () => {
    const pair = connectedPair();
    try {
      const listening = pair.listener.address as { address: string; port: number };
      assert.deepEqual(pair.client.remoteAddress, { family: 'IPv4', address: '127.0.0.1', port: listening.port });
      assert.deepEqual(pair.server.localAddress, { family: 'IPv4', address: '127.0.0.1', port: listening.port });
      assert.deepEqual(pair.server.remoteAddress, pair.client.localAddress);
    } finally {
      pair.close();
    }
  });

  it('sends only the first `length` bytes when asked, queued or not, and checks the length', () => {
    const pair = connectedPair({ sendQueueLimit: 1 << 24 });
    const mux = new Multiplexer();
    try {
      const data = Buffer.from('0123456789');
      assert.equal(pair.client.send(data, 4), 'sent');
      assert.equal(pair.client.send(data, 0), 'sent');
      pair.client.send(pattern(8 * 1024 * 1024, 6));
      assert.equal(pair.client.send(data, 3), 'queued', 'behind the big send');
      data.fill(0x78); // the queue took a copy of exactly 3 bytes
      pair.client.close();
      mux.add(pair.client, 0);
      mux.add(pair.server);
      const got = readToEnd(mux, pair.server, 10_000);
      assert.equal(got.subarray(0, 4).toString(), '0123');
      assert.equal(got.subarray(got.byteLength - 3).toString(), '012');
      assert.equal(got.byteLength, 4 + 8 * 1024 * 1024 + 3);
      for (const bad of [11, -1, 1.5, Number.NaN]) {
        assert.throws(() => pair.server.send(data, bad), { name: 'RangeError', message: /"length"/ }, String(bad));
      }
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('rejects bad buffers, naming the argument', () => {
    const pair = connectedPair();
    try {
      assert.throws(() => pair.client.send('text' as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"data"/ });
      assert.throws(() => pair.client.receive([] as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"into"/ });
      assert.throws(() => pair.client.receiveInto(new Uint8Array(0)), { name: 'RangeError', message: /into.byteLength/ });
      const detached = new Uint8Array(8);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      assert.throws(() => pair.client.send(detached), { code: 'ERR_INVALID_ARG_VALUE', message: /"data".*detached/ });
      assert.equal(pair.client.send(new Uint8Array(0)), 'sent', 'an empty send is a no-op');
      assert.throws(() => {
        pair.client.sendQueueLimit = 0;
      }, { name: 'RangeError', message: /sendQueueLimit/ });
    } finally {
      pair.close();
    }
  });

  it('sends from and receives into SharedArrayBuffer views, honouring byteOffset', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const out = new Uint8Array(new SharedArrayBuffer(16));
      out.set([1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(pair.client.send(out.subarray(2, 6)), 'sent');
      pair.client.shutdown('write');
      mux.add(pair.client, 0);
      const shared = new Uint8Array(new SharedArrayBuffer(32));
      const window = shared.subarray(5, 15);
      mux.add(pair.server);
      let n = 0;
      pumpUntil(mux, () => (n = pair.server.receiveInto(window)) !== 0);
      assert.equal(n, 4);
      assert.deepEqual([...shared.subarray(0, 12)], [0, 0, 0, 0, 0, 3, 4, 5, 6, 0, 0, 0]);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('send never raises SIGPIPE on a connection the peer has closed (MSG_NOSIGNAL)', () => {
    let sigpipes = 0;
    const onPipe = () => sigpipes++;
    process.on('SIGPIPE', onPipe);
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      lingerZero(pair.server);
      pair.server.destroy();
      mux.add(pair.client);
      const chunk = pattern(1024, 9);
      let status = 'sent';
      pumpUntil(mux, () => {
        status = pair.client.send(chunk);
        return status === 'closed';
      }, () => {}, "send's 'closed'");
      assert.ok(['EPIPE', 'ECONNRESET'].includes(pair.client.error?.code ?? ''), String(pair.client.error));
    } finally {
      mux.close();
      pair.close();
      process.off('SIGPIPE', onPipe);
    }
    assert.equal(sigpipes, 0);
  });

  it('a hung-up socket with interest 0 is reported once, not on every wait (no busy loop)', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      pair.server.send(Buffer.from('unread'));
      pair.server.shutdown('write');
      pair.client.shutdown('write');
      mux.add(pair.client, 0);
      let hangups = 0;
      for (let i = 0; i < 20; i++) for (const e of mux.wait(5)) if (e.hangup) hangups++;
      assert.equal(hangups, 1, 'one hangup report, then quiet');
      // Asking to read again brings the socket back: the unread bytes and then EOF.
      mux.modify(pair.client, 1 /* Interest.READABLE */);
      assert.equal(Buffer.from(readToEnd(mux, pair.client)).toString(), 'unread');
      assert.equal(mux.wait(10).length, 0, 'quiet again after EOF');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('a refused connection goes quiet once its error has been reported', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      lingerZero(pair.server);
      pair.server.destroy();
      mux.add(pair.client, 0);
      const seen: string[] = [];
      for (let i = 0; i < 20; i++) for (const e of mux.wait(5)) seen.push(`${e.hangup}/${e.error?.code}`);
      assert.ok(seen.length >= 1 && seen.length <= 2, `events: ${seen.join(', ')}`);
      assert.equal(pair.client.error?.code, 'ECONNRESET');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('adopts a stream socket fd with fromFd, and refuses anything else', () => {
    const pair = connectedPair();
    try {
      const fd = sys.fcntl(pair.client.fd, 1030 /* F_DUPFD_CLOEXEC */, 0);
      const adopted = Socket.fromFd(fd);
      assert.equal(adopted.send(Buffer.from('via dup')), 'sent');
      adopted.destroy();
      assert.throws(() => Socket.fromFd(-1), { name: 'RangeError', message: /"fd"/ });
      const notSocket = sys.open('/dev/null', 0, 0);
      try {
        assert.throws(() => Socket.fromFd(notSocket), (err: unknown) => err instanceof SocketError && err.code === 'ENOTSOCK');
      } finally {
        sys.close(notSocket);
      }
    } finally {
      pair.close();
    }
  });
});
