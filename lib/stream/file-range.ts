/**
 * File ranges for `Socket#sendFile`: checking the caller's fd, offset and length, and moving
 * bytes from the file to the socket inside the kernel: sendfile(2) for a regular file (with an
 * explicit offset, so the file's own offset never moves), splice(2) for a pipe.
 */
import { fstatSync } from 'node:fs';
import { F_DUPFD_CLOEXEC, POLLHUP, POLLIN, SPLICE_F_MOVE, SPLICE_F_NONBLOCK } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { checkInteger, invalidValue, outOfRange, SocketError } from '../core/errors.ts';
import { closeAtTeardown } from '../../ffi/teardown.ts';

/** Most bytes one sendfile/splice call is asked for (Linux moves at most 0x7ffff000 anyway). */
const MAX_CHUNK = 1 << 30;

/** What `sendFile` was asked to send, checked: `offset` is -1 for a pipe. */
export interface FileRequest {
  fd: number;
  offset: number;
  length: number;
}

/**
 * Checks `sendFile`'s arguments against the file as it is now. A regular file: `offset`
 * defaults to 0, `length` to the rest of the file, and the range must lie inside the file. A
 * pipe: no offset (pipes have none), and `length` is required (a pipe has no size).
 */
export function fileRequest(fd: unknown, offset: unknown, length: unknown): FileRequest {
  checkInteger('fd', fd, 0, 2 ** 31 - 1);
  let stat;
  try {
    stat = fstatSync(fd as number);
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (typeof errno !== 'number') throw err;
    throw new SocketError('fstat', -errno, { fd: fd as number });
  }
  if (stat.isFIFO()) {
    if (offset !== undefined) throw invalidValue('offset', 'must be omitted for a pipe (pipes have no offsets)', offset);
    if (length === undefined) throw invalidValue('length', 'is required for a pipe (a pipe has no size)');
    return { fd: fd as number, offset: -1, length: checkInteger('length', length, 0, Number.MAX_SAFE_INTEGER) };
  }
  if (!stat.isFile()) throw invalidValue('fd', 'must be a regular file or a pipe', fd);
  const size = stat.size;
  const start = offset === undefined ? 0 : checkInteger('offset', offset, 0, Number.MAX_SAFE_INTEGER);
  if (start > size) throw outOfRange('offset', `at most the file's size (${size})`, start);
  if (length === undefined) return { fd: fd as number, offset: start, length: size - start };
  checkInteger('length', length, 0, Number.MAX_SAFE_INTEGER);
  if (start + (length as number) > size) throw outOfRange('length', `at most the bytes from offset to the end of the file (${size - start})`, length);
  return { fd: fd as number, offset: start, length: length as number };
}

/** The queue's own copy of the caller's fd (close-on-exec), so the caller may close theirs. */
export function duplicateFd(fd: number): number {
  const copy = sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  closeAtTeardown(copy); // the queue's: closed by closeAll, or at a worker's teardown
  return copy;
}

/**
 * Holds the 64-bit offset sendfile reads and advances: one per socket that sends files, so
 * nothing is shared between sockets or threads.
 */
export class FileMover {
  readonly #offset = new BigInt64Array(1);
  /** struct pollfd { int fd; short events; short revents; }, in host order. */
  readonly #pollFd = new Int32Array(2);
  readonly #pollShorts = new Int16Array(this.#pollFd.buffer);

  /**
   * Moves up to `remaining` bytes of `inFd` (from `offset`, or a pipe when -1) to `socketFd`.
   * Returns bytes moved, `WOULD_BLOCK` when the socket is full, 0 at the file's end (or when a
   * pipe's writers are gone), or `PIPE_EMPTY` when a pipe has nothing to give yet.
   */
  move(socketFd: number, inFd: number, offset: number, remaining: number): number {
    const count = Math.min(remaining, MAX_CHUNK);
    if (offset >= 0) {
      this.#offset[0] = BigInt(offset);
      return sys.sendfile(socketFd, inFd, this.#offset, count);
    }
    const n = sys.splice(inFd, socketFd, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    // EAGAIN from splice means the socket is full *or* the pipe is empty: tell them apart, or a
    // writable socket waiting on an empty pipe would wake its multiplexer for ever.
    if (n === WOULD_BLOCK && !this.#pipeReadable(inFd)) return PIPE_EMPTY;
    return n;
  }

  #pipeReadable(fd: number): boolean {
    this.#pollFd[0] = fd;
    this.#pollShorts[2] = POLLIN;
    this.#pollShorts[3] = 0;
    sys.poll(this.#pollFd, 1, 0);
    return (this.#pollShorts[3] & (POLLIN | POLLHUP)) !== 0;
  }
}

/** `FileMover.move`: the pipe is empty (its writer has not written yet). */
export const PIPE_EMPTY = -(2 ** 31);

/**
 * The error that fails the connection when a file ends before the bytes promised to the peer:
 * ENODATA (the socket adds how many bytes were not sent, as for any loss).
 */
export function fileEnded(fd: number, pipe: boolean): SocketError {
  return new SocketError(pipe ? 'splice' : 'sendfile', ERRNO.ENODATA, { fd });
}
