/**
 * Reactor: drives a Multiplexer from Node's event loop, with no thread and no busy loop. libuv
 * watches the epoll fd itself (it becomes readable when any watched socket is ready); when it
 * fires, the reactor drains the multiplexer with `wait(0)` and calls each target's handler.
 */
import { invalidState, invalidType, invalidValue, SocketClosedError, SocketError } from '../core/errors.ts';
import { Interest, Multiplexer, type MultiplexerEvent, type MultiplexerOptions, type MultiplexerTarget } from './multiplexer.ts';
import { raiseUncaught, watchReadable, type FdWatcher } from './uv-poll.ts';

/**
 * Called with each event of its target. The event object is reused after the call returns. An
 * exception it throws is an uncaught exception (as from an EventEmitter listener), raised as soon
 * as the reactor hands control back to the event loop; the other events are still delivered.
 * `T` is the target's type: the handler given to `reactor.add(socket, handler)` receives events
 * whose `target` is that Socket (and a listener's handler, that Listener).
 */
export type ReactorHandler<T extends MultiplexerTarget = MultiplexerTarget> = (event: MultiplexerEvent<T>) => void;

/** Options of a {@link Reactor}. An option left `undefined` takes its default. */
export interface ReactorOptions extends Omit<MultiplexerOptions, 'backend'> {
  /**
   * Kernel mechanism (default `'epoll'`): `'io_uring'` falls back to `'epoll'` where the kernel
   * refuses it (`reactor.multiplexer.backend` says which runs). `'poll'` has no fd for the event
   * loop to watch. Where the kernel signals a DEFER_TASKRUN ring's eventfd late (Linux 6.18.44:
   * about 16 ms per wake-up), an io_uring Reactor's ring is a plain one, without ring receive,
   * send or accept (`reactor.multiplexer.ringReceive` and the others say false).
   */
  backend?: 'epoll' | 'io_uring' | undefined;
  /** Most `wait(0)` rounds per wakeup before yielding to other work on the loop (default 16). */
  maxRounds?: number | undefined;
  /**
   * Busy-poll for latency-bound programs (default 0: off). After handling events, keep polling
   * with `wait(0)` until this many milliseconds pass with no event, instead of going back to
   * libuv at once: a reply that arrives meanwhile is handled without a wakeup. Costs a core
   * while traffic flows. One wakeup never spins longer than `busyPollBudgetMs`.
   */
  busyPollMs?: number | undefined;
  /** Longest time one wakeup may spend busy-polling, so timers and other I/O get a turn (default 10 ms). */
  busyPollBudgetMs?: number | undefined;
}

function msOption(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1000)) throw invalidValue(name, 'must be a number of milliseconds from 0 to 1000', value);
  return value;
}

/**
 * Runs handlers for socket and listener events on Node's event loop.
 *
 * The reactor keeps the process alive while it watches something (like a node:net server);
 * `unref()` lets the process exit anyway, and an empty reactor never holds it.
 */
export class Reactor {
  /**
   * The multiplexer this reactor drives. Add and remove targets through the reactor. Each
   * target's data is its handler (`ReactorHandler<never>`: a handler of some target type).
   */
  readonly multiplexer: Multiplexer<ReactorHandler<never>>;
  // Kept in a field on purpose: a collected poll handle closes itself and the loop forgets us.
  #watcher: FdWatcher | null;
  /**
   * io_uring: the Wakers' epoll set, watched beside the ring's eventfd, which the kernel may not
   * signal for a wake (see lib/loop/backends/io-uring-eventfds.ts). Made with the first Waker
   * added (a second watcher costs every wakeup an epoll_wait on the thread's hub), and never
   * referenced: `#watcher` keeps the process alive, this one only calls us.
   */
  #eventfdsWatcher: FdWatcher | null = null;
  #referenced = true;
  #maxRounds: number;
  #busyPollMs: number;
  #busyPollBudgetMs: number;
  /** One timer for the earliest connect timeout (libuv only wakes us for fd readiness). */
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  /**
   * Targets whose handler threw, and the pause (ms) they got. A handler that throws before it
   * reads leaves its socket readable, so level-triggered readiness would call it again at once,
   * forever: the process spins on exceptions. Such a target is muted instead (watched for
   * nothing, errors and hangups still reported) and restored after 1 ms, doubling each time it
   * throws again, up to 1 s; a call that returns normally forgets its pause.
   */
  readonly #backoff = new Map<MultiplexerTarget, number>();
  /** What `_onClose` registered: streams and pending promises that end when the reactor does. */
  readonly #closeHooks = new Set<() => void>();

  constructor(options: ReactorOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const maxRounds = options.maxRounds ?? 16;
    if (!Number.isInteger(maxRounds) || maxRounds < 1) throw invalidValue('options.maxRounds', 'must be an integer >= 1', maxRounds);
    this.#maxRounds = maxRounds;
    this.#busyPollMs = msOption('options.busyPollMs', options.busyPollMs, 0);
    this.#busyPollBudgetMs = msOption('options.busyPollBudgetMs', options.busyPollBudgetMs, 10);
    const { maxEvents, receiveBufferSize, ringReceive, ringSend, ringAccept } = options;
    const backend = options.backend ?? 'epoll';
    if (backend !== 'epoll' && backend !== 'io_uring') throw invalidValue('options.backend', "must be 'epoll' or 'io_uring'", backend);
    let multiplexer: Reactor['multiplexer'] = new Multiplexer({ maxEvents, receiveBufferSize, backend, ringReceive, ringSend, ringAccept, _promptWake: options._promptWake !== false });
    let wakeFd: number;
    try {
      wakeFd = multiplexer._wakeFd();
    } catch (err) {
      // io_uring without io_uring_register (a seccomp profile refusing it: EPERM) has no eventfd
      // for the event loop to watch: run epoll instead, as a refused io_uring_setup does.
      multiplexer.close();
      if (multiplexer.backend !== 'io_uring' || !(err instanceof SocketError)) throw err;
      multiplexer = new Multiplexer({ maxEvents, receiveBufferSize, backend: 'epoll' });
      wakeFd = multiplexer._wakeFd();
    }
    this.multiplexer = multiplexer;
    multiplexer._driven = true;
    this.#watcher = watchReadable(wakeFd, () => this.#drain());
    this.multiplexer._onSizeChange = () => this.#refreshRef();
    this.#refreshRef();
  }

  /** Watches `target` and calls `handler` with its events (default interest: readable). */
  add<T extends MultiplexerTarget>(target: T, handler: ReactorHandler<T>, interest: number = Interest.READABLE): void {
    if (typeof handler !== 'function') throw invalidType('handler', 'a function', handler);
    this.#live('add');
    this.multiplexer.add(target, interest, handler);
    if (target._eventfd() && this.#eventfdsWatcher === null) this.#watchEventfds(target);
    // Bytes received for it by another multiplexer's io_uring backend: readable now, which no
    // kernel fd will say.
    if (target._heldInput()) setImmediate(() => this.#watcher !== null && this.#drain());
    this.#armTimer();
  }

  /** Changes what `target` is watched for, and its handler when one is given. */
  modify<T extends MultiplexerTarget>(target: T, interest: number, handler?: ReactorHandler<T>): void {
    this.#live('modify');
    if (handler === undefined) this.multiplexer.modify(target, interest);
    else if (typeof handler !== 'function') throw invalidType('handler', 'a function', handler);
    else this.multiplexer.modify(target, interest, handler);
  }

  /** Stops watching `target` (it stays open). */
  remove(target: MultiplexerTarget): void {
    this.#live('remove');
    this.multiplexer.remove(target);
  }

  /** Keep the process alive while something is watched (the default). */
  ref(): this {
    this.#referenced = true;
    this.#refreshRef();
    return this;
  }

  /** Let the process exit even while something is watched. */
  unref(): this {
    this.#referenced = false;
    this.#refreshRef();
    return this;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#watcher === null;
  }

  /** Stops watching and closes the multiplexer (watched sockets stay open; see Multiplexer.close). */
  close(): void {
    const watcher = this.#watcher;
    if (watcher === null) return;
    this.#watcher = null;
    // What waits on this reactor (a stream, a pending connect, closeGracefully or next()) ends
    // now, while the multiplexer still holds its sockets: nothing else would ever settle it
    // (found from outside: streams silent for good, their fds open).
    const hooks = [...this.#closeHooks];
    this.#closeHooks.clear();
    for (const hook of hooks) {
      try {
        hook();
      } catch (err) {
        raiseUncaught(err);
      }
    }
    watcher.close();
    this.#eventfdsWatcher?.close();
    this.#eventfdsWatcher = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.multiplexer._onSizeChange = null;
    this.multiplexer.close();
  }

  /** Calls `close()`: `using` scopes end with it. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * @internal Runs `hook` once when `close()` is called (after `closed` turns true, before the
   * multiplexer closes); returns what takes it back. On a closed reactor, runs it at once.
   */
  _onClose(hook: () => void): () => void {
    if (this.#watcher === null) {
      hook();
      return () => {};
    }
    this.#closeHooks.add(hook);
    return () => this.#closeHooks.delete(hook);
  }

  /**
   * Handles everything ready now, up to `maxRounds` rounds of `wait(0)`; returns the number of
   * events handled. The loop calls this by itself; call it to poll by hand, but not from one of
   * this reactor's handlers (`ERR_INVALID_STATE`: the reactor is in the middle of a batch). A
   * handler's exception does not come out of `drain()`: it is an uncaught exception, as always.
   */
  drain(): number {
    this.#live('drain');
    if (this.multiplexer._dispatching) throw invalidState('Reactor.drain() cannot be called from a reactor handler: the reactor is still delivering a batch of events');
    return this.#drain();
  }

  #drain(): number {
    const handled = this.#drainBusy() + this.#settle();
    this.#armTimer();
    return handled;
  }

  /**
   * io_uring: before going back to libuv, submit what the handlers queued and make sure the
   * eventfd will be signalled for what comes next (Backend.settle); drain again while events are
   * ready, up to maxRounds turns, then poke the eventfd so that libuv calls again after its
   * other work. Returning with entries unsubmitted or task work pending would stall the ring.
   * epoll: settle answers false at once (its fd stays readable while anything is ready).
   */
  #settle(): number {
    const mux = this.multiplexer;
    let handled = 0;
    for (let turn = 0; !mux.closed && mux._settle(); turn++) {
      if (turn === this.#maxRounds) {
        mux._poke();
        break;
      }
      handled += this.#drainRounds();
    }
    return handled;
  }

  /** Schedules a drain when the earliest connect timeout falls due, if none is scheduled sooner. */
  #armTimer(): void {
    if (this.#watcher === null) return;
    const next = this.multiplexer._nextDeadline();
    if (next === this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = next;
    if (next === Infinity) return;
    // Unreferenced: while sockets are watched, the poll handle keeps the process alive anyway.
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      if (this.#watcher !== null) this.#drain();
    }, Math.max(0, Math.ceil(next - performance.now()))).unref();
  }

  #drainBusy(): number {
    let handled = this.#drainRounds();
    if (this.#busyPollMs === 0 || handled === 0) return handled;
    const start = performance.now();
    const budgetEnd = start + this.#busyPollBudgetMs;
    let idleEnd = start + this.#busyPollMs;
    for (let now = start; now < idleEnd && now < budgetEnd && !this.multiplexer.closed; now = performance.now()) {
      const count = this.#drainRounds();
      if (count > 0) {
        handled += count;
        idleEnd = performance.now() + this.#busyPollMs;
      }
    }
    return handled;
  }

  #drainRounds(): number {
    const mux = this.multiplexer;
    let handled = 0;
    for (let round = 0; round < this.#maxRounds && !mux.closed; round++) {
      const events = mux.wait(0);
      const count = events.length;
      // While handlers run, a nested wait would refill `events` under our feet: refused.
      mux._dispatching = true;
      try {
        // A handler may close the reactor (which empties the array): stop at once if it does.
        for (let i = 0; i < count && !mux.closed; i++) {
          const event = events[i];
          // An earlier handler of this batch may have closed or removed this event's target; an
          // event whose target had already left during wait() (a failed graceful close) still runs.
          if (event.target._watcher !== mux && mux._watchedAtWait(i)) continue;
          try {
            (event.data as ReactorHandler)(event);
            if (this.#backoff.size !== 0) this.#backoff.delete(event.target);
          } catch (error) {
            // The rest of the batch must still be delivered: wait() already did their one-off
            // work (an error handed over, a queue drained), which would be lost with them.
            raiseUncaught(error);
            this.#mute(event.target);
          }
        }
      } finally {
        mux._dispatching = false;
      }
      handled += count;
      // Fewer reports than fit: the kernel had nothing more. Anything left (or made ready by the
      // handlers) keeps the epoll fd readable, so libuv calls again: no need for another round.
      if (mux._lastReadyCount < mux.maxEvents) break;
    }
    return handled;
  }

  /** The first Waker came: watch the multiplexer's set of them, where it has one. */
  #watchEventfds(waker: MultiplexerTarget): void {
    try {
      const fd = this.multiplexer._eventfdsFd();
      if (fd < 0) return;
      const watcher = watchReadable(fd, () => this.#watcher !== null && this.#drain());
      watcher.unref();
      this.#eventfdsWatcher = watcher;
    } catch (err) {
      // Watched by the multiplexer with nothing to wake us for it: not added after all.
      this.multiplexer.remove(waker);
      throw err;
    }
  }

  /** Mutes a target whose handler threw, for its next pause (see `#backoff`). */
  #mute(target: MultiplexerTarget): void {
    const mux = this.multiplexer;
    if (mux.closed || target._watcher !== mux) return;
    const pause = Math.min(1000, Math.max(1, (this.#backoff.get(target) ?? 0) * 2));
    this.#backoff.set(target, pause);
    const interest = mux._interestOf(target);
    if (interest === Interest.NONE) return;
    mux.modify(target, Interest.NONE);
    setTimeout(() => {
      if (mux.closed || target._watcher !== mux) {
        this.#backoff.delete(target); // gone: nothing to restore, nothing to remember
        return;
      }
      // Restored only if nobody changed it meanwhile (the user's own modify wins).
      if (mux._interestOf(target) === Interest.NONE) mux.modify(target, interest);
    }, pause).unref();
  }

  #refreshRef(): void {
    const watcher = this.#watcher;
    if (watcher === null) return;
    if (this.#referenced && this.multiplexer.size > 0) watcher.ref();
    else watcher.unref();
  }

  #live(operation: string): void {
    if (this.#watcher === null) throw new SocketClosedError('reactor', operation);
  }
}
