/**
 * Socket options as functions of an fd: typed helpers for the options people actually set, and a
 * raw escape hatch for the rest. `Socket` and `Listener` methods delegate here.
 *
 * Every option the kernel refuses is a `SocketError` (code ENOPROTOOPT, EOPNOTSUPP, EINVAL...),
 * never silently ignored: TCP_NODELAY on a Unix socket, IPV6_V6ONLY on an IPv4 socket or after
 * bind. Values are checked here first, so a mistake is reported with the option's name rather than
 * as the kernel's bare EINVAL.
 *
 * ## Buffer sizes: the kernel doubles them
 * Linux stores twice the value given to SO_RCVBUF / SO_SNDBUF (the other half is its bookkeeping
 * overhead), capped by net.core.rmem_max / wmem_max and raised to a minimum (see socket(7)).
 * `getOption` returns what the kernel reports, so `receiveBufferSize` reads back `2 * n` for an
 * `n` within the limits: that is the kernel's rule, not a bug.
 *
 * Options are not a hot path: each call allocates its own small scratch arrays.
 */
import {
  IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SO_KEEPALIVE, SO_LINGER, SO_RCVBUF, SO_REUSEADDR, SO_REUSEPORT,
  SO_SNDBUF, SOL_SOCKET, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_NODELAY,
} from '../../ffi/constants.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { SocketError, sys } from '../../ffi/syscall.ts';
import { checkBytes, checkInteger, invalidType, invalidValue } from './errors.ts';
import { byteLengthOf, isUint8Array } from './bytes.ts';

/** The options `setOption` / `getOption` know by name. */
export type SocketOptionName =
  | 'noDelay'
  | 'keepAlive'
  | 'keepAliveIdle'
  | 'keepAliveInterval'
  | 'keepAliveCount'
  | 'linger'
  | 'receiveBufferSize'
  | 'sendBufferSize'
  | 'reuseAddress'
  | 'reusePort'
  | 'ipv6Only';

/** The value type of each named option. */
export interface SocketOptionValues {
  /** TCP_NODELAY: send small segments at once instead of waiting to coalesce them (Nagle off). */
  noDelay: boolean;
  /** SO_KEEPALIVE: probe an idle connection to find out that the peer has gone. */
  keepAlive: boolean;
  /** TCP_KEEPIDLE: seconds of idleness before the first keep-alive probe (1..32767). */
  keepAliveIdle: number;
  /** TCP_KEEPINTVL: seconds between keep-alive probes (1..32767). */
  keepAliveInterval: number;
  /** TCP_KEEPCNT: unanswered probes before the connection is dropped (1..127). */
  keepAliveCount: number;
  /**
   * SO_LINGER: `null` is off (close returns at once, the kernel still delivers queued bytes);
   * a number of seconds makes close() linger; `0` resets the connection on close (RST).
   */
  linger: number | null;
  /** SO_RCVBUF in bytes. Reads back doubled: see the module comment. */
  receiveBufferSize: number;
  /** SO_SNDBUF in bytes. Reads back doubled: see the module comment. */
  sendBufferSize: number;
  /** SO_REUSEADDR: bind a port that still has connections in TIME_WAIT. */
  reuseAddress: boolean;
  /** SO_REUSEPORT: several sockets bind the same port; the kernel spreads connections. */
  reusePort: boolean;
  /** IPV6_V6ONLY: an IPv6 socket takes IPv6 only, not IPv4-mapped too. Set it before bind. */
  ipv6Only: boolean;
}

type Kind = 'boolean' | 'integer' | 'linger';

interface OptionSpec {
  level: number;
  name: number;
  /** For messages: the C name. */
  cName: string;
  kind: Kind;
  min: number;
  max: number;
}

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

function spec(level: number, name: number, cName: string, kind: Kind, min = 0, max = 1): OptionSpec {
  return Object.freeze({ level, name, cName, kind, min, max });
}

/** Where each named option lives, and what values it takes (kernel limits from tcp.h / sock.c). */
const OPTIONS: Readonly<Record<SocketOptionName, OptionSpec>> = Object.freeze({
  noDelay: spec(IPPROTO_TCP, TCP_NODELAY, 'TCP_NODELAY', 'boolean'),
  keepAlive: spec(SOL_SOCKET, SO_KEEPALIVE, 'SO_KEEPALIVE', 'boolean'),
  keepAliveIdle: spec(IPPROTO_TCP, TCP_KEEPIDLE, 'TCP_KEEPIDLE', 'integer', 1, 32767), // MAX_TCP_KEEPIDLE
  keepAliveInterval: spec(IPPROTO_TCP, TCP_KEEPINTVL, 'TCP_KEEPINTVL', 'integer', 1, 32767), // MAX_TCP_KEEPINTVL
  keepAliveCount: spec(IPPROTO_TCP, TCP_KEEPCNT, 'TCP_KEEPCNT', 'integer', 1, 127), // MAX_TCP_KEEPCNT
  linger: spec(SOL_SOCKET, SO_LINGER, 'SO_LINGER', 'linger', 0, INT32_MAX),
  receiveBufferSize: spec(SOL_SOCKET, SO_RCVBUF, 'SO_RCVBUF', 'integer', 1, INT32_MAX),
  sendBufferSize: spec(SOL_SOCKET, SO_SNDBUF, 'SO_SNDBUF', 'integer', 1, INT32_MAX),
  reuseAddress: spec(SOL_SOCKET, SO_REUSEADDR, 'SO_REUSEADDR', 'boolean'),
  reusePort: spec(SOL_SOCKET, SO_REUSEPORT, 'SO_REUSEPORT', 'boolean'),
  ipv6Only: spec(IPPROTO_IPV6, IPV6_V6ONLY, 'IPV6_V6ONLY', 'boolean'),
});

function specOf(name: unknown): OptionSpec {
  if (typeof name !== 'string') throw invalidType('name', 'of type string', name);
  if (!Object.hasOwn(OPTIONS, name)) {
    throw invalidValue('name', `must be one of ${Object.keys(OPTIONS).join(', ')} (use setRawOption for others)`, name);
  }
  return OPTIONS[name as SocketOptionName];
}

function checkFd(fd: unknown): number {
  return checkInteger('fd', fd, 0, INT32_MAX);
}

/** The same error, saying which option the kernel refused. */
function naming(err: unknown, what: string): unknown {
  if (err instanceof SocketError) err.message += `; option ${what}`;
  return err;
}

function setsockopt(fd: number, level: number, name: number, value: Uint8Array | Int32Array, what: string): void {
  try {
    sys.setsockopt(fd, level, name, value, byteLengthOf(value));
  } catch (err) {
    throw naming(err, what);
  }
}

/** getsockopt into `into`; returns the length the kernel reports. */
function getsockopt(fd: number, level: number, name: number, into: Uint8Array | Int32Array, what: string): number {
  const length = new Uint32Array([byteLengthOf(into)]);
  try {
    sys.getsockopt(fd, level, name, into, length);
  } catch (err) {
    throw naming(err, what);
  }
  return length[0];
}

/**
 * Sets a named option on a socket fd. Values are checked first (errors name the option:
 * `noDelay` must be a boolean, `keepAliveCount` an integer 1..127...); what the kernel refuses
 * then throws a `SocketError` with its code, and the option's name in the message.
 */
export function setOption<K extends SocketOptionName>(fd: number, name: K, value: SocketOptionValues[K]): void {
  const s = specOf(name);
  checkFd(fd);
  const what = `${name} = ${s.cName}`;
  if (s.kind === 'boolean') {
    if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
    setsockopt(fd, s.level, s.name, new Int32Array([value ? 1 : 0]), what);
  } else if (s.kind === 'integer') {
    checkInteger(name, value, s.min, s.max);
    setsockopt(fd, s.level, s.name, new Int32Array([value as number]), what);
  } else {
    // struct linger { int l_onoff; int l_linger; }: two ints, no padding (SIZEOF.linger = 8).
    if (value !== null) checkInteger(name, value, s.min, s.max);
    setsockopt(fd, s.level, s.name, new Int32Array([value === null ? 0 : 1, value === null ? 0 : (value as number)]), what);
  }
}

/**
 * Reads a named option from a socket fd, as the kernel reports it (buffer sizes doubled, see the
 * module comment). `linger` is `null` when off.
 */
export function getOption<K extends SocketOptionName>(fd: number, name: K): SocketOptionValues[K] {
  const s = specOf(name);
  checkFd(fd);
  const what = `${name} = ${s.cName}`;
  if (s.kind === 'linger') {
    const linger = new Int32Array(SIZEOF.linger / 4);
    getsockopt(fd, s.level, s.name, linger, what);
    return (linger[0] === 0 ? null : linger[1]) as SocketOptionValues[K];
  }
  const value = new Int32Array(1);
  getsockopt(fd, s.level, s.name, value, what);
  return (s.kind === 'boolean' ? value[0] !== 0 : value[0]) as SocketOptionValues[K];
}

function rawWhat(level: number, name: number): string {
  return `level ${level}, name ${name}`;
}

/**
 * setsockopt(fd, level, name, ...) for any option: a number or boolean is passed as a 4-byte
 * C int (true = 1), a Uint8Array as its bytes (its `byteLength`, honouring `byteOffset`: libc
 * reads nothing past it). The kernel's refusal is a `SocketError`.
 */
export function setRawOption(fd: number, level: number, name: number, value: number | boolean | Uint8Array): void {
  checkFd(fd);
  checkInteger('level', level, 0, INT32_MAX);
  checkInteger('name', name, 0, INT32_MAX);
  let bytes: Uint8Array | Int32Array;
  if (typeof value === 'boolean') bytes = new Int32Array([value ? 1 : 0]);
  else if (typeof value === 'number') bytes = new Int32Array([checkInteger('value', value, INT32_MIN, 0xffffffff) | 0]);
  // instanceof too: a Proxy of a view is no Uint8Array, but checkBytes names it as one refused.
  else if (value instanceof Uint8Array || isUint8Array(value)) bytes = checkBytes('value', value);
  else throw invalidType('value', 'of type number or boolean, or an instance of Uint8Array', value);
  setsockopt(fd, level, name, bytes, rawWhat(level, name));
}

/**
 * getsockopt(fd, level, name, ...) for any option: reads into a fresh buffer of `length` bytes
 * (default 256, at most 65536) and returns the bytes the kernel wrote (as many as the socklen it
 * reports). The kernel's refusal is a `SocketError`.
 */
export function getRawOption(fd: number, level: number, name: number, length = 256): Uint8Array {
  checkFd(fd);
  checkInteger('level', level, 0, INT32_MAX);
  checkInteger('name', name, 0, INT32_MAX);
  checkInteger('length', length, 1, 65536);
  const bytes = new Uint8Array(length);
  const written = getsockopt(fd, level, name, bytes, rawWhat(level, name));
  return bytes.slice(0, Math.min(written, length));
}

/**
 * getsockopt for an option whose value is a C int (most of them): returns it as a number. An
 * option the kernel reports in one byte (some IP-level ones do) is read as that byte. For a
 * larger value (a struct) Linux writes only its first 4 bytes: use `getRawOption` for those.
 */
export function getRawIntOption(fd: number, level: number, name: number): number {
  checkFd(fd);
  checkInteger('level', level, 0, INT32_MAX);
  checkInteger('name', name, 0, INT32_MAX);
  const value = new Int32Array(1); // native byte order, as the kernel writes an int
  const written = getsockopt(fd, level, name, value, rawWhat(level, name));
  if (written === 4) return value[0];
  if (written === 1) return new Uint8Array(value.buffer)[0];
  throw invalidValue('name', `is an option whose value is ${written} bytes, not a C int: use getRawOption`, name);
}

/**
 * Sets several named options at once (before bind or connect): `{ noDelay: true, keepAlive: true }`.
 * Unknown names and bad values throw, naming `argName.<option>`.
 */
export function applyOptions(fd: number, options: unknown, argName: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') throw invalidType(argName, 'an object of socket options', options);
  for (const [name, value] of Object.entries(options)) {
    if (!Object.hasOwn(OPTIONS, name)) throw invalidValue(`${argName}.${name}`, `is not a socket option (known: ${Object.keys(OPTIONS).join(', ')})`);
    try {
      setOption(fd, name as SocketOptionName, value as never);
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError) err.message = err.message.replace(`"${name}"`, `"${argName}.${name}"`);
      throw err;
    }
  }
}
