/**
 * Multiplexer: watches many sockets and listeners and reports which are ready, like the
 * original's epoll multiplexer, with its duties: it flushes the send queues of sockets that
 * became writable, completes graceful closes and shutdowns, finishes non-blocking connects, and
 * forgets closed sockets by itself.
 *
 * ## Tokens, not fds
 * Each watched object has a slot; the kernel hands back (slot, generation) with each event. A
 * slot's generation changes when its object leaves, so an event for a closed-and-reused fd is
 * dropped instead of reaching the fd's new owner.
 *
 * ## Spurious events
 * An event says readiness *was* seen. By the time you act another handler may have drained the
 * socket or closed it: `receive` then answers no bytes, and a closed target's `state` says so.
 *
 * ## Draining readiness
 * Level-triggered: whatever you leave unread is reported again by the next `wait`.
 */
import { invalidState, invalidType, invalidValue, checkInteger, SocketClosedError, SocketError } from '../core/errors.ts';
import { track, untrack } from '../core/lifetime.ts';
import type { Backend, BackendName } from './backends/backend.ts';
import { createBackend, ringPathsOf } from './backends/create-backend.ts';
import { ACCEPTS, DORMANT, ERROR, EVENTFD, HANGUP, HELD_NONE, READABLE, RECEIVES, WRITABLE, Watchable, type Watcher } from '../core/watch.ts';
// Its public vocabulary, re-exported (the socket families stay types only there: the multiplexer works on the Watchable contract).
import type { MultiplexerAddArguments, MultiplexerEvent, MultiplexerOptions, MultiplexerTarget } from './multiplexer-types.ts';

export { Interest, type MultiplexerAddArguments, type MultiplexerEvent, type MultiplexerOptions, type MultiplexerTarget } from './multiplexer-types.ts';

const INT32_MAX = 2 ** 31 - 1;
const EMPTY = new Uint8Array(0);

function newEvent<D>(): MultiplexerEvent<MultiplexerTarget, D> {
  // target and data are set before the event is handed out.
  return { target: null as unknown as MultiplexerTarget, readable: false, writable: false, hangup: false, error: null, data: undefined as D };
}

/** Validates a timeout: whole ms rounded up, negative or Infinity waits forever. */
function timeoutOf(timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number') throw invalidType('timeoutMs', 'of type number', timeoutMs);
  if (Number.isNaN(timeoutMs)) throw invalidValue('timeoutMs', 'must be a number of milliseconds, not NaN');
  if (timeoutMs < 0 || timeoutMs === Infinity) return -1;
  return Math.min(Math.ceil(timeoutMs), INT32_MAX);
}

/**
 * Watches sockets and listeners. `wait(0)` never blocks; `wait(ms > 0)` blocks the calling
 * thread, which suits a worker thread that runs its own loop. On the main thread, drive it with a
 * `Reactor` (Node's event loop) or call `wait(0)` from your own timer.
 *
 * A socket or listener can be in one multiplexer at a time; closing it removes it.
 *
 * `D` is the type of the data that `add` attaches to a target and each of its events carries:
 * `new Multiplexer<Connection>()` makes `event.data` a `Connection` (and `add` then requires it;
 * use `Multiplexer<Connection | undefined>` to add some targets without data). The default,
 * `unknown`, takes anything.
 */
// Not `implements Watcher`: that contract is internal, and the published .d.ts (stripInternal)
// would then declare a class missing the members it claims (TS2420 for users with
// skipLibCheck: false). `target._watcher = this` in add() still checks the contract here.
export class Multiplexer<D = unknown> {
  #backend: Backend | null;
  readonly #targets: (Watchable | null)[] = [];
  readonly #generations: number[] = [];
  readonly #interest: number[] = [];
  readonly #registered: number[] = [];
  readonly #data: (D | undefined)[] = [];
  readonly #freeSlots: number[] = [];
  #size = 0;
  readonly #events: MultiplexerEvent<MultiplexerTarget, D>[] = [];
  /** Targets with a deadline (a connect timeout, a datagram queue's next try): checked after every wait, whose timeout they shorten. */
  readonly #timed: Watchable[] = [];
  readonly #eventPool: MultiplexerEvent<MultiplexerTarget, D>[] = [];
  /**
   * Targets holding bytes an io_uring backend received for them before they came here (see
   * `Watchable._heldInput`): readable until read, which the kernel cannot know.
   */
  readonly #holders: Watchable[] = [];
  /**
   * Targets that left with an error no `_ready` will report (see `Watchable._leavesReport`:
   * a graceful close ended by a ring send's failure, inside a wait or a handler's flush), and
   * the data they were added with: reported by the next wait, so that nothing fails silently.
   */
  readonly #departed: Watchable[] = [];
  readonly #departedData: (D | undefined)[] = [];

  /** Most events one `wait` returns. */
  readonly maxEvents: number;
  /**
   * The backend that runs: the one asked for, except `'epoll'` where `'io_uring'` was asked for
   * and the kernel refused it.
   */
  readonly backend: BackendName;
  /** @internal Whether a Reactor drives this multiplexer (Watcher._driven); set by the Reactor. */
  _driven = false;
  /** @internal Whether the backend receives for TCP sockets (Watcher._receives). */
  readonly _receives: boolean;
  /** @internal Whether the backend sends for TCP sockets (Watcher._sends). */
  readonly _sends: boolean;
  /** @internal Whether the backend accepts for listeners (Watcher._accepts). */
  readonly _accepts: boolean;
  /** Whether the backend watches eventfds (Wakers) apart: their bits carry EVENTFD. */
  readonly #eventfds: boolean;
  /** @internal How many readiness reports the kernel gave in the last `wait` (before filtering). */
  _lastReadyCount = 0;
  /** Whether each event of the last wait had its target still watched when wait returned. */
  readonly #watchedAtWait: boolean[] = [];
  /** How many of `#events` this wait has filled (the array is truncated to it as the wait returns). */
  #eventCount = 0;

  /**
   * @internal Set by a Reactor while it hands the events of the last wait to handlers: a wait
   * now would refill the very array it iterates, so `wait` refuses.
   */
  _dispatching = false;

  /** @internal Called after the number of watched objects changed (the Reactor's ref count). */
  _onSizeChange: (() => void) | null = null;

  /**
   * The receive buffer shared by this multiplexer's sockets: `socket.receive()` without a buffer
   * reads into it, and you may pass it to `receiveInto` yourself. Its contents are valid until the
   * next receive into it.
   */
  readonly receiveBuffer: Uint8Array;

  constructor(options: MultiplexerOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const maxEvents = options.maxEvents === undefined ? 256 : checkInteger('options.maxEvents', options.maxEvents, 1, 65536);
    const bufferSize =
      options.receiveBufferSize === undefined ? 64 * 1024 : checkInteger('options.receiveBufferSize', options.receiveBufferSize, 1, 2 ** 30);
    const [backend, name] = createBackend(options.backend ?? 'epoll', maxEvents, ringPathsOf(options));
    this.#backend = backend;
    this.backend = name;
    this._receives = backend.receives === true;
    this._sends = backend.sends === true;
    this._accepts = backend.accepts === true;
    this.#eventfds = backend.eventfds === true;
    this.maxEvents = maxEvents;
    this.receiveBuffer = new Uint8Array(bufferSize);
    // The epoll fd is ours to close; a poll backend holds no fd. An io_uring's ring fd is closed
    // with its mappings (a mapping holds the ring, and the ring the files of its requests).
    if (backend.fd >= 0) track(this, backend.fd, 'multiplexer');
    else if (backend.ringFd !== undefined) track(this, backend.ringFd, 'multiplexer', () => backend.close());
  }

  /** The epoll fd (for watching the multiplexer itself from another loop), or -1 (poll and io_uring backends, or closed). */
  get fd(): number {
    return this.#backend === null ? -1 : this.#backend.fd;
  }

  /**
   * Whether TCP sockets are read by the io_uring backend's multishot receives (`ringReceive`, on a
   * kernel that has them: Linux 6.1 with DEFER_TASKRUN); false on epoll and poll.
   */
  get ringReceive(): boolean {
    return this._receives && this.#backend !== null;
  }

  /**
   * Whether listeners' connections are taken by the io_uring backend's multishot accepts
   * (`ringAccept`, on a kernel with DEFER_TASKRUN: Linux 6.1); false on epoll and poll.
   */
  get ringAccept(): boolean {
    return this._accepts && this.#backend !== null;
  }

  /**
   * Whether TCP sockets' send queues are sent by the io_uring backend's ring entries (`ringSend`,
   * on a kernel with DEFER_TASKRUN: Linux 6.1); false on epoll and poll.
   */
  get ringSend(): boolean {
    return this._sends && this.#backend !== null;
  }

  /** How many objects are watched. */
  get size(): number {
    return this.#size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#backend === null;
  }

  /** Starts watching `target` for `interest` (default `Interest.READABLE`). `data` comes back with its events. */
  add(target: MultiplexerTarget, ...rest: MultiplexerAddArguments<D>): void;
  add(target: MultiplexerTarget, interest: number = READABLE, data?: D): void {
    const backend = this.#open('add');
    checkTarget(target);
    checkInterest(interest);
    if (target._watcher === this) throw invalidValue('target', 'is already in this multiplexer; use modify() to change its interest');
    if (target._watcher !== null) throw invalidValue('target', 'is already in another multiplexer; remove it there first');
    const reused = this.#freeSlots.pop();
    const slot = reused ?? this.#targets.length;
    const generation = (this.#generations[slot] ?? 0) >>> 0;
    const bits = this.#bitsOf(target, interest);
    try {
      if (bits !== DORMANT) backend.add(target.fd, slot, generation, bits);
    } catch (err) {
      if (reused !== undefined) this.#freeSlots.push(reused); // the kernel refused it (EPERM, ENOMEM): the slot is still free
      throw err;
    }
    this.#targets[slot] = target;
    this.#generations[slot] = generation;
    this.#interest[slot] = interest;
    this.#registered[slot] = bits;
    this.#data[slot] = data;
    target._watcher = this satisfies Watcher;
    target._slot = slot;
    if (target._deadlinePending()) this.#watchDeadline(target);
    this.#noteHolder(target);
    this.#size++;
    this._onSizeChange?.();
  }

  /** Changes what `target` is watched for; replaces its data when `data` is given. */
  modify(target: MultiplexerTarget, interest: number, data?: D): void {
    this.#open('modify');
    const slot = this.#slotOf(target);
    checkInterest(interest);
    this.#interest[slot] = interest;
    if (arguments.length > 2) this.#data[slot] = data;
    this._update(target);
  }

  /** Stops watching `target` (it stays open). */
  remove(target: MultiplexerTarget): void {
    this.#open('remove');
    this.#slotOf(target);
    this._forget(target);
  }

  /** @internal The interest `target` is watched for (it must be watched by this multiplexer). */
  _interestOf(target: Watchable): number {
    return this.#interest[target._slot];
  }

  /** Whether `target` is watched by this multiplexer. */
  has(target: MultiplexerTarget): boolean {
    return target !== null && typeof target === 'object' && target._watcher === this;
  }

  /**
   * Waits for readiness up to `timeoutMs` (default 0: just look; negative: forever; fractions
   * round up to whole ms) and returns the events, after doing the multiplexer's own work: send
   * queues of writable sockets flushed, graceful closes completed, connects finished. A signal
   * does not cut the wait short (EINTR is retried with the time that remains).
   *
   * A failure of one socket's own work (its flush meets ENOBUFS, ETOOMANYREFS, a reset...) is
   * reported on that socket (`socket.error` and its event's `error`), never thrown, and the other
   * targets are served as usual. `wait` throws only when the kernel's wait itself fails, which
   * for a correct caller only poll(2) does (ENOMEM, the `'poll'` backend); the next wait may
   * succeed.
   *
   * The returned array and its event objects are reused by the next call. A Reactor's handler
   * may not call it (the reactor is still iterating that array): it throws `ERR_INVALID_STATE`.
   */
  wait(timeoutMs = 0): readonly MultiplexerEvent<MultiplexerTarget, D>[] {
    const backend = this.#open('wait');
    if (this._dispatching) throw invalidState('Multiplexer.wait() cannot be called from a reactor handler: the reactor is still delivering the events of the last wait');
    let timeout = timeoutOf(timeoutMs);
    if (this.#timed.length > 0) {
      const untilDeadline = Math.max(0, Math.ceil(this._nextDeadline() - performance.now()));
      timeout = timeout < 0 ? untilDeadline : Math.min(timeout, untilDeadline);
    }
    if (this.#holders.length > 0 && this.#holdersReadable()) timeout = 0;
    if (this.#departed.length > 0) timeout = 0;
    const count = backend.wait(timeout);
    this._lastReadyCount = count;
    const events = this.#events;
    this.#eventCount = 0;
    for (let i = 0; i < count; i++) {
      const slot = backend.slotAt(i);
      const target = this.#targets[slot];
      if (target == null || this.#generations[slot] !== backend.generationAt(i)) continue;
      const data = this.#data[slot];
      const report = target._ready(backend.bitsAt(i), this.#interest[slot]);
      if (report !== 0) this.#push(target, report, data);
    }
    if (this.#timed.length > 0) this.#expireDeadlines();
    if (this.#holders.length > 0) this.#reportHolders();
    if (this.#departed.length > 0) this.#reportDeparted();
    // Truncated only when the count changed: `length = 0` every wait would drop the array's
    // backing store and make the pushes of the next wait allocate a new one.
    if (events.length !== this.#eventCount) events.length = this.#eventCount;
    return events;
  }

  /** Whether a holder is watched for reading (and so to be reported at once). */
  #holdersReadable(): boolean {
    for (const target of this.#holders) {
      if (target._watcher === this && target._heldInput() && (this.#interest[target._slot] & READABLE) !== 0) return true;
    }
    return false;
  }

  /** Reports holders readable (once per wait: merged into an event of theirs if the backend gave one). */
  #reportHolders(): void {
    const holders = this.#holders;
    const events = this.#events;
    for (let i = holders.length - 1; i >= 0; i--) {
      const target = holders[i];
      if (target._watcher !== this || !target._heldInput()) {
        holders.splice(i, 1);
        continue;
      }
      if ((this.#interest[target._slot] & READABLE) === 0) continue;
      let merged = false;
      for (let e = 0; e < this.#eventCount && !merged; e++) {
        if (events[e].target === target) events[e].readable = merged = true;
      }
      if (!merged) this.#push(target, READABLE, this.#data[target._slot]);
    }
  }

  /**
   * Reports the targets that left with an error (unless a `_ready` of this wait reported it
   * already): a graceful close whose last sends failed, its connection gone, so with a hangup,
   * as epoll reports it (EPOLLHUP comes with the error there; a ring's failed send says nothing).
   */
  #reportDeparted(): void {
    const departed = this.#departed;
    for (let i = 0; i < departed.length; i++) {
      if (departed[i]._hasUnreported()) this.#push(departed[i], ERROR | HANGUP, this.#departedData[i]);
    }
    departed.length = 0;
    this.#departedData.length = 0;
  }

  /** Starts reporting `target` as a holder if it has bytes handed over (see `#holders`). */
  #noteHolder(target: Watchable): void {
    if (target._heldInput() && !this.#holders.includes(target)) this.#holders.push(target);
  }

  /** @internal When the next deadline falls due (performance.now() time), or Infinity. */
  _nextDeadline(): number {
    let next = Infinity;
    for (const target of this.#timed) if (target._deadline < next) next = target._deadline;
    return next;
  }

  /** Starts keeping the time of `target`'s deadline (once: `_timed` marks it). */
  #watchDeadline(target: Watchable): void {
    if (target._timed) return;
    target._timed = true;
    this.#timed.push(target);
  }

  /** Calls back the targets whose deadline has come (reporting what they say), and forgets those that no longer want one. */
  #expireDeadlines(): void {
    const now = performance.now();
    const timed = this.#timed;
    for (let i = timed.length - 1; i >= 0; i--) {
      const target = timed[i];
      const live = target._watcher === this && target._deadlinePending();
      if (live && now < target._deadline) continue;
      timed.splice(i, 1);
      target._timed = false;
      if (!live) continue;
      const data = this.#data[target._slot];
      const report = target._deadlinePassed();
      if (target._watcher !== this) continue;
      if (report !== 0) this.#push(target, report, data);
      if (target._deadlinePending()) this.#watchDeadline(target); // it asked for another
    }
  }

  #push(target: Watchable, report: number, data: D | undefined): void {
    const at = this.#eventCount++;
    const event = (this.#eventPool[at] ??= newEvent<D>());
    event.target = target as MultiplexerTarget;
    event.readable = (report & READABLE) !== 0;
    event.writable = (report & WRITABLE) !== 0;
    event.hangup = (report & HANGUP) !== 0;
    event.error = (report & ERROR) !== 0 ? (target._takeError() as SocketError | null) : null;
    // undefined only for a target added without data, which MultiplexerAddArguments allows only
    // when D admits undefined.
    event.data = data as D;
    this.#watchedAtWait[at] = target._watcher === this;
    this.#events[at] = event;
  }

  /**
   * Closes the multiplexer. Watched sockets and listeners stay open and can join another
   * multiplexer, except sockets already closing gracefully: they get one last flush and are
   * then closed, since nothing would drive them any more; bytes that flush could not send are
   * reported lost (`socket.error`: ECANCELED, with `unsentBytes`; a datagram socket's
   * `lastError`), and a TCP peer is reset (ECONNRESET there, not an end that would pass the cut
   * stream off as whole; the reset also drops what the kernel had taken but not delivered). Never throws.
   */
  close(): void {
    const backend = this.#backend;
    if (backend === null) return;
    this.#backend = null;
    const orphans: Watchable[] = [];
    // Bytes the backend received for sockets that stay open are theirs: handed over first (and
    // the sends it makes for them settle: see Backend.finish).
    const handOver = backend.release !== undefined;
    if (handOver) backend.finish?.();
    for (let slot = 0; slot < this.#targets.length; slot++) {
      const target = this.#targets[slot];
      if (target == null) continue;
      if (handOver) this.#handOver(backend, target, slot);
      this.#targets[slot] = null;
      target._watcher = null;
      target._slot = -1;
      orphans.push(target);
    }
    this.#size = 0;
    for (const target of this.#timed) target._timed = false;
    this.#timed.length = 0;
    this.#holders.length = 0;
    this.#departed.length = 0;
    this.#departedData.length = 0;
    this.#eventPool.length = 0;
    this.#events.length = 0;
    this.#eventCount = 0;
    try {
      backend.close();
    } catch {
      // close(2) of the epoll fd failed (EIO): Linux has released the fd all the same, and
      // nothing here could use the error. The orphans below must be finished whatever.
    }
    // After the close, not before: the backend forgets its fd for teardown itself, just before
    // close(2), and an io_uring's close has much to do first (a worker terminated in that while
    // left the ring fd open: 16 of 100, found from outside).
    if (backend.fd >= 0 || backend.ringFd !== undefined) untrack(this);
    // A socket closing gracefully gets its last flush, whose failure is reported on the socket
    // (socket.error), and is destroyed. Every orphan is finished even if one throws.
    let failure: unknown = null;
    for (const target of orphans) {
      try {
        target._orphaned();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== null) throw failure;
  }

  /** Calls `close()`: `using` scopes end with it. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal The fd a Reactor watches: readable when `wait(0)` has something to do (-1 once closed). */
  _wakeFd(): number {
    const backend = this.#open('watch');
    return backend.wakeFd === undefined ? backend.fd : backend.wakeFd();
  }

  /**
   * @internal An fd a Reactor watches beside `_wakeFd()`, readable while a watched Waker is
   * (see Backend.eventfdsFd), or -1 where `_wakeFd()` says it all.
   */
  _eventfdsFd(): number {
    const backend = this.#open('watch');
    return backend.eventfdsFd === undefined ? -1 : backend.eventfdsFd();
  }

  /** @internal Before sleeping on `_wakeFd()`: true if events are ready now (see Backend.settle). */
  _settle(): boolean {
    const backend = this.#backend;
    if (backend === null) return false;
    const ready = backend.settle !== undefined && backend.settle();
    return ready || this.#departed.length > 0 || (this.#holders.length > 0 && this.#holdersReadable());
  }

  /** @internal Makes `_wakeFd()` readable again (a Reactor yielding with work left). */
  _poke(): void {
    this.#backend?.poke?.();
  }

  /** @internal Whether the target of event `index` of the last wait was still watched when wait returned. */
  _watchedAtWait(index: number): boolean {
    return this.#watchedAtWait[index] === true;
  }

  /** @internal */
  _update(target: Watchable): void {
    const backend = this.#backend;
    if (backend === null) return;
    if (target._deadline > 0 && !target._timed && target._deadlinePending()) this.#watchDeadline(target);
    const slot = target._slot;
    const bits = this.#bitsOf(target, this.#interest[slot]);
    const registered = this.#registered[slot];
    if (bits === registered) return;
    if (registered === DORMANT) this.#noteHolder(target);
    if (bits === DORMANT) {
      backend.remove(target.fd, slot);
      this.#handOver(backend, target, slot);
      this.#noteHolder(target);
    } else if (registered === DORMANT) backend.add(target.fd, slot, this.#generations[slot], bits);
    else backend.modify(target.fd, slot, this.#generations[slot], bits);
    this.#registered[slot] = bits;
  }

  /** @internal */
  _forget(target: Watchable): void {
    const slot = target._slot;
    const fd = target.fd;
    const registered = this.#backend !== null && this.#registered[slot] !== DORMANT;
    if (this.#backend !== null && target._leavesReport()) {
      this.#departed.push(target);
      this.#departedData.push(this.#data[slot]);
    }
    this.#targets[slot] = null;
    this.#data[slot] = undefined;
    this.#registered[slot] = DORMANT;
    this.#generations[slot] = (this.#generations[slot] + 1) >>> 0;
    this.#freeSlots.push(slot);
    if (target._timed) {
      // Free to join another multiplexer, which must see its deadline afresh.
      this.#timed.splice(this.#timed.indexOf(target), 1);
      target._timed = false;
    }
    target._watcher = null;
    target._slot = -1;
    this.#size--;
    // The kernel last: if epoll_ctl fails, the target has left all the same (the new generation
    // drops any event still reported for the old one), and a socket being destroyed goes on to
    // close its fd, which leaves the epoll set by itself.
    try {
      if (registered) {
        this.#backend!.remove(fd, slot);
        this.#handOver(this.#backend!, target, slot);
      }
    } finally {
      this._onSizeChange?.();
    }
  }

  /** @internal See Watcher._received. */
  _received(target: Watchable, into: Uint8Array | null): number {
    const backend = this.#backend;
    if (backend === null || backend.receive === undefined) return HELD_NONE;
    return backend.receive(target._slot, into, this.receiveBuffer);
  }

  /** @internal See Watcher._receivedView. */
  get _receivedView(): Uint8Array {
    return this.#backend?.view ?? EMPTY;
  }

  /** @internal See Watcher._sendSoon. */
  _sendSoon(target: Watchable): void {
    const backend = this.#backend;
    if (backend === null) return;
    // Out of the kernel set (a hangup reported, nothing queued then): back in, as the queue's
    // write interest would bring it back on epoll.
    if (this.#registered[target._slot] === DORMANT) this._update(target);
    backend.sendSoon?.(target._slot, target);
  }

  /** @internal See Watcher._sendNow. */
  _sendNow(target: Watchable): void {
    const backend = this.#backend;
    if (backend === null) return;
    if (this.#registered[target._slot] === DORMANT) this._update(target);
    backend.sendNow?.(target._slot, target);
  }

  /** @internal See Watcher._accepted. */
  _accepted(target: Watchable): number {
    const backend = this.#backend;
    if (backend === null || backend.accept === undefined) return HELD_NONE;
    return backend.accept(target._slot);
  }

  /** @internal See Watcher._acceptedErrno. */
  _acceptedErrno(): number {
    return this.#backend?.acceptErrno?.() ?? 0;
  }

  /** @internal See Watcher._receivedErrno. */
  _receivedErrno(target: Watchable): number {
    return this.#backend?.receiveErrno?.(target._slot) ?? 0;
  }

  /** The target's bits for the backend: its interest, with RECEIVES (ACCEPTS) where the backend may read (accept) for it. */
  #bitsOf(target: Watchable, interest: number): number {
    const bits = target._internalInterest(interest);
    if (bits === DORMANT) return bits;
    if (this.#eventfds && target._eventfd()) return bits | EVENTFD;
    if ((bits & READABLE) === 0) return bits;
    if (this._receives && target._receivable()) return bits | RECEIVES;
    if (this._accepts && target._acceptable()) return bits | ACCEPTS;
    return bits;
  }

  /** After the backend let go of a slot: what it had received (accepted) for the target goes to the target. */
  #handOver(backend: Backend, target: Watchable, slot: number): void {
    const fds = backend.releaseAccepted?.(slot) ?? null;
    if (fds !== null) target._adoptAccepted(fds);
    const held = backend.release?.(slot) ?? null;
    if (held !== null) target._adoptReceived(held.bytes, held.errno);
  }

  #open(operation: string): Backend {
    if (this.#backend === null) throw new SocketClosedError('multiplexer', operation);
    return this.#backend;
  }

  #slotOf(target: MultiplexerTarget): number {
    checkTarget(target);
    if (target._watcher !== this) throw invalidValue('target', 'is not in this multiplexer');
    return target._slot;
  }
}

function checkTarget(target: unknown): asserts target is MultiplexerTarget {
  if (!(target instanceof Watchable)) throw invalidType('target', 'a Socket, a Listener, a DatagramSocket, a SeqpacketListener or a Waker', target);
  if (target.fd < 0) throw new SocketClosedError(target._kind, 'multiplexer');
}

function checkInterest(interest: unknown): void {
  checkInteger('interest', interest, 0, READABLE | WRITABLE);
}
