/**
 * Waker: an eventfd watched by a multiplexer, woken from its own thread or another one. A wake
 * makes the blocked wait return one event for the waker; wakes coalesce; the counter is read back
 * (no busy loop); each thread owns its own fd (share/fromFd), so a wake never reaches a reused fd
 * number; close-on-exec and non-blocking; nothing leaks when either side ends.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { O_CLOEXEC, O_NONBLOCK, sys, WOULD_BLOCK } from '../ffi/index.ts';
import { Interest, Multiplexer, Reactor, Socket, SocketClosedError, Waker, type BackendName } from '../lib/index.ts';
import { assertNonBlockingCloexec, fdTarget, trackFds } from './helpers/fd.ts';
import { startTsWorker } from './helpers/ts-worker.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** Rejects after `ms` (a bound on a step, not a timing assertion). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

for (const backend of ['epoll', 'poll', 'io_uring'] as BackendName[]) {
  describe(`Waker (${backend})`, () => {
    it('a wake makes wait report one event for the waker; wakes coalesce; then the wait is quiet again', () => {
      using mux = new Multiplexer({ backend });
      using waker = new Waker();
      mux.add(waker);
      assert.equal(mux.wait(0).length, 0, 'nothing before a wake');
      waker.wake();
      waker.wake();
      waker.wake();
      const events = mux.wait(1000);
      assert.equal(events.length, 1);
      assert.equal(events[0].target, waker);
      assert.equal(events[0].readable, true);
      assert.equal(events[0].error, null);
      assert.equal(mux.wait(0).length, 0, 'the counter was read back: no busy loop');
      waker.wake();
      assert.equal(mux.wait(0).length, 1, 'and it wakes again');
    });

    it('watched for nothing, a woken waker is not reported; watched again, it is', () => {
      using mux = new Multiplexer({ backend });
      using waker = new Waker();
      mux.add(waker, Interest.NONE);
      waker.wake();
      assert.equal(mux.wait(0).length, 0, 'not watched for reading');
      mux.modify(waker, Interest.READABLE);
      const events = mux.wait(1000);
      assert.equal(events.length, 1, 'the wake was kept');
      assert.equal(events[0].target, waker);
      mux.modify(waker, Interest.NONE);
      waker.wake();
      assert.equal(mux.wait(0).length, 0, 'muted again');
      mux.remove(waker);
      mux.add(waker);
      assert.equal(mux.wait(1000).length, 1, 'added again, the pending wake is reported');
    });

    it('a worker blocked in wait(-1) is woken from the main thread and ends; no fd left behind', async () => {
      const opened = trackFds();
      const worker = startTsWorker(new URL('./fixtures/waker-worker.ts', import.meta.url), { workerData: { backend } });
      const exited = once(worker, 'exit');
      let waker: Waker | null = null;
      try {
        const [hello] = (await within(once(worker, 'message'), 15_000, 'the worker')) as [{ type: string; fd: number; own: number }];
        assert.equal(hello.type, 'waker');
        waker = Waker.fromFd(hello.fd); // adopted at once: this thread owns this number now
        assert.notEqual(waker.fd, hello.own, 'our own duplicate, not the worker’s fd number');
        assertNonBlockingCloexec(waker.fd);
        assertNonBlockingCloexec(hello.own);
        // The worker may not be blocked yet: the eventfd keeps the wake until its wait looks.
        const woken = within(once(worker, 'message'), 15_000, 'the wake to be reported');
        waker.wake();
        const [report] = (await woken) as [{ woken: boolean; events: number; after: number }];
        assert.deepEqual(report, { type: 'woken', woken: true, events: 1, after: 0 });
        const [code] = await within(exited, 15_000, 'the worker to exit');
        assert.equal(code, 0);
        waker.wake(); // the worker's side is gone: harmless
      } finally {
        waker?.close();
        await worker.terminate();
      }
      opened.assertNoLeak('both fds closed: the worker its own, we ours');
    });
  });
}

describe('Waker: ownership, flags, errors', () => {
  it('is non-blocking and close-on-exec, and so is every share()', () => {
    using waker = new Waker();
    assertNonBlockingCloexec(waker.fd);
    using shared = Waker.fromFd(waker.share());
    assertNonBlockingCloexec(shared.fd);
    assert.equal(fdTarget(shared.fd), 'anon_inode:[eventfd]');
  });

  it('a wake through a share never reaches a closed and reused fd number', () => {
    using mux = new Multiplexer();
    const original = new Waker();
    using other = Waker.fromFd(original.share()); // "the other thread's" own fd
    const number = original.fd;
    original.close();
    // The kernel hands out the lowest free number: the pipe most likely reuses `number`.
    const ends = new Int32Array(2);
    sys.pipe2(ends, O_NONBLOCK | O_CLOEXEC);
    try {
      other.wake();
      const probe = new Uint8Array(16);
      assert.equal(sys.read(ends[0], probe, 16), WOULD_BLOCK, 'nothing was written into the pipe');
      assert.ok(ends.includes(number), `the pipe reused fd ${number} (got ${ends[0]}, ${ends[1]})`);
      // And the eventfd itself still works through the surviving fd.
      mux.add(other);
      assert.equal(mux.wait(0).length, 1);
    } finally {
      sys.close(ends[0]);
      sys.close(ends[1]);
    }
  });

  for (const backend of ['epoll', 'io_uring'] as const) {
    // io_uring: a ring poll on the waker left the ring's eventfd unsignalled after the first wake
    // (the kernel defers that signal inside an eventfd write, once per ring): 1 of 30 delivered.
    it(`drives a Reactor (${backend}): every wake, from this thread or through a share, calls the waker’s handler`, async () => {
      const reactor = new Reactor({ backend });
      const waker = new Waker();
      try {
        let calls = 0;
        let called = (): void => {};
        reactor.add(waker, () => {
          calls++;
          called();
        });
        using elsewhere = Waker.fromFd(waker.share());
        for (let k = 0; k < 30; k++) {
          const handled = new Promise<void>((resolve) => (called = resolve));
          (k % 2 === 0 ? waker : elsewhere).wake();
          await within(handled, 5000, `the handler for wake ${k + 1}`);
          assert.equal(calls, k + 1, 'one call per wake');
        }
      } finally {
        waker.close();
        reactor.close();
      }
    });
  }

  it('closed: wake and share throw SocketClosedError, close is harmless twice, and it leaves its multiplexer', () => {
    using mux = new Multiplexer();
    const waker = new Waker();
    mux.add(waker);
    waker.close();
    assert.equal(mux.size, 0);
    assert.equal(waker.fd, -1);
    assert.equal(waker.closed, true);
    assert.throws(() => waker.wake(), SocketClosedError);
    assert.throws(() => waker.share(), SocketClosedError);
    waker.close();
  });

  it('fromFd refuses what is not an eventfd, without taking it over', () => {
    const [a, b] = Socket.pair();
    try {
      assert.throws(() => Waker.fromFd(a.fd), { code: 'ERR_INVALID_ARG_VALUE', message: /eventfd/ });
      assert.equal(a.send(new Uint8Array([1])), 'sent', 'the socket is still open');
      assert.throws(() => Waker.fromFd(-1), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => Waker.fromFd(2 ** 31 - 1), { code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a saturated counter still means "woken": wake() does not throw (EAGAIN is a pending wake)', () => {
    using waker = new Waker();
    // Bring the counter to its maximum (2^64 - 2) through the raw fd, then wake once more.
    assert.equal(sys.write(waker.fd, new BigUint64Array([0xfffffffffffffffen]), 8), 8);
    waker.wake();
    using mux = new Multiplexer();
    mux.add(waker);
    assert.equal(mux.wait(0).length, 1);
    assert.equal(mux.wait(0).length, 0);
  });
});
