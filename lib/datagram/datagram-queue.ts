/**
 * The send queue of a datagram socket: whole datagrams the kernel could not take yet (its buffer
 * was full: EAGAIN), each a copy of its bytes and of its destination's sockaddr, in order.
 *
 * Datagrams are never split or merged, so the queue is a plain FIFO of entries. The cap is soft,
 * as for streams: a datagram is taken whole while the queue holds fewer bytes than the cap. No
 * memory is held while the queue is empty.
 */
import { ByteArray, copyBytes, partOf } from '../core/bytes.ts';

/** One queued datagram. `address` is null for a connected socket's `send`. */
export interface QueuedDatagram {
  bytes: Uint8Array;
  address: Uint8Array | null;
  addressLength: number;
  /** Duplicates of the fds it carries (sendWithFds), the queue's own until sent; or null. */
  fds: number[] | null;
}

export class DatagramQueue {
  #entries: QueuedDatagram[] = [];
  #head = 0;
  #bytes = 0;

  /** Bytes queued (the datagrams' payloads). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Datagrams queued. */
  get count(): number {
    return this.#entries.length - this.#head;
  }

  /** Queues a copy of `data[0, length)` to the sockaddr `address[0, addressLength)` (copied too). */
  push(data: Uint8Array, length: number, address: Uint8Array | null, addressLength: number, fds: number[] | null = null): void {
    // Not data.slice: a caller's view would build the copy with its own constructor (@@species).
    const bytes = new ByteArray(length);
    copyBytes(bytes, partOf(data, 0, length));
    this.#entries.push({
      bytes,
      address: address === null ? null : address.slice(0, addressLength),
      addressLength,
      fds,
    });
    this.#bytes += length;
  }

  /** The oldest datagram, or null. */
  head(): QueuedDatagram | null {
    return this.#head < this.#entries.length ? this.#entries[this.#head] : null;
  }

  /** Drops the oldest datagram (sent, or refused by the kernel). */
  shift(): void {
    const entry = this.#entries[this.#head];
    this.#entries[this.#head++] = undefined as never;
    this.#bytes -= entry.bytes.byteLength;
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Empties the queue; returns how many datagrams were dropped, and the fd duplicates they held (to close). */
  clear(): { dropped: number; fds: number[] } {
    const dropped = this.count;
    const fds: number[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) if (this.#entries[i].fds !== null) fds.push(...this.#entries[i].fds!);
    this.#entries = [];
    this.#head = 0;
    this.#bytes = 0;
    return { dropped, fds };
  }
}
