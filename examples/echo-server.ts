/**
 * An echo server on m-socket: every byte a client sends comes back, in order, on the same
 * connection. A teaching example of the Reactor, the send queue and the multiplexer's backpressure,
 * half-close and graceful shutdown.
 *
 *   node --import tsx examples/echo-server.ts [--host 127.0.0.1] [--port 0] [--verbose]
 *
 * Contract (tools and test/echo-server.test.ts rely on it):
 * - the first stdout line is `listening on HOST:PORT` (`listening on [::1]:PORT` for IPv6);
 *   nothing else goes to stdout unless --verbose;
 * - bad arguments: a usage message on stderr and exit code 2;
 * - SIGINT / SIGTERM: stop accepting, close every connection gracefully (queued bytes are still
 *   delivered), exit 0 when nothing is left, or after 2 s at the latest.
 */
import { formatAddress, Interest, Reactor, SocketError, type MultiplexerEvent, type Socket } from '../lib/index.ts';
import { serverCommandLine } from './cli.ts';


/** How long a graceful shutdown may take before the remaining connections are destroyed. */
const SHUTDOWN_GRACE_MS = 2000;


// ---- Command line -------------------------------------------------------------------------------

const { backend, ringSend, log, listenHere, announce } = serverCommandLine('echo-server');

// ---- Listen ---------------------------------------------------------------------------------------

const listener = listenHere();

// One reactor runs everything on Node's event loop. It keeps the process alive while it watches
// something, and lets it exit once it watches nothing: shutdown below relies on that.
const reactor = new Reactor({ backend, ringSend });
const connections = new Set<Connection>();
let served = 0;

reactor.add(listener, onAcceptable);
announce(listener, stop); // signal handlers first, then the `listening on` line

/** The listener is readable: take every pending connection (accept() answers null when none is left). */
function onAcceptable(): void {
  try {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) {
      const connection = new Connection(socket, ++served);
      connections.add(connection);
      log(`+ #${connection.id} from ${connection.peer} (${connections.size} open)`);
    }
    if (!listener.outOfFds) reported = false; // the burst is over: a later one is reported again
  } catch (err) {
    if (!(err instanceof SocketError && (err.code === 'EMFILE' || err.code === 'ENFILE'))) throw err;
    outOfFds(err);
  }
}

// ---- Out of file descriptors ----------------------------------------------------------------------

// EMFILE/ENFILE: the connection stays in the kernel's backlog. The listener throws the error and
// pauses itself (it is not reported readable, and retries after 10 ms, doubling to 200 ms): no
// busy loop, and the waiting clients are served as fds free up. `listener.outOfFds` stays true
// until the backlog has been emptied: one line per burst.
let reported = false;
function outOfFds(err: SocketError): void {
  if (reported) return;
  reported = true;
  process.stderr.write(`echo-server: ${err.code} (out of file descriptors) with ${connections.size} open connections: ` +
    `accepting again as fds free up\n`);
}

// ---- One connection -----------------------------------------------------------------------------

class Connection {
  #echoed = 0;
  readonly peer: string;

  constructor(readonly socket: Socket, readonly id: number) {
    const remote = socket.remoteAddress;
    this.peer = remote === null ? '?' : formatAddress(remote);
    // One handler per connection; the reactor calls it with each of this socket's events.
    reactor.add(socket, (event) => this.#onEvent(event), Interest.READABLE);
  }

  #onEvent(event: MultiplexerEvent): void {
    // The connection failed (reset by the peer, or a flush of our queue hit a dead connection).
    if (event.error !== null) return this.#destroy(event.error.message);

    // One receive per event is enough: epoll is level-triggered, so whatever we leave unread is
    // reported again. `receive()` reads into the multiplexer's shared 64 KiB buffer (no copy);
    // `bytes` is only valid until the next receive() on any socket of this reactor.
    const { bytes, status } = this.socket.receive();
    if (bytes.byteLength > 0) {
      // Backpressure is the multiplexer's: an accepted socket whose send queue is full is not
      // reported readable until the queue drains below its cap (pauseReadingWhenFull), and the
      // cap is soft, so this send takes every byte ('sent', 'partial' or 'queued'): what the
      // kernel did not take is queued (a copy) and flushed when the socket becomes writable.
      // 'not-sent' cannot happen here, so the shared receive buffer never needs copying by us.
      // Meanwhile the bytes we do not read wait in the kernel, and TCP slows the client down.
      const sent = this.socket.send(bytes);
      if (sent === 'closed') return this.#destroy(this.socket.error?.message ?? 'closed');
      this.#echoed += bytes.byteLength;
      if (this.socket.sendQueueFull) log(`  #${this.id} paused: send queue full (${this.socket.queuedBytes} bytes)`);
    }
    if (status === 'closed') {
      // 'closed' with no error: the peer half-closed (EOF). Everything it sent has been taken
      // above, so end our side too: shutdown('write') sends FIN after the queue has drained,
      // and close() is graceful as well (the socket is 'closing' until the queue is empty).
      if (this.socket.error !== null) return this.#destroy(this.socket.error.message);
      this.socket.shutdown('write');
      this.#end('closed');
      this.socket.close();
    }
  }

  /** Server shutdown: close gracefully (the queue still drains; unread input is dropped). */
  closeGracefully(): void {
    this.#end('closed by server shutdown');
    this.socket.close();
  }

  #destroy(reason: string): void {
    this.#end(`failed: ${reason}`);
    this.socket.destroy(); // at once; it also leaves the reactor
  }

  #end(how: string): void {
    connections.delete(this);
    log(`- #${this.id} ${how} after echoing ${this.#echoed} bytes (${connections.size} open)`);
  }
}

// ---- Shutdown ---------------------------------------------------------------------------------------

let stopping = false;

function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`echo-server: ${signal}: closing ${connections.size} open connections (${served} served)\n`);
  listener.close(); // stop accepting; closing also removes it from the reactor
  for (const connection of [...connections]) connection.closeGracefully();

  // Graceful closes finish inside the reactor as queues drain; once it watches nothing it stops
  // holding the event loop and the process exits with code 0 on its own. A peer that never
  // reads would keep us waiting forever, hence the deadline (unref'd: it never delays the exit).
  setTimeout(() => {
    const left = reactor.multiplexer.size;
    process.stderr.write(`echo-server: ${left} connections still draining after ${SHUTDOWN_GRACE_MS} ms: destroying them\n`);
    reactor.close(); // destroys the sockets that were still closing
    process.exit(0);
  }, SHUTDOWN_GRACE_MS).unref();
}

process.on('exit', (code) => {
  if (stopping) process.stderr.write(`echo-server: stopped (${served} connections served), exit code ${code}\n`);
});
