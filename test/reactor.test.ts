/**
 * Reactor: handlers on Node's event loop, ref/unref and process exit, idle CPU, busy-poll.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Interest, Listener, Reactor, Socket, SocketClosedError, type MultiplexerEvent } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { MUX_CONFIGS, type MuxConfig } from './helpers/backends.ts';
import { connectedPair, pattern } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** Every configuration a Reactor can drive (every backend but poll, and io_uring with ringSend); the suite below runs once per configuration. */
const REACTOR_CONFIGS = MUX_CONFIGS.filter((config): config is MuxConfig & { backend: 'epoll' | 'io_uring' } => config.backend !== 'poll');

function runChild(scenario: string, backend: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/reactor-child.ts', scenario, backend], {
    encoding: 'utf8',
    timeout: 15_000,
  });
}

function child(scenario: string, backend: string): Record<string, unknown> {
  const run = runChild(scenario, backend);
  assert.equal(run.status, 0, `child ${scenario} (signal ${run.signal}): ${run.stderr}`);
  return Object.assign({}, ...run.stdout.trim().split('\n').map((line) => JSON.parse(line)));
}

/** An echo server on a reactor; resolves with what `count` clients got back. */
async function echoThrough(reactor: Reactor, payloads: Uint8Array[]): Promise<Buffer[]> {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
  const port = listener.port;
  const accepted: Socket[] = [];
  reactor.add(listener, () => {
    for (let s = listener.accept(); s !== null; s = listener.accept()) {
      accepted.push(s);
      // One receive and one send per event: with pauseReadingWhenFull (on for accepted sockets)
      // such a handler never meets 'not-sent', whatever the kernel takes (a loop of receives
      // could fill the queue within one event, which ringSend, sending at the end of the turn,
      // makes likely).
      reactor.add(s, (e: MultiplexerEvent<Socket>) => {
        const socket = e.target;
        const { bytes, status } = socket.receive();
        if (status === 'closed') return socket.close();
        if (bytes.byteLength > 0) assert.notEqual(socket.send(bytes), 'not-sent');
      });
    }
  });
  try {
    return await Promise.all(
      payloads.map(
        (payload) =>
          new Promise<Buffer>((resolve, reject) => {
            const client = Socket.connect({ host: '127.0.0.1', port });
            const chunks: Buffer[] = [];
            let received = 0;
            client.send(payload);
            reactor.add(client, (e) => {
              if (e.error) return reject(e.error);
              for (;;) {
                const { bytes, status } = client.receive();
                if (bytes.byteLength > 0) {
                  chunks.push(Buffer.from(bytes));
                  received += bytes.byteLength;
                  if (received === payload.byteLength) client.shutdown('write');
                }
                if (status === 'closed') {
                  client.close();
                  return resolve(Buffer.concat(chunks));
                }
                if (bytes.byteLength === 0) return;
              }
            });
          }),
      ),
    );
  } finally {
    listener.close();
    for (const s of accepted) s.destroy();
  }
}

for (const { label, backend, ringSend } of REACTOR_CONFIGS) describe(`Reactor (${label})`, () => {
  /** The child fixture's backend argument: the name, `+send` for ringSend. */
  const childBackend = ringSend ? `${backend}+send` : backend;
  it('runs handlers from the event loop: 20 clients echo 256 KiB each', async () => {
    const reactor = new Reactor({ backend, ringSend, _promptWake: ringSend ? false : undefined });
    try {
      const payloads = Array.from({ length: 20 }, (_, i) => pattern(256 * 1024, i + 1));
      const got = await echoThrough(reactor, payloads);
      got.forEach((bytes, i) => assert.ok(bytes.equals(payloads[i]), `client ${i} got its bytes back`));
      assert.equal(reactor.multiplexer.size, 0, 'every socket left the reactor when closed');
    } finally {
      reactor.close();
    }
  });

  it('works with busy-poll on, and validates its options', async () => {
    const reactor = new Reactor({ backend, ringSend, _promptWake: ringSend ? false : undefined, busyPollMs: 0.2, busyPollBudgetMs: 2 });
    try {
      const payloads = Array.from({ length: 4 }, (_, i) => pattern(64 * 1024, i + 7));
      const got = await echoThrough(reactor, payloads);
      got.forEach((bytes, i) => assert.ok(bytes.equals(payloads[i])));
    } finally {
      reactor.close();
    }
    assert.throws(() => new Reactor({ busyPollMs: -1 }), /options.busyPollMs/);
    assert.throws(() => new Reactor({ busyPollBudgetMs: Number.NaN }), /options.busyPollBudgetMs/);
    assert.throws(() => new Reactor({ maxRounds: 0 }), /options.maxRounds/);
    assert.throws(() => new Reactor(null as never), /options/);
    assert.throws(() => new Reactor({ backend: 'poll' as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /options.backend/ });
  });

  it('checks handlers and refuses work once closed', () => {
    const reactor = new Reactor({ backend, ringSend, _promptWake: ringSend ? false : undefined });
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      assert.throws(() => reactor.add(listener, 'not a function' as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"handler"/ });
      reactor.add(listener, () => {});
      assert.throws(() => reactor.modify(listener, Interest.READABLE, 42 as never), /"handler"/);
      reactor.modify(listener, Interest.READABLE, () => {});
      reactor.modify(listener, 0);
      assert.equal(reactor.drain(), 0);
      reactor.remove(listener);
      reactor.close();
      reactor.close();
      assert.equal(reactor.closed, true);
      for (const call of [() => reactor.add(listener, () => {}), () => reactor.remove(listener), () => reactor.drain()]) {
        assert.throws(call, SocketClosedError);
      }
    } finally {
      listener.close();
      reactor.close();
    }
  });

  it('a graceful close whose last sends meet a peer reset calls the handler once more, with the error', async () => {
    const reactor = new Reactor({ backend, ringSend, _promptWake: ringSend ? false : undefined });
    const pair = connectedPair();
    try {
      const errors: string[] = [];
      reactor.add(pair.client, (event) => {
        if (event.error !== null) errors.push(event.error.code);
      }, 0);
      pair.client.send(pattern(16 * 1024 * 1024, 6));
      const deadline = performance.now() + 5000;
      while (pair.client.queuedBytes === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.ok(pair.client.queuedBytes > 0, 'bytes the kernel could not take');
      pair.client.close(); // 'closing' until the queue drains, which it never will
      pair.server.setOption('linger', 0);
      pair.server.destroy(); // RST
      await pair.client.whenClosed();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(errors.length, 1, `one error event: ${errors.join(', ')}`);
      assert.ok(['ECONNRESET', 'EPIPE'].includes(errors[0]), errors[0]);
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      reactor.close();
      pair.close();
    }
  });

  it('stops calling handlers after close() from inside a handler', async () => {
    const reactor = new Reactor({ backend, ringSend, _promptWake: ringSend ? false : undefined });
    const pairs = Array.from({ length: 3 }, () => connectedPair());
    try {
      for (const p of pairs) p.client.send(Buffer.from('data for everyone'));
      let calls = 0;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no handler ran within 5 s')), 5000);
        for (const p of pairs) {
          reactor.add(p.server, () => {
            calls++;
            reactor.close();
            clearTimeout(timer);
            setTimeout(resolve, 50);
          });
        }
      });
      assert.equal(calls, 1, 'no handler ran after the reactor closed');
      for (const p of pairs) assert.equal(p.server.state, 'open', 'sockets stay open when their reactor closes');
    } finally {
      for (const p of pairs) p.close();
      reactor.close();
    }
  });

  it('uses no CPU while idle: under 20 ms over 2 s with 10 idle connections', () => {
    const result = child('idle', childBackend);
    assert.equal(result.served, 10);
    assert.ok((result.cpuMs as number) < 20, `idle reactor used ${result.cpuMs} ms of CPU in 2 s`);
  });

  it('lets the process exit by itself when everything is closed', () => {
    const result = child('exits', childBackend);
    assert.deepEqual(result, { echoed: 'ping', exited: true, watched: 0 });
  });

  it('lets the process exit while watching a listener when unref()d', () => {
    assert.deepEqual(child('unref', childBackend), { exited: true, watched: 1 });
  });

  it('does not delay process.exit()', () => {
    const result = child('exit-now', childBackend);
    assert.ok((result.exitAfterMs as number) < 1000, `exit after ${result.exitAfterMs} ms`);
  });

  it('a handler that throws kills the process with its stack and exit code 1, as an EventEmitter listener would', () => {
    const run = runChild('throw', childBackend);
    assert.equal(run.signal, null, 'the child ended by itself, not by the test timeout');
    assert.equal(run.status, 1, `exit code (stdout ${run.stdout})`);
    assert.doesNotMatch(run.stdout, /survived/);
    assert.match(run.stderr, /Error: boom from a reactor handler/);
    assert.match(run.stderr, /at (\S+\.)?throwingHandler .*reactor-child\.ts/, 'the stack names the handler');
  });

  it("with an 'uncaughtException' handler, a throwing handler stops nothing: its batch, its socket's next event, an idle loop", () => {
    const result = child('throw-handled', childBackend);
    assert.deepEqual(result.caught, ['boom'], 'the exception reached uncaughtException once');
    assert.deepEqual(result.got, [['one', 'two'], ['one'], ['one']], 'every event of the batch, and the next one of the same socket, were delivered');
    assert.ok((result.idleCpuMs as number) < 150, `the loop idled after the exception (${result.idleCpuMs} ms of CPU in 500 ms)`);
    assert.equal(result.laterSend, 'sent', 'a later, unrelated call does not throw the old exception');
    assert.equal(result.closeError, null, 'close() does not throw it either');
    assert.equal(result.exited, true, 'the process exited by itself');
  });

  it('a handler that always throws before reading is retried with a growing pause, not spun on; the others are served', () => {
    const result = child('throw-always', childBackend);
    // Pauses of 1, 2, 4 ... ms over about 500 ms: about ten calls. Spinning made tens of thousands.
    assert.ok((result.badCalls as number) >= 2 && (result.badCalls as number) <= 40, `the throwing handler ran ${result.badCalls} times`);
    assert.equal(result.caught, result.badCalls, 'each throw reached uncaughtException');
    assert.ok((result.echoed as number) >= 20, `the healthy socket was served (${result.echoed} of 25)`);
  });

  it('refuses drain() and multiplexer.wait() from inside a handler, and delivers each event once', () => {
    const result = child('reentry', childBackend);
    assert.deepEqual(result.calls, [1, 1, 1]);
    const refused = result.refused as string[];
    assert.equal(refused.length, 6);
    for (const r of refused) assert.match(r, /^ERR_INVALID_STATE: .*(drain|wait)\(\).*handler/);
  });

  it('exits cleanly when an unref()d reactor still has events pending as the process ends', () => {
    assert.deepEqual(child('exit-pending', childBackend), { delivered: true, exited: true });
  });

  it('exits cleanly on process.exit() from inside a handler', () => {
    assert.deepEqual(child('exit-in-handler', childBackend), { exited: true });
  });
});
