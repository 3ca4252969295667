/**
 * Leak safety net: an fd owner (socket, listener, multiplexer, received fd) that is
 * garbage-collected while still open has its fd closed here, with a process warning that names
 * it, so a forgotten socket cannot keep a port or a connection alive for the life of the process.
 *
 * In a worker thread the same owners are also closed when the worker ends, however it ends
 * (`terminate()` included, when no JS runs any more): Node closes their fds at the teardown of
 * the worker's environment (ffi/teardown.ts). FinalizationRegistry callbacks never run then.
 *
 * The registry is per module instance, so per worker thread: it holds fd numbers of this thread's
 * objects only. Owners unregister when they close, so a reused fd number is never closed twice.
 */
import { closeFd } from '../../ffi/syscall.ts';
import { closeAtTeardown, closesAtTeardown, keepAtTeardown } from '../../ffi/teardown.ts';

interface Held {
  fd: number;
  kind: string;
  /** Releases more than the fd (an io_uring's mappings): called instead of close. Must not hold the owner. */
  release: (() => void) | undefined;
}

const registry = new FinalizationRegistry<Held>(({ fd, kind, release }) => {
  keepAtTeardown(fd);
  try {
    if (release === undefined) closeFd(fd);
    else release();
  } catch {
    // Nothing to report to: the owner is gone. The warning below still tells the user.
  }
  process.emitWarning(
    `an m-socket ${kind} (fd ${fd}) was garbage-collected while open and has been closed; ` +
      `call close() or destroy() when you are done with it`,
    { type: 'MSocketLeakWarning', code: 'MSOCKET_LEAK' },
  );
});

/** The fd of each live owner, for `untrack` (worker threads only: the main thread needs no teardown). */
const fds: WeakMap<object, number> | null = closesAtTeardown ? new WeakMap() : null;

/**
 * Starts watching `owner`: if it is collected before `untrack`, or its worker ends, its fd is
 * closed (by `release` when given, for the collected case: it must not reference `owner`, or the
 * owner could never be collected).
 */
export function track(owner: object, fd: number, kind: string, release?: () => void): void {
  registry.register(owner, { fd, kind, release }, owner);
  if (fds !== null) {
    fds.set(owner, fd);
    closeAtTeardown(fd);
  }
}

/** Stops watching `owner`; call it before closing the fd (or handing it over). */
export function untrack(owner: object): void {
  registry.unregister(owner);
  if (fds === null) return;
  const fd = fds.get(owner);
  if (fd === undefined) return;
  fds.delete(owner);
  keepAtTeardown(fd);
}
