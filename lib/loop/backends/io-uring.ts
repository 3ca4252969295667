/**
 * io_uring(7) backend, readiness through IORING_OP_POLL_ADD, level-triggered like the epoll one.
 *
 * The slots and their polls are io-uring-poll.ts (RingPoller): one one-shot POLL_ADD per watched
 * fd, re-armed at each turn, which is how a change-reporting poll gives level-triggered readiness
 * (see "Why one-shot polls, re-armed" there). This file is the coordinator: the Backend over one
 * ring, completions handed by their user_data tag to the poller, the receiver, the acceptor and the
 * sender, the bits they note gathered and reported by `wait`. The wake-up protocol with the
 * Reactor (the eventfd, `settle`) is io-uring-wake.ts (RingWakeup).
 *
 * ## Completion-based receive (TCP sockets)
 * A slot whose bits carry RECEIVES (a connected TCP socket read by its user) has no POLLIN poll:
 * a multishot receive (io-uring-receive.ts) queues its bytes, and the slot is reported readable
 * while bytes or the end wait, level-triggered as before; the socket's receive takes them with
 * `receive`. Its completions carry RECV_TAG in the low word of user_data; `#absorb` hands them
 * over. Only on DEFER_TASKRUN rings (see that file for why).
 *
 * ## Completion-based accept (listeners)
 * Likewise a listener whose bits carry ACCEPTS has a multishot accept (io-uring-accept.ts) in
 * place of its POLLIN poll: the fds it brings are held for the listener, reported readable while
 * they wait, and taken by `accept`; its completions carry ACCEPT_TAG.
 *
 * ## Eventfds (Wakers)
 * A slot whose bits carry EVENTFD is watched by an epoll set (io-uring-eventfds.ts), not by a
 * poll of its own reading: a ring poll on an eventfd would leave a Reactor unwoken (see there).
 */
import { IORING_ASYNC_CANCEL_ALL, IORING_ASYNC_CANCEL_ANY, IORING_ENTER_GETEVENTS, IORING_OP_ASYNC_CANCEL } from '../../../ffi/constants.ts';
import { closesAtTeardown } from '../../../ffi/teardown.ts';
import { ACCEPTS, EVENTFD, HANGUP, HELD_NONE, READABLE, RECEIVES } from '../../core/watch.ts';
import type { Backend, Received, SendSource } from './backend.ts';
import { ACCEPT_TAG, RingAcceptor } from './io-uring-accept.ts';
import { EVENTFDS, RingEventfds } from './io-uring-eventfds.ts';
import { NO_NOTE, RingPoller } from './io-uring-poll.ts';
import { RECV_TAG, RingReceiver, type ReceiverHost } from './io-uring-receive.ts';
import { RingSender, SEND_TAG, type SenderHost } from './io-uring-send.ts';
import { RingWakeup, type WakeHost } from './io-uring-wake.ts';
import { ReadyList } from './ready-list.ts';
import { Ring } from './io-uring-ring.ts';
import { grownTo } from './slot-arrays.ts';
import { SlotList } from './slot-list.ts';

/** user_data low word of removals and cancellations: their completions are skipped. */
const IGNORE = 0xffffffff;
/** Most rounds of sends `finish` makes before the close (each round: one block per socket). */
const FINISH_ROUNDS = 64;
const SQ_ENTRIES = 256;
const CQ_ENTRIES = 4096;
const INITIAL_CAPACITY = 16;
const EMPTY = new Uint8Array(0);

/** A ring (`deferred`: DEFER_TASKRUN where the kernel has it), checked to take io_uring_enter. */
function openRing(deferred: boolean): Ring {
  const ring = new Ring(SQ_ENTRIES, CQ_ENTRIES, deferred);
  try {
    // A seccomp profile may allow io_uring_setup and refuse io_uring_enter (EPERM): find out
    // now, so that the multiplexer runs epoll instead of failing at its first add.
    ring.enter(0, 0);
  } catch (err) {
    ring.close();
    throw err;
  }
  return ring;
}

export class IoUringBackend extends ReadyList implements Backend {
  /** No fd to watch from another loop: the ring fd is never woken under DEFER_TASKRUN (use `wakeFd`). */
  readonly fd = -1;
  readonly #ring: Ring;
  readonly #maxEvents: number;
  /** Completion-based receive; null where it is off or the ring cannot (no DEFER_TASKRUN, no buffer rings). */
  readonly #receiver: RingReceiver | null;
  /** Completion-based accept; null where it is off or the ring has no DEFER_TASKRUN. */
  readonly #acceptor: RingAcceptor | null;
  /** Completion-based send (`ringSend`); null where it is off or the ring has no DEFER_TASKRUN. */
  readonly #sender: RingSender | null;
  /** Wakers' eventfds, watched by an epoll set (see "Eventfds"). */
  readonly #eventfds: RingEventfds;
  /** The slots (fd, generation, interest, watched) and their one-shot polls. */
  readonly #poller: RingPoller;
  /** The eventfd a Reactor sleeps on, and when it may. */
  readonly #wakeup: RingWakeup;
  /** Blocking waits sleep in poll(2), not in the ring: a worker thread's ring that accepts (see io-uring-wake.ts). */
  readonly #sleepsOutside: boolean;
  #closed = false;
  /** Bits found for the slot (by its poll, receive, accept or send) and not reported yet, and the slots that have some (each once). */
  #pendingBits = new Uint8Array(INITIAL_CAPACITY);
  readonly #pendingList = new SlotList();

  /**
   * `promptWake`: a Reactor's multiplexer, which sleeps in libuv on the ring's eventfd.
   * Where the kernel signals a DEFER_TASKRUN ring's eventfd late (RingWakeup.signalsAtOnce:
   * Linux 6.18.44, about 16 ms per wake-up), its ring is a plain one instead, whose fd is
   * readable as soon as completions are posted (the Reactor watches it: RingWakeup.fd):
   * readiness by polls only, since receiving, sending and accepting by the ring need
   * DEFER_TASKRUN (`receives`, `sends`, `accepts` say false).
   * In a worker, a ring that would accept sleeps in poll(2) on that eventfd: there too, a late
   * signal turns the ring's accept off. `promptWake` false: neither is asked (tests of those
   * paths, which then wake late on such a kernel).
   */
  constructor(maxEvents: number, ringReceive = true, ringSend = false, ringAccept = true, promptWake?: boolean) {
    super(maxEvents);
    this.#maxEvents = maxEvents;
    const wakeHost: WakeHost = {
      rearm: () => this.#rearm(),
      absorb: () => this.#absorb(),
      reportable: () => this.#reportable(),
      sendsListed: () => this.#sender?.listed === true,
      endTurn: () => this.#sender?.endTurn(),
    };
    let ring = openRing(true);
    let wakeup = new RingWakeup(ring, wakeHost);
    if (promptWake === true && ring.deferTaskrun) {
      let atOnce: boolean;
      try {
        atOnce = wakeup.signalsAtOnce();
      } catch (err) {
        wakeup.close();
        ring.close();
        throw err;
      }
      if (!atOnce) {
        wakeup.close();
        ring.close();
        ring = openRing(false);
        wakeup = new RingWakeup(ring, wakeHost);
      }
    }
    this.#ring = ring;
    this.#wakeup = wakeup;
    // The hosts ask the poller and the wake-up only once slots are added: the poller is made
    // after the receiver and the acceptor, which it asks what they take off its polls.
    const host = this.#host();
    this.#receiver = ringReceive && this.#ring.deferTaskrun ? RingReceiver.open(this.#ring, host, INITIAL_CAPACITY) : null;
    // A worker's ring that accepts sleeps in poll(2) on the registered eventfd (`#sleepsOutside`):
    // where the ring refuses that eventfd, it does not accept (listeners use accept4).
    // A poll(2) sleep on an eventfd the kernel signals late would wake late: no ring accept then.
    // (`promptWake` false: accepts all the same, for tests of that path whatever the kernel.)
    const sleeps = (): boolean => (promptWake === false ? this.#wakeup.canSleep() : this.#wakeup.signalsAtOnce());
    const accepts = ringAccept && this.#ring.deferTaskrun && (!closesAtTeardown || sleeps());
    this.#acceptor = accepts ? new RingAcceptor(this.#ring, host, INITIAL_CAPACITY) : null;
    this.#eventfds = new RingEventfds(this.#ring, (slot, bits) => this.#note(slot, bits), INITIAL_CAPACITY);
    this.#poller = new RingPoller(this.#ring, [this.#receiver, this.#acceptor, this.#eventfds], INITIAL_CAPACITY);
    this.#sender = ringSend && this.#ring.deferTaskrun ? new RingSender(this.#ring, this.#senderHost(), INITIAL_CAPACITY) : null;
    this.#sleepsOutside = this.#acceptor !== null && closesAtTeardown;
  }

  /** Wakers' eventfds are watched apart (see "Eventfds"). */
  readonly eventfds = true;

  /** Whether stream sockets' queues are sent by IORING_OP_SEND entries (see io-uring-send.ts). */
  get sends(): boolean {
    return this.#sender !== null;
  }

  /** `source` (in `slot`) has queued bytes: sent with the next submission (RingSender.sendSoon). */
  sendSoon(slot: number, source: SendSource): void {
    this.#sender?.sendSoon(slot, source);
  }

  /** The ring's fd (for the leak finalizer; a Reactor watches it through `wakeFd` on a ring without DEFER_TASKRUN only). */
  get ringFd(): number {
    return this.#ring.fd;
  }

  /** Whether the ring runs with DEFER_TASKRUN (completions posted only inside our own enter). */
  get deferTaskrun(): boolean {
    return this.#ring.deferTaskrun;
  }

  /** Whether the rings are in memory of ours (IORING_SETUP_NO_MMAP: see io-uring-ring.ts, "Buffers the kernel holds"). */
  get ownMemory(): boolean {
    return this.#ring.ownMemory;
  }

  /** Whether TCP sockets are read by multishot receives into the buffer ring (see "Completion-based receive"). */
  get receives(): boolean {
    return this.#receiver !== null;
  }

  /** Whether listeners' connections are taken by multishot accepts (see "Completion-based accept"). */
  get accepts(): boolean {
    return this.#acceptor !== null;
  }

  /** What `receive` answered with a view (see Backend.receive). */
  get view(): Uint8Array {
    return this.#receiver === null ? EMPTY : this.#receiver.view;
  }

  add(fd: number, slot: number, generation: number, bits: number): void {
    if (slot >= this.#pendingBits.length) this.#grow(slot);
    this.#eventfds.attach(slot, fd, (bits & EVENTFD) !== 0, (bits & READABLE) !== 0);
    this.#poller.watch(slot, fd, generation, bits);
    this.#pendingBits[slot] = 0;
    this.#receiver?.attach(slot, (bits & RECEIVES) !== 0);
    this.#acceptor?.attach(slot, (bits & ACCEPTS) !== 0);
    this.#poller.arm(slot);
    this.#wakeup.submitIfWatched();
  }

  modify(fd: number, slot: number, generation: number, bits: number): void {
    this.#poller.update(slot, fd, generation, bits);
    // Before the poll is replaced: its mask leaves out what an armed receive or accept serves.
    this.#receiver?.want(slot, (bits & RECEIVES) !== 0);
    this.#acceptor?.want(slot, (bits & ACCEPTS) !== 0);
    this.#eventfds.want(slot, fd, (bits & READABLE) !== 0);
    this.#poller.replace(slot);
    this.#wakeup.submitIfWatched();
    // Reading resumed (from outside a drain: a timer, the Reactor's throw backoff) on bytes the
    // ring holds already: no kernel event will come for them, so wake the watcher ourselves, as
    // epoll's fd turns readable when a modify finds the socket ready.
    if (this.#wakeup.watched && this.#poller.reading(slot) && this.#holds(slot)) this.#wakeup.poke();
  }

  remove(fd: number, slot: number): void {
    this.#eventfds.detach(slot, fd);
    const armed = this.#poller.remove(slot);
    const receiving = this.#receiver?.detach(slot) === true || this.#acceptor?.detach(slot) === true;
    const sending = this.#sender?.leave(slot) === true;
    // Now, not at the next wait: a poll or a receive holds the file until its cancellation has
    // run (see "Remove before close" in io-uring-poll.ts), and a receive's last bytes must be
    // queued before the multiplexer takes them (`release`). Entries still unsubmitted count too:
    // a pause (modify) outside a Reactor queues its receive's cancellation for the next wait, and
    // until it has run that receive may still take bytes, which would then carry a generation the
    // slot no longer has (found by the random-interleavings property: pause, remove, add, send
    // one byte).
    if (armed || receiving || sending || this.#ring.pending() > 0) {
      this.#ring.enter(0, IORING_ENTER_GETEVENTS);
      this.#wakeup.afterOwnEnter();
    }
    // A send in flight must have ended (sent, or cancelled before it sent anything) before its
    // socket sends by itself: it learns now how many of its queued bytes went.
    if (sending) this.#sender!.awaitLeft(slot);
  }

  /** `source`'s queue reached its cap within a turn: its send goes now (RingSender.sendNow). */
  sendNow(slot: number, source: SendSource): void {
    this.#sender?.sendNow(slot, source);
  }

  /** See Backend.receive and RingReceiver.take. */
  receive(slot: number, into: Uint8Array | null, spill: Uint8Array): number {
    return this.#receiver === null ? HELD_NONE : this.#receiver.take(slot, into, spill);
  }

  /** The errno of a slot whose receive answered HELD_ERROR. */
  receiveErrno(slot: number): number {
    return this.#receiver === null ? 0 : this.#receiver.errno(slot);
  }

  /** See Backend.accept and RingAcceptor.take. */
  accept(slot: number): number {
    return this.#acceptor === null ? HELD_NONE : this.#acceptor.take(slot);
  }

  /** The errno of the last `accept` that answered HELD_ERROR. */
  acceptErrno(): number {
    return this.#acceptor === null ? 0 : this.#acceptor.errno;
  }

  /** After `remove` (before `release`): the fds the slot held for its listener (Backend.releaseAccepted). */
  releaseAccepted(slot: number): number[] | null {
    return this.#acceptor === null ? null : this.#acceptor.release(slot);
  }

  /** After `remove`: the slot is no longer watched; what it held for its socket (Backend.release). */
  release(slot: number): Received | null {
    if (!this.#poller.release(slot)) return null;
    return this.#receiver === null ? null : this.#receiver.release(slot);
  }

  /**
   * Before close (see Backend.finish): the sends queued this turn go (on epoll, send(2) would
   * have taken them already), then every receive, accept and send still in flight is cancelled,
   * and what they posted is taken in: bytes received and fds accepted wait for `release`, and
   * each socket learns how much of its queue went.
   */
  finish(): void {
    const sender = this.#sender;
    try {
      // A queue of several blocks goes one block per send: each completion lists the socket again
      // for the next, so go round while the kernel takes them at once (a send that finds no room
      // stays in flight, and is cancelled below, as send(2) would have taken no more either).
      if (sender !== null) {
        sender.finishing = true;
        try {
          for (let round = 0; round < FINISH_ROUNDS && sender.listed && sender.submit() > 0; round++) {
            this.#ring.enter(0, IORING_ENTER_GETEVENTS);
            this.#absorb();
          }
        } finally {
          sender.finishing = false;
        }
      }
      this.#receiver?.detachAll();
      const accepting = this.#acceptor?.detachAll() === true;
      const sending = sender === null ? [] : sender.inFlightSlots();
      for (const slot of sending) sender!.leave(slot);
      if (this.#receiver === null && !accepting && sending.length === 0) return;
      this.#ring.enter(0, IORING_ENTER_GETEVENTS);
      this.#absorb();
      for (const slot of sending) sender!.awaitLeft(slot);
    } catch {
      // The ring is failing: close will cancel what is left.
    }
  }

  wait(timeoutMs: number): number {
    const ring = this.#ring;
    this.#sender?.beginTurn();
    this.#rearm();
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    let remaining = timeoutMs;
    for (;;) {
      // A send completed short in the last round listed the rest of its queue: submitted now, or
      // this enter would sleep with it unsent (found by the bulk echo: 3 s stalls).
      if (this.#sender?.listed === true) this.#sender.submit();
      // Completions already there (inline ones from an earlier submit), or bytes already held:
      // submit, do not sleep.
      // (When completions are there and nothing is to submit or run, no enter: the Reactor's
      // settle has just entered, and a wait(0) after it would enter once more for nothing.)
      if (remaining === 0 || ring.ready() > 0 || this.#reportable()) {
        if (ring.ready() === 0 || ring.pending() > 0 || ring.taskRunPending()) ring.enter(0, IORING_ENTER_GETEVENTS);
      } else if (this.#sleepsOutside) {
        // A worker's ring that accepts: no task work may run in a call that sleeps (see
        // "Sleeping outside the ring" in io-uring-wake.ts).
        ring.enter(0, IORING_ENTER_GETEVENTS);
        if (ring.ready() === 0 && !this.#reportable() && this.#wakeup.sleep(remaining, this.#eventfds.membersFd)) {
          ring.enter(0, IORING_ENTER_GETEVENTS);
        }
      } else if (remaining < 0) ring.enter(1, IORING_ENTER_GETEVENTS);
      else ring.enterTimed(remaining);
      // WOULD_BLOCK (no memory for requests now), RING_BUSY (CQ overflowed) and TIMED_OUT all
      // come to the same: take what is in the CQ; the next enter submits or flushes the rest.
      this.#absorb();
      const found = this.#report();
      if (found > 0 || timeoutMs === 0) return found;
      // Only stale completions (cancellations, replaced polls) woke us: sleep for what remains.
      if (timeoutMs > 0) {
        remaining = deadline - performance.now();
        if (remaining <= 0) return 0;
      }
    }
  }

  /** The fd a Reactor sleeps on: the registered eventfd, or a plain ring's own fd (RingWakeup.fd). */
  wakeFd(): number {
    return this.#wakeup.fd();
  }

  /** The Wakers' epoll set, which a Reactor watches beside `wakeFd` (see "Eventfds"). */
  eventfdsFd(): number {
    return this.#eventfds.fd;
  }

  /** Makes it safe to sleep until `wakeFd` is readable: false when it is, true when events are ready now (RingWakeup.settle). */
  settle(): boolean {
    return this.#wakeup.settle();
  }

  /** Signals `wakeFd` ourselves: the watcher runs again after the loop's other work. */
  poke(): void {
    this.#wakeup.poke();
  }

  close(): void {
    this.#closed = true;
    // Cancel every poll and receive and run the cancellations, so that no file stays referenced
    // by a ring that the kernel tears down in the background, and no receive writes into the
    // buffers once they are given up.
    try {
      const w = this.#ring.entry();
      this.#ring.prepare(w, IORING_OP_ASYNC_CANCEL, 0, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL, IGNORE, 0);
      this.#ring.enter(0, IORING_ENTER_GETEVENTS);
      // Sends: their sockets learn how much went before they flush by themselves (_orphaned).
      // Accepts: an fd still in the CQ would be open with nobody to close it (the acceptor closes
      // what it holds, below).
      if (this.#sender !== null || this.#acceptor !== null) this.#absorb();
      if (this.#sender !== null) {
        for (const slot of this.#sender.inFlightSlots()) this.#sender.awaitLeft(slot);
      }
    } catch {
      // Closing the ring cancels them all the same, only later.
    }
    this.#receiver?.close();
    this.#acceptor?.close();
    this.#ring.close();
    this.#poller.close();
    this.#eventfds.close();
    this.#pendingList.clear();
    this.#wakeup.close();
  }

  /** What the receiver reads of the slots, and how it reports (see ReceiverHost). */
  #host(): ReceiverHost {
    return {
      fdOf: (slot) => this.#poller.fdOf(slot),
      generationOf: (slot) => this.#poller.generationOf(slot),
      isLive: (slot) => this.#poller.isLive(slot),
      reading: (slot) => this.#poller.reading(slot),
      note: (slot, bits) => this.#note(slot, bits),
      repoll: (slot) => this.#poller.repoll(slot),
    };
  }

  /** What the sender reads of the slots, how it reports, and how it enters the ring (see SenderHost). */
  #senderHost(): SenderHost {
    return {
      fdOf: (slot) => this.#poller.fdOf(slot),
      isLive: (slot) => this.#poller.isLive(slot),
      note: (slot, bits) => this.#note(slot, bits),
      watched: () => this.#wakeup.watched,
      closed: () => this.#closed,
      enterNow: () => {
        this.#ring.enter(0, IORING_ENTER_GETEVENTS);
        this.#wakeup.afterOwnEnter();
      },
      enterTimed: (ms) => {
        this.#ring.enterTimed(ms);
        this.#absorb();
      },
    };
  }

  /** Whether the ring holds bytes or fds for `slot` that its user has not taken. */
  #holds(slot: number): boolean {
    return this.#receiver?.holds(slot) === true || this.#acceptor?.holds(slot) === true;
  }

  /** Arms again every slot reported by the last wait that is still FIRED, and receives that ran dry once buffers are back. */
  #rearm(): void {
    this.#poller.rearm();
    this.#eventfds.rearm();
    this.#receiver?.rearmStarved();
    this.#acceptor?.rearmPolled();
    if (this.#sender?.listed === true) this.#sender.submit();
  }

  /** Whether a held slot has something its user would read: the next wait reports it without sleeping. */
  #reportable(): boolean {
    return this.#pendingList.length > 0 || this.#receiver?.reportable() === true || this.#acceptor?.reportable() === true;
  }

  /** Takes in every completion: polls fired, bytes received, ends; the bits go to the pending list. */
  #absorb(): void {
    const ring = this.#ring;
    const available = ring.ready();
    for (let consumed = 0; consumed < available; consumed++) {
      const w = ring.completion(consumed);
      const low = ring.dataLow(w);
      if (low === IGNORE) continue;
      if (low === EVENTFDS) {
        this.#eventfds.completed(ring.dataHigh(w));
        continue;
      }
      if ((low & ACCEPT_TAG) !== 0 && (low & (RECV_TAG | SEND_TAG)) === 0) {
        this.#acceptor?.completed(low & ~ACCEPT_TAG, ring.dataHigh(w), ring.result(w), ring.flags(w));
        continue;
      }
      if ((low & SEND_TAG) !== 0 && (low & RECV_TAG) === 0) {
        this.#sender?.completed(low & ~SEND_TAG, ring.dataHigh(w), ring.result(w));
        continue;
      }
      if ((low & RECV_TAG) !== 0) {
        this.#receiver?.completed(low & ~RECV_TAG, ring.dataHigh(w), ring.result(w), ring.flags(w));
        continue;
      }
      // A poll's (no tag).
      const bits = this.#poller.completed(low, ring.dataHigh(w), ring.result(w));
      if (bits !== NO_NOTE) this.#note(low, bits);
    }
    ring.consume(available);
    // After the head moved: a socket told of its send may close, and enter the ring again.
    this.#sender?.deliver();
  }

  #note(slot: number, bits: number): void {
    if (this.#pendingBits[slot] === 0) this.#pendingList.push(slot);
    this.#pendingBits[slot] |= bits;
  }

  /**
   * Fills the ready arrays, up to maxEvents, from the pending list and the held slots (see
   * RingReceiver.noteHeld); the rest stays for the next wait.
   */
  #report(): number {
    this.#receiver?.noteHeld();
    this.#acceptor?.noteHeld();
    const poller = this.#poller;
    const pending = this.#pendingList;
    const max = this.#maxEvents;
    let found = 0;
    let taken = 0;
    for (; taken < pending.length && found < max; taken++) {
      const slot = pending.at(taken);
      let bits = this.#pendingBits[slot];
      this.#pendingBits[slot] = 0;
      // Readable only while its interest says so (as the kernel's mask does on epoll): a socket
      // that paused reading after the bits were noted (send queue full, during the last
      // dispatch) must not be told to read, nor of the peer's FIN that came with them (epoll's
      // EPOLLRDHUP belongs to the reading mask too).
      if (!poller.reading(slot) && (bits & READABLE) !== 0) bits &= ~(READABLE | HANGUP);
      if (!poller.isLive(slot) || bits === 0) continue;
      this.setReady(found++, slot, poller.generationOf(slot), bits);
    }
    // Drop what was taken, keeping the rest in order (no allocation, unlike splice).
    pending.dropFirst(taken);
    return found;
  }

  /** Grows the per-slot arrays (doubling) until they hold `slot`. */
  #grow(slot: number): void {
    let length = this.#pendingBits.length;
    while (length <= slot) length *= 2;
    this.#pendingBits = grownTo(this.#pendingBits, length);
    this.#poller.grow(length);
    this.#receiver?.grow(length);
    this.#acceptor?.grow(length);
    this.#eventfds.grow(length);
    this.#sender?.grow(length);
  }
}
