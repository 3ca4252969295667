/**
 * The internal contract between a multiplexer and the objects it watches (sockets, listeners).
 * Not part of the public API.
 *
 * Readiness is described with backend-neutral bits; each multiplexer backend maps them to its
 * own mechanism (EPOLLIN/EPOLLOUT..., POLLIN/POLLOUT...).
 */

/** Readiness and interest bits shared by every backend. */
export const READABLE = 1;
export const WRITABLE = 2;
export const HANGUP = 4;
export const ERROR = 8;
/**
 * Interest of an object that can never be ready for anything useful again (its connection is
 * gone and that has been reported). The multiplexer keeps it but takes its fd out of the kernel
 * set: epoll reports EPOLLHUP/EPOLLERR whatever the mask, so a dead socket that the user has not
 * closed yet would otherwise wake every wait.
 */
export const DORMANT = -1;
/**
 * Added by the multiplexer to a stream socket's bits when its backend receives for it (io_uring's
 * completion-based receive) and the socket lets it (`Watchable._receivable`): the backend reads
 * the socket's bytes into its own buffers and the socket takes them with `Watcher._received`.
 */
export const RECEIVES = 16;
/**
 * Added by the multiplexer to a listener's bits when its backend accepts for it (io_uring's
 * multishot accept) and the listener lets it (`Watchable._acceptable`): the backend takes the
 * connections as fds, and the listener takes those with `Watcher._accepted`.
 */
export const ACCEPTS = 32;
/**
 * Added by the multiplexer to a Waker's bits (`Watchable._eventfd`) when its backend watches
 * eventfds apart from its other fds (io_uring: see its io-uring-eventfds.ts for why).
 */
export const EVENTFD = 64;
/** `Watcher._received`: nothing held and no receive armed: read the fd as usual. (Apart from END_OF_STREAM, -1.) */
export const HELD_NONE = -10;
/** `Watcher._received`: the peer closed the connection (EOF), after the bytes held before it. */
export const HELD_END = -11;
/** `Watcher._received`: the receive failed (the errno is `Watcher._receivedErrno`). `Watcher._accepted`: the accept did. */
export const HELD_ERROR = -12;
/** `Watcher._accepted`: no fd held, and an armed accept brings what comes (as accept4's EAGAIN). */
export const HELD_WAIT = -13;

/** What a watched object asks of the multiplexer that watches it. */
export interface Watcher {
  /**
   * Whether a Reactor drives this multiplexer (Node's event loop calls its wait), so that code
   * awaiting a graceful close sees it finish; a Multiplexer you drive yourself finishes it only at
   * your next `wait()`.
   */
  readonly _driven: boolean;
  /** The watched object's wants changed (queue filled or drained, reading ended...). */
  _update(target: Watchable): void;
  /** The watched object is closing its fd: drop it now, before the fd number can be reused. */
  _forget(target: Watchable): void;
  /** A receive buffer shared by every socket of this multiplexer (one per multiplexer). */
  readonly receiveBuffer: Uint8Array;
  /** Whether the backend receives for stream sockets (then `_received` may hold bytes for them). */
  readonly _receives: boolean;
  /**
   * Bytes the backend received for `target`: the count copied into `into` (with `into` null, the
   * first chunk in `_receivedView`); 0: none now, and a receive is armed that will report them;
   * HELD_END, HELD_ERROR, or HELD_NONE (nothing held: read the fd).
   */
  _received(target: Watchable, into: Uint8Array | null): number;
  /** The view the last `_received(target, null)` answered with: valid until the next `_received`. */
  readonly _receivedView: Uint8Array;
  /** The errno of a `_received` that answered HELD_ERROR. */
  _receivedErrno(target: Watchable): number;
  /** Whether the backend accepts for listeners (then `_accepted` may hold fds for them). */
  readonly _accepts: boolean;
  /**
   * A connection the backend accepted for `target`: its fd (>= 0, the caller's from now on);
   * HELD_WAIT (none now, an armed accept brings them), HELD_ERROR (once, see `_acceptedErrno`),
   * or HELD_NONE (nothing held and none armed: call accept4).
   */
  _accepted(target: Watchable): number;
  /** The errno of the last `_accepted` that answered HELD_ERROR. */
  _acceptedErrno(): number;
  /**
   * Whether the backend sends for stream sockets (io_uring's `ringSend`): a socket that may use it
   * (`Watchable._ringSendable`) queues its bytes and calls `_sendSoon`; the backend takes them with
   * `_ringSendHead` when it submits, and reports with `_ringSent`.
   */
  readonly _sends: boolean;
  /** `target` has queued bytes and no ring send in flight: send them with the next submission. */
  _sendSoon(target: Watchable): void;
  /**
   * `target`'s queue is at its cap: submit its ring send now and take in the completions that
   * are there (so that the queue holds only what the kernel has not taken, as with send(2)).
   * Completions of other sockets are handed over too.
   */
  _sendNow(target: Watchable): void;
}

/**
 * What a multiplexer needs from an object it watches: the base class of every socket family
 * (stream sockets, listeners, and the datagram family to come). The multiplexer knows this
 * contract only, never the families above it, and recognises its targets by `instanceof`.
 */
export abstract class Watchable {
  /** The fd, or -1 once closed. */
  abstract readonly fd: number;
  /** @internal What to call this object in errors (`'socket'`, `'listener'`). */
  abstract readonly _kind: string;
  /** @internal The multiplexer watching this object, if any (at most one). */
  _watcher: Watcher | null = null;
  /** @internal This object's slot in that multiplexer's table (-1 when unwatched). */
  _slot = -1;
  /**
   * @internal A time (performance.now()) at which the object wants to be called back, 0 for
   * none: a connect's timeout, or a datagram socket's next try at a queue the kernel's
   * readiness cannot announce. The multiplexer keeps the time (it shortens its waits to it).
   */
  _deadline = 0;
  /** @internal Whether the multiplexer's list of deadlines holds this object (set by the multiplexer only). */
  _timed = false;
  /** @internal The object's own needs, as READABLE / WRITABLE bits combined with the user's, or DORMANT. */
  abstract _internalInterest(userInterest: number): number;
  /**
   * @internal Called by the multiplexer with the readiness bits of one event. Does the object's
   * own work (flush the send queue, finish a connect or a graceful close) and returns the bits to
   * report to the user (0 to report nothing).
   */
  abstract _ready(bits: number, userInterest: number): number;
  /** @internal An error that the last `_ready` found (flush or connect failure), handed over once. */
  abstract _takeError(): Error | null;
  /**
   * @internal Asked as the object leaves its multiplexer: whether it leaves with an error still
   * to report that no `_ready` will (a graceful close that the library ended because its last
   * sends failed, learnt from a ring's completion). The multiplexer then reports it at its next
   * wait, as epoll's flush reports it from `_ready`.
   */
  _leavesReport(): boolean {
    return false;
  }
  /** @internal Whether an error waits for `_takeError`. */
  _hasUnreported(): boolean {
    return false;
  }
  /** @internal Whether `_deadline` is set and still wanted. */
  _deadlinePending(): boolean {
    return false;
  }
  /** @internal The deadline passed: do what was waiting, and return the bits to report (0: none). */
  _deadlinePassed(): number {
    return 0;
  }
  /**
   * @internal The multiplexer watching this object closed: finish what only it would have
   * driven (a socket closing gracefully gets one last flush and is closed).
   */
  _orphaned(): void {}
  /** @internal Whether a backend may receive this object's bytes for it (see RECEIVES): stream sockets only. */
  _receivable(): boolean {
    return false;
  }
  /**
   * @internal Leaving a multiplexer whose backend had received bytes for it (and maybe the failure
   * after them, errno or 0): they come before anything read from the fd from now on.
   */
  _adoptReceived(_bytes: Uint8Array | null, _errno: number): void {}
  /** @internal Whether a backend may accept this object's connections for it (see ACCEPTS): listeners only. */
  _acceptable(): boolean {
    return false;
  }
  /** @internal Whether this object's fd is an eventfd (a Waker): see EVENTFD. */
  _eventfd(): boolean {
    return false;
  }
  /** @internal Leaving a multiplexer whose backend had accepted connections for it: their fds, now the object's. */
  _adoptAccepted(_fds: number[]): void {}
  /** @internal Whether bytes handed over by `_adoptReceived` still wait: readable whatever the kernel says. */
  _heldInput(): boolean {
    return false;
  }
  /**
   * @internal The bytes a backend's ring send is to take now (the head of the send queue): the
   * array that holds them, their offset in `range[0]` and length in `range[1]` (no view made per
   * send); or null: nothing, or nothing a plain send can carry. Non-null: a send is in flight
   * from now until `_ringSent`, and the object sends nothing by itself meanwhile (that would
   * reorder the stream). The backend keeps the array referenced until `_ringSent`.
   */
  _ringSendHead(_range: Int32Array): Uint8Array | null {
    return null;
  }
  /**
   * @internal The ring send of `_ringSendHead`'s bytes completed: `result` bytes went (>= 0), or
   * -errno (-ECANCELED: cancelled before it sent anything, as the object leaves). Returns bits to
   * report (WRITABLE when the drain is awaited), 0 for none.
   */
  _ringSent(_result: number): number {
    return 0;
  }
}
