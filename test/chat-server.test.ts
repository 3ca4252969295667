/**
 * Acceptance test of examples/chat-server.ts, through its command-line contract only: spawn it,
 * read `listening on HOST:PORT`, chat with node:net clients, and stop it with signals.
 */
import assert from 'node:assert/strict';
import { exitWithin, runExample, startServer } from './helpers/server-process.ts';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { trackFds } from './helpers/fd.ts';

const SERVER = 'examples/chat-server.ts';
const MAX_LINE = 8 * 1024;

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

// ---- The server process -------------------------------------------------------------------------




/** The server's sockets (fd > 2: 0-2 are the stdio the test handed over). */
function serverSockets(pid: number): string[] {
  const sockets: string[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${name}`);
      if (Number(name) > 2 && target.startsWith('socket:')) sockets.push(`${name} -> ${target}`);
    } catch {
      // closed meanwhile
    }
  }
  return sockets.sort();
}

async function pollUntil(what: string, ms: number, done: () => boolean): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- Chat clients -------------------------------------------------------------------------------

/** A node:net client that splits what it receives into lines. */
class ChatClient {
  readonly socket: net.Socket;
  readonly lines: string[] = [];
  #buffered = '';
  ended = false;
  closed: Promise<void>;
  error: Error | null = null;

  /** Characters (= bytes: latin1) received. */
  received = 0;

  constructor(t: TestContext, host: string, port: number, readonly name: string) {
    this.socket = net.connect({ host, port });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.received += chunk.length;
      this.#buffered += chunk;
      const parts = this.#buffered.split('\n');
      this.#buffered = parts.pop()!;
      this.lines.push(...parts);
    });
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', (err) => (this.error = err));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    // Wait for 'close': the fd is released then, before the file's leak check runs.
    t.after(async () => {
      this.socket.destroy();
      await this.closed;
    });
  }

  /** Waits for a line matching `pattern` (at or after index `from`); returns its index. */
  async waitFor(pattern: RegExp | string, ms = 5000, from = 0): Promise<number> {
    const matches = (line: string): boolean => (typeof pattern === 'string' ? line === pattern : pattern.test(line));
    let found = -1;
    await pollUntil(`${this.name} to receive ${pattern} (last lines ${JSON.stringify(this.lines.slice(-3).map((l) => l.slice(0, 40)))}, ended: ${this.ended})`, ms, () => {
      found = this.lines.findIndex((line, i) => i >= from && matches(line));
      return found >= 0;
    });
    return found;
  }

  /** Connects and returns the id the server gave us (from its welcome line). */
  async join(): Promise<number> {
    const at = await this.waitFor(/^\* you are client \d+;/);
    return Number(/client (\d+)/.exec(this.lines[at])![1]);
  }

  write(text: string): void {
    this.socket.write(text);
  }
}

const settle = (ms = 150): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- Tests --------------------------------------------------------------------------------------

test('chat-server: broadcast to the others with a prefix, join/leave notices, partial lines, an over-long line closes only its sender, SIGTERM exits 0', { timeout: 30_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0']);
  assert.equal(server.host, '127.0.0.1');
  const baseline = serverSockets(server.child.pid!);

  // Join one at a time, so the ids and the notices are deterministic.
  const a = new ChatClient(t, server.host, server.port, 'A');
  const idA = await a.join();
  const b = new ChatClient(t, server.host, server.port, 'B');
  const idB = await b.join();
  const c = new ChatClient(t, server.host, server.port, 'C');
  const idC = await c.join();
  assert.deepEqual([idA, idB, idC], [1, 2, 3]);
  await a.waitFor(`* client ${idC} joined`);
  await b.waitFor(`* client ${idC} joined`);
  assert.match(c.lines[0], /^\* you are client 3; 2 others here$/);

  // One line from A reaches B and C, prefixed; several lines in one write keep their order.
  a.write('hello from A\n');
  await b.waitFor(`client ${idA}: hello from A`);
  await c.waitFor(`client ${idA}: hello from A`);
  c.write('one\ntwo\r\nthree\n');
  await a.waitFor(`client ${idC}: three`);
  await b.waitFor(`client ${idC}: three`);

  // A line split across writes (and across TCP segments: the writes are apart in time) is
  // assembled; the `\r` of `\r\n` is dropped; an empty line is not broadcast.
  b.write('par');
  await settle();
  b.write('tial li');
  await settle();
  b.write('ne\r');
  await settle();
  b.write('\n\nsecond\n');
  await a.waitFor(`client ${idB}: second`);
  await c.waitFor(`client ${idB}: second`);

  // An over-long line: its sender is told and closed; the others hear that it left.
  const longLine = 'x'.repeat(MAX_LINE + 100);
  c.write(longLine.slice(0, 5000));
  await settle();
  c.write(longLine.slice(5000) + '\n');
  await c.waitFor(/^\* line too long/);
  await c.closed;
  assert.equal(c.ended, true, `C got an orderly end (${c.error?.message ?? 'no error'})`);
  await a.waitFor(`* client ${idC} left`);
  await b.waitFor(`* client ${idC} left`);

  // The others still chat.
  a.write('still here\n');
  await b.waitFor(`client ${idA}: still here`);
  // B leaves: A hears it.
  b.socket.end();
  await a.waitFor(`* client ${idB} left`);
  await b.closed;

  // Exactly what each one saw (nothing of its own, nothing twice, nothing lost, in order).
  assert.deepEqual(a.lines, [
    `* you are client ${idA}; 0 others here`,
    `* client ${idB} joined`,
    `* client ${idC} joined`,
    `client ${idC}: one`,
    `client ${idC}: two`,
    `client ${idC}: three`,
    `client ${idB}: partial line`,
    `client ${idB}: second`,
    `* client ${idC} left`,
    `* client ${idB} left`,
  ]);
  assert.deepEqual(b.lines, [
    `* you are client ${idB}; 1 others here`,
    `* client ${idC} joined`,
    `client ${idA}: hello from A`,
    `client ${idC}: one`,
    `client ${idC}: two`,
    `client ${idC}: three`,
    `* client ${idC} left`,
    `client ${idA}: still here`,
  ]);
  assert.deepEqual(c.lines, [
    `* you are client ${idC}; 2 others here`,
    `client ${idA}: hello from A`,
    `client ${idB}: partial line`,
    `client ${idB}: second`,
    `* line too long (more than ${MAX_LINE} bytes): closing`,
  ]);

  // B's and C's server sockets are closed: only A's remains beyond the baseline (compared as
  // `fd -> socket:[inode]` entries: the server's runtime may close sockets of its own meanwhile).
  const opened = () => serverSockets(server.child.pid!).filter((s) => !baseline.includes(s));
  await pollUntil('the server to close the sockets of B and C', 3000, () => opened().length === 1);

  // SIGTERM: A is told, its connection closes, the server exits 0.
  server.child.kill('SIGTERM');
  await a.waitFor('* server shutting down');
  await a.closed;
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null }, server.stderr());
  assert.match(server.stderr(), /SIGTERM/);
});

test('chat-server: a client that stops reading is dropped with a notice; a reading client misses no line', { timeout: 30_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0']);
  const slow = new ChatClient(t, server.host, server.port, 'slow');
  const idSlow = await slow.join();
  slow.socket.pause(); // reads nothing from now on: kernel buffers fill, then the server's send queue
  const reader = new ChatClient(t, server.host, server.port, 'reader');
  await reader.join();
  const talker = new ChatClient(t, server.host, server.port, 'talker');
  const idTalker = await talker.join();

  // Send 8000-byte lines (at most 64 MiB) until the slow client is dropped. The talker never
  // gets more than 256 KiB ahead of the reader: the reader lives in this same process, and a
  // talker flooding faster than it can read would make IT a slow client too (rightly dropped).
  const LINE_BODY = 'y'.repeat(7990);
  const LINE_BYTES = `client ${idTalker}: 00000000 ${LINE_BODY}\n`.length;
  let sent = 0;
  const MAX_LINES = 8192;
  const deadline = performance.now() + 10_000;
  while (sent < MAX_LINES && !talker.lines.includes(`* client ${idSlow} left`) && performance.now() < deadline) {
    const line = `${String(sent).padStart(8, '0')} ${LINE_BODY}\n`;
    sent++;
    if (!talker.socket.write(line)) await new Promise((resolve) => talker.socket.once('drain', resolve));
    while (sent * LINE_BYTES - reader.received > 256 * 1024 && performance.now() < deadline) await settle(5);
  }
  await talker.waitFor(`* client ${idSlow} left`, 10_000);
  await reader.waitFor(`* client ${idSlow} left`, 10_000);
  t.diagnostic(`slow client dropped after ${sent} lines of 8 KB`);

  // The reader got every line the talker sent, in order, plus the notice.
  await reader.waitFor(new RegExp(`^client ${idTalker}: ${String(sent - 1).padStart(8, '0')} `), 10_000);
  const fromTalker = reader.lines.filter((line) => line.startsWith(`client ${idTalker}: `));
  assert.equal(fromTalker.length, sent);
  fromTalker.forEach((line, i) => {
    if (line !== `client ${idTalker}: ${String(i).padStart(8, '0')} ${LINE_BODY}`) assert.fail(`reader's line ${i}: ${line.slice(0, 40)}...`);
  });

  // The slow client's connection is gone: reading now, it finds the end (or a reset).
  slow.socket.resume();
  await slow.closed;
  assert.ok(slow.lines.length >= 2 && slow.lines.length < sent + 3, `slow client got ${slow.lines.length} lines`);

  server.child.kill('SIGINT');
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null }, server.stderr());
});

test('chat-server: --host ::1 prints [::1]:PORT; bad arguments exit 2 with usage', { timeout: 20_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--host', '::1', '--port', '0']);
  assert.equal(server.host, '::1');
  const client = new ChatClient(t, '::1', server.port, 'v6');
  assert.equal(await client.join(), 1);
  server.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null }, server.stderr());
  await client.closed;

  const cases = [['--port', 'abc'], ['--port', '70000'], ['--host', 'not-an-ip'], ['--bogus'], ['extra']];
  await Promise.all(
    cases.map(async (args) => {
      const { code, stdout, stderr } = await runExample(t, SERVER, args);
      assert.equal(code, 2, `${args.join(' ')}: exit code; stderr: ${stderr}`);
      assert.match(stderr, /usage: chat-server/);
      assert.equal(stdout, '');
    }),
  );
});
