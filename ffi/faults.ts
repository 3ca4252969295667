/**
 * Fault injection at the choke point, for tests (the way Go's `internal/socktest` does it): make
 * the Nth call of any libc function fail with a chosen errno, move fewer bytes than asked (a short
 * count), or answer a getaddrinfo with an EAI_* code.
 *
 * An injector sits in a wrapper's fault point (see ffi/syscall.ts), *below* the wrapper: an
 * injected EINTR is retried, an injected EAGAIN becomes would-block, anything else becomes the
 * SocketError a real failure would, so the library meets a fault exactly where it would meet the
 * real one. Not exported from `m-socket` or `m-socket/ffi`: tests import this file directly.
 *
 * ```ts
 * using faults = injectFaults(failNth('send', 2, { errno: ERRNO.ENOBUFS }));
 * ... // the second send(2) of this thread fails with ENOBUFS
 * ```
 *
 * One injection at a time per thread (fault points are per module instance, so per thread).
 */
import koffi from 'koffi';
import { OFFSETOF } from './layouts.ts';
import { faultPoints, type FaultPoint } from './syscall.ts';

/** One call that reached a fault point while an injection was active. */
export interface FaultCall {
  /** The libc function, e.g. `'send'`. */
  readonly name: string;
  /** 1 for the first call of `name` since the injection began, 2 for the next... */
  readonly nth: number;
  /** The arguments, as the wrapper passed them (fd first for most). */
  readonly args: readonly unknown[];
}

/** What an injector makes of a call. */
export type Fault =
  /** The call fails with this errno (-1 and errno, as libc does). close(2) still closes: Linux releases the fd whatever close reports. */
  | { errno: number }
  /** send/recv/read/write/sendto/recvfrom/sendmsg/recvmsg: the call moves at most this many bytes (>= 1). */
  | { short: number }
  /** getaddrinfo: the lookup answers this EAI_* code (through the callback, asynchronously). */
  | { eai: number }
  /** The call throws this (as koffi does when it refuses an asynchronous call). */
  | { throws: unknown };

/** Decides, per call, whether to inject a fault (null / undefined: let the call through). */
export type FaultFilter = (call: FaultCall) => Fault | null | undefined;

/** A running injection. Dispose of it (or `restore()`) to put libc's functions back. */
export interface FaultInjection extends Disposable {
  /** How many calls of `name` reached its fault point since the injection began. */
  count(name: string): number;
  /** Every fault injected so far, in order. */
  readonly injected: readonly { name: string; nth: number; fault: Fault }[];
  restore(): void;
}

/** Names of every function that has a fault point. */
export function faultPointNames(): string[] {
  return [...faultPoints.keys()];
}

let active: FaultInjection | null = null;

/**
 * Puts an injector in front of `names` (default: every fault point) that asks `filter` about
 * each call. Throws if an injection is already active in this thread.
 */
export function injectFaults(filter: FaultFilter, names: readonly string[] = faultPointNames()): FaultInjection {
  if (active !== null) throw new Error('injectFaults: an injection is already active; restore it first');
  const counts = new Map<string, number>();
  const injected: { name: string; nth: number; fault: Fault }[] = [];
  const touched: FaultPoint[] = [];
  for (const name of names) {
    const point = faultPoints.get(name);
    if (point === undefined) throw new RangeError(`injectFaults: no fault point named ${JSON.stringify(name)}`);
    touched.push(point);
    const original = point.original;
    point.fn = (...args: unknown[]) => {
      const nth = (counts.get(name) ?? 0) + 1;
      counts.set(name, nth);
      const fault = filter({ name, nth, args });
      if (fault == null) return original(...args);
      injected.push({ name, nth, fault });
      return apply(name, original, args, fault);
    };
  }
  const injection: FaultInjection = {
    count: (name) => counts.get(name) ?? 0,
    injected,
    restore() {
      if (active !== injection) return;
      for (const point of touched) point.fn = point.original;
      active = null;
    },
    [Symbol.dispose]() {
      injection.restore();
    },
  };
  active = injection;
  return injection;
}

/** A filter that injects `fault` into the `nth` call of `name` (and lets every other call through). */
export function failNth(name: string, nth: number, fault: Fault): FaultFilter {
  return (call) => (call.name === name && call.nth === nth ? fault : null);
}

const SHORTABLE = new Set(['send', 'recv', 'read', 'write', 'sendmsg', 'recvmsg', 'sendto', 'recvfrom']);

function apply(name: string, original: (...args: any[]) => any, args: unknown[], fault: Fault): unknown {
  if ('throws' in fault) throw fault.throws;
  if ('eai' in fault) {
    if (name !== 'getaddrinfo') throw new RangeError(`an eai fault is for getaddrinfo, not ${name}`);
    const callback = args[4] as (err: unknown, eai: number) => void;
    setImmediate(() => callback(null, fault.eai));
    return undefined;
  }
  if ('short' in fault) {
    if (!SHORTABLE.has(name)) throw new RangeError(`a short count is for ${[...SHORTABLE].join(', ')}, not ${name}`);
    if (!(Number.isInteger(fault.short) && fault.short >= 1)) throw new RangeError('a short count moves at least 1 byte');
    if (name === 'sendmsg' || name === 'recvmsg') return shortMessage(original, args, fault.short);
    const shortened = [...args];
    shortened[2] = Math.min(Number(args[2]), fault.short);
    return original(...shortened);
  }
  if (name === 'getaddrinfo') throw new RangeError('getaddrinfo fails with { eai } or { throws }, not an errno');
  if (name === 'close') original(...args); // Linux releases the fd even when close reports an error
  koffi.errno(fault.errno);
  return -1;
}

/**
 * sendmsg/recvmsg with a short count: the msghdr lives in the Buffer passed (fd-passing.ts builds
 * it so, its iovec inside the same block), so shorten the one iovec, call, and put it back.
 */
function shortMessage(original: (...args: any[]) => any, args: unknown[], short: number): unknown {
  const block = args[1] as Uint8Array;
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const base = koffi.address(block) as bigint;
  const iovAt = Number(view.getBigUint64(OFFSETOF.msghdr.iov, true) - base);
  if (!(iovAt >= 0 && iovAt < block.byteLength)) throw new RangeError('short sendmsg/recvmsg: the iovec is not inside the message block');
  const lenAt = iovAt + OFFSETOF.iovec.len;
  const length = view.getBigUint64(lenAt, true);
  view.setBigUint64(lenAt, BigInt(Math.min(Number(length), short)), true);
  try {
    return original(...args);
  } finally {
    view.setBigUint64(lenAt, length, true);
  }
}

/**
 * Where the current call came from: the library frames of the stack, innermost first
 * (`'socket.ts#flushQueue < socket.ts_ready < multiplexer.ts wait'`). For sweeps that want each
 * call site once; costs a stack trace, so call it from a filter only when you need it.
 */
export function callSite(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const frames: string[] = [];
  for (const line of stack.split('\n').slice(1)) {
    const m = /at (?:(?:new )?(\S+(?: \[as \S+\])?) \()?.*\/(lib\/[\w/.-]+\.ts):(\d+)/.exec(line);
    if (m === null) {
      if (frames.length > 0 && !/\/ffi\//.test(line)) break; // left the library
      continue;
    }
    const fn = (m[1] ?? '<anonymous>').replace(/^(?:Socket|Multiplexer|Listener|EpollBackend|PollBackend|IoUringBackend|Ring|Reactor)\./, '').replace(/ \[as \S+\]/, '');
    frames.push(`${m[2].replace(/^lib\//, '')} ${fn}`);
  }
  return frames.join(' < ');
}
