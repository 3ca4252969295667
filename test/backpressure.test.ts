/**
 * Backpressure built into the multiplexer (`pauseReadingWhenFull`): a watched socket whose send
 * queue is full is not reported readable until the queue drains below its cap, so the simplest
 * echo handler (one receive, one send per event) never meets 'not-sent' and loses nothing. And it
 * cannot stall: a paused socket's queue is still flushed, reading resumes, a peer that goes away is
 * still reported. Run on both backends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Interest, Listener, Multiplexer, Socket, type BackendName, type SendStatus } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { pumpUntil } from './helpers/sockets.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const TOTAL = 4 * 1024 * 1024;

/** Byte i of the stream the client sends. */
function patternByte(i: number): number {
  return (i * 31 + (i >>> 11)) & 0xff;
}

interface EchoResult {
  statuses: Map<SendStatus, number>;
  received: number;
  readableWhileFull: number;
  pauses: number;
}

/**
 * The client sends TOTAL bytes as fast as its queue takes them, and reads one 16 KiB buffer
 * every fourth wait (a slow reader); the server runs the README's first echo handler. Ends when
 * everything came back, or at the first 'not-sent' (the bytes it refused are lost to this
 * handler, so the echo could never complete).
 */
function slowReaderEcho(mux: Multiplexer, client: Socket, server: Socket): EchoResult {
  const statuses = new Map<SendStatus, number>();
  const chunk = new Uint8Array(128 * 1024);
  const got = new Uint8Array(16 * 1024);
  let sent = 0;
  let received = 0;
  let readableWhileFull = 0;
  let pauses = 0;
  let rounds = 0;
  const deadline = performance.now() + 60_000;
  while (received < TOTAL && (statuses.get('not-sent') ?? 0) === 0) {
    if (performance.now() > deadline) throw new Error(`timed out: ${received} of ${TOTAL} bytes echoed`);
    while (sent < TOTAL && !client.sendQueueFull) {
      const n = Math.min(chunk.byteLength, TOTAL - sent);
      for (let i = 0; i < n; i++) chunk[i] = patternByte(sent + i);
      const answer = client.send(chunk, n);
      assert.notEqual(answer, 'closed');
      assert.notEqual(answer, 'not-sent');
      sent += n;
    }
    if (server.sendQueueFull) pauses++;
    rounds++;
    for (const event of mux.wait(5)) {
      if (event.target === server) {
        if (event.readable && server.sendQueueFull) readableWhileFull++;
        // The README's first server: one receive, one send, no state machine.
        const { bytes, status } = server.receive();
        if (bytes.byteLength > 0) {
          const answer = server.send(bytes);
          statuses.set(answer, (statuses.get(answer) ?? 0) + 1);
        }
        if (status === 'closed') server.close();
      }
    }
    if (rounds % 4 === 0) {
      const n = client.receiveInto(got);
      for (let i = 0; i < n; i++) {
        if (got[i] !== patternByte(received + i)) assert.fail(`byte ${received + i} corrupted`);
      }
      if (n > 0) received += n;
    }
  }
  return { statuses, received, readableWhileFull, pauses };
}

/** A TCP pair: `server` accepted (so pausing by default unless `socket` says otherwise), `client` connected. */
function tcpPair(mux: Multiplexer, socket: { pauseReadingWhenFull?: boolean } = {}) {
  // Small kernel buffers, so that the queue fills after kilobytes, not after megabytes of loopback buffering.
  const socketOptions = { sendBufferSize: 16 * 1024, receiveBufferSize: 16 * 1024 };
  const listener = Listener.listen({ host: '127.0.0.1', port: 0, socket, socketOptions });
  const client = Socket.connect({ host: '127.0.0.1', port: listener.port!, socketOptions });
  mux.add(listener);
  mux.add(client, Interest.READABLE);
  let server: Socket | null = null;
  pumpUntil(mux, () => server !== null && client.state === 'open', (event) => {
    if (event.target === listener) server ??= listener.accept();
  }, 'a connection');
  mux.remove(listener);
  listener.close();
  return { client, server: server as unknown as Socket };
}

for (const backend of ['epoll', 'poll'] as BackendName[]) {
  describe(`pauseReadingWhenFull (${backend})`, () => {
    it('defaults: on for accepted sockets, off for connected and paired ones; validated', () => {
      const mux = new Multiplexer({ backend });
      const { client, server } = tcpPair(mux);
      const [a, b] = Socket.pair();
      try {
        assert.equal(server.pauseReadingWhenFull, true);
        assert.equal(client.pauseReadingWhenFull, false);
        assert.equal(a.pauseReadingWhenFull, false);
        assert.throws(() => Listener.listen({ port: 0, socket: { pauseReadingWhenFull: 1 as unknown as boolean } }), {
          code: 'ERR_INVALID_ARG_VALUE', message: /options\.socket\.pauseReadingWhenFull/,
        });
        assert.throws(() => { a.pauseReadingWhenFull = 'yes' as unknown as boolean; }, { code: 'ERR_INVALID_ARG_VALUE' });
        const [c, d] = Socket.pair({ pauseReadingWhenFull: true });
        assert.equal(c.pauseReadingWhenFull, true);
        c.destroy();
        d.destroy();
      } finally {
        for (const s of [client, server, a, b]) s.destroy();
        mux.close();
      }
    });

    it('a one-receive-one-send echo never meets not-sent and echoes a slow reader intact', () => {
      const mux = new Multiplexer({ backend });
      const { client, server } = tcpPair(mux);
      mux.add(server, Interest.READABLE);
      try {
        const result = slowReaderEcho(mux, client, server);
        assert.equal(result.statuses.get('not-sent') ?? 0, 0, `send answers: ${JSON.stringify([...result.statuses])}`);
        assert.equal(result.received, TOTAL, 'every byte came back');
        assert.equal(result.readableWhileFull, 0, 'no readable event while the send queue was full');
        assert.ok(result.pauses > 0, 'the queue filled up (the test exercised the pause)');
      } finally {
        client.destroy();
        server.destroy();
        mux.close();
      }
    });

    it('opted out: the same echo is reported readable while full and meets not-sent', () => {
      const mux = new Multiplexer({ backend });
      const { client, server } = tcpPair(mux, { pauseReadingWhenFull: false });
      mux.add(server, Interest.READABLE);
      try {
        const result = slowReaderEcho(mux, client, server);
        assert.ok(result.readableWhileFull > 0, 'readable while full');
        assert.ok((result.statuses.get('not-sent') ?? 0) > 0, 'not-sent happened');
      } finally {
        client.destroy();
        server.destroy();
        mux.close();
      }
    });

    it('switching it on at run time pauses a socket whose queue is already full, and off resumes it', () => {
      const mux = new Multiplexer({ backend });
      const [a, b] = Socket.pair({ sendQueueLimit: 1024 });
      try {
        mux.add(a, Interest.READABLE);
        b.send(new Uint8Array([1]));
        // Fill a's queue: the kernel buffer first, then the queue past its cap.
        const block = new Uint8Array(64 * 1024);
        while (a.send(block) === 'sent');
        assert.ok(a.sendQueueFull);
        assert.equal(mux.wait(0).filter((e) => e.readable).length, 1, 'off: readable');
        a.pauseReadingWhenFull = true;
        assert.equal(mux.wait(0).filter((e) => e.readable).length, 0, 'on: not readable while full');
        a.pauseReadingWhenFull = false;
        assert.equal(mux.wait(0).filter((e) => e.readable).length, 1, 'off again: readable');
        a.pauseReadingWhenFull = true;
        a.sendQueueLimit = a.queuedBytes + 1; // raising the cap above the queue resumes reading
        assert.equal(mux.wait(0).filter((e) => e.readable).length, 1, 'below the new cap: readable');
      } finally {
        a.destroy();
        b.destroy();
        mux.close();
      }
    });

    it('a paused socket still has its queue flushed, and reads resume below the cap (not only when empty)', () => {
      const mux = new Multiplexer({ backend });
      const [a, b] = Socket.pair({ sendQueueLimit: 256 * 1024, pauseReadingWhenFull: true });
      try {
        mux.add(a, Interest.READABLE);
        const block = new Uint8Array(64 * 1024);
        while (!a.sendQueueFull) a.send(block);
        b.send(new Uint8Array([7]));
        assert.equal(mux.wait(0).filter((e) => e.readable).length, 0, 'paused');
        // The peer reads a little at a time: the queue drains below its cap but not to empty.
        const sink = new Uint8Array(16 * 1024);
        let resumedWith = -1;
        for (let i = 0; i < 10_000 && resumedWith < 0; i++) {
          b.receiveInto(sink);
          for (const event of mux.wait(1)) {
            if (!event.readable) continue;
            assert.ok(!a.sendQueueFull, 'readable only below the cap');
            resumedWith = a.queuedBytes;
          }
        }
        assert.ok(resumedWith > 0, `resumed before the queue was empty (queued then: ${resumedWith})`);
        assert.equal(a.receiveInto(sink), 1);
      } finally {
        a.destroy();
        b.destroy();
        mux.close();
      }
    });

    it('a paused socket whose peer stops reading and goes away is reported (no stall)', () => {
      const mux = new Multiplexer({ backend });
      const { client, server } = tcpPair(mux);
      mux.remove(client);
      mux.add(server, Interest.READABLE);
      try {
        const block = new Uint8Array(64 * 1024);
        while (!server.sendQueueFull) server.send(block);
        client.send(new Uint8Array(100)); // unread by the paused server
        assert.equal(mux.wait(20).filter((e) => e.readable).length, 0, 'paused');
        client.destroy(); // with unread bytes: the kernel resets the connection
        let reported: Error | null = null;
        pumpUntil(mux, () => reported !== null, (event) => {
          if (event.error !== null) reported = event.error;
          // A hangup with no error yet: what was sent before the reset is still readable.
          else if (event.readable || event.hangup) server.receiveInto(block);
        }, 'the reset to be reported');
        assert.match(String((reported as unknown as Error).message), /ECONNRESET|EPIPE/);
        assert.equal((reported as unknown as { unsentBytes?: number }).unsentBytes! > 0, true, 'the stranded bytes are counted');
      } finally {
        client.destroy();
        server.destroy();
        mux.close();
      }
    });

    it('a paused socket whose peer half-closes: reading resumes when the peer drains, then EOF', () => {
      const mux = new Multiplexer({ backend });
      const { client, server } = tcpPair(mux);
      mux.remove(client);
      mux.add(server, Interest.READABLE);
      try {
        const block = new Uint8Array(64 * 1024);
        while (!server.sendQueueFull) server.send(block);
        client.send(new Uint8Array(10));
        client.shutdown('write');
        assert.equal(mux.wait(20).filter((e) => e.readable).length, 0, 'paused');
        let eof = false;
        let got = 0;
        const sink = new Uint8Array(64 * 1024);
        for (let i = 0; i < 10_000 && !eof; i++) {
          client.receiveInto(sink); // the peer drains what the server queued
          for (const event of mux.wait(1)) {
            if (event.target !== server || !event.readable) continue;
            const n = server.receiveInto(block);
            if (n > 0) got += n;
            if (n < 0) eof = true;
          }
        }
        assert.ok(eof, 'EOF reached');
        assert.equal(got, 10);
      } finally {
        client.destroy();
        server.destroy();
        mux.close();
      }
    });
  });
}
