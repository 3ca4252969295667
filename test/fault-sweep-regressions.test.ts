/**
 * Faults injected at the choke point (ffi/faults.ts): the injector itself, then one regression
 * test per failure the fault sweep (and issue 11, finding 7) found, each of which failed before
 * its fix.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { EPOLL_CTL_DEL } from '../ffi/constants.ts';
import { ERRNO } from '../ffi/errno.ts';
import { callSite, failNth, injectFaults } from '../ffi/faults.ts';
import { sys, WOULD_BLOCK } from '../ffi/syscall.ts';
import { Interest, Listener, Multiplexer, Socket, SocketError, type MultiplexerEvent } from '../lib/index.ts';
import { fdTarget, trackFds } from './helpers/fd.ts';
import { pattern } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** A Unix pair whose `a` side holds a send queue (the kernel buffer is full). */
function pairWithQueue(): { a: Socket; b: Socket; queued: number } {
  const [a, b] = Socket.pair({ sendQueueLimit: 1 << 24 });
  const chunk = pattern(64 * 1024, 21);
  for (let i = 0; i < 64 && a.queuedBytes === 0; i++) a.send(chunk);
  assert.ok(a.queuedBytes > 0, 'the kernel buffer filled up');
  return { a, b, queued: a.queuedBytes };
}

/** Reads what `b` holds now. */
function drain(b: Socket): number {
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  for (let n = b.receiveInto(buffer); n > 0; n = b.receiveInto(buffer)) total += n;
  return total;
}

/** A filter that fails the next send/sendmsg on `fd` with `errno`, once. */
function failNextSendOn(fd: number, errno: number, name: 'send' | 'sendmsg' = 'send') {
  let done = false;
  return injectFaults((call) => {
    if (done || call.name !== name || call.args[0] !== fd) return null;
    done = true;
    return { errno };
  });
}

describe('fault injection (ffi/faults.ts)', () => {
  it('fails the Nth call with the errno, below the choke point: EINTR is retried, EAGAIN is would-block, the rest a SocketError', () => {
    const [a, b] = Socket.pair();
    try {
      const byte = new Uint8Array(1);
      {
        using faults = injectFaults((call) => (call.name === 'send' && call.nth <= 2 ? { errno: ERRNO.EINTR } : null));
        assert.equal(sys.send(a.fd, byte, 1, 0), 1, 'two EINTRs retried, then the real send');
        assert.equal(faults.count('send'), 3);
      }
      {
        using _ = injectFaults(failNth('send', 1, { errno: ERRNO.EAGAIN }));
        assert.equal(sys.send(a.fd, byte, 1, 0), WOULD_BLOCK);
      }
      {
        using _ = injectFaults(failNth('send', 1, { errno: ERRNO.ENOBUFS }));
        assert.throws(() => sys.send(a.fd, byte, 1, 0), { name: 'SocketError', code: 'ENOBUFS', syscall: 'send', fd: a.fd });
      }
      assert.equal(drain(b), 1, 'only the real send moved a byte');
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('short counts: send and sendmsg move at most the bytes asked for, and the library queues the rest in order', () => {
    const [a, b] = Socket.pair();
    try {
      const data = pattern(1000, 22);
      {
        using _ = injectFaults(failNth('send', 1, { short: 10 }));
        assert.equal(a.send(data), 'partial');
        assert.equal(a.queuedBytes, 990);
      }
      a.flush();
      {
        using _ = injectFaults(failNth('sendmsg', 1, { short: 1 }));
        assert.equal(a.sendWithFds(data, [b]), 'partial');
        assert.equal(a.queuedBytes, 999);
      }
      a.flush();
      const got = b.receiveWithFds(new Uint8Array(4096));
      const more = new Uint8Array(4096);
      const rest = b.receiveInto(more);
      assert.deepEqual(Buffer.concat([got.bytes, more.subarray(0, Math.max(0, rest))]), Buffer.concat([data, data]));
      assert.equal(got.fds.length, 1, 'the fd went with the one byte of the short sendmsg');
      for (const fd of got.fds) (fd as Socket).destroy();
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('is per thread: an injection on this thread does not reach a worker thread, which has fault points of its own', async () => {
    using _ = injectFaults((call) => (call.name === 'send' ? { errno: ERRNO.ENOBUFS } : null));
    const [a, b] = Socket.pair();
    try {
      assert.throws(() => a.send(Buffer.from('x')), { code: 'ENOBUFS' }, 'this thread is injected');
    } finally {
      a.destroy();
      b.destroy();
    }
    const fixture = new URL('./fixtures/fault-worker.ts', import.meta.url).href;
    const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const worker = new Worker(`import(${tsx}).then((tsx) => tsx.tsImport(${JSON.stringify(fixture)}, ${JSON.stringify(fixture)}));`, { eval: true });
    const [message] = (await once(worker, 'message')) as [{ status: string; got: string }];
    await once(worker, 'exit');
    assert.deepEqual(message, { status: 'sent', got: 'from the worker' });
  });

  it('restores the real functions, refuses a second injection at once, and names call sites', () => {
    const faults = injectFaults(() => null);
    assert.throws(() => injectFaults(() => null), /already active/);
    let site = '';
    faults.restore();
    {
      using _ = injectFaults((call) => {
        if (call.name === 'socketpair') site = callSite();
        return null;
      });
      const [a, b] = Socket.pair();
      a.destroy();
      b.destroy();
    }
    assert.match(site, /socket\.ts .*pair/);
    assert.throws(() => injectFaults(() => null, ['nonexistent']), RangeError);
  });
});

describe('regressions found by the fault sweep', () => {
  it('issue 11 #7: ENOBUFS while flushing inside wait() is reported on that socket; wait() never throws and serves the rest', () => {
    const failing = pairWithQueue();
    const [c, d] = Socket.pair();
    const mux = new Multiplexer();
    try {
      mux.add(failing.a, Interest.NONE);
      mux.add(d);
      drain(failing.b); // room in the kernel: the next wait flushes
      c.send(Buffer.from('still served'));
      const errors: MultiplexerEvent['error'][] = [];
      let served = '';
      {
        using _ = failNextSendOn(failing.a.fd, ERRNO.ENOBUFS);
        for (let i = 0; i < 3; i++) {
          for (const e of mux.wait(0)) {
            if (e.error !== null) errors.push(e.error);
            if (e.target === d) served += Buffer.from(d.receive(new Uint8Array(64)).bytes).toString();
          }
        }
      }
      assert.equal(errors.length, 1, 'reported once, as the event error');
      assert.ok(errors[0] instanceof SocketError);
      assert.equal(errors[0].code, 'ENOBUFS');
      assert.equal(errors[0].unsentBytes, failing.queued, 'every queued byte is said to be lost');
      assert.equal(failing.a.error, errors[0]);
      assert.equal(failing.a.send(Buffer.from('x')), 'closed');
      assert.equal(served, 'still served', 'the other socket got its events');
      assert.deepEqual([...mux.wait(0)].map((e) => e.error), [], 'later waits do not fail');
    } finally {
      mux.close();
      for (const s of [failing.a, failing.b, c, d]) s.destroy();
    }
  });

  it('issue 11 #7: ETOOMANYREFS for fds waiting in the queue is reported on the socket, and the queued fds are closed', () => {
    const failing = pairWithQueue();
    const [p, q] = Socket.pair();
    const mux = new Multiplexer();
    try {
      assert.equal(failing.a.sendWithFds(Buffer.from('with an fd'), [p]), 'queued');
      mux.add(failing.a, Interest.NONE);
      drain(failing.b);
      let error: MultiplexerEvent['error'] = null;
      {
        using _ = failNextSendOn(failing.a.fd, ERRNO.ETOOMANYREFS, 'sendmsg');
        for (let i = 0; i < 20 && error === null; i++) for (const e of mux.wait(0)) error ??= e.error;
      }
      assert.equal(error?.code, 'ETOOMANYREFS');
      assert.ok((error?.unsentBytes ?? 0) > 0);
      assert.equal(failing.a.queuedBytes, 0);
    } finally {
      mux.close();
      for (const s of [failing.a, failing.b, p, q]) s.destroy();
    }
    // The after() hook checks that the duplicate fd the queue held was closed.
  });

  it('issue 11 #7: a flush error inside Multiplexer.close() still destroys the closing socket (fd closed, loss reported)', () => {
    const { a, b, queued } = pairWithQueue();
    const mux = new Multiplexer();
    const fd = a.fd;
    try {
      mux.add(a, Interest.NONE);
      a.close();
      assert.equal(a.state, 'closing');
      drain(b);
      {
        using _ = failNextSendOn(fd, ERRNO.ENOBUFS);
        mux.close();
      }
      assert.equal(a.state, 'closed');
      assert.equal(fdTarget(fd), null, 'its fd was closed');
      assert.equal(a.error?.code, 'ENOBUFS');
      assert.equal(a.error?.unsentBytes, queued);
    } finally {
      mux.close();
      a.destroy();
      b.destroy();
    }
  });

  it('shutdown(2) failing when a drained queue lets shutdown("write") take effect inside wait(): reported on the socket, not thrown', () => {
    const { a, b } = pairWithQueue();
    const mux = new Multiplexer();
    try {
      mux.add(a, Interest.NONE);
      a.shutdown('write');
      let error: MultiplexerEvent['error'] = null;
      {
        using faults = injectFaults((call) => (call.name === 'shutdown' ? { errno: ERRNO.ENOBUFS } : null));
        for (let i = 0; i < 50 && faults.count('shutdown') === 0; i++) {
          drain(b);
          for (const e of mux.wait(0)) error ??= e.error;
        }
        for (const e of mux.wait(0)) error ??= e.error;
      }
      assert.equal(error?.code, 'ENOBUFS');
      assert.equal(error?.syscall, 'shutdown');
      assert.equal(a.error, error);
    } finally {
      mux.close();
      a.destroy();
      b.destroy();
    }
  });

  it('Multiplexer.close() gives a closing socket one last flush; what the kernel cannot take is reported lost (ECANCELED), not dropped silently', () => {
    const { a, b } = pairWithQueue();
    const mux = new Multiplexer();
    try {
      mux.add(a, Interest.NONE);
      a.close();
      const queued = a.queuedBytes;
      mux.close(); // nobody read: the kernel buffer is still full
      assert.equal(a.state, 'closed');
      assert.equal(a.error?.code, 'ECANCELED');
      assert.equal(a.error?.unsentBytes, queued);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('close(2) reporting EIO: Socket.destroy, Listener.close and Multiplexer.close do not throw, and release every fd', () => {
    const { a, b } = pairWithQueue();
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const mux = new Multiplexer();
    mux.add(a, Interest.NONE);
    a.close(); // closing: Multiplexer.close must finish it
    drain(b);
    using faults = injectFaults((call) => (call.name === 'close' ? { errno: ERRNO.EIO } : null));
    assert.doesNotThrow(() => listener.close());
    assert.doesNotThrow(() => mux.close());
    assert.equal(a.state, 'closed', 'the closing socket was finished despite the epoll fd failing to close');
    assert.doesNotThrow(() => b.destroy());
    assert.ok(faults.count('close') >= 4, 'every close reported EIO (the fds were closed all the same)');
  });

  it('epoll_ctl(DEL) failing while a socket is destroyed: the fd is closed all the same and the multiplexer forgets it', () => {
    const [a, b] = Socket.pair();
    const mux = new Multiplexer();
    try {
      mux.add(a);
      const fd = a.fd;
      {
        using _ = injectFaults((call) => (call.name === 'epoll_ctl' && call.args[1] === EPOLL_CTL_DEL ? { errno: ERRNO.ENOMEM } : null));
        assert.doesNotThrow(() => a.destroy());
      }
      assert.equal(a.state, 'closed');
      assert.equal(mux.size, 0);
      assert.equal(fdTarget(fd), null, 'the fd was closed');
    } finally {
      mux.close();
      a.destroy();
      b.destroy();
    }
  });

  it('Listener.accept with noDelay: a refused TCP_NODELAY leaks no fd (the accepted socket is destroyed and the error thrown)', () => {
    using listener = Listener.listen({ host: '127.0.0.1', port: 0, noDelay: true });
    using _client = Socket.connect({ host: '127.0.0.1', port: listener.port });
    const before = trackFds();
    let accepted: Socket | null = null;
    {
      using _ = injectFaults((call) => (call.name === 'setsockopt' ? { errno: ERRNO.ENOMEM } : null));
      for (let i = 0; i < 200 && accepted === null; i++) {
        try {
          accepted = listener.accept();
        } catch (err) {
          assert.ok(err instanceof SocketError && err.code === 'ENOMEM' && err.syscall === 'setsockopt', String(err));
          break;
        }
        if (accepted === null) sys.poll(new Uint8Array(8), 0, 5);
      }
    }
    assert.equal(accepted, null, 'the accept failed');
    before.assertNoLeak();
  });

  it('Listener out of fds (EMFILE): thrown once per shortage, then paused (no busy loop) and retried by itself until the backlog is served', () => {
    using listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const clients = [0, 1, 2].map(() => Socket.connect({ host: '127.0.0.1', port: listener.port }));
    using mux = new Multiplexer();
    mux.add(listener);
    let failures = 3; // the next three accept4 calls fail: one shortage
    const accepted: Socket[] = [];
    const thrown: string[] = [];
    let readyReports = 0;
    try {
      using _ = injectFaults((call) => (call.name === 'accept4' && failures-- > 0 ? { errno: ERRNO.EMFILE } : null));
      for (let round = 0; round < 200 && accepted.length < 3; round++) {
        for (const e of mux.wait(20)) {
          if (e.target !== listener) continue;
          readyReports++;
          try {
            for (let s = listener.accept(); s !== null; s = listener.accept()) accepted.push(s);
          } catch (err) {
            thrown.push((err as SocketError).code);
          }
        }
      }
    } finally {
      for (const s of [...clients, ...accepted]) s.destroy();
    }
    assert.deepEqual(thrown, ['EMFILE'], 'one shortage, one error');
    assert.equal(accepted.length, 3, 'every waiting client was served once fds were back');
    assert.ok(readyReports <= 12, `the paused listener was reported ready ${readyReports} times (a busy loop reports it every wait)`);
  });
});
