/**
 * SeqpacketListener: a listening Unix `SOCK_SEQPACKET` socket. Each accepted connection is a
 * DatagramSocket that keeps message boundaries (like datagrams) on a connection (like a stream:
 * in order, never lost, and the peer's close is seen as `ended`). `accept()` never blocks.
 */
import { AF_UNIX, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_SEQPACKET } from '../../ffi/constants.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { closeFd, SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { unixAddress, type UnixAddress } from '../core/address.ts';
import { checkInteger, illegalConstructor, invalidValue, SocketClosedError } from '../core/errors.ts';
import { INTERNAL } from '../core/internal.ts';
import { track, untrack } from '../core/lifetime.ts';
import { encodeSockaddr } from '../core/sockaddr.ts';
import { boundFile, removeBoundFile, type BoundFile } from '../core/socket-file.ts';
import { READABLE, Watchable } from '../core/watch.ts';
import { DatagramSocket, type UnixDatagramSocket } from './datagram-socket.ts';
import { sendQueueLimitOf } from './open.ts';

/** Options of {@link SeqpacketListener.listen}. */
export interface SeqpacketListenOptions {
  /** The socket's path, or `'\0name'` for an abstract name. */
  path: string;
  /** Length of the queue of connections waiting for accept (default 511). */
  backlog?: number | undefined;
  /** Send queue cap of every accepted connection (default 64 KiB). */
  sendQueueLimit?: number | undefined;
}

/** accept4 errors that concern one aborted connection, not the listener: try the next one. */
const RETRY_ACCEPT = new Set(['ECONNABORTED', 'EPROTO']);

/**
 * A listening Unix `SOCK_SEQPACKET` socket. Watch it with a multiplexer: it is readable when
 * `accept()` has a connection, which comes as a DatagramSocket keeping message boundaries.
 */
export class SeqpacketListener extends Watchable {
  #fd: number;
  readonly #address: UnixAddress;
  readonly #sendQueueLimit: number;
  /** The device and inode of the file our bind made, to remove it on close only if it is still ours. */
  readonly #made: BoundFile | null;

  /** @internal */
  readonly _kind = 'seqpacket listener';

  /** @internal Use `SeqpacketListener.listen`. */
  constructor(token: typeof INTERNAL, fd: number, address: UnixAddress, sendQueueLimit: number, made: BoundFile | null) {
    super();
    if (token !== INTERNAL) throw illegalConstructor('SeqpacketListener', 'SeqpacketListener.listen()');
    this.#fd = fd;
    this.#address = address;
    this.#sendQueueLimit = sendQueueLimit;
    this.#made = made;
    track(this, fd, 'seqpacket listener');
  }

  /** Binds `path` and listens. EADDRINUSE when something is there already (a stale socket file: remove it first). */
  static listen(options: SeqpacketListenOptions): SeqpacketListener {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const address = unixAddress(options.path, 'options.path');
    const backlog = options.backlog === undefined ? 511 : checkInteger('options.backlog', options.backlog, 0, 65535);
    const limit = sendQueueLimitOf(options);
    const fd = sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    try {
      const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
      sys.bind(fd, sockaddr, encodeSockaddr(address, sockaddr));
      sys.listen(fd, backlog);
    } catch (err) {
      closeFd(fd);
      throw err instanceof SocketError ? err.withDetails({ fd: undefined, path: address.path }) : err;
    }
    return new SeqpacketListener(INTERNAL, fd, address, limit, boundFile(address.path));
  }

  /** The fd, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The path (or abstract name) it listens on. */
  get address(): UnixAddress {
    return this.#address;
  }

  /** One pending connection as a DatagramSocket (seqpacket), or `null` when none is waiting. */
  accept(): UnixDatagramSocket | null {
    if (this.#fd < 0) throw new SocketClosedError('seqpacket listener', 'accept');
    for (;;) {
      let fd: number;
      try {
        fd = sys.accept4(this.#fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      } catch (err) {
        if (err instanceof SocketError && RETRY_ACCEPT.has(err.code)) continue;
        throw err;
      }
      if (fd === WOULD_BLOCK) return null;
      return DatagramSocket._seqpacket(fd, this.#sendQueueLimit, { family: 'unix', path: '' });
    }
  }

  /**
   * Stops listening and removes the socket file its bind made, unless the path now names another
   * file (someone replaced it meanwhile). Calling it again does nothing; it never throws.
   */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    try {
      this._watcher?._forget(this);
    } catch {
      // closing the fd takes it out of any epoll set anyway
    }
    this.#fd = -1;
    untrack(this);
    try {
      closeFd(fd);
    } catch {
      // Linux releases the fd whatever close(2) reports
    }
    removeBoundFile(this.#made);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  _internalInterest(user: number): number {
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
