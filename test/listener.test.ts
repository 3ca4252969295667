/**
 * Listener: bind/listen/accept on IPv4, IPv6, dual-stack and Unix; SO_REUSEPORT; EMFILE recovery;
 * bad input; the leak finalizer.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Listener, Multiplexer, Socket, SocketError, type TcpListener } from '../lib/index.ts';
import { F_DUPFD_CLOEXEC, sys } from '../ffi/index.ts';
import { assertNonBlockingCloexec, trackFds } from './helpers/fd.ts';
import { pumpUntil, readToEnd } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const portOf = (l: TcpListener) => l.port;

/** Connects to `options`, accepts on `listener`, exchanges one message; returns the server side's view. */
function roundTrip(listener: Listener, options: Parameters<typeof Socket.connect>[0]): { server: Socket; client: Socket } {
  const client = Socket.connect(options);
  const mux = new Multiplexer();
  let server: Socket | null = null;
  try {
    mux.add(listener);
    mux.add(client, 0);
    pumpUntil(mux, () => server !== null && client.state === 'open', (e) => {
      if (e.target === listener) server ??= listener.accept();
    });
    mux.remove(client);
    assert.equal(client.error, null);
    client.send(Buffer.from('hi'));
    client.shutdown('write');
    mux.add(server!);
    mux.add(client, 0);
    assert.equal(Buffer.from(readToEnd(mux, server!)).toString(), 'hi');
    return { server: server!, client };
  } finally {
    mux.close();
  }
}

describe('Listener', () => {
  it('accept returns null when nothing is pending, and its fd is non-blocking and close-on-exec', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      assert.equal(listener.accept(), null);
      assertNonBlockingCloexec(listener.fd);
      assert.ok(portOf(listener) > 0, 'port 0 picked a free port');
      assert.equal(listener.address.family, 'IPv4');
    } finally {
      listener.close();
    }
    listener.close();
    assert.equal(listener.closed, true);
    assert.throws(() => listener.accept(), { code: 'ERR_SOCKET_CLOSED' });
  });

  it('accepts on IPv6 ::1, and accepted sockets are non-blocking and close-on-exec', () => {
    const listener = Listener.listen({ host: '::1', port: 0 });
    try {
      assert.deepEqual(listener.address, { family: 'IPv6', address: '::1', port: portOf(listener) });
      const { server, client } = roundTrip(listener, { host: '::1', port: portOf(listener) });
      assertNonBlockingCloexec(server.fd);
      assert.equal(server.remoteAddress?.family, 'IPv6');
      server.destroy();
      client.destroy();
    } finally {
      listener.close();
    }
  });

  it("listens dual-stack on '::' by default (IPv4 clients too), or IPv6 only on request", () => {
    const dual = Listener.listen({ port: 0 });
    try {
      assert.equal(dual.address.family, 'IPv6');
      const { server, client } = roundTrip(dual, { host: '127.0.0.1', port: portOf(dual) });
      assert.deepEqual(server.remoteAddress && { ...server.remoteAddress, port: 0 }, { family: 'IPv6', address: '::ffff:127.0.0.1', port: 0 });
      server.destroy();
      client.destroy();
    } finally {
      dual.close();
    }
    const v6only = Listener.listen({ host: '::', port: 0, ipv6Only: true });
    const mux = new Multiplexer();
    const client = Socket.connect({ host: '127.0.0.1', port: portOf(v6only) });
    try {
      mux.add(client, 0);
      pumpUntil(mux, () => client.error !== null, () => {}, 'the refusal');
      assert.equal(client.error?.code, 'ECONNREFUSED');
    } finally {
      mux.close();
      client.destroy();
      v6only.close();
    }
  });

  it('listens on a Unix socket path and on an abstract name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'm-socket-'));
    try {
      for (const path of [join(dir, 'sock'), `\0m-socket-test-${process.pid}-${Math.random()}`]) {
        const listener = Listener.listen({ path });
        try {
          assert.deepEqual(listener.address, { family: 'unix', path });
          const { server, client } = roundTrip(listener, { path });
          assertNonBlockingCloexec(server.fd);
          server.destroy();
          client.destroy();
        } finally {
          listener.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shares a port between two listeners with reusePort, and both accept', () => {
    const first = Listener.listen({ host: '127.0.0.1', port: 0, reusePort: true });
    const second = Listener.listen({ host: '127.0.0.1', port: portOf(first), reusePort: true });
    const mux = new Multiplexer();
    const clients: Socket[] = [];
    const accepted = new Map<Listener, Socket[]>([[first, []], [second, []]]);
    try {
      mux.add(first);
      mux.add(second);
      // The kernel spreads connections by a hash of the 4-tuple: 64 connections reach both.
      for (let i = 0; i < 64; i++) clients.push(Socket.connect({ host: '127.0.0.1', port: portOf(first) }));
      pumpUntil(mux, () => accepted.get(first)!.length + accepted.get(second)!.length === 64, (e) => {
        const l = e.target;
        assert.ok(l instanceof Listener);
        for (let s = l.accept(); s !== null; s = l.accept()) accepted.get(l)!.push(s);
      });
      assert.ok(accepted.get(first)!.length > 0, 'the first listener accepted some');
      assert.ok(accepted.get(second)!.length > 0, 'the second listener accepted some');
    } finally {
      mux.close();
      for (const s of [...clients, ...accepted.get(first)!, ...accepted.get(second)!]) s.destroy();
      first.close();
      second.close();
    }
  });

  it('reports EADDRINUSE naming the address when the port is taken without reusePort', () => {
    const first = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      assert.throws(
        () => Listener.listen({ host: '127.0.0.1', port: portOf(first) }),
        (err: unknown) =>
          err instanceof SocketError &&
          err.code === 'EADDRINUSE' &&
          err.syscall === 'bind' &&
          err.address === '127.0.0.1' &&
          err.port === portOf(first) &&
          err.message.includes(`127.0.0.1:${portOf(first)}`),
      );
    } finally {
      first.close();
    }
  });

  it('rejects bad options with errors naming the argument', () => {
    const cases: [unknown, RegExp][] = [
      [{ port: 70000 }, /"options.port"|"port"/],
      [{ port: -1 }, /port/],
      [{ port: Number.NaN }, /port/],
      [{ host: '1.2.3', port: 0 }, /host/],
      [{ host: 42, port: 0 }, /host/],
      [{ backlog: -1, port: 0 }, /options.backlog/],
      [{ reusePort: 'yes', port: 0 }, /options.reusePort/],
      [{ path: '/tmp/' + 'x'.repeat(200) }, /path/],
      [{ path: '/tmp/a', port: 1 }, /either path, or host and port/],
      ['127.0.0.1', /options/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => Listener.listen(options as never), (err: unknown) => {
        assert.ok(err instanceof TypeError || err instanceof RangeError, `${JSON.stringify(options)}: ${err}`);
        assert.match((err as Error).message, message, JSON.stringify(options));
        return true;
      });
    }
  });

  it('reports EMFILE from accept and keeps working once fds are free (child with ulimit -n 128)', () => {
    const run = spawnSync('sh', ['-c', `ulimit -n 128 && exec "${process.execPath}" --import tsx test/fixtures/emfile-child.ts`], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    assert.equal(result.code, 'EMFILE');
    assert.match(result.message, /accept4 EMFILE.*ulimit -n/);
    assert.equal(result.recovered, true, 'the listener accepted again after fds were freed');
  });

  it('closes an abandoned socket and listener when they are collected, with a warning', () => {
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/fixtures/leak-child.ts'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    assert.equal(result.during.length, 2, `two fds while the objects lived: ${result.during}`);
    assert.deepEqual(result.after, [], 'both closed after collection');
    assert.equal(result.warnings.filter((w: string) => w.startsWith('MSocketLeakWarning')).length, 2, result.warnings.join('\n'));
  });
});

describe('Listener.close() and the socket file of a Unix listener', () => {
  /** Runs `body` with a fresh temporary directory, removed afterwards. */
  function inTempDir(body: (dir: string) => void): void {
    const dir = mkdtempSync(join(tmpdir(), 'm-socket-unlink-'));
    try {
      body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('removes the file its bind created, so a restart binds the same path (as node:net)', () => {
    inTempDir((dir) => {
      const path = join(dir, 'sock');
      const first = Listener.listen({ path });
      assert.ok(existsSync(path));
      first.close();
      assert.equal(existsSync(path), false, 'the socket file is gone after close()');
      const second = Listener.listen({ path }); // EADDRINUSE while the file stayed
      try {
        const { server, client } = roundTrip(second, { path });
        server.destroy();
        client.destroy();
      } finally {
        second.close();
      }
      assert.equal(existsSync(path), false);
    });
  });

  it('a relative path is removed where it was bound, even after process.chdir()', () => {
    inTempDir((dir) => {
      const cwd = process.cwd();
      let listener: Listener;
      process.chdir(dir);
      try {
        listener = Listener.listen({ path: 'rel.sock' });
      } finally {
        process.chdir(cwd);
      }
      assert.ok(existsSync(join(dir, 'rel.sock')));
      listener.close();
      assert.equal(existsSync(join(dir, 'rel.sock')), false);
    });
  });

  it('leaves a path it did not bind: a listener adopted with fromFd', () => {
    inTempDir((dir) => {
      const path = join(dir, 'sock');
      const owner = Listener.listen({ path });
      try {
        const adopted = Listener.fromFd(sys.fcntl(owner.fd, F_DUPFD_CLOEXEC, 0));
        adopted.close();
        assert.ok(existsSync(path), 'fromFd did not bind: its close leaves the file');
      } finally {
        owner.close();
      }
      assert.equal(existsSync(path), false, 'the listener that bound it removes it');
    });
  });

  it('leaves a file that replaced its own since (another listener, or a plain file)', () => {
    inTempDir((dir) => {
      const path = join(dir, 'sock');
      const old = Listener.listen({ path });
      unlinkSync(path);
      const successor = Listener.listen({ path }); // a new server took the path over
      old.close();
      assert.ok(existsSync(path), "closing the old listener leaves the successor's file");
      const { server, client } = roundTrip(successor, { path });
      server.destroy();
      client.destroy();
      successor.close();
      assert.equal(existsSync(path), false);

      const again = Listener.listen({ path });
      unlinkSync(path);
      writeFileSync(path, 'not a socket');
      again.close();
      assert.equal(readFileSync(path, 'utf8'), 'not a socket', 'a plain file put there is left alone');
    });
  });

  it('an abstract name has no file: close() touches nothing, and the name is free again', () => {
    const path = `\0m-socket-unlink-${process.pid}-${Math.random()}`;
    Listener.listen({ path }).close();
    Listener.listen({ path }).close();
  });

  it('a file removed by someone else before close() is no error', () => {
    inTempDir((dir) => {
      const path = join(dir, 'sock');
      const listener = Listener.listen({ path });
      unlinkSync(path);
      listener.close();
      assert.equal(listener.closed, true);
    });
  });
});
