/**
 * Acceptance test of examples/proxy.ts through its command-line contract: `listening on
 * HOST:PORT`, bytes carried both ways to a node:net echo target with half-close, usage errors
 * with exit code 2, and SIGTERM ending open connections gracefully with exit code 0.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { exitWithin, runExample, startServer } from './helpers/server-process.ts';
import { pattern } from './helpers/sockets.ts';

const SCRIPT = 'examples/proxy.ts';

/** A node:net echo server that half-closes after the client's EOF (allowHalfOpen). */
async function echoTarget(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}

/** Sends `payload` through the proxy, half-closes, and resolves with what came back before 'end'. */
function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end();
      ok(Buffer.concat(chunks));
    });
    socket.on('error', fail);
    socket.end(payload);
  });
}

test('proxy carries bytes both ways with half-close, then exits 0 on SIGTERM', { timeout: 60_000 }, async (t) => {
  const target = await echoTarget();
  t.after(() => target.close());
  const port = (target.address() as net.AddressInfo).port;
  const proxy = await startServer(t, SCRIPT, ['--host', '127.0.0.1', '--port', '0', '--target', `127.0.0.1:${port}`]);
  assert.equal(proxy.host, '127.0.0.1');
  const payloads = [Buffer.from(pattern(3 * 1024 * 1024, 5)), Buffer.from('small'), Buffer.alloc(0)];
  const echoed = await Promise.all(payloads.map((p) => roundTrip(proxy.port, p)));
  echoed.forEach((got, i) => assert.ok(got.equals(payloads[i]), `connection ${i}: ${got.length} of ${payloads[i].length} bytes`));

  // An open, idle connection when the signal comes: the proxy ends it gracefully (FIN), then exits 0.
  const open = net.connect({ host: '127.0.0.1', port: proxy.port });
  await new Promise((ok) => open.once('connect', ok));
  open.write('ping');
  await new Promise((ok) => open.once('data', ok));
  const ended = new Promise<void>((ok) => open.once('end', ok));
  open.on('error', () => {});
  proxy.child.kill('SIGTERM');
  await ended;
  open.destroy();
  const status = await exitWithin(proxy, 10_000);
  assert.deepEqual(status, { code: 0, signal: null });
  assert.match(proxy.stderr(), /proxy: stopped: sockets 2 closed, 0 failed, 0 destroyed/);
  assert.equal(proxy.stdout(), `listening on 127.0.0.1:${proxy.port}\n`, 'nothing but the listening line on stdout without --verbose');
});

for (const [what, args, message] of [
  ['no --target', [], /--target HOST:PORT is required/],
  ['an IPv6 target without brackets', ['--target', '::1:80'], /"--target".*needs brackets/],
  ['a target without a port', ['--target', '127.0.0.1'], /"--target".*port is missing/],
] as const) {
  test(`proxy with ${what}: usage on stderr, exit code 2`, { timeout: 30_000 }, async (t) => {
    const run = await runExample(t, SCRIPT, [...args]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, message);
    assert.match(run.stderr, /usage: proxy /);
    assert.equal(run.stdout, '');
  });
}
