/**
 * Socket.connect: every address family, refusal, options set before connect, a chosen local
 * address, and the connect timeout kept by the multiplexer and by the reactor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Listener, Multiplexer, Reactor, Socket, SocketError, type MultiplexerEvent } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { pumpUntil } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = mkdtempSync(join(tmpdir(), 'm-socket-connect-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

/** Waits for the connect of `socket` to end; returns the error event's error, or null when open. */
function settle(socket: Socket, mux = new Multiplexer()): SocketError | null {
  let error: SocketError | null = null;
  try {
    mux.add(socket, 0);
    pumpUntil(mux, () => socket.state !== 'connecting' || error !== null, (e) => (error ??= e.error));
    return error ?? socket.error;
  } finally {
    mux.close();
  }
}

/**
 * A listener whose accept queue is full (backlog 0 and one connection never accepted): the
 * kernel drops further SYNs, so a connect to it stays 'connecting'. Loopback-only, no firewall.
 */
function blackHole(): { port: number; close(): void } {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0, backlog: 0 });
  const fillers = [Socket.connect({ host: '127.0.0.1', port: listener.port }), Socket.connect({ host: '127.0.0.1', port: listener.port })];
  const mux = new Multiplexer();
  for (const f of fillers) mux.add(f, 0);
  mux.wait(50);
  mux.close();
  return {
    port: listener.port,
    close() {
      for (const f of fillers) f.destroy();
      listener.close();
    },
  };
}

describe('Socket.connect', () => {
  it('a Unix connect to a listener whose backlog is full throws EAGAIN at once (README, Errors: the one would-block the kernel makes an error)', () => {
    const listener = Listener.listen({ path: join(dir, 'full-backlog.sock'), backlog: 0 });
    const made: Socket[] = [];
    try {
      let refused: unknown = null;
      for (let i = 0; i < 16 && refused === null; i++) {
        try {
          made.push(Socket.connect({ path: join(dir, 'full-backlog.sock') }));
        } catch (err) {
          refused = err;
        }
      }
      assert.ok(refused instanceof SocketError, `no refusal after ${made.length} connects`);
      assert.equal(refused.code, 'EAGAIN');
      assert.equal(refused.syscall, 'connect');
    } finally {
      for (const s of made) s.destroy();
      listener.close();
    }
  });

  const families: [string, () => { listener: Listener; target: Parameters<typeof Socket.connect>[0] }][] = [
    ['IPv4', () => { const l = Listener.listen({ host: '127.0.0.1', port: 0 }); return { listener: l, target: { host: '127.0.0.1', port: l.port } }; }],
    ['IPv6', () => { const l = Listener.listen({ host: '::1', port: 0 }); return { listener: l, target: { host: '::1', port: l.port } }; }],
    ['a Unix path', () => { const path = join(dir, `s${Math.random()}`); return { listener: Listener.listen({ path }), target: { path } }; }],
    ['a Unix abstract name', () => { const path = `\0m-socket-connect-${process.pid}-${Math.random()}`; return { listener: Listener.listen({ path }), target: { path } }; }],
  ];
  for (const [name, make] of families) {
    it(`connects over ${name}, and is refused once nobody listens`, () => {
      const { listener, target } = make();
      const client = Socket.connect(target);
      try {
        assert.equal(settle(client), null);
        assert.equal(client.state, 'open');
        const accepted = listener.accept();
        assert.ok(accepted !== null);
        accepted.destroy();
      } finally {
        client.destroy();
        listener.close();
      }
      // Nobody listens now: TCP refuses asynchronously, Unix at once.
      let refused: SocketError | null = null;
      try {
        const again = Socket.connect(target);
        refused = settle(again);
        again.destroy();
      } catch (err) {
        refused = err as SocketError;
      }
      assert.ok(refused instanceof SocketError);
      assert.ok(['ECONNREFUSED', 'ENOENT'].includes(refused.code), refused.message);
      assert.equal(refused.syscall, 'connect');
    });
  }

  it('sets socket options before connecting, and binds a chosen local address', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0, socketOptions: { receiveBufferSize: 256 * 1024 } });
    const client = Socket.connect({ host: '127.0.0.1', port: listener.port, localAddress: '127.0.0.2', socketOptions: { noDelay: true, keepAlive: true } });
    try {
      assert.equal(settle(client), null);
      assert.equal(client.getOption('noDelay'), true);
      assert.equal(client.getOption('keepAlive'), true);
      assert.deepEqual({ ...client.localAddress, port: 0 }, { family: 'IPv4', address: '127.0.0.2', port: 0 });
      assert.ok(listener.getOption('receiveBufferSize') >= 256 * 1024);
      const accepted = listener.accept()!;
      assert.equal((accepted.remoteAddress as { address: string }).address, '127.0.0.2');
      accepted.destroy();
    } finally {
      client.destroy();
      listener.close();
    }
  });

  it('rejects bad options, naming them', () => {
    assert.throws(() => Socket.connect({ port: 1, socketOptions: { noDelay: 'yes' as never } }), /"options.socketOptions.noDelay"/);
    assert.throws(() => Socket.connect({ port: 1, socketOptions: { speed: 3 } as never }), /options.socketOptions.speed.*not a socket option/);
    assert.throws(() => Socket.connect({ port: 1, timeoutMs: 0 }), { name: 'RangeError', message: /options.timeoutMs/ });
    assert.throws(() => Socket.connect({ port: 1, timeoutMs: Number.NaN }), /options.timeoutMs/);
    assert.throws(() => Socket.connect({ host: '::1', port: 1, localAddress: '127.0.0.1' }), /options.localAddress.*IPv4.*IPv6/);
    assert.throws(() => Socket.connect({ port: 70000 }), { name: 'RangeError', message: /options.port/ });
    // The local end's two options by their own names (they were once "options.local.host" / ".port").
    assert.throws(() => Socket.connect({ port: 1, localAddress: 'not-an-ip' }), { code: 'ERR_INVALID_ARG_VALUE', message: /"options\.localAddress"/ });
    assert.throws(() => Socket.connect({ port: 1, localPort: 70000 }), { name: 'RangeError', message: /"options\.localPort"/ });
    assert.throws(() => Socket.connect({ host: '1.2.3', port: 1 }), /options.host/);
    assert.throws(() => Listener.listen({ port: 0, socketOptions: { linger: -1 } }), /options.socketOptions.linger/);
  });

  it('fails a connect that takes too long with ETIMEDOUT, once, from the multiplexer', () => {
    const hole = blackHole();
    // The deadline runs from connect(): measure from there, not from after the multiplexer is made
    // (under emulation making one takes long enough to make a correct timeout look early).
    const start = performance.now();
    const client = Socket.connect({ host: '127.0.0.1', port: hole.port, timeoutMs: 100 });
    const mux = new Multiplexer();
    try {
      assert.equal(client.state, 'connecting');
      mux.add(client, 0, 'mine');
      const events: MultiplexerEvent[] = [];
      // wait(-1) would wait forever: the timeout shortens it.
      for (const e of mux.wait(-1)) events.push({ ...e });
      const elapsed = performance.now() - start;
      assert.equal(events.length, 1);
      assert.equal(events[0].data, 'mine');
      assert.equal(events[0].error?.code, 'ETIMEDOUT');
      assert.equal(events[0].writable, true, 'the end of the attempt is reported writable, as a refusal is');
      assert.match(events[0].error!.message, new RegExp(`connect ETIMEDOUT 127\\.0\\.0\\.1:${hole.port}`));
      assert.ok(elapsed >= 95 && elapsed < 2000, `timed out after ${elapsed.toFixed(0)} ms`);
      assert.equal(client.error?.code, 'ETIMEDOUT');
      assert.deepEqual([...mux.wait(20)], [], 'reported once');
    } finally {
      mux.close();
      client.destroy();
      hole.close();
    }
  });

  it('keeps the connect timeout on a reactor too (one timer, no busy loop)', async () => {
    const hole = blackHole();
    const reactor = new Reactor();
    const client = Socket.connect({ host: '127.0.0.1', port: hole.port, timeoutMs: 80 });
    try {
      const error = await new Promise<SocketError | null>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error('no timeout within 3 s')), 3000);
        reactor.add(client, (e) => {
          clearTimeout(guard);
          resolve(e.error);
        }, 0);
      });
      assert.equal(error?.code, 'ETIMEDOUT');
    } finally {
      reactor.close();
      client.destroy();
      hole.close();
    }
  });

  it('a connect that finishes in time is not failed later by its timeout', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const client = Socket.connect({ host: '127.0.0.1', port: listener.port, timeoutMs: 50 });
    const mux = new Multiplexer();
    try {
      mux.add(client, 0);
      pumpUntil(mux, () => client.state === 'open');
      const start = performance.now();
      while (performance.now() - start < 100) for (const e of mux.wait(20)) assert.equal(e.error, null);
      assert.equal(client.error, null);
    } finally {
      mux.close();
      client.destroy();
      listener.accept()?.destroy();
      listener.close();
    }
  });
});
