/**
 * The io_uring backend's own promises, beyond the shared multiplexer and reactor suites (which
 * run on it too): its numbers against the C headers, the fallback to epoll when the kernel
 * refuses io_uring (made to fail on purpose at the choke point), remove-before-close, the plain
 * ring of kernels without DEFER_TASKRUN, and the Reactor's wake-up protocol under many
 * connections at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { release } from 'node:os';
import { after, before, describe, it } from 'node:test';
import * as constants from '../ffi/constants.ts';
import { ERRNO } from '../ffi/errno.ts';
import { injectFaults } from '../ffi/faults.ts';
import { OFFSETOF, SIZEOF } from '../ffi/layouts.ts';
import { sys } from '../ffi/syscall.ts';
import { Interest, Listener, Multiplexer, Reactor, Socket, type MultiplexerEvent } from '../lib/index.ts';
import { IoUringBackend } from '../lib/loop/backends/io-uring.ts';
import { ccVersion, compileC } from './helpers/cc.ts';
import { fdFlags, trackFds } from './helpers/fd.ts';
import { connectedPair, pattern, pumpUntil, readToEnd } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

describe('io_uring Reactor on a ring without DEFER_TASKRUN (setup refused with it)', () => {
  /** A Reactor whose ring was set up without DEFER_TASKRUN, as on kernels that signal its eventfd late or lack it. */
  function plainReactor(options: { maxRounds?: number } = {}): Reactor {
    using _ = injectFaults((call) => (call.name === 'io_uring_setup' && (setupFlags(call.args) & IORING_SETUP_DEFER_TASKRUN) !== 0 ? { errno: ERRNO.EINVAL } : null), ['io_uring_setup']);
    return new Reactor({ backend: 'io_uring', ...options });
  }

  async function echoServer(reactor: Reactor, readAtMost: number): Promise<{ client: net.Socket; close(): void }> {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const served: Socket[] = [];
    const buffer = new Uint8Array(readAtMost);
    reactor.add(listener, () => {
      for (let s = listener.accept(); s !== null; s = listener.accept()) {
        served.push(s);
        reactor.add(s, (e: MultiplexerEvent<Socket>) => {
          const n = e.target.receiveInto(buffer); // at most readAtMost per event: the rest stays readable
          if (n > 0) e.target.send(buffer, n);
          else if (n < 0) e.target.close();
        });
      }
    });
    const client = net.connect({ host: '127.0.0.1', port: listener.port });
    await once(client, 'connect');
    return {
      client,
      close() {
        client.destroy();
        for (const s of served) s.destroy();
        listener.close();
      },
    };
  }

  it('sleeps on the ring fd itself: 200 round trips, each after it slept, make no read(2) (an eventfd made one each)', async () => {
    const reactor = plainReactor();
    let server: Awaited<ReturnType<typeof echoServer>> | null = null;
    try {
      if (reactor.multiplexer.backend !== 'io_uring') return; // the fallback (qemu-user): no ring
      assert.equal(reactor.multiplexer.ringReceive, false, 'no DEFER_TASKRUN, no ring receive');
      server = await echoServer(reactor, 64);
      using faults = injectFaults(() => null, ['read']);
      const started = performance.now();
      for (let i = 0; i < 200; i++) {
        server.client.write('x');
        await once(server.client, 'data');
      }
      const took = performance.now() - started;
      assert.equal(faults.count('read'), 0, 'read(2) calls during the round trips');
      assert.ok(took < 2000, `200 round trips took ${took.toFixed(0)} ms`);
    } finally {
      server?.close();
      reactor.close();
    }
  });

  it('a handler that reads a byte per event, with one round per turn: every byte comes back (the ring fd made readable by a no-op when the turn yields)', async () => {
    const reactor = plainReactor({ maxRounds: 1 });
    let server: Awaited<ReturnType<typeof echoServer>> | null = null;
    try {
      server = await echoServer(reactor, 1);
      const sent = pattern(3000, 5);
      const chunks: Buffer[] = [];
      let received = 0;
      const all = new Promise<void>((resolve) => {
        server!.client.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          received += chunk.byteLength;
          if (received >= sent.byteLength) resolve();
        });
      });
      server.client.write(sent);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${received} of ${sent.byteLength} bytes came back in 10 s`)), 10_000)))]);
      clearTimeout(timer);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(sent));
    } finally {
      server?.close();
      reactor.close();
    }
  });
});

/** Whether this kernel lets this process set up a ring at all, asked directly. */
const { IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_NO_MMAP } = constants;

/** The flags an injected io_uring_setup call asks for (its params, the second argument). */
function setupFlags(args: readonly unknown[]): number {
  const params = args[1] as Uint8Array;
  return new DataView(params.buffer, params.byteOffset).getUint32(OFFSETOF.io_uring_params.flags, true);
}

function kernelAllowsIoUring(): boolean {
  try {
    sys.close(sys.io_uring_setup(1, new Uint8Array(SIZEOF.io_uring_params)));
    return true;
  } catch {
    return false;
  }
}

/** Echoes one round of `bytes` through a server socket watched by `mux`; returns what came back. */
function echoOnce(mux: Multiplexer, payload: Uint8Array): Uint8Array {
  const pair = connectedPair();
  try {
    mux.add(pair.server);
    mux.add(pair.client);
    pair.client.send(payload);
    pair.client.shutdown('write');
    let serverDone = false;
    pumpUntil(mux, () => serverDone, (event) => {
      if (event.target !== pair.server) return;
      for (;;) {
        const { bytes, status } = pair.server.receive();
        if (bytes.byteLength > 0) pair.server.send(bytes);
        if (status === 'closed') {
          pair.server.close();
          serverDone = true;
          return;
        }
        if (bytes.byteLength === 0) return;
      }
    }, 'the server to see EOF');
    return readToEnd(mux, pair.client);
  } finally {
    pair.close();
  }
}

describe('io_uring constants', () => {
  it('opcodes, register codes and syscall numbers match <linux/io_uring.h> and <sys/syscall.h>', (t) => {
    // These are enums in the header, which the #ifdef cross-check of ffi-layouts.test.ts cannot see.
    assert.ok(ccVersion() !== null, 'no C compiler: install one (apt-get install gcc) to check the io_uring numbers');
    const names = ['IORING_OP_NOP', 'IORING_OP_POLL_ADD', 'IORING_OP_POLL_REMOVE', 'IORING_OP_ACCEPT', 'IORING_OP_ASYNC_CANCEL', 'IORING_REGISTER_EVENTFD',
      'IORING_OP_SEND', 'IORING_OP_RECV', 'IORING_REGISTER_PBUF_RING', 'IORING_UNREGISTER_PBUF_RING', 'IORING_CQE_BUFFER_SHIFT',
      'SYS_io_uring_setup', 'SYS_io_uring_enter', 'SYS_io_uring_register'];
    const out = compileC(`#include <stdio.h>
#include <sys/syscall.h>
#include <linux/io_uring.h>
int main(void) {
${names.map((n) => `  printf("${n} %lld\\n", (long long)(${n}));`).join('\n')}
  return 0;
}
`);
    assert.ok(out !== null);
    const fromC = Object.fromEntries(out.trim().split('\n').map((line) => [line.split(' ')[0], Number(line.split(' ')[1])]));
    const ours = Object.fromEntries(names.map((n) => [n, (constants as Record<string, unknown>)[n]]));
    t.diagnostic(`${names.length} values compared`);
    assert.deepEqual(ours, fromC);
  });
});

describe('io_uring fallback to epoll', () => {
  it('runs io_uring when the kernel allows it, and says so', () => {
    const mux = new Multiplexer({ backend: 'io_uring' });
    try {
      assert.equal(mux.backend, kernelAllowsIoUring() ? 'io_uring' : 'epoll');
      assert.equal(new Multiplexer({ backend: 'poll' }).backend, 'poll');
    } finally {
      mux.close();
    }
  });

  for (const code of ['EPERM', 'ENOSYS', 'ENOMEM'] as const) {
    it(`falls back to epoll when io_uring_setup fails with ${code}, and still serves`, () => {
      let mux: Multiplexer;
      {
        using faults = injectFaults((call) => (call.name === 'io_uring_setup' ? { errno: ERRNO[code] } : null), ['io_uring_setup']);
        mux = new Multiplexer({ backend: 'io_uring' });
        // Refused (EPERM, ENOSYS): one try. ENOMEM: the rings in memory of ours count against
        // RLIMIT_MEMLOCK, the mapped ones do not, so those are tried too.
        assert.equal(faults.count('io_uring_setup'), code === 'ENOMEM' ? 2 : 1, 'only a refusal that another setup might not meet is worth a second try');
      }
      try {
        assert.equal(mux.backend, 'epoll');
        assert.notEqual(mux.fd, -1, 'an epoll fd, as an epoll multiplexer has');
        const payload = pattern(100_000, 3);
        assert.ok(Buffer.from(echoOnce(mux, payload)).equals(payload), 'the echo came back whole');
      } finally {
        mux.close();
      }
    });
  }

  it('falls back to epoll when io_uring_enter is refused (a seccomp profile that allows io_uring_setup), closing the ring', () => {
    const before = trackFds();
    let mux: Multiplexer;
    {
      using _ = injectFaults(() => ({ errno: ERRNO.EPERM }), ['io_uring_enter']);
      mux = new Multiplexer({ backend: 'io_uring' });
    }
    try {
      assert.equal(mux.backend, 'epoll');
      const payload = pattern(50_000, 5);
      assert.ok(Buffer.from(echoOnce(mux, payload)).equals(payload), 'the echo came back whole');
    } finally {
      mux.close();
    }
    before.assertNoLeak();
  });

  it('refused io_uring_register: a Multiplexer keeps io_uring without ring receive, a Reactor (which needs the eventfd) runs epoll', () => {
    const before = trackFds();
    let mux: Multiplexer;
    let reactor: Reactor;
    {
      using _ = injectFaults(() => ({ errno: ERRNO.EPERM }), ['io_uring_register']);
      mux = new Multiplexer({ backend: 'io_uring' });
      reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
    }
    try {
      if (kernelAllowsIoUring()) assert.equal(mux.backend, 'io_uring');
      assert.equal(mux.ringReceive, false);
      assert.equal(reactor.multiplexer.backend, 'epoll');
      const payload = pattern(50_000, 6);
      assert.ok(Buffer.from(echoOnce(mux, payload)).equals(payload), 'the echo came back whole');
    } finally {
      reactor.close();
      mux.close();
    }
    before.assertNoLeak();
  });

  it('falls back, closing the ring fd, when mapping the rings fails', () => {
    const before = trackFds();
    let mux: Multiplexer;
    let unmapped: number;
    {
      // The first mapping works, every later one fails: the rings' memory of ours (the second
      // block), then the mapped rings.
      using faults = injectFaults((call) => (call.name === 'mmap' && call.nth >= 2 ? { errno: ERRNO.ENOMEM } : null), ['mmap', 'munmap']);
      mux = new Multiplexer({ backend: 'io_uring' });
      unmapped = faults.count('munmap');
    }
    try {
      assert.equal(mux.backend, 'epoll');
      // Where io_uring_setup itself is refused (qemu-user), no ring was ever mapped.
      if (kernelAllowsIoUring()) assert.ok(unmapped >= 1, 'the mapping that succeeded was unmapped');
    } finally {
      mux.close();
    }
    before.assertNoLeak();
  });

  it('a Reactor falls back too, and reports it on its multiplexer', async () => {
    let reactor: Reactor;
    {
      using _ = injectFaults(() => ({ errno: ERRNO.EPERM }), ['io_uring_setup']);
      reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
    }
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const sockets: Socket[] = [];
    try {
      assert.equal(reactor.multiplexer.backend, 'epoll');
      const got = await new Promise<string>((resolve) => {
        reactor.add(listener, () => {
          const s = listener.accept();
          if (s === null) return;
          sockets.push(s);
          reactor.add(s, (e: MultiplexerEvent<Socket>) => {
            const { bytes, status } = e.target.receive();
            if (bytes.byteLength > 0) resolve(Buffer.from(bytes).toString());
            if (status === 'closed') e.target.close();
          });
        });
        const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
        sockets.push(client);
        client.send(Buffer.from('fallback'));
        reactor.add(client, (e) => {
          if (e.target.receive().status === 'closed') e.target.close();
        });
      });
      assert.equal(got, 'fallback');
    } finally {
      for (const s of sockets) s.destroy();
      listener.close();
      reactor.close();
    }
  });
});

// Where the kernel (or an emulator: qemu-user has no io_uring) refuses io_uring, what is checked is
// the fallback and that it is said: never a skip.
if (!kernelAllowsIoUring()) {
  describe('io_uring refused by this kernel', () => {
    it('a multiplexer and a reactor asked for io_uring run on epoll and say so', () => {
      using mux = new Multiplexer({ backend: 'io_uring' });
      assert.equal(mux.backend, 'epoll');
      const reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
      try {
        assert.equal(reactor.multiplexer.backend, 'epoll');
      } finally {
        reactor.close();
      }
    });
  });
}

// Run where io_uring works; where it is refused, the describe above checks the fallback instead.
(kernelAllowsIoUring() ? describe : (_name: string, _body: () => void): void => {})('io_uring backend', () => {
  it('a socket closed right after it left the ring is closed for the peer at once (the poll let go of the file)', () => {
    const pair = connectedPair();
    const mux = new Multiplexer({ backend: 'io_uring' });
    try {
      mux.add(pair.server);
      assert.deepEqual([...mux.wait(0)], [], 'the poll is armed in the kernel now, nothing to read');
      pair.server.close(); // leaves the multiplexer (remove), then close(2)
      // The peer sees EOF without the multiplexer waiting again: poll(2) on the client, bounded.
      const pfd = new Uint8Array(SIZEOF.pollfd);
      const view = new DataView(pfd.buffer);
      view.setInt32(0, pair.client.fd, true);
      view.setInt16(4, constants.POLLIN, true);
      assert.equal(sys.poll(pfd, 1, 2000), 1, 'the client became readable (EOF) within 2 s');
      assert.equal(pair.client.receive().status, 'closed');
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('is level-triggered: a reader taking 1 byte per event gets every byte', () => {
    const pair = connectedPair();
    const mux = new Multiplexer({ backend: 'io_uring' });
    try {
      mux.add(pair.server);
      const payload = pattern(300, 9);
      pair.client.send(payload);
      const got: number[] = [];
      const one = new Uint8Array(1);
      pumpUntil(mux, () => got.length === payload.length, () => {
        if (pair.server.receiveInto(one) === 1) got.push(one[0]);
      }, 'every byte, one per event');
      assert.deepEqual(Uint8Array.from(got), payload);
    } finally {
      mux.close();
      pair.close();
    }
  });

  it('works on a plain ring too (kernels before 6.1 refuse DEFER_TASKRUN with EINVAL)', async () => {
    let mux: Multiplexer;
    let backend: IoUringBackend;
    let reactor: Reactor;
    {
      // A kernel before 6.1 refuses the flags it does not know (DEFER_TASKRUN; NO_MMAP, 6.5) with EINVAL.
      using faults = injectFaults((call) => ((setupFlags(call.args) & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_NO_MMAP)) !== 0 ? { errno: ERRNO.EINVAL } : null), ['io_uring_setup']);
      backend = new IoUringBackend(16);
      mux = new Multiplexer({ backend: 'io_uring' });
      reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
      assert.equal(faults.count('io_uring_setup'), 9, 'each ring: the fast setups refused (in memory of ours, mapped), then the plain one');
    }
    try {
      assert.equal(backend.deferTaskrun, false);
      assert.equal(mux.backend, 'io_uring');
      const payload = pattern(200_000, 5);
      assert.ok(Buffer.from(echoOnce(mux, payload)).equals(payload), 'the echo came back whole');
      assert.deepEqual(await echoMany(reactor, 30, 2000), 30);
    } finally {
      backend.close();
      mux.close();
      reactor.close();
    }
  });

  it('keeps its rings in memory of its own where the kernel takes it, else maps them (a kernel before 6.5 refuses NO_MMAP with EINVAL)', async () => {
    const own = new IoUringBackend(16);
    let mapped: IoUringBackend;
    let reactor: Reactor;
    {
      using faults = injectFaults((call) => ((setupFlags(call.args) & IORING_SETUP_NO_MMAP) !== 0 ? { errno: ERRNO.EINVAL } : null), ['io_uring_setup']);
      mapped = new IoUringBackend(16);
      reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
      assert.equal(faults.count('io_uring_setup'), 4, 'each ring: memory of ours refused, then the mapped rings');
    }
    try {
      // Linux 6.5 takes NO_MMAP; several pages of it, newer kernels (this one, where it says so).
      assert.equal(mapped.ownMemory, false);
      assert.equal(mapped.deferTaskrun, true, 'the fast setup all the same');
      assert.equal(reactor.multiplexer.backend, 'io_uring');
      assert.deepEqual(await echoMany(reactor, 30, 2000), 30);
      // Several pages of memory of ours: Linux 6.14 (its region API); 6.5-6.13 want one huge page.
      const [major, minor] = release().split('.').map(Number);
      if (major > 6 || (major === 6 && minor >= 14)) assert.equal(own.ownMemory, true, `Linux ${release()} takes the rings in memory of ours`);
    } finally {
      own.close();
      mapped.close();
      reactor.close();
    }
  });

  it('its wake-up eventfd is non-blocking and close-on-exec', () => {
    const reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
    try {
      assert.equal(reactor.multiplexer.backend, 'io_uring');
      assert.equal(reactor.multiplexer.fd, -1, 'the ring fd is not for other loops to watch');
      assert.deepEqual(fdFlags(reactor.multiplexer._wakeFd()), { nonblocking: true, cloexec: true });
    } finally {
      reactor.close();
    }
  });

  it('a Reactor never stalls with 150 connections ready at once (more task work than one enter runs)', async () => {
    const reactor = new Reactor({ backend: 'io_uring', _promptWake: false });
    try {
      assert.equal(await echoMany(reactor, 150, 64), 150);
    } finally {
      reactor.close();
    }
  });
});

/**
 * `count` clients connect to an echo server on `reactor`, all send `size` bytes at once after
 * every one is connected, and each checks its echo; resolves with how many got theirs whole.
 */
async function echoMany(reactor: Reactor, count: number, size: number): Promise<number> {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0, backlog: 512 });
  const served: Socket[] = [];
  const clients: Socket[] = [];
  reactor.add(listener, () => {
    for (let s = listener.accept(); s !== null; s = listener.accept()) {
      served.push(s);
      reactor.add(s, (e: MultiplexerEvent<Socket>) => {
        for (;;) {
          const { bytes, status } = e.target.receive();
          if (bytes.byteLength > 0) e.target.send(bytes);
          if (status === 'closed') return e.target.close();
          if (bytes.byteLength === 0) return;
        }
      });
    }
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`echoes stalled: ${done} of ${count} done after 10 s`)), 10_000);
      let open = 0;
      let done = 0;
      for (let i = 0; i < count; i++) {
        const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
        clients.push(client);
        const payload = pattern(size, i + 1);
        const got: Uint8Array[] = [];
        let length = 0;
        let connected = false;
        reactor.add(client, (e) => {
          if (e.error) return reject(e.error);
          if (!connected && client.state === 'open') {
            connected = true;
            reactor.modify(client, Interest.READABLE);
            if (++open === count) for (const c of clients) c.send(payloadOf(c));
          }
          for (;;) {
            const { bytes } = client.receive();
            if (bytes.byteLength === 0) return;
            got.push(bytes.slice());
            length += bytes.byteLength;
            if (length === size) {
              assert.deepEqual(Buffer.concat(got), Buffer.from(payload));
              client.close();
              if (++done === count) {
                clearTimeout(timer);
                resolve(done);
              }
              return;
            }
          }
        }, Interest.READABLE | Interest.WRITABLE);
      }
      const payloads = new Map(clients.map((c, i) => [c, pattern(size, i + 1)]));
      function payloadOf(c: Socket): Uint8Array {
        return payloads.get(c)!;
      }
    });
  } finally {
    listener.close();
    for (const s of served) s.destroy();
    for (const c of clients) c.destroy();
  }
}

// A Reactor sleeps in libuv on its ring's eventfd. Linux 6.18.44 signals a DEFER_TASKRUN ring's
// eventfd about 16 ms after the work arrives (bench/c/eventfd_wake.c), and an io_uring Reactor
// that slept between requests answered 62 of them a second (bench/RESULTS.md); its ring is a
// plain one there, whose eventfd the kernel signals as it posts completions.
describe('io_uring Reactor wake-ups', () => {
  it('a ring whose eventfd the kernel signals at once: the Reactor has the deferred ring only where the kernel signals it at once (bench/c/eventfd_wake.c says which)', () => {
    const reactor = new Reactor({ backend: 'io_uring' });
    try {
      if (reactor.multiplexer.backend !== 'io_uring') return; // the fallback (qemu-user): no ring
      const out = compileC(readFileSync(new URL('../bench/c/eventfd_wake.c', import.meta.url), 'utf8'), ['20']);
      if (out === null) throw new Error('no cc: the test needs it (.ci/run installs it)');
      const defer = /setup=defer .*signalled_at_once=(\d+)/.exec(out);
      const plain = /setup=plain .*signalled_at_once=(\d+)/.exec(out);
      assert.ok(defer !== null && plain !== null, out);
      assert.equal(Number(plain[1]), 20, `a plain ring's eventfd is signalled as the completion is posted: ${out}`);
      const atOnce = Number(defer[1]) >= 10;
      assert.equal(reactor.multiplexer.ringReceive, atOnce, `the Reactor's ring is deferred (ring receive on) only where its eventfd comes at once: ${out}`);
    } finally {
      reactor.close();
    }
  });

  it('200 round trips of one connection, each after the Reactor slept, take under 2 s (62 a second, 3.2 s, when the kernel signalled late)', async () => {
    const reactor = new Reactor({ backend: 'io_uring', ringSend: true });
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    let served: Socket | null = null;
    reactor.add(listener, () => {
      for (let s = listener.accept(); s !== null; s = listener.accept()) {
        served = s;
        reactor.add(s, (e: MultiplexerEvent<Socket>) => {
          const { bytes, status } = e.target.receive();
          if (bytes.byteLength > 0) e.target.send(bytes);
          if (status === 'closed') e.target.close();
        });
      }
    });
    const client = net.connect({ host: '127.0.0.1', port: listener.port });
    try {
      await once(client, 'connect');
      const started = performance.now();
      for (let i = 0; i < 200; i++) {
        client.write('x');
        await once(client, 'data');
      }
      const took = performance.now() - started;
      assert.ok(took < 2000, `200 round trips took ${took.toFixed(0)} ms`);
    } finally {
      client.destroy();
      (served as Socket | null)?.destroy();
      listener.close();
      reactor.close();
    }
  });
});
