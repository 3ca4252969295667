/**
 * Acceptance test of examples/http-hello.ts, through its command-line contract only: spawn it,
 * read `listening on HOST:PORT`, talk HTTP to it with real clients (Node's built-in fetch and
 * node:http) and with raw node:net sockets for what those clients never send (pipelining, split
 * heads, HTTP/1.0, oversized heads), and stop it with signals.
 */
import assert from 'node:assert/strict';
import { exitWithin, runExample, startServer, type ServerProcess } from './helpers/server-process.ts';
import http from 'node:http';
import net from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { trackFds } from './helpers/fd.ts';

const SERVER = 'examples/http-hello.ts';
const HELLO = 'Hello, world!\n';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

// ---- The server process -------------------------------------------------------------------------




/** How many connections the server has accepted so far (its --verbose `+ #N` lines). */
async function pollUntil(what: string, ms: number, done: () => boolean): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- A raw client and a strict response parser --------------------------------------------------

interface Response {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Parses complete responses from `data`, in order; `methods[i]` says whether response i answers
 * a HEAD (no body). Stops at the first incomplete one. 1xx responses are returned too.
 */
function parseResponses(data: Buffer, methods: string[]): Response[] {
  const responses: Response[] = [];
  let at = 0;
  let request = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) return responses;
    const [statusLine, ...headerLines] = data.toString('latin1', at, end).split('\r\n');
    const status = /^HTTP\/1\.1 (\d{3}) [^\r\n]+$/.exec(statusLine);
    assert.ok(status, `status line ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      assert.ok(colon > 0, `header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).toLowerCase();
      assert.ok(!headers.has(name), `header ${name} twice`);
      headers.set(name, line.slice(colon + 1).trim());
    }
    const code = Number(status[1]);
    const informational = code >= 100 && code < 200;
    const length = informational || methods[request] === 'HEAD' ? 0 : Number(headers.get('content-length') ?? 'NaN');
    assert.ok(Number.isInteger(length), `Content-Length of response ${responses.length}`);
    if (data.length < end + 4 + length) return responses;
    responses.push({ status: code, headers, body: data.toString('latin1', end + 4, end + 4 + length) });
    at = end + 4 + length;
    if (!informational) request++;
  }
}

/** A node:net connection that collects every byte the server sends. */
class RawClient {
  readonly socket: net.Socket;
  data = Buffer.alloc(0);
  ended = false;
  error: Error | null = null;
  readonly closed: Promise<void>;

  constructor(t: TestContext, server: ServerProcess) {
    this.socket = net.connect({ host: server.host, port: server.port });
    this.socket.on('data', (chunk: Buffer) => (this.data = Buffer.concat([this.data, chunk])));
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', (err) => (this.error = err));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    t.after(async () => {
      this.socket.destroy();
      await this.closed;
    });
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Waits until `count` complete responses (to requests with these methods) have arrived. */
  async responses(count: number, methods: string[], ms = 5000): Promise<Response[]> {
    let parsed: Response[] = [];
    await pollUntil(`${count} responses (got ${JSON.stringify(this.data.toString('latin1').slice(0, 300))})`, ms, () => {
      parsed = parseResponses(this.data, methods);
      return parsed.length >= count;
    });
    return parsed;
  }

  /** Waits for the server to end the connection (an orderly FIN, not a reset). */
  async serverEnds(ms = 5000): Promise<void> {
    await pollUntil('the server to end the connection', ms, () => this.ended || this.error !== null);
    assert.equal(this.error, null, `an orderly end, not ${this.error?.message}`);
  }
}

function assertHello(response: Response, connection: string | undefined, what: string): void {
  assert.equal(response.status, 200, what);
  assert.equal(response.headers.get('content-type'), 'text/plain', what);
  assert.equal(response.headers.get('content-length'), String(HELLO.length), what);
  assert.equal(response.headers.get('connection'), connection, what);
  assert.equal(response.body, HELLO, what);
}

/** node:http GET through `agent`; resolves with the body and whether the socket was reused. */
function httpGet(url: string, agent: http.Agent): Promise<{ status: number; body: string; reused: boolean; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      const localPort = req.socket?.localPort ?? -1;
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, reused: req.reusedSocket, localPort }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

// ---- Tests --------------------------------------------------------------------------------------

test('http-hello: real clients (fetch, node:http keep-alive) and raw HTTP/1.x edge cases; SIGTERM exits 0', { timeout: 40_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0', '--verbose']);
  assert.equal(server.host, '127.0.0.1');

  await t.test('fetch GET and HEAD', async () => {
    const get = await fetch(`${server.base}/some/path?q=1`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-type'), 'text/plain');
    assert.equal(get.headers.get('content-length'), '14');
    assert.equal(await get.text(), HELLO);
    const head = await fetch(server.base, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '14');
    assert.equal(await head.text(), '');
  });

  await t.test('keep-alive: 10 node:http requests through a 1-socket agent use one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const results = [];
      for (let i = 0; i < 10; i++) results.push(await httpGet(`${server.base}/${i}`, agent));
      for (const result of results) assert.deepEqual({ status: result.status, body: result.body }, { status: 200, body: HELLO });
      assert.deepEqual(results.map((r) => r.reused), [false, ...Array<boolean>(9).fill(true)]);
      // The server's own view: it accepted the agent's one connection once, and served all ten on
      // it. (Counted by the client's port: fetch's pool from the subtest before may open
      // connections of its own meanwhile, as Node 24's does.)
      const ports = new Set(results.map((r) => r.localPort));
      assert.equal(ports.size, 1, 'one connection for the ten requests');
      await sleep(50);
      const fromAgent = server.stdout().split('\n').filter((line) => line.startsWith('+ #') && line.includes(`:${[...ports][0]} `));
      assert.equal(fromAgent.length, 1, server.stdout());
    } finally {
      agent.destroy();
    }
  });

  await t.test('request bodies (1 MiB raw, a small fetch POST) are read and discarded; the connection stays usable', async () => {
    const body = Buffer.alloc(1024 * 1024, 0x61);
    const client = new RawClient(t, server);
    client.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.write(body);
    client.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
    const [post, get] = await client.responses(2, ['POST', 'GET']);
    assertHello(post, undefined, 'POST');
    assertHello(get, undefined, 'GET after the body');
    const fetched = await fetch(`${server.base}/form`, { method: 'POST', body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(await fetched.text(), HELLO);
  });

  await t.test('pipelined requests in one write get their responses in order', async () => {
    const client = new RawClient(t, server);
    client.write(
      'GET /1 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /4 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    const responses = await client.responses(4, ['GET', 'HEAD', 'POST', 'GET']);
    assert.equal(responses.length, 4);
    assertHello(responses[0], undefined, 'GET /1');
    assert.equal(responses[1].status, 200);
    assert.equal(responses[1].headers.get('content-length'), '14');
    assert.equal(responses[1].body, '', 'HEAD: no body');
    assertHello(responses[2], undefined, 'POST /3');
    assertHello(responses[3], undefined, 'GET /4');
    // Nothing more than those four, and the connection is still open.
    await sleep(100);
    assert.equal(parseResponses(client.data, ['GET', 'HEAD', 'POST', 'GET', 'GET']).length, 4);
    assert.equal(client.ended, false);
  });

  await t.test('a head split across writes (even inside its final CRLFCRLF) is assembled', async () => {
    const client = new RawClient(t, server);
    client.write('GET /split HTTP/1.1\r\nHo');
    await sleep(100);
    client.write('st: x\r\nUser-Agent: test\r\n\r');
    await sleep(100);
    assert.equal(client.data.length, 0, 'no response before the head is complete');
    client.write('\nPOST /body HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234');
    await sleep(100);
    client.write('56789');
    const responses = await client.responses(2, ['GET', 'POST']);
    assertHello(responses[0], undefined, 'split head');
    assertHello(responses[1], undefined, 'split body');
  });

  await t.test('HTTP/1.0 closes after the response unless it asks for keep-alive', async () => {
    const plain = new RawClient(t, server);
    plain.write('GET / HTTP/1.0\r\n\r\n');
    const [response] = await plain.responses(1, ['GET']);
    assertHello(response, 'close', 'HTTP/1.0');
    await plain.serverEnds();

    const kept = new RawClient(t, server);
    kept.write('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    await kept.responses(1, ['GET']);
    kept.write('GET /b HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n');
    const both = await kept.responses(2, ['GET', 'GET']);
    assertHello(both[0], 'keep-alive', 'HTTP/1.0 keep-alive #1');
    assertHello(both[1], 'keep-alive', 'HTTP/1.0 keep-alive #2');
    await sleep(100);
    assert.equal(kept.ended, false, 'still open');
  });

  await t.test('Connection: close gets its response, then an orderly close; requests after it are ignored', async () => {
    const client = new RawClient(t, server);
    client.write('GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.serverEnds();
    const responses = parseResponses(client.data, ['GET', 'GET']);
    assert.equal(responses.length, 1, client.data.toString('latin1'));
    assertHello(responses[0], 'close', 'Connection: close');
    // fetch with Connection: close too.
    const fetched = await fetch(server.base, { headers: { connection: 'close' } });
    assert.equal(await fetched.text(), HELLO);
  });

  await t.test('an oversized head gets 431, a chunked body 501, a malformed request 400; each then closes', async () => {
    const big = new RawClient(t, server);
    big.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    const [tooLarge] = await big.responses(1, ['GET']);
    assert.equal(tooLarge.status, 431);
    assert.equal(tooLarge.headers.get('connection'), 'close');
    await big.serverEnds();

    // The cap holds for a head that never ends, too (no blank line, sent in pieces).
    const endless = new RawClient(t, server);
    endless.write('GET / HTTP/1.1\r\n');
    for (let i = 0; i < 20; i++) endless.write(`X-${i}: ${'b'.repeat(1000)}\r\n`);
    const [endlessResponse] = await endless.responses(1, ['GET']);
    assert.equal(endlessResponse.status, 431);
    await endless.serverEnds();

    const chunked = new RawClient(t, server);
    chunked.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    const [notImplemented] = await chunked.responses(1, ['POST']);
    assert.equal(notImplemented.status, 501);
    await chunked.serverEnds();

    for (const bad of ['NOT A REQUEST\r\n\r\n', 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 'GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n']) {
      const client = new RawClient(t, server);
      client.write(bad);
      const [response] = await client.responses(1, ['GET']);
      assert.equal(response.status, 400, JSON.stringify(bad));
      await client.serverEnds();
    }
  });

  await t.test('a client pipelining 100,000 requests without reading is paused (send queue full), then gets every response, even after it half-closes', async () => {
    const COUNT = 100_000;
    const REQUEST = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    const expected = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n${HELLO}`, 'latin1');
    const socket = net.connect({ host: server.host, port: server.port });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    t.after(async () => {
      socket.destroy();
      await closed;
    });
    socket.pause(); // read nothing until the server says it paused us
    // Check every byte against the repeating response as it arrives (no concatenation).
    let received = 0;
    let firstWrongByte = -1;
    socket.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i++, received++) {
        if (firstWrongByte < 0 && chunk[i] !== expected[received % expected.length]) firstWrongByte = received;
      }
    });
    const pausedBefore = (server.stdout().match(/ paused: send queue full/g) ?? []).length;
    const writing = (async () => {
      const batch = REQUEST.repeat(1000);
      for (let i = 0; i < COUNT / 1000 && !socket.destroyed; i++) {
        if (!socket.write(batch)) await new Promise((resolve) => socket.once('drain', resolve));
      }
    })();
    await pollUntil('the server to pause the connection', 10_000, () => (server.stdout().match(/ paused: send queue full/g) ?? []).length > pausedBefore);
    socket.resume();
    await writing;
    // Half-close: the server must still answer every request it holds, then end the connection.
    let ended = false;
    socket.once('end', () => (ended = true));
    socket.end();
    await pollUntil(`${COUNT} responses and the end (${received / expected.length} so far)`, 10_000, () => ended);
    assert.equal(received, COUNT * expected.length);
    assert.equal(firstWrongByte, -1, 'every response byte as expected');
  });

  await t.test('50 concurrent fetches all get the greeting', async () => {
    const bodies = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const response = await fetch(`${server.base}/concurrent/${i}`);
        assert.equal(response.status, 200);
        return response.text();
      }),
    );
    assert.deepEqual(bodies, Array<string>(50).fill(HELLO));
  });

  // SIGTERM with an idle keep-alive connection open: the server closes it and exits 0.
  const idle = new RawClient(t, server);
  idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await idle.responses(1, ['GET']);
  server.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null }, server.stderr());
  await idle.serverEnds();
  assert.match(server.stderr(), /SIGTERM/);
  assert.doesNotMatch(server.stderr(), /destroying/, 'every connection closed within the grace period');
});

test('http-hello: idle keep-alive connections are closed after --idle-timeout; usage errors exit 2', { timeout: 20_000 }, async (t) => {
  const server = await startServer(t, SERVER, ['--port', '0', '--idle-timeout', '300']);
  const client = new RawClient(t, server);
  client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await client.responses(1, ['GET']);
  const started = performance.now();
  await client.serverEnds(5000);
  const ms = performance.now() - started;
  assert.ok(ms >= 200, `closed after ${ms.toFixed(0)} ms idle, expected about 300-375`);
  // A connection that keeps talking stays open past the timeout.
  const busy = new RawClient(t, server);
  for (let i = 0; i < 8; i++) {
    busy.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await busy.responses(i + 1, Array<string>(i + 1).fill('GET'));
    await sleep(100);
  }
  assert.equal(busy.ended, false, 'an active connection is not idle');
  server.child.kill('SIGINT');
  assert.deepEqual(await exitWithin(server, 5000), { code: 0, signal: null }, server.stderr());

  const cases = [['--port', 'x'], ['--idle-timeout', 'soon'], ['--host', 'nowhere'], ['stray']];
  await Promise.all(
    cases.map(async (args) => {
      const { code, stdout, stderr } = await runExample(t, SERVER, args);
      assert.equal(code, 2, `${args.join(' ')}: exit code; stderr: ${stderr}`);
      assert.match(stderr, /usage: http-hello/);
      assert.equal(stdout, '');
    }),
  );
});
