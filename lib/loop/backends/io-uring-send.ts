/**
 * Completion-based send for the io_uring backend (io-uring.ts, `ringSend`): a stream socket's
 * send queue is handed to the kernel by IORING_OP_SEND entries, submitted with the loop turn's
 * one io_uring_enter, instead of one send(2) per `send()`.
 *
 * - One send in flight per socket, from the head of its queue (`_ringSendHead`): the bytes stay
 *   in the queue until the completion says how many went (`_ringSent`), so nothing is lost or
 *   sent twice whatever happens meanwhile, and sends queued behind it go with the next one (a
 *   turn's sends to one socket leave in one entry). No MSG_WAITALL: a short send completes with
 *   its count (the rest goes in the next entry), so a send in flight has never sent part of its
 *   bytes, and cancelling it (-ECANCELED) means that none went.
 * - The view the kernel reads is kept referenced here until its completion, even if the socket
 *   drops its queue meanwhile (V8 would free memory that the kernel still reads).
 * - Completions are read during the backend's absorb and handed to their sockets afterwards
 *   (`deliver`), once the CQ head has moved: a socket may do anything in `_ringSent` (close, which
 *   removes it from the backend, which enters the ring again) without a completion being read
 *   twice.
 * - Leaving: a socket that leaves the backend with a send in flight has it cancelled, and the
 *   backend waits for its completion before `remove` returns (`awaitLeft`): from then on the
 *   socket sends by itself, and must know exactly which bytes went.
 * - When sends go: with the turn's one enter (the start of a wait, a Reactor's settle). Between
 *   a wait and the settle that lets the Reactor sleep, the settle submits them; outside it (a
 *   timer, a promise's continuation) nothing would before the loop sleeps, so a microtask does
 *   (`sendSoon`). A queue at its cap goes at once (`sendNow`).
 */
import koffi from 'koffi';
import { IORING_OP_ASYNC_CANCEL, IORING_OP_SEND, MSG_NOSIGNAL } from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import type { SendSource } from './backend.ts';
import type { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';
import { SlotList } from './slot-list.ts';

/** user_data low word of a send: the slot with this bit (a poll's has it clear, a receive's has RECV_TAG). */
export const SEND_TAG = 0x40000000;
/** user_data low word of cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
/** No completion read for the slot (see `#result`). */
const NONE = 0x7fffffff;


/** What the sender needs of the backend that owns the slots. */
export interface SenderHost {
  fdOf(slot: number): number;
  isLive(slot: number): boolean;
  /** Notes bits to report for the slot at the next wait. */
  note(slot: number, bits: number): void;
  /** Whether a Reactor sleeps on the ring's eventfd (then nothing but us submits outside its turns). */
  watched(): boolean;
  /** Whether the backend is closed. */
  closed(): boolean;
  /** Submits, runs the task work and takes in every completion (an enter outside the Reactor's drain). */
  enterNow(): void;
  /** Waits up to `ms` for a completion, then takes in what came. */
  enterTimed(ms: number): void;
}

export class RingSender {
  readonly #ring: Ring;
  readonly #host: SenderHost;
  /**
   * Per slot: the source asking to send (listed), and the one whose send is in flight. (Filled
   * to the slots' capacity: reading past an array's end, or a hole, walks the prototype chain.)
   */
  #wanting: (SendSource | null)[];
  #inFlight: (SendSource | null)[];
  /** Where `_ringSendHead` answers the offset and length of the bytes. */
  readonly #range = new Int32Array(2);
  /** The address of each array sent from (a queue reuses its blocks: looked up once per block). */
  readonly #addresses = new WeakMap<Uint8Array, number>();
  /** Per slot: the block its last send was from, and that block's address (see #addressOf). */
  #lastBlock: (Uint8Array | null)[];
  #lastAddress: Float64Array;
  /** Per slot: the array the kernel reads from, referenced until the completion is read. */
  #views: (Uint8Array | null)[];
  /** Per slot: the sequence of its current send (a completion of an older one is stale). */
  #seq: Uint32Array;
  /** Per slot: the result read and not yet handed to its source (NONE: none). */
  #result: Int32Array;
  /** Slots listed for the next submission (each once: `#wanting` non-null). */
  readonly #list = new SlotList();
  /** Slots whose completion was read and waits for `deliver`, in order. */
  readonly #done = new SlotList();
  /** Sends abandoned (their completion never came): their bytes stay referenced. */
  readonly #abandoned: Uint8Array[] = [];
  #delivering = false;
  /** Set by the backend's finish while it sends what is queued before the close (see #handOver). */
  finishing = false;
  /** Between a wait and the settle that lets the Reactor sleep: that settle submits the sends. */
  #inTurn = false;
  #flushScheduled = false;
  /**
   * A turn of a Reactor ends with the libuv callback that runs it, however it ends (a settle
   * that lets it sleep, or a yield after maxRounds with the eventfd poked): a microtask, which
   * runs once that callback has returned, says so. (No Reactor: a loop that blocks in wait() runs
   * no microtask, and its sends go with its next wait.)
   */
  #turnEndScheduled = false;
  readonly #endTurn = (): void => {
    this.#turnEndScheduled = false;
    this.#inTurn = false;
  };
  readonly #flushSends = (): void => this.#submitSoon();

  constructor(ring: Ring, host: SenderHost, slots: number) {
    this.#ring = ring;
    this.#host = host;
    this.#seq = new Uint32Array(slots);
    this.#result = new Int32Array(slots).fill(NONE);
    this.#wanting = new Array<SendSource | null>(slots).fill(null);
    this.#inFlight = new Array<SendSource | null>(slots).fill(null);
    this.#views = new Array<Uint8Array | null>(slots).fill(null);
    this.#lastBlock = new Array<Uint8Array | null>(slots).fill(null);
    this.#lastAddress = new Float64Array(slots);
  }

  /** Makes room for slots below `length`. */
  grow(length: number): void {
    this.#seq = grownTo(this.#seq, length);
    this.#result = grownTo(this.#result, length, NONE);
    this.#lastAddress = grownTo(this.#lastAddress, length);
    for (const list of [this.#wanting, this.#inFlight, this.#views, this.#lastBlock] as (unknown[])[]) {
      for (let slot = list.length; slot < length; slot++) list.push(null);
    }
  }

  /** Whether sends are listed for the next submission. */
  get listed(): boolean {
    return this.#list.length > 0;
  }

  /** `source`, in `slot`, has bytes to send: listed for the next submission (once; not while one is in flight). */
  want(slot: number, source: SendSource): void {
    if (this.#wanting[slot] !== null || this.#inFlight[slot] !== null) return;
    this.#wanting[slot] = source;
    this.#list.push(slot);
  }

  /** A wait began a loop turn: its sends go with the turn's enter (see "When sends go"). */
  beginTurn(): void {
    this.#inTurn = true;
    if (this.#host.watched() && !this.#turnEndScheduled) {
      this.#turnEndScheduled = true;
      queueMicrotask(this.#endTurn);
    }
  }

  /** The Reactor's settle submitted everything and lets it sleep: the turn is over. */
  endTurn(): void {
    this.#inTurn = false;
  }

  /**
   * `source` (in `slot`) has queued bytes: sent with the next submission. Outside a loop turn
   * of a Reactor, nothing would submit it before the loop sleeps: a microtask does, after the
   * code that is running now has queued what it sends (one entry per socket, one enter for all).
   */
  sendSoon(slot: number, source: SendSource): void {
    this.want(slot, source);
    if (!this.#inTurn && !this.#flushScheduled && this.#host.watched()) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushSends);
    }
  }

  /**
   * `source`'s queue reached its cap within a turn (a handler that reads and sends in a loop):
   * its send goes now, and the completions there are are taken in, so that the cap counts what
   * the kernel has not taken, as send(2) makes it on epoll, not what this turn has sent.
   */
  sendNow(slot: number, source: SendSource): void {
    if (this.#host.closed()) return;
    // A few rounds: a short send lists the rest, which goes in the next (bounded: the kernel
    // may keep taking a little at a time; what is left goes with the turn).
    for (let round = 0; round < 4; round++) {
      this.want(slot, source);
      if (this.submit() === 0 && !this.inFlight(slot)) return;
      this.#host.enterNow();
      if (this.inFlight(slot)) return; // waiting for room in the kernel: it completes by itself
    }
  }

  /**
   * Waits until `slot`'s cancelled send has completed and hands its result over. A cancellation
   * completes in the enter that submits it (the send waits on a poll, which the cancel removes);
   * the bounded wait is for a send the kernel was running on another thread at that moment.
   */
  awaitLeft(slot: number): void {
    for (let i = 0; i < 100 && this.inFlight(slot); i++) this.#host.enterTimed(10);
    this.settle(slot);
    if (this.inFlight(slot)) this.abandon(slot, ERRNO.ETIMEDOUT);
  }

  /** Whether `slot` has a send whose completion has not been read. */
  inFlight(slot: number): boolean {
    return this.#inFlight[slot] !== null && this.#result[slot] === NONE;
  }

  /** Submits the listed sends now (a microtask outside a Reactor's turn; see sendSoon). */
  #submitSoon(): void {
    this.#flushScheduled = false;
    if (this.#inTurn || this.#host.closed()) return;
    // No GETEVENTS: the completions are posted (and the eventfd signalled) by the kernel, and
    // taken in by the Reactor's next turn, not here, inside some other code's microtask.
    if (this.submit() > 0) this.#ring.enter(0, 0);
  }

  /** Queues a send entry for every listed slot that has bytes; returns how many. */
  submit(): number {
    const list = this.#list;
    const ring = this.#ring;
    let queued = 0;
    for (let i = 0; i < list.length; i++) {
      const slot = list.at(i);
      const source = this.#wanting[slot];
      this.#wanting[slot] = null;
      if (source == null || !this.#host.isLive(slot) || this.#inFlight[slot] !== null) continue;
      const range = this.#range;
      const view = source._ringSendHead(range);
      if (view === null) continue;
      const seq = (this.#seq[slot] + 1) >>> 0;
      this.#seq[slot] = seq;
      this.#inFlight[slot] = source;
      this.#views[slot] = view;
      const at = this.#addressOf(slot, view) + range[0];
      const w = ring.entry();
      ring.prepare(w, IORING_OP_SEND, this.#host.fdOf(slot), range[1], MSG_NOSIGNAL, (slot | SEND_TAG) >>> 0, seq);
      const low = at >>> 0; // the low word (a double's % is a C call in V8)
      ring.setAddress(w, low, (at - low) / 2 ** 32);
      queued++;
    }
    list.clear();
    return queued;
  }

  /**
   * `slot` leaves: forgotten by the list, and its send in flight cancelled (the backend submits
   * the cancellation). Whether a send is in flight (then the backend waits for it: `settle`).
   */
  leave(slot: number): boolean {
    if (this.#wanting[slot] !== null) this.#wanting[slot] = null; // its list entry is skipped
    this.#lastBlock[slot] = null; // the queue's block goes with the socket
    if (!this.inFlight(slot)) return this.#inFlight[slot] !== null;
    const w = this.#ring.entry();
    this.#ring.prepare(w, IORING_OP_ASYNC_CANCEL, -1, 0, 0, IGNORE, 0);
    this.#ring.setAddress(w, (slot | SEND_TAG) >>> 0, this.#seq[slot]);
    return true;
  }

  /** Whether any send is in flight (before close: the backend waits for them). */
  busy(): boolean {
    for (let slot = 0; slot < this.#inFlight.length; slot++) if (this.inFlight(slot)) return true;
    return false;
  }

  /** A send's completion, read by the backend's absorb (low word without SEND_TAG, high word, res). Handed over by `deliver`. */
  completed(slot: number, seq: number, res: number): void {
    if (slot >= this.#seq.length || this.#seq[slot] !== seq || this.#inFlight[slot] == null || this.#result[slot] !== NONE) return;
    this.#result[slot] = res;
    this.#views[slot] = null;
    this.#done.push(slot);
  }

  /** Hands the completions read to their sources, in order (a source may list itself again). */
  deliver(): void {
    // A source's _ringSent may close it, which enters the ring, absorbs, and appends here: the
    // loop below takes those too, and a nested deliver leaves them to it.
    if (this.#delivering) return;
    this.#delivering = true;
    const done = this.#done;
    let i = 0;
    try {
      while (i < done.length) this.#handOver(done.at(i++));
    } finally {
      // A throw (a bug) keeps the rest for the next deliver rather than losing them.
      done.dropFirst(i);
      this.#delivering = false;
    }
  }

  /** Hands `slot`'s completion over now if it has been read (the backend's remove, before it returns). */
  settle(slot: number): void {
    if (this.#inFlight[slot] !== null && this.#result[slot] !== NONE) this.#handOver(slot);
  }

  /**
   * `slot`'s send never completed although cancelled (which the kernel does not do): the source
   * is told it failed (its stream ends), and its bytes stay referenced for the kernel.
   */
  abandon(slot: number, errno: number): void {
    const source = this.#inFlight[slot];
    if (source == null) return;
    const view = this.#views[slot];
    if (view !== null) this.#abandoned.push(view);
    this.#views[slot] = null;
    this.#inFlight[slot] = null;
    this.#seq[slot] = (this.#seq[slot] + 1) >>> 0; // its completion, if it ever comes, is stale
    source._ringSent(-errno);
  }

  /** The slots whose sends are in flight (for close, which abandons those that never complete). */
  inFlightSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#inFlight.length; slot++) if (this.inFlight(slot)) slots.push(slot);
    return slots;
  }

  #addressOf(slot: number, bytes: Uint8Array): number {
    // A socket sends from the same block send after send: the slot remembers the last one (a
    // WeakMap lookup was a twentieth of this backend's JavaScript per request).
    if (this.#lastBlock[slot] === bytes) return this.#lastAddress[slot];
    let at = this.#addresses.get(bytes);
    if (at === undefined) {
      at = Number(koffi.address(bytes));
      this.#addresses.set(bytes, at);
    }
    this.#lastBlock[slot] = bytes;
    this.#lastAddress[slot] = at;
    return at;
  }

  #handOver(slot: number): void {
    const source = this.#inFlight[slot];
    const res = this.#result[slot];
    if (source == null || res === NONE) return;
    this.#inFlight[slot] = null;
    this.#result[slot] = NONE;
    const bits = source._ringSent(res);
    if (bits !== 0 && this.#host.isLive(slot)) this.#host.note(slot, bits);
    // The multiplexer is closing and no longer lists sources (its backend is gone for them): list
    // the rest of this queue here, for finish's next round (submit skips a source with nothing left).
    if (this.finishing && res > 0) this.want(slot, source);
  }
}
