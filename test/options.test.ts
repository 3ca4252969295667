/**
 * Socket options (lib/options.ts): every typed option reads back what was set, the raw escape
 * hatch round-trips, the kernel's refusals are SocketErrors with codes, bad values are argument
 * errors naming the option.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { constants as os } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  AF_INET6, AF_UNIX, IPPROTO_TCP, SO_KEEPALIVE, SO_LINGER, SO_RCVBUF, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM,
  SOL_SOCKET, TCP_KEEPCNT, TCP_NODELAY,
} from '../ffi/constants.ts';
import { closeFd, sys } from '../ffi/syscall.ts';
import { Listener, Multiplexer, Socket, SocketError } from '../lib/index.ts';
import {
  getOption, getRawIntOption, getRawOption, setOption, setRawOption, type SocketOptionName,
} from '../lib/core/options.ts';
import { trackFds } from './helpers/fd.ts';
import { connectedPair, pumpUntil, type Pair } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

function withPair(body: (pair: Pair) => void): void {
  const pair = connectedPair();
  try {
    body(pair);
  } finally {
    pair.close();
  }
}

/** A fresh, unbound, non-blocking socket fd of `family` (closed by the caller). */
function rawSocket(family: number): number {
  return sys.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

function withRawSocket(family: number, body: (fd: number) => void): void {
  const fd = rawSocket(family);
  try {
    body(fd);
  } finally {
    closeFd(fd);
  }
}

/** net.core.rmem_max / wmem_max, or null where /proc/sys is not readable. */
function sysctl(name: string): number | null {
  try {
    return Number(readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());
  } catch {
    return null;
  }
}

const BOOLEANS = ['noDelay', 'keepAlive', 'reuseAddress', 'reusePort'] as const;

describe('setOption / getOption', () => {
  for (const name of BOOLEANS) {
    it(`${name} reads back true and false on a connected TCP socket (both ends)`, () => {
      withPair((pair) => {
        for (const socket of [pair.client, pair.server]) {
          for (const value of [true, false, true]) {
            setOption(socket.fd, name, value);
            assert.equal(getOption(socket.fd, name), value, `${name} = ${value}`);
          }
        }
      });
    });
  }

  it('booleans also read back on a listener (reuseAddress is on by default, reusePort off)', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      assert.equal(getOption(listener.fd, 'reuseAddress'), true);
      assert.equal(getOption(listener.fd, 'reusePort'), false);
      setOption(listener.fd, 'keepAlive', true);
      assert.equal(getOption(listener.fd, 'keepAlive'), true);
      setOption(listener.fd, 'reuseAddress', false);
      assert.equal(getOption(listener.fd, 'reuseAddress'), false);
    } finally {
      listener.close();
    }
  });

  const NUMBERS: [SocketOptionName, number[]][] = [
    ['keepAliveIdle', [1, 60, 7200, 32767]],
    ['keepAliveInterval', [1, 5, 75, 32767]],
    ['keepAliveCount', [1, 3, 9, 127]],
  ];
  for (const [name, values] of NUMBERS) {
    it(`${name} reads back each value set, up to the kernel's maximum`, () => {
      withPair((pair) => {
        for (const value of values) {
          setOption(pair.client.fd, name, value);
          assert.equal(getOption(pair.client.fd, name), value, `${name} = ${value}`);
        }
      });
    });
  }

  it('keep-alive options are visible through the raw calls too (same level and name)', () => {
    withPair((pair) => {
      setOption(pair.client.fd, 'keepAlive', true);
      setOption(pair.client.fd, 'keepAliveCount', 4);
      assert.equal(getRawIntOption(pair.client.fd, SOL_SOCKET, SO_KEEPALIVE), 1);
      assert.equal(getRawIntOption(pair.client.fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
    });
  });

  it('linger: null is off, a number of seconds is on (0 included), and struct linger holds both', () => {
    withPair((pair) => {
      const fd = pair.client.fd;
      assert.equal(getOption(fd, 'linger'), null, 'off by default');
      for (const value of [5, 0, 120, null, 1]) {
        setOption(fd, 'linger', value);
        assert.equal(getOption(fd, 'linger'), value, `linger = ${value}`);
      }
      setOption(fd, 'linger', 7);
      const raw = getRawOption(fd, SOL_SOCKET, SO_LINGER);
      assert.equal(raw.byteLength, 8, 'struct linger is two ints');
      assert.deepEqual([...new Int32Array(raw.buffer, raw.byteOffset, 2)], [1, 7]);
      setOption(fd, 'linger', null);
    });
  });

  for (const [name, sysctlName] of [['receiveBufferSize', 'rmem_max'], ['sendBufferSize', 'wmem_max']] as const) {
    it(`${name} reads back what the kernel reports: twice the value within its limits`, () => {
      const max = sysctl(sysctlName);
      withPair((pair) => {
        for (const value of [8192, 65536, 262144]) {
          setOption(pair.client.fd, name, value);
          const reported = getOption(pair.client.fd, name);
          // socket(7): the kernel doubles the value (bookkeeping overhead), capped by *mem_max.
          if (max !== null && value <= max) assert.equal(reported, 2 * value, `${name} = ${value} (${sysctlName} ${max})`);
          else assert.ok(reported >= value, `${name} = ${value} reported ${reported}`);
        }
      });
    });
  }

  it('ipv6Only reads back true and false on an IPv6 socket before bind', () => {
    withRawSocket(AF_INET6, (fd) => {
      for (const value of [true, false, true]) {
        setOption(fd, 'ipv6Only', value);
        assert.equal(getOption(fd, 'ipv6Only'), value);
      }
    });
  });

  it('ipv6Only reads back what Listener.listen set on the IPv6 wildcard', () => {
    // The wildcard, not ::1: gVisor reports IPV6_V6ONLY on for a socket bound to ::1 whatever was set.
    for (const ipv6Only of [true, false]) {
      const listener = Listener.listen({ host: '::', port: 0, ipv6Only });
      try {
        assert.equal(getOption(listener.fd, 'ipv6Only'), ipv6Only);
      } finally {
        listener.close();
      }
    }
  });

  it('options set on a listener before accept are reported on the listener, and accepted sockets inherit keepAlive', () => {
    const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
    const mux = new Multiplexer();
    let client: Socket | null = null;
    let server: Socket | null = null;
    try {
      setOption(listener.fd, 'keepAlive', true);
      client = Socket.connect({ host: '127.0.0.1', port: listener.port });
      mux.add(listener);
      pumpUntil(mux, () => server !== null, () => {
        server ??= listener.accept();
      }, 'a connection');
      assert.equal(getOption(server!.fd, 'keepAlive'), true, 'Linux copies SO_KEEPALIVE to accepted sockets');
    } finally {
      client?.destroy();
      (server as Socket | null)?.destroy();
      mux.close();
      listener.close();
    }
  });
});

describe('options the kernel refuses are SocketErrors', () => {
  it('TCP_NODELAY on a Unix socket: EOPNOTSUPP (Node names errno 95 ENOTSUP), set and get', () => {
    withRawSocket(AF_UNIX, (fd) => {
      for (const call of [() => setOption(fd, 'noDelay', true), () => getOption(fd, 'noDelay')]) {
        assert.throws(call, (err: unknown) => {
          assert.ok(err instanceof SocketError, String(err));
          assert.equal(err.errno, -os.errno.EOPNOTSUPP);
          assert.equal(err.code, getSystemErrorName(-os.errno.EOPNOTSUPP));
          assert.match(err.syscall, /^[gs]etsockopt$/);
          assert.match(err.message, /noDelay = TCP_NODELAY/, 'the message names the option');
          return true;
        });
      }
    });
  });

  it('TCP keep-alive tuning on a Unix socket throws too', () => {
    withRawSocket(AF_UNIX, (fd) => {
      assert.throws(() => setOption(fd, 'keepAliveIdle', 5), SocketError);
    });
  });

  it('ipv6Only on an IPv4 socket, and on an IPv6 socket after bind', () => {
    withPair((pair) => {
      assert.throws(() => setOption(pair.client.fd, 'ipv6Only', true), (err: unknown) => {
        assert.ok(err instanceof SocketError);
        assert.equal(err.code, 'ENOPROTOOPT');
        assert.equal(err.syscall, 'setsockopt');
        return true;
      });
      // Reading it is refused too (the code differs between kernels: ENOPROTOOPT, or ENOTSUP on gVisor).
      assert.throws(() => getOption(pair.client.fd, 'ipv6Only'), SocketError);
    });
    const listener = Listener.listen({ host: '::1', port: 0 });
    try {
      assert.throws(() => setOption(listener.fd, 'ipv6Only', true), { name: 'SocketError', code: 'EINVAL' });
    } finally {
      listener.close();
    }
  });

  it('an fd that is not open is EBADF; an fd that is not a socket is ENOTSOCK', () => {
    // Find a number that is surely closed: open and close a socket, then use its number at once.
    const fd = rawSocket(AF_UNIX);
    closeFd(fd);
    assert.throws(() => getOption(fd, 'keepAlive'), { name: 'SocketError', code: 'EBADF' });
    assert.throws(() => setRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1), { name: 'SocketError', code: 'EBADF' });
    const file = openSync('/dev/null', 'r');
    try {
      assert.throws(() => getOption(file, 'keepAlive'), { name: 'SocketError', code: 'ENOTSOCK' });
    } finally {
      closeSync(file);
    }
  });

  it('a raw option the kernel does not know is refused (ENOPROTOOPT)', () => {
    withPair((pair) => {
      assert.throws(() => setRawOption(pair.client.fd, SOL_SOCKET, 9999, 1), { name: 'SocketError', code: 'ENOPROTOOPT' });
      assert.throws(() => getRawOption(pair.client.fd, SOL_SOCKET, 9999), { name: 'SocketError', code: 'ENOPROTOOPT' });
    });
  });
});

describe('bad values are argument errors naming what was wrong', () => {
  it('booleans must be booleans', () => {
    withPair((pair) => {
      for (const value of ['yes', 1, 0, null, undefined]) {
        assert.throws(() => setOption(pair.client.fd, 'noDelay', value as never), {
          code: 'ERR_INVALID_ARG_TYPE',
          message: /"noDelay"/,
        });
      }
      assert.equal(getOption(pair.client.fd, 'noDelay'), false, 'nothing was set');
    });
  });

  it('numbers must be integers within the kernel limits', () => {
    withPair((pair) => {
      const fd = pair.client.fd;
      const cases: [SocketOptionName, unknown, string][] = [
        ['keepAliveIdle', NaN, 'ERR_OUT_OF_RANGE'],
        ['keepAliveIdle', -1, 'ERR_OUT_OF_RANGE'],
        ['keepAliveIdle', 0, 'ERR_OUT_OF_RANGE'],
        ['keepAliveIdle', 32768, 'ERR_OUT_OF_RANGE'],
        ['keepAliveIdle', 1.5, 'ERR_OUT_OF_RANGE'],
        ['keepAliveInterval', 'yes', 'ERR_INVALID_ARG_TYPE'],
        ['keepAliveCount', 128, 'ERR_OUT_OF_RANGE'],
        ['receiveBufferSize', 2 ** 40, 'ERR_OUT_OF_RANGE'],
        ['sendBufferSize', -1, 'ERR_OUT_OF_RANGE'],
        ['sendBufferSize', Infinity, 'ERR_OUT_OF_RANGE'],
        ['linger', -1, 'ERR_OUT_OF_RANGE'],
        ['linger', 2 ** 40, 'ERR_OUT_OF_RANGE'],
        ['linger', NaN, 'ERR_OUT_OF_RANGE'],
        ['linger', 'yes', 'ERR_INVALID_ARG_TYPE'],
        ['linger', false, 'ERR_INVALID_ARG_TYPE'],
      ];
      for (const [name, value, code] of cases) {
        assert.throws(() => setOption(fd, name, value as never), { code, message: new RegExp(`"${name}"`) }, `${name} = ${String(value)}`);
      }
      assert.equal(getOption(fd, 'keepAliveCount'), 9, "nothing was set (Linux's default TCP_KEEPCNT)");
    });
  });

  it('the fd and the option name are checked', () => {
    assert.throws(() => getOption(-1, 'noDelay'), { code: 'ERR_OUT_OF_RANGE', message: /"fd"/ });
    assert.throws(() => getOption(NaN, 'noDelay'), { code: 'ERR_OUT_OF_RANGE', message: /"fd"/ });
    assert.throws(() => setOption('3' as never, 'noDelay', true), { code: 'ERR_INVALID_ARG_TYPE', message: /"fd"/ });
    assert.throws(() => getOption(3, 'nagle' as never), { code: 'ERR_INVALID_ARG_VALUE', message: /"name".*noDelay/ });
    assert.throws(() => getOption(3, 'toString' as never), { code: 'ERR_INVALID_ARG_VALUE', message: /"name"/ });
    assert.throws(() => setOption(3, 42 as never, true as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"name"/ });
  });

  it('raw calls check level, name, value and length', () => {
    withPair((pair) => {
      const fd = pair.client.fd;
      assert.throws(() => setRawOption(fd, -1, SO_KEEPALIVE, 1), { code: 'ERR_OUT_OF_RANGE', message: /"level"/ });
      assert.throws(() => setRawOption(fd, SOL_SOCKET, 1.5, 1), { code: 'ERR_OUT_OF_RANGE', message: /"name"/ });
      assert.throws(() => setRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, 2 ** 40), { code: 'ERR_OUT_OF_RANGE', message: /"value"/ });
      assert.throws(() => setRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, NaN), { code: 'ERR_OUT_OF_RANGE', message: /"value"/ });
      assert.throws(() => setRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, 'yes' as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"value"/ });
      assert.throws(() => getRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, 0), { code: 'ERR_OUT_OF_RANGE', message: /"length"/ });
      assert.throws(() => getRawOption(fd, SOL_SOCKET, SO_KEEPALIVE, 2 ** 40), { code: 'ERR_OUT_OF_RANGE', message: /"length"/ });
      assert.throws(() => getRawIntOption(fd, SOL_SOCKET, -2), { code: 'ERR_OUT_OF_RANGE', message: /"name"/ });
    });
  });
});

describe('setRawOption / getRawOption', () => {
  it('numbers and booleans go as a 4-byte int and read back', () => {
    withPair((pair) => {
      const fd = pair.client.fd;
      setRawOption(fd, IPPROTO_TCP, TCP_NODELAY, true);
      assert.equal(getOption(fd, 'noDelay'), true);
      assert.equal(getRawIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 1);
      setRawOption(fd, IPPROTO_TCP, TCP_NODELAY, 0);
      assert.equal(getRawIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 0);
      setRawOption(fd, IPPROTO_TCP, TCP_KEEPCNT, 42);
      assert.equal(getOption(fd, 'keepAliveCount'), 42);
      const bytes = getRawOption(fd, IPPROTO_TCP, TCP_KEEPCNT);
      assert.equal(bytes.byteLength, 4, 'the length the kernel reported, not the 256-byte buffer');
      assert.deepEqual([...new Int32Array(bytes.buffer, bytes.byteOffset, 1)], [42]);
    });
  });

  it('bytes go as they are, honouring byteOffset (struct linger from a window of a larger buffer)', () => {
    withPair((pair) => {
      const fd = pair.client.fd;
      const backing = new Int32Array([-1, 1, 9, -1]);
      const window = new Uint8Array(backing.buffer, 4, 8); // { l_onoff: 1, l_linger: 9 }
      setRawOption(fd, SOL_SOCKET, SO_LINGER, window);
      assert.equal(getOption(fd, 'linger'), 9);
      // A short read: the kernel writes (and reports) only what fits.
      const short = getRawOption(fd, SOL_SOCKET, SO_RCVBUF, 4);
      assert.equal(short.byteLength, 4);
      assert.equal(new Int32Array(short.buffer)[0], getOption(fd, 'receiveBufferSize'));
      setOption(fd, 'linger', null);
    });
  });
});
