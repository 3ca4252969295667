/**
 * Acceptance test of examples/echo-client.ts through its command-line contract: stdin goes to
 * the server, the echo comes back on stdout, exit 0 when the server closes; a refusal is one
 * stderr line naming the code and the address, exit 1; bad arguments exit 2.
 *
 * TCP cases talk to examples/echo-server.ts; Unix cases to a small m-socket echo server running
 * in this test process (Listener.listen({ path }) + Reactor).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Interest, Listener, Reactor, type Socket } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { pattern } from './helpers/sockets.ts';
import { startServer } from './helpers/server-process.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLIENT = 'examples/echo-client.ts';
const SERVER = 'examples/echo-server.ts';
const MiB = 1024 * 1024;

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = mkdtempSync(join(tmpdir(), 'm-socket-echo-client-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

/** Spawns `node --import tsx script ...args`; the child is killed in t.after if still running. */
function spawnNode(t: TestContext, script: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

interface ClientResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the client with `input` on stdin; resolves when it exits (fails after `timeoutMs`). */
function runClient(t: TestContext, args: string[], input: Uint8Array, timeoutMs = 30_000): Promise<ClientResult> {
  const child = spawnNode(t, CLIENT, args);
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // The client may exit before reading all of stdin (a refusal): that EPIPE is expected.
  child.stdin!.on('error', () => {});
  // Write in 256 KiB pieces so that the pipe's own backpressure is exercised.
  const write = (offset: number): void => {
    if (offset >= input.byteLength) {
      child.stdin!.end();
      return;
    }
    const piece = input.subarray(offset, offset + 256 * 1024);
    if (child.stdin!.write(piece)) write(offset + piece.byteLength);
    else child.stdin!.once('drain', () => write(offset + piece.byteLength));
  };
  write(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo-client still running after ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(chunks), stderr });
    });
  });
}

/** Starts examples/echo-server.ts and returns its port (killed in t.after). */
async function startEchoServer(t: TestContext): Promise<number> {
  return (await startServer(t, SERVER, ['--host', '127.0.0.1', '--port', '0'])).port;
}

/** A port that was just closed: nothing listens there. */
function closedPort(): number {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
  const port = listener.port;
  listener.close();
  return port;
}

/**
 * A small Unix echo server on m-socket in this process: echoes each connection, keeps the bytes a
 * full send queue refused and stops reading until they are sent, closes after the peer's EOF.
 */
function startUnixEcho(path: string): { close(): void } {
  const listener = Listener.listen({ path });
  const reactor = new Reactor();
  const sockets = new Set<Socket>();
  const serve = (socket: Socket): void => {
    let pending: Uint8Array | null = null;
    sockets.add(socket);
    reactor.add(socket, (event) => {
      if (event.error !== null) {
        sockets.delete(socket);
        socket.destroy();
        return;
      }
      if (pending !== null) {
        if (!event.writable) return;
        socket.send(pending); // the queue has drained: accepted
        pending = null;
        reactor.modify(socket, Interest.READABLE);
        return;
      }
      if (!event.readable && !event.hangup) return;
      const { bytes, status } = socket.receive();
      if (bytes.byteLength > 0 && socket.send(bytes) === 'not-sent') {
        pending = bytes.slice(); // the receive buffer is shared: copy
        reactor.modify(socket, 0);
        return;
      }
      if (status === 'closed') {
        sockets.delete(socket);
        socket.close(); // graceful: the reactor flushes the queue, then the fd is closed
      }
    });
  };
  reactor.add(listener, () => {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) serve(socket);
  });
  return {
    close() {
      for (const socket of sockets) socket.destroy();
      listener.close();
      reactor.close();
    },
  };
}

function assertSameBytes(actual: Buffer, expected: Uint8Array): void {
  assert.equal(actual.byteLength, expected.byteLength, 'stdout length');
  assert.ok(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength).equals(actual), 'stdout bytes equal stdin bytes');
}

test('3 MiB through the echo server: stdout equals stdin, exit 0', async (t) => {
  const port = await startEchoServer(t);
  const input = pattern(3 * MiB, 7);
  const result = await runClient(t, ['--host', '127.0.0.1', '--port', String(port)], input);
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0);
  assertSameBytes(result.stdout, input);
});

test('a host name (localhost) goes through resolve(), and empty stdin half-closes at once', async (t) => {
  const port = await startEchoServer(t);
  const input = pattern(100_000, 3);
  const named = await runClient(t, ['--host', 'localhost', '--port', String(port)], input);
  assert.equal(named.stderr, '');
  assert.equal(named.code, 0);
  assertSameBytes(named.stdout, input);
  const empty = await runClient(t, ['--port', String(port)], new Uint8Array(0));
  assert.equal(empty.stderr, '');
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout.byteLength, 0);
});

test('a refused connection: one stderr line with ECONNREFUSED and the address, exit 1', async (t) => {
  const port = closedPort();
  const result = await runClient(t, ['--host', '127.0.0.1', '--port', String(port)], pattern(1000));
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.stdout.byteLength, 0);
  const lines = result.stderr.split('\n');
  assert.equal(lines.length, 2, `one line: ${JSON.stringify(result.stderr)}`);
  assert.equal(lines[1], '');
  assert.match(lines[0], /ECONNREFUSED/);
  assert.ok(lines[0].includes(`127.0.0.1:${port}`), lines[0]);
});

test('a name that does not exist: one stderr line naming it, exit 1', async (t) => {
  const result = await runClient(t, ['--host', 'nonexistent.invalid', '--port', '9'], new Uint8Array(0));
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^echo-client: getaddrinfo (ENOTFOUND|EAI_AGAIN) nonexistent\.invalid\n$/);
});

test('Unix socket by path and by abstract name: stdout equals stdin, exit 0', async (t) => {
  const path = join(dir, 'echo.sock');
  const abstract = `m-socket-echo-client-${process.pid}`;
  const servers = [startUnixEcho(path), startUnixEcho(`\0${abstract}`)];
  try {
    const input = pattern(MiB, 11);
    for (const args of [['--path', path], ['--abstract', abstract]]) {
      const result = await runClient(t, args, input);
      assert.equal(result.stderr, '', args.join(' '));
      assert.equal(result.code, 0, args.join(' '));
      assertSameBytes(result.stdout, input);
    }
  } finally {
    for (const server of servers) server.close();
  }
});

test('a Unix path nobody listens on: one stderr line naming the path and the code, exit 1', async (t) => {
  const missing = join(dir, 'missing.sock');
  const result = await runClient(t, ['--path', missing], pattern(10));
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.stderr.split('\n').length, 2, result.stderr);
  assert.match(result.stderr, /ENOENT/);
  assert.ok(result.stderr.includes(missing), result.stderr);
});

test('bad arguments: usage on stderr, exit 2; --help: usage on stdout, exit 0', async (t) => {
  const cases = [
    [],
    ['--host', '127.0.0.1'],
    ['--port', '70000'],
    ['--port', 'http'],
    ['--port', '0'],
    ['--path', '/tmp/x', '--port', '80'],
    ['--bogus'],
  ];
  const results = await Promise.all(cases.map((args) => runClient(t, args, new Uint8Array(0))));
  results.forEach((result, i) => {
    assert.equal(result.code, 2, `${cases[i].join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^echo-client: .*\nusage: echo-client/, cases[i].join(' '));
    assert.equal(result.stdout.byteLength, 0);
  });
  const help = await runClient(t, ['--help'], new Uint8Array(0));
  assert.equal(help.code, 0);
  assert.match(help.stdout.toString(), /^usage: echo-client/);
});
