/**
 * An echo client on m-socket: sends its standard input to a server, half-closes, and writes
 * everything the server sends back to its standard output. A teaching example of name
 * resolution that never blocks, non-blocking connect with fallback over several addresses, and
 * backpressure in both directions.
 *
 *   node --import tsx examples/echo-client.ts --host HOST --port PORT
 *   node --import tsx examples/echo-client.ts --path /path/to/unix.sock   (or --abstract NAME)
 *
 * Contract (test/echo-client.test.ts relies on it):
 * - stdin goes to the server; when stdin ends, the client half-closes (shutdown 'write', after
 *   every queued byte has gone) and keeps reading;
 * - every byte received goes to stdout; when the server closes, the client exits 0;
 * - a failure (lookup, refusal, reset) prints ONE line on stderr naming the code and the address
 *   (`echo-client: connect ECONNREFUSED 127.0.0.1:9: ...`) and exits 1;
 * - bad arguments: a usage message on stderr and exit code 2.
 */
import { formatAddress, Interest, Reactor, resolve, Socket, SocketError, type MultiplexerEvent } from '../lib/index.ts';
import { commandLine } from './cli.ts';

const USAGE =
  'usage: echo-client --host HOST --port PORT | --path PATH\n' +
  '  --host HOST  name or IP address of the server (default 127.0.0.1)\n' +
  '  --port PORT  TCP port, 1..65535\n' +
  '  --path PATH  Unix socket path instead of host and port\n' +
  '  --abstract NAME  Linux abstract Unix socket name instead (given without its leading NUL)\n';


/** The one line a failure prints: the code and the address are in the library's messages. */
function fail(message: string): never {
  process.stderr.write(`echo-client: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}

// ---- Command line -------------------------------------------------------------------------------

const { values: args, usageError, integer } = commandLine('echo-client', USAGE, {
  host: { type: 'string' },
  port: { type: 'string' },
  path: { type: 'string' },
  abstract: { type: 'string' },
});
const unixPath = args.abstract !== undefined ? `\0${args.abstract}` : args.path;
if (args.path !== undefined && args.abstract !== undefined) usageError('give --path or --abstract, not both');
if (unixPath !== undefined && (args.host !== undefined || args.port !== undefined)) usageError('give --host/--port or a Unix socket, not both');
if (unixPath === undefined && args.port === undefined) usageError('--port (or --path) is required');
const host = args.host ?? '127.0.0.1';
const port = unixPath === undefined ? integer('port', args.port!, 1, 65535) : 0;

// ---- Connect --------------------------------------------------------------------------------------

// One reactor drives the socket from Node's event loop; it holds the process only while it
// watches something.
const reactor = new Reactor();

type Target = { label: string; options: Parameters<typeof Socket.connect>[0] };

/** Where to connect: the Unix socket, or every address the name resolves to, in the resolver's order. */
async function targets(): Promise<Target[]> {
  if (unixPath !== undefined) return [{ label: formatAddress({ family: 'unix', path: unixPath }), options: { path: unixPath } }];
  // resolve() answers IP literals at once and looks names up on libuv's threadpool.
  const addresses = await resolve(host, { port });
  return addresses.map((addr) => ({
    label: formatAddress(addr),
    options: { host: addr.scopeId ? `${addr.address}%${addr.scopeId}` : addr.address, port: addr.port },
  }));
}

/** One non-blocking connect: the open socket, or the error that ended the attempt. */
function connect(target: Target): Promise<Socket | Error> {
  let socket: Socket;
  try {
    socket = Socket.connect(target.options);
  } catch (err) {
    // Failures known at once (a missing Unix path, a refused Unix connect) are thrown.
    if (err instanceof SocketError) return Promise.resolve(err);
    throw err;
  }
  if (socket.state === 'open') return Promise.resolve(socket);
  // Interest 0: a connecting socket is reported writable (or failed) when the attempt ends.
  return new Promise((settle) => {
    reactor.add(socket, (event) => {
      const error = event.error ?? socket.error;
      if (error !== null) {
        socket.destroy();
        settle(error);
      } else if (socket.state === 'open') {
        reactor.remove(socket);
        settle(socket);
      }
    }, 0);
  });
}

async function connectToAny(): Promise<Socket> {
  let list: Target[];
  try {
    list = await targets();
  } catch (err) {
    fail((err as Error).message); // getaddrinfo ENOTFOUND name
  }
  // Try each address in turn, as node:net does without autoSelectFamily: an address family this
  // host cannot reach fails at once (ENETUNREACH), a closed port too (ECONNREFUSED).
  const failures: string[] = [];
  for (const target of list) {
    const result = await connect(target);
    if (result instanceof Socket) return result;
    failures.push(result.message);
  }
  fail(failures.join('; '));
}

// ---- Pump ------------------------------------------------------------------------------------------

function pump(socket: Socket): void {
  const stdin = process.stdin;
  const stdout = process.stdout;
  /** A chunk the socket refused ('not-sent': its queue is full). stdin is paused while it waits. */
  let pending: Uint8Array | null = null;
  let stdinEnded = false;

  const onEvent = (event: MultiplexerEvent): void => {
    if (event.error !== null) fail(event.error.message);
    if (event.writable && pending !== null) {
      // The send queue has drained: the refused chunk goes first, then stdin may flow again.
      const status = socket.send(pending);
      if (status === 'closed') fail(socket.error?.message ?? 'connection lost');
      if (status === 'not-sent') return; // not drained after all: wait for the next writable
      pending = null;
      if (stdinEnded) socket.shutdown('write');
      else stdin.resume();
    }
    if (event.readable || event.hangup) receive();
  };

  const receive = (): void => {
    // One receive per event: level-triggered epoll reports whatever is left. The bytes are a view
    // of the reactor's shared buffer, valid until the next receive: stdout.write gets a copy.
    const { bytes, status } = socket.receive();
    if (bytes.byteLength > 0 && !stdout.write(Buffer.from(bytes))) {
      // stdout cannot keep up: stop reading the socket until it drains. Leaving the reactor
      // (rather than interest 0) matters once the peer has closed: epoll reports a hangup
      // whatever the interest, and would wake the loop again and again while we wait.
      reactor.remove(socket);
      stdout.once('drain', () => {
        if (socket.state !== 'closed') reactor.add(socket, onEvent, Interest.READABLE);
      });
    }
    if (status === 'closed') {
      if (socket.error !== null) fail(socket.error.message);
      // The server closed: we are done. Whatever stdout still holds is written before the exit
      // (nothing else keeps the event loop alive now).
      socket.destroy();
      stdin.destroy();
      process.exitCode = 0;
    }
  };

  stdin.on('data', (chunk: Buffer) => {
    if (socket.state === 'closed') return;
    const status = socket.send(chunk);
    if (status === 'not-sent') {
      // Backpressure: keep the chunk (the socket did not take it) and stop reading stdin.
      pending = chunk;
      stdin.pause();
    } else if (status === 'closed') {
      fail(socket.error?.message ?? 'connection lost');
    }
  });
  stdin.on('end', () => {
    stdinEnded = true;
    // Half-close once everything is handed over: shutdown('write') waits for the queue itself.
    if (pending === null && socket.state !== 'closed') socket.shutdown('write');
  });
  stdin.on('error', (err) => fail(`stdin: ${err.message}`));
  stdout.on('error', (err) => fail(`stdout: ${err.message}`));

  reactor.add(socket, onEvent, Interest.READABLE);
}

pump(await connectToAny());
