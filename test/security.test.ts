/**
 * Security: no fd is used after close (even once the kernel reuses its number); every library
 * fd is close-on-exec (a child process never inherits one); sends never raise SIGPIPE
 * (MSG_NOSIGNAL); lengths come from the buffer itself (byteOffset honoured, nothing written
 * outside a receive window); over-long Unix paths are refused before any socket is made.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AF_INET, F_GETFL, O_NONBLOCK, SOCK_STREAM } from '../ffi/constants.ts';
import { closeFd, sys } from '../ffi/syscall.ts';
import { Listener, Multiplexer, Reactor, Socket, SocketClosedError } from '../lib/index.ts';
import { fdTarget, openFds, trackFds } from './helpers/fd.ts';
import { connectedPair, pattern, pumpUntil } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** Opens /dev/null until the kernel hands out fd `wanted` again; closes the others. */
function reuse(wanted: number): number {
  const extra: number[] = [];
  try {
    for (let i = 0; i < 256; i++) {
      const fd = openSync('/dev/null', 'r');
      if (fd === wanted) return fd;
      extra.push(fd);
    }
    throw new Error(`fd ${wanted} was not reused`);
  } finally {
    for (const fd of extra) closeSync(fd);
  }
}

/** The fds open in a child process (`ls /proc/self/fd` run by sh, which ls inherits from). */
function childFds(): Set<number> {
  const run = spawnSync('sh', ['-c', 'ls /proc/self/fd'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return new Set(run.stdout.split(/\s+/).filter(Boolean).map(Number));
}

describe('security', () => {
  it('a closed socket never reaches libc again, even after the kernel reuses its fd number', () => {
    const pair = connectedPair();
    const old = pair.client;
    const number = old.fd;
    old.destroy();
    const fresh = reuse(number);
    try {
      const flags = sys.fcntl(fresh, F_GETFL, 0);
      assert.throws(() => old.send(Buffer.from('x')), SocketClosedError);
      assert.throws(() => old.receiveInto(new Uint8Array(4)), SocketClosedError);
      assert.throws(() => old.receive(), SocketClosedError);
      assert.throws(() => old.shutdown('both'), SocketClosedError);
      assert.throws(() => (old.blocking = false), SocketClosedError);
      assert.throws(() => old.blocking, SocketClosedError);
      assert.throws(() => old.localAddress, SocketClosedError);
      assert.throws(() => old.remoteAddress, SocketClosedError);
      assert.equal(old.flush(), 0);
      assert.equal(old.fd, -1);
      old.close();
      old.destroy();
      const mux = new Multiplexer();
      assert.throws(() => mux.add(old), SocketClosedError);
      mux.close();
      assert.equal(fdTarget(fresh), '/dev/null', 'the new owner of the number still has it');
      assert.equal(sys.fcntl(fresh, F_GETFL, 0), flags, 'and its flags were not touched (no O_NONBLOCK set on it)');
      assert.equal((flags & O_NONBLOCK) !== 0, false);
    } finally {
      closeSync(fresh);
      pair.close();
    }
  });

  it('a closed listener, multiplexer and reactor never touch the reused numbers either', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const lfd = listener.fd;
    listener.close();
    const a = reuse(lfd);
    const mux = new Multiplexer();
    const mfd = mux.fd;
    mux.close();
    const b = reuse(mfd);
    const reactor = new Reactor();
    const rfd = reactor.multiplexer.fd;
    reactor.close();
    const c = reuse(rfd);
    try {
      assert.throws(() => listener.accept(), SocketClosedError);
      assert.throws(() => mux.wait(0), SocketClosedError);
      assert.throws(() => reactor.drain(), SocketClosedError);
      listener.close();
      mux.close();
      reactor.close();
      for (const fd of [a, b, c]) assert.equal(fdTarget(fd), '/dev/null', `fd ${fd} untouched`);
    } finally {
      for (const fd of [a, b, c]) closeSync(fd);
    }
  });

  it('no library fd reaches a child process (close-on-exec everywhere), while a control fd without it does', () => {
    const pair = connectedPair();
    const unixPath = `/tmp/m-socket-rel-${process.pid}-cloexec.sock`;
    const unixListener = Listener.listen({ path: unixPath });
    const unixClient = Socket.connect({ path: unixPath });
    const mux = new Multiplexer();
    const reactor = new Reactor();
    reactor.add(pair.server, () => {});
    // Adopted with fromFd: made close-on-exec by the library.
    const raw = sys.socket(AF_INET, SOCK_STREAM, 0);
    const adopted = Socket.fromFd(raw);
    // The control: an fd made without SOCK_CLOEXEC must show up in the child, or the check is blind.
    const control = sys.socket(AF_INET, SOCK_STREAM, 0);
    try {
      const ours = new Map<string, number>([
        ['client', pair.client.fd],
        ['server', pair.server.fd],
        ['listener', pair.listener.fd],
        ['unix listener', unixListener.fd],
        ['unix client', unixClient.fd],
        ['multiplexer (epoll)', mux.fd],
        ['reactor (epoll)', reactor.multiplexer.fd],
        ['adopted with fromFd', adopted.fd],
      ]);
      const inChild = childFds();
      assert.ok(inChild.has(control), `the control fd ${control} (no CLOEXEC) is inherited: ${[...inChild]}`);
      const leaked = [...ours].filter(([, fd]) => inChild.has(fd)).map(([what, fd]) => `${what} (fd ${fd})`);
      assert.deepEqual(leaked, [], 'library fds inherited by a child process');
    } finally {
      closeFd(control);
      adopted.destroy();
      reactor.close();
      mux.close();
      unixClient.destroy();
      unixListener.close();
      spawnSync('rm', ['-f', unixPath]);
      pair.close();
    }
  });

  it('send never raises SIGPIPE (MSG_NOSIGNAL), while a raw send without it does (the detector works)', async () => {
    let sigpipes = 0;
    const onSigpipe = () => sigpipes++;
    process.on('SIGPIPE', onSigpipe);
    try {
      for (const raw of [false, true]) {
        const pair = connectedPair();
        try {
          pair.server.destroy();
          const chunk = new Uint8Array(1024);
          let failed = false;
          for (let i = 0; i < 100 && !failed; i++) {
            if (raw) {
              try {
                sys.send(pair.client.fd, chunk, chunk.byteLength, 0); // no MSG_NOSIGNAL
              } catch {
                failed = true;
              }
            } else failed = pair.client.send(chunk) === 'closed';
            await sleep(1);
          }
          assert.ok(failed, 'the peer is gone');
          await sleep(20);
          if (raw) assert.ok(sigpipes > 0, 'the raw send raised SIGPIPE: the detector works');
          else assert.equal(sigpipes, 0, 'the library never raised SIGPIPE');
        } finally {
          pair.close();
        }
      }
    } finally {
      process.off('SIGPIPE', onSigpipe);
    }
  });

  it('send takes its length from the view: a subarray with a byteOffset sends exactly its bytes', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      const backing = pattern(4096, 11);
      const view = backing.subarray(1000, 1037);
      assert.equal(pair.client.send(view), 'sent');
      pair.client.shutdown('write');
      mux.add(pair.server);
      const got: number[] = [];
      const buf = new Uint8Array(8192);
      let ended = false;
      pumpUntil(mux, () => ended, () => {
        for (let n = pair.server.receiveInto(buf); n !== 0; n = pair.server.receiveInto(buf)) {
          if (n < 0) {
            ended = true;
            break;
          }
          got.push(...buf.subarray(0, n));
        }
      });
      assert.deepEqual(Uint8Array.from(got), view.slice());
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('receive into a subarray writes only inside it: guard bytes on both sides stay intact', () => {
    const pair = connectedPair();
    const mux = new Multiplexer();
    try {
      pair.client.send(pattern(100_000, 12));
      mux.add(pair.server);
      pumpUntil(mux, () => true);
      const backing = new Uint8Array(1024).fill(0xee);
      const window = backing.subarray(100, 117); // 17 bytes, far less than what is waiting
      let n = 0;
      for (let i = 0; i < 200 && n === 0; i++) {
        n = pair.server.receiveInto(window);
        if (n === 0) mux.wait(5);
      }
      assert.equal(n, 17, 'reads exactly the window');
      assert.ok(backing.subarray(0, 100).every((b) => b === 0xee), 'guard before the window intact');
      assert.ok(backing.subarray(117).every((b) => b === 0xee), 'guard after the window intact');
      assert.deepEqual(window.slice(), pattern(17, 12));
      const { bytes } = pair.server.receive(window);
      assert.equal(bytes.buffer, backing.buffer);
      assert.ok(bytes.byteOffset >= 100 && bytes.byteOffset + bytes.byteLength <= 117);
      assert.ok(backing.subarray(117).every((b) => b === 0xee));
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('over-long Unix paths are refused before any socket is made (no fd, an argument error)', () => {
    const before = openFds();
    const long = '/tmp/' + 'p'.repeat(103); // 108 bytes: no room for the NUL
    const abstract = '\0' + 'a'.repeat(108); // 109 bytes
    const multibyte = '/tmp/' + 'é'.repeat(52); // 5 + 104 = 109 bytes in UTF-8, 57 characters
    for (const path of [long, abstract, multibyte]) {
      for (const attempt of [() => Socket.connect({ path }), () => Listener.listen({ path })]) {
        assert.throws(attempt, (err: unknown) => {
          assert.ok(err instanceof TypeError || err instanceof RangeError, String(err));
          assert.match((err as Error).message, /options\.path/);
          return true;
        });
      }
    }
    assert.deepEqual(openFds(), before, 'no fd was created');
    // The longest legal path (107 bytes) is accepted as far as the kernel: ENOENT, not an argument error.
    const longest = '/tmp/' + 'q'.repeat(102);
    assert.throws(() => Socket.connect({ path: longest }), (err: unknown) => (err as { code?: string }).code === 'ENOENT');
  });
});
