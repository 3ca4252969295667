/**
 * Readiness for the io_uring backend (io-uring.ts): the slots' table (per slot its fd,
 * generation, interest and whether it is watched) and one one-shot IORING_OP_POLL_ADD per watched
 * slot, armed, re-armed after it fires, replaced when the interest changes and removed when the
 * slot leaves. The backend reports what a poll found; this file knows polls, nothing of receives,
 * accepts or sends (they only take reading off a slot's poll: `pollMask`).
 *
 * ## Why one-shot polls, re-armed
 * The Multiplexer promises level-triggered readiness: bytes left unread are reported again by the
 * next wait. An io_uring poll, multishot or not, reports a *change*: a multishot poll posts a
 * completion for each wake-up of the socket's wait queue (new data, new room), never again for
 * data that is merely still there (measured: a multishot poll on a socket with unread bytes
 * posts one completion, then none until the peer writes more). So each watched fd has one
 * one-shot POLL_ADD in the kernel; when it completes, its slot is reported, and at the start of
 * the next wait (or the Reactor's settle) the poll is armed again. Arming checks the fd
 * at once (the kernel calls the file's poll inside the submission): a socket that is still
 * readable completes in that same io_uring_enter, which is the re-check epoll's level-triggered
 * mode makes for each ready fd in epoll_wait. A socket that is not gets a waiter, as epoll keeps
 * one, and every re-arm of one loop turn goes in one batch: one io_uring_enter per turn.
 *
 * ## Tokens
 * user_data holds the slot (low word) and an arm sequence (high word) that changes with every arm
 * of the slot. A completion counts only if its sequence is the slot's current one, so a poll that
 * was cancelled, replaced by `modify`, or belonged to an fd removed and reused never reaches the
 * slot's new owner (the generation the Multiplexer gives is kept and handed back as is).
 * Removals and cancellations carry the slot IGNORE and their completions are skipped.
 *
 * ## Remove before close
 * A poll in the kernel holds a reference to the file: closing the fd would not close the socket
 * (no FIN) while it is armed. So the backend's `remove` submits the POLL_REMOVE at once and runs
 * the task work that completes it: when remove returns, the kernel holds the file no more.
 */
import { IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, POLLERR, POLLHUP, POLLIN, POLLNVAL } from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import { ERROR, HANGUP } from '../../core/watch.ts';
import type { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';
import { SlotList } from './slot-list.ts';
import { fromPoll, toPoll } from './poll-bits.ts';

/** user_data low word of removals and cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
const ECANCELED = ERRNO.ECANCELED;

/** A slot with no poll in the kernel and none queued. */
const IDLE = 0;
/** A slot whose poll (of sequence `#seq[slot]`) is queued or in the kernel. */
const ARMED = 1;
/** A slot whose poll completed and was reported: armed again before the next wait sleeps. */
const FIRED = 2;

/**
 * What `completed` answers when there is nothing to note (a stale completion, or one the kernel
 * cancelled: armed again). 0 (the poll found only bits it did not ask for) is noted all the same;
 * the report skips it.
 */
export const NO_NOTE = -1;

/** What serves reading in a poll's place (RingReceiver, RingAcceptor, RingEventfds). */
export interface PollServer {
  /** The POLL* bits the slot's poll waits for: `events`, less those it serves. */
  pollMask(slot: number, events: number): number;
}


export class RingPoller {
  readonly #ring: Ring;
  /** The receiver, the acceptor (where they are on) and the eventfd set: they take reading off some slots' polls. */
  readonly #servers: PollServer[];
  #fds: Int32Array;
  #generations: Uint32Array;
  #seq: Uint32Array;
  /** POLL* bits the user's interest asks for (READABLE included even where a receive serves it). */
  #events: Uint32Array;
  #state: Uint8Array;
  /** The POLL* bits the slot's current poll was armed with. */
  #armedMask: Uint32Array;
  /** Whether the slot is watched (added and not released): completions for others are dropped. */
  #live: Uint8Array;
  /** Slots reported by the last wait (or cancelled by the kernel), FIRED until re-armed. Reused: no allocation once grown. */
  readonly #fired = new SlotList();

  constructor(ring: Ring, servers: (PollServer | null)[], slots: number) {
    this.#ring = ring;
    this.#servers = servers.filter((server): server is PollServer => server !== null);
    this.#fds = new Int32Array(slots);
    this.#generations = new Uint32Array(slots);
    this.#seq = new Uint32Array(slots);
    this.#events = new Uint32Array(slots);
    this.#state = new Uint8Array(slots);
    this.#armedMask = new Uint32Array(slots);
    this.#live = new Uint8Array(slots);
  }

  /** Makes room for slots below `length`. */
  grow(length: number): void {
    this.#fds = grownTo(this.#fds, length);
    this.#generations = grownTo(this.#generations, length);
    this.#seq = grownTo(this.#seq, length);
    this.#events = grownTo(this.#events, length);
    this.#state = grownTo(this.#state, length);
    this.#armedMask = grownTo(this.#armedMask, length);
    this.#live = grownTo(this.#live, length);
  }

  fdOf(slot: number): number {
    return this.#fds[slot];
  }

  generationOf(slot: number): number {
    return this.#generations[slot];
  }

  /** Whether the slot is watched (added and not released). */
  isLive(slot: number): boolean {
    return this.#live[slot] === 1;
  }

  /** Whether the slot's user reads now (its interest has READABLE). */
  reading(slot: number): boolean {
    return (this.#events[slot] & POLLIN) !== 0;
  }

  /** A slot was added (Multiplexer bits): watched, not armed yet (`arm`, once its receive or accept knows). */
  watch(slot: number, fd: number, generation: number, bits: number): void {
    this.#fds[slot] = fd;
    this.#generations[slot] = generation;
    this.#events[slot] = toPoll(bits);
    this.#live[slot] = 1;
  }

  /** A slot's interest changed (Multiplexer bits): its poll is not touched yet (`replace`). */
  update(slot: number, fd: number, generation: number, bits: number): void {
    this.#fds[slot] = fd;
    this.#generations[slot] = generation;
    this.#events[slot] = toPoll(bits);
  }

  /**
   * After `update`: a FIRED slot is re-armed with the new events anyway. An ARMED one is
   * replaced: cancel the poll in the kernel and arm a new one (new sequence, so whatever the old
   * one posts is stale; and the new one checks readiness as it arms, so nothing that fired
   * meanwhile is lost).
   */
  replace(slot: number): void {
    if (this.#state[slot] === ARMED) {
      this.#cancel(slot);
      this.arm(slot);
    } else if (this.#state[slot] === IDLE) {
      this.arm(slot);
    }
  }

  /** The slot's poll must wait for other bits now (its receive ran dry, its accept changed): armed again at once. */
  repoll(slot: number): void {
    if (this.#state[slot] === ARMED) this.#cancel(slot);
    this.arm(slot);
  }

  /** A slot leaves: its poll's removal queued (the backend submits it at once). Whether one was armed. */
  remove(slot: number): boolean {
    const armed = this.#state[slot] === ARMED;
    this.#state[slot] = IDLE;
    if (armed) {
      this.#cancel(slot);
      this.#seq[slot] = (this.#seq[slot] + 1) >>> 0;
    }
    return armed;
  }

  /** After `remove`: the slot is no longer watched. False for a slot past the arrays (never added). */
  release(slot: number): boolean {
    if (slot >= this.#live.length) return false;
    this.#live[slot] = 0;
    return true;
  }

  /** Arms again every slot reported by the last wait that is still FIRED. */
  rearm(): void {
    const fired = this.#fired;
    for (let i = 0; i < fired.length; i++) {
      const slot = fired.at(i);
      if (this.#state[slot] === FIRED) this.arm(slot);
    }
    fired.clear();
  }

  /**
   * One poll completion (user_data low word, high word, res): the bits to note for the slot
   * (possibly 0), or NO_NOTE.
   */
  completed(slot: number, seq: number, res: number): number {
    if (slot >= this.#state.length) return NO_NOTE;
    if (this.#state[slot] !== ARMED || this.#seq[slot] !== seq) return NO_NOTE;
    if (res === -ECANCELED) {
      // Cancelled by the kernel itself (not by us: ours have an old sequence): arm again.
      this.#state[slot] = FIRED;
      this.#fired.push(slot);
      return NO_NOTE;
    }
    if (res < 0) {
      // The poll could not be armed (EBADF: the fd is not open, a bookkeeping bug). Report an
      // error, as poll(2)'s POLLNVAL, and do not arm it again.
      this.#state[slot] = IDLE;
      return ERROR | HANGUP;
    }
    this.#state[slot] = FIRED;
    this.#fired.push(slot);
    // io_uring adds EPOLLRDHUP to every poll's mask (IO_POLL_UNMASK): a poll for POLLOUT alone
    // would report the peer's FIN, on and on while nobody reads, where epoll's mask hides it.
    return fromPoll(res & (this.#armedMask[slot] | POLLHUP | POLLERR | POLLNVAL));
  }

  /** The ring is closing (its polls cancelled): no slot armed, none watched. */
  close(): void {
    this.#state.fill(IDLE);
    this.#live.fill(0);
    this.#fired.clear();
  }

  /** Queues a one-shot POLL_ADD for `slot` with a new sequence (none when nothing is left to poll for). */
  arm(slot: number): void {
    const seq = (this.#seq[slot] + 1) >>> 0;
    this.#seq[slot] = seq;
    const mask = this.#pollMask(slot);
    if (mask === 0) {
      this.#state[slot] = IDLE;
      return;
    }
    const w = this.#ring.entry();
    this.#ring.prepare(w, IORING_OP_POLL_ADD, this.#fds[slot], 0, mask, slot, seq);
    this.#armedMask[slot] = mask;
    this.#state[slot] = ARMED;
  }

  /** Queues a POLL_REMOVE of `slot`'s current poll. */
  #cancel(slot: number): void {
    const w = this.#ring.entry();
    this.#ring.prepare(w, IORING_OP_POLL_REMOVE, -1, 0, 0, IGNORE, 0);
    this.#ring.setAddress(w, slot, this.#seq[slot]);
  }

  /** The POLL* bits the slot's poll waits for: the user's, less reading where a receive, an accept or the eventfd set serves it. */
  #pollMask(slot: number): number {
    let events = this.#events[slot];
    const servers = this.#servers;
    for (let i = 0; i < servers.length; i++) events = servers[i].pollMask(slot, events);
    return events;
  }
}
