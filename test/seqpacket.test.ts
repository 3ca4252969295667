/**
 * Unix SOCK_SEQPACKET: SeqpacketListener, DatagramSocket.connectSeqpacket and pair({ type:
 * 'seqpacket' }): message boundaries kept on a connection, the peer's close seen as `ended`,
 * batches, the socket file removed on close (only when it is still ours), and Python as a peer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DatagramBatch, DatagramSocket, Multiplexer, SeqpacketListener, SocketError } from '../lib/index.ts';
import { assertNonBlockingCloexec, trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msocket-seqpacket-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString();

/** Accepts one connection, waiting (bounded) with a multiplexer. */
function acceptOne(listener: SeqpacketListener): DatagramSocket {
  using mux = new Multiplexer();
  mux.add(listener);
  for (let i = 0; i < 50; i++) {
    const s = listener.accept();
    if (s !== null) return s;
    mux.wait(100);
  }
  assert.fail('no connection within 5 s');
}

/** Reads every message until `count` arrived or the peer ended (bounded). */
function readMessages(socket: DatagramSocket, count: number): string[] {
  using mux = new Multiplexer();
  mux.add(socket);
  const got: string[] = [];
  const buffer = new Uint8Array(70000);
  for (let i = 0; i < 100 && got.length < count && !socket.ended; i++) {
    for (let r = socket.receiveFrom(buffer); r !== null; r = socket.receiveFrom(buffer)) got.push(str(r.bytes));
    if (got.length < count && !socket.ended) mux.wait(50);
  }
  return got;
}

describe('SOCK_SEQPACKET', () => {
  it('listens, connects and accepts; messages keep their boundaries both ways; fds are non-blocking and close-on-exec', () => {
    const p = path.join(dir, 'a.sock');
    using listener = SeqpacketListener.listen({ path: p });
    using client = DatagramSocket.connectSeqpacket({ path: p });
    using server = acceptOne(listener);
    for (const fd of [listener.fd, client.fd, server.fd]) assertNonBlockingCloexec(fd);
    for (const m of ['one', 'two two', 'x'.repeat(60000)]) assert.equal(client.send(text(m)), 'sent');
    assert.deepEqual(readMessages(server, 3).map((m) => m.length), [3, 7, 60000]);
    assert.equal(server.send(text('reply')), 'sent');
    assert.deepEqual(readMessages(client, 1), ['reply']);
  });

  it("the peer's close is seen as ended, after every message it sent; the socket then goes quiet", () => {
    const [a, b] = DatagramSocket.pair({ type: 'seqpacket' });
    try {
      a.send(text('last words'));
      a.close();
      assert.deepEqual(readMessages(b, 2), ['last words']);
      assert.equal(b.ended, true);
      using mux = new Multiplexer();
      mux.add(b);
      assert.equal(mux.wait(50).length, 0, 'an ended socket reports nothing more (no busy loop)');
      const status = b.send(text('anyone?'));
      assert.equal(status, 'refused');
      assert.ok(b.lastError instanceof SocketError && b.lastError.code === 'EPIPE', String(b.lastError));
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a batch reads many messages in one call and stops at the end', () => {
    const [a, b] = DatagramSocket.pair({ type: 'seqpacket' });
    try {
      for (let i = 0; i < 5; i++) a.send(text(`m${i}`));
      a.close();
      const batch = new DatagramBatch({ capacity: 16, datagramSize: 64 });
      const n = b.receiveBatch(batch);
      assert.equal(n, 5);
      assert.deepEqual([...Array(n).keys()].map((i) => str(batch.bytes(i))), ['m0', 'm1', 'm2', 'm3', 'm4']);
      assert.equal(b.ended, true);
      assert.equal(b.receiveBatch(batch), 0);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('an empty message is refused (it would read as the end); connecting to nobody is refused naming the path', () => {
    const [a, b] = DatagramSocket.pair({ type: 'seqpacket' });
    try {
      assert.throws(() => a.send(new Uint8Array(0)), { code: 'ERR_OUT_OF_RANGE', message: /SEQPACKET/ });
    } finally {
      a.destroy();
      b.destroy();
    }
    const nobody = path.join(dir, 'nobody.sock');
    assert.throws(() => DatagramSocket.connectSeqpacket({ path: nobody }), (err: unknown) => err instanceof SocketError && err.code === 'ENOENT' && err.path === nobody);
    assert.throws(() => DatagramSocket.pair({ type: 'stream' as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.type/ });
  });

  it('close() removes the socket file it made, and leaves alone a file that replaced it', () => {
    const p = path.join(dir, 'b.sock');
    const first = SeqpacketListener.listen({ path: p });
    first.close();
    assert.equal(fs.existsSync(p), false, 'removed: a restart can bind again');
    const again = SeqpacketListener.listen({ path: p });
    fs.rmSync(p);
    fs.writeFileSync(p, 'not ours');
    again.close();
    assert.equal(fs.readFileSync(p, 'utf8'), 'not ours');
    fs.rmSync(p);
  });

  it('talks to Python (socket.SOCK_SEQPACKET), message by message', async () => {
    const p = path.join(dir, 'py.sock');
    using listener = SeqpacketListener.listen({ path: p });
    const program = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
s.connect(sys.argv[1])
for m in [b'alpha', b'b' * 5000, b'gamma']:
    s.send(m)
print(s.recv(100).decode())
`;
    const child = spawn('python3', ['-c', program, p], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    // 'close', not 'exit': the child's stdio sockets are closed by then too (no fd left behind).
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    using server = acceptOne(listener);
    assert.deepEqual(readMessages(server, 3).map((m) => m.length), [5, 5000, 5]);
    server.send(text('got 3'));
    assert.equal(await exited, 0);
    assert.equal(out.trim(), 'got 3');
  });
});
