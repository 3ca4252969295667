/**
 * examples/datagram-echo.ts and its command-line contract: UDP over IPv4 and IPv6 and a Unix
 * datagram path; every datagram echoed whole to its sender; usage errors exit 2, a failure to
 * bind exits 1; SIGTERM exits 0 and removes the Unix path.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { DatagramSocket, Multiplexer, type DatagramDestination } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { exitWithin, ROOT, runExample, startServer } from './helpers/server-process.ts';

const SCRIPT = 'examples/datagram-echo.ts';
let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msocket-dgecho-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

/**
 * Sends `count` datagrams of varied sizes, at most `window` unanswered at a time (so a loopback
 * socket buffer never overflows), and checks that each comes back byte for byte.
 */
function echoRound(client: DatagramSocket, to: DatagramDestination, count: number, window = 32): void {
  using mux = new Multiplexer();
  mux.add(client);
  const payload = (i: number) => new Uint8Array(1 + ((i * 37) % 1400)).map((_, k) => (i + k) & 0xff);
  const buffer = new Uint8Array(65536);
  let sent = 0;
  let received = 0;
  const deadline = Date.now() + 20_000;
  while (received < count) {
    assert.ok(Date.now() < deadline, `only ${received} of ${count} echoes within 20 s`);
    // 'queued' when the server's receive queue is full (Unix datagram queues are short): the
    // multiplexer below sends it when there is room; 'not-sent' would be a loss the test reports.
    while (sent < count && sent - received < window) assert.match(client.sendTo(payload(sent++), to), /^(sent|queued)$/);
    mux.wait(200);
    for (let r = client.receiveFrom(buffer); r !== null; r = client.receiveFrom(buffer)) {
      assert.deepEqual(r.bytes, payload(received), `datagram ${received}`);
      received++;
    }
  }
}

/** Spawns the example on a Unix path and waits for `listening on PATH`. */
async function startOnPath(t: TestContext, socketPath: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--path', socketPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('no listening line within 15 s')), 15_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.slice(0, out.indexOf('\n')));
      }
    });
  });
  return { child, exited, line };
}

describe('examples/datagram-echo.ts', () => {
  for (const host of ['127.0.0.1', '::1']) {
    it(`echoes 2,000 datagrams over UDP on ${host}, byte for byte, then exits 0 on SIGTERM`, async (t) => {
      const server = await startServer(t, SCRIPT, ['--host', host, '--port', '0']);
      using client = DatagramSocket.create({ family: host.includes(':') ? 'IPv6' : 'IPv4' });
      echoRound(client, { host, port: server.port }, 2000);
      server.child.kill('SIGTERM');
      assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null });
    });
  }

  it('serves a Unix datagram path, answers a bound client, and removes the path on exit', async (t) => {
    const socketPath = path.join(dir, 'echo.sock');
    const server = await startOnPath(t, socketPath);
    assert.equal(server.line, `listening on ${socketPath}`);
    using client = DatagramSocket.bind({ path: path.join(dir, 'client.sock') });
    echoRound(client, { path: socketPath }, 500);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.equal(fs.existsSync(socketPath), false, 'the server removed its socket file');
  });

  it('answers socat, a peer the library did not write, over UDP and over a Unix datagram path', async (t) => {
    const run = (args: string[], input: string) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn('socat', args, { stdio: ['pipe', 'pipe', 'pipe'] });
        t.after(() => child.kill('SIGKILL'));
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('error', (e) => resolve({ code: -1, out, err: `${e.message} (socat is installed by .ci/run: apt-get install socat)` }));
        child.on('close', (code) => resolve({ code, out, err }));
        child.stdin.end(input);
      });
    const server = await startServer(t, SCRIPT, ['--host', '127.0.0.1', '--port', '0']);
    const udp = await run(['-t', '2', '-', `UDP:127.0.0.1:${server.port}`], 'hello over udp');
    assert.equal(udp.out, 'hello over udp', udp.err);
    const socketPath = path.join(dir, 'socat-echo.sock');
    const unix = await startOnPath(t, socketPath);
    const reply = await run(['-t', '2', '-', `UNIX-SENDTO:${socketPath},bind=${path.join(dir, 'socat-client.sock')}`], 'hello over unix');
    assert.equal(reply.out, 'hello over unix', reply.err);
    server.child.kill('SIGTERM');
    unix.child.kill('SIGTERM');
    await exitWithin(server, 5000);
    await unix.exited;
  });

  it('usage errors exit 2; a port in use exits 1', async (t) => {
    for (const args of [['--batch', '0'], ['--path', '/tmp/x', '--port', '1'], ['--host', 'not-an-ip'], ['--bogus']]) {
      const run = await runExample(t, SCRIPT, args);
      assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}, stderr ${run.stderr}`);
      assert.match(run.stderr, /usage: datagram-echo/);
    }
    using taken = DatagramSocket.bind({ host: '127.0.0.1' });
    const run = await runExample(t, SCRIPT, ['--host', '127.0.0.1', '--port', String(taken.port)]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /EADDRINUSE/);
  });
});
