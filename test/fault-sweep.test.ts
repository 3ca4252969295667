/**
 * The fault sweep (issue 11, "Hardening"): every call site that the send, receive, accept,
 * connect, flush, close, recvmsg and resolve paths reach, times every fault the kernel can really
 * return there, injected at the choke point (ffi/faults.ts). Each case checks the invariants
 * listed in test/helpers/fault-sweep.ts: nothing escapes wait(), public calls throw only
 * documented SocketErrors, no fd leaks, no byte lost silently, no stall, and transient faults
 * leave no trace. The number of cases swept is printed (and asserted to be substantial).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EAI_AGAIN, EAI_FAIL, EAI_MEMORY, EAI_SYSTEM, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, F_DUPFD_CLOEXEC } from '../ffi/constants.ts';
import { ERRNO } from '../ffi/errno.ts';
import { faultPointNames } from '../ffi/faults.ts';
import { Interest, Listener, Multiplexer, Socket, SocketError, type BackendName, type MultiplexerEvent } from '../lib/index.ts';
import { resolve } from '../lib/core/resolve.ts';
import { trackFds } from './helpers/fd.ts';
import { pattern } from './helpers/sockets.ts';
import {
  EAGAIN, EINTR, FAILED, SHORT, Violation, fatal, retryable, sweep, transient,
  type Context, type FaultTable, type Scenario, type SweepResult,
} from './helpers/fault-sweep.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** What the kernel can really return at each call (EBADF, EFAULT, EINVAL would be our own bugs). */
const table: FaultTable = (name, args) => {
  switch (name) {
    case 'send':
      return [EINTR, EAGAIN, SHORT, retryable('ENOBUFS'), retryable('ENOMEM'), fatal('ECONNRESET'), fatal('EPIPE')];
    case 'sendmsg':
      return [EINTR, EAGAIN, SHORT, retryable('ENOBUFS'), retryable('ENOMEM'), retryable('ETOOMANYREFS'), fatal('EPIPE'), fatal('ECONNRESET')];
    case 'recv':
      return [EINTR, EAGAIN, SHORT, retryable('ENOMEM'), fatal('ECONNRESET'), fatal('ETIMEDOUT')];
    case 'recvmsg':
      return [EINTR, EAGAIN, SHORT, retryable('ENOMEM'), fatal('ECONNRESET')];
    case 'accept4':
      return [EINTR, EAGAIN, transient('ECONNABORTED', { errno: 103 }), retryable('EMFILE'), retryable('ENFILE'), retryable('ENOBUFS'), retryable('ENOMEM'), retryable('EPERM')];
    case 'connect':
      return [EINTR, fatal('ECONNREFUSED'), fatal('ENETUNREACH'), fatal('EADDRNOTAVAIL'), fatal('EAGAIN'), fatal('ETIMEDOUT'), fatal('EACCES')];
    case 'socket':
      return [fatal('EMFILE'), fatal('ENFILE'), fatal('ENOBUFS'), fatal('ENOMEM')];
    case 'socketpair':
      return [fatal('EMFILE'), fatal('ENFILE'), fatal('ENOMEM')];
    case 'bind':
      return [fatal('EADDRINUSE'), fatal('EACCES')];
    case 'listen':
      return [fatal('EADDRINUSE')];
    case 'getsockname':
      return [fatal('ENOBUFS')];
    case 'close':
      // Linux releases the fd whatever close reports (the injector closes it for real).
      return [transient('EINTR', { errno: 4 }), transient('EIO', { errno: 5 })];
    case 'epoll_create1':
      return [fatal('EMFILE'), fatal('ENOMEM')];
    case 'epoll_ctl':
      // Only adding allocates (ENOMEM) or meets max_user_watches (ENOSPC); MOD and DEL of a
      // registered fd have no failure the kernel can produce for a correct caller.
      return args[1] === EPOLL_CTL_ADD ? [fatal('ENOMEM'), fatal('ENOSPC')] : [];
    case 'epoll_wait':
      return [EINTR];
    case 'poll':
      return [EINTR, retryable('ENOMEM')];
    case 'io_uring_enter':
      // EAGAIN (no memory for requests) and EBUSY (CQ overflow) are answers the backend takes as
      // "nothing more now"; whatever was not submitted goes with the next enter.
      return [EINTR, transient('EAGAIN', { errno: ERRNO.EAGAIN }), transient('EBUSY', { errno: ERRNO.EBUSY })];
    case 'io_uring_setup':
      // Refused (seccomp, io_uring_disabled, no memory): the multiplexer runs epoll instead.
      return [transient('EPERM', { errno: ERRNO.EPERM }), transient('ENOSYS', { errno: ERRNO.ENOSYS }), transient('ENOMEM', { errno: ERRNO.ENOMEM })];
    case 'mmap':
      return [transient('ENOMEM', { errno: ERRNO.ENOMEM })];
    case 'fcntl':
      return args[1] === F_DUPFD_CLOEXEC ? [retryable('EMFILE')] : []; // sendWithFds duplicating fds: nothing taken, try again
    default:
      return []; // getsockopt of SO_ERROR / SO_TYPE / SO_DOMAIN, shutdown, setsockopt: nothing real
  }
};

const OPS: Record<number, string> = { [EPOLL_CTL_ADD]: 'ADD', [EPOLL_CTL_MOD]: 'MOD', [EPOLL_CTL_DEL]: 'DEL' };
const detail = (name: string, args: readonly unknown[]): string =>
  name === 'epoll_ctl' ? OPS[args[1] as number] : name === 'fcntl' && args[1] === F_DUPFD_CLOEXEC ? 'F_DUPFD_CLOEXEC' : '';

const SYNC_POINTS = faultPointNames().filter((n) => n !== 'getaddrinfo');
const BIG_QUEUE = { sendQueueLimit: 1 << 24 };
/** Small kernel buffers, so that both sides queue and the multiplexer's flushes are reached. */
const SMALL_BUFFERS = { sendBufferSize: 8192, receiveBufferSize: 8192 };

/**
 * `wait()` throws only when the kernel's wait itself fails, which only poll(2) can for a correct
 * caller (ENOMEM, documented); the multiplexer stays usable. Anything else it throws is a violation.
 */
function waitOn(ctx: Context, mux: Multiplexer): readonly MultiplexerEvent[] {
  try {
    return mux.wait(1);
  } catch (err) {
    if (err instanceof SocketError && err.syscall === 'poll' && err.code === 'ENOMEM') {
      ctx.reported(err, 'wait');
      return [];
    }
    throw new Violation(`wait() threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

/** Runs cleanups in reverse order; none may throw (close and destroy never do). */
function cleanUp(steps: (() => void)[]): void {
  for (const step of steps.reverse()) {
    try {
      step();
    } catch (err) {
      throw new Violation(`cleanup threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
}

/** Checks that `bytes` continue `expected` at `at` (no reordering, duplication or corruption). */
function checkPrefix(ctx: Context, expected: Uint8Array, at: number, bytes: Uint8Array, who: string): void {
  ctx.check(at + bytes.byteLength <= expected.byteLength && Buffer.compare(bytes, expected.subarray(at, at + bytes.byteLength)) === 0, `${who}: bytes ${at}..${at + bytes.byteLength} are not the ones sent`);
}

const noted = new WeakSet<object>();

/** A socket whose connection failed: report why (once), and close it as an application would. */
function dropIfFailed(ctx: Context, socket: Socket, who: string): void {
  const err = socket.error;
  if (err === null) return;
  if (!noted.has(err)) {
    noted.add(err);
    ctx.reported(err, `${who}.error`);
  }
  socket.destroy();
}

/**
 * TCP: listen, connect, accept; the client sends 192 KiB through small kernel buffers (both
 * sides queue), then shuts down writing;
 * the server echoes every byte (retrying a send the kernel refused) and closes gracefully at EOF;
 * the client reads the echo to EOF.
 */
const tcpEcho = (backend: BackendName): Scenario => ({
  name: `tcp echo (${backend})`,
  run(ctx) {
    const data = pattern(192 * 1024, 11);
    const steps: (() => void)[] = [];
    const mux = ctx.call('new Multiplexer', () => new Multiplexer({ backend }));
    if (mux === FAILED) return false;
    steps.push(() => mux.close());
    try {
      const listener = ctx.call('Listener.listen', () => Listener.listen({ host: '127.0.0.1', port: 0, socket: BIG_QUEUE, socketOptions: SMALL_BUFFERS }));
      if (listener === FAILED) return false;
      steps.push(() => listener.close());
      if (ctx.call('mux.add(listener)', () => mux.add(listener)) === FAILED) return false;
      const client = ctx.call('Socket.connect', () => Socket.connect({ host: '127.0.0.1', port: listener.port!, ...BIG_QUEUE, socketOptions: SMALL_BUFFERS }));
      if (client === FAILED) return false;
      steps.push(() => client.destroy());
      if (ctx.call('mux.add(client)', () => mux.add(client)) === FAILED) return false;
      let server: Socket | null = null;
      let sent = 0;
      let shut = false;
      let atServer = 0;
      let echoed = 0;
      let pending: Uint8Array | null = null; // an echo the server's kernel refused: sent again later
      const buffer = new Uint8Array(32 * 1024);
      const deadline = performance.now() + 4000;
      const serverDone = () => (server === null ? client.state === 'closed' : server.state === 'closed');
      while (client.state !== 'closed' || !serverDone()) {
        ctx.check(performance.now() < deadline, `stalled: sent ${sent}, at server ${atServer}, echoed ${echoed}, client ${client.state}, server ${server?.state}`);
        while (client.state === 'open' && sent < data.length && !client.sendQueueFull) {
          const length = Math.min(16 * 1024, data.length - sent);
          const status = ctx.call('client.send', () => client.send(data.subarray(sent, sent + length)));
          if (status === FAILED || status === 'not-sent' || status === 'closed') break;
          sent += length;
        }
        if (!shut && sent === data.length && client.state === 'open') shut = ctx.call('client.shutdown', () => client.shutdown('write')) !== FAILED;
        if (server !== null && pending !== null && server.state === 'open') {
          const bytes: Uint8Array = pending;
          const status = ctx.call('server.send (again)', () => server!.send(bytes));
          if (status !== FAILED) pending = null;
        }
        for (const event of waitOn(ctx, mux)) {
          if (event.error !== null) ctx.reported(event.error, 'event.error');
          if (event.target === listener) {
            const accepted = ctx.call('listener.accept', () => listener.accept());
            if (accepted === FAILED || accepted === null) continue;
            const s: Socket = accepted;
            server = s;
            steps.push(() => s.destroy());
            if (ctx.call('mux.add(server)', () => mux.add(s)) === FAILED) s.destroy();
          } else if (event.target === server && server.state === 'open' && pending === null) {
            const s: Socket = server;
            for (;;) {
              const n = ctx.call('server.receiveInto', () => s.receiveInto(buffer));
              if (n === FAILED || n === 0) break;
              if (n < 0) {
                s.close(); // graceful: the multiplexer finishes the echo, then closes
                break;
              }
              checkPrefix(ctx, data, atServer, buffer.subarray(0, n), 'server');
              atServer += n;
              const status = ctx.call('server.send', () => s.send(buffer, n));
              if (status === FAILED) {
                pending = buffer.slice(0, n);
                break;
              }
              if (status === 'closed') break;
            }
          } else if (event.target === client && client.state !== 'closed') {
            for (;;) {
              const n = ctx.call('client.receiveInto', () => client.receiveInto(buffer));
              if (n === FAILED || n === 0) break;
              if (n < 0) {
                client.close();
                break;
              }
              checkPrefix(ctx, data, echoed, buffer.subarray(0, n), 'client');
              echoed += n;
            }
          }
        }
        dropIfFailed(ctx, client, 'client');
        if (server !== null) dropIfFailed(ctx, server, 'server');
      }
      return atServer === data.length && echoed === data.length;
    } finally {
      cleanUp(steps);
    }
  },
});

/**
 * Unix fd passing: 3 x (100 KiB of bytes, then 4 KiB with an fd attached), sent faster than the
 * peer reads so that fds wait in the send queue; the receiver takes every byte and fd
 * (receiveWithFds) and closes what it received.
 */
const unixFds = (backend: BackendName): Scenario => ({
  name: `unix fd passing (${backend})`,
  run(ctx) {
    const parts = [100 * 1024, 4096, 100 * 1024, 4096, 100 * 1024, 4096];
    const data = pattern(parts.reduce((a, b) => a + b), 12);
    const steps: (() => void)[] = [];
    const mux = ctx.call('new Multiplexer', () => new Multiplexer({ backend }));
    if (mux === FAILED) return false;
    steps.push(() => mux.close());
    try {
      const pair = ctx.call('Socket.pair', () => Socket.pair(BIG_QUEUE));
      if (pair === FAILED) return false;
      const [a, b] = pair;
      steps.push(() => a.destroy(), () => b.destroy());
      const passed = ctx.call('Socket.pair (to pass)', () => Socket.pair());
      if (passed === FAILED) return false;
      steps.push(() => passed[0].destroy(), () => passed[1].destroy());
      if (ctx.call('mux.add(a)', () => mux.add(a, Interest.NONE)) === FAILED) return false;
      if (ctx.call('mux.add(b)', () => mux.add(b)) === FAILED) return false;
      let part = 0;
      let sent = 0;
      let shut = false;
      let received = 0;
      let fdsReceived = 0;
      const buffer = new Uint8Array(64 * 1024);
      const deadline = performance.now() + 4000;
      while (b.state !== 'closed' || a.state !== 'closed') {
        ctx.check(performance.now() < deadline, `stalled: sent ${sent}, received ${received}, fds ${fdsReceived}, a ${a.state}, b ${b.state}`);
        while (part < parts.length && a.state === 'open') {
          const bytes = data.subarray(sent, sent + parts[part]);
          const status = ctx.call(part % 2 ? 'a.sendWithFds' : 'a.send', () => (part % 2 ? a.sendWithFds(bytes, [passed[0]]) : a.send(bytes)));
          if (status === FAILED || status === 'not-sent' || status === 'closed') break;
          sent += bytes.byteLength;
          part++;
        }
        if (!shut && part === parts.length && a.state === 'open') shut = ctx.call('a.close', () => a.close()) !== FAILED;
        for (const event of waitOn(ctx, mux)) {
          if (event.error !== null) ctx.reported(event.error, 'event.error');
          if (event.target !== b || b.state === 'closed') continue;
          for (;;) {
            const got = ctx.call('b.receiveWithFds', () => b.receiveWithFds(buffer, { maxFds: 4 }));
            if (got === FAILED || (got.bytes.byteLength === 0 && got.status === 'alive')) break;
            for (const fd of got.fds) {
              fdsReceived++;
              if (fd instanceof Listener) fd.close();
              else if (fd instanceof Socket) fd.destroy();
              else fd.close();
            }
            if (got.status === 'closed') {
              b.close();
              break;
            }
            checkPrefix(ctx, data, received, got.bytes, 'b');
            received += got.bytes.byteLength;
          }
        }
        dropIfFailed(ctx, a, 'a');
        dropIfFailed(ctx, b, 'b');
        if (a.state === 'closed' && a.error !== null) b.destroy(); // the rest will never come
      }
      return received === data.length && fdsReceived === 3;
    } finally {
      cleanUp(steps);
    }
  },
});

/**
 * A socket closing gracefully (close() with a queue the kernel cannot take yet) when its
 * multiplexer closes: it gets its last flush and is destroyed, and the peer reads every byte.
 */
const closeWhileClosing = (backend: BackendName): Scenario => ({
  name: `multiplexer closed under a closing socket (${backend})`,
  run(ctx) {
    const steps: (() => void)[] = [];
    const mux = ctx.call('new Multiplexer', () => new Multiplexer({ backend }));
    if (mux === FAILED) return false;
    steps.push(() => mux.close());
    try {
      const pair = ctx.call('Socket.pair', () => Socket.pair(BIG_QUEUE));
      if (pair === FAILED) return false;
      const [a, b] = pair;
      steps.push(() => a.destroy(), () => b.destroy());
      if (ctx.call('mux.add(a)', () => mux.add(a, Interest.NONE)) === FAILED) return false;
      const chunk = pattern(64 * 1024, 13);
      const expected: Uint8Array[] = [];
      // Fill the kernel buffer until the rest waits in the queue.
      for (let i = 0; i < 64 && a.state === 'open' && a.queuedBytes === 0; i++) {
        const status = ctx.call('a.send', () => a.send(chunk));
        if (status === FAILED) continue;
        if (status === 'closed') break;
        expected.push(chunk);
      }
      const data = Buffer.concat(expected);
      if (a.state === 'open') ctx.call('a.close', () => a.close());
      const buffer = new Uint8Array(64 * 1024);
      let received = 0;
      let ended = false;
      const read = () => {
        for (;;) {
          const n = ctx.call('b.receiveInto', () => b.receiveInto(buffer));
          if (n === FAILED || n === 0) return;
          if (n < 0) {
            ended = true;
            return;
          }
          checkPrefix(ctx, data, received, buffer.subarray(0, n), 'b');
          received += n;
        }
      };
      // Take everything the kernel holds (all but the queue), so that the last flush fits.
      const drainBy = performance.now() + 2000;
      while (received < data.length - a.queuedBytes && !ended && performance.now() < drainBy) read();
      mux.close();
      ctx.check(a.state === 'closed', `the closing socket was left ${a.state} by Multiplexer.close()`);
      if (a.error !== null) ctx.reported(a.error, 'a.error');
      const deadline = performance.now() + 2000;
      while (!ended) {
        ctx.check(performance.now() < deadline, `stalled: received ${received} of ${data.length}`);
        read();
      }
      if (b.error !== null) ctx.reported(b.error, 'b.error');
      b.destroy();
      return received === data.length;
    } finally {
      cleanUp(steps);
    }
  },
});

/** 300 concurrent lookups of 'localhost' (more than koffi's 256): every one settles, errors have codes. */
const manyLookups: Scenario = {
  name: 'resolve',
  async run(ctx) {
    const results = await Promise.allSettled(Array.from({ length: 300 }, () => resolve('localhost')));
    for (const r of results) if (r.status === 'rejected') ctx.reported(r.reason, 'resolve');
    return results.every((r) => r.status === 'fulfilled' && r.value.length > 0);
  },
};

const resolveTable: FaultTable = (name) =>
  name !== 'getaddrinfo'
    ? []
    : [
        ...[EAI_AGAIN, EAI_MEMORY, EAI_FAIL, EAI_SYSTEM].map((eai) => ({ label: `eai ${eai}`, fault: { eai }, transient: false })),
        { label: 'koffi refuses', fault: { throws: new Error('Too many asynchronous calls are running') }, transient: false },
      ];

const totals: { scenario: string; sites: number; cases: number }[] = [];

function report(name: string, result: SweepResult): void {
  const swept = result.cases - result.unreached.length;
  if (process.env.FAULT_SWEEP_VERBOSE) {
    console.log(`${name}: sites\n  ${result.sites.join('\n  ')}\nunreached:\n  ${result.unreached.join('\n  ')}`);
  }
  totals.push({ scenario: name, sites: result.sites.length, cases: swept });
  assert.deepEqual(result.violations, [], `${name}: ${result.violations.length} broken invariants`);
}

describe('fault sweep: every call site x every fault the kernel can return there', () => {
  const scenarios = (['epoll', 'poll', 'io_uring'] as const).flatMap((backend) => [tcpEcho(backend), unixFds(backend), closeWhileClosing(backend)]);
  for (const scenario of scenarios) {
    it(scenario.name, async () => {
      const result = await sweep(scenario, SYNC_POINTS, table, detail);
      report(scenario.name, result);
    });
  }

  it('resolve', async () => {
    const result = await sweep(manyLookups, ['getaddrinfo'], resolveTable);
    report('resolve', result);
  });

  it('swept what it should: every path, about 300 cases (a broken site finder would sweep nothing)', () => {
    const cases = totals.reduce((n, t) => n + t.cases, 0);
    const sites = totals.reduce((n, t) => n + t.sites, 0);
    console.log(`fault sweep: ${cases} (call site x fault) cases at ${sites} call sites: ${totals.map((t) => `${t.scenario} ${t.cases}`).join(', ')}`);
    assert.equal(totals.length, 10, 'every scenario ran');
    assert.ok(cases >= 250, `${cases} cases`);
  });
});
