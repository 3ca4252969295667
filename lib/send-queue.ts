/**
 * The per-socket send queue: bytes the kernel could not take yet, copied out of the caller's
 * buffers (so a caller may reuse its buffer as soon as `send` returns), in order.
 *
 * Small sends are packed into shared blocks of BLOCK_SIZE bytes, so that a burst of small
 * messages is flushed with few system calls; a large send gets a block of its own. No memory is
 * held while the queue is empty.
 */
const BLOCK_SIZE = 16 * 1024;

interface Block {
  bytes: Uint8Array;
  /** First byte not yet sent. */
  start: number;
  /** One past the last byte written. */
  end: number;
}

export class SendQueue {
  #blocks: Block[] = [];
  #length = 0;

  /** Bytes waiting to be sent. */
  get length(): number {
    return this.#length;
  }

  /** Copies `data` to the end of the queue. */
  push(data: Uint8Array): void {
    const n = data.byteLength;
    if (n === 0) return;
    const tail = this.#blocks[this.#blocks.length - 1];
    if (tail !== undefined && tail.bytes.byteLength - tail.end >= n) {
      tail.bytes.set(data, tail.end);
      tail.end += n;
    } else {
      const bytes = new Uint8Array(Math.max(BLOCK_SIZE, n));
      bytes.set(data, 0);
      this.#blocks.push({ bytes, start: 0, end: n });
    }
    this.#length += n;
  }

  /** The oldest unsent bytes (a view, valid until the next `consume` or `push`), or null. */
  head(): Uint8Array | null {
    const block = this.#blocks[0];
    return block === undefined ? null : block.bytes.subarray(block.start, block.end);
  }

  /** Drops `n` bytes from the front: they have been handed to the kernel. */
  consume(n: number): void {
    let left = n;
    while (left > 0) {
      const block = this.#blocks[0];
      if (block === undefined) throw new RangeError(`SendQueue.consume(${n}): only ${n - left} bytes were queued`);
      const take = Math.min(left, block.end - block.start);
      block.start += take;
      left -= take;
      this.#length -= take;
      if (block.start === block.end) this.#blocks.shift();
    }
  }

  /** Forgets everything; returns how many bytes were dropped. */
  clear(): number {
    const dropped = this.#length;
    this.#blocks = [];
    this.#length = 0;
    return dropped;
  }
}
