/**
 * Eventfds (Wakers) for the io_uring backend (io-uring.ts): watched by an epoll set of the
 * backend's own, not by ring polls. The backend keeps the slots; this file knows the set.
 *
 * ## Why not a ring poll
 * A ring poll on an eventfd completes from inside the write that wakes it (`waker.wake()`, on any
 * thread): the poll's task work is queued in the writer's eventfd wake-up, where the kernel lets
 * no other eventfd be signalled (eventfd_signal_allowed() is false). io_uring then defers the
 * signal of its registered eventfd, the one a Reactor sleeps on, to an RCU callback, and marks
 * that with a bit (IO_EVENTFD_OP_SIGNAL_BIT in io_uring/eventfd.c) that nothing clears (Linux 6.18
 * here): after the first deferred signal, none comes again for the ring. A Reactor missed every
 * wake but the first (test/waker.test.ts; the one that came took an RCU grace period, 13-28 ms).
 *
 * An epoll set does not go through io_uring's eventfd at all:
 * - Under a Reactor, the event loop watches the set (`fd`) beside the registered eventfd, and a
 *   wake makes it readable directly (epoll's own wake-up chain).
 * - In a blocking `wait`, one one-shot ring poll on the set (user_data EVENTFDS) completes when
 *   a member is readable: its task work wakes the waiting io_uring_enter directly, no eventfd
 *   involved. It is armed again at each turn while the set has members, as the slots' polls are.
 *   A worker's ring that accepts sleeps in poll(2) instead (io-uring-wake.ts), which watches the
 *   set itself (`membersFd`); the ring poll completes in the enter that follows.
 * Either way its completion (or the Reactor's own turn) makes `collect` read the set with
 * epoll_wait(0): level-triggered, so a Waker whose counter is still unread is found again.
 */
import {
  EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN, IORING_OP_POLL_ADD, POLLIN,
} from '../../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../../ffi/layouts.ts';
import { closeFd, sys } from '../../../ffi/syscall.ts';
import { closeAtTeardown, keepAtTeardown } from '../../../ffi/teardown.ts';
import { READABLE } from '../../core/watch.ts';
import type { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';

/** user_data low word of the set's ring poll (beside IGNORE, 0xffffffff: no slot comes near). */
export const EVENTFDS = 0xfffffffe;
/** Events read from the set per `collect`; more stay readable (level-triggered) for the next. */
const BATCH = 64;
const EVENT_SIZE = SIZEOF.epoll_event;
const EVENTS_AT = OFFSETOF.epoll_event.events;
const DATA_AT = OFFSETOF.epoll_event.data;

export class RingEventfds {
  readonly #ring: Ring;
  readonly #note: (slot: number, bits: number) => void;
  /** The epoll set, made with the first member or when a Reactor asks for it; -1 before. */
  #fd = -1;
  /** Per slot: 1 if it is a member. */
  #members: Uint8Array;
  #count = 0;
  /** Whether the set's ring poll is queued or in the kernel, and its sequence (user_data high word). */
  #armed = false;
  #seq = 0;
  readonly #control = new Uint8Array(EVENT_SIZE);
  readonly #controlView = new DataView(this.#control.buffer);
  readonly #events = new Uint8Array(EVENT_SIZE * BATCH);
  readonly #eventsView = new DataView(this.#events.buffer);

  constructor(ring: Ring, note: (slot: number, bits: number) => void, slots: number) {
    this.#ring = ring;
    this.#note = note;
    this.#members = new Uint8Array(slots);
  }

  grow(length: number): void {
    this.#members = grownTo(this.#members, length);
  }

  /** The set's fd, made now if need be (a Reactor watches it). */
  get fd(): number {
    if (this.#fd < 0) {
      this.#fd = sys.epoll_create1(EPOLL_CLOEXEC);
      closeAtTeardown(this.#fd); // a worker that ends with its ring open (see ffi/teardown.ts)
    }
    return this.#fd;
  }

  /** The set's fd if it has members, else -1 (what a sleep in poll(2) watches beside the ring's eventfd). */
  get membersFd(): number {
    return this.#count > 0 ? this.#fd : -1;
  }

  /** Whether `slot` is a member (its fd watched here, its poll never reading). */
  has(slot: number): boolean {
    return this.#members[slot] === 1;
  }

  /** A slot was added: a member when its bits carry EVENTFD (then its poll does not read; the caller submits). Call it first: it may throw (EMFILE). */
  attach(slot: number, fd: number, member: boolean, reading: boolean): void {
    if (member) {
      this.#control_(EPOLL_CTL_ADD, fd, slot, reading); // first: a failure leaves nothing behind
      this.#count++;
      this.#arm();
    }
    this.#members[slot] = member ? 1 : 0;
  }

  /** A member's interest changed: watched for reading or for nothing. */
  want(slot: number, fd: number, reading: boolean): void {
    if (this.#members[slot] === 1) this.#control_(EPOLL_CTL_MOD, fd, slot, reading);
  }

  /** A slot leaves (its fd still open): out of the set at once. */
  detach(slot: number, fd: number): void {
    if (this.#members[slot] !== 1) return;
    this.#members[slot] = 0;
    this.#count--;
    sys.epoll_ctl(this.#fd, EPOLL_CTL_DEL, fd, this.#control);
  }

  /** The POLL* bits a slot's ring poll waits for: a member's reading is the set's. */
  pollMask(slot: number, events: number): number {
    return this.#members[slot] === 1 ? events & ~POLLIN : events;
  }

  /** Start of a turn: the set's poll armed again if it fired and the set has members. */
  rearm(): void {
    if (!this.#armed && this.#count > 0) this.#arm();
  }

  /** The set's poll completed (user_data high word `seq`): read the set. */
  completed(seq: number): void {
    if (seq !== this.#seq) return; // cancelled at close
    this.#armed = false;
    this.collect();
  }

  /** Notes READABLE for every member readable now (no wait). */
  collect(): void {
    if (this.#count === 0) return;
    const view = this.#eventsView;
    const found = sys.epoll_wait(this.#fd, this.#events, BATCH, 0);
    for (let i = 0; i < found; i++) {
      const at = i * EVENT_SIZE;
      if ((view.getUint32(at + EVENTS_AT, true) & EPOLLIN) !== 0) this.#note(view.getUint32(at + DATA_AT, true), READABLE);
    }
  }

  /** The ring is closed (its polls cancelled): the set goes too. */
  close(): void {
    this.#members.fill(0);
    this.#count = 0;
    this.#armed = false;
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      keepAtTeardown(fd);
      closeFd(fd);
    }
  }

  /** Queues the set's one-shot poll for POLLIN. */
  #arm(): void {
    if (this.#armed) return;
    this.#seq = (this.#seq + 1) >>> 0;
    this.#ring.prepare(this.#ring.entry(), IORING_OP_POLL_ADD, this.fd, 0, POLLIN, EVENTFDS, this.#seq);
    this.#armed = true;
  }

  #control_(op: number, fd: number, slot: number, reading: boolean): void {
    const view = this.#controlView;
    view.setUint32(EVENTS_AT, reading ? EPOLLIN : 0, true);
    view.setUint32(DATA_AT, slot, true);
    view.setUint32(DATA_AT + 4, 0, true);
    sys.epoll_ctl(this.fd, op, fd, this.#control);
  }
}
