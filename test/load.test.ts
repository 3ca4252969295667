/**
 * Load: 5,000 concurrent connections against the echo example (examples/echo-server.ts, in a
 * child with RLIMIT_NOFILE raised), each echoing 16 KiB with every byte checked, from m-socket
 * clients in another child. Reports the server's RSS per connection. Loopback only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const CONNECTIONS = 5000;

function collect(child: ReturnType<typeof spawn>): { out: () => string; err: () => string; exit: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { out: () => out, err: () => err, exit };
}

describe('load', () => {
  it(`${CONNECTIONS} concurrent connections each echo 16 KiB through examples/echo-server.ts`, async (t) => {
    assert.ok(existsSync('examples/echo-server.ts'), 'the echo example exists');
    const node = `"${process.execPath}" --import tsx`;
    const server = spawn('sh', ['-c', `ulimit -n 20000 && exec ${node} examples/echo-server.ts --host 127.0.0.1 --port 0`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const s = collect(server);
    let clients: ReturnType<typeof spawn> | null = null;
    try {
      for (let i = 0; i < 1000 && !/listening on /.test(s.out()); i++) await sleep(10);
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(s.out())?.[1]);
      assert.ok(port > 0, `the server announced its port: ${s.out()} ${s.err()}`);
      clients = spawn('sh', ['-c', `ulimit -n 20000 && exec ${node} test/fixtures/rel-load-clients.ts ${port} ${server.pid} ${CONNECTIONS} 50000`], { stdio: ['ignore', 'pipe', 'pipe'] });
      const c = collect(clients);
      const code = await Promise.race([c.exit, sleep(60_000, 'timeout' as const, { ref: false })]);
      assert.equal(code, 0, `clients: ${code}: ${c.err().slice(-3000)}`);
      const r = JSON.parse(c.out().trim().split('\n').at(-1)!);
      assert.deepEqual(r.errors, []);
      assert.equal(r.verified, CONNECTIONS, 'every connection got its 16 KiB back, byte for byte');
      const perConnIdle = (r.rssConnected - r.rssIdle) / CONNECTIONS;
      const perConnActive = (r.rssPeak - r.rssIdle) / CONNECTIONS;
      t.diagnostic(
        `server RSS: idle ${(r.rssIdle / 2 ** 20).toFixed(1)} MiB, ${CONNECTIONS} connected ${(r.rssConnected / 2 ** 20).toFixed(1)} MiB ` +
          `(${(perConnIdle / 1024).toFixed(2)} KiB per connection), peak while echoing 16 KiB each ${(r.rssPeak / 2 ** 20).toFixed(1)} MiB ` +
          `(${(perConnActive / 1024).toFixed(2)} KiB per connection); connect ${r.connectMs} ms, echo ${r.echoMs} ms`,
      );
      assert.ok(perConnActive < 64 * 1024, `server RSS per active connection ${perConnActive} bytes is sane`);
    } finally {
      clients?.kill('SIGKILL');
      server.kill('SIGTERM');
      const code = await Promise.race([s.exit, sleep(5000, 'timeout' as const, { ref: false })]);
      if (code === 'timeout') server.kill('SIGKILL');
    }
  });
});
