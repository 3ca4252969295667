/**
 * Socket#sendFile: file ranges travel through the send queue in order with the bytes around
 * them, byte-exact, from the kernel (sendfile for files, splice for pipes); offsets and lengths
 * are honoured and the file's own offset never moves; a reset mid-file and a file that ends
 * early are reported with the bytes that never went; the queue's duplicate fds are closed.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { O_CLOEXEC, sys } from '../ffi/index.ts';
import { Multiplexer, Socket, type SocketError } from '../lib/index.ts';
import { connectedPair, pattern, pumpUntil } from './helpers/sockets.ts';
import { fdTarget, trackFds } from './helpers/fd.ts';

const MiB = 1024 * 1024;
let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = mkdtempSync('/tmp/m-socket-sendfile-');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

let files = 0;
/** A file holding `bytes`, opened read-only; closed by the caller. */
function fileOf(bytes: Uint8Array): number {
  const path = `${dir}/f${++files}`;
  writeFileSync(path, bytes);
  return openSync(path, 'r');
}

type Op = { bytes: Uint8Array } | { file: number; offset?: number; length?: number; expect: Uint8Array };

/**
 * Runs `ops` on `from` in order, retrying an op that answers 'not-sent' after the queue drains,
 * while `to` reads everything; returns what arrived once `from` has half-closed.
 */
function transfer(from: Socket, to: Socket, ops: Op[], onStatus: (status: string) => void = () => {}): Buffer {
  const mux = new Multiplexer();
  mux.add(from, 0);
  mux.add(to);
  const chunks: Buffer[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let ended = false;
  let next = 0;
  const pushOps = () => {
    while (next < ops.length) {
      const op = ops[next];
      const status = 'bytes' in op ? from.send(op.bytes) : from.sendFile(op.file, op.offset, op.length);
      assert.notEqual(status, 'closed', String(from.error));
      if (status === 'not-sent') return;
      onStatus(status);
      next++;
    }
    if (next === ops.length) {
      next++;
      from.shutdown('write');
    }
  };
  try {
    pushOps();
    pumpUntil(mux, () => ended, (event) => {
      if (event.target === from && event.writable) pushOps();
      if (event.target === to) {
        for (let n = to.receiveInto(buffer); n !== 0; n = to.receiveInto(buffer)) {
          if (n < 0) {
            ended = true;
            break;
          }
          chunks.push(Buffer.from(buffer.subarray(0, n)));
        }
      }
    }, 'the whole transfer', 20_000);
  } finally {
    mux.close();
  }
  return Buffer.concat(chunks);
}

const expected = (ops: Op[]) => Buffer.concat(ops.map((op) => ('bytes' in op ? op.bytes : op.expect)));

describe('Socket#sendFile', () => {
  it('interleaves a file larger than the socket buffers with send()s, in both orders, byte-exact over TCP', () => {
    const content = pattern(6 * MiB, 7);
    const fd = fileOf(content);
    const pair = connectedPair();
    try {
      const statuses: string[] = [];
      const ops: Op[] = [
        { bytes: pattern(100_000, 1) },
        { file: fd, expect: content },
        { bytes: pattern(3000, 2) },
        { file: fd, offset: 12_345, length: 2 * MiB, expect: content.subarray(12_345, 12_345 + 2 * MiB) },
        { file: fd, offset: 5, length: 10, expect: content.subarray(5, 15) },
        { bytes: pattern(70_000, 3) },
      ];
      const got = transfer(pair.client, pair.server, ops, (s) => statuses.push(s));
      assert.equal(got.length, expected(ops).length);
      assert.ok(got.equals(expected(ops)), 'the stream differs from the ops in order');
      // The first file could not all fit in the kernel at once: it really was queued.
      assert.ok(statuses.includes('queued') || statuses.includes('partial'), statuses.join());
    } finally {
      pair.close();
      closeSync(fd);
    }
  });

  it("leaves the file's own offset where it was, and lets the caller close its fd at once (the queue has its own)", () => {
    const content = pattern(3 * MiB, 9);
    const fd = fileOf(content);
    const head = Buffer.alloc(10);
    assert.equal(readSync(fd, head, 0, 10, null), 10); // the file offset is now 10
    const [a, b] = Socket.pair();
    const dup = openSync(`${dir}/f${files}`, 'r');
    try {
      const status = a.sendFile(dup, 100);
      assert.ok(status === 'partial' || status === 'queued', status);
      closeSync(dup); // ours; the queue holds a duplicate
      const got = transfer(a, b, []);
      assert.ok(got.equals(content.subarray(100)));
      const next = Buffer.alloc(10);
      assert.equal(readSync(fd, next, 0, 10, null), 10);
      assert.ok(next.equals(content.subarray(10, 20)), 'the file offset moved');
    } finally {
      a.destroy();
      b.destroy();
      closeSync(fd);
    }
  });

  it('sends pipe bytes with splice, in order with send(); an empty pipe does not busy-loop, and flush() resumes it', () => {
    const ends = new Int32Array(2);
    sys.pipe2(ends, O_CLOEXEC);
    const [reader, writer] = ends;
    const [a, b] = Socket.pair();
    const mux = new Multiplexer();
    try {
      assert.match(fdTarget(reader) ?? '', /^pipe:/);
      const first = pattern(40_000, 4);
      assert.equal(sys.write(writer, first, first.byteLength), first.byteLength);
      assert.equal(a.send(Buffer.from('<')), 'sent');
      assert.equal(a.sendFile(reader, undefined, 50_000), 'partial'); // 40 000 now, 10 000 still to come
      assert.equal(a.queuedBytes, 10_000);
      assert.equal(a.send(Buffer.from('>')), 'queued');
      mux.add(a, 0);
      // The pipe is empty and the socket writable: the kernel must not be asked about
      // writability (it would answer yes at every wait: a busy loop).
      for (let i = 0; i < 20; i++) {
        assert.equal(mux.wait(0).length, 0);
        assert.equal(mux._lastReadyCount, 0, 'the multiplexer was woken for an empty pipe');
      }
      const second = pattern(10_000, 5);
      sys.write(writer, second, second.byteLength);
      assert.equal(a.flush(), 0);
      mux.remove(a);
      const got = transfer(a, b, []);
      assert.ok(got.equals(Buffer.concat([Buffer.from('<'), first, second, Buffer.from('>')])));
    } finally {
      mux.close();
      a.destroy();
      b.destroy();
      sys.close(reader);
      sys.close(writer);
    }
  });

  it('a pipe whose writer leaves before length fails the connection with ENODATA and the unsent count', () => {
    const ends = new Int32Array(2);
    sys.pipe2(ends, O_CLOEXEC);
    const [a, b] = Socket.pair();
    try {
      sys.write(ends[1], pattern(100), 100);
      assert.equal(a.sendFile(ends[0], undefined, 300), 'partial');
      sys.close(ends[1]);
      a.flush();
      const err = a.error as SocketError & { unsentBytes?: number };
      assert.equal(err?.code, 'ENODATA');
      assert.equal(err.unsentBytes, 200);
      assert.match(err.message, /200 queued bytes were not sent/);
      assert.equal(a.queuedBytes, 0);
      assert.equal(a.send(new Uint8Array(1)), 'closed');
    } finally {
      a.destroy();
      b.destroy();
      sys.close(ends[0]);
    }
  });

  it('a file that shrinks while queued fails the connection with ENODATA; a range past the end is refused up front', () => {
    const path = `${dir}/shrinking`;
    writeFileSync(path, pattern(2 * MiB, 6));
    const fd = openSync(path, 'r');
    const [a, b] = Socket.pair();
    try {
      assert.throws(() => a.sendFile(fd, 0, 2 * MiB + 1), { code: 'ERR_OUT_OF_RANGE', message: /"length"/ });
      assert.throws(() => a.sendFile(fd, 2 * MiB + 1), { code: 'ERR_OUT_OF_RANGE', message: /"offset"/ });
      const status = a.sendFile(fd);
      assert.ok(status === 'partial' || status === 'queued', status);
      const queued = a.queuedBytes;
      truncateSync(path, 2 * MiB - queued + 1000); // 1000 of the queued bytes are still there
      const mux = new Multiplexer();
      mux.add(b);
      mux.add(a, 0);
      let error = null as SocketError | null;
      const buffer = new Uint8Array(64 * 1024);
      pumpUntil(mux, () => error !== null, (event) => {
        if (event.target === b) while (b.receiveInto(buffer) > 0);
        if (event.target === a && event.error) error = event.error;
      }, 'the ENODATA error event');
      mux.close();
      assert.equal(error!.code, 'ENODATA');
      assert.equal((error as SocketError & { unsentBytes?: number }).unsentBytes, queued - 1000);
    } finally {
      a.destroy();
      b.destroy();
      closeSync(fd);
    }
  });

  it('a peer reset mid-file is reported with the bytes that never went, and the duplicate fd is closed', () => {
    const content = pattern(8 * MiB, 8);
    const fd = fileOf(content);
    const pair = connectedPair();
    const before = trackFds();
    try {
      assert.notEqual(pair.client.sendFile(fd), 'sent');
      const queued = pair.client.queuedBytes;
      assert.ok(queued > 0);
      pair.server.setOption('linger', 0);
      pair.server.destroy(); // RST: the server never read a byte
      const mux = new Multiplexer();
      mux.add(pair.client, 0);
      let error = null as SocketError | null;
      pumpUntil(mux, () => error !== null, (event) => {
        if (event.error) error = event.error;
      }, 'the reset');
      mux.close();
      assert.ok(['ECONNRESET', 'EPIPE'].includes(error!.code), error!.code);
      const unsent = (error as SocketError & { unsentBytes?: number }).unsentBytes!;
      assert.ok(unsent > 0 && unsent <= queued, `${unsent} of ${queued}`);
      assert.equal(pair.client.queuedBytes, 0);
      before.assertNoLeak(); // the queue's duplicate of fd went with the queue
    } finally {
      pair.close();
      closeSync(fd);
    }
  });

  it('a range queued behind bytes: the flush reaches an empty pipe and waits without a busy loop; a peer gone mid-flush is reported', () => {
    const ends = new Int32Array(2);
    sys.pipe2(ends, O_CLOEXEC);
    const [a, b] = Socket.pair({ sendQueueLimit: 8 * MiB });
    const mux = new Multiplexer();
    const fd = fileOf(pattern(4 * MiB, 12));
    try {
      const head = pattern(1 * MiB, 13);
      assert.notEqual(a.send(head), 'sent');
      assert.equal(a.sendFile(ends[0], undefined, 10), 'queued');
      mux.add(a, 0);
      const chunks: Buffer[] = [];
      const buffer = new Uint8Array(64 * 1024);
      const drain = () => {
        for (let n = b.receiveInto(buffer); n > 0; n = b.receiveInto(buffer)) chunks.push(Buffer.from(buffer.subarray(0, n)));
      };
      pumpUntil(mux, () => (drain(), a.queuedBytes === 10), () => {}, 'the bytes ahead of the pipe range');
      drain();
      assert.ok(Buffer.concat(chunks).equals(head));
      for (let i = 0; i < 5; i++) {
        mux.wait(0);
        assert.equal(mux._lastReadyCount, 0, 'the multiplexer was woken for an empty pipe');
      }
      sys.write(ends[1], Buffer.from('0123456789'), 10);
      assert.equal(a.flush(), 0);
      assert.equal(b.receiveInto(buffer), 10);
      // Now a file range, and the peer leaves before it has gone: the flush reports the loss.
      assert.notEqual(a.sendFile(fd), 'sent');
      const queued = a.queuedBytes;
      b.destroy();
      a.flush();
      assert.equal(a.error?.code, 'EPIPE');
      assert.equal((a.error as SocketError & { unsentBytes?: number }).unsentBytes, queued);
    } finally {
      mux.close();
      a.destroy();
      b.destroy();
      sys.close(ends[0]);
      sys.close(ends[1]);
      closeSync(fd);
    }
  });

  it('counts a queued range against sendQueueLimit: a send behind a big file is not-sent until it drains', () => {
    const fd = fileOf(pattern(4 * MiB, 10));
    const [a, b] = Socket.pair({ sendQueueLimit: 1024 });
    try {
      assert.notEqual(a.sendFile(fd), 'sent');
      assert.ok(a.queuedBytes > 1024);
      assert.equal(a.sendQueueFull, true);
      assert.equal(a.send(new Uint8Array(1)), 'not-sent');
      assert.equal(a.sendFile(fd, 0, 1), 'not-sent');
      a.destroy(); // drops the range and closes its duplicate fd
    } finally {
      b.destroy();
      closeSync(fd);
    }
  });

  it('answers sent for an empty range and refuses what is not a file or a pipe', () => {
    const fd = fileOf(new Uint8Array(0));
    const [a, b] = Socket.pair();
    try {
      assert.equal(a.sendFile(fd), 'sent');
      assert.throws(() => a.sendFile(b.fd), { code: 'ERR_INVALID_ARG_VALUE', message: /"fd"/ });
      assert.throws(() => a.sendFile(1_000_000), { code: 'EBADF', syscall: 'fstat' });
    } finally {
      a.destroy();
      b.destroy();
      closeSync(fd);
    }
  });
});
