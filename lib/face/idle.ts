/**
 * IdleTimeouts: closes (or reports) sockets that stay quiet too long, with one timer for all of
 * them, the way Node's own timers and libuv's keep one list per duration.
 *
 * Sockets with the same timeout sit in one list ordered by their last activity: activity moves
 * a socket to the tail (O(1), no timer touched), so the head is always the next to expire. One
 * Node timer, unref'd, is armed for the earliest head of all lists; when it fires, every expired
 * head is taken off and reported, and the timer is armed again for the new earliest. Activity
 * never re-arms the timer: it only makes deadlines later, and a timer that fires early just
 * re-arms.
 */
import { checkInteger, invalidType, invalidValue, SocketClosedError } from '../core/errors.ts';
import { Interest, type MultiplexerEvent } from '../loop/multiplexer-types.ts';
import { Reactor, type ReactorHandler } from '../loop/reactor.ts';
import { Socket } from '../stream/socket.ts';

/** Options of {@link IdleTimeouts}. */
export interface IdleTimeoutsOptions {
  /**
   * Called with each socket that had no activity for its timeout, once (it then leaves the
   * set; `add` or `touch` it again to keep timing it). Default: `socket.destroy()`.
   */
  onIdle?: ((socket: Socket, timeoutMs: number) => void) | undefined;
  /** The clock, in milliseconds (default `performance.now`). Tests pass a fake one. */
  now?: (() => number) | undefined;
}

interface Entry {
  socket: Socket;
  list: List;
  /** Last activity, by `now()`. */
  at: number;
  prev: Entry | null;
  next: Entry | null;
}

/** Every watched socket with one timeout, oldest activity first. */
interface List {
  timeoutMs: number;
  head: Entry | null;
  tail: Entry | null;
}

/**
 * Idle timeouts for the sockets of one reactor, sharing one timer (use one per reactor).
 *
 * `add(socket, handler, timeoutMs)` adds the socket to the reactor with a handler that counts
 * every event as activity (data, EOF, a drained queue, an error); `touch(socket)` counts
 * anything else you want to (after a `send`, say). A socket with no activity for `timeoutMs` is
 * handed to `onIdle` (default: destroyed). The timer never keeps the process alive by itself.
 */
export class IdleTimeouts {
  readonly #reactor: Reactor;
  readonly #onIdle: (socket: Socket, timeoutMs: number) => void;
  readonly #now: () => number;
  readonly #entries = new Map<Socket, Entry>();
  readonly #lists = new Map<number, List>();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #closed = false;

  constructor(reactor: Reactor, options: IdleTimeoutsOptions = {}) {
    if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    if (options.onIdle !== undefined && typeof options.onIdle !== 'function') throw invalidType('options.onIdle', 'a function', options.onIdle);
    if (options.now !== undefined && typeof options.now !== 'function') throw invalidType('options.now', 'a function', options.now);
    this.#reactor = reactor;
    this.#onIdle = options.onIdle ?? ((socket) => socket.destroy());
    this.#now = options.now ?? (() => performance.now());
  }

  /** How many sockets are timed. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Adds `socket` to the reactor (or replaces its handler there) with `handler`, and times it
   * out after `timeoutMs` without activity. Every event of the socket counts as activity.
   * Adding a timed socket again changes its handler and timeout and counts as activity.
   */
  add(socket: Socket, handler: ReactorHandler, timeoutMs: number, interest: number = Interest.READABLE): void {
    this.#live('add');
    if (!(socket instanceof Socket)) throw invalidType('socket', 'an instance of Socket', socket);
    if (typeof handler !== 'function') throw invalidType('handler', 'a function', handler);
    checkInteger('timeoutMs', timeoutMs, 1, 2 ** 31 - 1);
    const wrapped = (event: MultiplexerEvent): void => {
      const entry = this.#entries.get(socket);
      if (entry !== undefined) this.#touchEntry(entry);
      handler(event);
      if (entry !== undefined && socket.fd < 0) this.#drop(entry); // closed by its handler
    };
    if (this.#reactor.multiplexer.has(socket)) this.#reactor.modify(socket, interest, wrapped);
    else this.#reactor.add(socket, wrapped, interest);
    const old = this.#entries.get(socket);
    if (old !== undefined) this.#drop(old);
    const list = this.#listFor(timeoutMs);
    const entry: Entry = { socket, list, at: this.#now(), prev: null, next: null };
    this.#append(entry);
    this.#entries.set(socket, entry);
    this.#arm(entry.at + timeoutMs);
  }

  /** Counts as activity on `socket`: its timeout starts again. False when it is not timed here. */
  touch(socket: Socket): boolean {
    const entry = this.#entries.get(socket);
    if (entry === undefined) return false;
    this.#touchEntry(entry);
    return true;
  }

  /** Stops timing `socket` (it stays in the reactor, with its handler). False when it was not timed. */
  delete(socket: Socket): boolean {
    const entry = this.#entries.get(socket);
    if (entry === undefined) return false;
    this.#drop(entry);
    return true;
  }

  /** Whether `socket` is timed here. */
  has(socket: Socket): boolean {
    return this.#entries.has(socket);
  }

  /** Stops timing every socket (they stay open and in the reactor) and clears the timer. */
  close(): void {
    this.#closed = true;
    for (const entry of [...this.#entries.values()]) this.#drop(entry);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #touchEntry(entry: Entry): void {
    entry.at = this.#now();
    if (entry.list.tail === entry) return;
    this.#unlink(entry);
    this.#append(entry);
  }

  #listFor(timeoutMs: number): List {
    let list = this.#lists.get(timeoutMs);
    if (list === undefined) {
      list = { timeoutMs, head: null, tail: null };
      this.#lists.set(timeoutMs, list);
    }
    return list;
  }

  #append(entry: Entry): void {
    const list = entry.list;
    entry.prev = list.tail;
    entry.next = null;
    if (list.tail !== null) list.tail.next = entry;
    else list.head = entry;
    list.tail = entry;
  }

  #unlink(entry: Entry): void {
    const list = entry.list;
    if (entry.prev !== null) entry.prev.next = entry.next;
    else list.head = entry.next;
    if (entry.next !== null) entry.next.prev = entry.prev;
    else list.tail = entry.prev;
    entry.prev = entry.next = null;
  }

  #drop(entry: Entry): void {
    if (this.#entries.get(entry.socket) !== entry) return;
    this.#entries.delete(entry.socket);
    this.#unlink(entry);
    if (entry.list.head === null) this.#lists.delete(entry.list.timeoutMs);
  }

  /** Makes sure the timer fires by `deadline` (one timer: re-armed only for an earlier deadline). */
  #arm(deadline: number): void {
    if (this.#closed || deadline >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = deadline;
    // Unref'd: idle timing alone must never keep a process alive.
    this.#timer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(deadline - this.#now()))).unref();
  }

  #expire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#now();
    const expired: Entry[] = [];
    let next = Infinity;
    for (const list of this.#lists.values()) {
      while (list.head !== null && list.head.at + list.timeoutMs <= now) {
        const entry = list.head;
        this.#drop(entry);
        if (entry.socket.fd >= 0) expired.push(entry);
      }
      if (list.head !== null) next = Math.min(next, list.head.at + list.timeoutMs);
    }
    if (next !== Infinity) this.#arm(next);
    // Callbacks last: they may add, touch or close sockets (and so arm the timer) freely.
    for (const entry of expired) this.#onIdle(entry.socket, entry.list.timeoutMs);
  }

  #live(operation: string): void {
    if (this.#closed) throw new SocketClosedError('idle-timeout set', operation);
  }
}
