/**
 * OwnedFd: a file descriptor the library handed you that is neither a stream socket nor a
 * listener (a file, a pipe end, a datagram socket... received over a Unix socket). It closes
 * the fd once: on `close()`, or, if forgotten, when it is garbage-collected (with a warning).
 */
import { closeFd } from '../../ffi/syscall.ts';
import { illegalConstructor, SocketClosedError } from './errors.ts';
import { INTERNAL } from './internal.ts';
import { track, untrack } from './lifetime.ts';

/**
 * A file descriptor received over a Unix socket that is not a stream socket or a listener (a file,
 * a pipe end, a datagram socket...). It is yours to use through {@link OwnedFd.fd}; it is closed
 * once, by {@link OwnedFd.close} (or `using`), or with a warning when it is garbage-collected,
 * unless {@link OwnedFd.release} handed the fd over to you.
 */
export class OwnedFd {
  #fd: number;

  /** Received fds come from `Socket.receiveWithFds`. Only the library holds the token. */
  constructor(token: typeof INTERNAL, fd: number) {
    if (token !== INTERNAL) throw illegalConstructor('OwnedFd', 'Socket.receiveWithFds()');
    this.#fd = fd;
    track(this, fd, 'received fd');
  }

  /** The fd, or -1 once closed or released. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether the fd has been closed or released. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Gives up ownership and returns the fd: closing it is now yours (for instance with
   * `fs.closeSync`, or by handing it to `fs.createReadStream(null, { fd })`).
   */
  release(): number {
    const fd = this.#fd;
    if (fd < 0) throw new SocketClosedError('fd (closed or released)', 'OwnedFd.release()');
    this.#fd = -1;
    untrack(this);
    return fd;
  }

  /** Closes the fd. Calling it again does nothing. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    untrack(this);
    closeFd(fd);
  }

  /** Calls `close()`: `using` scopes end with it. */
  [Symbol.dispose](): void {
    this.close();
  }
}
