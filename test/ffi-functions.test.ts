/**
 * Every libc function declared in ffi/libc.ts, called for real through `sys` (or directly for the
 * getaddrinfo family, which reports EAI_* codes instead of errno), over loopback only. Every fd
 * is checked for O_NONBLOCK / FD_CLOEXEC where the layer asked for them, and every test closes
 * what it opens: each ends with a /proc/self/fd leak check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import koffi from 'koffi';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  AI_NUMERICHOST,
  AddrInfo,
  EAI_NONAME,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLLIN,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  IORING_ENTER_GETEVENTS,
  IORING_OFF_CQ_RING,
  IORING_OFF_SQES,
  IORING_OFF_SQ_RING,
  IORING_OP_NOP,
  IORING_REGISTER_EVENTFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  F_GETFL,
  F_SETFL,
  IN_PROGRESS,
  MSG_NOSIGNAL,
  OFFSETOF,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  POLLIN,
  POLLOUT,
  SHUT_WR,
  SIZEOF,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SPLICE_F_NONBLOCK,
  SO_ERROR,
  SO_REUSEADDR,
  WOULD_BLOCK,
  libc,
  sys,
} from '../ffi/index.ts';
import { assertNonBlockingCloexec, fdFlags, trackFds } from './helpers/fd.ts';
import { EMULATOR } from './helpers/platform.ts';

/** Multi-byte struct fields are in host order; only ports and addresses are big-endian. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LOOPBACK = 0x7f000001;

/**
 * Runs `body` with `own(fd)`, which registers an fd to be closed when the body ends (even on
 * failure), and `release(fd)`, which closes one early. Then checks that nothing else leaked.
 */
async function withFds(body: (own: (fd: number) => number, release: (fd: number) => void) => void | Promise<void>) {
  const tracker = trackFds();
  const owned = new Set<number>();
  const own = (fd: number) => (owned.add(fd), fd);
  const release = (fd: number) => {
    owned.delete(fd);
    sys.close(fd);
  };
  try {
    await body(own, release);
  } finally {
    for (const fd of owned) sys.close(fd);
  }
  tracker.assertNoLeak();
}

function sockaddrIn(address: number, port: number): Uint8Array {
  const sa = new Uint8Array(SIZEOF.sockaddr_in);
  const dv = new DataView(sa.buffer);
  dv.setUint16(OFFSETOF.sockaddr_in.family, AF_INET, HOST_LE);
  dv.setUint16(OFFSETOF.sockaddr_in.port, port, false);
  dv.setUint32(OFFSETOF.sockaddr_in.addr, address, false);
  return sa;
}

function parseSockaddrIn(sa: Uint8Array): { family: number; address: number; port: number } {
  const dv = new DataView(sa.buffer, sa.byteOffset, sa.byteLength);
  return {
    family: dv.getUint16(OFFSETOF.sockaddr_in.family, HOST_LE),
    address: dv.getUint32(OFFSETOF.sockaddr_in.addr, false),
    port: dv.getUint16(OFFSETOF.sockaddr_in.port, false),
  };
}

/** getsockname/getpeername into a fresh sockaddr; checks the kernel wrote a whole sockaddr_in. */
function nameOf(call: typeof sys.getsockname, fd: number) {
  const sa = new Uint8Array(SIZEOF.sockaddr_storage);
  const len = new Uint32Array([sa.byteLength]);
  assert.equal(call(fd, sa, len), 0);
  assert.equal(len[0], SIZEOF.sockaddr_in);
  return parseSockaddrIn(sa);
}

/** poll(2): (fds, nfds, timeout). */
const poll = sys.poll;

/** poll(2) on one fd until `events` or 2 s; returns revents. */
function pollOne(fd: number, events: number): number {
  const pfd = new Uint8Array(SIZEOF.pollfd);
  const dv = new DataView(pfd.buffer);
  dv.setInt32(OFFSETOF.pollfd.fd, fd, HOST_LE);
  dv.setInt16(OFFSETOF.pollfd.events, events, HOST_LE);
  assert.equal(poll(pfd, 1, 2000), 1, `fd ${fd} not ready within 2 s`);
  return dv.getInt16(OFFSETOF.pollfd.revents, HOST_LE);
}

function getIntOption(fd: number, level: number, name: number): number {
  const value = new Int32Array(1);
  const len = new Uint32Array([4]);
  assert.equal(sys.getsockopt(fd, level, name, value, len), 0);
  assert.equal(len[0], 4);
  return value[0];
}

/** A listening socket on 127.0.0.1:<free port>, and a non-blocking client connected to it. */
function tcpPair(own: (fd: number) => number) {
  const listener = own(sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  assertNonBlockingCloexec(listener);
  assert.equal(sys.setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, new Int32Array([1]), 4), 0);
  assert.equal(getIntOption(listener, SOL_SOCKET, SO_REUSEADDR), 1);
  assert.equal(sys.bind(listener, sockaddrIn(LOOPBACK, 0), SIZEOF.sockaddr_in), 0);
  assert.equal(sys.listen(listener, 16), 0);
  const local = nameOf(sys.getsockname, listener);
  assert.deepEqual([local.family, local.address], [AF_INET, LOOPBACK]);
  assert.ok(local.port > 0);

  const client = own(sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const r = sys.connect(client, sockaddrIn(LOOPBACK, local.port), SIZEOF.sockaddr_in);
  assert.ok(r === 0 || r === IN_PROGRESS, `connect returned ${r}`);

  assert.ok(pollOne(listener, POLLIN) & POLLIN);
  const peer = new Uint8Array(SIZEOF.sockaddr_storage);
  const peerLen = new Uint32Array([peer.byteLength]);
  const server = own(sys.accept4(listener, peer, peerLen, SOCK_NONBLOCK | SOCK_CLOEXEC));
  assertNonBlockingCloexec(server);
  assert.equal(peerLen[0], SIZEOF.sockaddr_in);
  assert.deepEqual(parseSockaddrIn(peer), nameOf(sys.getsockname, client));

  assert.ok(pollOne(client, POLLOUT) & POLLOUT);
  assert.equal(getIntOption(client, SOL_SOCKET, SO_ERROR), 0);
  assert.equal(nameOf(sys.getpeername, client).port, local.port);
  return { listener, client, server };
}

/** An iovec array over `bufs`: the Buffers must stay referenced while libc uses the pointers. */
function iovecs(bufs: Buffer[]): Uint8Array {
  const iov = new Uint8Array(bufs.length * SIZEOF.iovec);
  const dv = new DataView(iov.buffer);
  bufs.forEach((buf, i) => {
    dv.setBigUint64(i * SIZEOF.iovec + OFFSETOF.iovec.base, koffi.address(buf), HOST_LE);
    dv.setBigUint64(i * SIZEOF.iovec + OFFSETOF.iovec.len, BigInt(buf.byteLength), HOST_LE);
  });
  return iov;
}

/** A msghdr with no address and no control data, over an iovec array of `count` entries. */
function msghdr(iov: Uint8Array, count: number): Uint8Array {
  const msg = new Uint8Array(SIZEOF.msghdr);
  const dv = new DataView(msg.buffer);
  dv.setBigUint64(OFFSETOF.msghdr.iov, koffi.address(iov), HOST_LE);
  dv.setBigUint64(OFFSETOF.msghdr.iovlen, BigInt(count), HOST_LE);
  return msg;
}

test('TCP over loopback: socket, options, bind, listen, connect, accept4, send/recv, read/write, shutdown, close', async () => {
  await withFds((own, release) => {
    const { listener, client, server } = tcpPair(own);
    release(listener);

    const data = Buffer.from('ping over loopback');
    assert.equal(sys.send(client, data, data.byteLength, MSG_NOSIGNAL), data.byteLength);
    assert.ok(pollOne(server, POLLIN) & POLLIN);
    const got = Buffer.alloc(64);
    assert.equal(sys.recv(server, got, got.byteLength, 0), data.byteLength);
    assert.deepEqual(got.subarray(0, data.byteLength), data);
    // Nothing left: a non-blocking socket answers WOULD_BLOCK, not an exception.
    assert.equal(sys.recv(server, got, got.byteLength, 0), WOULD_BLOCK);

    const reply = Buffer.from('pong');
    assert.equal(sys.write(server, reply, reply.byteLength), reply.byteLength);
    assert.ok(pollOne(client, POLLIN) & POLLIN);
    assert.equal(sys.read(client, got, got.byteLength), reply.byteLength);
    assert.deepEqual(got.subarray(0, reply.byteLength), reply);

    // After the client's shutdown(SHUT_WR) the server reads end-of-file (0), not WOULD_BLOCK.
    assert.equal(sys.shutdown(client, SHUT_WR), 0);
    assert.ok(pollOne(server, POLLIN) & POLLIN);
    assert.equal(sys.recv(server, got, got.byteLength, 0), 0);
  });
});

test('readv/writev and sendmsg/recvmsg move bytes through iovec arrays', async () => {
  await withFds((own) => {
    const { client, server } = tcpPair(own);
    const parts = [Buffer.from('hello, '), Buffer.from('vectored '), Buffer.from('world')];
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    assert.equal(sys.writev(client, iovecs(parts), parts.length), total);
    assert.ok(pollOne(server, POLLIN) & POLLIN);
    // Read back into two buffers of uneven sizes: the first fills before the second starts.
    const into = [Buffer.alloc(4), Buffer.alloc(64)];
    assert.equal(sys.readv(server, iovecs(into), into.length), total);
    assert.equal(Buffer.concat(into).subarray(0, total).toString(), 'hello, vectored world');

    const out = [Buffer.from('through sendmsg')];
    const outIov = iovecs(out);
    assert.equal(sys.sendmsg(server, msghdr(outIov, 1), MSG_NOSIGNAL), out[0].byteLength);
    assert.ok(pollOne(client, POLLIN) & POLLIN);
    const inBuf = [Buffer.alloc(64)];
    const inIov = iovecs(inBuf);
    const msg = msghdr(inIov, 1);
    assert.equal(sys.recvmsg(client, msg, 0), out[0].byteLength);
    assert.equal(inBuf[0].subarray(0, out[0].byteLength).toString(), 'through sendmsg');
    assert.equal(new DataView(msg.buffer).getInt32(OFFSETOF.msghdr.flags, HOST_LE), 0);
  });
});

test('UDP over loopback: sendto/recvfrom name the peer; sendmmsg/recvmmsg move several datagrams in one call', async () => {
  await withFds((own) => {
    const udp = () => {
      const fd = own(sys.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      assert.equal(sys.bind(fd, sockaddrIn(LOOPBACK, 0), SIZEOF.sockaddr_in), 0);
      return { fd, port: nameOf(sys.getsockname, fd).port };
    };
    const a = udp();
    const b = udp();
    const data = Buffer.from('one datagram');
    assert.equal(sys.sendto(a.fd, data, data.byteLength, 0, sockaddrIn(LOOPBACK, b.port), SIZEOF.sockaddr_in), data.byteLength);
    assert.ok(pollOne(b.fd, POLLIN) & POLLIN);
    const got = Buffer.alloc(64);
    const from = new Uint8Array(SIZEOF.sockaddr_storage);
    const fromLen = new Uint32Array([from.byteLength]);
    assert.equal(sys.recvfrom(b.fd, got, got.byteLength, 0, from, fromLen), data.byteLength);
    assert.equal(got.subarray(0, data.byteLength).toString(), 'one datagram');
    assert.equal(fromLen[0], SIZEOF.sockaddr_in);
    assert.deepEqual(parseSockaddrIn(from), { family: AF_INET, address: LOOPBACK, port: a.port });
    assert.equal(sys.recvfrom(b.fd, got, got.byteLength, 0, from, fromLen), WOULD_BLOCK);

    // Two datagrams to b in one sendmmsg (each mmsghdr: a msghdr naming b, over its own iovec).
    const to = Buffer.from(sockaddrIn(LOOPBACK, b.port));
    const parts = [Buffer.from('first'), Buffer.from('second!')];
    const outIov = parts.map((p) => iovecs([p]));
    const out = new Uint8Array(2 * SIZEOF.mmsghdr);
    const ov = new DataView(out.buffer);
    outIov.forEach((iov, i) => {
      const at = i * SIZEOF.mmsghdr + OFFSETOF.mmsghdr.hdr;
      ov.setBigUint64(at + OFFSETOF.msghdr.name, koffi.address(to), HOST_LE);
      ov.setUint32(at + OFFSETOF.msghdr.namelen, SIZEOF.sockaddr_in, HOST_LE);
      ov.setBigUint64(at + OFFSETOF.msghdr.iov, koffi.address(iov), HOST_LE);
      ov.setBigUint64(at + OFFSETOF.msghdr.iovlen, 1n, HOST_LE);
    });
    assert.equal(sys.sendmmsg(a.fd, out, 2, 0), 2);
    assert.ok(pollOne(b.fd, POLLIN) & POLLIN);
    const into = [Buffer.alloc(32), Buffer.alloc(32), Buffer.alloc(32)];
    const inIov = into.map((p) => iovecs([p]));
    const msgs = new Uint8Array(3 * SIZEOF.mmsghdr);
    const mv = new DataView(msgs.buffer);
    inIov.forEach((iov, i) => {
      const at = i * SIZEOF.mmsghdr + OFFSETOF.mmsghdr.hdr;
      mv.setBigUint64(at + OFFSETOF.msghdr.iov, koffi.address(iov), HOST_LE);
      mv.setBigUint64(at + OFFSETOF.msghdr.iovlen, 1n, HOST_LE);
    });
    assert.equal(sys.recvmmsg(b.fd, msgs, 3, 0, null), 2);
    const lengths = [0, 1].map((i) => mv.getUint32(i * SIZEOF.mmsghdr + OFFSETOF.mmsghdr.len, HOST_LE));
    assert.deepEqual(lengths, [5, 7]);
    assert.deepEqual([into[0].subarray(0, 5).toString(), into[1].subarray(0, 7).toString()], ['first', 'second!']);
    assert.equal(sys.recvmmsg(b.fd, msgs, 3, 0, null), WOULD_BLOCK);
  });
});

test('pipe2 makes two non-blocking close-on-exec ends; read and write move bytes', async () => {
  await withFds((own) => {
    const ends = new Int32Array(2);
    assert.equal(sys.pipe2(ends, O_CLOEXEC | O_NONBLOCK), 0);
    const [r, w] = [own(ends[0]), own(ends[1])];
    assertNonBlockingCloexec(r);
    assertNonBlockingCloexec(w);
    const buf = Buffer.alloc(8);
    assert.equal(sys.read(r, buf, buf.byteLength), WOULD_BLOCK);
    assert.equal(sys.write(w, Buffer.from('abc'), 3), 3);
    assert.equal(sys.read(r, buf, buf.byteLength), 3);
    assert.equal(buf.toString('latin1', 0, 3), 'abc');
  });
});

test('open and fcntl: /dev/null opened close-on-exec, O_NONBLOCK set and cleared with F_SETFL', async () => {
  await withFds((own) => {
    const fd = own(sys.open('/dev/null', O_RDONLY | O_CLOEXEC, 0));
    assert.deepEqual(fdFlags(fd), { nonblocking: false, cloexec: true });
    const flags = sys.fcntl(fd, F_GETFL, 0);
    assert.equal(sys.fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
    assert.deepEqual(fdFlags(fd), { nonblocking: true, cloexec: true });
    assert.equal(sys.fcntl(fd, F_SETFL, flags), 0);
    assert.equal(fdFlags(fd).nonblocking, false);
    assert.equal(sys.read(fd, Buffer.alloc(4), 4), 0);
  });
});

test('epoll_create1, eventfd, epoll_ctl and epoll_wait deliver the registered token', async () => {
  await withFds((own) => {
    const ep = own(sys.epoll_create1(EPOLL_CLOEXEC));
    // An epoll fd has no O_NONBLOCK of its own (its waits take a timeout): only close-on-exec.
    assert.equal(fdFlags(ep).cloexec, true);
    const efd = own(sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    assertNonBlockingCloexec(efd);

    const token = 0x1234_5678_9abc_def0n;
    const ev = new Uint8Array(SIZEOF.epoll_event);
    const evView = new DataView(ev.buffer);
    evView.setUint32(OFFSETOF.epoll_event.events, EPOLLIN, HOST_LE);
    evView.setBigUint64(OFFSETOF.epoll_event.data, token, HOST_LE);
    assert.equal(sys.epoll_ctl(ep, EPOLL_CTL_ADD, efd, ev), 0);

    const events = new Uint8Array(4 * SIZEOF.epoll_event);
    const view = new DataView(events.buffer);
    assert.equal(sys.epoll_wait(ep, events, 4, 0), 0);
    const counter = new BigUint64Array([3n]);
    assert.equal(sys.write(efd, counter, 8), 8);
    assert.equal(sys.epoll_wait(ep, events, 4, 1000), 1);
    assert.equal(view.getUint32(OFFSETOF.epoll_event.events, HOST_LE) & EPOLLIN, EPOLLIN);
    assert.equal(view.getBigUint64(OFFSETOF.epoll_event.data, HOST_LE), token);

    counter[0] = 0n;
    assert.equal(sys.read(efd, counter, 8), 8);
    assert.equal(counter[0], 3n);
    assert.equal(sys.read(efd, counter, 8), WOULD_BLOCK);
    assert.equal(sys.epoll_ctl(ep, EPOLL_CTL_DEL, efd, null), 0);
  });
});

/** getaddrinfo hints: a numeric host of `family`, stream sockets. */
function numericHints(family: number): Uint8Array {
  const hints = new Uint8Array(SIZEOF.addrinfo);
  const hv = new DataView(hints.buffer);
  hv.setInt32(OFFSETOF.addrinfo.flags, AI_NUMERICHOST, HOST_LE);
  hv.setInt32(OFFSETOF.addrinfo.family, family, HOST_LE);
  hv.setInt32(OFFSETOF.addrinfo.socktype, SOCK_STREAM, HOST_LE);
  return hints;
}

test('getaddrinfo resolves a numeric host into an addrinfo list; freeaddrinfo; gai_strerror', () => {
  const hints = numericHints(AF_INET);
  // C strings must carry their NUL; the result pointer comes back in an 8-byte out-buffer.
  const result = new BigUint64Array(1);
  assert.equal(libc.getaddrinfo(Buffer.from('127.0.0.1\0'), Buffer.from('8080\0'), hints, result), 0);
  const head = result[0];
  assert.notEqual(head, 0n);
  try {
    const ai = koffi.decode(head, AddrInfo) as { ai_family: number; ai_socktype: number; ai_addrlen: number; ai_addr: bigint };
    assert.equal(ai.ai_family, AF_INET);
    assert.equal(ai.ai_socktype, SOCK_STREAM);
    assert.equal(ai.ai_addrlen, SIZEOF.sockaddr_in);
    const sa = new Uint8Array(koffi.view(ai.ai_addr, ai.ai_addrlen)).slice();
    assert.deepEqual(parseSockaddrIn(sa), { family: AF_INET, address: LOOPBACK, port: 8080 });
  } finally {
    libc.freeaddrinfo(head);
  }
  // A name that is not numeric, with AI_NUMERICHOST: an EAI_* return code, not errno.
  assert.equal(libc.getaddrinfo(Buffer.from('not-an-address\0'), null, hints, result), EAI_NONAME);
  const text = libc.gai_strerror(EAI_NONAME);
  assert.equal(typeof text, 'string');
  assert.ok(text.length > 0);
});

test('if_nametoindex through sys finds the loopback interface', () => {
  assert.ok(sys.if_nametoindex('lo') > 0);
});

test('socketpair makes a connected, non-blocking, close-on-exec Unix pair', () => {
  const pair = new Int32Array(2);
  assert.equal(sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
  try {
    for (const fd of pair) assertNonBlockingCloexec(fd);
    assert.equal(sys.send(pair[0], Buffer.from('pair'), 4, MSG_NOSIGNAL), 4);
    const got = Buffer.alloc(8);
    assert.equal(sys.recv(pair[1], got, got.byteLength, 0), 4);
    assert.equal(got.subarray(0, 4).toString(), 'pair');
  } finally {
    sys.close(pair[0]);
    sys.close(pair[1]);
  }
});

test('io_uring_setup, mmap, io_uring_register, io_uring_enter and munmap run a NOP through a ring', async () => {
  // qemu-user has no io_uring: there the refusal is what is checked (README: emulation limits).
  if (EMULATOR !== null) {
    assert.throws(() => sys.io_uring_setup(4, new Uint8Array(SIZEOF.io_uring_params)), { code: 'ENOSYS' });
    return;
  }
  await withFds((own) => {
    const params = new Uint8Array(SIZEOF.io_uring_params);
    const pv = new DataView(params.buffer);
    const ring = own(sys.io_uring_setup(4, params));
    // io_uring fds are always close-on-exec; they are never read, so blocking is moot.
    assert.equal(fdFlags(ring).cloexec, true);
    const sqEntries = pv.getUint32(OFFSETOF.io_uring_params.sq_entries, HOST_LE);
    const cqEntries = pv.getUint32(OFFSETOF.io_uring_params.cq_entries, HOST_LE);
    const sqOff = (f: number) => pv.getUint32(OFFSETOF.io_uring_params.sq_off + f, HOST_LE);
    const cqOff = (f: number) => pv.getUint32(OFFSETOF.io_uring_params.cq_off + f, HOST_LE);
    assert.equal(sqEntries, 4);
    // Three mappings, whether or not the kernel could share one for both rings (FEAT_SINGLE_MMAP).
    const sqMap = sys.mmap(sqOff(OFFSETOF.io_sqring_offsets.array) + 4 * sqEntries, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQ_RING);
    const cqMap = sys.mmap(cqOff(OFFSETOF.io_cqring_offsets.cqes) + SIZEOF.io_uring_cqe * cqEntries, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_CQ_RING);
    const sqesMap = sys.mmap(SIZEOF.io_uring_sqe * sqEntries, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQES);
    try {
      const efd = own(sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      assert.equal(sys.io_uring_register(ring, IORING_REGISTER_EVENTFD, new Uint8Array(new Int32Array([efd]).buffer), 1), 0);
      const sq = new Uint32Array(sqMap.buffer);
      const cq = new DataView(cqMap.buffer);
      const sqe = new DataView(sqesMap.buffer);
      sqe.setUint8(OFFSETOF.io_uring_sqe.opcode, IORING_OP_NOP);
      sqe.setBigUint64(OFFSETOF.io_uring_sqe.user_data, 0xfeed_f00dn, HOST_LE);
      sq[sqOff(OFFSETOF.io_sqring_offsets.array) >> 2] = 0;
      Atomics.store(sq, sqOff(OFFSETOF.io_sqring_offsets.tail) >> 2, 1);
      assert.equal(sys.io_uring_enter(ring, 1, 1, IORING_ENTER_GETEVENTS, null, 0), 1);
      assert.equal(cq.getUint32(cqOff(OFFSETOF.io_cqring_offsets.tail), HOST_LE), 1);
      const cqe = cqOff(OFFSETOF.io_cqring_offsets.cqes);
      assert.equal(cq.getBigUint64(cqe + OFFSETOF.io_uring_cqe.user_data, HOST_LE), 0xfeed_f00dn);
      assert.equal(cq.getInt32(cqe + OFFSETOF.io_uring_cqe.res, HOST_LE), 0);
      // The registered eventfd was signalled by the completion.
      const counter = new BigUint64Array(1);
      assert.equal(sys.read(efd, counter, 8), 8);
      assert.equal(counter[0], 1n);
    } finally {
      for (const m of [sqesMap, cqMap, sqMap]) sys.munmap(m);
    }
  });
});

test('sendfile moves file bytes to a socket from an explicit offset; splice moves pipe bytes to a socket', async () => {
  await withFds(async (own) => {
    const pair = new Int32Array(2);
    assert.equal(sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    own(pair[0]);
    own(pair[1]);
    const fs = await import('node:fs');
    const dir = fs.mkdtempSync('/tmp/m-socket-sendfile-');
    fs.writeFileSync(`${dir}/f`, 'abcdefgh');
    const file = own(sys.open(Buffer.from(`${dir}/f\0`), O_RDONLY | O_CLOEXEC, 0));
    fs.rmSync(dir, { recursive: true });
    const expected = Buffer.from('cdef');
    const offset = new BigInt64Array([2n]);
    assert.equal(sys.sendfile(pair[0], file, offset, 4), 4);
    assert.equal(offset[0], 6n, 'sendfile advances the offset it was given');
    const got = Buffer.alloc(16);
    assert.equal(sys.recv(pair[1], got, got.byteLength, 0), 4);
    assert.deepEqual(got.subarray(0, 4), expected);
    const ends = new Int32Array(2);
    assert.equal(sys.pipe2(ends, O_CLOEXEC | O_NONBLOCK), 0);
    own(ends[0]);
    own(ends[1]);
    assert.equal(sys.write(ends[1], Buffer.from('spliced'), 7), 7);
    assert.equal(sys.splice(ends[0], pair[0], 64, SPLICE_F_NONBLOCK), 7);
    assert.equal(sys.recv(pair[1], got, got.byteLength, 0), 7);
    assert.equal(got.subarray(0, 7).toString(), 'spliced');
    assert.equal(sys.splice(ends[0], pair[0], 64, SPLICE_F_NONBLOCK), WOULD_BLOCK, 'an empty pipe would block');
  });
});

test('memcpy copies native memory into our bytes; takeAddrInfo copies a getaddrinfo list out, in order, and frees it', () => {
  const result = new BigUint64Array(1);
  assert.equal(libc.getaddrinfo(Buffer.from('::1\0'), Buffer.from('8081\0'), numericHints(AF_INET6), result), 0);
  const head = result[0]!;
  // memcpy: the same bytes as koffi reads at that address.
  const node = new Uint8Array(128);
  libc.memcpy(node, head, SIZEOF.addrinfo);
  const ai = koffi.decode(head, AddrInfo) as { ai_family: number; ai_addrlen: number; ai_addr: bigint; ai_next: bigint | null };
  const nv = new DataView(node.buffer);
  assert.equal(nv.getInt32(OFFSETOF.addrinfo.family, HOST_LE), ai.ai_family);
  assert.equal(nv.getUint32(OFFSETOF.addrinfo.addrlen, HOST_LE), ai.ai_addrlen);
  assert.equal(nv.getBigUint64(OFFSETOF.addrinfo.addr, HOST_LE), ai.ai_addr);
  // takeAddrInfo: every entry of the list (one here), the sockaddr copied, the list freed.
  const entries = sys.takeAddrInfo(new Uint8Array(result.buffer));
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.family, AF_INET6);
  assert.equal(entries[0]!.length, SIZEOF.sockaddr_in6);
  const sa = new DataView(entries[0]!.sockaddr.buffer);
  assert.equal(sa.getUint16(OFFSETOF.sockaddr_in6.family, HOST_LE), AF_INET6);
  assert.equal(sa.getUint16(OFFSETOF.sockaddr_in6.port, false), 8081);
  assert.deepEqual([...entries[0]!.sockaddr.subarray(OFFSETOF.sockaddr_in6.addr, OFFSETOF.sockaddr_in6.addr + 16)], [...Array(15).fill(0), 1]);
  // A null list: nothing, and nothing freed.
  assert.deepEqual(sys.takeAddrInfo(new Uint8Array(8)), []);
});

test('the tests above call every function libc declares', () => {
  // Update this list together with a new test when ffi/libc.ts gains a function.
  const exercised = [
    'socket', 'bind', 'listen', 'accept4', 'connect', 'getsockname', 'getpeername', 'setsockopt',
    'getsockopt', 'shutdown', 'close', 'recv', 'send', 'read', 'write', 'readv', 'writev', 'sendmsg',
    'recvmsg', 'fcntl', 'open', 'pipe2', 'epoll_create1', 'epoll_ctl', 'epoll_wait', 'eventfd', 'poll',
    'getaddrinfo', 'freeaddrinfo', 'gai_strerror', 'if_nametoindex', 'socketpair', 'recvfrom', 'sendto',
    'recvmmsg', 'sendmmsg', 'sendfile', 'splice', 'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'mmap', 'munmap',
    'memcpy',
  ];
  assert.deepEqual(Object.keys(libc).sort(), exercised.sort());
});
