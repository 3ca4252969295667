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
 * ## One handle per thread (the hub)
 * Nor may koffi's own callback run, nor any of its handle's functions be called (making one,
 * `ref()`, `close()`), once Node has begun to stop a worker: each aborts the whole process
 * (`FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw`; found from outside: every busy
 * reactor terminated, and 2 of 3 runs of 20 workers that make and close reactors). So a thread
 * has one koffi handle, made with its first watcher and never closed by us (koffi closes it at
 * the thread's teardown): it watches a thread-wide epoll fd, the hub, to which each watcher adds
 * its fd, and its callback and ref counting go through libuv's own functions (ffi/libuv.ts,
 * `redirectPoll`). Watching and forgetting an fd are then epoll_ctl calls, which are safe at any
 * moment. With one watcher (the common case) its callback runs at once; with more, one
 * epoll_wait(0) on the hub says whose fds are ready. The hub is this thread's (each worker
 * evaluates this module for itself), as the libuv loop it mirrors.
 */
import koffi from 'koffi';
import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN } from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { redirectPoll } from '../../ffi/libuv.ts';
import { sys } from '../../ffi/syscall.ts';
// In a worker thread, keeps koffi's code mapped until libuv has run a poll handle's close
// callback at teardown (Node unloads the addon first: SIGSEGV). See ffi/teardown.ts.
import { closeAtTeardown } from '../../ffi/teardown.ts';

type PollHandle = ReturnType<typeof koffi.node.poll>;

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

const EVENT_SIZE = SIZEOF.epoll_event;
const EVENTS_AT = OFFSETOF.epoll_event.events;
const DATA_AT = OFFSETOF.epoll_event.data;
/** Ready watchers taken per epoll_wait on the hub (more wait for the next loop turn: level-triggered). */
const HUB_EVENTS = 64;

interface Watched {
  onReadable: (status: number) => void;
  referenced: boolean;
}

/** The thread's hub: its epoll fd, the koffi handle on it, its watchers by id. */
interface Hub {
  fd: number;
  /** The koffi handle (kept referenced: its finalizer would close it). */
  handle: PollHandle;
  /** ref/unref by libuv's functions where the process exports them, else koffi's (see the header). */
  control: { ref(): void; unref(): void };
  watchers: Map<number, Watched>;
  /** The only watcher, when there is one (its callback runs without an epoll_wait). */
  only: Watched | null;
  /** Watchers that keep the loop alive; the handle is ref'd while there is one. */
  referenced: number;
  nextId: number;
  events: Uint8Array;
  eventsView: DataView;
  control_: Uint8Array;
  controlView: DataView;
}

let hub: Hub | null = null;

/** The hub's fd, or -1 before this thread's first watcher: it stays open for good (tests' fd checks leave it out). */
export function hubFd(): number {
  return hub === null ? -1 : hub.fd;
}

function dispatch(h: Hub, status: number): void {
  if (h.only !== null) {
    call(h.only, status);
    return;
  }
  const n = sys.epoll_wait(h.fd, h.events, HUB_EVENTS, 0);
  for (let i = 0; i < n; i++) {
    const at = i * EVENT_SIZE;
    if ((h.eventsView.getUint32(at + EVENTS_AT, true) & EPOLLIN) === 0) continue;
    const watched = h.watchers.get(h.eventsView.getUint32(at + DATA_AT, true));
    if (watched !== undefined) call(watched, status); // undefined: forgotten by an earlier callback of this turn
  }
}

function call(watched: Watched, status: number): void {
  try {
    watched.onReadable(status);
  } catch (error) {
    raiseUncaught(error);
  }
}

function theHub(): Hub {
  if (hub !== null) return hub;
  const fd = sys.epoll_create1(EPOLL_CLOEXEC);
  closeAtTeardown(fd); // the thread's for good: Node closes it when a worker ends
  const events = new Uint8Array(EVENT_SIZE * HUB_EVENTS);
  const control_ = new Uint8Array(EVENT_SIZE);
  const h: Hub = {
    fd,
    handle: null as unknown as PollHandle,
    control: null as unknown as Hub['control'],
    watchers: new Map(),
    only: null,
    referenced: 0,
    nextId: 1,
    events,
    eventsView: new DataView(events.buffer),
    control_,
    controlView: new DataView(control_.buffer),
  };
  const callback = (status: number): void => dispatch(h, status);
  h.handle = koffi.node.poll(fd, { readable: true }, callback as never);
  h.control = redirectPoll(fd, callback) ?? h.handle;
  h.control.unref(); // nothing watched yet
  // Where koffi's callback stays (no libuv API exported): it must not run once JS is gone, when
  // Node runs libuv a last time at the end of the process or worker, so it stops on 'exit'.
  if (h.control === h.handle) process.once('exit', () => h.handle.stop());
  hub = h;
  return h;
}

/** Watches `fd` for readability on Node's event loop; `onReadable` runs on the loop thread. */
export function watchReadable(fd: number, onReadable: (status: number) => void): FdWatcher {
  const h = theHub();
  const id = h.nextId++;
  h.controlView.setUint32(EVENTS_AT, EPOLLIN, true);
  h.controlView.setUint32(DATA_AT, id, true);
  h.controlView.setUint32(DATA_AT + 4, 0, true);
  sys.epoll_ctl(h.fd, EPOLL_CTL_ADD, fd, h.control_);
  const watched: Watched = { onReadable, referenced: false };
  h.watchers.set(id, watched);
  h.only = h.watchers.size === 1 ? watched : null;
  let closed = false;
  const ref = (): void => {
    if (closed || watched.referenced) return;
    watched.referenced = true;
    if (h.referenced++ === 0) h.control.ref();
  };
  const unref = (): void => {
    if (closed || !watched.referenced) return;
    watched.referenced = false;
    if (--h.referenced === 0) h.control.unref();
  };
  ref(); // as a libuv handle starts: keeping the loop alive
  return {
    ref,
    unref,
    close: () => {
      if (closed) return;
      unref();
      closed = true;
      h.watchers.delete(id);
      h.only = h.watchers.size === 1 ? h.watchers.values().next().value! : null;
      try {
        sys.epoll_ctl(h.fd, EPOLL_CTL_DEL, fd, h.control_);
      } catch {
        // The fd was closed already (its file gone: out of the hub by itself).
      }
    },
  };
}
