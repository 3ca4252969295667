/**
 * examples/statsd-server.ts and examples/statsd-client.ts: metrics over UDP and a Unix datagram
 * socket are all counted (the client never drops a datagram silently: the server's short Unix
 * queue makes it queue and wait), malformed lines are counted as bad, the contract's exits hold.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DatagramSocket } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { exitWithin, runExample, startServer, type ServerProcess } from './helpers/server-process.ts';

let fds: ReturnType<typeof trackFds>;
let dir: string;
before(() => {
  fds = trackFds();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msocket-statsd-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fds.assertNoLeak();
});

/** Adds up every flush block the server printed: counters summed, timers' counts summed, last gauge. */
function totals(out: string): { datagrams: number; counters: Map<string, number>; timers: Map<string, number>; gauges: Map<string, number>; bad: number } {
  const t = { datagrams: 0, counters: new Map<string, number>(), timers: new Map<string, number>(), gauges: new Map<string, number>(), bad: 0 };
  for (const line of out.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^flush (\d+)$/.exec(line))) t.datagrams += Number(m[1]);
    else if ((m = /^(\S+) counter (\S+)$/.exec(line))) t.counters.set(m[1], (t.counters.get(m[1]) ?? 0) + Number(m[2]));
    else if ((m = /^(\S+) timer count=(\d+) /.exec(line))) t.timers.set(m[1], (t.timers.get(m[1]) ?? 0) + Number(m[2]));
    else if ((m = /^(\S+) gauge (\S+)$/.exec(line))) t.gauges.set(m[1], Number(m[2]));
    else if ((m = /^bad (\d+)$/.exec(line))) t.bad += Number(m[1]);
  }
  return t;
}

async function flushedAfter(server: ServerProcess, datagrams: number): Promise<ReturnType<typeof totals>> {
  for (let i = 0; i < 200; i++) {
    const t = totals(server.stdout());
    if (t.datagrams >= datagrams) return t;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the server did not report ${datagrams} datagrams within 10 s: ${server.stdout().slice(-500)}`);
}

describe('examples/statsd-server.ts and statsd-client.ts', () => {
  it('counts every metric sent over a Unix datagram socket and over UDP, and the bad lines', async (t) => {
    const socketPath = path.join(dir, 'statsd.sock');
    const server = await startServer(t, 'examples/statsd-server.ts', ['--port', '0', '--path', socketPath, '--interval', '100']);
    const overUnix = await runExample(t, 'examples/statsd-client.ts', ['--path', socketPath, '--repeat', '2000', 'hits:1|c', 'half:1|c|@0.5', 'rt:10|ms', 'rt:20|ms', 'temp:21.5|g']);
    assert.equal(overUnix.code, 0, overUnix.stderr);
    const unixDatagrams = Number(/in (\d+) datagrams/.exec(overUnix.stdout)![1]);
    assert.ok(unixDatagrams > 50, 'many datagrams: more than the Unix receive queue holds at once');
    const overUdp = await runExample(t, 'examples/statsd-client.ts', ['--host', '127.0.0.1', '--port', String(server.port), '--repeat', '500', 'hits:1|c', 'temp:19|g']);
    assert.equal(overUdp.code, 0, overUdp.stderr);
    const udpDatagrams = Number(/in (\d+) datagrams/.exec(overUdp.stdout)![1]);
    using raw = DatagramSocket.create({ family: 'IPv4' });
    raw.sendTo(new TextEncoder().encode('garbage\nok:1|c\nnovalue:|c\nx:1|zz'), { host: '127.0.0.1', port: server.port });

    const got = await flushedAfter(server, unixDatagrams + udpDatagrams + 1);
    assert.equal(got.datagrams, unixDatagrams + udpDatagrams + 1);
    assert.equal(got.counters.get('hits'), 2500);
    assert.equal(got.counters.get('half'), 4000, 'a sampled counter counts 1/rate');
    assert.equal(got.counters.get('ok'), 1);
    assert.equal(got.timers.get('rt'), 4000);
    assert.equal(got.bad, 3);
    server.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null });
    assert.equal(fs.existsSync(socketPath), false, 'the server removed its socket file');
  });

  it('the client exits 1 when nobody listens on the path, 2 for bad arguments', async (t) => {
    const missing = await runExample(t, 'examples/statsd-client.ts', ['--path', path.join(dir, 'nobody.sock'), 'a:1|c']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ENOENT|ECONNREFUSED/);
    for (const args of [['--path', '/tmp/x'], ['--path', '/tmp/x', 'not a metric'], ['--repeat', '0', '--path', '/tmp/x', 'a:1|c'], ['a:1|c']]) {
      const run = await runExample(t, 'examples/statsd-client.ts', args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    }
    const serverUsage = await runExample(t, 'examples/statsd-server.ts', ['--interval', '5']);
    assert.equal(serverUsage.code, 2);
  });
});
