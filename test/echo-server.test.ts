/**
 * Acceptance test of examples/echo-server.ts, through its command-line contract only: spawn it,
 * read `listening on HOST:PORT`, talk to it with node:net clients, look at its fds in /proc, and
 * stop it with signals.
 *
 * Payload sizes and write chunking come from a seeded PRNG; the seed is printed, and
 * `ECHO_TEST_SEED=<seed>` replays a run.
 */
import assert from 'node:assert/strict';
import { exitWithin, startServer } from './helpers/server-process.ts';
import { seededRandom } from './helpers/random.ts';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER = 'examples/echo-server.ts';
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const MiB = 1024 * 1024;

// ---- PRNG -------------------------------------------------------------------------------------------


/** `length` pseudo-random bytes from `rand`. */
function randomBytes(rand: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (rand() * 256) | 0;
  return bytes;
}

// ---- The server process -------------------------------------------------------------------------------



/** Waits for the exit, failing after `ms`. */

/** The server's open fds and what they point to (fds that close while we look are skipped). */
function serverFds(pid: number): { fd: number; target: string }[] {
  const fds: { fd: number; target: string }[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.push({ fd: Number(name), target: readlinkSync(`/proc/${pid}/fd/${name}`) });
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

/**
 * The server's own sockets. Fds 0-2 are excluded: they are the stdio the test handed over
 * (libuv makes spawn's stdio pipes with socketpair, blocking and inheritable on purpose).
 */
function serverSockets(pid: number): number[] {
  return serverFds(pid)
    .filter(({ fd, target }) => fd > 2 && target.startsWith('socket:'))
    .map(({ fd }) => fd);
}

/** The open-file flags of one of the server's fds (`flags:` in fdinfo, octal), or null if it closed. */
function fdFlags(pid: number, fd: number): number | null {
  let info: string;
  try {
    info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  } catch {
    return null;
  }
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  assert.ok(match, `fdinfo of fd ${fd}: ${info}`);
  return parseInt(match[1], 8);
}

/** The socket inode of the TCP listener on `port` (from /proc/net/tcp and tcp6; state 0A = LISTEN). */
function listeningInode(port: number): string {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && fields[1].endsWith(`:${hexPort}`) && fields[3] === '0A') return fields[9];
    }
  }
  assert.fail(`no TCP listener on port ${port} in /proc/net/tcp{,6}`);
}

async function pollUntil(what: string, ms: number, done: () => boolean): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- Clients ---------------------------------------------------------------------------------------------

interface EchoClient {
  /** Resolves once connected. */
  connected: Promise<void>;
  /** Resolves with every byte echoed, once the server has ended and the socket is closed. */
  echoed: Promise<Buffer>;
}

/**
 * Connects; once `go` resolves, writes `payload` in random chunks (waiting for 'drain' when
 * node:net asks), half-closes, and collects the echo until 'end'.
 *
 * A `slow` client reads in bursts: it stops reading for 20-80 ms at a time, so the server's
 * kernel buffer and then its send queue fill up, and the server must apply backpressure
 * (stop reading while its send queue is full, resume when drained) without losing a byte.
 */
function echoClient(host: string, port: number, payload: Buffer, rand: () => number, go: Promise<void>, slow = false): EchoClient {
  const socket = net.connect({ host, port });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (slow) {
    let timer: NodeJS.Timeout;
    const toggle = (): void => {
      if (socket.isPaused()) socket.resume();
      else socket.pause();
      timer = setTimeout(toggle, socket.isPaused() ? 20 + rand() * 60 : 2 + rand() * 8);
    };
    socket.pause();
    timer = setTimeout(toggle, 50 + rand() * 100);
    socket.once('close', () => clearTimeout(timer));
  }
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const echoed = new Promise<Buffer>((resolve, reject) => {
    let ended = false;
    socket.once('end', () => (ended = true));
    socket.on('error', reject);
    socket.once('close', () => (ended ? resolve(Buffer.concat(chunks)) : reject(new Error('closed before end'))));
  });
  void (async () => {
    await connected;
    await go;
    for (let at = 0; at < payload.length; ) {
      // Mostly small writes, sometimes up to 128 KiB.
      const size = Math.min(payload.length - at, 1 + Math.floor(rand() * rand() * 128 * 1024));
      const more = socket.write(payload.subarray(at, at + size));
      at += size;
      if (!more) await new Promise((resolve) => socket.once('drain', resolve));
      if (socket.destroyed) return;
    }
    socket.end();
  })().catch((err: unknown) => socket.destroy(err as Error));
  return { connected, echoed };
}

function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  if (actual.equals(expected)) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  assert.fail(`${what}: got ${actual.length} bytes, expected ${expected.length}; first difference at byte ${i}`);
}

// ---- Tests ------------------------------------------------------------------------------------------------

// The whole echo on each backend the server takes (--backend): io_uring reads by multishot
// receives into its buffer ring here (Linux 6.18), with slow readers that hold buffers, and with
// --ring-send sends through the ring too.
for (const backend of ['epoll', 'io_uring', 'io_uring --ring-send'] as const)
test(`echo-server --backend ${backend}: 200 concurrent clients get every byte back; sockets are non-blocking and close-on-exec; no fd leak; SIGTERM exits 0`, { timeout: 60_000 }, async (t) => {
  const seed = process.env.ECHO_TEST_SEED !== undefined ? Number(process.env.ECHO_TEST_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  t.diagnostic(`seed ${seed} (replay with ECHO_TEST_SEED=${seed})`);
  const rand = seededRandom(seed);

  const server = await startServer(t, SERVER, ['--port', '0', '--backend', ...backend.split(' ')]);
  assert.equal(server.host, '127.0.0.1');
  const baseline = serverFds(server.pid);
  const baselineSockets = serverSockets(server.pid);
  // The listener is one of them (tsx's esbuild helper process may add its stdio sockets).
  const listenerInode = listeningInode(server.port);
  assert.ok(
    serverFds(server.pid).some(({ fd, target }) => baselineSockets.includes(fd) && target === `socket:[${listenerInode}]`),
    `the listener (inode ${listenerInode}) among the server's fds: ${JSON.stringify(serverFds(server.pid))}`,
  );

  // 200 clients with sizes from 1 B to 1 MiB, skewed towards small (4th power of a uniform),
  // plus 2 slow readers with 8 MiB each: loopback kernel buffers (tcp_wmem up to 4 MiB) swallow
  // a 1 MiB echo whole, so only a bigger payload read slowly drives the server's send queue
  // to its cap (and the server to pause). ~50 MiB in all.
  const RANDOM_CLIENTS = 200;
  const BIG_SLOW = 2;
  const CLIENTS = RANDOM_CLIENTS + BIG_SLOW;
  const payloads = Array.from({ length: CLIENTS }, (_, i) => {
    const size = i === 0 ? 1 : i === 1 ? MiB : i >= RANDOM_CLIENTS ? 8 * MiB : 1 + Math.floor(rand() ** 4 * MiB);
    return randomBytes(rand, size);
  });
  const total = payloads.reduce((sum, p) => sum + p.length, 0);
  t.diagnostic(`${RANDOM_CLIENTS} + ${BIG_SLOW} clients, ${(total / MiB).toFixed(1)} MiB in all`);

  let release!: () => void;
  const go = new Promise<void>((resolve) => (release = resolve));
  // The big ones and one random client in eight read slowly.
  const clients = payloads.map((payload, i) =>
    echoClient(server.host, server.port, payload, seededRandom(seed + i + 1), go, i >= RANDOM_CLIENTS || i % 8 === 1),
  );
  await Promise.all(clients.map((c) => c.connected));

  // Every client is connected and waiting: the server must hold 200 accepted sockets + its
  // listener. Counted as sockets not in the baseline (fd -> target), since the server's runtime
  // may close sockets of its own meanwhile (Node 22's tsx loader does, a while after start-up).
  const before = new Set(baseline.map(({ fd, target }) => `${fd} -> ${target}`));
  const acceptedSockets = (): number[] =>
    serverFds(server.pid)
      .filter(({ fd, target }) => fd > 2 && target.startsWith('socket:') && !before.has(`${fd} -> ${target}`))
      .map(({ fd }) => fd);
  await pollUntil('the server to accept every client', 5000, () => acceptedSockets().length === CLIENTS);
  const checkFlags = (): number => {
    let checked = 0;
    for (const fd of serverSockets(server.pid)) {
      const flags = fdFlags(server.pid, fd);
      if (flags === null) continue; // closed since the listing
      assert.equal(flags & O_NONBLOCK, O_NONBLOCK, `server fd ${fd}: O_NONBLOCK missing (flags 0${flags.toString(8)})`);
      assert.equal(flags & O_CLOEXEC, O_CLOEXEC, `server fd ${fd}: O_CLOEXEC missing (flags 0${flags.toString(8)})`);
      checked++;
    }
    return checked;
  };
  assert.ok(checkFlags() >= CLIENTS + 1, 'the listener and every accepted socket checked');

  const started = performance.now();
  release();
  // Once more mid-transfer (some sockets may be closing by now: those are skipped).
  await new Promise((resolve) => setTimeout(resolve, 50));
  checkFlags();

  let timer: NodeJS.Timeout | undefined;
  const results = await Promise.race([
    Promise.all(clients.map((c) => c.echoed)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`echo not complete after 20 s (seed ${seed}); stderr: ${server.stderr()}`)), 20_000);
    }),
  ]).finally(() => clearTimeout(timer));
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`echoed ${(total / MiB).toFixed(1)} MiB in ${seconds.toFixed(2)} s`);
  results.forEach((echo, i) => assertSameBytes(echo, payloads[i], `client ${i} (${payloads[i].length} bytes, seed ${seed})`));

  // Every connection closed: the server's fds go back to what they were right after 'listening
  // on' (compared as fd -> target pairs, so a reused fd number cannot hide a leak).
  const extra = (): string[] => serverFds(server.pid).map(({ fd, target }) => `${fd} -> ${target}`).filter((e) => !before.has(e));
  await pollUntil(`the server's fds to return to the baseline (${baseline.length})`, 2000, () => extra().length === 0).catch((err: Error) => {
    assert.fail(`${err.message}; still open: ${extra().join(', ')}`);
  });
  assert.ok(serverFds(server.pid).length <= baseline.length);

  server.child.kill('SIGTERM');
  const { code, signal } = await exitWithin(server, 5000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
});

test('echo-server: SIGINT while a client is mid-transfer still exits 0, and the echo received is a prefix of what was sent', { timeout: 20_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0']);
  const payload = randomBytes(seededRandom(7), 32 * MiB);
  const socket = net.connect({ host: server.host, port: server.port });
  t.after(() => socket.destroy());
  socket.on('error', () => {}); // a reset is allowed: the server is going away
  const chunks: Buffer[] = [];
  let received = 0;
  const gotSome = new Promise<void>((resolve) =>
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= 256 * 1024) resolve();
    }),
  );
  const closed = new Promise((resolve) => socket.once('close', resolve));
  // Keep writing (bounded by the payload) until the server goes away.
  void (async () => {
    for (let at = 0; at < payload.length && !socket.destroyed; at += 64 * 1024) {
      if (!socket.write(payload.subarray(at, at + 64 * 1024))) {
        await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
      }
    }
  })();
  await gotSome;
  server.child.kill('SIGINT');
  const { code, signal } = await exitWithin(server, 5000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
  await closed;
  const echo = Buffer.concat(chunks);
  assert.ok(echo.length >= 256 * 1024 && echo.length < payload.length, `echoed ${echo.length} bytes`);
  assertSameBytes(echo, payload.subarray(0, echo.length), 'echo so far');
  assert.match(server.stderr(), /SIGINT/);
});

test('echo-server: SIGTERM with a client that stopped reading exits 0 after the grace period', { timeout: 20_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0', '--verbose']);
  const socket = net.connect({ host: server.host, port: server.port });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  socket.pause(); // never read: the server's send queue fills, and it stops reading us
  await new Promise((resolve) => socket.once('connect', resolve));
  // 16 MiB is more than the loopback kernel buffers can hold (tcp_wmem max 4 MiB), so the
  // server's send queue fills and it pauses, which --verbose reports.
  socket.write(Buffer.alloc(16 * MiB, 0x5a));
  await pollUntil('the server to pause the connection', 5000, () => /#1 paused/.test(server.stdout()));
  // A first pause can come while the kernel buffers are still filling (send(2) said EAGAIN
  // before the client's receive window was used up): the queue would then drain into them after
  // SIGTERM and the server would rightly exit at once. Each time the queue drains below its cap
  // the server reads and pauses again, and prints it; wait until that stops (both kernel buffers
  // full, the queue at its cap) before signalling.
  const pauses = () => server.stdout().match(/#1 paused/g)?.length ?? 0;
  let seen = pauses();
  for (let quiet = 0, tries = 0; quiet < 2 && tries < 20; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    quiet = pauses() === seen ? quiet + 1 : 0;
    seen = pauses();
  }
  const started = performance.now();
  server.child.kill('SIGTERM');
  const { code, signal } = await exitWithin(server, 5000);
  const ms = performance.now() - started;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
  assert.ok(ms >= 1500, `exited after ${ms.toFixed(0)} ms: the stuck connection should have held it ~2 s; stderr: ${server.stderr()}`);
  assert.match(server.stderr(), /destroying/);
});

test('echo-server: --host ::1 prints [::1]:PORT and echoes over IPv6', { timeout: 20_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--host', '::1', '--port', '0']);
  assert.equal(server.host, '::1');
  const payload = randomBytes(seededRandom(42), 200_000);
  const client = echoClient('::1', server.port, payload, seededRandom(43), Promise.resolve());
  assertSameBytes(await client.echoed, payload, 'IPv6 echo');
  server.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null });
});

test('echo-server: bad arguments print usage to stderr and exit 2', { timeout: 30_000 }, async () => {
  const cases = [['--port', 'abc'], ['--port', '70000'], ['--host', 'not-an-ip'], ['--bogus'], ['extra'], ['--backend', 'poll'], ['--backend', 'kqueue'], ['--ring-send']];
  await Promise.all(
    cases.map(async (args) => {
      const child = spawn(process.execPath, ['--import', 'tsx', SERVER, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      // 'close', not 'exit': 'exit' can come before the last stdio data has been read.
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(timer);
      assert.equal(code, 2, `${args.join(' ')}: exit code; stderr: ${stderr}`);
      assert.match(stderr, /usage: echo-server/, `${args.join(' ')}: stderr ${JSON.stringify(stderr)}`);
      assert.equal(stdout, '', `${args.join(' ')}: nothing on stdout`);
    }),
  );
});
