/**
 * An async iterator over what a watched object yields when it is ready (a listener's
 * connections, a datagram socket's datagrams), driven by a Reactor and read only while someone
 * waits: between `next()` calls, what arrives stays in the kernel (the backlog, the receive
 * buffer), which is the backpressure. `accepts` and `receiveDatagrams` are this with a `take`.
 */
import { Interest, type MultiplexerTarget } from '../loop/multiplexer-types.ts';
import type { Reactor } from '../loop/reactor.ts';
import { watchAbort } from '../core/abort-watch.ts';

interface Waiter<T> {
  ok(result: IteratorResult<T>): void;
  fail(err: unknown): void;
}

/** What the iterator reads from: `take` one item or null when none is ready; `open` while it can yield. */
export interface ReadySource<T> {
  target: MultiplexerTarget;
  take(): T | null;
  open(): boolean;
}

export class ReadyIterator<T> implements AsyncIterableIterator<T>, AsyncDisposable {
  readonly #source: ReadySource<T>;
  readonly #reactor: Reactor;
  readonly #waiters: Waiter<T>[] = [];
  #done = false;
  #armed = false;
  readonly #onAbort = (): void => this.#finish();
  #unwatch: (() => void) | undefined;
  #unhookReactor: (() => void) | undefined;
  readonly #handler = (): void => this.#onReady();

  constructor(source: ReadySource<T>, reactor: Reactor, signal: AbortSignal | undefined) {
    this.#source = source;
    this.#reactor = reactor;
    if (signal?.aborted || !source.open()) {
      this.#done = true;
      return;
    }
    // Watched for nothing until someone waits: what is ready stays in the kernel meanwhile.
    if (reactor.multiplexer.has(source.target)) reactor.modify(source.target, Interest.NONE, this.#handler);
    else reactor.add(source.target, this.#handler, Interest.NONE);
    if (signal !== undefined) this.#unwatch = watchAbort(signal, this.#onAbort);
    // A closed reactor reports nothing more: pending next() calls answer done (found from outside:
    // they stayed pending for good).
    this.#unhookReactor = reactor._onClose(() => this.#finish());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#done || !this.#source.open()) {
      this.#finish();
      return Promise.resolve({ done: true, value: undefined });
    }
    if (this.#waiters.length === 0) {
      try {
        const item = this.#source.take();
        if (item !== null) return Promise.resolve({ done: false, value: item });
      } catch (err) {
        this.#finish();
        return Promise.reject(err);
      }
    }
    return new Promise((ok, fail) => {
      this.#waiters.push({ ok, fail });
      this.#arm(true);
    });
  }

  /** Ends the iteration: pending `next()` calls answer `done`; the target leaves the reactor, open. */
  return(): Promise<IteratorResult<T>> {
    this.#finish();
    return Promise.resolve({ done: true, value: undefined });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#finish();
  }

  #onReady(): void {
    const waiters = this.#waiters;
    if (!this.#source.open()) {
      this.#finish();
      return;
    }
    while (waiters.length > 0) {
      let item: T | null;
      try {
        item = this.#source.take();
      } catch (err) {
        const first = waiters.shift()!;
        this.#finish();
        first.fail(err);
        return;
      }
      if (item === null) return; // spurious or raced: level-triggered, we hear again
      waiters.shift()!.ok({ done: false, value: item });
    }
    this.#arm(false); // nobody waiting: leave the rest in the kernel
  }

  #arm(on: boolean): void {
    if (this.#armed === on || this.#done) return;
    this.#armed = on;
    if (this.#reactor.multiplexer.has(this.#source.target)) this.#reactor.modify(this.#source.target, on ? Interest.READABLE : Interest.NONE);
  }

  #finish(): void {
    if (this.#done && this.#waiters.length === 0) return;
    this.#done = true;
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#unhookReactor?.();
    this.#unhookReactor = undefined;
    const reactor = this.#reactor;
    if (!reactor.closed && reactor.multiplexer.has(this.#source.target)) reactor.remove(this.#source.target);
    for (const waiter of this.#waiters.splice(0)) waiter.ok({ done: true, value: undefined });
  }
}
