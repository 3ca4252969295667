/**
 * Waker: wakes a multiplexer that is blocked in `wait(ms)`, from its own thread or from another
 * one, as mio's `Waker` does. It is an eventfd(2) that the multiplexer watches: `wake()` adds 1 to
 * the eventfd's counter, which makes it readable; the wait returns with an event whose target is
 * the waker, and the multiplexer reads the counter back to 0. Wakes made before the wait returns
 * coalesce into that one event.
 *
 * ## Threads and fd numbers
 * A JavaScript object cannot be shared between worker threads, but an fd can: fds belong to the
 * process. Handing another thread the *number* of our fd would be unsafe, since we may close it
 * and the kernel may give the number to a new file before the other thread's last `wake()`, which
 * would then write into a stranger's file. So each thread owns its own fd: `share()` makes a
 * duplicate (the same eventfd under a new number) for the other thread, which adopts it with
 * `Waker.fromFd()` and closes it when done. Each side closes only its own number, whenever it
 * likes; the eventfd lives until both are closed.
 *
 * Ownership rule for the number in flight: whoever calls `share()` must hand the number over at
 * once, and the receiver must adopt it exactly once. The safe direction is from a worker to the
 * thread that started it: the worker makes the waker, watches it, and posts `share()`; the parent's
 * `'message'` handler adopts it at once (a parent outlives its workers, and messages a worker
 * posted before it ended are still delivered).
 */
import { readlinkSync } from 'node:fs';
import { EFD_CLOEXEC, EFD_NONBLOCK, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, O_NONBLOCK } from '../../ffi/constants.ts';
import { closeFd, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { checkInteger, invalidValue, SocketClosedError } from '../core/errors.ts';
import { INTERNAL } from '../core/internal.ts';
import { track, untrack } from '../core/lifetime.ts';
import { READABLE, Watchable } from '../core/watch.ts';

/** What /proc/self/fd shows for an eventfd. */
const EVENTFD_LINK = 'anon_inode:[eventfd]';

/**
 * Wakes a multiplexer blocked in `wait()`. Watch it (`mux.add(waker)`): after `wake()`, from
 * this thread or any thread holding a `share()` of it, the wait returns an event whose `target`
 * is the waker (`readable: true`). Several wakes before the wait returns make one event.
 *
 * ```ts
 * // worker
 * const waker = new Waker();
 * mux.add(waker);
 * parentPort.postMessage({ waker: waker.share() });  // a duplicate fd, now the parent's
 * for (;;) for (const event of mux.wait(-1)) if (event.target === waker) return;  // stop
 * // parent
 * worker.once('message', (m) => { const waker = Waker.fromFd(m.waker); ... waker.wake(); waker.close(); });
 * ```
 */
export class Waker extends Watchable {
  #fd: number;
  /** The 8 bytes `wake()` writes: a counter increment of 1 (native endianness, as eventfd wants). */
  readonly #one = new BigUint64Array([1n]);
  /** Where the multiplexer reads the counter back to 0. */
  readonly #counter = new BigUint64Array(1);

  /** @internal */
  readonly _kind = 'waker';

  /** A new waker: an eventfd, non-blocking and close-on-exec. (The arguments are the library's own, for `fromFd`.) */
  constructor(token?: typeof INTERNAL, fd?: number) {
    super();
    this.#fd = token === INTERNAL && fd !== undefined ? fd : sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    track(this, this.#fd, 'waker');
  }

  /**
   * Adopts an fd made by another thread's `waker.share()`: the new Waker owns it (closes it on
   * `close()`) and wakes the same multiplexer. Adopt each shared number exactly once.
   */
  static fromFd(fd: number): Waker {
    checkInteger('fd', fd, 0, 2 ** 31 - 1);
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      throw invalidValue('fd', 'must be an open eventfd (from waker.share())', fd);
    }
    if (link !== EVENTFD_LINK) throw invalidValue('fd', `must be an eventfd from waker.share(), not ${link}`, fd);
    // Both flags are normally set already (share() duplicates with F_DUPFD_CLOEXEC, and O_NONBLOCK
    // belongs to the eventfd itself); an fd from elsewhere gets them here.
    sys.fcntl(fd, F_SETFL, sys.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    sys.fcntl(fd, F_SETFD, sys.fcntl(fd, F_GETFD, 0) | FD_CLOEXEC);
    return new Waker(INTERNAL, fd);
  }

  /** The fd, or -1 once closed. Do not close it yourself. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Wakes the multiplexer watching this eventfd (here or in another thread): its current or next
   * `wait` returns an event for the waker. Never blocks; wakes not yet seen coalesce.
   */
  wake(): void {
    const fd = this.#live('wake');
    // WOULD_BLOCK: the counter is at its maximum, so a wake is pending anyway.
    if (sys.write(fd, this.#one, 8) === WOULD_BLOCK) return;
  }

  /**
   * A duplicate of this waker's fd for another thread (close-on-exec), which must adopt it with
   * `Waker.fromFd()` exactly once; from then on that thread owns it and closes it. Send the
   * number at once (`postMessage`): a number nobody adopts stays open until the process ends.
   */
  share(): number {
    return sys.fcntl(this.#live('share'), F_DUPFD_CLOEXEC, 0);
  }

  /**
   * Closes this thread's fd (and leaves its multiplexer). Other threads' duplicates stay valid:
   * their wakes go to an eventfd nobody watches any more, which is harmless. Calling it again
   * does nothing.
   */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this._watcher?._forget(this);
    this.#fd = -1;
    untrack(this);
    closeFd(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(operation: string): number {
    if (this.#fd < 0) throw new SocketClosedError('waker', operation);
    return this.#fd;
  }

  /** @internal Readable interest only: an eventfd is never anything else. */
  _internalInterest(user: number): number {
    return user & READABLE;
  }

  /** @internal An eventfd: some backends watch it apart (see EVENTFD in ../core/watch.ts). */
  override _eventfd(): boolean {
    return true;
  }

  /** @internal Reads the counter back to 0, so that the next wait blocks again (no busy loop). */
  _ready(bits: number): number {
    if ((bits & READABLE) === 0 || this.#fd < 0) return 0;
    // WOULD_BLOCK: another multiplexer watching a duplicate read it first; nothing to report.
    return sys.read(this.#fd, this.#counter, 8) === WOULD_BLOCK ? 0 : READABLE;
  }

  /** @internal */
  _takeError(): null {
    return null;
  }
}
