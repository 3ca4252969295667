/**
 * The one place that touches koffi's libuv poll handle (`koffi.node.poll`), so that a change of
 * that API (undocumented in koffi 3.3) touches one file.
 *
 * Measured facts (design §3): the callback receives `(status, events)`, not the `(events)` that
 * koffi's typings say; the handle has start/stop/close/ref/unref; an unreferenced handle object
 * is closed by its finalizer when collected, which silently lets the process exit, so the owner
 * must keep it in a field.
 */
import koffi from 'koffi';

/** A libuv poll watcher on one fd, calling back on readability. */
export interface FdWatcher {
  ref(): void;
  unref(): void;
  close(): void;
}

/** Watches `fd` for readability on Node's event loop; `onReadable` runs on the loop thread. */
export function watchReadable(fd: number, onReadable: (status: number) => void): FdWatcher {
  const handle = koffi.node.poll(fd, { readable: true }, ((status: number) => onReadable(status)) as never);
  let closed = false;
  return {
    ref: () => {
      if (!closed) handle.ref();
    },
    unref: () => {
      if (!closed) handle.unref();
    },
    close: () => {
      if (closed) return;
      closed = true;
      handle.stop();
      handle.close();
    },
  };
}
