/**
 * Multiplexer: readiness, tokens, the queue flushing it does, and its own lifecycle.
 * Scenarios from mio (tests/registering.rs, regression mio#219) and CPython's test_selectors.
 *
 * One suite, every backend (CPython's BaseSelectorTestCase mixin): each test below runs once per
 * configuration of MUX_CONFIGS (every name in BACKEND_NAMES, and io_uring with ringSend), so a new
 * backend gets the whole suite by being listed there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Interest, Listener, Multiplexer, Socket, SocketClosedError, type MultiplexerEvent } from '../lib/index.ts';
import { seededRandom } from './helpers/random.ts';
import { fdFlags, trackFds } from './helpers/fd.ts';
import { sys } from '../ffi/syscall.ts';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { SIZEOF } from '../ffi/layouts.ts';
import { MUX_CONFIGS } from './helpers/backends.ts';
import { PollBackend } from '../lib/loop/backends/poll.ts';
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

for (const { label, backend, ringSend } of MUX_CONFIGS) describe(`Multiplexer (${label})`, () => {
  it('wait(0) with nothing registered returns [] at once', () => {
    const mux = new Multiplexer({ backend, ringSend });
    try {
      const start = performance.now();
      assert.deepEqual([...mux.wait(0)], []);
      assert.deepEqual([...mux.wait()], []);
      assert.ok(performance.now() - start < 50);
      if (mux.backend === 'epoll') {
        // epoll_create1 takes only EPOLL_CLOEXEC; the epoll fd is never read, so blocking is moot.
        assert.equal(fdFlags(mux.fd).cloexec, true);
      } else {
        assert.equal(mux.fd, -1, 'poll keeps no kernel object, and the io_uring ring fd is not for other loops: no fd to watch');
      }
    } finally {
      mux.close();
    }
  });

  it('rounds a fractional timeout up to a whole millisecond (never a busy 0)', () => {
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer<number>({ backend, ringSend });
    try {
      pairs.forEach((p, i) => mux.add(p.server, Interest.READABLE, i));
      pairs.forEach((p, i) => p.client.send(Buffer.from(`message ${i}`)));
      const got = new Map<number, string>();
      pumpUntil(mux, () => got.size === 12, (e) => {
        assert.ok(e.target instanceof Socket);
        const { bytes } = e.target.receive();
        got.set(e.data, Buffer.from(bytes).toString());
      });
      for (let i = 0; i < 12; i++) assert.equal(got.get(i), `message ${i}`);
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });

  it('no stall: one 8 KiB receive per read event still gets all of 1 MiB', () => {
    const pair = connectedPair();
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
    try {
      mux.add(pair.client, Interest.READABLE);
      const data = pattern(8 * 1024 * 1024, 2);
      const status = pair.client.send(data);
      assert.notEqual(status, 'sent');
      let drained = false;
      const reader = new Multiplexer({ backend, ringSend });
      reader.add(pair.server);
      const buffer = new Uint8Array(256 * 1024);
      let received = 0;
      const deadline = performance.now() + 10_000;
      while (!drained && performance.now() < deadline) {
        for (const e of mux.wait(0)) if (e.writable) drained = true;
        for (const e of reader.wait(1)) {
          assert.ok(e.target instanceof Socket);
          const n = e.target.receiveInto(buffer);
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
    const mux = new Multiplexer({ backend, ringSend });
    const port = listener.port;
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
    const port = listener.port;
    listener.close();
    const mux = new Multiplexer({ backend, ringSend });
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
    const mux = new Multiplexer({ backend, ringSend });
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

  it('a graceful close whose last flush meets a peer reset brings one error event, then the socket is closed', async () => {
    const pair = connectedPair();
    const mux = new Multiplexer({ backend, ringSend });
    try {
      mux.add(pair.client, 0, 'client');
      pair.client.send(pattern(16 * 1024 * 1024, 5));
      pumpUntil(mux, () => pair.client.queuedBytes > 0, () => {}, 'bytes the kernel could not take');
      pair.client.close(); // graceful: 'closing' until the queue drains, which it never will
      assert.equal(pair.client.state, 'closing');
      const closed = pair.client.whenClosed();
      sys.setsockopt(pair.server.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), SIZEOF.linger);
      pair.server.destroy(); // RST
      const events: ReturnType<typeof copy>[] = [];
      pumpUntil(mux, () => pair.client.state === 'closed', (e) => events.push(copy(e)), 'the close to end');
      for (let i = 0; i < 3; i++) for (const e of mux.wait(5)) events.push(copy(e));
      const errors = events.filter((e) => e.error !== null);
      assert.equal(errors.length, 1, `one error event: ${JSON.stringify(events.map((e) => ({ ...e, target: e.target === pair.client ? 'client' : '?', error: e.error?.message })))}`);
      assert.equal(errors[0].target, pair.client);
      assert.equal(errors[0].data, 'client', 'the event carries the data the socket was added with');
      // The same on every backend (epoll has EPOLLHUP with it; the ring's failed send, nothing).
      assert.equal(errors[0].hangup, true, 'the connection is gone: hangup');
      const err = errors[0].error as Error & { code: string; unsentBytes?: number };
      assert.equal(err, pair.client.error);
      assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code), err.message);
      assert.ok((err.unsentBytes ?? 0) > 0, 'how much was lost is said');
      assert.equal(mux.size, 0);
      await closed;
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('rejects bad targets and interests, naming the argument', () => {
    const mux = new Multiplexer({ backend, ringSend });
    const pair = connectedPair();
    const other = new Multiplexer({ backend, ringSend });
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
      assert.throws(() => new Multiplexer({ backend, maxEvents: 0 }), /options.maxEvents/);
    } finally {
      other.close();
      mux.close();
      pair.close();
    }
  });

  it('closing with sockets inside is safe: they stay usable; closing sockets are finished', () => {
    const pair = connectedPair();
    const mux = new Multiplexer({ backend, ringSend });
    mux.add(pair.client);
    mux.add(pair.server);
    // More than the kernel buffers and an io_uring's receive buffers (4 MiB) can hold between
    // them: ringSend sends a full queue at once, and this multiplexer's ring receives for the server.
    pair.client.send(pattern(32 * 1024 * 1024, 8));
    pair.client.close();
    assert.equal(pair.client.state, 'closing');
    mux.close();
    mux.close();
    assert.equal(mux.closed, true);
    assert.throws(() => mux.wait(0), { code: 'ERR_SOCKET_CLOSED' });
    assert.throws(() => mux.add(pair.server), { code: 'ERR_SOCKET_CLOSED' });
    assert.equal(pair.client.state, 'closed', 'a closing socket cannot be driven any more: closed');
    assert.equal(pair.server.state, 'open');
    const again = new Multiplexer({ backend, ringSend });
    again.add(pair.server);
    again.close();
    pair.close();
  });
  it('maxEvents caps one wait; the rest are reported by the next waits, none starved', () => {
    const pairs = Array.from({ length: 10 }, () => connectedPair());
    const mux = new Multiplexer<number>({ backend, ringSend, maxEvents: 4 });
    try {
      pairs.forEach((p, i) => mux.add(p.server, Interest.READABLE, i));
      for (const p of pairs) p.client.send(Buffer.from('unread'));
      // Nothing is read, so all 10 stay ready (level-triggered); the cap must rotate through them.
      const seen = new Set<number>();
      let waits = 0;
      const deadline = performance.now() + 5000;
      while (seen.size < 10 && performance.now() < deadline) {
        const events = mux.wait(10);
        if (events.length === 0) continue;
        waits++;
        assert.ok(events.length <= 4, `${events.length} events in one wait with maxEvents 4`);
        for (const e of events) seen.add(e.data);
      }
      assert.equal(seen.size, 10, 'every ready socket was reported');
      assert.ok(waits <= 10, `all 10 seen within ${waits} waits (a starved socket would never be)`);
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });

  it('200 sockets, half removed in random order: waits report exactly the others, with their data', () => {
    const { sockets, close } = manySockets(100);
    const mux = new Multiplexer({ backend, ringSend });
    try {
      sockets.forEach((s, i) => mux.add(s, Interest.READABLE, i));
      // Each end sends one byte to the other: all 200 become readable and stay so (never read).
      // With ringSend the bytes go with the next wait's submission (a socket removed before it keeps them queued).
      for (const s of sockets) assert.equal(s.send(Buffer.from('x')), mux.ringSend ? 'queued' : 'sent');
      if (mux.ringSend) {
        mux.wait(0);
        assert.ok(sockets.every((s) => s.queuedBytes === 0), 'the ring sent every byte');
      }
      const random = seededRandom(5);
      const order = sockets.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      const removed = new Set(order.slice(0, 100));
      // Remove the first half in two batches with a wait between, so that some removals happen
      // while their sockets are ready (and, for poll, while entries move around the array).
      for (const i of order.slice(0, 50)) mux.remove(sockets[i]);
      mux.wait(0);
      for (const i of order.slice(50, 100)) mux.remove(sockets[i]);
      assert.equal(mux.size, 100);
      const seen = new Set<number>();
      pumpUntil(mux, () => seen.size === 100, (e) => {
        const index = e.data as number;
        assert.equal(e.target, sockets[index], 'the event carries its own target\'s data');
        assert.ok(!removed.has(index), `removed socket ${index} was reported`);
        seen.add(index);
      }, 'the 100 remaining sockets');
      // And again: a later wait still reports only those.
      for (const e of mux.wait(0)) assert.ok(!removed.has(e.data as number));
      // Put the removed ones back under new data: their slots are reused, with new tokens.
      for (const i of removed) mux.add(sockets[i], Interest.READABLE, `again ${i}`);
      const back = new Set<number>();
      pumpUntil(mux, () => back.size === 100, (e) => {
        if (typeof e.data !== 'string') return;
        const index = Number(e.data.slice(6));
        assert.equal(e.target, sockets[index]);
        back.add(index);
      }, 'the re-added sockets');
    } finally {
      mux.close();
      close();
    }
  });

  it('a socket not watched for reading is not told of the peer\'s FIN (io_uring adds POLLRDHUP to every poll)', () => {
    const { client, server, close } = connectedPair();
    const mux = new Multiplexer({ backend, ringSend });
    try {
      mux.add(server, Interest.WRITABLE);
      client.shutdown('write');
      // Reading may be paused (a full send queue) for long: the FIN must wait for it, as on epoll.
      let events = 0;
      pumpUntil(mux, () => events >= 5, (e) => {
        events++;
        assert.equal(e.target, server);
        assert.equal(e.writable, true);
        assert.equal(e.hangup, false, 'a hangup reported to a socket not watched for reading');
        assert.equal(e.readable, false);
      }, 'writable events');
      // Watched for reading again: the end comes, with the hangup.
      mux.modify(server, Interest.READABLE);
      let ended = false;
      pumpUntil(mux, () => ended, (e) => {
        if (e.target === server && e.readable) ended = server.receive().status === 'closed';
      }, 'the end');
    } finally {
      mux.close();
      close();
    }
  });

  it('a removed, then closed socket never wakes a wait (no stale kernel-side entry)', () => {
    const pairs = Array.from({ length: 4 }, () => connectedPair());
    const mux = new Multiplexer({ backend, ringSend });
    try {
      for (const p of pairs) {
        mux.add(p.server);
        mux.add(p.client);
      }
      // Remove from the middle (poll moves its last entry into the hole), then close the socket
      // (it is in no multiplexer any more) while it has unread data. A stale entry would make
      // poll answer POLLNVAL at once, every time; epoll drops closed fds by itself.
      pairs[1].client.send(Buffer.from('pending'));
      for (const s of [pairs[1].server, pairs[0].client, pairs[1].client, pairs[0].server]) mux.remove(s);
      pairs[1].close();
      pairs[0].close();
      const start = performance.now();
      assert.deepEqual([...mux.wait(60)].map(copy), []);
      assert.ok(performance.now() - start >= 45, 'the wait slept: nothing was ready in the kernel set');
      assert.equal(mux.size, 4);
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });
});


/** A poll-only look inside: the pollfd array itself, through the backend's own interface. */
describe('PollBackend', () => {
  it('keeps its pollfd array dense: random removes leave exactly the other entries, with their tokens', () => {
    const { sockets, close } = manySockets(20);
    const poll = new PollBackend(256);
    try {
      // 40 entries: the array grows from 16 by doubling on the way.
      sockets.forEach((s, slot) => poll.add(s.fd, slot, slot * 7, 1));
      for (const s of sockets) s.send(Buffer.from('x'));
      const random = seededRandom(9);
      const kept = new Set(sockets.map((_, slot) => slot));
      while (kept.size > 20) {
        const slot = [...kept][Math.floor(random() * kept.size)];
        poll.remove(sockets[slot].fd, slot);
        kept.delete(slot);
      }
      assert.equal(poll.size, 20);
      const reported = new Map<number, number>();
      const deadline = performance.now() + 5000;
      while (reported.size < 20 && performance.now() < deadline) {
        const n = poll.wait(10);
        for (let i = 0; i < n; i++) reported.set(poll.slotAt(i), poll.generationAt(i));
      }
      assert.deepEqual([...reported.keys()].sort((a, b) => a - b), [...kept].sort((a, b) => a - b));
      for (const [slot, generation] of reported) assert.equal(generation, slot * 7);
      // Misuse is caught instead of corrupting the array.
      const gone = sockets.findIndex((_, slot) => !kept.has(slot));
      assert.throws(() => poll.remove(sockets[gone].fd, gone), /not watched/);
      const here = [...kept][0];
      assert.throws(() => poll.add(sockets[here].fd, here, 0, 1), /already watched/);
      assert.throws(() => poll.modify(sockets[here].fd + 1000, here, 0, 1), /not watched/);
      // Emptied completely, it reports nothing and sleeps the whole timeout.
      for (const slot of kept) poll.remove(sockets[slot].fd, slot);
      assert.equal(poll.size, 0);
      const start = performance.now();
      assert.equal(poll.wait(30), 0);
      assert.ok(performance.now() - start >= 20);
    } finally {
      poll.close();
      close();
    }
  });

  it('a wait copies its events: removing entries while reading them does not change them', () => {
    const { sockets, close } = manySockets(4);
    const poll = new PollBackend(256);
    try {
      sockets.forEach((s, slot) => poll.add(s.fd, slot, 100 + slot, 1));
      for (const s of sockets) s.send(Buffer.from('x'));
      let n = 0;
      const deadline = performance.now() + 5000;
      while (n < 8 && performance.now() < deadline) n = poll.wait(10);
      assert.equal(n, 8);
      const before = Array.from({ length: n }, (_, i) => [poll.slotAt(i), poll.generationAt(i), poll.bitsAt(i)]);
      poll.remove(sockets[0].fd, 0); // moves the last entry to index 0
      poll.remove(sockets[3].fd, 3);
      const afterwards = Array.from({ length: n }, (_, i) => [poll.slotAt(i), poll.generationAt(i), poll.bitsAt(i)]);
      assert.deepEqual(afterwards, before);
    } finally {
      poll.close();
      close();
    }
  });
});

/** `2 * count` connected sockets (both ends of `count` connections made through one listener). */
function manySockets(count: number): { sockets: Socket[]; close(): void } {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
  const port = listener.port;
  const clients: Socket[] = [];
  const servers: Socket[] = [];
  const mux = new Multiplexer();
  const close = () => {
    for (const s of [...clients, ...servers]) s.destroy();
    listener.close();
  };
  try {
    mux.add(listener);
    for (let i = 0; i < count; i++) {
      const client = Socket.connect({ host: '127.0.0.1', port });
      clients.push(client);
      mux.add(client, 0);
    }
    pumpUntil(mux, () => servers.length === count && clients.every((c) => c.state === 'open'), (e) => {
      if (e.target !== listener) return;
      let s;
      while ((s = listener.accept())) servers.push(s);
    }, `${count} connections`);
    listener.close();
    const sockets: Socket[] = [];
    for (let i = 0; i < count; i++) sockets.push(clients[i], servers[i]);
    return { sockets, close };
  } catch (err) {
    close();
    throw err;
  } finally {
    mux.close();
  }
}

