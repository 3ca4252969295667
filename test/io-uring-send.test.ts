/**
 * io_uring's completion-based send (`ringSend`): TCP sockets watched by an io_uring multiplexer
 * made with `ringSend: true` never call send(2); `send()` queues the bytes ('queued') and the ring
 * sends the head of the queue with the next io_uring_enter (the next wait, a Reactor's settle, or
 * a microtask outside a Reactor's turn). What must hold: every byte goes once and in order, through
 * refusals ('not-sent'), removal, a move to another multiplexer, the multiplexer's close, a graceful
 * close, a shutdown, a file range behind the bytes, a Duplex and the promise API; a destroy cancels
 * the send in flight and really closes the fd; a reset ends the stream with an error from 'send';
 * a drain is reported writable only when someone waits for it; Unix sockets keep sending by send(2).
 *
 * Where io_uring is missing (qemu-user), every multiplexer falls back to epoll, where ringSend is
 * off: the same programs run there and must hold, and the answers that differ say so.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  closeGracefully, Interest, Listener, Multiplexer, pipeSockets, Reactor, Socket, toStream,
  type MultiplexerEvent, type SendStatus, type SocketError,
} from '../lib/index.ts';
import { ERRNO } from '../ffi/errno.ts';
import { injectFaults, type FaultInjection } from '../ffi/faults.ts';
import { fdTarget, trackFds } from './helpers/fd.ts';
import { EMULATOR } from './helpers/platform.ts';
import { seededRandom } from './helpers/random.ts';
import { connectedPair, pattern, pumpUntil, type Pair } from './helpers/sockets.ts';

/** Whether this kernel runs io_uring with DEFER_TASKRUN (qemu-user has no io_uring: epoll runs, without ringSend). */
const ringSend = (() => {
  const mux = new Multiplexer({ backend: 'io_uring', ringSend: true });
  try {
    return mux.ringSend;
  } finally {
    mux.close();
  }
})();

const MiB = 1024 * 1024;
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const SCRATCH = new Uint8Array(256 * 1024);

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = mkdtempSync('/tmp/m-socket-ringsend-');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

/** A ringSend multiplexer (on the fallback: epoll). */
const ringMux = () => new Multiplexer({ backend: 'io_uring', ringSend: true });

/** Every send(2) fails with EIO while a ring sends (so a test passes only if none is made); on the fallback they are let through and counted. */
const noSendSyscalls = (): FaultInjection => injectFaults((call) => (call.name === 'send' && ringSend ? { errno: ERRNO.EIO } : null), ['send']);

/** After a run under `noSendSyscalls`: none was made on a ring; the fallback sends by send(2). */
function assertSendSyscalls(faults: FaultInjection): void {
  if (ringSend) assert.equal(faults.count('send'), 0, 'no send(2) was made: the ring sent every byte');
  else assert.ok(faults.count('send') > 0, 'the epoll fallback sends by send(2)');
}

/** Reads what `socket` holds now into `chunks` (bounded); true at the end of the stream. */
function drain(socket: Socket, chunks: Uint8Array[]): boolean {
  for (let i = 0; i < 512; i++) {
    const n = socket.receiveInto(SCRATCH);
    if (n < 0) return true;
    if (n === 0) return false;
    chunks.push(SCRATCH.slice(0, n));
  }
  return false;
}

const total = (chunks: readonly Uint8Array[]) => chunks.reduce((sum, c) => sum + c.byteLength, 0);

/**
 * Reads `server` (not in any multiplexer) to its end, running `pump` between reads (the sender's
 * multiplexer); throws after `timeoutMs`.
 */
function receiveToEnd(server: Socket, pump: () => void, what: string, timeoutMs = 15_000): Buffer {
  const chunks: Uint8Array[] = [];
  const deadline = performance.now() + timeoutMs;
  while (!drain(server, chunks)) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${total(chunks)} bytes so far)`);
    pump();
  }
  return Buffer.concat(chunks);
}

/** A pump that runs `mux` (if any) and sleeps a little on `sleeper` (an epoll multiplexer watching the reader). */
const pumpOf = (mux: Multiplexer | null, sleeper: Multiplexer) => () => {
  if (mux !== null && !mux.closed) mux.wait(0);
  sleeper.wait(2);
};

/**
 * Pumps `mux` until `socket`'s queue stops moving (5 waits in a row without change): the peer
 * is not reading and the kernel buffers are full, so a ring's send waits in the kernel (in flight).
 * Returns the bytes still queued (> 0).
 */
function untilStuck(mux: Multiplexer, socket: Socket, what: string): number {
  const deadline = performance.now() + 5000;
  let last = -1;
  let same = 0;
  while (same < 5) {
    if (performance.now() > deadline) throw new Error(`${what}: the queue never stopped moving (${socket.queuedBytes} bytes queued)`);
    mux.wait(2);
    const now = socket.queuedBytes;
    same = now === last ? same + 1 : 0;
    last = now;
  }
  assert.ok(last > 0, `${what}: the kernel buffers took everything; nothing is left in flight`);
  return last;
}

/** A timeout for a promise (no timing assertion: a bound that names what never came). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

let files = 0;
/** A file holding `bytes`, opened read-only; closed by the caller. */
function fileOf(bytes: Uint8Array): number {
  const path = `${dir}/f${++files}`;
  writeFileSync(path, bytes);
  return openSync(path, 'r');
}

describe('io_uring completion-based send (ringSend)', () => {
  it('says whether it runs: only on io_uring with ringSend: true (off by default, on epoll and poll); a non-boolean throws', () => {
    for (const backend of ['epoll', 'poll'] as const) {
      using mux = new Multiplexer({ backend, ringSend: true });
      assert.equal(mux.ringSend, false, backend);
    }
    using byDefault = new Multiplexer({ backend: 'io_uring' });
    assert.equal(byDefault.ringSend, false, 'off by default');
    using off = new Multiplexer({ backend: 'io_uring', ringSend: false });
    assert.equal(off.ringSend, false);
    using on = ringMux();
    // This machine's kernel (Linux 6.18) has it; under qemu-user io_uring falls back to epoll.
    assert.equal(on.ringSend, EMULATOR === null && on.backend === 'io_uring');
    assert.equal(ringSend, on.ringSend);
    using reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
    assert.equal(reactor.multiplexer.ringSend, ringSend);
    using plainReactor = new Reactor({ backend: 'io_uring', _promptWake: false });
    assert.equal(plainReactor.multiplexer.ringSend, false);
    const closed = ringMux();
    closed.close();
    assert.equal(closed.ringSend, false, 'a closed multiplexer sends nothing');
    for (const make of [
      () => new Multiplexer({ backend: 'io_uring', ringSend: 1 as unknown as boolean }),
      () => new Multiplexer({ ringSend: 'yes' as unknown as boolean }),
      () => new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: null as unknown as boolean }),
    ]) {
      assert.throws(make, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INVALID_ARG_TYPE');
        assert.match(err.message, /options\.ringSend/);
        return true;
      });
    }
  });

  describe('on a ring (or on its fallback)', () => {
    it('send() only queues (no send(2)): \'queued\' each time, \'sent\' when empty; the next wait sends them, in order; a Unix socket still sends by itself', () => {
      const pair = connectedPair();
      const [a, b] = Socket.pair();
      const mux = ringMux();
      try {
        mux.add(pair.client);
        mux.add(a);
        const parts = [pattern(10, 1), pattern(20_000, 2), pattern(5, 3), pattern(40_000, 4)];
        {
          using faults = noSendSyscalls();
          assert.equal(pair.client.send(new Uint8Array(0)), 'sent', 'an empty send');
          let queued = 0;
          for (const part of parts) {
            // From a buffer the caller reuses at once: send() took a copy.
            const reused = part.slice();
            const status = pair.client.send(reused);
            reused.fill(0);
            queued += part.byteLength;
            if (ringSend) {
              assert.equal(status, 'queued');
              assert.equal(pair.client.queuedBytes, queued, 'the bytes wait in the queue until the ring sends them');
            } else assert.equal(status, 'sent', 'epoll: send(2) at once');
          }
          // Sent with the next wait; the bytes leave the queue when the completions say they went.
          pumpUntil(mux, () => pair.client.queuedBytes === 0, () => {}, 'the queue to drain');
          assertSendSyscalls(faults);
        }
        // A Unix socket may carry fds, which a ring send cannot: send(2) as on epoll.
        assert.equal(a.send(Buffer.from('unix')), 'sent');
        assert.equal(a.queuedBytes, 0);
        assert.equal(Buffer.from(b.receive().bytes).toString(), 'unix');
        pair.client.shutdown('write');
        const got = receiveToEnd(pair.server, () => mux.wait(2), 'the bytes and the end');
        assert.equal(sha(got), sha(Buffer.concat(parts)));
        assert.equal(pair.client.error, null);
      } finally {
        mux.close();
        pair.close();
        a.destroy();
        b.destroy();
      }
    });

    it('8 MiB in random-sized sends through mux.wait loops (with and without ringReceive): intact and in order, no send(2); refusals end in writable events', () => {
      for (const ringReceive of [true, false]) eightMiB(ringReceive);
    });

    function eightMiB(ringReceive: boolean): void {
      const pair = connectedPair();
      const mux = new Multiplexer({ backend: 'io_uring', ringSend: true, ringReceive });
      const reader = new Multiplexer();
      try {
        assert.equal(mux.ringReceive, ringReceive && ringSend);
        mux.add(pair.client); // READABLE only: the writable events come because sends were refused
        reader.add(pair.server);
        const data = pattern(8 * MiB, 17);
        const random = seededRandom(4242);
        const statuses = new Map<SendStatus, number>();
        const got: Uint8Array[] = [];
        let offset = 0;
        /** Whether someone waits for the drain: a refusal, a full queue, a shutdown with bytes queued. */
        let awaited = false;
        let writables = 0;
        let ended = false;
        const push = () => {
          while (offset < data.byteLength) {
            const size = Math.min(data.byteLength - offset, 1 + Math.floor(random() * (random() < 0.5 ? 2000 : 300_000)));
            const status = pair.client.send(data.subarray(offset, offset + size));
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            assert.notEqual(status, 'closed', String(pair.client.error));
            if (status === 'not-sent') {
              awaited = true;
              return;
            }
            offset += size;
            awaited ||= pair.client.sendQueueFull;
          }
          pair.client.shutdown('write');
          awaited ||= pair.client.queuedBytes > 0;
          offset++; // once
        };
        using faults = noSendSyscalls();
        push();
        pumpUntil(mux, () => {
          for (const event of reader.wait(0)) if (event.readable || event.hangup) ended ||= drain(pair.server, got);
          return ended;
        }, (event) => {
          if (event.target !== pair.client) return;
          assert.equal(event.error, null);
          if (event.writable) {
            writables++;
            // (epoll reports every drain its flush completes; a ring only those awaited.)
            if (ringSend) assert.ok(awaited, 'writable only when a drain was awaited (the interest is READABLE)');
            awaited = false;
            if (offset < data.byteLength) push();
          }
        }, 'the 8 MiB and the end', 30_000);
        assertSendSyscalls(faults);
        assert.equal(sha(Buffer.concat(got)), sha(data));
        assert.ok((statuses.get('not-sent') ?? 0) > 0 && writables > 0, 'the queue filled up, and its drain was reported');
        if (ringSend) assert.deepEqual([...statuses.keys()].sort(), ['not-sent', 'queued'], 'a ring only queues');
      } finally {
        reader.close();
        mux.close();
        pair.close();
      }
    }

    it('a peer that does not read: sends are refused (\'not-sent\'); once it reads, the drain is reported writable (interest READABLE) and sends are taken again', () => {
      const pair = connectedPair();
      const mux = ringMux();
      try {
        mux.add(pair.client, Interest.READABLE);
        const chunk = pattern(256 * 1024, 5);
        const sent: Uint8Array[] = [];
        let stalls = 0;
        let lastQueued = -1;
        let refusals = 0;
        const onEvent = (event: MultiplexerEvent) => {
          assert.equal(event.error, null);
          if (event.writable) assert.equal(pair.client.sendQueueFull, false, 'writable is reported only once the queue is below its cap');
        };
        // Fill the kernel buffers and the queue, until refusals no longer move anything.
        for (let i = 0; i < 2000 && stalls < 10; i++) {
          const status = pair.client.send(chunk);
          assert.notEqual(status, 'closed');
          if (status === 'not-sent') {
            refusals++;
            stalls = pair.client.queuedBytes === lastQueued ? stalls + 1 : 0;
            lastQueued = pair.client.queuedBytes;
          } else sent.push(chunk);
          for (const event of mux.wait(1)) if (event.target === pair.client) onEvent(event);
        }
        assert.equal(stalls, 10, 'the kernel buffers and the queue filled up');
        assert.ok(refusals > 0);
        assert.equal(pair.client.sendQueueFull, true);
        assert.equal(pair.client.send(chunk), 'not-sent');
        // The peer reads: the queue drains, and that is reported although the interest is READABLE.
        const got: Uint8Array[] = [];
        let writable = false;
        pumpUntil(mux, () => (drain(pair.server, got), writable), (event) => {
          if (event.target !== pair.client) return;
          onEvent(event);
          writable ||= event.writable;
        }, 'the writable event after the drain');
        const status = pair.client.send(chunk);
        if (ringSend) assert.equal(status, 'queued', 'taken again');
        else assert.notEqual(status, 'not-sent', 'taken again');
        sent.push(chunk);
        pair.client.shutdown('write');
        const rest = receiveToEnd(pair.server, () => mux.wait(2), 'the rest and the end');
        assert.equal(sha(Buffer.concat([...got, rest])), sha(Buffer.concat(sent)));
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('an ordinary drain is not reported (interest READABLE); with WRITABLE in the interest it is', () => {
      const pair = connectedPair();
      const mux = ringMux();
      try {
        mux.add(pair.client, Interest.READABLE);
        const data = pattern(30_000, 6);
        for (let i = 0; i < 10; i++) assert.equal(pair.client.send(data.subarray(i * 3000, (i + 1) * 3000)), ringSend ? 'queued' : 'sent');
        const got: Uint8Array[] = [];
        let writables = 0;
        let waits = 0;
        // Until the peer has everything, and then 5 waits more.
        pumpUntil(mux, () => {
          drain(pair.server, got);
          if (total(got) === data.byteLength && pair.client.queuedBytes === 0) waits++;
          return waits > 5;
        }, (event) => {
          if (event.target === pair.client && event.writable) writables++;
        }, 'the bytes');
        assert.equal(writables, 0, 'nobody waited for this drain: no writable event');
        assert.equal(sha(Buffer.concat(got)), sha(data));
        mux.modify(pair.client, Interest.READABLE | Interest.WRITABLE);
        let writable = false;
        pumpUntil(mux, () => writable, (event) => (writable ||= event.target === pair.client && event.writable), 'writable with WRITABLE interest');
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('a connecting socket: its sends wait for the connection, then the ring sends them', () => {
      const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
      const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
      const mux = ringMux();
      const accept = new Multiplexer();
      const accepted: { socket: Socket | null } = { socket: null };
      try {
        mux.add(client);
        accept.add(listener);
        const data = pattern(300_000, 7);
        if (client.state === 'connecting') assert.equal(client.send(data), 'queued');
        else assert.notEqual(client.send(data), 'not-sent');
        pumpUntil(mux, () => {
          for (const event of accept.wait(0)) if (event.target === listener) accepted.socket ??= listener.accept();
          return accepted.socket !== null && client.state === 'open' && client.queuedBytes === 0;
        }, () => {}, 'the connection and the flush');
        client.shutdown('write');
        const got = receiveToEnd(accepted.socket!, () => mux.wait(2), 'the bytes and the end');
        assert.equal(sha(got), sha(data));
      } finally {
        mux.close();
        accept.close();
        client.destroy();
        accepted.socket?.destroy();
        listener.close();
      }
    });

    it('destroy() with a send in flight: the send is cancelled and the fd really closed (the peer sees the end), no fd leaked; the multiplexer goes on', () => {
      const tracked = trackFds();
      const pair = connectedPair();
      const second = connectedPair();
      const mux = ringMux();
      const reader = new Multiplexer();
      try {
        mux.add(pair.client);
        reader.add(pair.server);
        const data = pattern(24 * MiB, 8);
        assert.equal(pair.client.send(data), ringSend ? 'queued' : 'partial');
        untilStuck(mux, pair.client, 'the client');
        const fd = pair.client.fd;
        assert.equal(fdTarget(fd)?.startsWith('socket:'), true);
        pair.client.destroy();
        assert.equal(pair.client.state, 'closed');
        assert.equal(fdTarget(fd), null, 'the fd is closed');
        // If the ring still held the socket, the peer would never see its end.
        const got = receiveToEnd(pair.server, pumpOf(mux, reader), 'the end after the destroy');
        assert.ok(got.byteLength > 0 && got.byteLength < data.byteLength, `a part went: ${got.byteLength}`);
        assert.equal(sha(got), sha(data.subarray(0, got.byteLength)), 'what went is a prefix, in order');
        // The multiplexer still sends for its other sockets.
        mux.add(second.client);
        const more = pattern(100_000, 9);
        const status = second.client.send(more);
        if (ringSend) assert.equal(status, 'queued');
        else assert.notEqual(status, 'not-sent');
        second.client.shutdown('write');
        assert.equal(sha(receiveToEnd(second.server, () => mux.wait(2), 'the second stream')), sha(more));
      } finally {
        reader.close();
        mux.close();
        pair.close();
        second.close();
      }
      tracked.assertNoLeak('an fd left open by the destroy with a send in flight');
    });

    it('remove() with a send in flight: queuedBytes is exact afterwards; an epoll multiplexer, or flush(), sends the rest: every byte once, in order', () => {
      for (const then of ['epoll', 'flush'] as const) {
        const pair = connectedPair({ sendQueueLimit: 64 * MiB });
        const mux = ringMux();
        const epoll = new Multiplexer();
        const reader = new Multiplexer();
        try {
          mux.add(pair.client);
          reader.add(pair.server);
          const parts = [pattern(3 * MiB, 10), pattern(100, 11), pattern(6 * MiB, 12), pattern(5000, 13), pattern(3 * MiB, 14)];
          for (const part of parts) assert.notEqual(pair.client.send(part), 'not-sent');
          untilStuck(mux, pair.client, then);
          // Let the peer take some, and the ring a little more, then leave with a send in flight.
          const got: Uint8Array[] = [];
          for (let i = 0; i < 1000 && total(got) < MiB; i++) {
            drain(pair.server, got);
            mux.wait(1);
          }
          assert.ok(total(got) >= MiB, 'the peer read');
          untilStuck(mux, pair.client, `${then}, again`);
          mux.remove(pair.client);
          const queued = pair.client.queuedBytes;
          assert.ok(queued > 0, 'bytes are left');
          // Exact: the peer will get exactly the bytes that are not queued any more, then the queue.
          if (then === 'epoll') {
            epoll.add(pair.client, Interest.READABLE);
            pumpUntil(epoll, () => (drain(pair.server, got), pair.client.queuedBytes === 0), () => {}, 'the rest through epoll', 15_000);
          } else {
            const deadline = performance.now() + 15_000;
            while (pair.client.flush() > 0) {
              assert.ok(performance.now() < deadline, 'flush() never sent the rest');
              drain(pair.server, got);
              reader.wait(1);
            }
          }
          assert.equal(pair.client.error, null);
          pair.client.shutdown('write');
          const rest = receiveToEnd(pair.server, pumpOf(epoll, reader), `the end (${then})`);
          assert.equal(sha(Buffer.concat([...got, rest])), sha(Buffer.concat(parts)), `${then}: every byte once, in order`);
        } finally {
          reader.close();
          epoll.close();
          mux.close();
          pair.close();
        }
      }
    });

    it('close() with a queue: the ring sends all of it, then the FIN; the socket ends closed (no send(2))', () => {
      const pair = connectedPair({ sendQueueLimit: 16 * MiB });
      const mux = ringMux();
      try {
        mux.add(pair.client);
        const data = pattern(6 * MiB, 15);
        using faults = noSendSyscalls();
        for (let i = 0; i < 6; i++) assert.notEqual(pair.client.send(data.subarray(i * MiB, (i + 1) * MiB)), 'not-sent');
        pair.client.close();
        assert.ok(pair.client.state === 'closing' || pair.client.state === 'closed');
        const got = receiveToEnd(pair.server, () => mux.wait(2), 'the bytes and the end');
        assert.equal(sha(got), sha(data));
        pumpUntil(mux, () => pair.client.state === 'closed', () => {}, 'the close');
        assert.equal(pair.client.error, null);
        assertSendSyscalls(faults);
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('multiplexer close() with sends in flight: a closing socket gets a last flush (what it cannot send is reported exactly, and its peer reset), the other keeps its exact queue for the next multiplexer', () => {
      const closing = connectedPair({ sendQueueLimit: 64 * MiB });
      const staying = connectedPair({ sendQueueLimit: 64 * MiB });
      const fits = connectedPair();
      const mux = ringMux();
      const epoll = new Multiplexer();
      const reader = new Multiplexer();
      try {
        const big = [pattern(24 * MiB, 16), pattern(24 * MiB, 17)];
        [closing, staying].forEach((p, i) => {
          mux.add(p.client);
          assert.notEqual(p.client.send(big[i]), 'not-sent');
        });
        untilStuck(mux, closing.client, 'closing');
        untilStuck(mux, staying.client, 'staying');
        // A third, closing, whose queue fits in the kernel buffers: its sends are still only listed.
        mux.add(fits.client);
        const small = pattern(30_000, 18);
        assert.equal(fits.client.send(small), ringSend ? 'queued' : 'sent');
        closing.client.close();
        fits.client.close();
        mux.close();

        // The closing socket: its last flush could not send everything, and says how much was lost.
        assert.equal(closing.client.state, 'closed');
        const lost = closing.client.error as (SocketError & { unsentBytes?: number }) | null;
        assert.ok(lost !== null, 'the bytes that could not go are reported');
        assert.equal(lost.code, 'ECANCELED');
        assert.ok(typeof lost.unsentBytes === 'number' && lost.unsentBytes > 0, `unsentBytes: ${lost.unsentBytes}`);
        reader.add(closing.server);
        const went = receiveToEnd(closing.server, () => reader.wait(2), 'the closing stream\'s end');
        // The cut stream resets the peer (not a FIN that would pass it off as whole), which also
        // drops what the kernel had taken but not delivered: the peer gets a prefix, then the reset.
        assert.ok(went.byteLength <= big[0].byteLength - lost.unsentBytes, 'no byte reported lost went');
        assert.equal(sha(went), sha(big[0].subarray(0, went.byteLength)));
        assert.equal(closing.server.error?.code, 'ECONNRESET', 'the peer learns that the stream was cut');
        reader.remove(closing.server);

        // The one whose queue fitted: all of it went, then the end.
        assert.equal(fits.client.state, 'closed');
        assert.equal(fits.client.error, null);
        assert.equal(sha(receiveToEnd(fits.server, () => reader.wait(2), 'the small stream')), sha(small));

        // The one staying open: an exact queue, sent by epoll.
        assert.equal(staying.client.state, 'open');
        assert.equal(staying.client.error, null);
        assert.ok(staying.client.queuedBytes > 0);
        epoll.add(staying.client);
        reader.add(staying.server);
        const got: Uint8Array[] = [];
        pumpUntil(epoll, () => (drain(staying.server, got), staying.client.queuedBytes === 0), () => {}, 'the staying queue', 15_000);
        staying.client.shutdown('write');
        const rest = receiveToEnd(staying.server, pumpOf(epoll, reader), 'the staying stream\'s end');
        assert.equal(sha(Buffer.concat([...got, rest])), sha(big[1]), 'every byte once, in order');
      } finally {
        reader.close();
        epoll.close();
        mux.close();
        for (const p of [closing, staying, fits]) p.close();
      }
    });

    // [what, the sends]: two that share the queue's first block; then sends that fill several
    // blocks (one ring send per block, so the close must go round until the queue is empty).
    for (const [what, sizes] of [
      ['sends, before any wait: they go (as send(2) would have taken them), the socket keeps nothing queued', [1000, 2000]],
      ['sends that fill several blocks of the queue: they all go, in order', [1000, 20_000, 20_000, 20_000]],
    ] as const) {
      it(`multiplexer close() right after ${what}`, () => {
        const pair = connectedPair();
        const mux = ringMux();
        try {
          mux.add(pair.client);
          const total = sizes.reduce((a, b) => a + b, 0);
          const data = pattern(total, 11 + sizes.length);
          let at = 0;
          for (const size of sizes) {
            assert.equal(pair.client.send(data.subarray(at, at + size)), ringSend ? 'queued' : 'sent');
            at += size;
          }
          if (ringSend) assert.equal(pair.client.queuedBytes, total, 'nothing submitted before the close');
          mux.close();
          assert.equal(pair.client.queuedBytes, 0);
          assert.equal(pair.client.error, null);
          pair.client.shutdown('write');
          const got = receiveToEnd(pair.server, () => {}, 'the bytes sent before the close');
          assert.equal(sha(got), sha(data));
        } finally {
          mux.close();
          pair.close();
        }
      });
    }

    it('a blocking wait(-1) whose send completes short submits the rest in that same wait (it slept with it unsent: found by the bulk echo)', { timeout: 30_000 }, async () => {
      // The sender blocks in wait(-1) in a process of its own while this one reads, 64 KiB per
      // turn: the kernel takes its 16 MiB send a piece at a time, and each short completion lists
      // the rest. A wait that went back to sleep with it unsent would never wake (nothing in flight).
      const size = 16 * MiB;
      const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/ring-send-child.ts', String(listener.port), String(size)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (out += d));
      const exited = once(child, 'exit');
      const mux = new Multiplexer();
      try {
        mux.add(listener);
        let server: Socket | null = null;
        const chunks: Uint8Array[] = [];
        const deadline = performance.now() + 20_000;
        while (performance.now() < deadline) {
          mux.wait(5);
          server ??= listener.accept();
          if (server !== null && drain(server, chunks)) break;
          await new Promise((r) => setImmediate(r)); // the child's output comes in meanwhile
        }
        assert.equal(total(chunks), size, `the peer got every byte (child said: ${out.trim()})`);
        assert.equal(sha(Buffer.concat(chunks)), sha(pattern(size, 7)));
        const [code] = await within(exited, 10_000, 'the sender to exit');
        assert.equal(code, 0, out);
        assert.match(out, ringSend ? /^done ring=true/ : /^done ring=false/);
        server?.destroy();
      } finally {
        child.kill('SIGKILL');
        mux.close();
        listener.close();
      }
    });

    it('sends and file ranges mixed, resuming only on writable after each refusal: every refusal ends in a writable event with the queue below its cap, and everything arrives (found from outside: the drain of a range was not reported)', () => {
      const file = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
      const fileFd = fileOf(file);
      const pair = connectedPair();
      const mux = ringMux();
      try {
        mux.add(pair.client);
        const expected: Uint8Array[] = [];
        const got: Uint8Array[] = [];
        const buffer = new Uint8Array(16_000);
        let op = 0;
        let waiting = false;
        let refusals = 0;
        const deadline = performance.now() + 20_000;
        while (op < 120 || total(got) < total(expected)) {
          assert.ok(performance.now() < deadline, `stalled at op ${op}, waiting for writable: ${waiting}, queued ${pair.client.queuedBytes}, got ${total(got)} of ${total(expected)}`);
          for (const e of mux.wait(0)) {
            if (!e.writable) continue;
            assert.ok(!pair.client.sendQueueFull, `writable with the queue at ${pair.client.queuedBytes} bytes (cap ${pair.client.sendQueueLimit})`);
            waiting = false;
          }
          if (!waiting && op < 120) {
            const isFile = op % 3 === 2;
            const length = isFile ? 100_000 + ((op * 7919) % 200_000) : 1 + ((op * 104_729) % 40_000);
            const bytes = isFile ? file.subarray(0, length) : pattern(length, op);
            const status = isFile ? pair.client.sendFile(fileFd, 0, length) : pair.client.send(bytes);
            if (status === 'not-sent') {
              waiting = true;
              refusals++;
            } else {
              assert.notEqual(status, 'closed');
              expected.push(bytes);
              op++;
            }
          }
          const n = pair.server.receiveInto(buffer);
          if (n > 0) got.push(buffer.slice(0, n));
        }
        assert.ok(refusals > 0, 'the reader was slow enough for the queue to reach its cap');
        assert.equal(sha(Buffer.concat(got)), sha(Buffer.concat(expected)));
      } finally {
        mux.close();
        pair.close();
        closeSync(fileFd);
      }
    });

    it('flush() hands a ring\'s queue to the kernel now; sendQueueFull says what the next send answers', () => {
      const pair = connectedPair();
      const mux = ringMux();
      const sleeper = new Multiplexer(); // epoll, watching the peer: never drives the ring
      try {
        mux.add(pair.client);
        sleeper.add(pair.server);
        assert.equal(pair.client.send(Buffer.from('hello')), ringSend ? 'queued' : 'sent');
        assert.equal(pair.client.flush(), 0, 'flushed without a wait');
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < 100 && total(chunks) < 5; i++) {
          sleeper.wait(10);
          drain(pair.server, chunks);
        }
        assert.equal(Buffer.concat(chunks).toString(), 'hello', 'the peer had the bytes, with no wait on the ring');
        // The peer does not read: the queue reaches its cap, and from then on sendQueueFull says
        // what the next send answers.
        const chunk = new Uint8Array(64 * 1024);
        let refused = false;
        for (let i = 0; i < 400 && !refused; i++) {
          const full = pair.client.sendQueueFull;
          const status = pair.client.send(chunk);
          refused = status === 'not-sent';
          assert.equal(refused, full, `send ${i}: sendQueueFull was ${full}, the send answered ${status}`);
        }
        assert.ok(refused, 'the kernel buffers filled up');
      } finally {
        sleeper.close();
        mux.close();
        pair.close();
      }
    });

    it('on a Reactor: a connecting socket sends bytes and file ranges, resuming on writable; the peer read by a timer, the interest changed by another: everything arrives (an outside attacker\'s program, which stalled: a modify outside the turn took in a completion and cleared the eventfd)', { timeout: 30_000 }, async () => {
      const file = new Uint8Array(1 << 20).fill(67);
      const fileFd = fileOf(file);
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
      const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
      let server: Socket | null = null;
      let got = 0;
      let expected = 0;
      let op = 0;
      const buffer = new Uint8Array(16_000);
      // The peer is read by a timer only (no reactor watches it): the reactor wakes for its ring alone.
      const reader = setInterval(() => {
        server ??= listener.accept();
        for (let i = 0; server !== null && i < 8; i++) {
          const n = server.receiveInto(buffer);
          if (n <= 0) break;
          got += n;
        }
      }, 1);
      const pump = (): void => {
        while (op < 200) {
          const isFile = op % 3 === 2;
          const length = isFile ? 100_000 + ((op * 7919) % 200_000) : (op * 104_729) % 40_000;
          const status = isFile ? client.sendFile(fileFd, 0, length) : client.send(new Uint8Array(length));
          if (status === 'not-sent') return; // resumed by the writable event
          assert.notEqual(status, 'closed');
          expected += length;
          op++;
        }
      };
      try {
        reactor.add(client, (e) => e.writable && pump(), Interest.READABLE | Interest.WRITABLE);
        setTimeout(() => reactor.modify(client, Interest.READABLE), 5); // outside the turn
        const deadline = performance.now() + 20_000;
        while (!(op === 200 && got === expected) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        assert.equal(op, 200, `every operation was taken (queued: ${client.queuedBytes})`);
        assert.equal(got, expected, `every byte arrived (queued: ${client.queuedBytes})`);
      } finally {
        clearInterval(reader);
        reactor.close();
        client.destroy();
        (server as Socket | null)?.destroy();
        listener.close();
        closeSync(fileFd);
      }
    });

    it('a peer reset fails the ring\'s send: an error event (syscall send, ECONNRESET or EPIPE, unsentBytes); later sends answer \'closed\'', () => {
      for (const when of ['in flight', 'before the send'] as const) {
        const pair = connectedPair({ sendQueueLimit: 64 * MiB });
        const mux = ringMux();
        try {
          mux.add(pair.client, Interest.READABLE);
          const data = pattern(when === 'in flight' ? 24 * MiB : 100_000, 19);
          using faults = noSendSyscalls();
          if (when === 'in flight') {
            assert.notEqual(pair.client.send(data), 'not-sent');
            untilStuck(mux, pair.client, when);
          }
          pair.server.setOption('linger', 0);
          pair.server.destroy(); // RST
          if (when === 'before the send') {
            const status = pair.client.send(data);
            // A ring learns of the reset from its send's completion; epoll's send(2) may meet it at once.
            if (ringSend) assert.equal(status, 'queued', when);
          }
          let error: SocketError | null = null;
          pumpUntil(mux, () => error !== null || (!ringSend && pair.client.error !== null), (event) => {
            if (event.target === pair.client && event.error !== null) error ??= event.error;
          }, `${when}: the error event`);
          error ??= pair.client.error;
          assert.ok(error !== null);
          assert.equal(error.syscall, 'send', `${when}: ${error.message}`);
          assert.ok(['ECONNRESET', 'EPIPE'].includes(error.code), `${when}: ${error.code}`);
          if (ringSend) {
            assert.equal(error, pair.client.error);
            const unsent = (error as SocketError & { unsentBytes?: number }).unsentBytes;
            assert.ok(typeof unsent === 'number' && unsent > 0 && unsent <= data.byteLength, `${when}: unsentBytes ${unsent}`);
          }
          assert.equal(pair.client.queuedBytes, 0);
          assert.equal(pair.client.send(Buffer.from('more')), 'closed');
          if (ringSend) assert.equal(faults.count('send'), 0, 'no send(2) was made');
        } finally {
          mux.close();
          pair.close();
        }
      }
    });

    it('sendFile behind bytes the ring queued keeps the stream order (bytes, file, bytes, file, bytes)', () => {
      const pair = connectedPair({ sendQueueLimit: 64 * MiB });
      const mux = ringMux();
      const reader = new Multiplexer();
      const fileA = pattern(MiB, 20);
      const fileB = pattern(300_000, 21);
      const fdA = fileOf(fileA);
      const fdB = fileOf(fileB);
      try {
        mux.add(pair.client);
        reader.add(pair.server);
        const before = pattern(100_000, 22);
        const middle = pattern(4 * MiB, 23);
        const last = pattern(50_000, 24);
        assert.notEqual(pair.client.send(before), 'not-sent');
        const status = pair.client.sendFile(fdA);
        if (ringSend) assert.equal(status, 'queued', 'behind the queued bytes');
        else assert.notEqual(status, 'not-sent');
        assert.notEqual(pair.client.send(middle), 'not-sent');
        assert.notEqual(pair.client.sendFile(fdB), 'not-sent');
        assert.notEqual(pair.client.send(last), 'not-sent');
        closeSync(fdA); // the queue holds its own duplicates
        closeSync(fdB);
        const got: Uint8Array[] = [];
        try {
          pumpUntil(mux, () => (drain(pair.server, got), pair.client.queuedBytes === 0), () => {}, 'the queue to drain while the peer reads', 8000);
        } catch (err) {
          throw new Error(`${(err as Error).message}: ${pair.client.queuedBytes} bytes still queued, ${total(got)} of ${5_692_880} received`);
        }
        pair.client.shutdown('write');
        const rest = receiveToEnd(pair.server, pumpOf(mux, reader), 'the end');
        assert.equal(sha(Buffer.concat([...got, rest])), sha(Buffer.concat([before, fileA, middle, fileB, last])));
      } finally {
        reader.close();
        mux.close();
        pair.close();
      }
    });

    it('shutdown(\'write\') with a queue: the drain is reported writable (interest READABLE), the peer gets every byte, then the end (no send(2))', () => {
      const pair = connectedPair({ sendQueueLimit: 16 * MiB });
      const mux = ringMux();
      try {
        mux.add(pair.client, Interest.READABLE);
        const data = pattern(5 * MiB, 25);
        using faults = noSendSyscalls();
        assert.notEqual(pair.client.send(data), 'not-sent');
        pair.client.shutdown('write');
        let writable = false;
        const got: Uint8Array[] = [];
        let ended = false;
        pumpUntil(mux, () => (ended ||= drain(pair.server, got), ended && writable), (event) => {
          if (event.target !== pair.client) return;
          assert.equal(event.error, null);
          if (event.writable) {
            assert.equal(pair.client.queuedBytes, 0, 'writable once the queue has drained');
            writable = true;
          }
        }, 'the drain\'s writable event and the end', 15_000);
        assert.equal(sha(Buffer.concat(got)), sha(data));
        assert.equal(pair.client.state, 'open', 'reading is still possible');
        assertSendSyscalls(faults);
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('a peer that has half-closed (its FIN read, the socket hung up) still gets every byte sent afterwards', () => {
      const pair = connectedPair();
      const mux = ringMux();
      try {
        mux.add(pair.server);
        assert.equal(pair.client.send(Buffer.from('request')), 'sent');
        pair.client.shutdown('write');
        let ended = false;
        pumpUntil(mux, () => ended, (event) => {
          if (event.target === pair.server) ended ||= drain(pair.server, []);
        }, 'the request and its end');
        for (let i = 0; i < 3; i++) mux.wait(1); // the hangup reported, and nothing queued: out of the kernel set
        const data = pattern(3 * MiB, 29);
        const status = pair.server.send(data);
        if (ringSend) assert.equal(status, 'queued');
        pair.server.shutdown('write');
        const got = receiveToEnd(pair.client, () => mux.wait(2), 'the reply and its end');
        assert.equal(sha(got), sha(data));
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('many sockets on one ring, some destroyed mid-stream and their slots reused: every other stream intact', () => {
      const pairs = Array.from({ length: 16 }, () => connectedPair());
      const mux = ringMux();
      const reader = new Multiplexer();
      const late: Pair[] = [];
      const lateGot: Uint8Array[][] = [];
      const lateEnded: boolean[] = [];
      try {
        const data = pairs.map((_, i) => pattern(700_000, 300 + i));
        const sent = pairs.map(() => 0);
        const got = pairs.map(() => [] as Uint8Array[]);
        const ended = pairs.map(() => false);
        const gone = new Set<number>();
        pairs.forEach((p, i) => {
          mux.add(p.client, Interest.READABLE, i);
          reader.add(p.server, Interest.READABLE, i);
        });
        const random = seededRandom(99);
        const push = (i: number) => {
          const p = pairs[i];
          while (sent[i] < data[i].byteLength) {
            const size = Math.min(data[i].byteLength - sent[i], 1 + Math.floor(random() * 50_000));
            const status = p.client.send(data[i].subarray(sent[i], sent[i] + size));
            assert.notEqual(status, 'closed');
            if (status === 'not-sent') return;
            sent[i] += size;
          }
          if (sent[i] === data[i].byteLength) {
            sent[i]++;
            p.client.shutdown('write');
          }
        };
        pairs.forEach((_, i) => push(i));
        let rounds = 0;
        pumpUntil(mux, () => {
          rounds++;
          if (rounds === 3) {
            // Destroy every fourth client with its sends queued or in flight; new sockets take their slots.
            for (let i = 0; i < pairs.length; i += 4) {
              pairs[i].client.destroy();
              gone.add(i);
              const p = connectedPair();
              late.push(p);
              lateGot.push([]);
              lateEnded.push(false);
              mux.add(p.client, Interest.READABLE, -late.length);
              assert.notEqual(p.client.send(pattern(200_000, 900 + i)), 'not-sent');
              p.client.shutdown('write');
            }
          }
          for (const event of reader.wait(0)) {
            const i = event.data as number;
            if (!ended[i]) ended[i] = drain(pairs[i].server, got[i]);
          }
          late.forEach((p, k) => (lateEnded[k] ||= drain(p.server, lateGot[k])));
          return rounds > 3 && ended.every((e, i) => e || gone.has(i)) && lateEnded.every(Boolean);
        }, (event) => {
          assert.equal(event.error, null);
          const i = event.data as number;
          if (i >= 0 && event.writable) push(i);
        }, 'every stream', 30_000);
        pairs.forEach((_, i) => {
          const all = Buffer.concat(got[i]);
          if (gone.has(i)) assert.equal(sha(all), sha(data[i].subarray(0, all.byteLength)), `destroyed stream ${i}: a prefix`);
          else assert.equal(sha(all), sha(data[i]), `stream ${i}`);
        });
        assert.equal(late.length, 4);
        lateGot.forEach((chunks, k) => assert.equal(sha(Buffer.concat(chunks)), sha(pattern(200_000, 900 + 4 * k)), `late stream ${k}`));
      } finally {
        reader.close();
        mux.close();
        for (const p of [...pairs, ...late]) p.close();
      }
    });

    it('on a Reactor: an echo server (accepted sockets pause reading while their queue is full) sends 4 MiB back through the ring', { timeout: 30_000 }, async () => {
      const pair = connectedPair();
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      try {
        assert.equal(pair.server.pauseReadingWhenFull, true);
        const data = pattern(4 * MiB, 30);
        const back: Uint8Array[] = [];
        let offset = 0;
        const done = new Promise<void>((resolve, reject) => {
          reactor.add(pair.server, (event) => {
            if (event.error !== null) return reject(event.error);
            for (let i = 0; i < 16 && !pair.server.sendQueueFull; i++) {
              const r = pair.server.receive();
              if (r.status === 'closed') {
                pair.server.shutdown('write');
                return;
              }
              if (r.bytes.byteLength === 0) return;
              assert.notEqual(pair.server.send(r.bytes), 'closed');
            }
          });
          const push = () => {
            while (offset < data.byteLength) {
              const status = pair.client.send(data.subarray(offset, offset + 100_000));
              if (status === 'not-sent') return;
              offset += 100_000;
            }
            if (offset >= data.byteLength && offset < data.byteLength + 100_000) {
              offset = data.byteLength + 100_000;
              pair.client.shutdown('write');
            }
          };
          reactor.add(pair.client, (event) => {
            if (event.error !== null) return reject(event.error);
            if (event.writable) push();
            if (drain(pair.client, back)) resolve();
          });
          push();
        });
        await within(done, 25_000, 'the echo');
        assert.equal(sha(Buffer.concat(back)), sha(data));
      } finally {
        reactor.close();
        pair.close();
      }
    });

    it('on a Reactor: 6 MiB sent from the handlers as the drains are reported arrive intact, in order, then the end (no send(2))', { timeout: 30_000 }, async () => {
      const pair = connectedPair();
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      try {
        assert.equal(reactor.multiplexer.ringSend, ringSend);
        const data = pattern(6 * MiB, 26);
        const random = seededRandom(77);
        let offset = 0;
        const got: Uint8Array[] = [];
        using faults = noSendSyscalls();
        const push = () => {
          while (offset < data.byteLength) {
            const size = Math.min(data.byteLength - offset, 1 + Math.floor(random() * 200_000));
            const status = pair.client.send(data.subarray(offset, offset + size));
            assert.notEqual(status, 'closed');
            if (status === 'not-sent') return;
            offset += size;
          }
          if (offset === data.byteLength) {
            offset++;
            pair.client.shutdown('write');
          }
        };
        const done = new Promise<void>((resolve, reject) => {
          reactor.add(pair.server, () => {
            try {
              if (drain(pair.server, got)) {
                reactor.remove(pair.server);
                resolve();
              }
            } catch (err) {
              reject(err);
            }
          });
          reactor.add(pair.client, (event) => {
            if (event.error !== null) reject(event.error);
            else if (event.writable) push();
          });
        });
        push(); // outside a turn: a microtask submits it
        await within(done, 20_000, `the 6 MiB (${total(got)} so far)`);
        assert.equal(sha(Buffer.concat(got)), sha(data));
        assertSendSyscalls(faults);
      } finally {
        reactor.close();
        pair.close();
      }
    });

    it('on a Reactor: sends from a timer and from an async function are submitted by themselves, with nothing else waking the loop', { timeout: 15_000 }, async () => {
      const pair = connectedPair();
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      const expected: Uint8Array[] = [];
      const got: Uint8Array[] = [];
      // The peer is read by a timer, outside any multiplexer: the reactor watches the client alone,
      // so only the ring (its submission, its eventfd) can move the client's bytes.
      const poll = setInterval(() => drain(pair.server, got), 2);
      const arrived = async (what: string) => {
        const deadline = performance.now() + 5000;
        while (total(got) < total(expected)) {
          if (performance.now() > deadline) throw new Error(`${what} never arrived: ${total(got)} of ${total(expected)} bytes`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        assert.equal(sha(Buffer.concat(got)), sha(Buffer.concat(expected)), what);
      };
      try {
        reactor.add(pair.client, (event) => assert.equal(event.error, null));
        const send = (bytes: Uint8Array) => {
          expected.push(bytes);
          const status = pair.client.send(bytes);
          if (ringSend) assert.equal(status, 'queued');
          else assert.notEqual(status, 'not-sent');
        };
        await new Promise<void>((resolve) => setTimeout(() => {
          send(Buffer.from('from a timer;'));
          resolve();
        }, 10));
        await arrived('the timer\'s send');
        await new Promise((resolve) => setTimeout(resolve, 10));
        send(Buffer.from('after an await;'));
        await arrived('the async function\'s send');
        await Promise.resolve();
        send(Buffer.from('a;'));
        send(Buffer.from('b;')); // two sends in one microtask: one submission
        await arrived('the two sends');
        // More than the kernel buffers hold, from a timer: the send waits in the kernel, and only
        // the ring's eventfd can wake the reactor to take its completion and send the rest.
        await new Promise<void>((resolve) => setTimeout(() => {
          send(pattern(12 * MiB, 31));
          resolve();
        }, 5));
        await arrived('12 MiB sent from a timer');
        const deadline = performance.now() + 3000;
        while (pair.client.queuedBytes > 0) {
          assert.ok(performance.now() < deadline, `the completions were never taken in (${pair.client.queuedBytes} bytes queued)`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      } finally {
        clearInterval(poll);
        reactor.close();
        pair.close();
      }
    });

    it('on a Reactor: a send submitted by the microtask is at the peer before any turn; the reactor closed before it took the completion in: the sockets learn it (a closing one finishes its close)', { timeout: 10_000 }, async () => {
      for (const closing of [false, true]) {
        const pair = connectedPair();
        const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
        const reader = new Multiplexer();
        try {
          reactor.add(pair.client, () => {});
          reader.add(pair.server);
          await new Promise((resolve) => setTimeout(resolve, 5)); // outside any turn
          const data = pattern(100_000, 32);
          assert.equal(pair.client.send(data), ringSend ? 'queued' : 'sent');
          if (closing) pair.client.close();
          await Promise.resolve(); // the microtask that submits runs before this continuation
          await Promise.resolve();
          // No reactor turn has run since: the bytes went by the submission alone.
          const got: Uint8Array[] = [];
          drain(pair.server, got);
          assert.equal(total(got), data.byteLength, 'the bytes are at the peer before the reactor ran');
          reactor.close(); // the completion is still in the ring's queue, unread
          assert.equal(pair.client.queuedBytes, 0, 'the close took the completion in: nothing is left queued');
          assert.equal(pair.client.error, null);
          assert.equal(pair.client.state, closing ? 'closed' : 'open');
          if (!closing) pair.client.shutdown('write');
          const rest = receiveToEnd(pair.server, () => reader.wait(2), 'the end');
          assert.equal(sha(Buffer.concat([...got, rest])), sha(data));
        } finally {
          reader.close();
          reactor.close();
          pair.close();
        }
      }
    });

    it('pipeSockets over a ringSend Reactor: a proxy carries 4 MiB one way and 2 MiB the other, with backpressure, then both ends close', { timeout: 30_000 }, async () => {
      const front = connectedPair();
      const back = connectedPair();
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      try {
        const pipe = pipeSockets(front.server, back.client, reactor);
        const up = pattern(4 * MiB, 33);
        const down = pattern(2 * MiB, 34);
        /** An outer end: sends `data` as its queue allows, reads everything, resolves at the end. */
        const end = (socket: Socket, data: Uint8Array): Promise<Buffer> => new Promise((resolve, reject) => {
          let offset = 0;
          const got: Uint8Array[] = [];
          const push = () => {
            while (offset < data.byteLength) {
              const status = socket.send(data.subarray(offset, offset + 70_000));
              if (status === 'closed') return reject(socket.error);
              if (status === 'not-sent') return;
              offset += 70_000;
            }
            if (offset !== Infinity) {
              offset = Infinity;
              socket.shutdown('write');
            }
          };
          reactor.add(socket, (event) => {
            if (event.error !== null) return reject(event.error);
            if (event.writable) push();
            if (drain(socket, got)) {
              reactor.remove(socket);
              resolve(Buffer.concat(got));
            }
          });
          push();
        });
        const [atUpstream, atUser] = await within(Promise.all([end(back.server, down), end(front.client, up)]), 25_000, 'both directions');
        assert.equal(sha(atUpstream), sha(up), 'user to upstream');
        assert.equal(sha(atUser), sha(down), 'upstream to user');
        const result = await within(pipe.finished, 5000, 'the pipe to finish');
        assert.deepEqual({ ...result, failed: result.failed === null }, { aToB: up.byteLength, bToA: down.byteLength, error: null, failed: true });
        assert.ok(pipe.highWater <= front.server.sendQueueLimit + reactor.multiplexer.receiveBuffer.byteLength, `queues stayed bounded: ${pipe.highWater}`);
      } finally {
        reactor.close();
        front.close();
        back.close();
      }
    });

    it('a Duplex (toStream) over a ringSend Reactor pipes 4 MiB and ends: the peer gets every byte, then the end', { timeout: 30_000 }, async () => {
      const pair = connectedPair();
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      const client = toStream(pair.client, reactor);
      const server = toStream(pair.server, reactor);
      try {
        const data = pattern(4 * MiB, 27);
        const chunks: Buffer[] = [];
        server.on('data', (chunk: Buffer) => chunks.push(chunk));
        const serverEnded = once(server, 'end');
        const bothClosed = Promise.all([once(client, 'close'), once(server, 'close')]);
        client.resume(); // its readable side ends with the peer's end
        const slices = Array.from({ length: 64 }, (_, i) => Buffer.from(data.subarray(i * 65_536, (i + 1) * 65_536)));
        await within(pipeline(Readable.from(slices), client), 20_000, 'the pipeline');
        await within(serverEnded, 20_000, `the peer's end (${total(chunks)} bytes so far)`);
        assert.equal(sha(Buffer.concat(chunks)), sha(data));
        server.end();
        await within(bothClosed, 10_000, 'both streams closed');
        assert.equal(pair.client.state, 'closed');
        assert.equal(pair.server.state, 'closed');
      } finally {
        client.destroy();
        server.destroy();
        reactor.close();
        pair.close();
      }
    });

    it('closeGracefully on a ringSend Reactor resolves once the ring has sent the queue; the peer gets every byte, then the end', { timeout: 20_000 }, async () => {
      const pair = connectedPair({ sendQueueLimit: 16 * MiB });
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false, ringSend: true });
      try {
        reactor.add(pair.client, () => {});
        const data = pattern(5 * MiB, 28);
        assert.notEqual(pair.client.send(data), 'not-sent');
        assert.ok(pair.client.queuedBytes > 0);
        const closing = closeGracefully(pair.client, reactor);
        const got: Uint8Array[] = [];
        const ended = new Promise<void>((resolve, reject) => {
          reactor.add(pair.server, () => {
            try {
              if (drain(pair.server, got)) {
                reactor.remove(pair.server);
                resolve();
              }
            } catch (err) {
              reject(err);
            }
          });
        });
        await within(Promise.all([closing, ended]), 15_000, `the close and the end (${total(got)} bytes so far)`);
        assert.equal(pair.client.state, 'closed');
        assert.equal(pair.client.error, null);
        assert.equal(sha(Buffer.concat(got)), sha(data));
      } finally {
        reactor.close();
        pair.close();
      }
    });
  });
});

/**
 * The property behind all of the above, with random interleavings: a TCP stream sent through
 * ringSend multiplexers (and an epoll one, and none), with random sends, peer reads, waits, moves
 * between them, flushes and multiplexers closed under the socket, arrives whole, once, in order.
 */
describe('io_uring completion-based send, random interleavings (on the fallback where io_uring is missing)', () => {
  type Where = 'A' | 'B' | 'epoll' | 'none';
  type Op =
    | { t: 'send'; size: number }
    | { t: 'read'; size: number }
    | { t: 'pump' }
    | { t: 'flush' }
    | { t: 'move'; to: Where }
    | { t: 'closeMux'; which: 'A' | 'B' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ t: fc.constant('send' as const), size: fc.oneof(fc.integer({ min: 1, max: 2048 }), fc.integer({ min: 1, max: 300_000 })) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('read' as const), size: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 256 * 1024 })) }) },
    { weight: 4, arbitrary: fc.constant({ t: 'pump' as const }) },
    { weight: 1, arbitrary: fc.constant({ t: 'flush' as const }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('move' as const), to: fc.constantFrom<Where>('A', 'B', 'epoll', 'none') }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('closeMux' as const), which: fc.constantFrom<'A' | 'B'>('A', 'B') }) },
  );
  // Fewer under emulation (every case costs about 20x there).
  const runs = Number(process.env.FC_RUNS_URING ?? (EMULATOR === null ? 50 : 10));

  it(`the peer gets exactly the bytes sent (${runs} random cases)`, () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), fc.constantFrom(1024, 64 * 1024, 4 * MiB), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (ops, sendQueueLimit, seed) => {
        const pair: Pair = connectedPair({ sendQueueLimit });
        const muxes: Record<'A' | 'B' | 'epoll', Multiplexer> = { A: ringMux(), B: ringMux(), epoll: new Multiplexer() };
        const client = pair.client;
        let where: Where = 'A';
        const sent: Uint8Array[] = [];
        const got: Uint8Array[] = [];
        let offset = seed;
        try {
          muxes.A.add(client);
          for (const o of ops) {
            switch (o.t) {
              case 'send': {
                const data = pattern(o.size, offset++);
                const status = client.send(data);
                assert.notEqual(status, 'closed', String(client.error));
                if (status !== 'not-sent') sent.push(data);
                break;
              }
              case 'read': {
                const buffer = new Uint8Array(o.size);
                const n = pair.server.receiveInto(buffer);
                assert.ok(n >= 0, 'no end before the shutdown');
                if (n > 0) got.push(buffer.slice(0, n));
                break;
              }
              case 'pump':
                if (where !== 'none') for (const event of muxes[where].wait(0)) assert.equal(event.error, null);
                break;
              case 'flush':
                client.flush();
                break;
              case 'move':
                if (where !== 'none') muxes[where].remove(client);
                where = o.to;
                if (where !== 'none') muxes[where].add(client);
                break;
              case 'closeMux':
                muxes[o.which].close();
                muxes[o.which] = ringMux();
                if (where === o.which) where = 'none';
                break;
            }
            assert.equal(client.error, null);
          }
          // Then everything that is left, through the epoll multiplexer, and the end.
          if (where !== 'none') muxes[where].remove(client);
          muxes.epoll.add(client);
          pumpUntil(muxes.epoll, () => (drain(pair.server, got), client.queuedBytes === 0), () => {}, 'the rest', 10_000);
          client.shutdown('write');
          const rest = receiveToEnd(pair.server, () => muxes.epoll.wait(2), 'the end', 10_000);
          assert.equal(sha(Buffer.concat([...got, rest])), sha(Buffer.concat(sent)));
        } finally {
          for (const m of Object.values(muxes)) m.close();
          pair.close();
        }
      }),
      { numRuns: runs },
    );
  });
});
