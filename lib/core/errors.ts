/**
 * Errors of the safe layer. System-call failures are `SocketError` (from the choke point); misuse
 * is reported the way Node reports it: TypeError / RangeError with `code` ERR_INVALID_ARG_TYPE,
 * ERR_OUT_OF_RANGE or ERR_INVALID_ARG_VALUE, and a message that names the argument.
 */
import { types } from 'node:util';
import { SocketError } from '../../ffi/syscall.ts';
import { bufferOf, byteLengthOf, isUint8Array } from './bytes.ts';

export { SocketError };

/** Thrown by any operation on a socket, listener or multiplexer that has been closed. */
export class SocketClosedError extends Error {
  /** Node's code for an operation on a closed handle. */
  readonly code = 'ERR_SOCKET_CLOSED';
  constructor(what: string, operation: string) {
    super(`${operation}: the ${what} is closed`);
    this.name = 'SocketClosedError';
  }
}

/** Node's AbortError shape (as `fs/promises` and `timers/promises` reject with), `code` 'ABORT_ERR'. */
export function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/** `new X()` on a class whose constructor is the library's own (ERR_ILLEGAL_CONSTRUCTOR, as Node). */
export function illegalConstructor(what: string, use: string): TypeError & { code: string } {
  const err = new TypeError(`${what} has no public constructor (it would adopt any fd unchecked): use ${use}`) as TypeError & { code: string };
  err.code = 'ERR_ILLEGAL_CONSTRUCTOR';
  return err;
}

/** A TypeError or RangeError with Node's `code` property. */
export type ArgumentError = (TypeError | RangeError) & { code: string };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)}`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (typeof value === 'function') return `a function`;
  // Neither passes for a typed array, and naming their constructor would read as if it had.
  if (types.isProxy(value)) return 'a Proxy';
  if (value instanceof Uint8Array && !isUint8Array(value)) return 'an object that inherits from Uint8Array.prototype but is no typed array';
  const ctor = (value as object).constructor?.name;
  return ctor ? `an instance of ${ctor}` : typeof value;
}

/** `The "name" argument must be <expected>. Received <what>` (ERR_INVALID_ARG_TYPE). */
export function invalidType(name: string, expected: string, value: unknown): ArgumentError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`) as ArgumentError;
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** `The value of "name" is out of range. It must be <range>. Received <value>` (ERR_OUT_OF_RANGE). */
export function outOfRange(name: string, range: string, value: unknown): ArgumentError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${describe(value)}`) as ArgumentError;
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

/** `The argument "name" is invalid: <reason>` (ERR_INVALID_ARG_VALUE). */
export function invalidValue(name: string, reason: string, value?: unknown): ArgumentError {
  const err = new TypeError(
    `The argument "${name}" ${reason}.${arguments.length > 2 ? ` Received ${describe(value)}` : ''}`,
  ) as ArgumentError;
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** An integer in [min, max], or a RangeError / TypeError naming the argument. */
export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  return value;
}

/** Whether an ArrayBuffer has been transferred away (Node 20 has no `ArrayBuffer.prototype.detached`). */
function isDetached(buffer: ArrayBufferLike): boolean {
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/**
 * A byte buffer the library may hand to libc: any Uint8Array (Buffer included), also over a
 * SharedArrayBuffer, which koffi passes zero-copy like any other. Its type and size are read
 * through the intrinsic getters (lib/core/bytes.ts), so a view whose properties lie, a Proxy
 * of a view or an object that only inherits from Uint8Array.prototype is told apart here, and
 * callers size what they pass to libc by `byteLengthOf`, never by the object's own word.
 * Hot path: one tag read; only an empty view is examined further, since a detached buffer looks empty.
 */
// byteLength, never length, wherever a size goes to the kernel or a detached view is looked for:
// V8 11.3 (Node 20) inlines a typed array's length in optimised code, and for a view of a
// resizable buffer that length went stale (found from outside: after 3000 sends of such views a
// detached one passed this check and went out as an empty datagram; --no-opt refused it).
export function checkBytes(name: string, value: unknown): Uint8Array {
  if (!isUint8Array(value)) throw invalidType(name, 'an instance of Uint8Array or Buffer', value);
  if (byteLengthOf(value) === 0 && isDetached(bufferOf(value))) throw invalidValue(name, 'is a view of a detached ArrayBuffer');
  return value;
}

/**
 * `data` checked as by `checkBytes`, and how many of its bytes a send takes: `length` when given
 * (an integer from 0 to its real size), else all of them. Stream and datagram sends share it.
 */
export function checkSendLength(data: unknown, length: unknown): number {
  checkBytes('data', data);
  const size = byteLengthOf(data as Uint8Array);
  if (length === undefined) return size;
  if (!(Number.isInteger(length) && (length as number) >= 0 && (length as number) <= size)) {
    if (typeof length !== 'number') throw invalidType('length', 'of type number', length);
    throw outOfRange('length', `an integer from 0 to data.byteLength (${size})`, length);
  }
  return length as number;
}

/**
 * Thrown by `receiveWithFds` when more fds arrived than `maxFds`: the kernel dropped some
 * (MSG_CTRUNC) or delivered more than asked. Every fd that arrived has been closed.
 */
export class FdsTruncatedError extends Error {
  /** Tells this error apart without `instanceof` (as Node's errors carry one). */
  readonly code = 'ERR_SOCKET_FDS_TRUNCATED';
  /** The bytes that did arrive with the message (a view of the caller's buffer). */
  readonly bytes: Uint8Array;
  /** The sender's credentials that came with them (SO_PASSCRED), or null. */
  readonly credentials: { pid: number; uid: number; gid: number } | null;
  constructor(bytes: Uint8Array, maxFds: number, credentials: { pid: number; uid: number; gid: number } | null = null) {
    super(`receiveWithFds: more fds arrived than options.maxFds (${maxFds}) had room for; the ones received were closed`);
    this.name = 'FdsTruncatedError';
    this.bytes = bytes;
    this.credentials = credentials;
  }
}

/** A call made at a moment it cannot be honoured (Node's ERR_INVALID_STATE), such as re-entering a loop. */
export function invalidState(message: string): Error & { code: string } {
  const err = new Error(`Invalid state: ${message}`) as Error & { code: string };
  err.code = 'ERR_INVALID_STATE';
  return err;
}
