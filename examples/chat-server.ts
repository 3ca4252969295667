/**
 * A line-based broadcast chat on m-socket: every line a client sends goes to every OTHER
 * connected client as `client N: LINE`, and everyone hears `* client N joined` / `* client N left`.
 * A teaching example of per-connection line framing over the shared receive buffer, fan-out with
 * the send queue, and a slow-consumer policy that keeps memory bounded.
 *
 *   node --import tsx examples/chat-server.ts [--host 127.0.0.1] [--port 0] [--verbose]
 *   nc 127.0.0.1 PORT      # in two or three terminals, then type
 *
 * Contract (test/chat-server.test.ts relies on it; the same as examples/echo-server.ts):
 * - the first stdout line is `listening on HOST:PORT` (`listening on [::1]:PORT` for IPv6);
 *   nothing else goes to stdout unless --verbose;
 * - bad arguments: a usage message on stderr and exit code 2;
 * - SIGINT / SIGTERM: stop accepting, tell every client, close every connection gracefully (queued
 *   lines are still delivered), exit 0 when nothing is left, or after 2 s at the latest.
 *
 * Protocol: lines end with `\n` (a `\r` before it is dropped, for telnet); empty lines are ignored.
 * A line longer than MAX_LINE bytes gets its sender a `* line too long` notice and a close.
 */
import { formatAddress, Interest, Reactor, type MultiplexerEvent, type Socket } from '../lib/index.ts';
import { serverCommandLine } from './cli.ts';


/** Longest line a client may send, without its `\n`. Bounds what we buffer per connection. */
const MAX_LINE = 8 * 1024;
/** How long a graceful shutdown may take before the remaining connections are destroyed. */
const SHUTDOWN_GRACE_MS = 2000;
/**
 * After telling a client its line was too long we keep reading (and discarding) until it closes,
 * so that closing with unread bytes does not turn our FIN into a reset that could destroy the
 * notice before the client reads it. A client that keeps sending is cut off after this much.
 */
const MAX_DISCARD = 1024 * 1024;
const NEWLINE = 0x0a;
const CR = 0x0d;


// ---- Command line -------------------------------------------------------------------------------

const { backend, ringSend, log, listenHere, announce } = serverCommandLine('chat-server');

// ---- The room -----------------------------------------------------------------------------------

/**
 * The chat room: who is in it, and the fan-out. Owns one scratch buffer in which each outgoing
 * line is assembled once and then handed to every recipient (`send` copies what the kernel does
 * not take at once, so the scratch buffer can be reused as soon as it returns).
 */
class Room {
  readonly members = new Set<Client>();
  /** Prefix (`client 99999: `) + a whole line + `\n`. */
  readonly #scratch = Buffer.allocUnsafe(64 + MAX_LINE + 1);

  /** Sends `from`'s line (`head` + `tail` are its two pieces, either may be empty) to everyone else. */
  say(from: Client, head: Uint8Array, tail: Uint8Array): void {
    const out = this.#scratch;
    out.set(from.prefix, 0);
    let length = from.prefix.byteLength;
    out.set(head, length);
    length += head.byteLength;
    out.set(tail, length);
    length += tail.byteLength;
    out[length++] = NEWLINE;
    this.broadcast(out.subarray(0, length), from);
  }

  /** Sends a `* ...` notice to everyone but `except`. */
  notice(text: string, except: Client | null): void {
    this.broadcast(Buffer.from(`* ${text}\n`), except);
  }

  /**
   * Sends `message` to every member but `except`.
   *
   * Slow-consumer policy: a member whose send queue is already at its cap (64 KiB by default)
   * has not been reading; queueing more for it would let one stalled client make the server
   * buffer without bound, and waiting for it would stall everyone else. So, like most chat
   * servers, we disconnect it (with a notice to the others) and carry on. Any other answer
   * ('sent', 'partial', 'queued') means the socket took the whole line: a member we keep never
   * misses a line silently.
   */
  broadcast(message: Uint8Array, except: Client | null): void {
    let slow: Client[] | null = null;
    for (const member of this.members) {
      if (member === except) continue;
      const status = member.socket.send(message);
      if (status === 'not-sent') (slow ??= []).push(member);
      else if (status === 'closed') (slow ??= []).push(member); // its connection is gone: it left
    }
    // Dropped after the loop: each drop broadcasts a notice of its own (which may drop others).
    if (slow !== null) for (const member of slow) member.drop(member.socket.error === null ? 'too slow: send queue full' : member.socket.error.message);
  }
}

// ---- One client ---------------------------------------------------------------------------------

class Client {
  /** `client N: `, built once. */
  readonly prefix: Buffer;
  readonly peer: string;
  /**
   * The start of a line whose `\n` has not arrived yet: a COPY, because the receive buffer is
   * shared by every socket of the reactor and is overwritten by the next receive. Null when the
   * last read ended on a line boundary (the common case: no allocation).
   */
  #partial: Buffer | null = null;
  /** Set once the client is on its way out: it is no longer in the room and we only discard its input. */
  #leaving = false;
  #discarded = 0;

  constructor(readonly socket: Socket, readonly id: number, readonly room: Room) {
    this.prefix = Buffer.from(`client ${id}: `);
    const remote = socket.remoteAddress;
    this.peer = remote === null ? '?' : formatAddress(remote);
    reactor.add(socket, (event) => this.#onEvent(event), Interest.READABLE);
  }

  #onEvent(event: MultiplexerEvent): void {
    if (event.error !== null) return this.drop(event.error.message);
    // `writable` alone: the send queue drained; nothing waits on it here. A socket that is
    // 'closing' (draining before a graceful close) can no longer be read.
    if (!event.readable || this.socket.state !== 'open') return;
    // One receive per event: level-triggered, so what we leave is reported again. The bytes are
    // a view of the reactor's shared buffer (no copy), valid until the next receive.
    const { bytes, status } = this.socket.receive();
    if (this.#leaving) {
      // Told to go (line too long), FIN on its way: discard until the client closes too.
      this.#discarded += bytes.byteLength;
      if (status === 'closed') this.socket.close();
      else if (this.#discarded > MAX_DISCARD) this.socket.destroy();
      return;
    }
    if (bytes.byteLength > 0) this.#takeLines(bytes);
    if (status === 'closed') {
      // EOF (or a reset: `error` says which). A last line without `\n` is not a line: dropped.
      if (this.#leaving) this.socket.close(); // went too long in this very read: nothing more will come
      else this.drop(this.socket.error?.message ?? 'disconnected');
    }
  }

  /** Splits `bytes` on `\n`, joining the first piece to the buffered partial line. */
  #takeLines(bytes: Uint8Array): void {
    let start = 0;
    for (let nl = bytes.indexOf(NEWLINE); nl >= 0; nl = bytes.indexOf(NEWLINE, start)) {
      const partial = this.#partial;
      this.#partial = null;
      if (!this.#line(partial ?? EMPTY, bytes.subarray(start, nl))) return;
      start = nl + 1;
    }
    if (start === bytes.byteLength) return;
    const rest = bytes.subarray(start);
    const buffered = this.#partial === null ? 0 : this.#partial.byteLength;
    // +1: room for the `\r` of a `\r\n` that has not arrived yet.
    if (buffered + rest.byteLength > MAX_LINE + 1) return this.#tooLong();
    this.#partial = this.#partial === null ? Buffer.from(rest) : Buffer.concat([this.#partial, rest]);
  }

  /** One complete line, in two pieces; answers false if the client had to go. */
  #line(head: Uint8Array, tail: Uint8Array): boolean {
    // Drop the `\r` of a `\r\n` ending (it is the last byte of tail, or of head when tail is empty).
    if (tail.byteLength > 0 && tail[tail.byteLength - 1] === CR) tail = tail.subarray(0, -1);
    else if (tail.byteLength === 0 && head.byteLength > 0 && head[head.byteLength - 1] === CR) head = head.subarray(0, -1);
    const length = head.byteLength + tail.byteLength;
    if (length > MAX_LINE) {
      this.#tooLong();
      return false;
    }
    if (length > 0) this.room.say(this, head, tail);
    // The line never goes to its sender, but dropping a slow recipient broadcasts a notice,
    // and that notice may find OUR queue full and drop us: then stop reading our lines.
    return !this.#leaving;
  }

  #tooLong(): void {
    this.#partial = null;
    const status = this.socket.send(Buffer.from(`* line too long (more than ${MAX_LINE} bytes): closing\n`));
    this.#leave('sent a line that is too long');
    if (status === 'not-sent' || status === 'closed') {
      this.socket.destroy();
      return;
    }
    // FIN once the notice is out; keep reading (discarding) until the client closes: see MAX_DISCARD.
    this.socket.shutdown('write');
  }

  /** Leaves the room at once (slow, failed, or disconnected) and closes the socket. */
  drop(reason: string): void {
    this.#leave(reason);
    if (this.socket.state === 'closed') return;
    // A slow client's queue is full of lines it is not reading: waiting for it to drain is what
    // the policy avoids, so destroy (dropping the queue). An orderly EOF closes gracefully.
    if (this.socket.sendQueueFull || this.socket.error !== null) this.socket.destroy();
    else this.socket.close();
  }

  /** Server shutdown: tell the client, then close gracefully (queued lines are still delivered). */
  closeGracefully(): void {
    this.#leaving = true;
    this.room.members.delete(this);
    if (this.socket.state === 'closed' || this.socket.state === 'closing') return;
    if (this.socket.error === null && !this.socket.sendQueueFull) {
      try {
        this.socket.send(Buffer.from('* server shutting down\n'));
      } catch {
        // shut down for writing already (a client on its way out): nothing more to say
      }
    }
    this.socket.close();
  }

  #leave(reason: string): void {
    this.#leaving = true;
    if (!this.room.members.delete(this)) return;
    log(`- client ${this.id} (${this.peer}) left: ${reason} (${this.room.members.size} in the room)`);
    this.room.notice(`client ${this.id} left`, this);
  }
}

const EMPTY = new Uint8Array(0);

// ---- Listen ---------------------------------------------------------------------------------------

const listener = listenHere();

const reactor = new Reactor({ backend, ringSend });
const room = new Room();
/** Every open connection, in the room or on its way out (for shutdown). */
const clients = new Set<Client>();
let joined = 0;

reactor.add(listener, onAcceptable);
announce(listener, stop); // signal handlers first, then the `listening on` line

function onAcceptable(): void {
  for (let socket = listener.accept(); socket !== null; socket = listener.accept()) {
    const client = new Client(socket, ++joined, room);
    clients.add(client);
    void socket.whenClosed().then(() => clients.delete(client));
    // The notice goes to the others; the newcomer is told its own name.
    room.notice(`client ${client.id} joined`, null);
    room.members.add(client);
    socket.send(Buffer.from(`* you are client ${client.id}; ${room.members.size - 1} others here\n`));
    log(`+ client ${client.id} from ${client.peer} (${room.members.size} in the room)`);
  }
}

// ---- Shutdown -------------------------------------------------------------------------------------

let stopping = false;

function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`chat-server: ${signal}: closing ${clients.size} open connections (${joined} joined in all)\n`);
  listener.close();
  for (const client of [...clients]) client.closeGracefully();
  // Once the reactor watches nothing the process exits by itself (code 0); a client that never
  // reads would hold us, hence the deadline (unref'd: it never delays the exit).
  setTimeout(() => {
    process.stderr.write(`chat-server: ${reactor.multiplexer.size} connections still draining after ${SHUTDOWN_GRACE_MS} ms: destroying them\n`);
    reactor.close();
    process.exit(0);
  }, SHUTDOWN_GRACE_MS).unref();
}

process.on('exit', (code) => {
  if (stopping) process.stderr.write(`chat-server: stopped, exit code ${code}\n`);
});
