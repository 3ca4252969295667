/**
 * Completion-based accept for the io_uring backend (io-uring.ts): one multishot IORING_OP_ACCEPT
 * per listening socket that its user accepts from, and per slot the fds it brought, until the
 * listener takes them (`Listener.accept`). The backend keeps the slots and their polls; this file
 * knows accepts, nothing of polls.
 *
 * Only on DEFER_TASKRUN rings, for the reason the receiver gives (io-uring-receive.ts): the kernel
 * accepts only inside our own io_uring_enter, so an accept() that finds no fd held while the
 * multishot is armed knows that the connections there are come with the next turn (it answers
 * null, as accept4 would with EAGAIN), and one with nothing armed may call accept4 itself.
 *
 * - The kernel takes connections as they come, whether the user accepts or not: a listener that
 *   keeps reading but accepts slowly would hold every waiting connection as an fd, where epoll
 *   leaves them in the backlog (which bounds them and pushes back on clients). So at HELD_MAX fds
 *   held the multishot is cancelled: the listener is polled and accepts by accept4 (the backlog
 *   bounds it again) until it has taken half of them, then armed again. (One turn may bring a whole
 *   backlog at once: the kernel accepts every waiting connection before we see a completion.)
 * - Errors end the multishot (the kernel posts one without IORING_CQE_F_MORE): the errno is held
 *   after the fds, handed to the listener once (EMFILE makes it pause, as with accept4), and the
 *   slot is polled until the next turn arms it again.
 * - Leaving (the backend's remove): the accept is cancelled and its last completions taken in
 *   before remove returns; the multiplexer then takes the slot's fds (`release`) and hands them
 *   to the listener. An fd that reaches a slot no longer watched (or watched by a new owner) is
 *   closed: nothing else knows of it. Connections closed unaccepted are reset (refuse-connection.ts),
 *   as the kernel resets those it drops from a closing listener's backlog.
 * - In a worker thread, an fd held is closed at the worker's teardown (ffi/teardown.ts) until it
 *   is handed out: a worker terminated in the middle of a burst leaks none of the connections the
 *   kernel accepted for it.
 */
import {
  IORING_ACCEPT_MULTISHOT, IORING_CQE_F_MORE, IORING_OP_ACCEPT, IORING_OP_ASYNC_CANCEL, POLLIN, POLLRDHUP, SOCK_CLOEXEC, SOCK_NONBLOCK,
} from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import { closeAtTeardown, keepAtTeardown } from '../../../ffi/teardown.ts';
import { refuseConnection } from '../../core/refuse-connection.ts';
import { HELD_ERROR, HELD_NONE, HELD_WAIT, READABLE } from '../../core/watch.ts';
import type { ReceiverHost } from './io-uring-receive.ts';
import type { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';

/** user_data low word of an accept: the slot with this bit (polls have none, receives RECV_TAG, sends SEND_TAG). */
export const ACCEPT_TAG = 0x20000000;
/** user_data low word of cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
/** Most fds held for one listener before its multishot is cancelled (see the header). */
export const HELD_MAX = 128;
const ECANCELED = ERRNO.ECANCELED;

/** No accept in the kernel (armed at the next turn if wanted). */
const A_OFF = 0;
/** A multishot accept is queued or in the kernel. */
const A_ARMED = 1;
/** Ended by an error, or cancelled at HELD_MAX: polled, accept4 by the listener, until armed again. */
const A_POLLED = 2;

/** What the acceptor needs of the backend that owns the slots (the receiver's host: the same questions). */
export type AcceptorHost = ReceiverHost;

export class RingAcceptor {
  readonly #ring: Ring;
  readonly #host: AcceptorHost;
  /** Whether the slot's bits carry ACCEPTS. */
  #wants: Uint8Array;
  /** A_* state of the slot's accept, and the sequence of its current arm. */
  #state: Uint8Array;
  #seq: Uint16Array;
  /** The errno that ended the slot's multishot, not yet handed to its listener (0: none). */
  #errno: Int32Array;
  /** The fds accepted for each slot, oldest first (arrays kept once made). */
  readonly #fds: number[][] = [];
  /** Slots that hold fds or an errno (each once): reported readable at every wait while they do. */
  #holding: Uint8Array;
  readonly #holdingList: number[] = [];
  /** Slots polled after an error or at HELD_MAX: armed again at the next turn once they may. */
  readonly #polled: number[] = [];
  /** The errno `take` answered HELD_ERROR for. */
  errno = 0;

  constructor(ring: Ring, host: AcceptorHost, slots: number) {
    this.#ring = ring;
    this.#host = host;
    this.#wants = new Uint8Array(slots);
    this.#state = new Uint8Array(slots);
    this.#seq = new Uint16Array(slots);
    this.#errno = new Int32Array(slots);
    this.#holding = new Uint8Array(slots);
  }

  /** Makes room for slots below `length`. */
  grow(length: number): void {
    this.#wants = grownTo(this.#wants, length);
    this.#state = grownTo(this.#state, length);
    this.#seq = grownTo(this.#seq, length);
    this.#errno = grownTo(this.#errno, length);
    this.#holding = grownTo(this.#holding, length);
  }

  /** A slot was added: its accept armed if `wants`. */
  attach(slot: number, wants: boolean): void {
    this.#state[slot] = A_OFF;
    this.#errno[slot] = 0;
    this.#wants[slot] = wants ? 1 : 0;
    if (wants) this.#arm(slot);
  }

  /** A slot's interest changed: arm or cancel its accept. */
  want(slot: number, wants: boolean): void {
    if ((this.#wants[slot] === 1) === wants) return;
    this.#wants[slot] = wants ? 1 : 0;
    const state = this.#state[slot];
    if (wants && state === A_OFF) this.#arm(slot);
    else if (!wants && state === A_ARMED) this.#cancel(slot);
    else if (!wants && state === A_POLLED) this.#state[slot] = A_OFF;
  }

  /** A slot leaves: its accept's cancellation queued (the backend submits it). Whether one was armed. */
  detach(slot: number): boolean {
    const armed = this.#state[slot] === A_ARMED;
    if (armed) this.#cancel(slot);
    this.#wants[slot] = 0;
    this.#state[slot] = A_OFF;
    return armed;
  }

  /** Before close: every accept's cancellation queued (the backend submits them and takes in what they still post). */
  detachAll(): boolean {
    let any = false;
    for (let slot = 0; slot < this.#state.length; slot++) {
      if (this.#state[slot] === A_ARMED) {
        this.#cancel(slot);
        any = true;
      }
      this.#wants[slot] = 0;
      this.#state[slot] = A_OFF;
    }
    return any;
  }

  /** The POLL* bits the slot's poll waits for: `events`, less reading where an armed accept serves it. */
  pollMask(slot: number, events: number): number {
    return this.#wants[slot] === 1 && this.#state[slot] !== A_POLLED ? events & ~(POLLIN | POLLRDHUP) : events;
  }

  /**
   * What a listener's accept takes from its slot (Backend.accept): the oldest fd held; HELD_ERROR
   * once (the errno in `errno`) for the error that ended the multishot; HELD_WAIT when nothing is
   * held and the armed accept will bring what comes; HELD_NONE when none is armed (call accept4).
   */
  take(slot: number): number {
    if (slot >= this.#state.length) return HELD_NONE;
    const fds = this.#fds[slot];
    if (fds !== undefined && fds.length > 0) {
      const fd = fds.shift()!;
      keepAtTeardown(fd); // its new owner (a Socket) takes care of it from now on
      return fd;
    }
    const errno = this.#errno[slot];
    if (errno !== 0) {
      this.#errno[slot] = 0;
      this.errno = errno;
      return HELD_ERROR;
    }
    return this.#state[slot] === A_ARMED ? HELD_WAIT : HELD_NONE;
  }

  /** After the slot left: the fds it held (the caller owns them now), or null; its errno forgotten. */
  release(slot: number): number[] | null {
    if (slot >= this.#state.length) return null;
    this.#errno[slot] = 0;
    const fds = this.#fds[slot];
    if (fds === undefined || fds.length === 0) return null;
    const taken = fds.slice();
    fds.length = 0;
    for (const fd of taken) keepAtTeardown(fd);
    return taken;
  }

  /** Whether `slot` holds fds or an errno its listener has not taken. */
  holds(slot: number): boolean {
    if (!this.#host.isLive(slot) || slot >= this.#state.length) return false;
    const fds = this.#fds[slot];
    return this.#errno[slot] !== 0 || (fds !== undefined && fds.length > 0);
  }

  /** Whether a held slot has something its user would accept now. */
  reportable(): boolean {
    const holding = this.#holdingList;
    for (let i = 0; i < holding.length; i++) {
      const slot = holding[i];
      if (this.#host.reading(slot) && this.holds(slot)) return true;
    }
    return false;
  }

  /** Notes the held slots readable, level-triggered: at every wait while they hold, except while their user does not accept. */
  noteHeld(): void {
    const holding = this.#holdingList;
    for (let i = holding.length - 1; i >= 0; i--) {
      const slot = holding[i];
      if (!this.holds(slot)) {
        this.#holding[slot] = 0;
        holding[i] = holding[holding.length - 1];
        holding.pop();
        continue;
      }
      if (this.#host.reading(slot)) this.#host.note(slot, READABLE);
    }
  }

  /** Arms again the polled slots that may: watched, wanted, their errno taken, fewer than half of HELD_MAX held. */
  rearmPolled(): void {
    const polled = this.#polled;
    for (let i = polled.length - 1; i >= 0; i--) {
      const slot = polled[i];
      const fds = this.#fds[slot];
      const live = this.#host.isLive(slot) && this.#wants[slot] === 1 && this.#state[slot] === A_POLLED;
      if (live && (this.#errno[slot] !== 0 || (fds !== undefined && fds.length >= HELD_MAX / 2))) continue; // not yet
      polled[i] = polled[polled.length - 1];
      polled.pop();
      if (!live) continue;
      this.#arm(slot);
      this.#host.repoll(slot); // the poll no longer waits for reading: the accept does
    }
  }

  /** One accept completion (user_data low word without ACCEPT_TAG, high word, res, flags). */
  completed(slot: number, data: number, res: number, flags: number): void {
    const host = this.#host;
    const mine = slot < this.#state.length && host.isLive(slot) && data >>> 16 === (host.generationOf(slot) & 0xffff);
    if (!mine) {
      // A connection accepted for a listener that left (or a previous owner of the slot): nobody
      // else knows of this fd: reset, as a connection dropped from a backlog is.
      if (res >= 0) refuseConnection(res);
      return;
    }
    // Completions of an arm that was cancelled still carry the listener's connections: kept.
    const current = (data & 0xffff) === this.#seq[slot] && this.#state[slot] === A_ARMED;
    const more = (flags & IORING_CQE_F_MORE) !== 0;
    if (res >= 0) {
      const fds = (this.#fds[slot] ??= []);
      closeAtTeardown(res);
      fds.push(res);
      this.#hold(slot);
      if (!current) return;
      if (!more) {
        // Ended for another reason (CQ overflow): armed again.
        this.#state[slot] = A_OFF;
        if (this.#wants[slot] === 1) this.#arm(slot);
      } else if (fds.length >= HELD_MAX) {
        this.#cancel(slot);
        this.#poll(slot);
      }
      return;
    }
    if (!current) return; // an error of an arm we cancelled: its successor reports its own
    if (res === -ECANCELED) {
      // Cancelled by the kernel, not by us: armed again at once.
      this.#state[slot] = A_OFF;
      if (this.#wants[slot] === 1) this.#arm(slot);
      return;
    }
    this.#errno[slot] = -res;
    this.#hold(slot);
    this.#poll(slot);
    host.note(slot, READABLE);
  }

  /** Closes every fd still held (the ring is closing, and nothing took them). Never throws. */
  close(): void {
    for (const fds of this.#fds) {
      if (fds === undefined) continue;
      for (const fd of fds) {
        keepAtTeardown(fd);
        refuseConnection(fd);
      }
      fds.length = 0;
    }
    this.#holdingList.length = 0;
    this.#polled.length = 0;
  }

  /** Queues a multishot accept for `slot`: non-blocking, close-on-exec fds, no address asked for. */
  #arm(slot: number): void {
    const seq = (this.#seq[slot] + 1) & 0xffff;
    this.#seq[slot] = seq;
    const ring = this.#ring;
    const w = ring.entry();
    ring.prepare(w, IORING_OP_ACCEPT, this.#host.fdOf(slot), 0, SOCK_NONBLOCK | SOCK_CLOEXEC, (slot | ACCEPT_TAG) >>> 0, this.#data(slot));
    ring.setIoprio(w, IORING_ACCEPT_MULTISHOT);
    this.#state[slot] = A_ARMED;
  }

  /** Queues the cancellation of `slot`'s accept; the fds it still posts are kept all the same (same generation). */
  #cancel(slot: number): void {
    const ring = this.#ring;
    const w = ring.entry();
    ring.prepare(w, IORING_OP_ASYNC_CANCEL, -1, 0, 0, IGNORE, 0);
    ring.setAddress(w, (slot | ACCEPT_TAG) >>> 0, this.#data(slot));
    this.#seq[slot] = (this.#seq[slot] + 1) & 0xffff;
    this.#state[slot] = A_OFF;
  }

  /** Polls `slot` (accept4 by its listener) until `rearmPolled` arms it again. */
  #poll(slot: number): void {
    this.#state[slot] = A_POLLED;
    this.#polled.push(slot);
    this.#host.repoll(slot);
  }

  /** The high word of an accept's user_data: the slot's generation (low 16 bits) and the arm's sequence. */
  #data(slot: number): number {
    return (((this.#host.generationOf(slot) & 0xffff) << 16) | this.#seq[slot]) >>> 0;
  }

  /** Remembers that `slot` holds fds or an errno (reported at every wait until taken). */
  #hold(slot: number): void {
    if (this.#holding[slot] === 1) return;
    this.#holding[slot] = 1;
    this.#holdingList.push(slot);
  }
}
