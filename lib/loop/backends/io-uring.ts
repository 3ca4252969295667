/**
 * io_uring(7) backend, readiness through IORING_OP_POLL_ADD, level-triggered like the epoll one.
 *
 * ## Why one-shot polls, re-armed
 * The Multiplexer promises level-triggered readiness: bytes left unread are reported again by the
 * next wait. An io_uring poll, multishot or not, reports a *change*: a multishot poll posts a
 * completion for each wake-up of the socket's wait queue (new data, new room), never again for
 * data that is merely still there (measured: a multishot poll on a socket with unread bytes
 * posts one completion, then none until the peer writes more). So each watched fd has one
 * one-shot POLL_ADD in the kernel; when it completes, its slot is reported, and at the start of
 * the next wait (or the Reactor's settle, below) the poll is armed again. Arming checks the fd
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
 * (no FIN) while it is armed. So `remove` submits the POLL_REMOVE at once and runs the task work
 * that completes it: when remove returns, the kernel holds the file no more.
 *
 * ## Event-loop integration (the Reactor)
 * With DEFER_TASKRUN, completions are posted only inside our own io_uring_enter, and the ring fd
 * is never woken: the Reactor watches a registered eventfd instead (`wakeFd`), which the kernel
 * signals when task work arrives for an empty list. `settle` is the protocol that makes sleeping
 * on it safe; see its comment. Outside the Reactor's drain, add/modify submit at once (a Reactor
 * sleeps in libuv, and nothing else would submit them), like epoll_ctl.
 */
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  IORING_ASYNC_CANCEL_ALL,
  IORING_ASYNC_CANCEL_ANY,
  IORING_ENTER_GETEVENTS,
  IORING_OP_ASYNC_CANCEL,
  IORING_OP_POLL_ADD,
  IORING_OP_POLL_REMOVE,
  IORING_REGISTER_EVENTFD,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLRDHUP,
} from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import { closeFd, sys } from '../../../ffi/syscall.ts';
import { ERROR, HANGUP, READABLE, WRITABLE } from '../../core/watch.ts';
import type { Backend } from './backend.ts';
import { Ring } from './io-uring-ring.ts';

/** user_data low word of removals and cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
const ECANCELED = ERRNO.ECANCELED;
const SQ_ENTRIES = 256;
const CQ_ENTRIES = 4096;
const INITIAL_CAPACITY = 16;
/** Most turns of `settle` before it hands back to the event loop (with the eventfd signalled). */
const SETTLE_ROUNDS = 16;

/** A slot with no poll in the kernel and none queued. */
const IDLE = 0;
/** A slot whose poll (of sequence `#seq[slot]`) is queued or in the kernel. */
const ARMED = 1;
/** A slot whose poll completed and was reported: armed again before the next wait sleeps. */
const FIRED = 2;

function toPoll(bits: number): number {
  return ((bits & READABLE) !== 0 ? POLLIN | POLLRDHUP : 0) | ((bits & WRITABLE) !== 0 ? POLLOUT : 0);
}

function fromPoll(revents: number): number {
  return (
    ((revents & POLLIN) !== 0 ? READABLE : 0) |
    ((revents & POLLOUT) !== 0 ? WRITABLE : 0) |
    ((revents & (POLLHUP | POLLRDHUP)) !== 0 ? HANGUP : 0) |
    ((revents & (POLLERR | POLLNVAL)) !== 0 ? ERROR : 0)
  );
}

export class IoUringBackend implements Backend {
  /** No fd to watch from another loop: the ring fd is never woken under DEFER_TASKRUN (use `wakeFd`). */
  readonly fd = -1;
  readonly #ring: Ring;
  readonly #maxEvents: number;
  #fds = new Int32Array(INITIAL_CAPACITY);
  #generations = new Uint32Array(INITIAL_CAPACITY);
  #seq = new Uint32Array(INITIAL_CAPACITY);
  #events = new Uint32Array(INITIAL_CAPACITY);
  #state = new Uint8Array(INITIAL_CAPACITY);
  /** Slots reported by the last wait (or cancelled by the kernel), FIRED until re-armed. Reused: no allocation once grown. */
  readonly #fired: number[] = [];
  readonly #readySlots: Uint32Array;
  readonly #readyGenerations: Uint32Array;
  readonly #readyBits: Uint8Array;
  /** The registered eventfd, once a Reactor asked for it; -1 before. */
  #wakeFd = -1;
  readonly #counter = new Uint8Array(8);
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

  constructor(maxEvents: number) {
    this.#maxEvents = maxEvents;
    this.#readySlots = new Uint32Array(maxEvents);
    this.#readyGenerations = new Uint32Array(maxEvents);
    this.#readyBits = new Uint8Array(maxEvents);
    this.#ring = new Ring(SQ_ENTRIES, CQ_ENTRIES);
  }

  /** Whether the ring runs with DEFER_TASKRUN (completions posted only inside our own enter). */
  get deferTaskrun(): boolean {
    return this.#ring.deferTaskrun;
  }

  add(fd: number, slot: number, generation: number, bits: number): void {
    if (slot >= this.#state.length) this.#grow(slot);
    this.#fds[slot] = fd;
    this.#generations[slot] = generation;
    this.#events[slot] = toPoll(bits);
    this.#arm(slot);
    this.#submitIfWatched();
  }

  modify(fd: number, slot: number, generation: number, bits: number): void {
    this.#fds[slot] = fd;
    this.#generations[slot] = generation;
    this.#events[slot] = toPoll(bits);
    // A FIRED slot is re-armed with the new events anyway. An ARMED one is replaced: cancel the
    // poll in the kernel and arm a new one (new sequence, so whatever the old one posts is stale;
    // and the new one checks readiness as it arms, so nothing that fired meanwhile is lost).
    if (this.#state[slot] === ARMED) {
      this.#cancel(slot);
      this.#arm(slot);
    } else if (this.#state[slot] === IDLE) {
      this.#arm(slot);
    }
    this.#submitIfWatched();
  }

  remove(fd: number, slot: number): void {
    const armed = this.#state[slot] === ARMED;
    this.#state[slot] = IDLE;
    if (!armed) return;
    this.#cancel(slot);
    this.#seq[slot] = (this.#seq[slot] + 1) >>> 0;
    // Now, not at the next wait: the poll holds the file until its cancellation has run (see
    // "Remove before close").
    const before = this.#ring.ready();
    this.#ring.enter(0, IORING_ENTER_GETEVENTS);
    if (this.#wakeFd >= 0 && this.#ring.ready() !== before) this.#quiet();
  }

  wait(timeoutMs: number): number {
    const ring = this.#ring;
    this.#rearm();
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    let remaining = timeoutMs;
    for (;;) {
      // Completions already there (inline ones from an earlier submit): submit, do not sleep.
      if (remaining === 0 || ring.ready() > 0) ring.enter(0, IORING_ENTER_GETEVENTS);
      else if (remaining < 0) ring.enter(1, IORING_ENTER_GETEVENTS);
      else ring.enterTimed(remaining);
      // WOULD_BLOCK (no memory for requests now), RING_BUSY (CQ overflowed) and TIMED_OUT all
      // come to the same: take what is in the CQ; the next enter submits or flushes the rest.
      const found = this.#harvest();
      if (found > 0 || timeoutMs === 0) return found;
      // Only stale completions (cancellations, replaced polls) woke us: sleep for what remains.
      if (timeoutMs > 0) {
        remaining = deadline - performance.now();
        if (remaining <= 0) return 0;
      }
    }
  }

  slotAt(index: number): number {
    return this.#readySlots[index];
  }

  generationAt(index: number): number {
    return this.#readyGenerations[index];
  }

  bitsAt(index: number): number {
    return this.#readyBits[index];
  }

  /**
   * The eventfd the kernel signals when this ring has work (registered on first use). Once it is
   * asked for, add and modify submit at once: whoever watches it sleeps until it is signalled.
   */
  wakeFd(): number {
    if (this.#wakeFd < 0) {
      const efd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      try {
        this.#ring.register(IORING_REGISTER_EVENTFD, new Uint8Array(new Int32Array([efd]).buffer), 1);
      } catch (err) {
        closeFd(efd);
        throw err;
      }
      this.#wakeFd = efd;
    }
    return this.#wakeFd;
  }

  /**
   * Makes it safe to sleep until `wakeFd` is readable: returns false when it is, true when
   * completions are ready now (handle them with `wait(0)` and settle again). Never return to the
   * event loop with entries written but not submitted, nor with task work pending: the kernel
   * signals the eventfd only when its work list goes from empty to non-empty, so either would
   * stall the ring for good.
   *
   * 1. Re-arm the slots reported, submit everything and run the deferred task work.
   * 2. Completions ready: say so (the caller drains, then settles again).
   * 3. Clear the eventfd, after the last enter: that swallows the signal our own enter raised by
   *    posting completions.
   * 4. ...but work queued between that enter and the read would be lost with it, so look at
   *    IORING_SQ_TASKRUN, which the kernel sets *before* it signals the eventfd (the eventfd's
   *    lock orders the two on both architectures: release in the kernel's signal, acquire in our
   *    read). Set: go round again. On a ring without DEFER_TASKRUN, completions are posted by task
   *    work at any syscall exit, our read included, so look at the CQ once more too.
   *
   * One enter runs a bounded batch of task work (IO_LOCAL_TW_DEFAULT_MAX, 20, on newer kernels),
   * keeps the rest for the next enter and clears IORING_SQ_TASKRUN all the same. The batch posts
   * completions (a poll's completion is one), so step 2 sends the caller round again and the next
   * settle's enter runs more; only a batch of 20 items that post nothing (spurious wake-ups) with
   * more behind them could leave work unseen. Running everything at once (min_complete = the CQ
   * size with a zero timeout) was measured at 24-38 µs per call (the wait sleeps out the timer
   * slack) against 0.5-0.9 µs for a plain enter, so it is not used.
   */
  settle(): boolean {
    const ring = this.#ring;
    for (let round = 0; round < SETTLE_ROUNDS; round++) {
      this.#rearm();
      if (ring.pending() > 0 || ring.taskRunPending()) ring.enter(0, IORING_ENTER_GETEVENTS);
      if (ring.ready() > 0) return true;
      if (this.#wakeFd >= 0) sys.read(this.#wakeFd, this.#counter, 8);
      if (ring.ready() > 0) return true;
      if (!(ring.deferTaskrun && ring.taskRunPending())) return false;
    }
    // Task work keeps coming (or an enter keeps being interrupted): never spin here; the eventfd,
    // signalled by hand, brings us back after the loop's other work.
    this.poke();
    return false;
  }

  /** Signals `wakeFd` ourselves: the watcher runs again after the loop's other work (fairness). */
  poke(): void {
    if (this.#wakeFd >= 0) sys.write(this.#wakeFd, this.#one, 8);
  }

  close(): void {
    // Cancel every poll and run the cancellations, so that no file stays referenced by a ring
    // that the kernel tears down in the background.
    try {
      const w = this.#ring.entry();
      this.#ring.prepare(w, IORING_OP_ASYNC_CANCEL, 0, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL, IGNORE, 0);
      this.#ring.enter(0, IORING_ENTER_GETEVENTS);
    } catch {
      // Closing the ring cancels them all the same, only later.
    }
    this.#ring.close();
    this.#state.fill(IDLE);
    this.#fired.length = 0;
    if (this.#wakeFd >= 0) {
      const efd = this.#wakeFd;
      this.#wakeFd = -1;
      closeFd(efd);
    }
  }

  /** Queues a one-shot POLL_ADD for `slot` with a new sequence. */
  #arm(slot: number): void {
    const seq = (this.#seq[slot] + 1) >>> 0;
    this.#seq[slot] = seq;
    const w = this.#ring.entry();
    this.#ring.prepare(w, IORING_OP_POLL_ADD, this.#fds[slot], 0, this.#events[slot], slot, seq);
    this.#state[slot] = ARMED;
  }

  /** Queues a POLL_REMOVE of `slot`'s current poll. */
  #cancel(slot: number): void {
    const w = this.#ring.entry();
    this.#ring.prepare(w, IORING_OP_POLL_REMOVE, -1, 0, 0, IGNORE, 0);
    this.#ring.setAddress(w, slot, this.#seq[slot]);
  }

  /** Arms again every slot reported by the last wait that is still FIRED. */
  #rearm(): void {
    const fired = this.#fired;
    for (let i = 0; i < fired.length; i++) {
      const slot = fired[i];
      if (this.#state[slot] === FIRED) this.#arm(slot);
    }
    fired.length = 0;
  }

  #submitIfWatched(): void {
    if (this.#wakeFd < 0) return;
    const before = this.#ring.ready();
    this.#ring.enter(0, IORING_ENTER_GETEVENTS);
    if (this.#ring.ready() !== before) this.#quiet();
  }

  /**
   * After a submit outside the Reactor's drain that posted completions (and so signalled the
   * eventfd): if all of them are stale (cancellations), drop them and clear the eventfd, so that
   * the loop is not woken for nothing (and a process whose loop is ending finds no readable fd).
   * Anything live left, or task work queued meanwhile: signal the eventfd again.
   */
  #quiet(): void {
    const ring = this.#ring;
    const available = ring.ready();
    let stale = 0;
    for (; stale < available; stale++) {
      const w = ring.completion(stale);
      const slot = ring.dataLow(w);
      if (slot !== IGNORE && slot < this.#state.length && this.#state[slot] === ARMED && this.#seq[slot] === ring.dataHigh(w)) break;
    }
    ring.consume(stale);
    if (stale < available) return;
    sys.read(this.#wakeFd, this.#counter, 8);
    if (ring.ready() > 0 || (ring.deferTaskrun && ring.taskRunPending())) this.poke();
  }

  /** Reads up to maxEvents completions into the ready arrays; the rest stay in the CQ for the next wait. */
  #harvest(): number {
    const ring = this.#ring;
    const available = ring.ready();
    const max = this.#maxEvents;
    let found = 0;
    let consumed = 0;
    for (; consumed < available && found < max; consumed++) {
      const w = ring.completion(consumed);
      const slot = ring.dataLow(w);
      if (slot === IGNORE || slot >= this.#state.length) continue;
      if (this.#state[slot] !== ARMED || this.#seq[slot] !== ring.dataHigh(w)) continue;
      const res = ring.result(w);
      if (res === -ECANCELED) {
        // Cancelled by the kernel itself (not by us: ours have an old sequence): arm again.
        this.#state[slot] = FIRED;
        this.#fired.push(slot);
        continue;
      }
      if (res < 0) {
        // The poll could not be armed (EBADF: the fd is not open, a bookkeeping bug). Report an
        // error, as poll(2)'s POLLNVAL, and do not arm it again.
        this.#state[slot] = IDLE;
        this.#push(found++, slot, ERROR | HANGUP);
        continue;
      }
      this.#state[slot] = FIRED;
      this.#fired.push(slot);
      this.#push(found++, slot, fromPoll(res));
    }
    ring.consume(consumed);
    return found;
  }

  #push(index: number, slot: number, bits: number): void {
    this.#readySlots[index] = slot;
    this.#readyGenerations[index] = this.#generations[slot];
    this.#readyBits[index] = bits;
  }

  /** Grows the per-slot arrays (doubling) until they hold `slot`. */
  #grow(slot: number): void {
    let length = this.#state.length;
    while (length <= slot) length *= 2;
    const grow = <T extends Int32Array | Uint32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(length);
      next.set(old);
      return next;
    };
    this.#fds = grow(this.#fds, (n) => new Int32Array(n));
    this.#generations = grow(this.#generations, (n) => new Uint32Array(n));
    this.#seq = grow(this.#seq, (n) => new Uint32Array(n));
    this.#events = grow(this.#events, (n) => new Uint32Array(n));
    this.#state = grow(this.#state, (n) => new Uint8Array(n));
  }
}
