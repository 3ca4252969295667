/**
 * The interface every multiplexer backend implements (as Python's selectors: one abstract
 * interface, one class per kernel mechanism). Backends speak fds, tokens and the neutral bits of
 * `../watch.ts`; the Multiplexer above them owns the objects, the tokens' meaning and the rules.
 *
 * A token is (slot, generation): two uint32 values the backend stores with the fd and hands back
 * with each event, so that an event for an fd that was closed and reused cannot reach the new
 * owner (mio#219).
 */
export interface Backend {
  /** The backend's own fd when it has one (epoll), else -1. */
  readonly fd: number;
  /** An fd the backend owns that `fd` does not show (io_uring's ring fd): for the leak finalizer. */
  readonly ringFd?: number;
  /** Starts watching fd for `bits` (READABLE | WRITABLE; HANGUP and ERROR are always reported). */
  add(fd: number, slot: number, generation: number, bits: number): void;
  /** Changes what fd is watched for. */
  modify(fd: number, slot: number, generation: number, bits: number): void;
  /** Stops watching fd. Must be called while fd is still open. */
  remove(fd: number, slot: number): void;
  /**
   * Waits up to timeoutMs (0: not at all; < 0: forever) and returns how many events are ready;
   * read them with `slotAt`, `generationAt` and `bitsAt` until the next `wait`.
   */
  wait(timeoutMs: number): number;
  slotAt(index: number): number;
  generationAt(index: number): number;
  bitsAt(index: number): number;
  close(): void;
  /**
   * Backends whose `fd` cannot be watched by another loop (io_uring): an fd that becomes
   * readable when the backend has work, for the Reactor. Absent: watch `fd`.
   */
  wakeFd?(): number;
  /**
   * Called by the Reactor before it goes back to sleep on `wakeFd`: submits what is queued and
   * makes sure the fd will be signalled for anything that happens next. Returns true if events
   * are ready now (handle them with `wait(0)`, then settle again). Absent: nothing to do.
   */
  settle?(): boolean;
  /** Makes `wakeFd` readable, so that its watcher runs again soon. */
  poke?(): void;
  /**
   * Backends that watch eventfds (Wakers, added with EVENTFD in their bits) apart from their
   * other fds (io_uring): true. Absent or false: an eventfd is an fd like any other.
   */
  readonly eventfds?: boolean;
  /**
   * Where `eventfds` is true: an fd that is readable while a watched eventfd is, which a Reactor
   * watches beside `wakeFd` (io_uring: the kernel may not signal `wakeFd` for it; see
   * io-uring-eventfds.ts).
   */
  eventfdsFd?(): number;
  /**
   * Backends that receive for stream sockets themselves (io_uring's multishot receive), for slots
   * added with RECEIVES in their bits: true. Absent or false: sockets read their fds.
   */
  readonly receives?: boolean;
  /**
   * What a socket's receive takes from its slot: bytes (> 0) copied into `into`, or with `into`
   * null a view of them in `view` (of the backend's buffer, or of `spill` when several chunks were
   * copied together); 0 when nothing is held but a receive is armed; HELD_END, HELD_ERROR (see
   * `receiveErrno`) or HELD_NONE (read the fd) from ../../core/watch.ts.
   */
  receive?(slot: number, into: Uint8Array | null, spill: Uint8Array): number;
  /** The view `receive(slot, null)` answered with; valid until the next `receive`. */
  readonly view?: Uint8Array;
  /** The errno of a receive that answered HELD_ERROR. */
  receiveErrno?(slot: number): number;
  /**
   * Backends that accept for listeners themselves (io_uring's multishot accept), for slots added
   * with ACCEPTS in their bits: true. Absent or false: listeners call accept4.
   */
  readonly accepts?: boolean;
  /** What a listener's accept takes from its slot: an fd (>= 0), or HELD_WAIT, HELD_ERROR (see `acceptErrno`), HELD_NONE. */
  accept?(slot: number): number;
  /** The errno of the last `accept` that answered HELD_ERROR. */
  acceptErrno?(): number;
  /** After `remove` (or `finish`): the fds the slot held, now its listener's (null: none). */
  releaseAccepted?(slot: number): number[] | null;
  /** Before `close`: submits the sends queued, cancels every receive, accept and send in flight, and takes in what they posted (bytes and fds for `release`; each socket learns what went). */
  finish?(): void;
  /** After `remove` (or `finish`): what the slot held that its socket must still read (null: nothing). */
  release?(slot: number): Received | null;
  /**
   * Backends that send for stream sockets themselves (io_uring's `ringSend`): true. Absent or
   * false: sockets write their fds.
   */
  readonly sends?: boolean;
  /** `source` (the object in `slot`) has queued bytes: sent with the backend's next submission. */
  sendSoon?(slot: number, source: SendSource): void;
  /** `source`'s queue is full: submit its send now, and hand over the completions there are. */
  sendNow?(slot: number, source: SendSource): void;
}

/** What a backend's send takes bytes from and reports to: a stream socket (see Watchable._ringSendHead). */
export interface SendSource {
  _ringSendHead(range: Int32Array): Uint8Array | null;
  _ringSent(result: number): number;
}

/** Bytes (and the failure after them, errno or 0) received for a socket and not read when it left its multiplexer. */
export interface Received {
  bytes: Uint8Array | null;
  errno: number;
}

/** Names of the available backends, the default first. */
export const BACKEND_NAMES = ['epoll', 'poll', 'io_uring'] as const;
/**
 * A backend name: `'epoll'` (the default), `'poll'`, or `'io_uring'` (which falls back to epoll
 * where the kernel lacks io_uring or refuses it: see `Multiplexer.backend`).
 */
export type BackendName = (typeof BACKEND_NAMES)[number];
