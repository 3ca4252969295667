/**
 * The send side of a stream socket (socket.ts): the direct send, the send queue and its flush
 * (bytes, fds, file ranges), and the glue to a backend that sends the queue itself (io_uring's
 * `ringSend`, through `Socket._ringSendHead` / `_ringSent`). Socket keeps the public methods
 * and their argument checks, and what waits for the queue to drain (a shutdown's FIN, a
 * graceful close): the sender tells it when the queue has drained.
 *
 * The rules it keeps (design §2): the send queue keeps order and never drops bytes silently (a
 * failure that strands queued bytes is reported with them, by the socket's `lose`); nothing is
 * sent by the socket while a ring send has the head of the queue, which would reorder the stream.
 */
import { MSG_NOSIGNAL } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { SocketClosedError, SocketError } from '../core/errors.ts';
import { closeAll, duplicateFds, sendWithRights } from '../core/fd-passing.ts';
import { ERROR, HANGUP, WRITABLE } from '../core/watch.ts';
import { duplicateFd, fileEnded, FileMover, PIPE_EMPTY, type FileRequest } from './file-range.ts';
import { SendQueue } from './send-queue.ts';
import type { SendStatus, Socket } from './socket.ts';
import { byteLengthOf, partOf } from '../core/bytes.ts';

/** Errors that mean the connection is gone: reported as status `'closed'`, never thrown. */
const CONNECTION_LOST = new Set([
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ENOTCONN', 'ECONNREFUSED', 'ECONNABORTED',
]);

/** Whether `err` says the connection is gone (a reset, a broken pipe...): for sends and receives alike. */
export function lostConnection(err: unknown): err is SocketError {
  return err instanceof SocketError && CONNECTION_LOST.has(err.code);
}

/**
 * What the sender reads of its socket and asks of it. The socket module makes one for all its
 * sockets (the functions take the socket), so that a socket costs no closures of its own.
 */
export interface SenderHost {
  /** Still connecting: sends wait in the queue, and the connect's end flushes it. */
  connecting(socket: Socket): boolean;
  /** `close()` was called: the drain finishes it (a drain is then not reported). */
  closing(socket: Socket): boolean;
  /** `destroy()` is letting go of the multiplexer: a ring send's bytes and answer are not wanted. */
  leaving(socket: Socket): boolean;
  /** The connection is gone (`error` is set): sends answer `'closed'`. */
  failed(socket: Socket): boolean;
  /** `shutdown('write')` was called: sends are refused. */
  writeShut(socket: Socket): boolean;
  /** A Unix socket (its sends may carry fds, which a plain ring send cannot). */
  unix(socket: Socket): boolean;
  /** Reading ended, the peer hung up or writing was shut down: a queue that empties may let the socket go dormant. */
  ending(socket: Socket): boolean;
  /** The connection is gone: the socket remembers why, drops the queue (`drop()`) and reports it. */
  lose(socket: Socket, err: SocketError): void;
  /** The queue is empty: the socket finishes what waited for it; `update`: the interest may have changed. */
  drained(socket: Socket, update: boolean): void;
}

/** A socket's send side: owns its send queue (see the file's header). */
export class SocketSender {
  readonly #socket: Socket;
  readonly #host: SenderHost;
  /** Soft cap of the send queue, in bytes (`Socket.sendQueueLimit`, which checks it). */
  limit: number;
  #queue: SendQueue | null = null;
  /** sendFile's scratch (made by the first sendFile). */
  #mover: FileMover | null = null;
  /** The head of the queue is a pipe with nothing in it: stop asking for writability until a flush. */
  #starved = false;
  /**
   * A ring send (io_uring's `ringSend`) has the head of the queue: nothing is sent by this
   * socket itself until its completion (`ringSent`), which would reorder the stream.
   */
  #ringInFlight = false;
  /**
   * Someone waits for the queue to drain, with a ring sending it: a send was refused, the queue
   * reached its cap, a shutdown waits. The drain is then reported as writable, as epoll's flush
   * reports it; a queue that merely empties as the ring sends it is not (one event per send).
   */
  #drainAwaited = false;
  /** A ring's drain was noted for the next event (see #ringDrained): reported writable there. */
  #drainNoted = false;
  /** The ring's send answered EAGAIN: wait for writability before the next (see ringSent). */
  #ringBlocked = false;

  constructor(socket: Socket, host: SenderHost, limit: number) {
    this.#socket = socket;
    this.#host = host;
    this.limit = limit;
  }

  /** Bytes accepted but not yet handed to the kernel (file ranges count their remaining bytes). */
  get queuedBytes(): number {
    return this.#queue === null ? 0 : this.#queue.length;
  }

  /** Whether the queue holds `limit` bytes or more. */
  get full(): boolean {
    return this.queuedBytes >= this.limit;
  }

  /**
   * Sends the first `length` bytes of `data` (with `fds` attached to the first byte, when given):
   * straight to the kernel when nothing waits, else into the queue, keeping order. What `send`
   * and `sendWithFds` answer.
   */
  transmit(operation: string, fd: number, data: Uint8Array, length: number, fds: number[] | null): SendStatus {
    const socket = this.#socket;
    if (this.#host.writeShut(socket)) throw new SocketClosedError('socket', `${operation}: shut down for writing, so the`);
    if (this.#host.failed(socket)) return 'closed';
    const queued = this.queuedBytes;
    const connecting = this.#host.connecting(socket);
    const ring = this.#ringSends();
    if (queued === 0 && !connecting && ring && length === 0) return 'sent';
    if (queued === 0 && !connecting && !ring) {
      if (length === 0) return 'sent';
      let n: number;
      try {
        n = fds === null ? sys.send(fd, data, length, MSG_NOSIGNAL) : sendWithRights(fd, data, fds);
      } catch (err) {
        if (!lostConnection(err)) throw err;
        this.#lose(err);
        return 'closed';
      }
      if (n === length) return 'sent';
      if (n > 0) {
        this.#enqueue(partOf(data, n, length)); // any fds went with the first byte
        return 'partial';
      }
    } else if (queued >= this.limit) {
      this.#drainAwaited = true;
      return 'not-sent';
    }
    // Behind queued bytes, still connecting, the kernel took nothing, or a ring sends at the end
    // of the turn: all of it waits, the fds as duplicates (the caller may close its own at once).
    this.#enqueue(length === byteLengthOf(data) ? data : partOf(data, 0, length), fds === null ? undefined : duplicateFds(fds), ring);
    if (ring) this.#ringQueued();
    return 'queued';
  }

  /** What `sendFile` answers, for a checked request on the socket's `socketFd` (see Socket.sendFile). */
  sendFile(socketFd: number, request: FileRequest): SendStatus {
    if (this.#host.writeShut(this.#socket)) throw new SocketClosedError('socket', 'sendFile: shut down for writing, so the');
    if (this.#host.failed(this.#socket)) return 'closed';
    const queued = this.queuedBytes;
    let start = request.offset;
    let remaining = request.length;
    if (queued === 0 && !this.#host.connecting(this.#socket)) {
      if (remaining === 0) return 'sent';
      const mover = (this.#mover ??= new FileMover());
      for (;;) {
        let n: number;
        try {
          n = mover.move(socketFd, request.fd, start, remaining);
        } catch (err) {
          if (!lostConnection(err)) throw err;
          this.#lose(err);
          return 'closed';
        }
        if (n === WOULD_BLOCK) break;
        if (n === PIPE_EMPTY) {
          this.#starved = true; // the range waits for the pipe, not for the socket
          break;
        }
        if (n === 0) {
          this.#lose(fileEnded(request.fd, start < 0));
          return 'closed';
        }
        remaining -= n;
        if (start >= 0) start += n;
        if (remaining === 0) return 'sent';
      }
    } else if (queued >= this.limit) {
      this.#drainAwaited = true;
      return 'not-sent';
    } else if (remaining === 0) {
      return 'queued';
    }
    const before = this.queuedBytes;
    (this.#queue ??= new SendQueue()).pushFile(duplicateFd(request.fd), start, remaining);
    // As #enqueue: write interest when the queue stops being empty, paused reading when it fills.
    const filled = before < this.limit && this.queuedBytes >= this.limit;
    if (filled) this.#drainAwaited = true;
    if (before === 0 || filled) this.#update();
    return remaining < request.length ? 'partial' : 'queued';
  }

  /** `Socket.flush()` of a connected socket: a ring's queue goes now too (rather than at the multiplexer's next turn). */
  flush(): void {
    if (this.queuedBytes > 0 && this.#ringSends() && this.#queue!.head() !== null) this.#socket._watcher!._sendNow(this.#socket);
    else this.flushQueue();
  }

  /** Whether the queue wants writability: bytes wait, not for a pipe, and no ring sends them. */
  wantsWritable(): boolean {
    return this.queuedBytes > 0 && !this.#starved && !this.#ringSendsHead();
  }

  /**
   * An event's part in the write direction: writability lets the ring send again, and with an
   * error or a hangup too it flushes the queue. Returns whether that flush emptied the queue.
   */
  ready(bits: number): boolean {
    if ((bits & WRITABLE) !== 0) this.#ringBlocked = false; // room again: the ring may send
    if (this.#socket.fd >= 0 && (bits & (WRITABLE | ERROR | HANGUP)) !== 0 && this.queuedBytes > 0) {
      this.flushQueue();
      return this.queuedBytes === 0;
    }
    return false;
  }

  /** What the event reports of a drain: WRITABLE when it `drained` the queue or a ring's drain was noted, else 0. */
  drainReport(drained: boolean): number {
    // A ring's drain, noted by the backend when it was awaited (see #ringDrained), as `drained`.
    if (drained) this.#drainAwaited = false;
    const bits = drained || this.#drainNoted ? WRITABLE : 0;
    this.#drainNoted = false;
    return bits;
  }

  /** A drain is awaited (see #drainAwaited): reported as writable when the ring has sent the queue. */
  awaitDrain(): void {
    if (this.queuedBytes > 0) this.#drainAwaited = true;
  }

  /**
   * Bytes were queued for the ring: sent at the end of the turn, or at once when the queue has
   * reached its cap, so that the cap (and `sendQueueFull`) counts what the kernel has not taken,
   * as send(2) makes it on epoll; still full after that, reading pauses (pauseReadingWhenFull).
   */
  #ringQueued(): void {
    const socket = this.#socket;
    if (this.queuedBytes < this.limit) {
      if (!this.#ringInFlight) socket._watcher!._sendSoon(socket);
      return;
    }
    socket._watcher!._sendNow(socket);
    if (socket.fd >= 0 && this.queuedBytes >= this.limit) {
      this.#drainAwaited = true;
      this.#update();
    }
  }

  /** The ring's drain, reported when it is awaited (see #drainAwaited): WRITABLE, or 0. */
  #ringDrained(): number {
    if (this.#socket.fd < 0 || this.#host.closing(this.#socket) || this.queuedBytes > 0 || !this.#drainAwaited) return 0;
    this.#drainAwaited = false;
    this.#drainNoted = true;
    return WRITABLE;
  }

  /**
   * Whether the multiplexer's backend sends this socket's queue (io_uring's `ringSend`):
   * connected TCP sockets (Unix ones may carry fds, which a plain ring send cannot).
   */
  #ringSends(): boolean {
    const socket = this.#socket;
    const watcher = socket._watcher;
    return watcher !== null && watcher._sends && !this.#host.connecting(socket) && socket.fd >= 0 && !this.#host.unix(socket);
  }

  /** Whether a ring sends the head of the queue (bytes; a file range at the head is sent by the socket). */
  #ringSendsHead(): boolean {
    return this.#ringInFlight || (!this.#ringBlocked && this.#ringSends() && this.#queue !== null && this.#queue.headFile() === null);
  }

  /** See Watchable._ringSendHead. */
  ringSendHead(range: Int32Array): Uint8Array | null {
    const queue = this.#queue;
    if (this.#socket.fd < 0 || this.#host.leaving(this.#socket) || this.#ringInFlight || queue === null || queue.headFds() !== null) return null;
    const head = queue.headBlock(range);
    if (head === null) return null; // a file range (sent by flushQueue), or nothing
    this.#ringInFlight = true;
    return head;
  }

  /** See Watchable._ringSent. */
  ringSent(result: number): number {
    this.#ringInFlight = false;
    const socket = this.#socket;
    const queue = this.#queue;
    if (socket.fd < 0 || this.#host.leaving(socket) || queue === null) return 0; // destroyed: the queue is gone
    if (result < 0) {
      if (result === -ERRNO.ECANCELED) return 0; // leaving the multiplexer: nothing went, the queue is whole
      if (result === -ERRNO.EAGAIN) {
        // A kernel that does not wait for room itself (Linux waits, by a poll of its own): wait
        // for writability, as a send(2) that would block, and hand the bytes to the ring then.
        this.#ringBlocked = true;
        this.#update();
        return 0;
      }
      // As a failed flush: the stream ends, reported on this socket with the bytes it strands.
      this.#lose(new SocketError('send', -result, { fd: socket.fd }));
      return socket.fd >= 0 ? ERROR : 0;
    }
    const wasFull = queue.length >= this.limit;
    if (wasFull) this.#drainAwaited = true;
    const sentFds = queue.consume(result);
    if (sentFds !== null) closeAll(sentFds);
    if (queue.length === 0) {
      // The interest changes with an empty queue only where it was full (reading resumes) or
      // the socket may go dormant (the ends): the drain of every send need not ask.
      this.#host.drained(socket, wasFull || this.#host.ending(socket));
      return this.#ringDrained();
    }
    // Below the cap again: reading resumes (pauseReadingWhenFull). The drain is reported once
    // the queue is empty, as epoll's flush reports it.
    if (wasFull && queue.length < this.limit) this.#update();
    if (queue.head() === null) {
      this.flushQueue(); // a file range's turn: this socket sends it, then the bytes behind it
      if (socket.fd >= 0) this.#update();
      return this.#ringDrained(); // that flush may have emptied the queue
    }
    if (this.#ringSends()) socket._watcher!._sendSoon(socket);
    return 0;
  }

  #enqueue(data: Uint8Array, fds?: number[], ring = false): void {
    const before = this.queuedBytes;
    const queue = (this.#queue ??= new SendQueue());
    queue.keepBlock = ring;
    queue.push(data, fds);
    // Interest changes when the queue stops being empty (write interest, unless a ring sends it)
    // and when it fills up (reading pauses, with pauseReadingWhenFull).
    // (A ring's queue: see #ringQueued.)
    if (ring) return;
    const filled = before < this.limit && queue.length >= this.limit;
    if (before === 0 || filled) this.#update();
  }

  /** Hands the queue to the kernel as far as it takes it (a ring's bytes: to the ring, at the end of the turn). */
  flushQueue(): void {
    const queue = this.#queue;
    if (queue === null) return;
    if (this.#ringInFlight) {
      this.#update(); // writability is the ring's business now
      return;
    }
    if (queue.head() !== null && this.#ringSends()) {
      // The ring sends it, at the end of the turn. (Joined with bytes queued: the interest it
      // was added with asked for writability, which the ring does not need.)
      this.#socket._watcher!._sendSoon(this.#socket);
      this.#update();
      return;
    }
    const wasFull = queue.length >= this.limit;
    this.#drainQueue(queue);
    // Drained below the cap but not empty: reading resumes (with pauseReadingWhenFull). Empty, or
    // dropped by a lost connection, has updated the interest already.
    if (wasFull && this.#queue === queue && queue.length > 0 && queue.length < this.limit) this.#update();
  }

  /** Hands the queue to the kernel as far as it takes it: bytes, fds, file ranges, in order. */
  #drainQueue(queue: SendQueue): void {
    if (this.#ringInFlight) return; // the ring's send first (see #ringInFlight)
    const socket = this.#socket;
    const ring = this.#ringSends();
    for (;;) {
      if (ring && queue.head() !== null) {
        // Bytes (after a file range sent here): the ring's to send, at the end of the turn.
        socket._watcher!._sendSoon(socket);
        this.#update();
        return;
      }
      for (let head = queue.head(); head !== null; head = queue.head()) {
        const fds = queue.headFds();
        let n: number;
        try {
          n = fds === null ? sys.send(socket.fd, head, byteLengthOf(head), MSG_NOSIGNAL) : sendWithRights(socket.fd, head, fds);
        } catch (err) {
          // Any failure here, a lost connection or not (ENOBUFS, ENOMEM, ETOOMANYREFS for the fds,
          // EMSGSIZE...), ends the stream: the bytes behind the head cannot go without it, so
          // the queue is dropped and reported on this socket. Thrown instead, it would escape the
          // multiplexer's wait() and stay at the head of the queue, failing every later wait.
          this.#lose(asSocketError(err, 'send'));
          return;
        }
        if (n === WOULD_BLOCK) return;
        const sentFds = queue.consume(n);
        if (sentFds !== null) closeAll(sentFds); // our duplicates: the peer has its own now
      }
      // head() stops at a file range (sendFile): its turn now, then the bytes behind it.
      if (queue.headFile() === null || !this.#flushFile(queue)) break;
    }
    if (this.#queue === queue && queue.length === 0) this.#host.drained(socket, true);
  }

  /** Sends the head file range as far as the kernel takes it; false when the flush must stop. */
  #flushFile(queue: SendQueue): boolean {
    const file = queue.headFile()!;
    const wasStarved = this.#starved;
    this.#starved = false;
    for (;;) {
      let n: number;
      try {
        n = (this.#mover ??= new FileMover()).move(this.#socket.fd, file.fd, file.offset, file.remaining);
      } catch (err) {
        // As for bytes: any failure ends the stream and is reported here, never thrown from wait().
        this.#lose(asSocketError(err, 'sendfile'));
        return false;
      }
      if (n === WOULD_BLOCK) {
        if (wasStarved) this.#update();
        return false;
      }
      if (n === PIPE_EMPTY) {
        this.#starved = true;
        this.#update();
        return false;
      }
      if (n === 0) {
        this.#lose(fileEnded(file.fd, file.offset < 0));
        return false;
      }
      const done = queue.consumeFile(n);
      if (done >= 0) {
        closeAll([done]); // the queue's duplicate (taken back from the teardown first)
        if (wasStarved) this.#update();
        return true;
      }
    }
  }

  /** Empties the queue, closing the duplicated fds it held; returns the bytes dropped. */
  drop(): number {
    const queue = this.#queue;
    if (queue === null) return 0;
    this.#queue = null;
    const { bytes, fds } = queue.clear();
    closeAll(fds);
    return bytes;
  }

  #lose(err: SocketError): void {
    this.#host.lose(this.#socket, err);
  }

  /** The socket's wants changed: tell its multiplexer, if any. */
  #update(): void {
    this.#socket._watcher?._update(this.#socket);
  }
}

/** A SocketError as is; anything else (a bug, koffi refusing a call) wrapped so that it has a code. */
export function asSocketError(err: unknown, syscall: string): SocketError {
  if (err instanceof SocketError) return err;
  return Object.assign(new SocketError(syscall, ERRNO.EIO), { message: `${syscall} failed: ${String(err)}`, cause: err });
}
