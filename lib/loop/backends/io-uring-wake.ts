/**
 * The io_uring backend's wake-up protocol with the Reactor (io-uring.ts): the eventfd registered
 * with the ring, and when it is safe for the Reactor to go back to sleep on it. The backend keeps
 * the polls, receives, accepts and sends; this file knows the eventfd and the ring's flags,
 * nothing of what the completions are.
 *
 * ## Event-loop integration (the Reactor)
 * With DEFER_TASKRUN, completions are posted only inside our own io_uring_enter, and the ring fd
 * is never woken: the Reactor watches a registered eventfd instead (`fd`), which the kernel
 * signals when task work arrives for an empty list. `settle` is the protocol that makes sleeping
 * on it safe; see its comment. Outside the Reactor's drain, add/modify submit at once (a Reactor
 * sleeps in libuv, and nothing else would submit them), like epoll_ctl (`submitIfWatched`).
 *
 * A ring without DEFER_TASKRUN (where the kernel signals a deferred ring's eventfd late, or has
 * no DEFER_TASKRUN) posts completions as they come, and its fd is readable while the CQ holds
 * any (io_uring_poll): the Reactor watches the ring fd itself, and no eventfd is registered. A
 * wake-up then costs no read(2) to clear a counter (1 of the 7 syscalls of a request at one
 * connection): the fd stops being readable when the completions are taken in.
 *
 * ## Sleeping outside the ring (`sleep`)
 * A blocking wait normally sleeps in io_uring_enter, which runs the deferred task work as it
 * comes: a multishot accept's connections become fds of the process inside that call. In a worker
 * thread, `terminate()` stops JavaScript as the call returns, before the completions that carry
 * those fds are read, and nothing would ever close them (58 sockets left by 5 of 60 workers
 * terminated under a connection flood, bench/worker-terminate.ts). So where fds are accepted by
 * the ring in a worker, the backend sleeps in poll(2) instead, which runs no task work: a worker
 * stopped then has its connections still in the listener's backlog, which the kernel resets when
 * Node closes the listener at teardown. The accepts run in the short enter that follows the
 * wake-up, the same window as an accept4 whose fd is not yet handed to its owner.
 *
 * poll(2) watches this eventfd and the Wakers' epoll set (io-uring-eventfds.ts). The set is
 * watched directly, not through this eventfd: a wake reaches the ring from inside the Waker's
 * eventfd write, where the kernel defers this eventfd's signal once and then never again (see
 * "Why not a ring poll" there). A first attempt that slept on this eventfd alone lost every wake
 * after the first (commit 3e8f8be).
 *
 * The sleep needs the eventfd registered: where io_uring_register is refused, the ring does not
 * accept (the backend asks `canSleep` at its making), and listeners accept by accept4 (found
 * from outside: every blocking wait threw EPERM from the registration).
 */
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  IORING_ENTER_GETEVENTS,
  IORING_OP_NOP,
  IORING_OP_POLL_ADD,
  IORING_REGISTER_EVENTFD,
  O_CLOEXEC,
  O_NONBLOCK,
  POLLIN,
} from '../../../ffi/constants.ts';
import { closeFd, sys } from '../../../ffi/syscall.ts';
import { closeAtTeardown, keepAtTeardown } from '../../../ffi/teardown.ts';
import type { Ring } from './io-uring-ring.ts';

/** user_data of the probe's poll (`signalsAtOnce`): the backend's absorb skips it. */
const IGNORED = 0xffffffff;
/** Most turns of `settle` before it hands back to the event loop (with the eventfd signalled). */
const SETTLE_ROUNDS = 16;

/** What the wake-up protocol needs of the backend that owns the ring. */
export interface WakeHost {
  /** Starts a turn: arms again what the last wait reported, submits the sends listed (queued, not entered). */
  rearm(): void;
  /** Takes in every completion in the CQ (their bits noted for the next wait). */
  absorb(): void;
  /** Whether the next wait has something to report without sleeping (bits noted, bytes or fds held). */
  reportable(): boolean;
  /** Whether sends are listed for the next submission (RingSender.listed). */
  sendsListed(): boolean;
  /** The Reactor goes back to sleep: the turn's sends are over (RingSender.endTurn). */
  endTurn(): void;
}

export class RingWakeup {
  readonly #ring: Ring;
  readonly #host: WakeHost;
  /** The registered eventfd, once a Reactor asked for it or `sleep` needed it; -1 before. */
  #fd = -1;
  /** Whether a Reactor watches the eventfd (asked for `fd`). */
  #watched = false;
  /** The Reactor watches the ring fd, not an eventfd: a ring without DEFER_TASKRUN (see above). */
  readonly #watchesRing: boolean;
  /** The pollfds `sleep` waits on, { int fd; short events; short revents } each: the eventfd, the Wakers' set. */
  readonly #pollfds = new Uint8Array(16);
  readonly #pollView = new DataView(this.#pollfds.buffer);
  readonly #counter = new Uint8Array(8);
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

  constructor(ring: Ring, host: WakeHost) {
    this.#ring = ring;
    this.#host = host;
    this.#watchesRing = !ring.deferTaskrun;
  }

  /** Whether a Reactor watches the eventfd (then nothing but us submits outside its turns). */
  get watched(): boolean {
    return this.#watched;
  }

  /**
   * The fd a Reactor sleeps on: the eventfd the kernel signals when this ring has work
   * (registered on first use), or a ring without DEFER_TASKRUN's own fd. Once it is asked for,
   * add and modify submit at once: whoever watches it sleeps until it is readable.
   */
  fd(): number {
    this.#watched = true;
    return this.#watchesRing ? this.#ring.fd : this.#registered();
  }

  /**
   * Sleeps until the ring has task work, a Waker in the set `setFd` (-1: none) is readable, or
   * for `timeoutMs` (> 0; < 0: no limit), in poll(2) (see "Sleeping outside the ring"): the
   * caller has just entered the ring, found nothing, and enters again (without waiting) when this
   * returns true. Returns false when the time ran out with nothing come.
   *
   * The read clears the signals our own enters raised by posting completions; work queued
   * between the last enter and the read would be cleared with them, so IORING_SQ_TASKRUN (set by
   * the kernel before it signals) is looked at after it, as in `settle`: set, no sleep.
   * DEFER_TASKRUN rings only (the only ones that accept by the ring).
   */
  sleep(timeoutMs: number, setFd: number): boolean {
    const efd = this.#registered();
    sys.read(efd, this.#counter, 8);
    if (this.#ring.taskRunPending()) return true;
    this.#pollView.setInt32(8, setFd, true); // the eventfd's entry is written once, at registration
    return sys.poll(this.#pollfds, setFd >= 0 ? 2 : 1, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs)) > 0;
  }

  /**
   * Registers the eventfd now, for `sleep`: false where the ring refuses it (a seccomp profile
   * that refuses io_uring_register, no memory, no fd left), and then nothing is left open. A
   * backend whose blocking waits must sleep here asks at its making, not at its first sleep,
   * so that a refusal turns the feature that needs the sleep off instead of failing every wait.
   */
  canSleep(): boolean {
    try {
      this.#registered();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Whether the kernel signals the registered eventfd at once when task work arrives, as the
   * wake-up protocol assumes; false where it signals late, or where the eventfd cannot be
   * registered. Linux 6.18.44 signals it about 16 ms late on a DEFER_TASKRUN ring (a plain ring's,
   * when completions are posted, at once): every wake-up of a Reactor asleep on it came that
   * late (62 requests/s at one connection; bench/c/eventfd_wake.c, bench/RESULTS.md).
   *
   * The probe: a one-shot poll on a pipe of ours, submitted, then a byte written to the pipe. The
   * poll's wake-up queues task work inside that write(2), and a kernel that signals at once has
   * done so before write(2) returns: poll(2) with no timeout sees the eventfd readable. Then the
   * poll's completion is posted (an ignored user_data) and the eventfd read empty.
   */
  signalsAtOnce(): boolean {
    let efd: number;
    try {
      efd = this.#registered();
    } catch {
      return false;
    }
    const ends = new Int32Array(2);
    try {
      sys.pipe2(ends, O_NONBLOCK | O_CLOEXEC);
    } catch {
      return false; // no fd left: the Reactor's ring stays as it is
    }
    closeAtTeardown(ends[0]);
    closeAtTeardown(ends[1]);
    try {
      const ring = this.#ring;
      const w = ring.entry();
      ring.prepare(w, IORING_OP_POLL_ADD, ends[0], 0, POLLIN, IGNORED, 0);
      ring.enter(0, 0);
      sys.read(efd, this.#counter, 8);
      sys.write(ends[1], this.#one, 1);
      const probe = new Uint8Array(8);
      const view = new DataView(probe.buffer);
      view.setInt32(0, efd, true);
      view.setInt16(4, POLLIN, true);
      const atOnce = sys.poll(probe, 1, 0) > 0;
      ring.enter(0, IORING_ENTER_GETEVENTS); // posts the poll's completion (absorb skips it)
      sys.read(efd, this.#counter, 8);
      return atOnce;
    } finally {
      for (const fd of ends) {
        keepAtTeardown(fd);
        closeFd(fd);
      }
    }
  }

  /** The eventfd, registered with the ring on first use (by a Reactor, or by `sleep`). */
  #registered(): number {
    if (this.#fd < 0) {
      const efd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      try {
        this.#ring.register(IORING_REGISTER_EVENTFD, new Uint8Array(new Int32Array([efd]).buffer), 1);
      } catch (err) {
        closeFd(efd);
        throw err;
      }
      this.#fd = efd;
      closeAtTeardown(efd); // a worker that ends with its ring open (see ffi/teardown.ts)
      const view = this.#pollView;
      view.setInt32(0, efd, true);
      view.setInt16(4, POLLIN, true);
      view.setInt16(12, POLLIN, true); // the set's entry: its fd is written by each sleep
    }
    return this.#fd;
  }

  /**
   * Makes it safe to sleep until `fd` is readable: returns false when it is, true when
   * events are ready now (handle them with `wait(0)` and settle again). Never return to the
   * event loop with entries written but not submitted, nor with task work pending: the kernel
   * signals the eventfd only when its work list goes from empty to non-empty, so either would
   * stall the ring for good.
   *
   * 1. Re-arm the slots reported, submit everything and run the deferred task work.
   * 2. Completions ready, or bytes held that the user has not read (level-triggered, as epoll's
   *    fd stays readable): say so (the caller drains, then settles again).
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
    const host = this.#host;
    for (let round = 0; round < SETTLE_ROUNDS; round++) {
      host.rearm();
      if (ring.pending() > 0 || ring.taskRunPending() || ring.cqOverflowPending()) ring.enter(0, IORING_ENTER_GETEVENTS);
      if (ring.ready() > 0 || host.reportable()) return true;
      if (this.#watchesRing) {
        // The ring fd needs no clearing, but stays readable while the kernel's overflow list holds
        // completions: the next round's enter moves them in.
        if (ring.cqOverflowPending()) continue;
      } else if (this.#fd >= 0) {
        sys.read(this.#fd, this.#counter, 8);
        if (ring.ready() > 0) return true;
      }
      if (!(ring.deferTaskrun && ring.taskRunPending())) {
        host.endTurn();
        return false;
      }
    }
    // Task work keeps coming (or an enter keeps being interrupted): never spin here; the eventfd,
    // signalled by hand, brings us back after the loop's other work.
    this.poke();
    host.endTurn();
    return false;
  }

  /**
   * Signals `fd` ourselves: the watcher runs again after the loop's other work (fairness). A
   * watched ring fd is made readable by a no-op's completion (absorb skips it).
   */
  poke(): void {
    if (!this.#watched) return;
    if (!this.#watchesRing) {
      sys.write(this.#fd, this.#one, 8);
      return;
    }
    const ring = this.#ring;
    ring.prepare(ring.entry(), IORING_OP_NOP, -1, 0, 0, IGNORED, 0);
    ring.enter(0, 0);
  }

  /** Where a Reactor watches: submits what was queued now (add, modify), as epoll_ctl would take effect. */
  submitIfWatched(): void {
    if (!this.#watched) return;
    const before = this.#ring.ready();
    this.#ring.enter(0, IORING_ENTER_GETEVENTS);
    if (this.#ring.ready() !== before) this.afterOwnEnter();
  }

  /**
   * After an enter outside the Reactor's drain that posted completions (and so signalled the
   * eventfd): take them in (bytes queued, readiness noted), and if nothing is left to report,
   * clear the eventfd, so that the loop is not woken for nothing (and a process whose loop is
   * ending finds no readable fd). Anything to report, or task work queued meanwhile: signal the
   * eventfd again.
   */
  afterOwnEnter(): void {
    this.#host.absorb();
    if (!this.#watched) return;
    if (!this.#watchesRing) sys.read(this.#fd, this.#counter, 8); // a ring fd is cleared by the absorb
    // Sends listed by the completions just handed over (the rest of a short send) count too:
    // nothing else would submit them before the loop sleeps (found from outside: a modify from a
    // timer took in a send's completion, cleared the eventfd, and the rest of the queue stalled).
    const ring = this.#ring;
    if (
      this.#host.reportable() || ring.ready() > 0 || (ring.deferTaskrun && ring.taskRunPending()) || this.#host.sendsListed()
    ) this.poke();
  }

  /** Closes the eventfd (the ring is closed). */
  close(): void {
    if (this.#fd >= 0) {
      const efd = this.#fd;
      this.#fd = -1;
      this.#watched = false;
      keepAtTeardown(efd);
      closeFd(efd);
    }
  }
}
