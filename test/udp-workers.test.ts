/**
 * examples/udp-workers.ts as a command: several workers, each with its own DatagramSocket on one
 * port (SO_REUSEPORT) and its own multiplexer, echo every datagram of 64 flows from Python's socket
 * module (a client the library did not write) byte for byte; the kernel spreads the flows, so
 * more than one worker serves; SIGTERM stops every worker through its Waker and exits 0 with a
 * per-worker count; bad arguments exit 2, a port taken exits 1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it, type TestContext } from 'node:test';
import { DatagramSocket } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { exitWithin, runExample, startServer, type ServerProcess } from './helpers/server-process.ts';

const SCRIPT = 'examples/udp-workers.ts';
let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/**
 * 64 client sockets (64 source ports: 64 flows), ROUNDS rounds: each round sends one datagram
 * on every socket (sizes 1 to 1400 bytes, contents that differ per flow and round), then reads
 * the 64 echoes and compares each with what its socket sent. At most 64 datagrams are in flight,
 * so no loopback buffer overflows. Prints one JSON line.
 */
const CLIENT = `
import json, socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
addr = (sys.argv[1], int(sys.argv[2]))
rounds = int(sys.argv[3])
flows = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(64)]
for s in flows:
    s.settimeout(10)
    s.connect(addr)
def payload(f, r):
    n = 1 + (f * 131 + r * 37) % 1400
    return bytes((f * 7 + r * 13 + i) & 255 for i in range(n))
echoed = mismatched = 0
for r in range(rounds):
    for f, s in enumerate(flows):
        s.send(payload(f, r))
    for f, s in enumerate(flows):
        if s.recv(65536) == payload(f, r): echoed += 1
        else: mismatched += 1
ports = len({s.getsockname()[1] for s in flows})
for s in flows: s.close()
print(json.dumps({'echoed': echoed, 'mismatched': mismatched, 'ports': ports}))
`;

interface ClientResult {
  echoed: number;
  mismatched: number;
  ports: number;
}

/** Runs the Python client against HOST:PORT (bounded: killed after 30 s, and in t.after). */
function pythonClient(t: TestContext, host: string, port: number, rounds: number): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', CLIENT, host, String(port), String(rounds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => reject(new Error(`python3: ${e.message} (it is on the machine image)`)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    // 'close', not 'exit': the child's stdio pipes are closed by then too (no fd left behind).
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as ClientResult);
      else reject(new Error(`python exited ${code}: ${err}`));
    });
  });
}

/** The exit summary: one `worker I echoed N datagrams, M not echoed` line per worker, in order. */
function summary(server: ServerProcess, workers: number): { echoed: number; notEchoed: number }[] {
  const lines = server.stdout().trim().split('\n').filter((l) => l.startsWith('worker ') && l.includes(' echoed '));
  assert.equal(lines.length, workers, server.stdout());
  return lines.map((line, i) => {
    const m = /^worker (\d+) echoed (\d+) datagrams, (\d+) not echoed$/.exec(line);
    assert.ok(m, line);
    assert.equal(Number(m[1]), i);
    return { echoed: Number(m[2]), notEchoed: Number(m[3]) };
  });
}

/** Starts the example, echoes ROUNDS x 64 flows through it, stops it with SIGTERM; checks it all. */
async function echoAndStop(t: TestContext, args: string[], workers: number, rounds: number): Promise<ServerProcess> {
  const server = await startServer(t, SCRIPT, args);
  const got = await pythonClient(t, server.host, server.port, rounds);
  assert.deepEqual(got, { echoed: 64 * rounds, mismatched: 0, ports: 64 }, 'every datagram of 64 flows came back byte for byte');
  server.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(server, 15_000), { code: 0, signal: null }, server.stderr());
  const counts = summary(server, workers);
  assert.equal(counts.reduce((sum, c) => sum + c.echoed, 0), 64 * rounds, 'each datagram was echoed by exactly one worker');
  for (const c of counts) assert.equal(c.notEchoed, 0);
  // 64 flows hashed over the workers' sockets: all on one worker has odds 2^-63 with two, less with more.
  const serving = counts.filter((c) => c.echoed > 0).length;
  assert.ok(serving >= 2, `${serving} of ${workers} workers served: ${JSON.stringify(counts)}`);
  return server;
}

describe('examples/udp-workers.ts', () => {
  it('2 workers (the default) on 127.0.0.1, epoll: 64 flows echoed byte for byte, spread over both, SIGTERM exits 0', async (t) => {
    const server = await echoAndStop(t, ['--host', '127.0.0.1', '--port', '0'], 2, 8);
    assert.match(server.stdout(), /^listening on 127\.0\.0\.1:\d+\n/);
  });

  it('3 workers on ::1 with the poll backend, each saying so with --verbose', async (t) => {
    const server = await echoAndStop(t, ['--host', '::1', '--workers', '3', '--backend', 'poll', '--verbose'], 3, 4);
    assert.match(server.stdout(), /^listening on \[::1\]:\d+\n/);
    for (let i = 0; i < 3; i++) assert.match(server.stdout(), new RegExp(`^worker ${i} on poll \\(thread \\d+\\)$`, 'm'));
  });

  it('--backend io_uring: io_uring where the kernel allows it, else epoll (said with --verbose); echoes the same', async (t) => {
    const server = await echoAndStop(t, ['--backend', 'io_uring', '--batch', '8', '--verbose'], 2, 4);
    const backends = [...server.stdout().matchAll(/^worker \d on (\w+) /gm)].map((m) => m[1]);
    assert.equal(backends.length, 2);
    for (const b of backends) assert.ok(b === 'io_uring' || b === 'epoll', b);
  });

  it('bad arguments: a message and the usage on stderr, exit code 2, nothing on stdout', async (t) => {
    for (const [args, says] of [
      [['--workers', '0'], /--workers must be an integer from 1 to 64/],
      [['--backend', 'kqueue'], /--backend must be epoll, poll or io_uring/],
      [['--host', 'not-an-ip'], /--host must be an IP address/],
      [['--port', '70000'], /--port must be an integer/],
      [['--bogus'], /bogus/],
    ] as const) {
      const run = await runExample(t, SCRIPT, [...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}, stderr ${run.stderr}`);
      assert.match(run.stderr, says);
      assert.match(run.stderr, /usage: udp-workers/);
      assert.equal(run.stdout, '');
    }
  });

  it('a port another socket holds without SO_REUSEPORT: exit 1, naming EADDRINUSE', async (t) => {
    using taken = DatagramSocket.bind({ host: '127.0.0.1' });
    const run = await runExample(t, SCRIPT, ['--host', '127.0.0.1', '--port', String(taken.port)]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /udp-workers: cannot bind 127\.0\.0\.1 port \d+: .*EADDRINUSE/);
    assert.equal(run.stdout, '');
  });
});
