/**
 * pipeSockets as a TCP proxy between two node:net peers: 8+ MB both ways with slow readers
 * (backpressure: each send queue stays within its cap plus one read), half-close carried each
 * way while the other direction keeps flowing, and a reset on one side resetting the other with
 * the error reported.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { accepts, DatagramSocket, Listener, Reactor, receiveDatagrams, Socket, pipeSockets, type SocketPipe } from '../lib/index.ts';
import { pattern } from './helpers/sockets.ts';
import { trackFds } from './helpers/fd.ts';

const MiB = 1024 * 1024;
const LIMIT = 64 * 1024;
let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** A proxy on 127.0.0.1 to `targetPort`: each accepted connection is piped to a new upstream one. */
function startProxy(targetPort: number): { port: number; pipes: SocketPipe[]; reactor: Reactor; close(): void } {
  const reactor = new Reactor();
  const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
  const pipes: SocketPipe[] = [];
  reactor.add(listener, () => {
    for (let s = listener.accept(); s !== null; s = listener.accept()) {
      const upstream = Socket.connect({ host: '127.0.0.1', port: targetPort, socketOptions: { sendBufferSize: 16 * 1024 } });
      // Small kernel send buffers, so that a slow reader fills the proxy's queues quickly.
      s.setOption('sendBufferSize', 16 * 1024);
      pipes.push(pipeSockets(s, upstream, reactor));
    }
  });
  return {
    port: listener.port!,
    pipes,
    reactor,
    close() {
      listener.close();
      for (const p of pipes) p.destroy();
      reactor.close();
    },
  };
}

/** A node:net server whose one connection runs `onConnection`. */
async function target(onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}

/** Reads in bursts with pauses, so that the far side's queues fill up; resolves with all bytes at 'end'. */
function slowRead(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const toggle = (): void => {
    if (socket.isPaused()) socket.resume();
    else socket.pause();
    timer = setTimeout(toggle, socket.isPaused() ? 20 : 2);
  };
  toggle();
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((ok, fail) => {
    socket.on('end', () => {
      clearTimeout(timer);
      ok(Buffer.concat(chunks));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
}

/** Writes `payload` in 100 KiB pieces honouring 'drain', then half-closes. */
async function writeAll(socket: net.Socket, payload: Buffer): Promise<void> {
  for (let at = 0; at < payload.length; at += 100 * 1024) {
    if (!socket.write(payload.subarray(at, at + 100 * 1024))) await new Promise((ok) => socket.once('drain', ok));
  }
  socket.end();
}

const closeServer = (server: net.Server) => new Promise((ok) => server.close(ok));

describe('pipeSockets (a TCP proxy)', () => {
  it('carries 8+ MB each way to slow readers with bounded queues, then closes both', { timeout: 60_000 }, async () => {
    const up = Buffer.from(pattern(8 * MiB + 12345, 1));
    const down = Buffer.from(pattern(9 * MiB, 2));
    let targetGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    const server = await target((s) => {
      targetGot = slowRead(s);
      void writeAll(s, down);
    });
    const proxy = startProxy((server.address() as net.AddressInfo).port);
    try {
      const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
      const clientGot = slowRead(client);
      await new Promise((ok) => client.once('connect', ok));
      await writeAll(client, up);
      const got = await clientGot;
      assert.ok(got.equals(down), `client got ${got.length} of ${down.length} bytes, or not in order`);
      assert.ok((await targetGot).equals(up), 'target got other bytes than the client sent');
      const result = await proxy.pipes[0].finished;
      assert.deepEqual({ ...result, failed: null }, { aToB: up.length, bToA: down.length, error: null, failed: null });
      const chunk = proxy.reactor.multiplexer.receiveBuffer.byteLength;
      assert.ok(proxy.pipes[0].highWater >= LIMIT, `the slow readers never filled a queue (high water ${proxy.pipes[0].highWater})`);
      assert.ok(proxy.pipes[0].highWater <= LIMIT + chunk, `a queue held ${proxy.pipes[0].highWater} bytes: over the cap by more than one read`);
      client.destroy();
    } finally {
      proxy.close();
      await closeServer(server);
    }
  });

  for (const first of ['client', 'target'] as const) {
    it(`carries a half-close from the ${first} while the other direction keeps flowing`, { timeout: 30_000 }, async () => {
      const late = Buffer.from(pattern(2 * MiB, 3));
      // The side that ends first sends a little and ends; the other waits for that EOF, then
      // sends `late` (through a socket whose peer has already ended its half) and ends.
      const early = Buffer.from('early bytes, then EOF');
      let connected!: (done: Promise<Buffer>) => void;
      const targetConnected = new Promise<Promise<Buffer>>((ok) => (connected = ok));
      const server = await target((s) => {
        const done = slowRead(s);
        connected(done);
        if (first === 'target') s.end(early);
        else void done.then(() => writeAll(s, late));
      });
      const proxy = startProxy((server.address() as net.AddressInfo).port);
      try {
        const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
        const clientDone = slowRead(client);
        await new Promise((ok) => client.once('connect', ok));
        if (first === 'client') client.end(early);
        else void clientDone.then(() => writeAll(client, late));
        const [clientGot, targetGot] = await Promise.all([clientDone, targetConnected.then((done) => done)]);
        assert.ok((first === 'client' ? targetGot : clientGot).equals(early));
        assert.ok((first === 'client' ? clientGot : targetGot).equals(late));
        const result = await proxy.pipes[0].finished;
        assert.equal(result.error, null);
        client.destroy();
      } finally {
        proxy.close();
        await closeServer(server);
      }
    });
  }

  it('a reset from one peer resets the other, and finished reports the error', { timeout: 30_000 }, async () => {
    let targetError!: Promise<NodeJS.ErrnoException>;
    let targetReady!: () => void;
    const targetConnected = new Promise<void>((ok) => (targetReady = ok));
    const server = await target((s) => {
      targetError = new Promise((ok) => s.on('error', ok));
      s.on('data', () => {});
      targetReady();
    });
    const proxy = startProxy((server.address() as net.AddressInfo).port);
    try {
      const client = net.connect({ host: '127.0.0.1', port: proxy.port });
      client.on('error', () => {});
      await new Promise((ok) => client.once('connect', ok));
      client.write('hello');
      await targetConnected;
      client.resetAndDestroy();
      const result = await proxy.pipes[0].finished;
      assert.equal(result.error?.code, 'ECONNRESET');
      assert.ok(result.failed !== null);
      assert.equal((await targetError).code, 'ECONNRESET', 'the target saw a clean end, not a reset');
    } finally {
      proxy.close();
      await closeServer(server);
    }
  });

  it('refuses what is not a pair of open sockets and a reactor', () => {
    const [a, b] = Socket.pair();
    const reactor = new Reactor();
    try {
      assert.throws(() => pipeSockets(null as never, b, reactor), { code: 'ERR_INVALID_ARG_TYPE', message: /"a"/ });
      assert.throws(() => pipeSockets(a, {} as never, reactor), { code: 'ERR_INVALID_ARG_TYPE', message: /"b"/ });
      assert.throws(() => pipeSockets(a, b, {} as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"reactor"/ });
      assert.throws(() => pipeSockets(a, a, reactor), { code: 'ERR_INVALID_ARG_VALUE', message: /"b"/ });
      // A closed reactor is refused by name, before the sockets are touched (they were destroyed).
      const closed = new Reactor();
      closed.close();
      assert.throws(() => pipeSockets(a, b, closed), { code: 'ERR_SOCKET_CLOSED', message: /^pipeSockets: the reactor is closed/ });
      assert.deepEqual([a.state, b.state], ['open', 'open']);
      const dgram = DatagramSocket.bind({ host: '127.0.0.1' });
      const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
      try {
        assert.throws(() => receiveDatagrams(dgram, closed), { code: 'ERR_SOCKET_CLOSED', message: /^receiveDatagrams:/ });
        assert.throws(() => accepts(listener, closed), { code: 'ERR_SOCKET_CLOSED', message: /^accepts:/ });
      } finally {
        dgram.close();
        listener.close();
      }
    } finally {
      a.destroy();
      b.destroy();
      reactor.close();
    }
  });
  it('refuses a socket another pipe has joined: the first pipe keeps both and still finishes', { timeout: 10_000 }, async () => {
    // Found from outside: the second pipe took x over, and the first one's z stayed open with
    // its `finished` pending for good.
    const [x, y] = Socket.pair();
    const [z, zz] = Socket.pair();
    const [w, ww] = Socket.pair();
    const reactor = new Reactor();
    try {
      const first = pipeSockets(x, z, reactor);
      assert.throws(() => pipeSockets(x, w, reactor), { code: 'ERR_INVALID_ARG_VALUE', message: /"a".*another toStream or pipeSockets/ });
      assert.throws(() => pipeSockets(w, z, reactor), { code: 'ERR_INVALID_ARG_VALUE', message: /"b".*another toStream or pipeSockets/ });
      assert.equal(reactor.multiplexer.has(w), false, 'a refused pipe touches nothing');
      y.send(new TextEncoder().encode('to-x'));
      y.shutdown('write');
      zz.shutdown('write');
      const result = await first.finished;
      assert.deepEqual([result.aToB, result.bToA, result.error], [4, 0, null]);
      assert.deepEqual([x.state, z.state, w.state], ['closed', 'closed', 'open']);
      const got = new Uint8Array(16);
      assert.equal(new TextDecoder().decode(got.subarray(0, zz.receiveInto(got) as number)), 'to-x');
    } finally {
      for (const s of [x, y, z, zz, w, ww]) s.destroy();
      reactor.close();
    }
  });

  it('a reactor closed under a pipe resets both sockets and finished says ECANCELED (it stayed pending, both fds open)', { timeout: 10_000 }, async () => {
    const [x, y] = Socket.pair();
    const [z, zz] = Socket.pair();
    const reactor = new Reactor();
    try {
      const pipe = pipeSockets(x, z, reactor);
      y.send(new TextEncoder().encode('one'));
      const got = new Uint8Array(16);
      for (let i = 0; i < 200 && zz.receiveInto(got) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      reactor.close();
      const result = await pipe.finished;
      assert.deepEqual([result.aToB, result.error?.code, result.failed], [3, 'ECANCELED', null]);
      assert.deepEqual([x.state, z.state], ['closed', 'closed']);
    } finally {
      for (const s of [x, y, z, zz]) s.destroy();
    }
  });
});
