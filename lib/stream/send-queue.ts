/**
 * The per-socket send queue: bytes the kernel could not take yet, copied out of the caller's
 * buffers (so a caller may reuse its buffer as soon as `send` returns), in order.
 *
 * Small sends are packed into shared blocks of BLOCK_SIZE bytes, so that a burst of small
 * messages is flushed with few system calls; a large send gets a block of its own. No memory is
 * held while the queue is empty, unless `keepBlock` says so: a socket whose sends an io_uring ring
 * makes (ringSend) queues every send, and would otherwise allocate a block per send.
 *
 * Fds to pass (SCM_RIGHTS) travel attached to the first byte of the bytes they were sent with:
 * `head()` never reaches across the start of an attachment, so the flush sends each attachment
 * with its own first byte, in its place in the stream.
 *
 * File ranges (`Socket#sendFile`) are entries of their own, anchored between the bytes queued
 * before and after them: `head()` stops at a file's anchor, and `headFile()` then hands it out
 * (the flush sends it with sendfile/splice). A range holds a duplicate of the caller's fd, an
 * offset and the bytes that remain; those bytes count in `length` like queued bytes, though no
 * memory holds them.
 */
import { checkInteger, invalidValue } from '../core/errors.ts';
import { ByteArray, byteLengthOf, copyBytes, partOf } from '../core/bytes.ts';

/** Options every socket accepts. */
export interface SocketOptions {
  /**
   * Soft cap of the send queue in bytes (default 64 KiB): `send` queues while the queue holds
   * less than this, and answers `'not-sent'` once it holds this much or more.
   */
  sendQueueLimit?: number | undefined;
  /**
   * Backpressure built into the multiplexer: while the send queue is full (`sendQueueFull`), the
   * socket is not reported readable, so a handler that does one receive and one send per event
   * never meets `'not-sent'` (the cap is soft: the send that fills the queue is taken whole).
   * Reading resumes by itself once the queue drains below the cap. The queue is still flushed
   * and hangups and errors are still reported while reading is paused.
   *
   * Default `true` for sockets a `Listener` accepts, `false` for sockets you connect, pair or
   * adopt: a client that stops reading while its own queue is full can deadlock with a server
   * that does the same (each waits for the other to read). Set `false` on a program that must
   * read while its queue is full (a proxy reading control messages, say).
   */
  pauseReadingWhenFull?: boolean | undefined;
}

/** Default soft cap of a socket's send queue. */
export const DEFAULT_SEND_QUEUE_LIMIT = 64 * 1024;
/** Validates `SocketOptions` and returns the send queue limit. */
export function sendQueueLimitOf(options: SocketOptions | undefined, argName = 'options'): number {
  if (options === undefined) return DEFAULT_SEND_QUEUE_LIMIT;
  if (options === null || typeof options !== 'object') throw invalidValue(argName, 'must be an object', options);
  const limit = options.sendQueueLimit;
  if (limit === undefined) return DEFAULT_SEND_QUEUE_LIMIT;
  return checkInteger(`${argName}.sendQueueLimit`, limit, 1, 2 ** 31 - 1);
}

/** Validates `options.pauseReadingWhenFull`; `fallback` when absent (it differs per kind of socket). */
export function pauseReadingOf(options: SocketOptions | undefined, fallback: boolean, argName = 'options'): boolean {
  const value = options?.pauseReadingWhenFull;
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidValue(`${argName}.pauseReadingWhenFull`, 'must be a boolean', value);
  return value;
}

const BLOCK_SIZE = 16 * 1024;
/**
 * The block a queue that holds nothing starts with, for a send that fits: most queues never hold
 * more than one small reply (a ringSend socket queues every send, and a connection that sends one
 * reply and closes would otherwise allocate, and zero, 16 KiB for it). Sends that do not fit go
 * to BLOCK_SIZE blocks as before.
 */
const FIRST_BLOCK = 1024;
/** The largest block `keepBlock` keeps (a bulk sender's block is the size of its sends). */
const MAX_SPARE = 256 * 1024;

interface Block {
  bytes: Uint8Array;
  /** First byte not yet sent. */
  start: number;
  /** One past the last byte written. */
  end: number;
}

/** A file range waiting in the queue (`Socket#sendFile`). */
export interface FileRange {
  /** The queue's own duplicate of the caller's fd (closed when the range is done or dropped). */
  fd: number;
  /** Where in the file the next byte is (-1 for a pipe: pipes have no offsets). */
  offset: number;
  /** Bytes of the range not sent yet (> 0 while queued). */
  remaining: number;
  /** Stream position of the queued bytes the range follows (see Attachment.at). */
  at: number;
}

/** Fds that go with the byte at stream position `at` (counted from the queue's first byte ever). */
interface Attachment {
  at: number;
  fds: number[];
}

export class SendQueue {
  #blocks: Block[] = [];
  #length = 0;
  /** Bytes consumed since the queue was made: the stream position of the head. */
  #consumed = 0;
  #attachments: Attachment[] = [];
  #files: FileRange[] = [];
  /** The part of `#length` that file ranges hold. */
  #fileBytes = 0;
  /** Keep the last emptied shared block for the next push (see the header). */
  keepBlock = false;
  #spare: Block | null = null;

  /** Bytes waiting to be sent. */
  get length(): number {
    return this.#length;
  }

  /**
   * Copies `data` to the end of the queue; `fds` (owned by the queue from now on) go with its
   * first byte. `data` must not be empty when fds are given.
   */
  push(data: Uint8Array, fds?: number[]): void {
    const n = byteLengthOf(data); // a caller's view: its own word on its size is not taken
    if (fds !== undefined) {
      if (n === 0) throw new RangeError('SendQueue.push: fds need at least one byte to travel with');
      this.#attachments.push({ at: this.#consumed + this.#length - this.#fileBytes, fds });
    }
    if (n === 0) return;
    // Not `blocks[blocks.length - 1]`: on an empty queue that reads the key "-1", which V8 looks
    // up as a named property (number to string, a runtime lookup): 3% of a paced server's CPU.
    const last = this.#blocks.length - 1;
    const tail = last >= 0 ? this.#blocks[last] : undefined;
    if (tail !== undefined && byteLengthOf(tail.bytes) - tail.end >= n) {
      copyBytes(tail.bytes, data, tail.end);
      tail.end += n;
    } else {
      const spare = this.#spare !== null && n <= byteLengthOf(this.#spare.bytes) ? this.#spare : null;
      if (spare !== null) this.#spare = null;
      if (spare !== null) {
        copyBytes(spare.bytes, data, 0);
        spare.start = 0;
        spare.end = n;
        this.#blocks.push(spare);
      } else {
        const first = this.#length === 0 && this.#spare === null && n <= FIRST_BLOCK;
        const bytes = new ByteArray(first ? FIRST_BLOCK : Math.max(BLOCK_SIZE, n));
        copyBytes(bytes, data, 0);
        this.#blocks.push({ bytes, start: 0, end: n });
      }
    }
    this.#length += n;
  }

  /**
   * The oldest unsent bytes (a view, valid until the next `consume` or `push`), or null. Stops
   * before the next attachment, so that its fds go with their own first byte.
   */
  head(): Uint8Array | null {
    const block = this.#blocks[0];
    if (block === undefined) return null;
    const end = this.#headEnd(block);
    return end < 0 ? null : partOf(block.bytes, block.start, end);
  }

  /**
   * What `head()` answers without making a view (a ring's send, once per send): the block that
   * holds the head, its offset in `range[0]` and its length in `range[1]`; or null.
   */
  headBlock(range: Int32Array): Uint8Array | null {
    const block = this.#blocks[0];
    if (block === undefined) return null;
    const end = this.#headEnd(block);
    if (end < 0) return null;
    range[0] = block.start;
    range[1] = end - block.start;
    return block.bytes;
  }

  /** Where the head of `block` (the first) ends: before the next attachment or file range; -1 when a file goes first. */
  #headEnd(block: Block): number {
    let end = block.end;
    const next = this.#attachments[this.#attachments[0]?.at === this.#consumed ? 1 : 0];
    if (next !== undefined) end = Math.min(end, block.start + (next.at - this.#consumed));
    const file = this.#files[0];
    if (file !== undefined) {
      if (file.at === this.#consumed) return -1; // the file goes first: see headFile()
      end = Math.min(end, block.start + (file.at - this.#consumed));
    }
    return end;
  }

  /** Queues the rest of a file range after everything queued so far; the queue owns `fd` now. */
  pushFile(fd: number, offset: number, remaining: number): void {
    if (!(remaining > 0)) throw new RangeError('SendQueue.pushFile: a file range needs at least one byte');
    this.#files.push({ fd, offset, remaining, at: this.#consumed + this.#length - this.#fileBytes });
    this.#length += remaining;
    this.#fileBytes += remaining;
  }

  /** The file range whose turn it is (when `head()` answered null), or null. */
  headFile(): FileRange | null {
    const file = this.#files[0];
    return file !== undefined && file.at === this.#consumed ? file : null;
  }

  /** `n` bytes of the head file range went to the kernel; returns its fd to close when the range is done, else -1. */
  consumeFile(n: number): number {
    const file = this.headFile();
    if (file === null || n > file.remaining) throw new RangeError(`SendQueue.consumeFile(${n}): no file range of that size at the head`);
    file.remaining -= n;
    if (file.offset >= 0) file.offset += n;
    this.#length -= n;
    this.#fileBytes -= n;
    if (file.remaining > 0) return -1;
    this.#files.shift();
    return file.fd;
  }

  /** The fds that must go with the head's first byte, or null. */
  headFds(): number[] | null {
    const first = this.#attachments[0];
    return first !== undefined && first.at === this.#consumed ? first.fds : null;
  }

  /**
   * Drops `n` bytes from the front: they have been handed to the kernel. Returns the fds that
   * went with them (now the caller's to close), or null.
   */
  consume(n: number): number[] | null {
    if (n > this.#length) throw new RangeError(`SendQueue.consume(${n}): only ${this.#length} bytes are queued`);
    let left = n;
    while (left > 0) {
      const block = this.#blocks[0];
      const take = Math.min(left, block.end - block.start);
      block.start += take;
      left -= take;
      this.#length -= take;
      if (block.start === block.end) {
        this.#blocks.shift();
        // Consumed: the kernel has taken these bytes (send(2) returned, or the ring's send
        // completed), so the block is free to be written again.
        if (this.keepBlock && byteLengthOf(block.bytes) <= MAX_SPARE) this.#spare = block;
      }
    }
    let sent: number[] | null = null;
    const end = this.#consumed + n;
    while (this.#attachments.length > 0 && this.#attachments[0].at < end) (sent ??= []).push(...this.#attachments.shift()!.fds);
    this.#consumed = end;
    return sent;
  }

  /** Forgets everything; returns the dropped byte count and the fds that will never go (to close). */
  clear(): { bytes: number; fds: number[] } {
    const dropped = { bytes: this.#length, fds: [...this.#attachments.flatMap((a) => a.fds), ...this.#files.map((f) => f.fd)] };
    this.#blocks = [];
    this.#spare = null; // a block a ring's send still reads may be among those dropped: never reused
    this.#attachments = [];
    this.#files = [];
    this.#consumed += this.#length - this.#fileBytes;
    this.#length = 0;
    this.#fileBytes = 0;
    return dropped;
  }
}
