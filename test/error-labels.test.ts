/**
 * Errors name the call that failed and give hints that fit where it was aimed (issue 11,
 * finding 11): a reset found while flushing is a 'send' error, a Unix path gets path hints.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SIZEOF } from '../ffi/layouts.ts';
import { SO_LINGER, SOL_SOCKET } from '../ffi/constants.ts';
import { ERRNO } from '../ffi/errno.ts';
import { SocketError, sys } from '../ffi/syscall.ts';
import { Listener, Multiplexer, Socket } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { connectedPair, pattern, pumpUntil } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = mkdtempSync(join(tmpdir(), 'm-socket-labels-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

function thrown(fn: () => unknown): SocketError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SocketError, `expected a SocketError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a SocketError');
}

describe('error labels and hints', () => {
  it("labels a reset found while flushing the send queue 'send', not 'recv'", () => {
    const pair = connectedPair({ sendQueueLimit: 64 * 1024 * 1024 });
    const mux = new Multiplexer();
    try {
      // Fill the kernel buffers both ways so that bytes stay queued, then reset from the peer.
      assert.notEqual(pair.server.send(pattern(32 * 1024 * 1024)), 'sent');
      assert.ok(pair.server.queuedBytes > 0);
      sys.setsockopt(pair.client.fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), SIZEOF.linger);
      pair.client.destroy();
      mux.add(pair.server, 0); // no read interest: only the flush can meet the reset
      pumpUntil(mux, () => pair.server.error !== null, () => {}, 'the reset');
      assert.equal(pair.server.error?.code, 'ECONNRESET');
      assert.equal(pair.server.error?.syscall, 'send');
      assert.ok((pair.server.error?.unsentBytes ?? 0) > 0, 'the stranded bytes are reported');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('gives a Unix path and an abstract name their own hints: EADDRINUSE says nothing about ports', () => {
    const path = join(dir, 'taken.sock');
    const first = Listener.listen({ path });
    try {
      const err = thrown(() => Listener.listen({ path }));
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'bind');
      assert.equal(err.path, path);
      assert.doesNotMatch(err.message, /port/);
      assert.match(err.message, /a file already exists at this path/);
    } finally {
      first.close();
    }
    // An abstract name has no file to remove.
    const name = `\0m-socket-labels-${process.pid}-${Math.random()}`;
    const abstract = Listener.listen({ path: name });
    try {
      const err = thrown(() => Listener.listen({ path: name }));
      assert.equal(err.code, 'EADDRINUSE');
      assert.match(err.message, /another socket is bound to this abstract name/);
      assert.doesNotMatch(err.message, /port|file/);
    } finally {
      abstract.close();
    }
    // The same code on an IP address keeps the port hint.
    const ip = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      const err = thrown(() => Listener.listen({ host: '127.0.0.1', port: ip.port! }));
      assert.equal(err.code, 'EADDRINUSE');
      assert.match(err.message, /choose another port/);
    } finally {
      ip.close();
    }
  });

  it('gives connect on a missing or dead Unix path hints about the socket file', () => {
    const missing = thrown(() => Socket.connect({ path: join(dir, 'missing.sock') }));
    assert.equal(missing.code, 'ENOENT');
    assert.match(missing.message, /no socket file at this path/);
    const refused = new SocketError('connect', ERRNO.ECONNREFUSED, { path: join(dir, 'dead.sock') });
    assert.match(refused.message, /the socket file exists but nothing is listening on it/);
    assert.doesNotMatch(refused.message, /at that address/);
    assert.match(new SocketError('connect', ERRNO.ECONNREFUSED, { address: '127.0.0.1', port: 9 }).message, /nothing is listening at that address/);
    assert.match(new SocketError('accept4', ERRNO.EMFILE, { path: '/x' }).message, /ulimit -n/);
  });
});
