/**
 * Faults: resets mid-transfer, half-close, writes to a half-open connection (never SIGPIPE),
 * refused connects, an accept storm that runs out of fds, and objects closed from inside their
 * own event handlers (socket, multiplexer, reactor).
 */
import assert from 'node:assert/strict';
import { linkSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { SIZEOF } from '../ffi/layouts.ts';
import { sys } from '../ffi/syscall.ts';
import { Interest, Listener, Multiplexer, Reactor, Socket, SocketClosedError, SocketError, type MultiplexerEvent } from '../lib/index.ts';
import { openFds, trackFds } from './helpers/fd.ts';
import { connectedPair, pattern, pumpUntil, readToEnd } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
let sigpipes = 0;
const onSigpipe = () => {
  sigpipes++;
};
before(() => {
  fds = trackFds();
  process.on('SIGPIPE', onSigpipe);
});
after(() => {
  process.off('SIGPIPE', onSigpipe);
  assert.equal(sigpipes, 0, 'SIGPIPE never fired');
  fds.assertNoLeak();
});

/** SO_LINGER 0: closing sends RST instead of FIN. */
function lingerZero(socket: Socket): void {
  sys.setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), SIZEOF.linger);
}

/** A port with nothing listening on it (bound, then closed). */
function deadPort(): number {
  const l = Listener.listen({ host: '127.0.0.1', port: 0 });
  const port = l.port;
  l.close();
  return port;
}

type Lost = Error & { code: string; unsentBytes?: number };

describe('faults', () => {
  it('peer reset mid-transfer: the receiver sees closed + ECONNRESET after a prefix of the data', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const data = pattern(4 * 1024 * 1024, 3);
      pair.client.send(data);
      mux.add(pair.client, 0);
      mux.add(pair.server);
      const buf = new Uint8Array(8192);
      let got = 0;
      // Read a little, so the reset lands in the middle of the transfer.
      pumpUntil(mux, () => got >= 64 * 1024, () => {
        const n = pair.server.receiveInto(buf);
        if (n > 0) {
          assert.deepEqual(buf.subarray(0, n), data.subarray(got, got + n), `bytes ${got}..${got + n} in order`);
          got += n;
        }
      });
      assert.ok(pair.client.queuedBytes > 0, 'the sender still has a queue');
      lingerZero(pair.client);
      pair.client.destroy();
      let status = 'alive';
      pumpUntil(mux, () => status === 'closed', () => {
        const { bytes, status: s } = pair.server.receive(buf);
        if (bytes.byteLength > 0) {
          assert.deepEqual(bytes, data.subarray(got, got + bytes.byteLength));
          got += bytes.byteLength;
        }
        status = s;
      }, 'the reset');
      assert.equal(pair.server.error?.code, 'ECONNRESET');
      assert.ok(got < data.byteLength, 'the reset cut the transfer short');
      assert.equal(pair.server.receiveInto(buf), -1, 'stays closed');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('peer reset mid-transfer: the sender sees an error event with unsentBytes, then send answers closed', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      pair.client.send(pattern(8 * 1024 * 1024, 4));
      const queued = pair.client.queuedBytes;
      assert.ok(queued > 0);
      mux.add(pair.client, 0);
      pair.server.receiveInto(new Uint8Array(1024));
      lingerZero(pair.server);
      pair.server.destroy();
      let lost: Lost | null = null;
      pumpUntil(mux, () => lost !== null, (e) => {
        if (e.error !== null) lost = e.error as Lost;
      }, 'the error event');
      const err = lost as unknown as Lost;
      assert.ok(err instanceof SocketError);
      assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code), err.message);
      assert.ok((err.unsentBytes ?? 0) > 0 && err.unsentBytes! <= queued, `unsentBytes ${err.unsentBytes} of ${queued} queued`);
      assert.match(err.message, /queued bytes were not sent/);
      assert.equal(pair.client.queuedBytes, 0);
      assert.equal(pair.client.send(Buffer.from('more')), 'closed');
      assert.equal(pair.client.receive(new Uint8Array(16)).status, 'closed');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('peer half-close: EOF with no error, and the half-closed side still receives the reply', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const request = pattern(300_000, 5);
      const reply = pattern(500_000, 6);
      mux.add(pair.client);
      mux.add(pair.server);
      pair.client.send(request);
      pair.client.shutdown('write');
      assert.throws(() => pair.client.send(Buffer.from('x')), SocketClosedError, 'no send after shutdown(write)');
      const got = readToEnd(mux, pair.server);
      assert.deepEqual(got, Buffer.from(request));
      assert.equal(pair.server.error, null, 'EOF is not an error');
      pair.server.send(reply);
      pair.server.close();
      const back = readToEnd(mux, pair.client);
      assert.deepEqual(back, Buffer.from(reply));
      assert.equal(pair.client.error, null);
      assert.equal(pair.server.state, 'closed');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('writes to a half-open connection report EPIPE or ECONNRESET, and never raise SIGPIPE', () => {
    for (const withQueue of [false, true]) {
      const pair = connectedPair();
      const mux = new Multiplexer();
      try {
        mux.add(pair.client, 0);
        if (withQueue) assert.notEqual(pair.client.send(pattern(8 * 1024 * 1024, 8)), 'sent');
        pair.server.destroy(); // FIN; the client does not know yet that nobody reads
        let status = '';
        let eventError: Lost | null = null;
        const deadline = performance.now() + 5000;
        // Without a queue, keep writing until the kernel says the peer is gone; with one, the
        // multiplexer's flush finds out by itself.
        while (status !== 'closed' && eventError === null && performance.now() < deadline) {
          if (!withQueue) status = pair.client.send(Buffer.from('are you there?'));
          for (const e of mux.wait(1)) if (e.error !== null) eventError = e.error as Lost;
        }
        const err = (eventError ?? pair.client.error) as Lost | null;
        assert.ok(err !== null, 'the failure is reported');
        assert.ok(['EPIPE', 'ECONNRESET'].includes(err.code), err.message);
        if (withQueue) assert.ok((err.unsentBytes ?? 0) > 0, 'the stranded queue is counted');
        assert.equal(pair.client.send(Buffer.from('x')), 'closed');
      } finally {
        mux.close();
        pair.close();
      }
    }
    assert.equal(sigpipes, 0);
  });

  it('connect refused: TCP reports ECONNREFUSED once through the reactor; a Unix path throws at once', async () => {
    const port = deadPort();
    const client = Socket.connect({ host: '127.0.0.1', port });
    const reactor = new Reactor();
    try {
      assert.equal(client.send(Buffer.from('early')), 'queued');
      const events: { error: Lost | null; writable: boolean }[] = [];
      reactor.add(client, (e) => events.push({ error: e.error as Lost | null, writable: e.writable }));
      for (let i = 0; i < 200 && events.length === 0; i++) await sleep(5);
      await sleep(20);
      assert.equal(events.filter((e) => e.error !== null).length, 1, 'reported once');
      const err = events.find((e) => e.error !== null)!.error!;
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.unsentBytes, 5, 'the queued bytes are reported lost');
      assert.equal(client.send(Buffer.from('x')), 'closed');
    } finally {
      reactor.close();
      client.destroy();
    }
    const path = `/tmp/m-socket-rel-${process.pid}-refused.sock`;
    assert.throws(() => Socket.connect({ path }), (err: unknown) => {
      assert.ok(err instanceof SocketError);
      assert.equal(err.code, 'ENOENT');
      assert.equal(err.path, path);
      return true;
    });
    // A socket file whose listener is gone: ECONNREFUSED, synchronously. close() removes the file
    // it bound, so keep a second name for the socket (a hard link) to find it stale.
    const stale = Listener.listen({ path: `${path}.bound` });
    const staleFd = stale.fd;
    linkSync(`${path}.bound`, path);
    stale.close();
    try {
      assert.throws(() => Socket.connect({ path }), (err: unknown) => err instanceof SocketError && err.code === 'ECONNREFUSED');
    } finally {
      spawnSync('rm', ['-f', path]);
    }
    assert.ok(staleFd >= 0);
  });

  it('an accept storm that hits EMFILE (child, ulimit -n 128) recovers and accepts every connection', async () => {
    const count = 200;
    const child = spawn('sh', ['-c', `ulimit -n 128 && exec "${process.execPath}" --import tsx test/fixtures/rel-emfile.ts ${count}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const clients: net.Socket[] = [];
    try {
      // Up to 30 s for the child to start: node + tsx take about 6 s of CPU under qemu-user.
      for (let i = 0; i < 3000 && !/port \d+/.test(out); i++) await sleep(10);
      const port = Number(/port (\d+)/.exec(out)?.[1]);
      assert.ok(port > 0, `the child printed its port: ${out} ${err}`);
      let closedByServer = 0;
      for (let i = 0; i < count; i++) {
        const c = net.connect({ host: '127.0.0.1', port });
        c.on('error', () => {});
        c.on('close', () => closedByServer++);
        c.resume();
        clients.push(c);
      }
      const code = await Promise.race([exited, sleep(20_000, 'timeout' as const, { ref: false })]);
      assert.equal(code, 0, `child exit: ${code}; ${err}`);
      const result = JSON.parse(out.trim().split('\n').at(-1)!);
      assert.equal(result.accepted, count, `every connection accepted: ${JSON.stringify(result)}`);
      assert.ok(result.emfile > 0, `EMFILE was hit: ${JSON.stringify(result)}`);
      assert.equal(result.firstError.code, 'EMFILE');
      assert.match(result.firstError.message, /EMFILE/);
      assert.equal(result.otherErrors, 0);
      for (let i = 0; i < 2000 && closedByServer < count; i++) await sleep(10);
      assert.equal(closedByServer, count, 'the server closed every connection it accepted');
    } finally {
      for (const c of clients) c.destroy();
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('a socket closed inside its own event handler gets no more events (plain multiplexer loop)', () => {
    const pairs = [connectedPair(), connectedPair(), connectedPair()];
    const mux = new Multiplexer();
    try {
      for (const p of pairs) {
        mux.add(p.server, Interest.READABLE);
        p.client.send(Buffer.from('ping'));
      }
      pumpUntil(mux, () => pairs.every((p) => p.server.state === 'closed'), (e) => {
        const s = e.target;
        assert.ok(s instanceof Socket, 'only sockets are watched');
        if (s.state === 'closed') {
          // Spurious by design: another handler of this batch closed it. It must not reach libc.
          assert.throws(() => s.receive(), SocketClosedError);
          return;
        }
        s.destroy(); // close inside its own handler...
        // ...and also the next socket, whose event may be later in this same batch.
        const next = pairs[(pairs.findIndex((p) => p.server === s) + 1) % pairs.length].server;
        next.close();
      });
      assert.equal(mux.size, 0, 'closed sockets left the multiplexer');
      assert.deepEqual([...mux.wait(20)], [], 'no event after close');
    } finally {
      mux.close();
      for (const p of pairs) p.close();
    }
  });

  it('a socket closed (gracefully, with a queue) inside its own reactor handler: delivered, then no more events', async () => {
    const pair = connectedPair();
    const reactor = new Reactor();
    try {
      const big = pattern(2 * 1024 * 1024, 9);
      let calls = 0;
      reactor.add(pair.server, (e) => {
        calls++;
        const s = e.target;
        s.receive();
        s.send(big);
        s.close(); // graceful: the reactor keeps flushing the queue, then closes the fd
        assert.ok(s.state === 'closing' || s.state === 'closed');
      });
      pair.client.send(Buffer.from('go'));
      const chunks: Uint8Array[] = [];
      const buf = new Uint8Array(65536);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const n = pair.client.receiveInto(buf);
        if (n < 0) break;
        if (n > 0) chunks.push(buf.slice(0, n));
        else await sleep(1);
        assert.ok(Date.now() < deadline, 'the reply arrives in time');
      }
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(big));
      assert.equal(calls, 1, 'the handler ran once');
      assert.equal(pair.server.state, 'closed');
      assert.equal(reactor.multiplexer.size, 0);
    } finally {
      reactor.close();
      pair.close();
    }
  });

  it('a multiplexer closed with live sockets (inside its own event loop): sockets stay usable, nothing leaks', () => {
    const pairs = [connectedPair(), connectedPair()];
    const mux = new Multiplexer();
    try {
      for (const p of pairs) {
        mux.add(p.server);
        p.client.send(Buffer.from('hi'));
      }
      let seen = 0;
      pumpUntil(mux, () => mux.closed, (e: MultiplexerEvent) => {
        seen++;
        assert.equal(e.readable, true);
        mux.close(); // inside the loop over this wait's events
      });
      assert.equal(seen, 1, 'the rest of the batch is gone with the multiplexer');
      assert.throws(() => mux.wait(0), SocketClosedError);
      for (const p of pairs) {
        assert.equal(p.server.state, 'open');
        assert.equal(Buffer.from(p.server.receive(new Uint8Array(8)).bytes).toString(), 'hi');
        assert.equal(p.server.send(Buffer.from('ok')), 'sent');
      }
      const again = new Multiplexer();
      again.add(pairs[0].server);
      again.close();
    } finally {
      for (const p of pairs) p.close();
    }
  });

  for (const mode of ['close', 'destroy-others'] as const) {
    const title =
      mode === 'close'
        ? 'a reactor closed from its first handler while data waits on several sockets: no further handler runs, no crash, fds intact'
        : 'a reactor handler that destroys sockets with events later in the same batch: their handlers do not run';
    it(title, () => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/rel-reactor-close.ts', mode], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, `the child crashed: ${run.stderr}`);
      const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
      assert.equal(result.calls.length, 1, `handlers called: ${JSON.stringify(result.calls)}`);
      assert.deepEqual(result.thrown, []);
      if (mode === 'close') {
        assert.equal(result.reactorClosed, true);
        assert.equal(result.serverFdsOpen, 4, 'the sockets stay open after the reactor closes');
      }
      assert.equal(result.serverFdsIntact, true);
    });
  }

  it('this process still has exactly the fds it started with (sanity of the helpers above)', () => {
    assert.ok(openFds().length > 0);
  });
});
