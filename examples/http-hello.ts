/**
 * A minimal HTTP/1.1 keep-alive responder on m-socket: every request gets `200 OK` and
 * `Hello, world!\n`. A teaching example of protocol framing over the shared receive buffer
 * (pipelined requests in one read, a head split across reads), responses from preallocated
 * Buffers batched into one send, backpressure from the send queue, and one idle timer per server.
 *
 *   node --import tsx examples/http-hello.ts [--host 127.0.0.1] [--port 0] [--idle-timeout MS] [--verbose]
 *   curl -v http://127.0.0.1:PORT/
 *
 * Contract (test/http-hello.test.ts relies on it; the same as examples/echo-server.ts):
 * - the first stdout line is `listening on HOST:PORT` (`listening on [::1]:PORT` for IPv6);
 *   nothing else goes to stdout unless --verbose (one line per connection opened and closed);
 * - bad arguments: a usage message on stderr and exit code 2;
 * - SIGINT / SIGTERM: stop accepting, close every connection gracefully (responses already
 *   queued are still delivered), exit 0 when nothing is left, or after 2 s at the latest.
 *
 * HTTP it speaks: request heads up to MAX_HEAD bytes (more: 431); HTTP/1.1 connections stay open
 * unless the request says `Connection: close`; HTTP/1.0 ones close after the response unless it
 * says `Connection: keep-alive`. A request body with `Content-Length` is read and discarded
 * (`Expect: 100-continue` is answered); `Transfer-Encoding` (chunked) bodies get 501, a malformed
 * head 400, HTTP/2+ 505, each followed by a close. No `Date` header: this server keeps no clock.
 */
import { formatAddress, Interest, Reactor, type MultiplexerEvent, type Socket } from '../lib/index.ts';
import { serverCommandLine } from './cli.ts';


/** Largest request head (request line + headers + blank line) we buffer. */
const MAX_HEAD = 16 * 1024;
/** How long a graceful shutdown may take before the remaining connections are destroyed. */
const SHUTDOWN_GRACE_MS = 2000;
/**
 * After a last response we send FIN but keep reading (and discarding) until the client closes:
 * closing a socket with unread bytes makes the kernel send a reset, which can destroy the
 * response before the client has read it ("lingering close", as nginx and Apache do). A client
 * that keeps sending is cut off after this much.
 */
const MAX_LINGER_DISCARD = 1024 * 1024;
/** Size of the per-server buffer responses are batched in before one send. */
const OUT_BUFFER = 64 * 1024;
const LF = 0x0a;
const CR = 0x0d;

// ---- Responses, built once ------------------------------------------------------------------------
// Never written to after this: constant bytes, not state.

const BODY = 'Hello, world!\n';

function okResponse(head: boolean, connection: 'keep-alive' | 'close' | null): Buffer {
  return Buffer.from(
    'HTTP/1.1 200 OK\r\n' +
      'Content-Type: text/plain\r\n' +
      `Content-Length: ${Buffer.byteLength(BODY)}\r\n` +
      (connection === null ? '' : `Connection: ${connection}\r\n`) +
      '\r\n' +
      (head ? '' : BODY),
    'latin1',
  );
}

function errorResponse(status: string): Buffer {
  const body = `${status.slice(4)}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
}

/** Indexed by [isHead][connection]: 0 = HTTP/1.1 default (no header), 1 = keep-alive (for HTTP/1.0), 2 = close. */
const OK = [
  [okResponse(false, null), okResponse(false, 'keep-alive'), okResponse(false, 'close')],
  [okResponse(true, null), okResponse(true, 'keep-alive'), okResponse(true, 'close')],
] as const;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const BAD_REQUEST = errorResponse('400 Bad Request');
const HEAD_TOO_LARGE = errorResponse('431 Request Header Fields Too Large');
const NOT_IMPLEMENTED = errorResponse('501 Not Implemented');
const VERSION_NOT_SUPPORTED = errorResponse('505 HTTP Version Not Supported');
/** Longest single response, so a batch never splits one. */
const MAX_RESPONSE = CONTINUE.byteLength + Math.max(...OK.flat().map((b) => b.byteLength), HEAD_TOO_LARGE.byteLength);

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\s]+) HTTP\/(\d)\.(\d)$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;


// ---- Command line -------------------------------------------------------------------------------

const { values: args, integer, backend, ringSend, log, listenHere, announce } = serverCommandLine('http-hello', {
  options: { 'idle-timeout': { type: 'string', default: '5000' } },
  help: [['--idle-timeout MS', 'close connections idle this long (default 5000; 0: never)']],
});
const idleTimeoutMs = integer('idle-timeout', args['idle-timeout'], 0, 3_600_000);

// ---- Parsing ----------------------------------------------------------------------------------------

/** What one request head asks of us. */
interface Request {
  /** A ready response for an error (the connection closes after it), or null. */
  error: Buffer | null;
  head: boolean;
  keepAlive: boolean;
  http10: boolean;
  bodyLength: number;
  expectContinue: boolean;
}

/**
 * Where the head starting at `start` ends (the index just past its blank line), or -1 when the
 * blank line is not within MAX_HEAD bytes of `start` (yet). Bare `\n` line ends are accepted too.
 */
function headEnd(input: Uint8Array, start: number): number {
  const limit = Math.min(input.byteLength, start + MAX_HEAD);
  for (let lf = input.indexOf(LF, start); lf >= 0 && lf < limit; lf = input.indexOf(LF, lf + 1)) {
    if (lf + 1 < limit && input[lf + 1] === LF) return lf + 2;
    if (lf + 2 < limit && input[lf + 1] === CR && input[lf + 2] === LF) return lf + 3;
  }
  return -1;
}

/** Parses one complete head (`input[start..end)`). */
function parseHead(input: Uint8Array, start: number, end: number): Request {
  const request: Request = { error: null, head: false, keepAlive: true, http10: false, bodyLength: 0, expectContinue: false };
  // latin1: one char per byte, never a decoding error; header values are ASCII in practice.
  const lines = Buffer.from(input.buffer, input.byteOffset + start, end - start).toString('latin1').split('\n');
  const requestLine = REQUEST_LINE.exec(lines[0].endsWith('\r') ? lines[0].slice(0, -1) : lines[0]);
  if (requestLine === null) return { ...request, error: BAD_REQUEST };
  if (requestLine[3] !== '1') return { ...request, error: VERSION_NOT_SUPPORTED };
  request.head = requestLine[1] === 'HEAD';
  request.http10 = requestLine[4] === '0';
  let close = false;
  let keepAlive = false;
  let contentLength: string | null = null;
  // The last two entries are the blank line and what follows the final `\n` (empty).
  for (let i = 1; i < lines.length - 2; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    const colon = line.indexOf(':');
    // No colon, or whitespace before it, or an obsolete folded line: refused (RFC 9112 §5).
    if (colon <= 0 || !HEADER_NAME.test(line.slice(0, colon))) return { ...request, error: BAD_REQUEST };
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'connection') {
      for (const token of value.toLowerCase().split(',')) {
        const option = token.trim();
        if (option === 'close') close = true;
        else if (option === 'keep-alive') keepAlive = true;
      }
    } else if (name === 'content-length') {
      // Digits only, and several must agree: anything else is how request smuggling starts.
      if (!/^\d{1,15}$/.test(value) || (contentLength !== null && contentLength !== value)) return { ...request, error: BAD_REQUEST };
      contentLength = value;
    } else if (name === 'transfer-encoding') {
      // A chunked (or otherwise encoded) body: we do not decode those, so we cannot find where
      // the next request starts. Say so and close.
      return { ...request, error: NOT_IMPLEMENTED };
    } else if (name === 'expect') {
      request.expectContinue = value.toLowerCase() === '100-continue';
    }
  }
  request.keepAlive = request.http10 ? keepAlive && !close : !close;
  request.bodyLength = contentLength === null ? 0 : Number(contentLength);
  return request;
}

// ---- The server -------------------------------------------------------------------------------------

/**
 * State shared by the connections: the batch buffer responses are copied into before one send
 * (safe to share: a connection fills it and sends it within one handler call, and `send` copies
 * what the kernel does not take), and the idle clock.
 */
class Server {
  readonly connections = new Set<Connection>();
  readonly out = Buffer.allocUnsafe(OUT_BUFFER);
  outLength = 0;
  /** Advanced by the idle sweep; connections remember the tick of their last activity (no clock read per event). */
  tick = 0;
  served = 0;
  requests = 0;
  #sweeper: NodeJS.Timeout | null = null;

  constructor(readonly reactor: Reactor, readonly idleTimeoutMs: number) {
    if (idleTimeoutMs > 0) {
      // One timer for all connections, ticking four times per timeout: a connection idle for
      // `idleTimeoutMs` is closed within 1.25 times that. Unref'd: it never holds the process.
      const every = Math.max(10, Math.min(1000, Math.ceil(idleTimeoutMs / 4)));
      const idleTicks = Math.ceil(idleTimeoutMs / every);
      this.#sweeper = setInterval(() => this.#sweep(idleTicks), every).unref();
    }
  }

  stopSweeping(): void {
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  #sweep(idleTicks: number): void {
    const tick = ++this.tick;
    for (const connection of this.connections) {
      if (tick - connection.lastTick > idleTicks) connection.closeIdle();
    }
  }
}

class Connection {
  readonly peer: string;
  lastTick: number;
  #requests = 0;
  /** Bytes of a request body still to be read and dropped. */
  #bodyLeft = 0;
  /**
   * Input not yet handled: the start of a head split across reads, or requests left unprocessed
   * while the send queue is full. Always a private copy (the receive buffer is shared).
   */
  #stash: Uint8Array | null = null;
  /** Not reading: the send queue is full; resumed by the `writable` event that says it drained. */
  #paused = false;
  /** The client has half-closed while we were paused: close once the held-back requests are answered. */
  #peerEnded = false;
  /** The last response has been sent (FIN follows it); we only read and discard until EOF. */
  #lingering = false;
  #discarded = 0;

  constructor(readonly socket: Socket, readonly id: number, readonly server: Server) {
    const remote = socket.remoteAddress;
    this.peer = remote === null ? '?' : formatAddress(remote);
    this.lastTick = server.tick;
    server.reactor.add(socket, (event) => this.#onEvent(event), Interest.READABLE);
    void socket.whenClosed().then(() => {
      server.connections.delete(this);
      log(`- #${id} closed after ${this.#requests} requests${socket.error === null ? '' : ` (${socket.error.message})`} (${server.connections.size} open)`);
    });
  }

  #onEvent(event: MultiplexerEvent): void {
    if (event.error !== null) return this.socket.destroy();
    if (this.socket.state !== 'open') return; // closing: the multiplexer finishes it
    this.lastTick = this.server.tick;
    if (this.#paused) {
      if (!event.writable) return;
      // The queue has drained: handle what we held back, then read again (unless it paused us anew).
      this.#paused = false;
      this.server.reactor.modify(this.socket, Interest.READABLE);
      log(`  #${this.id} resumed`);
      const stash = this.#stash!;
      this.#stash = null;
      this.#handle(stash, true);
      if (this.#peerEnded && !this.#paused && this.socket.state === 'open') this.socket.close();
      return;
    }
    if (!event.readable) return;
    // One receive per event (level-triggered: the rest is reported again), into the reactor's
    // shared buffer: no copy, and the view is only valid until the next receive.
    const { bytes, status } = this.socket.receive();
    if (this.#lingering) {
      this.#discarded += bytes.byteLength;
      if (status === 'closed') this.socket.close();
      else if (this.#discarded > MAX_LINGER_DISCARD) this.socket.destroy();
      return;
    }
    if (bytes.byteLength > 0) {
      if (this.#stash === null) this.#handle(bytes, false);
      else {
        const joined = Buffer.concat([this.#stash, bytes]);
        this.#stash = null;
        this.#handle(joined, true);
      }
    }
    if (status === 'closed' && this.socket.state === 'open') {
      // EOF: the client sent everything it will send. Requests held back by a pause still get
      // their answers first; then close, which is graceful: what we queued still goes out.
      // (An incomplete head is dropped. A reset, `error` set, makes close() destroy at once.)
      if (this.#paused && this.socket.error === null) this.#peerEnded = true;
      else this.socket.close();
    }
  }

  /** Handles every whole request in `input`; `owned`: input is a private copy we may keep. */
  #handle(input: Uint8Array, owned: boolean): void {
    const server = this.server;
    const length = input.byteLength;
    let at = 0;
    let last = false;
    while (at < length && !last) {
      if (this.#bodyLeft > 0) {
        const skip = Math.min(this.#bodyLeft, length - at);
        this.#bodyLeft -= skip;
        at += skip;
        continue;
      }
      // Empty lines before a request line are ignored (RFC 9112 §2.2), e.g. a CRLF after a body.
      if (input[at] === CR || input[at] === LF) {
        at++;
        continue;
      }
      // The batch buffer is nearly full: send it.
      if (server.outLength > OUT_BUFFER - MAX_RESPONSE && !this.#flush()) return;
      // The queue only grows in #flush, and every flush is followed by this check before the
      // next response is written: so when it is full here, the batch is empty (nothing to lose).
      if (this.socket.sendQueueFull) {
        // Backpressure: a client pipelining faster than it reads. Keep the rest and stop reading
        // (interest NONE); the multiplexer reports `writable` once the queue has drained.
        this.#stash = owned ? input.subarray(at) : input.slice(at);
        this.#paused = true;
        server.reactor.modify(this.socket, Interest.NONE);
        log(`  #${this.id} paused: send queue full (${this.socket.queuedBytes} bytes)`);
        return;
      }
      const end = headEnd(input, at);
      if (end < 0) {
        if (length - at >= MAX_HEAD) {
          this.#write(HEAD_TOO_LARGE);
          last = true;
          break;
        }
        // An incomplete head: keep it (a copy) and wait for more.
        this.#stash = owned ? input.subarray(at) : input.slice(at);
        break;
      }
      const request = parseHead(input, at, end);
      at = end;
      this.#requests++;
      server.requests++;
      if (request.error !== null) {
        this.#write(request.error);
        last = true;
        break;
      }
      if (request.bodyLength > 0 && request.expectContinue && !request.http10) this.#write(CONTINUE);
      this.#bodyLeft = request.bodyLength;
      this.#write(OK[request.head ? 1 : 0][request.keepAlive ? (request.http10 ? 1 : 0) : 2]);
      last = !request.keepAlive;
    }
    if (!this.#flush()) return;
    if (last) this.#linger();
  }

  /** Copies a response into the server's batch buffer (the caller made room). */
  #write(response: Buffer): void {
    const server = this.server;
    response.copy(server.out, server.outLength);
    server.outLength += response.byteLength;
  }

  /** Sends the batch; answers false if the connection is gone. */
  #flush(): boolean {
    const server = this.server;
    const length = server.outLength;
    if (length === 0) return true;
    server.outLength = 0;
    const status = this.socket.send(server.out.subarray(0, length));
    // We only send while the queue is below its cap (checked before each request), and the cap is
    // soft (a send is taken whole below it), so 'not-sent' cannot happen; were it to, the
    // responses would be lost, so give up on the connection rather than answer out of order.
    if (status === 'closed' || status === 'not-sent') {
      this.socket.destroy();
      return false;
    }
    return true;
  }

  /** After the last response: FIN once the queue drains, then discard input until the client closes. */
  #linger(): void {
    this.#lingering = true;
    this.#stash = null;
    this.#bodyLeft = 0;
    this.socket.shutdown('write');
  }

  /** The idle sweep found no activity for the timeout. */
  closeIdle(): void {
    if (this.socket.state !== 'open') return;
    log(`  #${this.id} idle`);
    // Nothing queued: close (FIN). Still queued after a whole timeout: the client stopped reading.
    if (this.socket.queuedBytes === 0 && !this.#lingering) this.socket.close();
    else this.socket.destroy();
  }

  /** Server shutdown: close gracefully (queued responses are still delivered). */
  closeGracefully(): void {
    this.socket.close();
  }
}

// ---- Listen ---------------------------------------------------------------------------------------

// This server pauses itself when a pipelining client's responses fill the send queue: it must
// stop mid-batch and keep the unparsed rest (see #paused), which the library's own pause between
// reads (pauseReadingWhenFull) cannot do for it. So that one is off here.
const listener = listenHere({ noDelay: true, socket: { pauseReadingWhenFull: false } });

const server = new Server(new Reactor({ backend, ringSend }), idleTimeoutMs);
server.reactor.add(listener, onAcceptable);
announce(listener, stop); // signal handlers first, then the `listening on` line

function onAcceptable(): void {
  for (let socket = listener.accept(); socket !== null; socket = listener.accept()) {
    const connection = new Connection(socket, ++server.served, server);
    server.connections.add(connection);
    log(`+ #${connection.id} from ${connection.peer} (${server.connections.size} open)`);
  }
}

// ---- Shutdown -------------------------------------------------------------------------------------

let stopping = false;

function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`http-hello: ${signal}: closing ${server.connections.size} open connections (${server.served} served, ${server.requests} requests)\n`);
  listener.close();
  server.stopSweeping();
  for (const connection of [...server.connections]) connection.closeGracefully();
  // Once the reactor watches nothing the process exits by itself (code 0); a client that never
  // reads would hold us, hence the deadline (unref'd: it never delays the exit).
  setTimeout(() => {
    process.stderr.write(`http-hello: ${server.reactor.multiplexer.size} connections still draining after ${SHUTDOWN_GRACE_MS} ms: destroying them\n`);
    server.reactor.close();
    process.exit(0);
  }, SHUTDOWN_GRACE_MS).unref();
}

process.on('exit', (code) => {
  if (stopping) process.stderr.write(`http-hello: stopped (${server.requests} requests), exit code ${code}\n`);
});
