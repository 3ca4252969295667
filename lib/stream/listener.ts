/**
 * Listener: a bound, listening stream socket (TCP or Unix) whose `accept()` never blocks.
 */
import {
  IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, TCP_NODELAY,
} from '../../ffi/constants.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { errnoCodes } from '../../ffi/errno.ts';
import { closeFd, SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { inetAddress, unixAddress, type InetAddress, type PortOf, type SocketAddress, type UnixAddress } from '../core/address.ts';
import { checkInteger, illegalConstructor, invalidValue, SocketClosedError } from '../core/errors.ts';
import { track, untrack } from '../core/lifetime.ts';
import { refuseConnection } from '../core/refuse-connection.ts';
import { closeAtTeardown, keepAtTeardown } from '../../ffi/teardown.ts';
import { boundFile, removeBoundFile, type BoundFile } from '../core/socket-file.ts';
import { encodeSockaddr, errorDetails, familyOf, readAddress } from '../core/sockaddr.ts';
import { Socket } from './socket.ts';
import { adoptStreamFd } from './adopt-fd.ts';
import { pauseReadingOf, sendQueueLimitOf, type SocketOptions } from './send-queue.ts';
import { INTERNAL } from '../core/internal.ts';
import { HELD_ERROR, HELD_WAIT, READABLE, Watchable } from '../core/watch.ts';
import { applyOptions, getOption, setOption, type SocketOptionName, type SocketOptionValues } from '../core/options.ts';

/**
 * Options of {@link Listener.listen}. An option left `undefined` takes its default.
 * `{ path }` makes a Unix listener, anything else a TCP one (see {@link TcpListener}).
 */
export interface ListenOptions {
  /** IP literal to bind (default `'::'`, every IPv4 and IPv6 address). Names: see `resolve`. */
  host?: string | undefined;
  /** Port; 0 (the default) picks a free one: read it back from `listener.port`. */
  port?: number | undefined;
  /** Unix socket path (or `'\0name'` for an abstract name) instead of host and port. */
  path?: string | undefined;
  /** Length of the queue of connections waiting for accept (default 511, as Node). */
  backlog?: number | undefined;
  /** SO_REUSEADDR: rebind a port that still has connections in TIME_WAIT (default true). */
  reuseAddress?: boolean | undefined;
  /** SO_REUSEPORT: several listeners (threads, processes) share the port (default false). */
  reusePort?: boolean | undefined;
  /** IPv6 only, or dual-stack (default false: an IPv6 wildcard also takes IPv4 connections). */
  ipv6Only?: boolean | undefined;
  /** Set TCP_NODELAY on every accepted TCP socket (default false, the kernel's default). */
  noDelay?: boolean | undefined;
  /** Options given to every accepted socket (`pauseReadingWhenFull` defaults to true for them). */
  socket?: SocketOptions | undefined;
  /** Socket options set before bind (`{ receiveBufferSize: 1 << 20, keepAlive: true }`); accepted sockets inherit most of them. */
  socketOptions?: Partial<SocketOptionValues> | undefined;
}

/** A listener on an IPv4 or IPv6 address: what `Listener.listen({ host, port })` returns. Its `port` is a number. */
export type TcpListener = Listener<InetAddress>;
/** A listener on a Unix path or abstract name: what `Listener.listen({ path })` returns. Its `port` is undefined. */
export type UnixListener = Listener<UnixAddress>;
export type { PortOf };

/**
 * accept4 errors that concern one aborted connection, not the listener: try the next one. As
 * codes (errnoCodes): EOPNOTSUPP is reported as ENOTSUP, the name Node gives errno 95.
 */
const RETRY_ACCEPT = errnoCodes(['ECONNABORTED', 'EPROTO', 'ENETDOWN', 'ENOPROTOOPT', 'EHOSTDOWN', 'ENONET', 'EHOSTUNREACH', 'EOPNOTSUPP', 'ENETUNREACH']);

function optionalBoolean(options: Partial<ListenOptions>, key: keyof ListenOptions, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidValue(`options.${key}`, 'must be a boolean', value);
  return value;
}

/**
 * A listening socket. Watch it with a multiplexer: it is readable when `accept()` has work.
 * `A` is the type of the address it is bound to, which `Listener.listen` knows from its options:
 * a {@link TcpListener} (`Listener<InetAddress>`) has a numeric `port`.
 */
export class Listener<A extends SocketAddress = SocketAddress> extends Watchable {
  #fd: number;
  #address: A;
  #noDelay: boolean;
  #socketQueueLimit: number;
  #socketPauses: boolean;
  /** The socket file `listen` created by binding a Unix path, removed again by `close()`; null otherwise. */
  #boundFile: BoundFile | null = null;
  readonly #one = new Int32Array([1]);

  /** @internal */
  readonly _kind = 'listener';
  /** accept() met EMFILE/ENFILE and has not succeeded since (see `#shortOfFds`). */
  #fdShortage = false;
  #retryMs = 0;
  /**
   * Connections an io_uring multiplexer accepted for this listener and handed over as it left
   * (see `_adoptAccepted`): taken by `accept()` before anything else, closed by `close()`.
   */
  readonly #adopted: number[] = [];

  /**
   * Use `Listener.listen` or `Listener.fromFd`. Only the library holds the token, so the published
   * types refuse `new` as JavaScript does (ERR_ILLEGAL_CONSTRUCTOR). Not marked internal: that would
   * strip this signature and leave a constructor that takes nothing.
   */
  constructor(token: typeof INTERNAL, fd: number, address: SocketAddress, noDelay: boolean, socketQueueLimit: number, socketPauses = true) {
    super();
    // The constructor adopts an fd unchecked: only the library may call it.
    if (token !== INTERNAL) throw illegalConstructor('Listener', 'Listener.listen() or Listener.fromFd()');
    this.#fd = fd;
    // What the kernel reports has the family that was bound, the one listen()'s overloads promise.
    this.#address = address as A;
    this.#noDelay = noDelay;
    this.#socketQueueLimit = socketQueueLimit;
    this.#socketPauses = socketPauses;
    track(this, fd, 'listener');
  }

  /**
   * Binds and listens, synchronously (numeric addresses need no lookup). Errors name the
   * address: `EADDRINUSE` when another socket holds it, `EACCES` for a privileged port.
   */
  static listen(options: ListenOptions & { path: string }): UnixListener;
  static listen(options?: ListenOptions & { path?: undefined }): TcpListener;
  static listen(options?: ListenOptions): Listener;
  static listen(options: ListenOptions = {}): Listener {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const backlog = options.backlog === undefined ? 511 : checkInteger('options.backlog', options.backlog, 0, 65535);
    const reuseAddress = optionalBoolean(options, 'reuseAddress', true);
    const reusePort = optionalBoolean(options, 'reusePort', false);
    const ipv6Only = optionalBoolean(options, 'ipv6Only', false);
    const noDelay = optionalBoolean(options, 'noDelay', false);
    const socketQueueLimit = sendQueueLimitOf(options.socket, 'options.socket');
    const socketPauses = pauseReadingOf(options.socket, true, 'options.socket');
    if (options.path !== undefined && (options.host !== undefined || options.port !== undefined)) {
      throw invalidValue('options', 'takes either path, or host and port, not both');
    }
    const wanted =
      options.path !== undefined ? unixAddress(options.path, 'options.path') : inetAddress(options.host ?? '::', options.port ?? 0, 'options');
    const fd = sys.socket(familyOf(wanted), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    try {
      const one = new Int32Array([1]);
      applyOptions(fd, options.socketOptions, 'options.socketOptions');
      if (wanted.family !== 'unix') {
        if (reuseAddress) sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
        if (reusePort) sys.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4);
        if (wanted.family === 'IPv6') sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, new Int32Array([ipv6Only ? 1 : 0]), 4);
      }
      const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
      sys.bind(fd, sockaddr, encodeSockaddr(wanted, sockaddr));
      sys.listen(fd, backlog);
      const listener = new Listener(INTERNAL, fd, readAddress(sys.getsockname, fd), noDelay && wanted.family !== 'unix', socketQueueLimit, socketPauses);
      if (wanted.family === 'unix' && wanted.path.charCodeAt(0) !== 0) listener.#boundFile = boundFile(wanted.path);
      return listener;
    } catch (err) {
      closeFd(fd);
      throw err instanceof SocketError ? err.withDetails({ fd: undefined, ...errorDetails(wanted) }) : err;
    }
  }

  /**
   * Adopts a listening socket's fd (received over a Unix socket, or inherited): the listener
   * takes ownership, makes it non-blocking and close-on-exec, and closes it.
   */
  static fromFd(fd: number, options: Pick<ListenOptions, 'noDelay' | 'socket'> = {}): Listener {
    checkInteger('fd', fd, 0, 2 ** 31 - 1);
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const noDelay = optionalBoolean(options, 'noDelay', false);
    const socketQueueLimit = sendQueueLimitOf(options.socket, 'options.socket');
    const socketPauses = pauseReadingOf(options.socket, true, 'options.socket');
    adoptStreamFd(fd, true);
    const address = readAddress(sys.getsockname, fd);
    return new Listener(INTERNAL, fd, address, noDelay && address.family !== 'unix', socketQueueLimit, socketPauses);
  }

  /** The raw fd, or -1 once closed. Do not close it yourself. */
  get fd(): number {
    return this.#fd;
  }

  /** The bound address (with the port the kernel picked when 0 was asked for). */
  get address(): A {
    return this.#address;
  }

  /** The bound port (IPv4/IPv6), or undefined for a Unix socket. A number for a {@link TcpListener}. */
  get port(): PortOf<A> {
    const address: SocketAddress = this.#address;
    // TypeScript does not narrow A itself; PortOf<A> says the same thing as this test.
    return (address.family === 'unix' ? undefined : address.port) as PortOf<A>;
  }

  /** Sets a socket option on the listening socket (accepted sockets inherit most of them). */
  setOption<K extends SocketOptionName>(name: K, value: SocketOptionValues[K]): void {
    setOption(this.#live('setOption'), name, value);
  }

  /** Reads a socket option of the listening socket. */
  getOption<K extends SocketOptionName>(name: K): SocketOptionValues[K] {
    return getOption(this.#live('getOption'), name);
  }

  /**
   * Whether accept() ran out of fds (EMFILE, ENFILE) and the connections waiting then have not all
   * been taken yet: true from the first such error until an accept finds the backlog empty.
   */
  get outOfFds(): boolean {
    return this.#fdShortage;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Takes one pending connection: a new non-blocking, close-on-exec Socket, or `null` when none
   * is waiting. Connections aborted before they were accepted are skipped. Running out of fds
   * (EMFILE, ENFILE) is thrown as a SocketError; then the listener pauses itself (a multiplexer
   * does not report it readable; it retries after 10 ms, doubling to 200 ms while the shortage
   * lasts, and `accept()` answers null meanwhile), so nothing spins and the waiting connections are
   * served as fds free up. `outOfFds` says whether a shortage is going on (until the backlog has
   * been emptied): log once per shortage with it.
   */
  accept(): Socket | null {
    const fd = this.#live('accept');
    // Out of fds a moment ago: the connection still waits in the backlog, so readiness would
    // call again at once, forever. Until the retry time, answer null (nothing to accept now).
    if (this._deadline > 0 && performance.now() < this._deadline) return null;
    const client = this.#nextClient(fd);
    if (client === WOULD_BLOCK) {
      this.#fdsBack(); // the backlog is empty: every waiting client was taken, the shortage is over
      return null;
    }
    this.#resume();
    // Owned before anything else can fail, so that a refused option cannot leak the fd.
    const socket = new Socket(INTERNAL, client, false, this.#socketQueueLimit, null, this.#socketPauses);
    if (this.#noDelay) {
      try {
        sys.setsockopt(client, IPPROTO_TCP, TCP_NODELAY, this.#one, 4);
      } catch (err) {
        socket.destroy();
        throw err;
      }
    }
    return socket;
  }

  /**
   * The next connection's fd, or WOULD_BLOCK when none waits: one handed over by a multiplexer
   * this listener left, one its io_uring multiplexer accepted (with no system call), or accept4's.
   * Aborted connections are skipped; running out of fds is thrown (see `accept`).
   */
  #nextClient(fd: number): number {
    for (;;) {
      if (this.#adopted.length > 0) {
        const client = this.#adopted.shift()!;
        keepAtTeardown(client); // the Socket made of it takes care of it from now on
        return client;
      }
      let failure: SocketError | null = null;
      const watcher = this._watcher;
      if (watcher !== null && watcher._accepts) {
        const held = watcher._accepted(this);
        if (held >= 0) return held;
        // Armed and nothing held: what waits in the backlog comes with the next turn (see
        // io-uring-accept.ts). Not during a shortage of fds: "nothing held" does not say the
        // backlog is empty there (the ring, armed again, has not tried yet), and taking it so
        // would end the shortage and restart its pause at 10 ms, every 10 ms (found from
        // outside): accept4 says which it is.
        if (held === HELD_WAIT && !this.#fdShortage) return WOULD_BLOCK;
        if (held === HELD_ERROR) failure = new SocketError('accept4', watcher._acceptedErrno(), { fd });
        // HELD_NONE: no accept armed; the listener calls accept4 itself.
      }
      if (failure === null) {
        try {
          const client = sys.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
          // Closed at teardown from the first moment: a worker stopped before its Socket exists
          // (a few calls away, where it is registered again: once is kept) leaves none open
          // (measured under a connection flood: 1 fd in 1 of 40-60 terminated workers before).
          if (client >= 0) closeAtTeardown(client);
          return client;
        } catch (err) {
          if (!(err instanceof SocketError)) throw err;
          failure = err;
        }
      }
      if (RETRY_ACCEPT.has(failure.code)) continue;
      if (failure.code === 'EMFILE' || failure.code === 'ENFILE') {
        // Thrown each time it really happens (a program may free fds when it does); then the
        // listener pauses (see #shortOfFds), so a handler that catches it cannot spin.
        this.#shortOfFds();
      }
      throw failure;
    }
  }

  /**
   * Stops listening and closes the fd. Calling it again does nothing.
   *
   * A Unix listener made by `listen({ path })` also removes the socket file its bind created, as
   * node:net does, so that a restart can bind the same path. It removes that file only: not a
   * path it did not bind (`fromFd`), not an abstract name (no file), and not a file that someone
   * else has put at the path since (a different device or inode). A file it cannot remove
   * (its directory became read-only, say) is left in place.
   */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this._watcher?._forget(this);
    this.#fd = -1;
    untrack(this);
    const file = this.#boundFile;
    this.#boundFile = null;
    // Connections accepted for it and never taken: closed with it, as those in its backlog are.
    for (const client of this.#adopted.splice(0)) {
      keepAtTeardown(client);
      refuseConnection(client); // reset, as those in the backlog are
    }
    try {
      closeFd(fd);
    } catch {
      // Never thrown: Linux releases the fd even when close(2) reports an error (EIO, EINTR).
    } finally {
      removeBoundFile(file);
    }
  }

  /** Calls `close()`: `using` scopes end with it. */
  [Symbol.dispose](): void {
    this.close();
  }

  #live(operation: string): number {
    if (this.#fd < 0) throw new SocketClosedError('listener', operation);
    return this.#fd;
  }

  /**
   * Running out of fds (EMFILE, ENFILE): stop being reported readable, and try again after a
   * pause that doubles from 10 ms to 200 ms while the shortage lasts (the multiplexer keeps the
   * time; `_deadlinePassed` reports the listener readable again). `_deadline > 0` means paused.
   */
  #shortOfFds(): void {
    this.#fdShortage = true;
    this.#retryMs = Math.min(200, Math.max(10, this.#retryMs * 2));
    this._deadline = performance.now() + this.#retryMs;
    this._watcher?._update(this);
  }

  /** An accept worked: no pause (more clients may wait), but the shortage goes on until the backlog is empty. */
  #resume(): void {
    if (this._deadline === 0 && this.#retryMs === 0) return;
    this.#retryMs = 0;
    this._deadline = 0;
    this._watcher?._update(this);
  }

  /** The backlog is empty: the shortage, if any, is over (a later one is thrown again). */
  #fdsBack(): void {
    this.#fdShortage = false;
    this.#resume();
  }

  /** @internal */
  override _deadlinePending(): boolean {
    return this._deadline > 0 && this.#fd >= 0;
  }

  /** @internal The retry time came: report readable, so that the handler accepts (and finds fds, or not). */
  override _deadlinePassed(): number {
    if (this._deadline === 0 || this.#fd < 0) return 0;
    this._deadline = 0;
    this._watcher?._update(this);
    return READABLE;
  }

  /** @internal An io_uring multiplexer may accept for an open listener (see ACCEPTS). */
  override _acceptable(): boolean {
    return this.#fd >= 0;
  }

  /** @internal The fds of connections an io_uring multiplexer accepted for this listener, handed over as it left. */
  override _adoptAccepted(fds: number[]): void {
    for (const client of fds) {
      closeAtTeardown(client); // a worker that ends before they are taken leaks none
      this.#adopted.push(client);
    }
  }

  /** @internal Connections handed over still wait: readable whatever the kernel says. */
  override _heldInput(): boolean {
    return this.#adopted.length > 0 && this.#fd >= 0;
  }

  /** @internal */
  _internalInterest(user: number): number {
    if (this._deadline > 0) return user & ~READABLE;
    return user;
  }

  /** @internal */
  _ready(bits: number, user: number): number {
    return bits & (user | ~READABLE);
  }

  /** @internal */
  _takeError(): null {
    return null;
  }
}

// A Socket that receives a listening socket's fd (receiveWithFds) hands it to Listener.fromFd.
Socket._adoptListenersWith((fd) => Listener.fromFd(fd));
