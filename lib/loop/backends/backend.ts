/**
 * The interface every multiplexer backend implements (as Python's selectors: one abstract
 * interface, one class per kernel mechanism). Backends speak fds, tokens and the neutral bits of
 * `../watch.ts`; the Multiplexer above them owns the objects, the tokens' meaning and the rules.
 *
 * A token is (slot, generation): two uint32 values the backend stores with the fd and hands back
 * with each event, so that an event for an fd that was closed and reused cannot reach the new
 * owner (mio#219).
 */
export interface Backend {
  /** The backend's own fd when it has one (epoll), else -1. */
  readonly fd: number;
  /** Starts watching fd for `bits` (READABLE | WRITABLE; HANGUP and ERROR are always reported). */
  add(fd: number, slot: number, generation: number, bits: number): void;
  /** Changes what fd is watched for. */
  modify(fd: number, slot: number, generation: number, bits: number): void;
  /** Stops watching fd. Must be called while fd is still open. */
  remove(fd: number, slot: number): void;
  /**
   * Waits up to timeoutMs (0: not at all; < 0: forever) and returns how many events are ready;
   * read them with `slotAt`, `generationAt` and `bitsAt` until the next `wait`.
   */
  wait(timeoutMs: number): number;
  slotAt(index: number): number;
  generationAt(index: number): number;
  bitsAt(index: number): number;
  close(): void;
}

/** Names of the available backends, the default first. */
export const BACKEND_NAMES = ['epoll', 'poll'] as const;
/** A backend name: `'epoll'` (the default) or `'poll'`. */
export type BackendName = (typeof BACKEND_NAMES)[number];
