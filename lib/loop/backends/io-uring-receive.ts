/**
 * Completion-based receive for the io_uring backend (io-uring.ts): one multishot IORING_OP_RECV
 * per connected TCP socket, into the provided-buffer ring of io-uring-buffers.ts, and per slot
 * the state of that receive and of what it brought (bytes queued, then the end). The backend
 * keeps the slots and their polls; this file knows receives, nothing of polls.
 *
 * Only on DEFER_TASKRUN rings, where the kernel moves bytes only inside our own io_uring_enter:
 * so a receive that finds the queue empty while the multishot is armed knows that nothing arrived
 * unseen (it answers 0; the bytes come with the next turn), and one that finds the queue empty
 * with no receive armed may read the fd itself without overtaking queued bytes.
 *
 * - Order: a receive's completions carry the slot's generation, not an arm sequence: bytes
 *   received by a receive that was cancelled meanwhile (interest changed) are still the socket's,
 *   queued in order. Only completions of a previous owner are dropped (their buffers recycled).
 * - ENOBUFS (every buffer is queued or lent): the multishot ends, what comes waits in the kernel;
 *   the slot polls POLLIN and reads by recv(2) until buffers come back, then re-arms. So sockets
 *   that hold buffers unread slow the others down to readiness mode, never stop them.
 * - Leaving (the backend's remove): the receive is cancelled and its last completions absorbed
 *   before remove returns; the multiplexer then takes the slot's bytes (`release`) and hands them
 *   to the socket, which returns them before anything it reads from the kernel.
 */
import {
  IORING_CQE_BUFFER_SHIFT,
  IORING_CQE_F_BUFFER,
  IORING_CQE_F_MORE,
  IORING_OP_ASYNC_CANCEL,
  IORING_OP_RECV,
  IORING_RECV_MULTISHOT,
  IOSQE_BUFFER_SELECT,
  POLLIN,
  POLLRDHUP,
} from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import { HANGUP, HELD_END, HELD_ERROR, HELD_NONE, READABLE } from '../../core/watch.ts';
import type { Received } from './backend.ts';
import { ReceiveBuffers } from './io-uring-buffers.ts';
import type { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';

/** user_data low word of a receive: the slot with this bit (a poll's has it clear). */
export const RECV_TAG = 0x80000000;
/** user_data low word of cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
/** Receive buffers: how many (a power of two) and how large. 4 MiB in all. */
const RECEIVE_BUFFERS = 256;
const RECEIVE_BUFFER_SIZE = 16 * 1024;
const BUFFER_GROUP = 1;
const ENOBUFS = ERRNO.ENOBUFS;
const ECANCELED = ERRNO.ECANCELED;

/** A slot's receive: none in the kernel (armed at the next turn if wanted). */
const R_OFF = 0;
/** A multishot receive is queued or in the kernel. */
const R_ARMED = 1;
/** The ring ran dry (ENOBUFS): readiness and recv(2) until buffers come back. */
const R_STARVED = 2;
/** The end came (EOF or an error): nothing more to receive. */
const R_DONE = 3;
/** `#end` of a slot whose end has not come. */
const NO_END = 1;

/** What the receiver needs of the backend that owns the slots. */
export interface ReceiverHost {
  fdOf(slot: number): number;
  generationOf(slot: number): number;
  /** Whether the slot is watched (added and not released). */
  isLive(slot: number): boolean;
  /** Whether the slot's user reads now (its interest has READABLE). */
  reading(slot: number): boolean;
  /** Notes bits to report for the slot at the next wait. */
  note(slot: number, bits: number): void;
  /** The slot's poll must now wait for reading too (its receive ran dry): arm it again. */
  repoll(slot: number): void;
}

export class RingReceiver {
  readonly #ring: Ring;
  readonly #buffers: ReceiveBuffers;
  readonly #host: ReceiverHost;
  /** Whether the slot's bits carry RECEIVES. */
  #wants: Uint8Array;
  /** R_* state of the slot's receive, and the sequence of its current arm. */
  #state: Uint8Array;
  #seq: Uint16Array;
  /** NO_END, 0 (EOF received) or -errno (the receive failed): handed out after the queued bytes. */
  #end: Int32Array;
  /** Slots that hold received bytes or an end (each once): reported readable at every wait while they do. */
  #holding: Uint8Array;
  readonly #holdingList: number[] = [];
  /** Slots whose receive ran dry: armed again once buffers are back. */
  readonly #starved: number[] = [];
  /** What `take` answered with a view: the view (see Backend.receive). */
  view: Uint8Array = new Uint8Array(0);

  /** The receiver of `ring`, or null where the kernel has no buffer rings (before 5.19) or no memory for one. */
  static open(ring: Ring, host: ReceiverHost, slots: number): RingReceiver | null {
    try {
      return new RingReceiver(ring, new ReceiveBuffers(ring, RECEIVE_BUFFERS, RECEIVE_BUFFER_SIZE, BUFFER_GROUP, slots), host, slots);
    } catch {
      return null; // readiness only
    }
  }

  private constructor(ring: Ring, buffers: ReceiveBuffers, host: ReceiverHost, slots: number) {
    this.#ring = ring;
    this.#buffers = buffers;
    this.#host = host;
    this.#wants = new Uint8Array(slots);
    this.#state = new Uint8Array(slots);
    this.#seq = new Uint16Array(slots);
    this.#end = new Int32Array(slots).fill(NO_END);
    this.#holding = new Uint8Array(slots);
  }

  /** Makes room for slots below `length`. */
  grow(length: number): void {
    this.#wants = grownTo(this.#wants, length);
    this.#state = grownTo(this.#state, length);
    this.#seq = grownTo(this.#seq, length);
    this.#end = grownTo(this.#end, length, NO_END);
    this.#holding = grownTo(this.#holding, length);
    this.#buffers.grow(length);
  }

  /** A slot was added: its end forgotten, its receive armed if `wants`. */
  attach(slot: number, wants: boolean): void {
    this.#end[slot] = NO_END;
    this.#state[slot] = R_OFF;
    this.#wants[slot] = wants ? 1 : 0;
    if (wants) this.#arm(slot);
  }

  /** A slot's interest changed: arm or cancel its receive. */
  want(slot: number, wants: boolean): void {
    if ((this.#wants[slot] === 1) === wants) return;
    this.#wants[slot] = wants ? 1 : 0;
    const state = this.#state[slot];
    if (wants && state === R_OFF) this.#arm(slot);
    else if (!wants && state === R_ARMED) this.#cancel(slot);
    else if (!wants && state === R_STARVED) this.#state[slot] = R_OFF;
  }

  /** A slot leaves: its receive's cancellation queued (the backend submits it). Whether one was armed. */
  detach(slot: number): boolean {
    const armed = this.#state[slot] === R_ARMED;
    if (armed) this.#cancel(slot);
    this.#wants[slot] = 0;
    this.#state[slot] = R_OFF;
    return armed;
  }

  /** Before close: every receive's cancellation queued (the backend submits them and absorbs what they still post). */
  detachAll(): void {
    for (let slot = 0; slot < this.#state.length; slot++) {
      if (this.#state[slot] === R_ARMED) this.#cancel(slot);
      this.#wants[slot] = 0;
    }
  }

  /** The POLL* bits the slot's poll waits for: `events`, less reading where a receive serves it. */
  pollMask(slot: number, events: number): number {
    return this.#wants[slot] === 1 && this.#state[slot] !== R_STARVED ? events & ~(POLLIN | POLLRDHUP) : events;
  }

  /**
   * What a socket's receive takes from its slot (Backend.receive): bytes copied into `into`, or
   * with `into` null a view of them (`view`: the one chunk, or several copied into `spill`); 0
   * when nothing waits but the armed receive will bring it; HELD_END / HELD_ERROR (`errno`) once
   * the queue is empty and the end has come; HELD_NONE when no receive is armed (read the fd).
   */
  take(slot: number, into: Uint8Array | null, spill: Uint8Array): number {
    if (slot >= this.#state.length) return HELD_NONE;
    const buffers = this.#buffers;
    if (buffers.holds(slot)) {
      if (into !== null) return buffers.take(slot, into);
      // One chunk: a view of it, no copy. More: copied together into `spill` (the multiplexer's
      // receive buffer), so that the reader handles them in one go.
      if (buffers.single(slot)) this.view = buffers.takeView(slot)!;
      else {
        buffers.returnLent(); // a receive() without a buffer: the last one's view ends here
        this.view = spill.subarray(0, buffers.take(slot, spill));
      }
      return this.view.byteLength;
    }
    const end = this.#end[slot];
    if (end !== NO_END) return end === 0 ? HELD_END : HELD_ERROR;
    return this.#state[slot] === R_ARMED ? 0 : HELD_NONE;
  }

  /** The errno of a slot whose receive answered HELD_ERROR. */
  errno(slot: number): number {
    return -this.#end[slot];
  }

  /** After the slot left: its buffers back, its end forgotten; what its socket must still read, or null. */
  release(slot: number): Received | null {
    if (slot >= this.#state.length) return null;
    const bytes = this.#buffers.release(slot, true);
    const end = this.#end[slot];
    this.#end[slot] = NO_END;
    const errno = end < 0 ? -end : 0;
    return bytes === null && errno === 0 ? null : { bytes, errno };
  }

  /** Whether `slot` holds bytes or an end its user has not read. */
  holds(slot: number): boolean {
    return this.#host.isLive(slot) && (this.#end[slot] !== NO_END || this.#buffers.holds(slot));
  }

  /** Whether a held slot has something its user would read now. */
  reportable(): boolean {
    const holding = this.#holdingList;
    for (let i = 0; i < holding.length; i++) {
      const slot = holding[i];
      if (this.#host.reading(slot) && this.holds(slot)) return true;
    }
    return false;
  }

  /**
   * Notes the held slots readable (with a hangup once the end waits, as epoll's EPOLLRDHUP),
   * level-triggered: at every wait while they hold, except while their user does not read.
   */
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
      if (!this.#host.reading(slot)) continue; // paused: kept, not reported
      this.#host.note(slot, this.#end[slot] === NO_END ? READABLE : READABLE | HANGUP);
    }
  }

  /** Arms again the receives that ran dry, once buffers are back. */
  rearmStarved(): void {
    const starved = this.#starved;
    if (starved.length === 0 || this.#buffers.free === 0) return;
    for (let i = 0; i < starved.length; i++) {
      const slot = starved[i];
      if (this.#host.isLive(slot) && this.#wants[slot] === 1 && this.#state[slot] === R_STARVED) {
        this.#arm(slot);
        // The poll armed for reading while starved would fire for the bytes the receive now
        // takes, after the user may have read them: a readable event with nothing to read.
        this.#host.repoll(slot);
      }
    }
    starved.length = 0;
  }

  /** One receive completion (user_data low word without RECV_TAG, high word, res, flags). */
  completed(slot: number, data: number, res: number, flags: number): void {
    const buffers = this.#buffers;
    const host = this.#host;
    const bid = (flags & IORING_CQE_F_BUFFER) !== 0 ? flags >>> IORING_CQE_BUFFER_SHIFT : -1;
    const mine = slot < this.#state.length && host.isLive(slot) && data >>> 16 === (host.generationOf(slot) & 0xffff);
    if (!mine) {
      // A previous owner's: its buffer goes back to the ring.
      if (bid >= 0) {
        buffers.free--;
        buffers.recycle(bid);
      }
      return;
    }
    // Completions of an arm that was cancelled still carry the socket's bytes: queued in order.
    const current = (data & 0xffff) === this.#seq[slot] && this.#state[slot] === R_ARMED;
    const more = (flags & IORING_CQE_F_MORE) !== 0;
    if (res > 0 && bid >= 0) {
      buffers.queue(slot, bid, res);
      this.#hold(slot);
      if (current && !more) this.#state[slot] = R_OFF; // ended for another reason (CQ overflow): arm again
      if (current && !more && this.#wants[slot] === 1) this.#arm(slot);
      return;
    }
    if (bid >= 0) {
      buffers.free--;
      buffers.recycle(bid);
    }
    if (res === -ENOBUFS) {
      if (!current) return;
      // Readiness and recv(2) until buffers are back. Not noted readable: ENOBUFS does not say
      // that bytes wait (the multishot also picks a buffer for a retry that would find none),
      // and a readable event with nothing to read is what users saw (found from outside: 11-179
      // per run of 20 connections with paused readers). The poll says when there are some.
      this.#state[slot] = R_STARVED;
      this.#starved.push(slot);
      host.repoll(slot);
      return;
    }
    if (res === -ECANCELED) {
      if (current) this.#state[slot] = R_OFF; // cancelled by the kernel, not by us: armed again at once
      if (current && this.#wants[slot] === 1) this.#arm(slot);
      return;
    }
    // EOF (0) or a failure: the end, after the bytes queued before it.
    if (this.#end[slot] === NO_END) this.#end[slot] = res;
    if (current || this.#state[slot] !== R_ARMED) this.#state[slot] = R_DONE;
    this.#hold(slot);
  }

  /** Unregisters the buffer ring (after every receive was cancelled). Never throws. */
  close(): void {
    this.#buffers.close();
    this.#holdingList.length = 0;
    this.#starved.length = 0;
  }

  /** Queues a multishot receive for `slot` (its completions name the slot's generation and the arm). */
  #arm(slot: number): void {
    const seq = (this.#seq[slot] + 1) & 0xffff;
    this.#seq[slot] = seq;
    const ring = this.#ring;
    const w = ring.entry();
    ring.prepare(w, IORING_OP_RECV, this.#host.fdOf(slot), 0, 0, (slot | RECV_TAG) >>> 0, this.#data(slot));
    ring.setEntryFlags(w, IOSQE_BUFFER_SELECT);
    ring.setReceive(w, IORING_RECV_MULTISHOT, BUFFER_GROUP);
    this.#state[slot] = R_ARMED;
  }

  /** Queues the cancellation of `slot`'s receive; what it still posts is queued all the same (same generation). */
  #cancel(slot: number): void {
    const ring = this.#ring;
    const w = ring.entry();
    ring.prepare(w, IORING_OP_ASYNC_CANCEL, -1, 0, 0, IGNORE, 0);
    ring.setAddress(w, (slot | RECV_TAG) >>> 0, this.#data(slot));
    this.#seq[slot] = (this.#seq[slot] + 1) & 0xffff;
    this.#state[slot] = R_OFF;
  }

  /** The high word of a receive's user_data: the slot's generation (low 16 bits) and the arm's sequence. */
  #data(slot: number): number {
    return (((this.#host.generationOf(slot) & 0xffff) << 16) | this.#seq[slot]) >>> 0;
  }

  /** Remembers that `slot` holds bytes or an end (reported at every wait until read). */
  #hold(slot: number): void {
    if (this.#holding[slot] === 1) return;
    this.#holding[slot] = 1;
    this.#holdingList.push(slot);
  }
}
