/**
 * pipeSockets: joins two sockets both ways on a Reactor, the way a TCP proxy does, with the
 * three things every hand-written proxy gets wrong at least once:
 *
 * - backpressure: a direction stops reading while its destination's send queue is full and
 *   resumes when it has drained, so memory stays bounded by the queue cap plus one read;
 * - half-close: EOF from one peer becomes a FIN to the other once everything before it has
 *   been sent, while the other direction keeps flowing;
 * - failure: a reset (or any error) on one side resets the other (SO_LINGER 0, so its peer
 *   sees a reset, not a clean end that would pass a truncated stream off as complete), and the
 *   error is reported.
 *
 * Bytes are read into the reactor's shared receive buffer and handed straight to `send`: the
 * only copy is what the destination's kernel cannot take yet (the send queue's own).
 */
import { ERRNO } from '../../ffi/errno.ts';
import { invalidType, invalidValue, SocketClosedError, SocketError } from '../core/errors.ts';
import { Interest, type MultiplexerEvent } from '../loop/multiplexer-types.ts';
import { Reactor } from '../loop/reactor.ts';
import { END_OF_STREAM, Socket } from '../stream/socket.ts';

/** How a {@link SocketPipe} ended. */
export interface PipeResult {
  /** Bytes carried from `a` to `b`. */
  aToB: number;
  /** Bytes carried from `b` to `a`. */
  bToA: number;
  /**
   * The error that ended the pipe (a reset, a refused connect..., ECANCELED when the reactor was
   * closed under it: both peers reset), or null when both ends finished cleanly.
   */
  error: SocketError | null;
  /** The socket whose connection failed (`a` or `b`), or null (also when the reactor was closed). */
  failed: Socket | null;
}

/** One direction: bytes read from `from` are sent on `to`. */
class Direction {
  paused = false;
  ended = false;
  bytes = 0;
  constructor(readonly from: Socket, readonly to: Socket) {}
}

/** Two sockets joined both ways; see {@link pipeSockets}. */
export class SocketPipe {
  readonly #reactor: Reactor;
  readonly #ab: Direction;
  readonly #ba: Direction;
  #error: SocketError | null = null;
  #failed: Socket | null = null;
  #closing = false;
  #highWater = 0;
  /** Resolves once both sockets are closed, with what was carried and why it ended. Never rejects. */
  readonly finished: Promise<PipeResult>;

  /** @internal Use {@link pipeSockets}. */
  constructor(a: Socket, b: Socket, reactor: Reactor) {
    this.#reactor = reactor;
    this.#ab = new Direction(a, b);
    this.#ba = new Direction(b, a);
    // Nothing carries bytes once the reactor is closed: both peers are reset, `finished` says
    // ECANCELED (it stayed pending for good, both fds open).
    const unhook = reactor._onClose(() => this.#fail(null, new SocketError('close', ERRNO.ECANCELED)));
    void Promise.all([a.whenClosed(), b.whenClosed()]).then(unhook);
    this.finished = Promise.all([a.whenClosed(), b.whenClosed()]).then(() => ({
      aToB: this.#ab.bytes,
      bToA: this.#ba.bytes,
      error: this.#error,
      failed: this.#failed,
    }));
    this.#watch(a, this.#ab, this.#ba);
    this.#watch(b, this.#ba, this.#ab);
  }

  /** The first socket given to `pipeSockets`. */
  get a(): Socket {
    return this.#ab.from;
  }

  /** The second socket given to `pipeSockets`. */
  get b(): Socket {
    return this.#ba.from;
  }

  /** Bytes carried from `a` to `b` so far. */
  get aToB(): number {
    return this.#ab.bytes;
  }

  /** Bytes carried from `b` to `a` so far. */
  get bToA(): number {
    return this.#ba.bytes;
  }

  /**
   * The most bytes either send queue held right after a send, so far. Backpressure keeps it
   * below `sendQueueLimit` plus one read (the reactor's receive buffer size).
   */
  get highWater(): number {
    return this.#highWater;
  }

  /** Ends both connections at once: queued bytes are dropped (and a TCP peer that loses some is reset). */
  destroy(): void {
    this.#closing = true;
    this.#ab.from.destroy();
    this.#ba.from.destroy();
  }

  #watch(socket: Socket, out: Direction, back: Direction): void {
    const handler = (event: MultiplexerEvent): void => this.#onEvent(event, out, back);
    const interest = Interest.READABLE;
    if (this.#reactor.multiplexer.has(socket)) this.#reactor.modify(socket, interest, handler);
    else this.#reactor.add(socket, handler, interest);
  }

  /** An event of `out.from` (which is also `back.to`). */
  #onEvent(event: MultiplexerEvent, out: Direction, back: Direction): void {
    if (this.#closing) return;
    if (event.error !== null) return this.#fail(out.from, event.error);
    // Our queue drained: the direction writing into us may read again.
    if (event.writable && back.paused && !back.to.sendQueueFull && back.to.state !== 'connecting') {
      back.paused = false;
      this.#setInterest(back);
    }
    if (event.readable || event.hangup) this.#pump(out);
  }

  /** One read from `d.from`, sent on `d.to` (level-triggered: what is left is reported again). */
  #pump(d: Direction): void {
    if (d.paused || d.ended || d.from.state === 'closed') return;
    const buffer = this.#reactor.multiplexer.receiveBuffer;
    const n = d.from.receiveInto(buffer);
    if (n > 0) {
      const status = d.to.send(buffer, n);
      if (status === 'closed') return this.#fail(d.to, d.to.error);
      d.bytes += n;
      const queued = d.to.queuedBytes;
      if (queued > this.#highWater) this.#highWater = queued;
      if (d.to.sendQueueFull) {
        d.paused = true;
        this.#setInterest(d);
      }
      return;
    }
    if (n !== END_OF_STREAM) return;
    if (d.from.error !== null) return this.#fail(d.from, d.from.error);
    // A clean EOF: FIN to the other side once everything before it has gone.
    d.ended = true;
    d.to.shutdown('write');
    this.#setInterest(d);
    if (this.#ab.ended && this.#ba.ended) {
      // Both ways done: close gracefully (each queue still drains, then the fd closes).
      this.#closing = true;
      this.#ab.from.close();
      this.#ba.from.close();
    }
  }

  #setInterest(d: Direction): void {
    if (d.from.state === 'closed') return;
    this.#reactor.modify(d.from, d.paused || d.ended ? Interest.NONE : Interest.READABLE);
  }

  /**
   * One side failed (or, `socket` null, the reactor closed): reset the other too (a clean FIN
   * would pass a cut stream off as whole).
   */
  #fail(socket: Socket | null, error: SocketError | null): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#error = error;
    this.#failed = socket;
    for (const s of [this.#ab.from, this.#ba.from]) {
      if (s.state === 'closed') continue;
      if (s !== socket) {
        try {
          s.setOption('linger', 0); // close() then sends RST
        } catch {
          // not TCP, or already gone: a plain close is all there is
        }
      }
      s.destroy();
    }
  }
}

/**
 * Joins `a` and `b` both ways on `reactor`: what one peer sends, the other receives, until both
 * have ended, then both sockets are closed (gracefully: every byte read is delivered first).
 *
 * - **Backpressure**: a direction stops reading while the other socket's send queue is full
 *   (`sendQueueFull`) and resumes once it has drained, so each queue stays below
 *   `sendQueueLimit` plus one read; a slow reader slows its peer down, nothing piles up.
 * - **Half-close**: EOF from one peer becomes `shutdown('write')` on the other socket (FIN after
 *   its queue drains); the other direction keeps flowing until it ends too.
 * - **Failure**: an error on either socket (reset, refused connect, broken pipe) destroys both,
 *   the other with SO_LINGER 0 so that its peer sees a reset too; `finished` reports the error.
 *
 * `b` may still be connecting (`Socket.connect`): bytes from `a` wait in its queue. The pipe
 * takes both sockets over in the reactor (their handlers are replaced; sockets not in it are
 * added). A socket is in one pipe for good: joining it to another, or making a stream of it,
 * throws. Resolve `finished` to learn how it ended.
 */
export function pipeSockets(a: Socket, b: Socket, reactor: Reactor): SocketPipe {
  if (!(a instanceof Socket)) throw invalidType('a', 'an instance of Socket', a);
  if (!(b instanceof Socket)) throw invalidType('b', 'an instance of Socket', b);
  if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
  if (a === b) throw invalidValue('b', 'must be another socket than a');
  // Before the sockets are touched: a closed reactor would have failed the pipe's first add and
  // destroyed both (found from outside).
  if (reactor.closed) throw new SocketClosedError('reactor', 'pipeSockets');
  for (const [name, s] of [['a', a], ['b', b]] as const) {
    if (s.state === 'closed' || s.state === 'closing') throw invalidValue(name, `is ${s.state}`);
    if (s._watcher !== null && !reactor.multiplexer.has(s)) throw invalidValue(name, 'is watched by another multiplexer; remove it there first');
    // Taking it over would leave the first pipe's other socket open and its `finished` pending
    // for good (found from outside).
    if (s._owner !== null) throw invalidValue(name, 'is taken over by another toStream or pipeSockets already; it keeps the socket until it is closed');
  }
  const pipe = new SocketPipe(a, b, reactor);
  a._owner = pipe;
  b._owner = pipe;
  return pipe;
}
