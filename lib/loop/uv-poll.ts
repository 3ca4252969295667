/**
 * The one place that touches koffi's libuv poll handle (`koffi.node.poll`), so that a change of
 * that API (undocumented in koffi 3.3) touches one file.
 *
 * Measured facts (design §3): the callback receives `(status, events)`, not the `(events)` that
 * koffi's typings say; the handle has start/stop/close/ref/unref; an unreferenced handle object
 * is closed by its finalizer when collected, which silently lets the process exit, so the owner
 * must keep it in a field.
 *
 * koffi calls the callback straight from libuv (koffi 3.3.4 `PollHandle::OnPoll`, a bare
 * `Function::Call`) and never checks for an exception: one that escapes stays pending in N-API,
 * libuv keeps calling a poll whose fd is still readable (100% CPU, no JS runs), and the exception
 * finally comes out of the next, unrelated koffi call. So nothing may escape the callback: see
 * `raiseUncaught`.
 *
 * Nor may koffi's own callback run, nor the handle's methods be called, once a worker is being
 * torn down: either aborts the process (`FATAL ERROR: Error::ThrowAsJavaScriptException
 * napi_throw`). So the callback is replaced by one that returns quietly then, and the handle is
 * driven by libuv's functions (ffi/libuv.ts, `redirectPoll`).
 */
import koffi from 'koffi';
import { redirectPoll } from '../../ffi/libuv.ts';
// In a worker thread, keeps koffi's code mapped until libuv has run a poll handle's close
// callback at teardown (Node unloads the addon first: SIGSEGV). See ffi/teardown.ts.
import '../../ffi/teardown.ts';

/** A libuv poll watcher on one fd, calling back on readability. */
export interface FdWatcher {
  ref(): void;
  unref(): void;
  close(): void;
}

function rethrow(error: unknown): never {
  throw error;
}

/**
 * Hands `error` to Node as an uncaught exception, with Node's own semantics (an
 * `uncaughtException` handler sees it; without one the process prints its stack and exits with
 * code 1), but from a callback Node runs itself: thrown from a `setImmediate` callback, in the
 * check phase of this same loop iteration. Throwing it from a koffi callback instead would freeze
 * the loop (see above).
 */
export function raiseUncaught(error: unknown): void {
  setImmediate(rethrow, error);
}

/**
 * The close functions of this thread's open watchers. When the process (or this worker) ends by
 * itself or by `process.exit()`, Node tears the environment down and runs libuv once more, JS no
 * longer allowed: an open poll handle whose fd is readable then (an unref'd reactor with events
 * pending) makes koffi call into JS, and Node aborts (FATAL ERROR ... napi_throw). So every open
 * watcher is closed on 'exit', the last moment JS runs.
 */
const openWatchers = new Set<() => void>();

function closeOpenWatchers(): void {
  for (const close of [...openWatchers]) close();
}

/** Watches `fd` for readability on Node's event loop; `onReadable` runs on the loop thread. */
export function watchReadable(fd: number, onReadable: (status: number) => void): FdWatcher {
  const callback = (status: number): void => {
    try {
      onReadable(status);
    } catch (error) {
      raiseUncaught(error);
    }
  };
  const handle = koffi.node.poll(fd, { readable: true }, callback as never);
  // libuv's functions where the process exports them; koffi's methods otherwise (see the header).
  const redirected = redirectPoll(fd, callback);
  const control = redirected ?? handle;
  let closed = false;
  /** Whether the handle keeps the loop alive (a new handle does): ref and unref are called on every add and close. */
  let referenced = true;
  const close = (): void => {
    if (closed) return;
    closed = true;
    control.stop();
    handle.close();
    redirected?.release(); // libuv calls nothing after the close
    openWatchers.delete(close);
    if (openWatchers.size === 0) process.off('exit', closeOpenWatchers);
  };
  if (openWatchers.size === 0) process.on('exit', closeOpenWatchers);
  openWatchers.add(close);
  return {
    ref: () => {
      if (closed || referenced) return;
      referenced = true;
      control.ref();
    },
    unref: () => {
      if (closed || !referenced) return;
      referenced = false;
      control.unref();
    },
    close,
  };
}
