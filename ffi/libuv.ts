/**
 * A safe callback for koffi's libuv poll handle, from libuv's own API (the node binary exports
 * it), so that no readiness callback can abort the process while a worker is torn down.
 *
 * Why: koffi 3.3.4's poll handle calls back through node-addon-api (`PollHandle::OnPoll` builds
 * an event object, then calls the function). Once Node has stopped JavaScript in a worker
 * (`worker.terminate()`: `can_call_into_js` false, libuv still runs the rest of that loop turn and
 * the teardown turns), each of those N-API calls fails, node-addon-api "throws" the failure, and
 * napi_throw fails too: `FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw`, and the
 * whole process aborts. It takes only a watched fd that is readable as the worker is terminated
 * (a busy server; measured: 5 of 5 workers with an unread event abort the process). koffi's
 * registered callbacks (`koffi.register`) go another way: a call that cannot run JavaScript
 * returns quietly (`CallData::CallCallback` accepts napi_cannot_run_js and napi_pending_exception,
 * and converting integer arguments needs no JavaScript).
 *
 * The handle's methods have the same flaw from JavaScript: Node marks the worker as stopping the
 * moment `terminate()` is called, JavaScript runs on until V8 stops it, and an ObjectWrap method
 * called in between (`ref()`, which a Reactor calls as sockets come and go) fails in napi_unwrap
 * and aborts the same way (found under a connection flood: 2 of 3 runs of 40 terminated workers).
 * Plain koffi function calls have no such step (every system call of the library runs then).
 *
 * So `redirectPoll` keeps koffi's handle (koffi owns its memory and closes it, when asked and at
 * teardown, which only native code could do), replaces its callback by a registered one
 * (`uv_poll_start` on the same handle sets the callback libuv calls), and drives it with libuv's
 * functions (`uv_ref`, `uv_unref`, `uv_poll_stop`) instead of the handle's methods. The handle is
 * found with `uv_walk` on this thread's loop, by type and fd (libuv allows one poll handle per
 * fd and loop). Closing stays koffi's (it frees koffi's memory): lib/loop/uv-poll.ts never
 * closes its handle, one per thread, and leaves that to koffi at the thread's teardown.
 *
 * Declarations and this one piece of glue only, as ffi/teardown.ts: lib/ never sees a pointer.
 * Each worker evaluates this module for itself (its own loop, its own koffi instance).
 */
import koffi, { type TypeObject } from 'koffi';

/** <uv.h>: uv_handle_type UV_POLL and uv_poll_event UV_READABLE, stable across libuv 1.x. */
const UV_POLL = 8;
const UV_READABLE = 1;

interface UvBindings {
  loop: () => unknown;
  walk: (loop: unknown, callback: unknown, arg: null) => void;
  handleType: (handle: unknown) => number;
  fileno: (handle: unknown, fd: Int32Array) => number;
  pollStart: (handle: unknown, events: number, callback: unknown) => number;
  pollStop: (handle: unknown) => number;
  ref: (handle: unknown) => void;
  unref: (handle: unknown) => void;
  walkCallback: TypeObject;
  pollCallback: TypeObject;
}

function bind(): UvBindings | null {
  try {
    const self = koffi.load(null);
    const isolate = self.func('void *_ZN2v87Isolate10GetCurrentEv()');
    const currentLoop = self.func('void *_ZN4node19GetCurrentEventLoopEPN2v87IsolateE(void *isolate)');
    const walkCallback = koffi.proto('void (void *handle, void *arg)');
    // The handle travels as an integer: a pointer argument would need an N-API external, which
    // cannot be made once JavaScript is stopped (the very case this callback is for).
    const pollCallback = koffi.proto('void (intptr_t handle, int status, int events)');
    return {
      loop: () => currentLoop(isolate()),
      walk: self.func('uv_walk', 'void', ['void *', koffi.pointer(walkCallback), 'void *']),
      handleType: self.func('int uv_handle_get_type(void *handle)'),
      fileno: self.func('int uv_fileno(void *handle, void *fd)'),
      pollStart: self.func('uv_poll_start', 'int', ['void *', 'int', koffi.pointer(pollCallback)]),
      pollStop: self.func('int uv_poll_stop(void *handle)'),
      ref: self.func('void uv_ref(void *handle)'),
      unref: self.func('void uv_unref(void *handle)'),
      walkCallback,
      pollCallback,
    };
  } catch {
    return null; // a Node build that does not export these: koffi's own callback stays
  }
}

const uv = bind();

/** This thread's loop's poll handle on `fd` (koffi's), or null. */
function findPollHandle(bindings: UvBindings, fd: number): unknown {
  let found: unknown = null;
  const fdOut = new Int32Array(1);
  let visit: bigint;
  try {
    visit = koffi.register((handle: unknown) => {
      if (found === null && bindings.handleType(handle) === UV_POLL && bindings.fileno(handle, fdOut) === 0 && fdOut[0] === fd) found = handle;
    }, koffi.pointer(bindings.walkCallback));
  } catch {
    return null; // all of koffi's callback slots in use
  }
  try {
    bindings.walk(bindings.loop(), visit, null);
  } finally {
    koffi.unregister(visit);
  }
  return found;
}

/** A poll handle driven through libuv's functions (see the header). */
export interface PollControl {
  ref(): void;
  unref(): void;
  /** Stops the callbacks (the handle stays open: koffi's `close()` closes it). */
  stop(): void;
  /** Releases the registered callback: call it once the handle is closed (libuv calls nothing after `uv_close`). */
  release(): void;
}

/**
 * Makes libuv call `onReadable(status)` for the started poll handle on `fd` (made by
 * `koffi.node.poll` on this thread), through a registered callback that does nothing once
 * JavaScript can no longer run, and returns the functions that drive the handle; null where the
 * handle was not found or libuv's API is not exported (koffi's own callback then stays in place).
 */
export function redirectPoll(fd: number, onReadable: (status: number) => void): PollControl | null {
  if (uv === null) return null;
  const bindings = uv;
  const handle = findPollHandle(bindings, fd);
  if (handle === null) return null;
  let callback: bigint;
  try {
    callback = koffi.register((_handle: number, status: number) => onReadable(status), koffi.pointer(bindings.pollCallback));
  } catch {
    return null; // all of koffi's 8,192 callback slots in use
  }
  if (bindings.pollStart(handle, UV_READABLE, callback) !== 0) {
    koffi.unregister(callback);
    return null;
  }
  return {
    ref: () => bindings.ref(handle),
    unref: () => bindings.unref(handle),
    stop: () => void bindings.pollStop(handle),
    release: () => koffi.unregister(callback),
  };
}
