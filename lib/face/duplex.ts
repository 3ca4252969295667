/**
 * A Node `Duplex` over a Socket, driven by a Reactor: `pipe()`, `stream.pipeline()` and
 * `for await` on m-socket connections, with backpressure carried all the way to the kernel.
 *
 * ## Backpressure
 * - Reading: READABLE interest is armed while the stream wants data (`_read`). When `push()`
 *   answers false the stream stops receiving, so unread bytes stay in the kernel and the peer's
 *   send queue fills, not our memory. (Disarming is lazy: the next readable event that finds
 *   the stream still full disarms it, which saves two epoll_ctl calls per chunk when the consumer
 *   keeps up.)
 * - Writing: a write's callback runs when the socket has taken the bytes and its send queue is
 *   below `socket.sendQueueLimit`; otherwise it waits for the queue to drain (the reactor's
 *   writable event). So at most `sendQueueLimit` plus one write's bytes sit in the send queue, and
 *   Node's Writable buffer (its highWaterMark) makes `write()` return false and emit `'drain'`.
 *
 * ## Ending
 * `end()` shuts the write side down (FIN) once the send queue has drained; the peer's FIN ends
 * the readable side (`'end'`). `destroy()` closes the fd at once, dropping queued bytes, as
 * `net.Socket.destroy()` does: the lossless way out is `end()`, after which the stream closes by
 * itself (autoDestroy) with an empty queue. A reset arrives as an `'error'` event carrying the
 * SocketError (`code` 'ECONNRESET').
 *
 * ## Keeping the process alive
 * Like a `net.Socket`, a stream keeps the process alive while the reactor watches its socket.
 * One case leaves the reactor: both directions are shut and the stream is paused with bytes
 * still unread (epoll would report that hangup on every round); `_read` re-registers it.
 */
import { Duplex } from 'node:stream';
import { checkInteger, invalidType, invalidValue, SocketClosedError, type SocketError } from '../core/errors.ts';
import { Interest, type MultiplexerEvent } from '../loop/multiplexer-types.ts';
import { Reactor } from '../loop/reactor.ts';
import { END_OF_STREAM, Socket } from '../stream/socket.ts';

/** Options of {@link toStream}. */
export interface SocketStreamOptions {
  /** highWaterMark of both sides, in bytes (default 64 KiB, the size of one receive). */
  highWaterMark?: number | undefined;
  /**
   * Keep the write side open after the peer's FIN (default false, as `net.Socket`): when false,
   * the stream ends its own side once the readable side has ended.
   */
  allowHalfOpen?: boolean | undefined;
}

const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
/** Bytes per receive in bulk mode; also the threshold (half of it) that switches modes. */
const BULK_CHUNK = 64 * 1024;
/** Receives per readable event at most: level-triggered epoll reports the rest next round. */
const MAX_READS_PER_EVENT = 16;
/** `_writev` joins buffered chunks into one send when they hold at most this many bytes. */
const COALESCE_LIMIT = 64 * 1024;

/**
 * A Duplex stream over one Socket. The stream owns the socket and its registration in the
 * reactor: do not receive, send, close or re-register the socket yourself while the stream is
 * alive. Make one with {@link toStream}.
 */
export class SocketStream extends Duplex {
  /** The socket under the stream (for its addresses, state and options). */
  readonly socket: Socket;
  readonly #reactor: Reactor;
  /** Whether READABLE is in the socket's interest. */
  #armed = false;
  /** Whether the readable side wants more (`_read` called since `push()` last answered false). */
  #wanted = false;
  /** Taken out of the reactor after a hangup while paused (see #onEvent). */
  #parked = false;
  /**
   * Bulk mode: the last receive filled at least half a chunk, so receive straight into a fresh
   * chunk and push it without a copy. Otherwise receive into the reactor's shared buffer and copy
   * exactly the bytes read. Measured here (Node 20): copying 64 KiB into a new Buffer costs
   * ~6.3 us, allocating a 64 KiB chunk ~0.9 us; copying 100 bytes ~0.17 us. Allocating 64 KiB for
   * every read would be cheaper per call but would pin 64 KiB behind each small chunk waiting in
   * the readable buffer (which counts bytes, not the memory behind them): a burst of small
   * messages could hold hundreds of times its size. So: copy small reads, never copy big ones.
   */
  #bulk = false;
  /** The write in progress: its chunks, the next one to send, its callback. */
  #chunks: Uint8Array[] = [];
  #next = 0;
  #writeCallback: ((err?: Error | null) => void) | null = null;
  /** `_final`'s callback, waiting for the send queue to drain. */
  #finalCallback: ((err?: Error | null) => void) | null = null;
  readonly #handler = (event: MultiplexerEvent): void => this.#onEvent(event);
  /** Takes back the reactor's close hook. */
  readonly #unwatchReactor: () => void;

  /**
   * @internal Use {@link toStream}. The class is exported (for `instanceof`), so JavaScript can
   * call this: it checks its arguments before Duplex or the reactor sees them.
   */
  constructor(socket: Socket, reactor: Reactor, highWaterMark: number, allowHalfOpen: boolean) {
    if (!(socket instanceof Socket)) throw invalidType('socket', 'an instance of Socket', socket);
    if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
    checkInteger('highWaterMark', highWaterMark, 1, 2 ** 31 - 1);
    if (typeof allowHalfOpen !== 'boolean') throw invalidType('allowHalfOpen', 'of type boolean', allowHalfOpen);
    if (socket.state === 'closed' || socket.state === 'closing') throw new SocketClosedError('socket', 'toStream');
    if (reactor.closed) throw new SocketClosedError('reactor', 'toStream');
    // Name the caller's argument, not the multiplexer's "target".
    if (socket._watcher !== null && !reactor.multiplexer.has(socket)) {
      throw invalidValue('socket', 'is watched by another multiplexer; remove it there first');
    }
    // Taking it over would leave the first stream silent for good (found from outside).
    if (socket._owner !== null) throw invalidValue('socket', 'is taken over by another toStream or pipeSockets already; it keeps the socket until it is closed');
    super({ highWaterMark, allowHalfOpen, decodeStrings: true, emitClose: true, autoDestroy: true });
    this.socket = socket;
    socket._owner = this;
    this.#reactor = reactor;
    // Interest 0 until `_read`: the socket's own needs (connect, queued bytes) still get events.
    if (reactor.multiplexer.has(socket)) reactor.modify(socket, 0, this.#handler);
    else reactor.add(socket, this.#handler, 0);
    // Nothing drives the socket once the reactor is closed: the stream ends with an error.
    this.#unwatchReactor = reactor._onClose(() => this.destroy(new SocketClosedError('reactor', 'stream')));
  }

  /** Duplex hook: the reader wants more, so read from the socket again. */
  override _read(): void {
    this.#wanted = true;
    if (!this.#armed) this.#setReading(true);
  }

  /**
   * Duplex hook: sends one chunk; `callback` runs once the socket holds it and its send queue is
   * under its cap (that is what stops a fast writer).
   */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#startWrite([chunk], callback);
  }

  /** Duplex hook: sends buffered chunks together (small ones joined); `callback` as for `_write`. */
  override _writev(entries: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    let total = 0;
    for (const entry of entries) total += entry.chunk.byteLength;
    // Many small buffered writes: one send (one syscall) instead of one each. Big ones go as they
    // are: joining them would only copy.
    const chunks = total <= COALESCE_LIMIT ? [Buffer.concat(entries.map((e) => e.chunk), total)] : entries.map((e) => e.chunk);
    this.#startWrite(chunks, callback);
  }

  /** Duplex hook for `end()`: shuts the write side (FIN once the queue drains), then calls back. */
  override _final(callback: (err?: Error | null) => void): void {
    const socket = this.socket;
    try {
      socket.shutdown('write'); // FIN after the queue drains
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (socket.error !== null) callback(socket.error);
    else if (socket.queuedBytes === 0 && socket.state !== 'connecting') callback();
    else this.#finalCallback = callback; // finished by a writable event (#onWritable)
  }

  /** Duplex hook for `destroy()`: takes the socket out of the reactor and closes it. */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // An interrupted write learns why; Node has already failed the writes still buffered.
    const pending = this.#writeCallback;
    this.#writeCallback = null;
    this.#chunks = [];
    this.#finalCallback = null;
    this.#unwatchReactor();
    // Closing the socket also removes it from the reactor's multiplexer (and its handler).
    this.socket.destroy();
    // Without this call Node would never call back this write nor the ones buffered behind it.
    if (pending !== null) pending(err ?? streamDestroyed());
    callback(err);
  }

  // ---- Reading ---------------------------------------------------------------------------------

  #setReading(on: boolean): void {
    const socket = this.socket;
    if (socket.fd < 0) return;
    try {
      if (this.#parked) {
        if (!on) return;
        this.#parked = false;
        this.#reactor.add(socket, this.#handler, Interest.READABLE);
      } else {
        this.#reactor.modify(socket, on ? Interest.READABLE : 0);
      }
      this.#armed = on;
    } catch (err) {
      this.destroy(err as Error); // the reactor was closed under us
    }
  }

  #onEvent(event: MultiplexerEvent): void {
    if (this.destroyed) return;
    if (event.error !== null) {
      this.destroy(event.error);
      return;
    }
    if (event.readable || (event.hangup && this.#armed)) this.#onReadable();
    else if (event.hangup && !this.#armed && this.socket.queuedBytes === 0) {
      // EPOLLHUP (both directions shut) is reported whatever the interest, and level-triggered:
      // while the consumer is slow it would wake every round. Nothing can be sent any more, so
      // leave the reactor until `_read` wants the remaining bytes (and the EOF) again.
      this.#parked = true;
      this.#armed = false;
      this.#reactor.remove(this.socket);
      return;
    }
    if (event.writable && !this.destroyed) this.#onWritable();
  }

  #onReadable(): void {
    if (!this.#wanted) {
      this.#setReading(false); // paused since the last event: stop taking bytes from the kernel
      return;
    }
    const socket = this.socket;
    for (let i = 0; i < MAX_READS_PER_EVENT && this.#wanted && !this.destroyed; i++) {
      let chunk: Buffer;
      let capacity: number;
      if (this.#bulk) {
        const fresh = Buffer.allocUnsafe(BULK_CHUNK);
        capacity = BULK_CHUNK;
        const n = socket.receiveInto(fresh);
        if (n <= 0) return this.#noBytes(n);
        this.#bulk = n >= BULK_CHUNK / 2;
        chunk = this.#bulk ? fresh.subarray(0, n) : Buffer.from(fresh.subarray(0, n));
      } else {
        // The reactor's shared receive buffer: reused by the next receive, so copy what we keep.
        const { bytes, status } = socket.receive();
        if (status === 'closed') return this.#noBytes(END_OF_STREAM);
        const n = bytes.byteLength;
        if (n === 0) return;
        capacity = bytes.buffer.byteLength;
        this.#bulk = n >= BULK_CHUNK / 2;
        chunk = Buffer.allocUnsafe(n);
        chunk.set(bytes);
      }
      if (!this.push(chunk)) this.#wanted = false;
      // A short read emptied the kernel buffer: skip the receive that would only say EAGAIN.
      if (chunk.byteLength < capacity) return;
    }
  }

  /** A receive found nothing (0) or the end (END_OF_STREAM). */
  #noBytes(n: number): void {
    if (n === 0) return;
    const err: SocketError | null = this.socket.error;
    if (err !== null) {
      this.destroy(err); // reset: an error, not an end
      return;
    }
    this.#armed = false; // the socket drops READABLE by itself once reading has ended
    this.push(null);
  }

  // ---- Writing ---------------------------------------------------------------------------------

  #startWrite(chunks: Uint8Array[], callback: (err?: Error | null) => void): void {
    this.#chunks = chunks;
    this.#next = 0;
    this.#writeCallback = callback;
    this.#continueWrite();
  }

  /** Sends what is left of the current write; calls back once the queue is below its cap. */
  #continueWrite(): void {
    const socket = this.socket;
    try {
      while (this.#next < this.#chunks.length) {
        const status = socket.send(this.#chunks[this.#next]);
        if (status === 'not-sent') return; // queue full: resend after its writable event
        if (status === 'closed') return this.#endWrite(socket.error ?? new SocketClosedError('socket', 'write'));
        this.#next++; // 'sent', 'partial' or 'queued': the socket holds the bytes now
      }
    } catch (err) {
      return this.#endWrite(err as Error);
    }
    // Everything taken. Over the cap, hold the callback until the queue drains: that is what
    // stops the writer (Node buffers at most highWaterMark more and write() returns false).
    // While connecting, hold it until the connect's end, as net.Socket does: a refused connect
    // fails the write (found from outside: it called back with success, the bytes never left).
    if (socket.state !== 'connecting' && socket.queuedBytes < socket.sendQueueLimit) this.#endWrite(null);
  }

  #endWrite(err: Error | null): void {
    const callback = this.#writeCallback;
    this.#writeCallback = null;
    this.#chunks = [];
    if (callback !== null) callback(err);
  }

  /** The send queue drained (or a connect finished). */
  #onWritable(): void {
    if (this.#writeCallback !== null) this.#continueWrite();
    if (this.#finalCallback !== null && this.socket.queuedBytes === 0 && this.socket.state !== 'connecting') {
      const callback = this.#finalCallback;
      this.#finalCallback = null;
      callback(this.socket.error);
    }
  }
}

/** What a write cut short by `destroy()` calls back with, as Node words it. */
function streamDestroyed(): Error {
  return Object.assign(new Error('Cannot call write after a stream was destroyed'), { code: 'ERR_STREAM_DESTROYED' });
}

/**
 * Wraps `socket` in a Duplex stream driven by `reactor`. The stream registers the socket with
 * the reactor (taking over its handler if it is there already) and owns it from then on; a
 * socket still connecting is fine (writes are queued until the connection is open).
 *
 * Throws argument errors naming the argument; throws `SocketClosedError` when the socket or
 * the reactor is closed, and an invalid-value error when the socket is in another multiplexer.
 */
export function toStream(socket: Socket, reactor: Reactor, options: SocketStreamOptions = {}): SocketStream {
  if (!(socket instanceof Socket)) throw invalidType('socket', 'an instance of Socket', socket);
  if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const highWaterMark =
    options.highWaterMark === undefined ? DEFAULT_HIGH_WATER_MARK : checkInteger('options.highWaterMark', options.highWaterMark, 1, 2 ** 31 - 1);
  const allowHalfOpen = options.allowHalfOpen ?? false;
  if (typeof allowHalfOpen !== 'boolean') throw invalidType('options.allowHalfOpen', 'of type boolean', allowHalfOpen);
  return new SocketStream(socket, reactor, highWaterMark, allowHalfOpen);
}
