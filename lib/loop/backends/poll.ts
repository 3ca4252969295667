/**
 * poll(2) backend, level-triggered like the epoll one, for systems or sandboxes without epoll and
 * as a second implementation that keeps the Backend interface honest (Python's selectors run one
 * test mixin against every backend; so do we).
 *
 * poll has no kernel-side set: every wait hands the kernel the whole array of struct pollfd. The
 * array lives in one reusable Uint8Array, densely packed (no holes for the kernel to skip), and
 * grows by doubling. Each entry's token (slot, generation) is kept in side arrays at the same
 * index, and `#entryOf[slot]` finds an entry from its slot, so add / modify / remove are O(1):
 * remove moves the last entry into the hole.
 *
 * ## Ready events are copied
 * `wait` copies the token and bits of each ready entry into ready arrays. The Multiplexer reads
 * them while it runs the targets' own work, which may close or remove sockets, and so move
 * entries around the pollfd array; the copies stay right, like epoll's event buffer.
 *
 * ## Fairness under `maxEvents`
 * When more entries are ready than one wait may return, the scan of the next wait starts where
 * this one stopped, so the entries at the end of the array are not starved by busy ones at the
 * front; the rest stay ready (level-triggered) and are simply reported by the next wait.
 */
import { OFFSETOF, SIZEOF } from '../../../ffi/layouts.ts';
import { sys } from '../../../ffi/syscall.ts';
import { ReadyList } from './ready-list.ts';
import type { Backend } from './backend.ts';
import { fromPoll, toPoll } from './poll-bits.ts';

const ENTRY_SIZE = SIZEOF.pollfd;
const FD_AT = OFFSETOF.pollfd.fd;
const EVENTS_AT = OFFSETOF.pollfd.events;
const REVENTS_AT = OFFSETOF.pollfd.revents;
const INITIAL_CAPACITY = 16;


/**
 * epoll_ctl fails with EEXIST / ENOENT for these misuses; poll has no kernel-side set to check,
 * so the backend checks itself rather than corrupt its array silently.
 */
function misuse(fd: number, what: string): Error {
  return new Error(`poll backend: fd ${fd} ${what} (a Multiplexer bookkeeping bug)`);
}

export class PollBackend extends ReadyList implements Backend {
  /** poll keeps no kernel object: there is no fd to watch the backend itself. */
  readonly fd = -1;
  readonly #maxEvents: number;
  #pollfds = new Uint8Array(ENTRY_SIZE * INITIAL_CAPACITY);
  #view = new DataView(this.#pollfds.buffer);
  /** Token of the entry at the same index of the pollfd array. */
  #slots = new Uint32Array(INITIAL_CAPACITY);
  #generations = new Uint32Array(INITIAL_CAPACITY);
  /** Entry index of each slot, or -1 when the slot has no entry. */
  #entryOf = new Int32Array(INITIAL_CAPACITY).fill(-1);
  #count = 0;
  /** Where the next wait starts its scan (see "Fairness" above). */
  #cursor = 0;

  constructor(maxEvents: number) {
    super(maxEvents);
    this.#maxEvents = maxEvents;
  }

  /** How many fds are in the pollfd array (for tests and diagnostics). */
  get size(): number {
    return this.#count;
  }

  add(fd: number, slot: number, generation: number, bits: number): void {
    if (slot < this.#entryOf.length && this.#entryOf[slot] >= 0) throw misuse(fd, `is already watched (slot ${slot})`);
    if (this.#count === this.#slots.length) this.#grow();
    if (slot >= this.#entryOf.length) this.#growSlots(slot);
    const index = this.#count++;
    const at = index * ENTRY_SIZE;
    this.#view.setInt32(at + FD_AT, fd, true);
    this.#view.setInt16(at + EVENTS_AT, toPoll(bits), true);
    this.#view.setInt16(at + REVENTS_AT, 0, true);
    this.#slots[index] = slot;
    this.#generations[index] = generation;
    this.#entryOf[slot] = index;
  }

  modify(fd: number, slot: number, generation: number, bits: number): void {
    const index = this.#indexOf(fd, slot);
    this.#view.setInt16(index * ENTRY_SIZE + EVENTS_AT, toPoll(bits), true);
    this.#generations[index] = generation;
  }

  remove(fd: number, slot: number): void {
    const index = this.#indexOf(fd, slot);
    const last = --this.#count;
    if (index !== last) {
      // Move the last entry into the hole: the array stays dense and nothing else shifts.
      this.#pollfds.copyWithin(index * ENTRY_SIZE, last * ENTRY_SIZE, (last + 1) * ENTRY_SIZE);
      const movedSlot = this.#slots[last];
      this.#slots[index] = movedSlot;
      this.#generations[index] = this.#generations[last];
      this.#entryOf[movedSlot] = index;
    }
    this.#entryOf[slot] = -1;
  }

  wait(timeoutMs: number): number {
    const count = this.#count;
    let ready = sys.poll(this.#pollfds, count, timeoutMs);
    if (ready === 0) return 0;
    const max = this.#maxEvents;
    const view = this.#view;
    let found = 0;
    let index = this.#cursor < count ? this.#cursor : 0;
    // Visit each entry at most once, starting at the cursor; stop once every ready one is
    // copied or the cap is reached.
    for (let visited = 0; visited < count && ready > 0 && found < max; visited++) {
      const at = index * ENTRY_SIZE + REVENTS_AT;
      const revents = view.getUint16(at, true);
      if (revents !== 0) {
        ready--;
        this.setReady(found++, this.#slots[index], this.#generations[index], fromPoll(revents));
      }
      if (++index === count) index = 0;
    }
    this.#cursor = index;
    return found;
  }

  close(): void {
    // Nothing belongs to the kernel; forget the entries so that a stray wait finds none.
    this.#count = 0;
    this.#entryOf.fill(-1);
  }

  #indexOf(fd: number, slot: number): number {
    const index = slot < this.#entryOf.length ? this.#entryOf[slot] : -1;
    if (index < 0 || this.#view.getInt32(index * ENTRY_SIZE + FD_AT, true) !== fd) throw misuse(fd, `is not watched in slot ${slot}`);
    return index;
  }

  /** Doubles the pollfd array and the token arrays beside it. */
  #grow(): void {
    const capacity = this.#slots.length * 2;
    const pollfds = new Uint8Array(ENTRY_SIZE * capacity);
    pollfds.set(this.#pollfds);
    this.#pollfds = pollfds;
    this.#view = new DataView(pollfds.buffer);
    const slots = new Uint32Array(capacity);
    slots.set(this.#slots);
    this.#slots = slots;
    const generations = new Uint32Array(capacity);
    generations.set(this.#generations);
    this.#generations = generations;
  }

  /** Grows the slot -> entry map (doubling) until it holds `slot`. */
  #growSlots(slot: number): void {
    let length = this.#entryOf.length;
    while (length <= slot) length *= 2;
    const entryOf = new Int32Array(length).fill(-1);
    entryOf.set(this.#entryOf);
    this.#entryOf = entryOf;
  }
}
