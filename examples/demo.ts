/**
 * A tour of m-socket, run by `npm start`: an echo server and its clients in one process, on one
 * Reactor, on 127.0.0.1. Each step prints what happened; the program exits by itself (the reactor
 * stops holding the event loop once it watches nothing).
 *
 *   node --import tsx examples/demo.ts
 *
 * Steps:
 *   1. server     start an echo server on port 0 (the kernel picks the port)
 *   2. greeting   connect, send a short message while still connecting, read the echo
 *   3. bulk       send 1 MiB of patterned bytes in one send()
 *   4. flood      send 8 MiB in 64 KiB writes: watch the kernel push back ('partial', 'queued',
 *                 'not-sent') and the client wait for 'writable'
 *   5. crowd      several clients at once, of different sizes
 *   6. refused    connect to a port that was just closed: the event's error is ECONNREFUSED
 *   7. names      resolve 'localhost' without blocking, connect by name with TCP_NODELAY set
 *                 before the connect, read the option back
 *   8. fds        pass an open file over a Unix socket pair (SCM_RIGHTS); ask who the peer is
 *   9. timeout    a connect that cannot finish fails with ETIMEDOUT after timeoutMs
 *  10. shutdown   close the server; the reactor is empty and the process exits
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connect, formatAddress, Interest, Listener, OwnedFd, Reactor, resolve, Socket,
  type MultiplexerEvent, type SendStatus, type SocketError, type TcpListener,
} from '../lib/index.ts';

// Never hang: if something goes wrong, say so and fail. unref(): the timer itself does not keep
// the process alive, so a demo that finishes exits at once.
setTimeout(() => {
  console.error('demo: still running after 10 s: something is stuck');
  process.exit(1);
}, 10_000).unref();

const reactor = new Reactor();
const HOST = '127.0.0.1';
const KiB = 1024;
const MiB = 1024 * KiB;

/** The printed report: one line per fact. */
function report(step: string, text: string): void {
  console.log(`${step.padEnd(10)} ${text}`);
}

// ---- The echo server (the same logic as examples/echo-server.ts, compact) ------------------------

/** Starts an echo server on the reactor; returns its listener. */
function startEchoServer(): TcpListener {
  const listener = Listener.listen({ host: HOST, port: 0 });
  reactor.add(listener, () => {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) echo(socket);
  });
  return listener;
}

/** Echoes one connection: send back what arrives; pause on backpressure; end when the peer ends. */
function echo(socket: Socket): void {
  let pending: Uint8Array | null = null; // bytes send() refused ('not-sent'): ours to resend
  reactor.add(socket, (event) => {
    if (event.error !== null) return socket.destroy();
    if (pending !== null) {
      if (!event.writable) return; // paused until the send queue drains
      socket.send(pending); // the queue is empty now, so it is taken
      pending = null;
      reactor.modify(socket, Interest.READABLE);
      return;
    }
    const { bytes, status } = socket.receive(); // a view of the reactor's shared buffer
    if (bytes.byteLength > 0 && socket.send(bytes) === 'not-sent') {
      pending = bytes.slice(); // copy: the shared buffer is reused by the next receive
      reactor.modify(socket, 0); // stop reading until the queue drains
      return;
    }
    if (status === 'closed') {
      // EOF: the peer is done sending. FIN after our queue drains, then close (graceful too).
      if (socket.error === null) socket.shutdown('write');
      socket.close();
    }
  });
}

// ---- A client ---------------------------------------------------------------------------------------

interface EchoResult {
  /** Every status send() answered, in order. */
  statuses: SendStatus[];
  /** The socket's state when the first send() was made. */
  stateAtFirstSend: string;
  /** How many times the client waited for a 'writable' event after 'not-sent'. */
  waits: number;
  /** Whether the echo equals the payload. */
  verified: boolean;
  received: number;
  ms: number;
}

/**
 * Connects, sends `payload` in writes of `writeSize` bytes, half-closes, and reads the echo until
 * the server ends. With `waitForOpen`, the first send waits for the connect to finish.
 */
function echoClient(port: number, payload: Uint8Array, writeSize: number, waitForOpen = false): Promise<EchoResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = Socket.connect({ host: HOST, port }); // returns at once, usually 'connecting'
    const echoed = new Uint8Array(payload.byteLength);
    const result: EchoResult = { statuses: [], stateAtFirstSend: '', waits: 0, verified: false, received: 0, ms: 0 };
    let offset = 0;
    let done = false;

    const fail = (err: Error): void => {
      done = true;
      socket.destroy();
      reject(err);
    };

    /** Sends until everything is taken or the socket says 'not-sent'; then half-closes. */
    const pump = (): void => {
      while (offset < payload.byteLength) {
        if (result.statuses.length === 0) result.stateAtFirstSend = socket.state;
        const status = socket.send(payload.subarray(offset, offset + writeSize));
        result.statuses.push(status);
        if (status === 'closed') return fail(socket.error ?? new Error('connection closed'));
        if (status === 'not-sent') {
          result.waits++; // nothing was taken: send the same bytes again on 'writable'
          return;
        }
        offset += Math.min(writeSize, payload.byteLength - offset); // 'sent' | 'partial' | 'queued'
      }
      if (socket.state === 'open' || socket.state === 'connecting') socket.shutdown('write'); // FIN after the queue
    };

    reactor.add(socket, (event: MultiplexerEvent) => {
      if (done) return;
      if (event.error !== null) return fail(event.error);
      // 'writable' means: the connect finished, or our send queue drained.
      if (event.writable && offset < payload.byteLength) pump();
      if (!event.readable) return;
      const { bytes, status } = socket.receive();
      if (result.received + bytes.byteLength > echoed.byteLength) return fail(new Error('more bytes echoed than sent'));
      echoed.set(bytes, result.received); // copy out of the shared receive buffer
      result.received += bytes.byteLength;
      if (status === 'closed') {
        done = true;
        socket.close();
        result.ms = performance.now() - started;
        result.verified = result.received === payload.byteLength && Buffer.from(echoed).equals(Buffer.from(payload));
        resolve(result);
      }
    });
    if (!waitForOpen) pump(); // sends made while connecting are queued, and flushed once connected
  });
}

/** 'sent x2, partial x1, queued x3, not-sent x4' */
function tally(statuses: SendStatus[]): string {
  const counts = new Map<SendStatus, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([s, n]) => `'${s}' x${n}`).join(', ');
}

/** Bytes that show reordering, loss or duplication: a position-dependent pattern. */
function patterned(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >>> 8) * 7 + seed) & 0xff;
  return bytes;
}

// ---- The steps ----------------------------------------------------------------------------------------

let failures = 0;
function check(ok: boolean, what: string): void {
  if (!ok) {
    failures++;
    console.log(`           FAILED: ${what}`);
  }
}

function stepServer(): TcpListener {
  const listener = startEchoServer();
  report('1 server', `echo server listening on ${formatAddress(listener.address)}`);
  return listener;
}

async function stepGreeting(port: number): Promise<void> {
  const text = 'hello, m-socket!';
  const r = await echoClient(port, new TextEncoder().encode(text), 1024);
  report('2 greeting', `sent ${JSON.stringify(text)} while ${r.stateAtFirstSend}: send() -> '${r.statuses[0]}'`);
  report('', `echo ${r.verified ? 'verified' : 'WRONG'}: ${r.received} bytes back in ${r.ms.toFixed(1)} ms`);
  check(r.verified, 'greeting echo');
}

async function stepBulk(port: number): Promise<void> {
  const payload = patterned(MiB, 1);
  const r = await echoClient(port, payload, MiB, true);
  report('3 bulk', `1 MiB of patterned bytes in one send() on an open socket -> ${tally(r.statuses)}`);
  report('', `echo ${r.verified ? 'verified' : 'WRONG'}: ${r.received} bytes in ${r.ms.toFixed(1)} ms`);
  check(r.verified, 'bulk echo');
}

async function stepFlood(port: number): Promise<void> {
  // Loopback kernel buffers hold megabytes, so it takes more than 1 MiB to see the kernel push back.
  const payload = patterned(8 * MiB, 2);
  const r = await echoClient(port, payload, 64 * KiB, true);
  report('4 flood', `8 MiB in 64 KiB writes, as fast as send() takes them: ${r.statuses.length} calls:`);
  report('', `${tally(r.statuses)}`);
  report('', `waited for 'writable' ${r.waits} times ('not-sent' = nothing taken; resend when drained)`);
  report('', `echo ${r.verified ? 'verified' : 'WRONG'}: ${r.received} bytes in ${r.ms.toFixed(1)} ms (${(r.received / MiB / (r.ms / 1000)).toFixed(0)} MiB/s)`);
  check(r.verified, 'flood echo');
}

async function stepCrowd(port: number): Promise<void> {
  const sizes = [1, 1000, 64 * KiB, 300 * KiB, 1 * MiB];
  const results = await Promise.all(sizes.map((size, i) => echoClient(port, patterned(size, i + 2), 16 * KiB)));
  const ok = results.filter((r) => r.verified).length;
  report('5 crowd', `${sizes.length} clients at once (${sizes.map((s) => `${s} B`).join(', ')})`);
  report('', `${ok}/${sizes.length} echoes verified; statuses: ${tally(results.flatMap((r) => r.statuses))}`);
  check(ok === sizes.length, 'crowd echoes');
}

async function stepRefused(): Promise<void> {
  // Take a free port, then free it again: nobody listens there now.
  const closed = Listener.listen({ host: HOST, port: 0 });
  const port = closed.port;
  closed.close();
  let code: string;
  try {
    const socket = Socket.connect({ host: HOST, port }); // 'connecting': the answer comes as an event
    code = await new Promise<string>((resolve) => {
      reactor.add(socket, (event) => {
        const err = event.error;
        socket.destroy();
        resolve(err === null ? `no error (state ${socket.state})` : `${err.code}: ${err.message}`);
      });
    });
  } catch (err) {
    // A refusal known at once is thrown by connect() instead.
    code = `${(err as SocketError).code} (thrown by connect): ${(err as Error).message}`;
  }
  report('6 refused', `connect to ${HOST}:${port} (just closed) -> ${code}`);
  check(code.startsWith('ECONNREFUSED'), 'connection refused');
}

async function stepNames(port: number): Promise<void> {
  const addresses = await resolve('localhost'); // getaddrinfo on libuv's threadpool
  report('7 names', `resolve('localhost') -> ${addresses.map((a) => a.address).join(', ')} (the event loop never waited)`);
  // The listener is on 127.0.0.1: ask for IPv4 addresses of the name.
  const socket = await connect({ host: 'localhost', family: 4, port, reactor, socketOptions: { noDelay: true } });
  report('', `connect({ host: 'localhost' }) -> open to ${formatAddress(socket.remoteAddress!)}, noDelay = ${socket.getOption('noDelay')} (set before connecting)`);
  check(socket.getOption('noDelay'), 'TCP_NODELAY set before the connect');
  socket.destroy();
}

function stepFds(): void {
  const dir = mkdtempSync(join(tmpdir(), 'm-socket-demo-'));
  const [a, b] = Socket.pair();
  try {
    const path = join(dir, 'note.txt');
    writeFileSync(path, 'a file opened by one side, read by the other');
    const fd = openSync(path, 'r');
    const status = a.sendWithFds(Buffer.from('F'), [fd]);
    closeSync(fd); // the peer has its own copy now
    const { fds } = b.receiveWithFds(new Uint8Array(16));
    const received = fds[0] as OwnedFd;
    const text = Buffer.alloc(64);
    const n = readSync(received.fd, text);
    received.close();
    const peer = b.peerCredentials();
    report('8 fds', `sendWithFds(...) -> '${status}'; the receiver read: "${text.subarray(0, n)}"`);
    report('', `peerCredentials() -> pid ${peer.pid}, uid ${peer.uid}, gid ${peer.gid} (this process: ${process.pid})`);
    check(received instanceof OwnedFd && n > 0 && peer.pid === process.pid, 'fd passed and peer known');
  } finally {
    a.destroy();
    b.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function stepTimeout(): Promise<void> {
  // A listener with a backlog of 0 and one connection never accepted: the kernel drops further
  // SYNs, so a new connect stays in progress (loopback only, no firewall needed).
  const full = Listener.listen({ host: HOST, port: 0, backlog: 0 });
  const waiting = [Socket.connect({ host: HOST, port: full.port }), Socket.connect({ host: HOST, port: full.port })];
  for (const s of waiting) reactor.add(s, () => {}, Interest.NONE);
  await new Promise((r) => setTimeout(r, 50));
  const started = performance.now();
  const socket = Socket.connect({ host: HOST, port: full.port, timeoutMs: 200 });
  const code = await new Promise<string>((resolveCode) => {
    reactor.add(socket, (event) => resolveCode(event.error?.code ?? `no error (state ${socket.state})`), Interest.NONE);
  });
  report('9 timeout', `connect with timeoutMs: 200 to a full backlog -> ${code} after ${Math.round(performance.now() - started)} ms`);
  check(code === 'ETIMEDOUT', 'connect timed out');
  socket.destroy();
  for (const s of waiting) s.destroy();
  full.close();
}

function stepShutdown(listener: Listener): void {
  listener.close(); // also leaves the reactor
  report('10 shutdown', `server closed; the reactor watches ${reactor.multiplexer.size} objects, so the process can exit`);
}

// ---- Main ----------------------------------------------------------------------------------------------

console.log('m-socket demo: an echo server and its clients on one Reactor\n');
const listener = stepServer();
const port = listener.port;
await stepGreeting(port);
await stepBulk(port);
await stepFlood(port);
await stepCrowd(port);
await stepRefused();
await stepNames(port);
stepFds();
await stepTimeout();
stepShutdown(listener);
console.log(failures === 0 ? '\nall checks passed' : `\n${failures} checks FAILED`);
process.exitCode = failures === 0 ? 0 : 1;
// Nothing else to do: the reactor is empty, so Node's event loop ends and the process exits.
