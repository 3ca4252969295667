/**
 * Leak safety net: an fd owner (socket, listener, multiplexer) that is garbage-collected while
 * still open has its fd closed here, with a process warning that names it, so a forgotten socket
 * cannot keep a port or a connection alive for the life of the process.
 *
 * The registry is per module instance, so per worker thread: it holds fd numbers of this thread's
 * objects only. Owners unregister when they close, so a reused fd number is never closed twice.
 */
import { closeFd } from '../../ffi/syscall.ts';

interface Held {
  fd: number;
  kind: string;
}

const registry = new FinalizationRegistry<Held>(({ fd, kind }) => {
  try {
    closeFd(fd);
  } catch {
    // Nothing to report to: the owner is gone. The warning below still tells the user.
  }
  process.emitWarning(
    `an m-socket ${kind} (fd ${fd}) was garbage-collected while open and has been closed; ` +
      `call close() or destroy() when you are done with it`,
    { type: 'MSocketLeakWarning', code: 'MSOCKET_LEAK' },
  );
});

/** Starts watching `owner`: if it is collected before `untrack`, its fd is closed. */
export function track(owner: object, fd: number, kind: string): void {
  registry.register(owner, { fd, kind }, owner);
}

/** Stops watching `owner` (it closed its fd itself). */
export function untrack(owner: object): void {
  registry.unregister(owner);
}
