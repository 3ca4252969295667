/**
 * The choke point (ffi/syscall.ts) with fake libc functions that set errno through koffi, then
 * against the real libc: EBADF from close, a real signal interrupting epoll_wait, if_nametoindex.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import koffi from 'koffi';
import {
  ERRNO,
  EPOLL_CLOEXEC,
  IN_PROGRESS,
  SIZEOF,
  SocketError,
  WOULD_BLOCK,
  checked,
  checkedWait,
  checkedPoll,
  ifNameToIndex,
  libc,
  sys,
} from '../ffi/index.ts';
import { fdTarget } from './helpers/fd.ts';

const { EINTR, EAGAIN, EINPROGRESS, ECONNREFUSED } = ERRNO;

/** A fake libc call: fails with each errno of `errnos` in turn (-1 + errno), then returns `result`. */
function failing(errnos: number[], result = 5) {
  const fake = (_fd: number) => {
    fake.calls++;
    const errno = errnos[fake.calls - 1];
    if (errno === undefined) return result;
    koffi.errno(errno);
    return -1;
  };
  fake.calls = 0;
  return fake;
}

test('checked retries EINTR until the call succeeds', () => {
  const fake = failing([EINTR, EINTR], 5);
  assert.equal(checked('fake', fake)(3), 5);
  assert.equal(fake.calls, 3);
});

test('checked returns WOULD_BLOCK for EAGAIN, without retrying', () => {
  const fake = failing([EAGAIN]);
  assert.equal(checked('fake', fake)(3), WOULD_BLOCK);
  assert.equal(fake.calls, 1);
  assert.ok(WOULD_BLOCK < 0 && IN_PROGRESS < 0 && WOULD_BLOCK !== IN_PROGRESS);
});

test('EINPROGRESS is a value only with inProgressOk', () => {
  assert.equal(checked('connect', failing([EINPROGRESS]), { inProgressOk: true })(3), IN_PROGRESS);
  assert.throws(() => checked('connect', failing([EINPROGRESS]))(3), {
    name: 'SocketError',
    code: 'EINPROGRESS',
    syscall: 'connect',
  });
});

test('any other errno throws a Node-style SocketError', () => {
  const err = captureError(() => checked('connect', failing([ECONNREFUSED]))(7));
  assert.ok(err instanceof SocketError && err instanceof Error);
  assert.equal(err.code, 'ECONNREFUSED');
  assert.equal(err.errno, -ECONNREFUSED);
  assert.equal(err.syscall, 'connect');
  assert.equal(err.fd, 7);
  assert.match(err.message, /^connect ECONNREFUSED \(fd 7\): connection refused/);
  // fdFirst: false (socket, open...): the first argument is not an fd, so it is not reported.
  const noFd = captureError(() => checked('socket', failing([ECONNREFUSED]), { fdFirst: false })(2));
  assert.equal(noFd.fd, undefined);
  assert.doesNotMatch(noFd.message, /fd/);
});

test('checked wraps functions of 1 to 5 arguments, passing every argument on each retry', () => {
  const seen: unknown[][] = [];
  // Each fake fails once with EINTR so that the retry path of every arity runs too.
  const fake = (...args: unknown[]) => {
    seen.push(args);
    if (seen.length % 2 === 1) {
      koffi.errno(EINTR);
      return -1;
    }
    return args.length;
  };
  const fakes = [
    (a: number) => fake(a),
    (a: number, b: number) => fake(a, b),
    (a: number, b: number, c: number) => fake(a, b, c),
    (a: number, b: number, c: number, d: number) => fake(a, b, c, d),
    (a: number, b: number, c: number, d: number, e: number) => fake(a, b, c, d, e),
  ];
  fakes.forEach((f, i) => {
    const args = [10, 11, 12, 13, 14].slice(0, i + 1);
    assert.equal((checked('fake', f) as (...a: number[]) => number)(...args), i + 1);
  });
  assert.deepEqual(
    seen,
    fakes.flatMap((_, i) => [[10, 11, 12, 13, 14].slice(0, i + 1), [10, 11, 12, 13, 14].slice(0, i + 1)]),
  );
  const six = (_a: number, _b: number, _c: number, _d: number, _e: number, _f: number) => 0;
  assert.throws(() => checked('six', six as never), { name: 'TypeError', message: /6 arguments/ });
});

/** Sleeps the thread (as a real wait would) so that time passes before the fake reports EINTR. */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A fake wait: the first call sleeps 30 ms and fails with EINTR, the next returns 0 at once. */
function interruptedWait() {
  const timeouts: number[] = [];
  const fake = (_fd: number, _buf: unknown, _n: number, timeout: number) => {
    timeouts.push(timeout);
    if (timeouts.length > 1) return 0;
    sleepMs(30);
    koffi.errno(EINTR);
    return -1;
  };
  return { wait: checkedWait('fake_wait', fake), timeouts };
}

test('checkedWait retries EINTR with the time that remains', () => {
  const { wait, timeouts } = interruptedWait();
  assert.equal(wait(3, null, 1, 200), 0);
  assert.equal(timeouts.length, 2);
  assert.equal(timeouts[0], 200);
  assert.ok(timeouts[1] > 0 && timeouts[1] <= 200 - 25, `retried with ${timeouts[1]} ms`);
});

test('checkedWait keeps a timeout of 0 at 0 and a negative one negative', () => {
  const zero = interruptedWait();
  zero.wait(3, null, 1, 0);
  assert.deepEqual(zero.timeouts, [0, 0]);
  const forever = interruptedWait();
  forever.wait(3, null, 1, -1);
  assert.deepEqual(forever.timeouts, [-1, -1]);
});

test('checkedWait throws other errors, naming the fd', () => {
  const fake = (_fd: number, _b: unknown, _n: number, _t: number) => (koffi.errno(ERRNO.EBADF), -1);
  assert.throws(() => checkedWait('epoll_wait', fake)(9, null, 1, 0), { code: 'EBADF', syscall: 'epoll_wait', fd: 9 });
});

test('checkedPoll retries EINTR with the remaining time and names no fd in errors', () => {
  const timeouts: number[] = [];
  let calls = 0;
  const fake = (_fds: unknown, _n: number, timeout: number) => {
    timeouts.push(timeout);
    if (++calls === 1) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30);
      return koffi.errno(ERRNO.EINTR), -1;
    }
    return 0;
  };
  assert.equal(checkedPoll(fake)(null, 0, 200), 0);
  assert.equal(timeouts.length, 2);
  assert.ok(timeouts[1] > 0 && timeouts[1] <= 175, `retried with ${timeouts[1]} ms`);
  const err = captureError(() => checkedPoll(() => (koffi.errno(ERRNO.EINVAL), -1))(null, 0, 0));
  assert.equal(err.code, 'EINVAL');
  assert.equal(err.syscall, 'poll');
  assert.equal(err.fd, undefined);
});

test('sys.close(-1) throws EBADF like Node would', () => {
  assert.throws(() => sys.close(-1), { name: 'SocketError', code: 'EBADF', syscall: 'close', errno: -9, fd: -1 });
});

test('a real signal interrupts epoll_wait, which then waits out the rest of its timeout', async () => {
  // SIGWINCH, not SIGUSR2: Node 24's test runner hands its children every option explicitly,
  // and an explicit --report-signal=SIGUSR2 turns on --report-on-signal, so SIGUSR2 would write
  // a diagnostic report into the working tree. SIGWINCH's default action is to ignore it.
  let signals = 0;
  const onSignal = () => signals++;
  process.on('SIGWINCH', onSignal);
  const ep = sys.epoll_create1(EPOLL_CLOEXEC);
  // A counting wrapper around the real epoll_wait, to see that the signal really caused a retry.
  let calls = 0;
  const countingWait = checkedWait('epoll_wait', (a, b, c, d) => (calls++, libc.epoll_wait(a, b, c, d)));
  const events = new Uint8Array(12 * SIZEOF.epoll_event);
  try {
    for (const wait of [sys.epoll_wait, countingWait]) {
      const child = spawn('sh', ['-c', `sleep 0.1; kill -WINCH ${process.pid}`], { stdio: 'ignore' });
      const start = performance.now();
      const n = wait(ep, events, 12, 400);
      const elapsed = performance.now() - start;
      // The child must be gone before the listener is removed, or its signal could come late.
      await once(child, 'exit');
      assert.equal(n, 0);
      assert.ok(elapsed >= 380, `epoll_wait returned after ${elapsed.toFixed(0)} ms`);
    }
    // The libuv handler runs the JS listener on a later turn of the loop.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(signals, 2);
    // SIGWINCH interrupts the wait; the child's SIGCHLD usually does too: one retry per signal.
    assert.ok(calls >= 2, `epoll_wait was called ${calls} time(s): the signal did not interrupt it`);
  } finally {
    sys.close(ep);
    process.off('SIGWINCH', onSignal);
  }
  assert.equal(fdTarget(ep), null);
});

test('SocketError.withDetails puts the address, port or path in the message', () => {
  const base = new SocketError('connect', ECONNREFUSED, { fd: 4 });
  const v4 = base.withDetails({ address: '127.0.0.1', port: 9 });
  assert.ok(v4 instanceof SocketError);
  assert.equal(v4.address, '127.0.0.1');
  assert.equal(v4.port, 9);
  assert.equal(v4.fd, 4);
  assert.equal(v4.code, 'ECONNREFUSED');
  assert.match(v4.message, /^connect ECONNREFUSED 127\.0\.0\.1:9: connection refused/);
  assert.match(base.withDetails({ address: '::1', port: 9 }).message, /\[::1\]:9/);
  const unix = new SocketError('bind', ERRNO.EADDRINUSE).withDetails({ path: '/tmp/x.sock' });
  assert.equal(unix.path, '/tmp/x.sock');
  assert.match(unix.message, /^bind EADDRINUSE "\/tmp\/x\.sock": /);
});

test('ifNameToIndex finds lo and reports a missing interface', () => {
  assert.ok(ifNameToIndex('lo') > 0);
  assert.equal(sys.if_nametoindex('lo'), ifNameToIndex('lo'));
  assert.throws(() => ifNameToIndex('no-such-if0'), { name: 'SocketError', syscall: 'if_nametoindex', code: 'ENODEV' });
});

function captureError(fn: () => unknown): SocketError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SocketError, `expected a SocketError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to throw');
}
