/**
 * The one choke point every libc call of m-socket goes through.
 *
 * - errno is read as the very next statement after a call returns -1 (anything in between could
 *   run code that overwrites it).
 * - EINTR is retried; for waits, with the time that remains (`checkedWait`). close() is the
 *   exception: on Linux the fd is released even when close reports EINTR, and retrying could
 *   close an fd number that another thread has been handed meanwhile.
 * - Would-block is a value, never an exception: EAGAIN/EWOULDBLOCK gives `WOULD_BLOCK`, and
 *   connect's EINPROGRESS gives `IN_PROGRESS`. Both are negative, so every other result (>= 0)
 *   is the call's own.
 * - Every other failure throws a `SocketError` following Node's conventions.
 *
 * Wrappers have the arity of the function they wrap (no rest parameters: those cost an array per
 * call on the hot path).
 *
 * ## Fault injection
 * Each wrapper calls its libc function through a *fault point*: a one-field cell `{ fn }` that
 * holds libc's own function. Tests (`ffi/faults.ts`, never the library) put an injector in a cell
 * to make the Nth call fail with a chosen errno or return a short count; the wrapper above it
 * (EINTR retry, would-block, SocketError) runs unchanged, so an injected fault travels exactly
 * the path a real one does. When nothing is injected the cost is one load of a field of a
 * monomorphic object per call (measured in bench/hot-path-ab.ts). The cells are created once per
 * module instance, so each worker thread has its own and an injection in one thread never
 * reaches another; production code never writes them.
 */
import koffi from 'koffi';
import { libc, type LibcName } from './libc.ts';
import { EAGAIN, EINPROGRESS, EINTR, ERRNO } from './errno.ts';
import { IORING_ENTER_EXT_ARG, SYS_io_uring_enter, SYS_io_uring_register, SYS_io_uring_setup } from './constants.ts';
import { OFFSETOF, SIZEOF } from './layouts.ts';

/** Returned instead of throwing when the call would block (EAGAIN / EWOULDBLOCK). */
export const WOULD_BLOCK = -EAGAIN;
/** Returned by `connect` when a non-blocking connection attempt has started (EINPROGRESS). */
export const IN_PROGRESS = -EINPROGRESS;

export { SocketError, type ErrorDetails } from './socket-error.ts';
import { SocketError } from './socket-error.ts';

type Fn1 = (a: any) => number;
type Fn2 = (a: any, b: any) => number;
type Fn3 = (a: any, b: any, c: any) => number;
type Fn4 = (a: any, b: any, c: any, d: any) => number;
type Fn5 = (a: any, b: any, c: any, d: any, e: any) => number;
type AnyFn = Fn1 | Fn2 | Fn3 | Fn4 | Fn5;

/** The cell through which a wrapper calls its raw function (see "Fault injection" above). */
export interface FaultPoint {
  fn: (...args: any[]) => any;
  /** libc's own function, to put back and for injectors to call through. */
  readonly original: (...args: any[]) => any;
}

const points = new Map<string, FaultPoint>();

/** @internal The fault points by function name, for `ffi/faults.ts` only. */
export const faultPoints: ReadonlyMap<string, FaultPoint> = points;

/** Makes the fault point of a libc function (once per module instance). */
function pointOf(name: string, fn: (...args: any[]) => any): FaultPoint {
  const point: FaultPoint = { fn, original: fn };
  points.set(name, point);
  return point;
}

/** How `checked` treats a wrapped function. */
export interface CheckedOptions {
  /** The first argument is an fd, named in errors. Default true. */
  fdFirst?: boolean;
  /** EINPROGRESS is a value (`IN_PROGRESS`), as for a non-blocking connect. Default false. */
  inProgressOk?: boolean;
}

function arityOf(raw: AnyFn): number {
  const info = (raw as { info?: { arguments: unknown[] } }).info;
  return info ? info.arguments.length : raw.length;
}

/**
 * Wraps a raw function of 1 to 5 arguments that returns -1 with errno on failure: retries EINTR,
 * returns `WOULD_BLOCK` / `IN_PROGRESS`, throws `SocketError` for the rest. Exported so that the
 * choke point itself can be unit-tested with a fake function.
 */
export function checked<F extends AnyFn>(name: string, raw: F, options: CheckedOptions = {}): F {
  return checkedAt(name, { fn: raw, original: raw }, arityOf(raw), options) as F;
}

/** `checked` over a fault point: the wrapper reads `point.fn` at each call. */
function checkedAt(name: string, point: FaultPoint, arity: number, options: CheckedOptions = {}): AnyFn {
  const inProgressOk = options.inProgressOk ?? false;
  const fdFirst = options.fdFirst ?? true;
  const failed = (errno: number, first: unknown): number => {
    if (errno === EAGAIN) return WOULD_BLOCK;
    if (errno === EINPROGRESS && inProgressOk) return IN_PROGRESS;
    throw new SocketError(name, errno, fdFirst ? { fd: first as number } : {});
  };
  switch (arity) {
    case 1:
      return (a: any) => {
        for (;;) {
          const r = (point.fn as Fn1)(a);
          if (r >= 0) return r;
          const errno = koffi.errno();
          if (errno !== EINTR) return failed(errno, a);
        }
      };
    case 2:
      return (a: any, b: any) => {
        for (;;) {
          const r = (point.fn as Fn2)(a, b);
          if (r >= 0) return r;
          const errno = koffi.errno();
          if (errno !== EINTR) return failed(errno, a);
        }
      };
    case 3:
      return (a: any, b: any, c: any) => {
        for (;;) {
          const r = (point.fn as Fn3)(a, b, c);
          if (r >= 0) return r;
          const errno = koffi.errno();
          if (errno !== EINTR) return failed(errno, a);
        }
      };
    case 4:
      return (a: any, b: any, c: any, d: any) => {
        for (;;) {
          const r = (point.fn as Fn4)(a, b, c, d);
          if (r >= 0) return r;
          const errno = koffi.errno();
          if (errno !== EINTR) return failed(errno, a);
        }
      };
    case 5:
      return (a: any, b: any, c: any, d: any, e: any) => {
        for (;;) {
          const r = (point.fn as Fn5)(a, b, c, d, e);
          if (r >= 0) return r;
          const errno = koffi.errno();
          if (errno !== EINTR) return failed(errno, a);
        }
      };
    default:
      throw new TypeError(`checked(${name}): cannot wrap a function of ${arity} arguments`);
  }
}

/** A libc function behind its fault point and the choke point. */
function sysCall<F extends AnyFn>(name: LibcName, raw: F, options?: CheckedOptions): F {
  return checkedAt(name, pointOf(name, raw), arityOf(raw), options) as F;
}

type Fn6 = (a: any, b: any, c: any, d: any, e: any, f: any) => number;

/**
 * `checked` for the two six-argument calls, recvfrom and sendto `(fd, buf, len, flags, addr,
 * addrlen)`: the same rules (EINTR retried, EAGAIN a value, the rest a SocketError naming the fd).
 */
export function checkedAddressed(name: string, raw: Fn6): Fn6 {
  return checkedAddressedAt(name, { fn: raw, original: raw });
}

function checkedAddressedAt(name: string, point: FaultPoint): Fn6 {
  return (a, b, c, d, e, f) => {
    for (;;) {
      const r = (point.fn as Fn6)(a, b, c, d, e, f);
      if (r >= 0) return r;
      const errno = koffi.errno();
      if (errno === EAGAIN) return WOULD_BLOCK;
      if (errno !== EINTR) throw new SocketError(name, errno, { fd: a });
    }
  };
}

/** The timeout to retry a wait with after EINTR: what remains until the deadline (never < 0). */
function remainingMs(timeoutMs: number, deadline: number): number {
  return timeoutMs > 0 ? Math.max(0, Math.ceil(deadline - performance.now())) : timeoutMs;
}

/**
 * Wraps epoll_wait-shaped calls `(fd, events, maxEvents, timeoutMs)`: EINTR is retried with the
 * time that remains of the timeout, so a signal neither cuts a wait short nor stretches it.
 * A timeout < 0 waits forever; 0 never blocks.
 */
export function checkedWait(name: string, raw: Fn4): Fn4 {
  return checkedWaitAt(name, { fn: raw, original: raw });
}

function checkedWaitAt(name: string, point: FaultPoint): Fn4 {
  return (fd, events, maxEvents, timeoutMs) => {
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    let timeout = timeoutMs;
    for (;;) {
      const r = (point.fn as Fn4)(fd, events, maxEvents, timeout);
      if (r >= 0) return r;
      const errno = koffi.errno();
      if (errno !== EINTR) throw new SocketError(name, errno, { fd });
      timeout = remainingMs(timeoutMs, deadline);
    }
  };
}

/** Wraps poll(2) `(fds, nfds, timeoutMs)` with the same EINTR rule as `checkedWait`. */
export function checkedPoll(raw: Fn3): Fn3 {
  return checkedPollAt({ fn: raw, original: raw });
}

function checkedPollAt(point: FaultPoint): Fn3 {
  return (fds, nfds, timeoutMs) => {
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    let timeout = timeoutMs;
    for (;;) {
      const r = (point.fn as Fn3)(fds, nfds, timeout);
      if (r >= 0) return r;
      const errno = koffi.errno();
      if (errno !== EINTR) throw new SocketError('poll', errno);
      timeout = remainingMs(timeoutMs, deadline);
    }
  };
}

const closePoint = pointOf('close', libc.close);
const ifNameToIndexPoint = pointOf('if_nametoindex', libc.if_nametoindex);
// The asynchronous form: injectors answer through the callback, as the threadpool would.
const getaddrinfoPoint = pointOf('getaddrinfo', libc.getaddrinfo.async);

/**
 * close(2) without an EINTR retry: Linux has released the fd even then, and a retry could close
 * a number the kernel has already handed to someone else. Any other error is thrown.
 */
export function closeFd(fd: number): void {
  const r = closePoint.fn(fd);
  if (r >= 0) return;
  const errno = koffi.errno();
  if (errno !== EINTR) throw new SocketError('close', errno, { fd });
}

/** if_nametoindex(3): 0 means failure there, not success; the errno says why. */
export function ifNameToIndex(name: string): number {
  const r = ifNameToIndexPoint.fn(name);
  if (r > 0) return r;
  const errno = koffi.errno();
  throw new SocketError('if_nametoindex', errno || ERRNO_ENODEV);
}
const ERRNO_ENODEV = 19;

/**
 * getaddrinfo(node, NULL, hints, res) on libuv's threadpool (koffi `.async`): the one call the
 * library makes off the calling thread. Failures come back as the EAI_* return value, so the
 * errno that `.async` loses does not matter. koffi does not keep the buffers alive: they must be
 * off V8's heap (a Buffer.alloc of more than 64 bytes, never moved by the GC) and referenced by
 * `callback`'s closure until it runs.
 */
export function getaddrinfoAsync(
  node: Uint8Array,
  hints: Uint8Array,
  result: Uint8Array,
  callback: (err: unknown, eai: number) => void,
): void {
  getaddrinfoPoint.fn(node, null, hints, result, callback);
}

/** freeaddrinfo(3) on a list returned by getaddrinfo (a pointer, as koffi gives it: a BigInt). */
export function freeAddrInfo(list: bigint): void {
  libc.freeaddrinfo(list);
}

/** One address of a getaddrinfo answer, copied out of libc's list (see takeAddrInfo). */
export interface AddrInfoEntry {
  /** `ai_family` (AF_INET, AF_INET6, ...). */
  readonly family: number;
  /** The socket address, in bytes of its own (sockaddr_storage-sized). */
  readonly sockaddr: Uint8Array;
  /** Its length (`ai_addrlen`, at most the size of `sockaddr`). */
  readonly length: number;
}

/**
 * The addresses of the addrinfo list whose pointer getaddrinfo wrote into `result` (8 bytes,
 * little-endian), in order, copied into bytes of our own; the list is freed (also when copying
 * throws). A null pointer gives an empty list.
 *
 * Copied with memcpy(3), not read through koffi.decode or koffi.view: those make JavaScript
 * objects inside koffi, and once Node has begun to stop a worker that fails and koffi's throw
 * aborts the whole process (found from outside: 5 of 5 runs of 100 workers terminated while
 * they resolved; test/worker-teardown.test.ts). memcpy takes our Uint8Array and two numbers,
 * and makes nothing.
 */
export function takeAddrInfo(result: Uint8Array): AddrInfoEntry[] {
  const head = new DataView(result.buffer, result.byteOffset, 8).getBigUint64(0, true);
  if (head === 0n) return [];
  const entries: AddrInfoEntry[] = [];
  try {
    // Over 64 bytes: off V8's heap like every buffer handed to libc (see getaddrinfoAsync).
    const node = new Uint8Array(Math.max(SIZEOF.addrinfo, 128));
    const view = new DataView(node.buffer);
    const at = OFFSETOF.addrinfo;
    for (let p = head; p !== 0n; ) {
      libc.memcpy(node, p, SIZEOF.addrinfo);
      const address = view.getBigUint64(at.addr, true);
      if (address !== 0n) {
        const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
        const length = Math.min(view.getUint32(at.addrlen, true), sockaddr.length);
        libc.memcpy(sockaddr, address, length);
        entries.push({ family: view.getInt32(at.family, true), sockaddr, length });
      }
      p = view.getBigUint64(at.next, true);
    }
  } finally {
    libc.freeaddrinfo(head);
  }
  return entries;
}

const EBUSY = ERRNO.EBUSY;
const ETIME = ERRNO.ETIME;
/** io_uring_enter: the completion queue is full (overflowed); reap completions, then enter again. */
export const RING_BUSY = -EBUSY;
/** io_uring_enter: the wait's timeout passed before enough completions arrived. */
export const TIMED_OUT = -ETIME;
/** io_uring_enter with a timeout (IORING_ENTER_EXT_ARG): a signal came; rewrite the time that remains and enter again. */
export const INTERRUPTED = -EINTR;

type Fn6n = (fd: number, toSubmit: number, minComplete: number, flags: number, arg: Uint8Array | null, argSize: number) => number;

/**
 * io_uring_enter(2) `(fd, toSubmit, minComplete, flags, arg, argSize)`. EINTR is retried, except
 * in a wait with a timeout (IORING_ENTER_EXT_ARG): that timeout is relative and lives in memory
 * the caller owns, so the caller rewrites what remains and calls again (`INTERRUPTED`), as
 * `checkedWait` does for epoll. EAGAIN (no memory for new requests, try later), EBUSY (completion
 * queue overflowed) and ETIME (the wait's timeout) are answers, returned as values.
 */
function checkedEnterAt(point: FaultPoint): Fn6n {
  return (fd, toSubmit, minComplete, flags, arg, argSize) => {
    for (;;) {
      const r = (point.fn as Fn6n)(fd, toSubmit, minComplete, flags, arg, argSize);
      if (r >= 0) return r;
      const errno = koffi.errno();
      if (errno === EINTR) {
        if ((flags & IORING_ENTER_EXT_ARG) !== 0) return INTERRUPTED;
        continue;
      }
      if (errno === EAGAIN || errno === EBUSY || errno === ETIME) return -errno;
      throw new SocketError('io_uring_enter', errno, { fd });
    }
  };
}

/**
 * Memory mapped with mmap(2), seen through an ArrayBuffer over it (koffi.view: no copy). The
 * pointer stays in here: lib/ reads and writes `buffer` only. Touching `buffer` after
 * `unmapMemory` would fault, so the owner drops every view of it first.
 */
export interface Mapping {
  readonly buffer: ArrayBuffer;
  readonly length: number;
  /** @internal The address mmap returned (koffi's pointer value). */
  readonly _pointer: unknown;
}

const mmapPoint = pointOf('mmap', libc.mmap);
const munmapPoint = pointOf('munmap', libc.munmap);
/** What mmap returns on failure: (void *) -1. An injected fault returns -1 itself. */
const MAP_FAILED = 0xffffffffffffffffn;

/** mmap(NULL, length, prot, flags, fd, offset) as a Mapping; throws a SocketError on failure. */
export function mapMemory(length: number, prot: number, flags: number, fd: number, offset: number): Mapping {
  const pointer = mmapPoint.fn(null, length, prot, flags, fd, offset);
  if (pointer === -1 || pointer === MAP_FAILED || pointer === null) {
    const errno = koffi.errno();
    throw new SocketError('mmap', errno, { fd });
  }
  return { buffer: koffi.view(pointer, length), length, _pointer: pointer };
}

/** munmap(2) of a Mapping. Throws a SocketError on failure (which only a bookkeeping bug causes). */
export function unmapMemory(mapping: Mapping): void {
  if (munmapPoint.fn(mapping._pointer, mapping.length) >= 0) return;
  throw new SocketError('munmap', koffi.errno());
}

/** Every libc function the library uses, each behind the choke point. */
export const sys = Object.freeze({
  socket: sysCall('socket', libc.socket, { fdFirst: false }),
  socketpair: sysCall('socketpair', libc.socketpair, { fdFirst: false }),
  bind: sysCall('bind', libc.bind),
  listen: sysCall('listen', libc.listen),
  accept4: sysCall('accept4', libc.accept4),
  connect: sysCall('connect', libc.connect, { inProgressOk: true }),
  getsockname: sysCall('getsockname', libc.getsockname),
  getpeername: sysCall('getpeername', libc.getpeername),
  setsockopt: sysCall('setsockopt', libc.setsockopt),
  getsockopt: sysCall('getsockopt', libc.getsockopt),
  shutdown: sysCall('shutdown', libc.shutdown),
  close: closeFd,
  recv: sysCall('recv', libc.recv),
  send: sysCall('send', libc.send),
  read: sysCall('read', libc.read),
  write: sysCall('write', libc.write),
  readv: sysCall('readv', libc.readv),
  writev: sysCall('writev', libc.writev),
  sendmsg: sysCall('sendmsg', libc.sendmsg),
  recvmsg: sysCall('recvmsg', libc.recvmsg),
  recvfrom: checkedAddressedAt('recvfrom', pointOf('recvfrom', libc.recvfrom)),
  sendto: checkedAddressedAt('sendto', pointOf('sendto', libc.sendto)),
  recvmmsg: sysCall('recvmmsg', libc.recvmmsg),
  sendmmsg: sysCall('sendmmsg', libc.sendmmsg),
  fcntl: sysCall('fcntl', libc.fcntl),
  open: sysCall('open', libc.open, { fdFirst: false }),
  pipe2: sysCall('pipe2', libc.pipe2, { fdFirst: false }),
  epoll_create1: sysCall('epoll_create1', libc.epoll_create1, { fdFirst: false }),
  epoll_ctl: sysCall('epoll_ctl', libc.epoll_ctl),
  epoll_wait: checkedWaitAt('epoll_wait', pointOf('epoll_wait', libc.epoll_wait)),
  eventfd: sysCall('eventfd', libc.eventfd, { fdFirst: false }),
  poll: checkedPollAt(pointOf('poll', libc.poll)),
  // The syscall number is bound here, so that callers, fault filters and errors see the
  // io_uring call's own arguments.
  io_uring_setup: checkedAt(
    'io_uring_setup',
    pointOf('io_uring_setup', (entries: number, params: Uint8Array) => libc.io_uring_setup(SYS_io_uring_setup, entries, params)),
    2,
    { fdFirst: false },
  ) as (entries: number, params: Uint8Array) => number,
  io_uring_enter: checkedEnterAt(
    pointOf('io_uring_enter', (fd: number, toSubmit: number, minComplete: number, flags: number, arg: Uint8Array | null, argSize: number) =>
      libc.io_uring_enter(SYS_io_uring_enter, fd, toSubmit, minComplete, flags, arg, argSize),
    ),
  ),
  io_uring_register: checkedAt(
    'io_uring_register',
    pointOf('io_uring_register', (fd: number, opcode: number, arg: Uint8Array | null, nrArgs: number) =>
      libc.io_uring_register(SYS_io_uring_register, fd, opcode, arg, nrArgs),
    ),
    4,
  ) as (fd: number, opcode: number, arg: Uint8Array | null, nrArgs: number) => number,
  mmap: mapMemory,
  munmap: unmapMemory,
  if_nametoindex: ifNameToIndex,
  sendfile: sysCall('sendfile', libc.sendfile),
  // splice has six arguments; the library only moves pipe -> socket, with no offsets, so the
  // four that vary go through a 4-argument adapter (errno is still read right after the call).
  splice: sysCall('splice', (fdIn: number, fdOut: number, length: number, flags: number): number => libc.splice(fdIn, null, fdOut, null, length, flags)),
  getaddrinfoAsync,
  freeaddrinfo: freeAddrInfo,
  takeAddrInfo,
} satisfies Partial<
  Record<LibcName | "getaddrinfoAsync" | "takeAddrInfo", AnyFn | Fn6 | typeof closeFd | typeof freeAddrInfo | typeof takeAddrInfo | typeof getaddrinfoAsync | typeof mapMemory | typeof unmapMemory>
>);
