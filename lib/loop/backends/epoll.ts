/**
 * epoll(7) backend, level-triggered: a socket that still has unread bytes is reported again by
 * the next wait, so a user who reads a little per event never stalls (design rule 5).
 *
 * Events are read straight out of the reusable epoll_event buffer with a DataView: no
 * allocation per wait or per event. `epoll_data` holds the token: slot in the low 32 bits,
 * generation in the high 32 bits.
 */
import {
  EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP,
} from '../../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../../ffi/layouts.ts';
import { closeFd, sys } from '../../../ffi/syscall.ts';
import { closeAtTeardown, keepAtTeardown } from '../../../ffi/teardown.ts';
import { ERROR, HANGUP, READABLE, WRITABLE } from '../../core/watch.ts';
import type { Backend } from './backend.ts';

const EVENT_SIZE = SIZEOF.epoll_event;
const EVENTS_AT = OFFSETOF.epoll_event.events;
const DATA_AT = OFFSETOF.epoll_event.data;

function toEpoll(bits: number): number {
  return ((bits & READABLE) !== 0 ? EPOLLIN | EPOLLRDHUP : 0) | ((bits & WRITABLE) !== 0 ? EPOLLOUT : 0);
}

function fromEpoll(events: number): number {
  return (
    ((events & EPOLLIN) !== 0 ? READABLE : 0) |
    ((events & EPOLLOUT) !== 0 ? WRITABLE : 0) |
    ((events & (EPOLLHUP | EPOLLRDHUP)) !== 0 ? HANGUP : 0) |
    ((events & EPOLLERR) !== 0 ? ERROR : 0)
  );
}

export class EpollBackend implements Backend {
  readonly fd: number;
  readonly #events: Uint8Array;
  readonly #eventsView: DataView;
  readonly #maxEvents: number;
  readonly #control = new Uint8Array(EVENT_SIZE);
  readonly #controlView = new DataView(this.#control.buffer);

  constructor(maxEvents: number) {
    this.#maxEvents = maxEvents;
    this.#events = new Uint8Array(EVENT_SIZE * maxEvents);
    this.#eventsView = new DataView(this.#events.buffer);
    this.fd = sys.epoll_create1(EPOLL_CLOEXEC);
    // At once, not when the multiplexer tracks it: a worker stopped in between leaks none.
    closeAtTeardown(this.fd);
  }

  add(fd: number, slot: number, generation: number, bits: number): void {
    this.#control_(EPOLL_CTL_ADD, fd, slot, generation, bits);
  }

  modify(fd: number, slot: number, generation: number, bits: number): void {
    this.#control_(EPOLL_CTL_MOD, fd, slot, generation, bits);
  }

  remove(fd: number): void {
    // Linux before 2.6.9 wanted a non-NULL event even for DEL; passing the buffer costs nothing.
    sys.epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, this.#control);
  }

  wait(timeoutMs: number): number {
    return sys.epoll_wait(this.fd, this.#events, this.#maxEvents, timeoutMs);
  }

  slotAt(index: number): number {
    return this.#eventsView.getUint32(index * EVENT_SIZE + DATA_AT, true);
  }

  generationAt(index: number): number {
    return this.#eventsView.getUint32(index * EVENT_SIZE + DATA_AT + 4, true);
  }

  bitsAt(index: number): number {
    return fromEpoll(this.#eventsView.getUint32(index * EVENT_SIZE + EVENTS_AT, true));
  }

  close(): void {
    keepAtTeardown(this.fd);
    closeFd(this.fd);
  }

  #control_(op: number, fd: number, slot: number, generation: number, bits: number): void {
    const view = this.#controlView;
    view.setUint32(EVENTS_AT, toEpoll(bits), true);
    view.setUint32(DATA_AT, slot, true);
    view.setUint32(DATA_AT + 4, generation, true);
    sys.epoll_ctl(this.fd, op, fd, this.#control);
  }
}
