/**
 * Socket: owns one connected (or connecting) stream socket fd. Receives straight into the
 * caller's Uint8Array, sends straight from it, and queues what the kernel cannot take yet. The
 * receive side is its SocketReceiver's (socket-receiver.ts), the send side, queue and ringSend
 * glue included, its SocketSender's (socket-sender.ts); the socket keeps the public API, the
 * lifecycle (connect, shutdown, close) and what it tells a multiplexer.
 *
 * The rules it keeps (design §2): the fd is non-blocking and close-on-exec; a closed socket never
 * reaches libc again (its fd becomes -1); would-block is a value; the send queue keeps order and
 * never drops bytes silently; `close()` and `shutdown()` wait for the queue to drain.
 */
import {
  F_GETFL, F_SETFL, O_NONBLOCK, SHUT_RD, SHUT_WR,
  SO_DOMAIN, SO_ERROR, SO_LINGER, SO_PEERCRED, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, AF_UNIX,
} from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { closeFd, sys } from '../../ffi/syscall.ts';
import { illegalConstructor, SocketClosedError, SocketError, checkBytes, checkInteger, checkSendLength, invalidValue, outOfRange } from '../core/errors.ts';
import { track, untrack } from '../core/lifetime.ts';
import { pauseReadingOf, sendQueueLimitOf, type SocketOptions } from './send-queue.ts';
import { INTERNAL } from '../core/internal.ts';
import { getOption, getRawOption, setOption, setRawOption, type SocketOptionName, type SocketOptionValues } from '../core/options.ts';
import { DORMANT, ERROR, HANGUP, READABLE, WRITABLE, Watchable } from '../core/watch.ts';
import type { SocketAddress } from '../core/address.ts';
import { errorDetails, readAddress } from '../core/sockaddr.ts';
import { startConnect, type ConnectOptions } from './connect.ts';
import { adoptStreamFd } from './adopt-fd.ts';
import { fdNumbers, MAX_FDS_PER_MESSAGE, type FdLike, type PeerCredentials } from '../core/fd-passing.ts';
import type { FdAdopters, ReceiveWithFdsResult } from './received-fd.ts';
import type { Listener } from './listener.ts';
import { fileRequest } from './file-range.ts';
import { asSocketError, SocketSender, type SenderHost } from './socket-sender.ts';
import { receiveResult, SocketReceiver, type ReceiverHost } from './socket-receiver.ts';
import { byteLengthOf } from '../core/bytes.ts';
import { disposeGracefully } from '../core/drive-alone.ts';

/** What `send` did with the bytes. See {@link Socket.send}. */
export type SendStatus = 'sent' | 'partial' | 'queued' | 'not-sent' | 'closed';
/** `'alive'`: the connection is up (maybe no bytes right now); `'closed'`: the peer ended it. */
export type ReceiveStatus = 'alive' | 'closed';
/** The result of {@link Socket.receive}. */
export interface ReceiveResult {
  /** The bytes read: a view of the buffer they were read into (empty when none). */
  bytes: Uint8Array;
  /** Whether the connection is still up: `'closed'` once the peer ended it. */
  status: ReceiveStatus;
}
/** Where a socket is in its life. */
export type SocketState = 'connecting' | 'open' | 'closing' | 'closed';
/** Which direction `shutdown` ends. */
export type ShutdownHow = 'read' | 'write' | 'both';
// What `receiveInto` answers at the end of the stream: defined with the receive side.
export { END_OF_STREAM } from './socket-receiver.ts';

/**
 * A non-blocking stream socket (TCP or Unix). Get one from `Listener.accept()`,
 * `Socket.connect()` or `Socket.fromFd()`.
 *
 * Reading: `receive()` / `receiveInto()` never block; they return what the kernel holds now.
 * Writing: `send()` writes what the kernel takes and queues the rest; a multiplexer that watches
 * the socket flushes the queue when the socket becomes writable (or call `flush()` yourself).
 */
export class Socket extends Watchable {
  /**
   * How received fds get their owners (see received-fd.ts). The Listener module fills in the
   * listener maker when it loads (`_adoptListenersWith`): it imports this module (accept makes
   * Sockets), so this one cannot import it back without a circle. Set once per thread, at load.
   */
  static readonly #adopters: FdAdopters = { stream: (fd) => Socket.fromFd(fd), listener: null };

  /** @internal Called once by listener.ts: received listening sockets become Listeners. */
  static _adoptListenersWith(fromFd: (fd: number) => Listener): void {
    // Once, by the library itself: nobody may swap the makers afterwards.
    if (Socket.#adopters.listener !== null) throw illegalConstructor('Socket._adoptListenersWith', 'nothing: the library calls it once');
    Socket.#adopters.listener = fromFd;
  }

  /** What a socket's sender and receiver read of it and ask of it (see SenderHost, ReceiverHost): one for every socket. */
  static readonly #host: SenderHost & ReceiverHost = {
    connecting: (socket) => socket.#connecting,
    closing: (socket) => socket.#closing,
    leaving: (socket) => socket.#destroying,
    failed: (socket) => socket.#error !== null,
    writeShut: (socket) => socket.#writeShut,
    unix: (socket) => socket.#unix(),
    ending: (socket) => socket.#receiver.ended || socket.#hungUp || socket.#writeShut,
    lose: (socket, err) => socket.#lose(err),
    drained: (socket, update) => socket.#afterDrain(update),
  };

  #fd: number;
  #connecting: boolean;
  /** @internal The stream or pipe (face/duplex.ts, face/pipe.ts) that took this socket over, for good. */
  _owner: object | null = null;
  #closing = false;
  #hungUp = false;
  #writeShut = false;
  #shutdownPending = false;
  /** The send side: direct sends, the send queue and its flush, ringSend (see socket-sender.ts). */
  readonly #sender: SocketSender;
  /** The receive side: recv, the end of reading, bytes a backend received (see socket-receiver.ts). */
  readonly #receiver: SocketReceiver;
  #error: SocketError | null = null;
  #unreported: SocketError | null = null;
  #peer: SocketAddress | null;
  #closeWaiters: (() => void)[] | null = null;
  #isUnix: boolean | null = null;
  /** Set while destroy() lets go of the multiplexer: bytes it hands over are not wanted. */
  #destroying = false;
  /** Backpressure: not readable while the send queue is full (see `pauseReadingWhenFull`). */
  #pauseReading: boolean;

  /** @internal */
  readonly _kind = 'socket';

  /** Use `Socket.connect`, `Socket.fromFd` or `Listener.accept`. Only the library holds the token. */
  constructor(
    token: typeof INTERNAL, fd: number, connecting: boolean, sendQueueLimit: number, peer: SocketAddress | null = null,
    pauseReading = false,
  ) {
    // The constructor adopts an fd unchecked: only the library may call it.
    super();
    if (token !== INTERNAL) throw illegalConstructor('Socket', 'Socket.connect(), Socket.fromFd() or Listener.accept()');
    this.#fd = fd;
    this.#connecting = connecting;
    this.#sender = new SocketSender(this, Socket.#host, sendQueueLimit);
    this.#receiver = new SocketReceiver(this, Socket.#host);
    this.#peer = peer;
    this.#pauseReading = pauseReading;
    track(this, fd, 'socket');
  }

  /**
   * Adopts an existing stream-socket fd (from another library, or received over a Unix socket).
   * The socket takes ownership: it makes the fd non-blocking and close-on-exec, and closes it.
   */
  static fromFd(fd: number, options?: SocketOptions): Socket {
    checkInteger('fd', fd, 0, 2 ** 31 - 1);
    const limit = sendQueueLimitOf(options);
    const pause = pauseReadingOf(options, false);
    return new Socket(INTERNAL, adoptStreamFd(fd, false), false, limit, null, pause);
  }

  /**
   * Starts connecting, without blocking, and returns the socket at once. A TCP socket is usually
   * `'connecting'`: a multiplexer reports it writable when the attempt ends, and then `state` is
   * `'open'`, or `error` says why it failed (ECONNREFUSED, ETIMEDOUT...), reported once as the
   * event's `error`. Sends made meanwhile are queued and flushed on success. `host` must be an IP
   * literal (default `'127.0.0.1'`); failures known at once (a missing Unix path) are thrown.
   * Socket options, and a local address and port to bind, are set before the connect starts.
   */
  static connect(options: ConnectOptions): Socket {
    const pause = pauseReadingOf(options, false);
    const started = startConnect(options);
    const socket = new Socket(INTERNAL, started.fd, started.connecting, started.sendQueueLimit, started.peer, pause);
    socket._deadline = started.deadline;
    return socket;
  }

  /** A connected pair of Unix stream sockets (socketpair): for talking to a child process, or tests. */
  static pair(options?: SocketOptions): [Socket, Socket] {
    const limit = sendQueueLimitOf(options);
    const pause = pauseReadingOf(options, false);
    const fds = new Int32Array(2);
    sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
    return [new Socket(INTERNAL, fds[0], false, limit, null, pause), new Socket(INTERNAL, fds[1], false, limit, null, pause)];
  }

  /** The raw fd, or -1 once closed. Do not close it yourself: call `close()` or `destroy()`. */
  get fd(): number {
    return this.#fd;
  }

  /** `'connecting'`, `'open'`, `'closing'` (close() called, queue still draining) or `'closed'`. */
  get state(): SocketState {
    if (this.#fd < 0) return 'closed';
    if (this.#closing) return 'closing';
    return this.#connecting ? 'connecting' : 'open';
  }

  /** The error that ended the connection (reset, refused, broken pipe...), or null. */
  get error(): SocketError | null {
    return this.#error;
  }

  /** Bytes accepted by `send` but not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.#sender.queuedBytes;
  }

  /**
   * Whether the send queue holds `sendQueueLimit` bytes or more: the next `send` would answer
   * `'not-sent'`. Check it after a `'partial'` or `'queued'` to pause a producer before it has to
   * keep refused bytes; resume on the next `writable` event.
   */
  get sendQueueFull(): boolean {
    return this.#sender.full;
  }

  /** Soft cap of the send queue, in bytes. */
  get sendQueueLimit(): number {
    return this.#sender.limit;
  }
  /** An integer from 1 to 2^31 - 1; the next `send` sees the new cap. */
  set sendQueueLimit(limit: number) {
    this.#sender.limit = checkInteger('sendQueueLimit', limit, 1, 2 ** 31 - 1);
    if (this.#fd >= 0) this._watcher?._update(this); // the queue may be full, or no longer
  }

  /**
   * Backpressure built into the multiplexer. While on, a socket whose send queue is full
   * (`sendQueueFull`) is not reported readable until the queue has drained below its cap, so a
   * handler that does one receive and one send per event never meets `'not-sent'`: the cap is
   * soft, and the send that fills the queue is taken whole. The bytes left unread wait in the
   * kernel, which in turn slows the peer down (TCP flow control). Meanwhile the queue is still
   * flushed, and hangups and errors are still reported (a peer that stops reading and goes away
   * ends in an error event), so a paused socket cannot stall.
   *
   * On by default for sockets a `Listener` accepts (`ListenOptions.socket` can change that), off
   * for sockets you connect, pair or adopt: two ends that both stop reading while their queues
   * are full would wait for each other forever, so a client that writes and reads at once must
   * keep reading. Turn it off for a program that must read while its queue is full.
   */
  get pauseReadingWhenFull(): boolean {
    return this.#pauseReading;
  }
  set pauseReadingWhenFull(on: boolean) {
    if (typeof on !== 'boolean') throw invalidValue('pauseReadingWhenFull', 'must be a boolean', on);
    this.#pauseReading = on;
    if (this.#fd >= 0) this._watcher?._update(this);
  }

  /**
   * Whether calls on this socket block the calling thread (the original's BLOCKING?). Sockets
   * start non-blocking; a blocking socket is for a worker thread that wants plain sequential
   * code, and must not be used with a multiplexer.
   */
  get blocking(): boolean {
    return (sys.fcntl(this.#open('blocking'), F_GETFL, 0) & O_NONBLOCK) === 0;
  }
  /** Switches O_NONBLOCK on the fd (fcntl F_SETFL). */
  set blocking(on: boolean) {
    if (typeof on !== 'boolean') throw invalidValue('blocking', 'must be a boolean', on);
    const fd = this.#open('blocking');
    const flags = sys.fcntl(fd, F_GETFL, 0);
    sys.fcntl(fd, F_SETFL, on ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
  }

  /** The local address (getsockname). */
  get localAddress(): SocketAddress {
    return readAddress(sys.getsockname, this.#open('localAddress'));
  }

  /** The peer's address (getpeername), or null when not connected. */
  get remoteAddress(): SocketAddress | null {
    const fd = this.#open('remoteAddress');
    if (this.#connecting) return null;
    if (this.#peer === null) {
      try {
        this.#peer = readAddress(sys.getpeername, fd);
      } catch (err) {
        if (err instanceof SocketError && err.code === 'ENOTCONN') return null;
        throw err;
      }
    }
    return this.#peer;
  }

  /** Sets a socket option (`'noDelay'`, `'keepAlive'`, `'linger'`...); the kernel's refusal is thrown. */
  setOption<K extends SocketOptionName>(name: K, value: SocketOptionValues[K]): void {
    setOption(this.#open('setOption'), name, value);
  }

  /** Reads a socket option back, as the kernel reports it. */
  getOption<K extends SocketOptionName>(name: K): SocketOptionValues[K] {
    return getOption(this.#open('getOption'), name);
  }

  /** setsockopt with any level and name: numbers and booleans travel as a C int, bytes as they are. */
  setRawOption(level: number, name: number, value: number | boolean | Uint8Array): void {
    setRawOption(this.#open('setRawOption'), level, name, value);
  }

  /** getsockopt with any level and name: the bytes the kernel wrote (at most `length`). */
  getRawOption(level: number, name: number, length?: number): Uint8Array {
    return getRawOption(this.#open('getRawOption'), level, name, length);
  }

  /**
   * Reads what the kernel holds into `into` (no copy) and returns the number of bytes read:
   * `> 0` bytes, `0` when nothing is available right now, `END_OF_STREAM` (-1) when the peer has
   * closed the connection (EOF, or a reset: see `error`). Allocates nothing. A failure that is
   * not a lost connection (ENOMEM) is thrown as a `SocketError`; nothing was read, the bytes wait
   * in the kernel and the socket stays usable.
   */
  receiveInto(into: Uint8Array): number {
    const fd = this.#open('receive');
    checkBytes('into', into);
    if (byteLengthOf(into) === 0) throw outOfRange('into.byteLength', 'at least 1', 0);
    return this.#receiver.receiveInto(fd, into);
  }

  /**
   * Reads what the kernel holds. With `into`, reads into it with no copy and returns a view of
   * it; without, reads into a buffer the library reuses (the multiplexer's, when the socket is
   * watched by one): the returned view is valid until the next `receive()` without a buffer on
   * any socket of that multiplexer, so copy it (`bytes.slice()`) to keep it.
   *
   * Status `'alive'` with no bytes means nothing is available right now; `'closed'` means the
   * peer closed or reset the connection (`error` says which).
   */
  receive(into?: Uint8Array): ReceiveResult {
    const watcher = this._watcher;
    if (into === undefined && watcher !== null && watcher._receives) {
      // io_uring's completion-based receive: the bytes are in the backend's buffers already;
      // hand out a view of them (valid until the next receive, as the shared buffer's).
      this.#open('receive');
      const shared = this.#receiver.receiveShared(watcher);
      if (shared !== null) return shared;
    }
    const buffer = into ?? watcher?.receiveBuffer ?? this.#receiver.scratch();
    return receiveResult(buffer, this.receiveInto(buffer));
  }

  /**
   * Sends `data`, keeping order with what is already queued. The caller may reuse `data` as soon
   * as this returns. Answers:
   * - `'sent'`: every byte went to the kernel;
   * - `'partial'`: some bytes went, the rest was queued;
   * - `'queued'`: nothing went yet, everything was queued (a queue was waiting, the kernel buffer
   *   was full, or the socket is still connecting);
   * - `'not-sent'`: the queue already holds `sendQueueLimit` bytes or more: nothing was taken;
   *   send again after the multiplexer reports the socket writable;
   * - `'closed'`: the connection is gone (see `error`); nothing was taken.
   *
   * The queue cap is soft: one send is accepted whole while the queue holds less than the cap.
   * Throws `SocketClosedError` after `close()`, `destroy()` or `shutdown('write')`, and a
   * `SocketError` when the kernel refuses the bytes for a reason other than a lost connection
   * (ENOBUFS, ENOMEM; ETOOMANYREFS for fds): then nothing was taken and the socket stays usable,
   * so the send may be tried again. Once bytes wait in the queue such a failure can no longer be
   * thrown to anyone: the flush that meets it ends the stream, and it is reported like a lost
   * connection (`error`, the event's `error`, with `unsentBytes`).
   *
   * With `length`, sends only the first `length` bytes of `data`: `send(buffer, n)` after
   * `receiveInto(buffer)` echoes without making a view per message.
   */
  send(data: Uint8Array, length?: number): SendStatus {
    const fd = this.#open('send');
    // `length` saves the view an echo would otherwise make (`buffer.subarray(0, n)`) per message.
    return this.#sender.transmit('send', fd, data, checkSendLength(data, length), null);
  }

  /**
   * Unix sockets: sends `data` with `fds` attached to its first byte (SCM_RIGHTS), and answers
   * like `send`. The fds keep their place in the byte stream: sent while connecting or behind
   * queued bytes, they are duplicated and travel with these bytes when their turn comes, so you
   * may close your fds as soon as this returns. The receiver gets them with the read that holds
   * that first byte (Linux may join bytes sent earlier into that read, never bytes sent later).
   * At most 253 fds per call; `data` must hold at least one byte. A TCP socket is refused: the
   * kernel would drop the fds without a word.
   */
  sendWithFds(data: Uint8Array, fds: readonly FdLike[]): SendStatus {
    const fd = this.#unixOnly('sendWithFds');
    checkBytes('data', data);
    const numbers = fdNumbers(fds); // first: an fd's getter may resize data's buffer, whose size is taken after it
    const size = byteLengthOf(data);
    if (size === 0) throw outOfRange('data.byteLength', 'at least 1 (fds travel with a byte)', 0);
    return this.#sender.transmit('sendWithFds', fd, data, size, numbers);
  }

  /**
   * Sends a file's bytes from the kernel's page cache, never through JavaScript (sendfile(2);
   * splice(2) for a pipe), in order with `send`s before and after it. Answers like `send`.
   *
   * - A regular file: `offset` defaults to 0 and `length` to the rest of the file; the range must
   *   lie inside the file as it is now. The file's own offset never moves.
   * - A pipe: give no `offset`, and a `length` (a pipe has no size). The bytes should already be
   *   in the pipe or be on their way: while the pipe is empty the socket stops asking to be
   *   flushed (no busy loop) until the next `flush()` or event.
   *
   * What the kernel cannot take now is queued as a file range: the queue holds its own duplicate
   * of `fd` (close-on-exec), so you may close yours as soon as this returns. A queued range
   * counts its remaining bytes in `queuedBytes` and against `sendQueueLimit` like queued bytes
   * (it is accepted whole while the queue is below the cap, and a big file then fills the queue:
   * later sends answer `'not-sent'` until it has drained below the cap), though no memory
   * holds them. If the file ends before `length` bytes were sent (it shrank meanwhile, or a
   * pipe's writer left), the stream can no longer be what was promised: the connection fails
   * with `ENODATA`, reported like a reset (`error`, `unsentBytes`).
   */
  sendFile(fd: number, offset?: number, length?: number): SendStatus {
    const socketFd = this.#open('sendFile');
    const request = fileRequest(fd, offset, length);
    return this.#sender.sendFile(socketFd, request);
  }

  /**
   * Unix sockets: receives bytes and any fds that came with them (room for `maxFds`, default
   * 16). Each fd comes back owned: a `Socket` for a stream socket, a `Listener` for a listening
   * one (both of the families the library speaks: Unix, IPv4, IPv6), an `OwnedFd` for anything
   * else; all are close-on-exec. A stream socket received is made non-blocking, which its sender
   * shares (the flag belongs to the open file, not the fd).
   *
   * Every control message the kernel attaches is taken care of: with SO_PASSCRED on this socket
   * the sender's credentials come in `credentials`, with SO_PASSPIDFD a pidfd of the sender in
   * `pidfd` (yours to close); others (SCM_SECURITY) are skipped. None of them can truncate the fds.
   *
   * If more fds arrived than `maxFds`, the result never holds them: that is thrown as an
   * `FdsTruncatedError` (its `bytes` hold the bytes that did arrive, its `credentials` what
   * came with them), and every fd that came (and the pidfd) is closed, never leaked. That holds
   * whether the kernel dropped the rest (MSG_CTRUNC) or delivered them anyway (it fills all the
   * room it is given, and under qemu-user it is given more). The bytes are copied once (see
   * fd-passing.ts).
   */
  receiveWithFds(into: Uint8Array, options: { maxFds?: number | undefined } = {}): ReceiveWithFdsResult {
    const fd = this.#unixOnly('receiveWithFds');
    // Options first: a getter there may resize into's buffer, whose size is taken after it.
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const maxFdsOption = options.maxFds;
    const maxFds = maxFdsOption === undefined ? 16 : checkInteger('options.maxFds', maxFdsOption, 1, MAX_FDS_PER_MESSAGE);
    checkBytes('into', into);
    if (byteLengthOf(into) === 0) throw outOfRange('into.byteLength', 'at least 1', 0);
    return this.#receiver.receiveWithFds(fd, into, maxFds, Socket.#adopters);
  }

  /** Unix sockets: the pid, uid and gid of the peer process (SO_PEERCRED). */
  peerCredentials(): PeerCredentials {
    const credentials = new Uint32Array(3);
    sys.getsockopt(this.#unixOnly('peerCredentials'), SOL_SOCKET, SO_PEERCRED, credentials, new Uint32Array([12]));
    return { pid: credentials[0] | 0, uid: credentials[1], gid: credentials[2] };
  }

  /**
   * Hands queued bytes to the kernel now, as far as it takes them, and returns how many bytes
   * remain queued. A multiplexer does this by itself when the socket becomes writable. Never
   * throws: a failure (a reset, ENOBUFS...) ends the stream and is kept in `error`, with the
   * queued bytes it stranded in `unsentBytes`.
   */
  flush(): number {
    if (this.#fd < 0) return 0;
    if (!this.#connecting) this.#sender.flush();
    return this.queuedBytes;
  }

  /**
   * Ends one or both directions. `'read'` takes effect at once; `'write'` (the default) sends
   * FIN after the send queue has drained, so the peer gets every byte and then EOF, while this
   * side can still receive.
   */
  shutdown(how: ShutdownHow = 'write'): void {
    const fd = this.#open('shutdown');
    if (how !== 'read' && how !== 'write' && how !== 'both') {
      throw invalidValue('how', "must be 'read', 'write' or 'both'", how);
    }
    if (how !== 'write' && !this.#receiver.ended) {
      if (!this.#connecting) this.#shutdownIgnoringNotConnected(fd, SHUT_RD);
      this.#receiver.end();
    }
    if (how !== 'read' && !this.#writeShut) {
      this.#writeShut = true;
      this.#shutdownPending = true;
      this.#sender.awaitDrain();
      if (!this.#connecting && this.queuedBytes === 0) this.#afterDrain();
    }
  }

  /**
   * Closes gracefully: at once when nothing is queued, otherwise after the queue has drained
   * (the state is `'closing'` meanwhile; the multiplexer finishes it). Every later operation
   * throws `SocketClosedError`. Calling it again does nothing.
   */
  close(): void {
    if (this.#fd < 0 || this.#closing) return;
    if (this.queuedBytes === 0 || this.#error !== null) {
      this.destroy();
      return;
    }
    this.#closing = true;
    if (!this.#connecting) this.#sender.flushQueue();
    if (this.#fd >= 0) this._watcher?._update(this);
  }

  /**
   * Closes at once, dropping anything still queued; a TCP peer is then reset (RST), so that it
   * cannot take the cut stream for a whole one. Calling it again does nothing. Never throws:
   * Linux releases the fd even when close(2) reports an error, and a socket's bytes were handed to
   * the kernel before, so there is nothing to retry and nothing to report.
   */
  destroy(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#destroying = true;
    try {
      this._watcher?._forget(this);
    } catch {
      // epoll_ctl(DEL) failed: closing the fd below takes it out of the epoll set anyway, and
      // the multiplexer's bookkeeping forgot this socket before the call (see _forget).
    }
    this.#resetIfCut();
    this.#fd = -1;
    this.#receiver.dropHeld();
    this.#closing = false;
    this.#sender.drop();
    untrack(this);
    try {
      closeFd(fd);
    } catch {
      // See above: the fd is gone whatever close(2) said.
    } finally {
      const waiters = this.#closeWaiters;
      this.#closeWaiters = null;
      if (waiters !== null) for (const wake of waiters) wake();
    }
  }

  /**
   * Resolves once the fd is closed: after a graceful `close()` has drained the queue, after
   * `destroy()`, or at once if it is closed already. It never rejects: check `error`.
   */
  whenClosed(): Promise<void> {
    if (this.#fd < 0) return Promise.resolve();
    return new Promise((resolve) => (this.#closeWaiters ??= []).push(resolve));
  }

  /** Calls `destroy()`: `using` scopes end with it. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /**
   * `await using` support: closes gracefully (`close()`) and, where something will finish that
   * close, waits until the queue has drained and the fd is closed (check `error` afterwards, as
   * after `whenClosed()`). On a Reactor, the Reactor finishes it. A socket no multiplexer watches
   * (the one `connect()` resolves, say) is driven to its end by poll(2) with a zero timeout, now
   * and then. On a Multiplexer you drive yourself, it returns at once: your next `wait()` finishes
   * the close (awaiting it here would wait for the `wait()` the awaiting code is to make).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await disposeGracefully(this);
  }

  /** @internal */
  _internalInterest(user: number): number {
    // A lost connection stays readable until its last bytes and the end have been read.
    const readEnded = this.#receiver.ended;
    if (this.#error !== null && this.#unreported === null && readEnded) return DORMANT;
    if (readEnded && this.#writeShut && !this.#shutdownPending && this.queuedBytes === 0) return DORMANT;
    let bits = user;
    if (readEnded) bits &= ~READABLE;
    // Closing: nobody reads any more, but what the peer sends must still be taken (and dropped),
    // or a peer that is closing too, with its own queue, would wait for us while we wait for it.
    else if (this.#closing) bits |= READABLE;
    // Backpressure: unread bytes wait in the kernel until the queue is below its cap again.
    else if (this.#pauseReading && this.#sender.full) bits &= ~READABLE;
    if (this.#connecting || this.#sender.wantsWritable()) bits |= WRITABLE;
    // epoll reports EPOLLHUP whatever the mask: once a hangup has been reported and nobody reads
    // and nothing is queued, stop watching until the interest changes (no busy loop).
    if (this.#hungUp && (bits & READABLE) === 0 && !this.#connecting && this.queuedBytes === 0) return DORMANT;
    return bits;
  }

  /** @internal */
  _ready(bits: number, user: number): number {
    let report = bits & (HANGUP | ERROR);
    // Named after the call the error stops: the flush when bytes are queued, else the next receive.
    if ((bits & ERROR) !== 0 && this.#error === null && !this.#connecting) this.#takeSocketError(this.queuedBytes > 0 ? 'send' : 'recv');
    if (this.#connecting) {
      if ((bits & (WRITABLE | ERROR | HANGUP)) === 0) return 0;
      this.#finishConnect();
      return this.#fd < 0 ? report : report | WRITABLE;
    }
    if ((bits & READABLE) !== 0 && this.#closing && !this.#receiver.ended) this.#receiver.discard();
    const drained = this.#sender.ready(bits); // flushes the queue
    if (this.#fd < 0 || this.#closing) return this.#unreported !== null ? report | ERROR : 0;
    report |= bits & user & (READABLE | WRITABLE);
    report |= this.#sender.drainReport(drained);
    if (this.#unreported !== null) report |= ERROR;
    if ((bits & (HANGUP | READABLE)) === HANGUP && !this.#hungUp) {
      this.#hungUp = true; // a hangup with nothing readable: EPOLLHUP, which will not go away
      this._watcher?._update(this);
    }
    return report;
  }

  /** @internal See Watchable._ringSendHead. */
  override _ringSendHead(range: Int32Array): Uint8Array | null {
    return this.#sender.ringSendHead(range);
  }

  /** @internal See Watchable._ringSent. */
  override _ringSent(result: number): number {
    return this.#sender.ringSent(result);
  }

  /** @internal A drain is awaited: reported as writable when the ring has sent the queue (see SocketSender.awaitDrain). */
  _awaitDrain(): void {
    this.#sender.awaitDrain();
  }

  /** @internal Connected TCP sockets that are read: a backend may receive for them (see RECEIVES). */
  override _receivable(): boolean {
    if (this.#fd < 0 || this.#connecting || this.#closing || this.#receiver.ended) return false;
    return !this.#unix();
  }

  /** @internal */
  override _heldInput(): boolean {
    return this.#fd >= 0 && this.#receiver.holds();
  }

  /** @internal */
  override _adoptReceived(bytes: Uint8Array | null, errno: number): void {
    if (this.#fd < 0 || this.#destroying) return;
    this.#receiver.adopt(bytes, errno);
  }

  /** @internal */
  override _deadlinePending(): boolean {
    return this.#connecting && this.#fd >= 0 && this._deadline > 0;
  }

  /** @internal */
  override _orphaned(): void {
    if (this.#fd < 0 || !this.#closing) return;
    this.flush();
    // Nothing will drive the rest: what the kernel could not take is lost, and must be said so,
    // here and to the peer (a FIN passed the cut stream off as whole: found from outside).
    if (this.queuedBytes > 0) {
      this.#resetIfCut();
      this.#lose(new SocketError('close', ERRNO.ECANCELED, { fd: this.#fd }));
    }
    this.destroy();
  }

  /** @internal The connect took too long: fail it with ETIMEDOUT, reported as an ERROR event. */
  override _deadlinePassed(): number {
    if (!this.#connecting || this.#fd < 0) return 0;
    this.#connecting = false;
    this.#receiver.ended = true;
    const details = this.#peer === null ? {} : errorDetails(this.#peer);
    this.#lose(new SocketError('connect', ERRNO.ETIMEDOUT, details));
    // Reported as the end of the attempt, like a refusal: writable, with the error.
    return ERROR | WRITABLE;
  }

  /** @internal Destroyed by the library in the middle of a graceful close (its last sends failed). */
  override _leavesReport(): boolean {
    return this.#closing && this.#unreported !== null;
  }

  /** @internal */
  override _hasUnreported(): boolean {
    return this.#unreported !== null;
  }

  /** @internal */
  _takeError(): SocketError | null {
    const err = this.#unreported;
    this.#unreported = null;
    if (err !== null) this._watcher?._update(this); // reported: nothing more to wait for
    return err;
  }

  #open(operation: string): number {
    if (this.#fd < 0 || this.#closing) throw new SocketClosedError('socket', operation);
    return this.#fd;
  }

  /** Whether this is a Unix socket (asked of the kernel once). */
  #unix(): boolean {
    if (this.#isUnix === null) {
      const domain = new Int32Array(1);
      sys.getsockopt(this.#fd, SOL_SOCKET, SO_DOMAIN, domain, new Uint32Array([4]));
      this.#isUnix = domain[0] === AF_UNIX;
    }
    return this.#isUnix;
  }

  /**
   * The fd, for calls that only Unix sockets support. The kernel does not refuse them on TCP: it
   * silently drops SCM_RIGHTS and answers SO_PEERCRED with pid 0 (seen on Linux 6.18), so we must.
   */
  #unixOnly(operation: string): number {
    const fd = this.#open(operation);
    if (!this.#unix()) throw invalidValue('this', `is not a Unix socket: ${operation} needs one`);
    return fd;
  }

  /** The queue is empty: finish what waited for it (a shutdown, a graceful close); `update`: the interest may have changed. */
  #afterDrain(update = true): void {
    if (this.#shutdownPending) {
      this.#shutdownPending = false;
      try {
        this.#shutdownIgnoringNotConnected(this.#fd, SHUT_WR);
      } catch (err) {
        // Runs inside wait() too: the peer will not see the end, so report it on this socket.
        this.#lose(asSocketError(err, 'shutdown'));
        return;
      }
    }
    if (this.#closing) this.destroy();
    else if (update) this._watcher?._update(this);
  }

  #shutdownIgnoringNotConnected(fd: number, how: number): void {
    try {
      sys.shutdown(fd, how);
    } catch (err) {
      // The peer may already have reset the connection: there is nothing left to shut down.
      if (!(err instanceof SocketError && err.code === 'ENOTCONN')) throw err;
    }
  }

  /** The connection is gone: remember why, report any bytes it strands, finish a close. */
  /**
   * Bytes about to be dropped from the queue: a TCP peer is reset, so that it cannot take the cut
   * stream for a whole one (a clean FIN did; found from outside). SO_LINGER 0 makes close(2) send
   * RST; on a socket still connecting it only aborts the attempt (or resets a connection the
   * kernel made meanwhile). A failure leaves a plain close.
   */
  #resetIfCut(): void {
    if (this.queuedBytes === 0 || this.#fd < 0 || this.#unix()) return;
    try {
      sys.setsockopt(this.#fd, SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), 8);
    } catch {
      // The socket is going anyway.
    }
  }

  #lose(err: SocketError): void {
    const stranded = this.#sender.drop();
    const reported = stranded > 0 ? withStranded(err, stranded) : err;
    this.#error = reported;
    this.#unreported = reported;
    this.#shutdownPending = false;
    if (this.#closing) this.destroy();
    else this._watcher?._update(this);
  }

  #takeSocketError(syscall: string): void {
    const value = new Int32Array(1);
    sys.getsockopt(this.#fd, SOL_SOCKET, SO_ERROR, value, new Uint32Array([4]));
    if (value[0] !== 0) this.#lose(new SocketError(syscall, value[0]));
  }

  #finishConnect(): void {
    const value = new Int32Array(1);
    sys.getsockopt(this.#fd, SOL_SOCKET, SO_ERROR, value, new Uint32Array([4]));
    this.#connecting = false;
    if (value[0] !== 0) {
      this.#receiver.ended = true; // never connected: nothing will ever be read
      this.#lose(new SocketError('connect', value[0], this.#peer === null ? {} : errorDetails(this.#peer)));
      return;
    }
    if (this.queuedBytes > 0) this.#sender.flushQueue();
    else if (this.#shutdownPending) this.#afterDrain();
    else this._watcher?._update(this);
  }
}

/** The same error, saying how many queued bytes it stranded (`err.unsentBytes`). */
function withStranded(err: SocketError, stranded: number): SocketError {
  const { fd, address, port, path } = err;
  const lost = Object.assign(new SocketError(err.syscall, -err.errno, { fd, address, port, path }), { unsentBytes: stranded });
  lost.message += `; ${stranded} queued bytes were not sent`;
  return lost;
}
