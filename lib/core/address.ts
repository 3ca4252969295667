/**
 * IPv4, IPv6 and Unix socket addresses: parse, format, validate, and convert to and from the
 * kernel's sockaddr bytes.
 *
 * Everything here is pure JavaScript except `ifNameToIndex`, used once when a user names an IPv6
 * zone by interface (`fe80::1%lo`). The sockaddr codecs write and read bytes at the offsets koffi
 * computed in `ffi/layouts.ts` and allocate nothing but their result (see design §5).
 *
 * Compatibility targets, checked by property tests against Node itself:
 * - `isIP` accepts exactly what `node:net` `isIP` accepts (strict dotted quads without leading
 *   zeros; IPv6 with at most one `::`, an optional dotted tail, an optional `%zone`).
 * - `formatIPv6` prints what Node prints (libuv's inet_ntop): RFC 5952 compression, and a dotted
 *   tail for IPv4-mapped `::ffff:1.2.3.4` and for the deprecated IPv4-compatible `::1.2.3.4`.
 */
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { ifNameToIndex, SocketError } from '../../ffi/syscall.ts';
import { checkInteger, invalidType, invalidValue, outOfRange } from './errors.ts';

/** An IPv4 or IPv6 endpoint. `address` is normalised (as Node prints it), without a zone. */
export interface InetAddress {
  /** Which IP version; as node:net's `family`. */
  family: 'IPv4' | 'IPv6';
  /** The IP literal (`127.0.0.1`, `::1`), as Node prints it. */
  address: string;
  /** The TCP port, 0 to 65535. */
  port: number;
  /** IPv6 only: sin6_flowinfo (traffic class and flow label) as a number; big-endian in the sockaddr. Absent when 0. */
  flowinfo?: number | undefined;
  /** IPv6 only: the interface index of a link-local address (`fe80::1%2`). Absent when 0. */
  scopeId?: number | undefined;
}

/** path '' = unnamed; a path starting with '\0' is a Linux abstract name (as in node:net). */
export interface UnixAddress {
  /** Tells a Unix address from an IP one. */
  family: 'unix';
  /** The socket's filesystem path, an abstract name (leading '\0'), or '' when unnamed. */
  path: string;
}

/** Any address this library can bind, connect to, or report. */
export type SocketAddress = InetAddress | UnixAddress;

/**
 * The port of a socket bound to an address of type `A` (a Listener's, a DatagramSocket's): a
 * number for IPv4/IPv6, undefined for Unix.
 */
export type PortOf<A extends SocketAddress> = A extends InetAddress ? number : undefined;

/** sizeof(sun_path): 108 on Linux. A filesystem path needs one of them for its NUL. */
const SUN_PATH = SIZEOF.sockaddr_un - OFFSETOF.sockaddr_un.path;

// ---------------------------------------------------------------------------------------------
// Parsing. Each parser writes into `out` at `at` when given one, so that isIP allocates nothing
// and encodeSockaddr parses straight into the sockaddr.

/** Parses text[start, end) as a strict dotted quad (no leading zeros, each part <= 255). */
/** @internal (lib/sockaddr.ts) */
export function parse4(text: string, start: number, end: number, out: Uint8Array | null, at: number): boolean {
  let i = start;
  for (let part = 0; ; part++) {
    const first = i;
    let value = 0;
    for (let c = text.charCodeAt(i); i < end && c >= 48 && c <= 57 && i - first < 3; c = text.charCodeAt(++i)) {
      value = value * 10 + c - 48;
    }
    const digits = i - first;
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(first) === 48)) return false;
    if (out !== null) out[at + part] = value;
    if (part === 3) return i === end;
    if (i >= end || text.charCodeAt(i) !== 46 /* . */) return false;
    i++;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** A zone id as net.isIP allows it: one or more of [0-9A-Za-z.:-]. */
function validZone(text: string, start: number): boolean {
  if (start >= text.length) return false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const lower = c | 0x20;
    if (!((c >= 48 && c <= 58) || (lower >= 97 && lower <= 122) || c === 45 || c === 46)) return false;
  }
  return true;
}

/**
 * Parses an IPv6 literal with an optional `%zone`. Returns the index where the zone's `%` is (or
 * text.length when there is none), or -1 when the text is not IPv6. Groups after `::` are first
 * written next to those before it, then moved to the end, so no temporary array is needed.
 */
/** @internal (lib/sockaddr.ts) */
export function parse6(text: string, out: Uint8Array | null, at: number): number {
  let end = text.indexOf('%');
  if (end === -1) end = text.length;
  else if (!validZone(text, end + 1)) return -1;
  let groups = 0;
  let gap = -1; // the group index where '::' stands
  let i = 0;
  if (text.charCodeAt(0) === 58 /* : */) {
    if (text.charCodeAt(1) !== 58) return -1;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const first = i;
    let value = 0;
    for (let h = hexValue(text.charCodeAt(i)); i < end && h >= 0; h = hexValue(text.charCodeAt(++i))) value = value * 16 + h;
    if (i < end && text.charCodeAt(i) === 46) {
      // A dotted IPv4 tail: the last two groups, and nothing may follow it.
      // (groups > 6 would fail the count below anyway, but must not write past the 16 bytes.)
      if (groups > 6 || !parse4(text, first, end, out, at + 2 * groups)) return -1;
      groups += 2;
      break;
    }
    if (i === first || i - first > 4 || groups === 8) return -1;
    if (out !== null) {
      out[at + 2 * groups] = value >> 8;
      out[at + 2 * groups + 1] = value & 0xff;
    }
    groups++;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return -1;
    if (text.charCodeAt(++i) === 58) {
      if (gap !== -1) return -1; // a second '::'
      gap = groups;
      i++;
    } else if (i === end) return -1; // a trailing single ':'
  }
  if (gap === -1 ? groups !== 8 : groups > 7) return -1;
  if (out !== null && gap !== -1) {
    const zeros = 2 * (8 - groups);
    out.copyWithin(at + 2 * gap + zeros, at + 2 * gap, at + 2 * groups);
    out.fill(0, at + 2 * gap, at + 2 * gap + zeros);
  }
  return end;
}

/** 4 for an IPv4 literal, 6 for IPv6 (zone ids included), 0 otherwise: the same as node:net's isIP. */
export function isIP(text: string): 0 | 4 | 6 {
  const s = `${text}`; // coerce as net.isIP does
  if (parse4(s, 0, s.length, null, 0)) return 4;
  return parse6(s, null, 0) >= 0 ? 6 : 0;
}

/** The 4 bytes of a strict dotted quad (as net.isIPv4 accepts it), or null. */
export function parseIPv4(text: string): Uint8Array | null {
  const bytes = new Uint8Array(4);
  return parse4(text, 0, text.length, bytes, 0) ? bytes : null;
}

/** The 16 bytes of an IPv6 literal (`::`, dotted IPv4 tail) and its zone after `%`, or null. */
export function parseIPv6(text: string): { bytes: Uint8Array; zone: string | null } | null {
  const bytes = new Uint8Array(16);
  const end = parse6(text, bytes, 0);
  if (end < 0) return null;
  return { bytes, zone: end < text.length ? text.slice(end + 1) : null };
}

// ---------------------------------------------------------------------------------------------
// Formatting

function checkSpan(bytes: Uint8Array, offset: number, length: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + length > bytes.length) {
    throw outOfRange('offset', `an integer >= 0 and <= ${bytes.length - length}`, offset);
  }
}

/** Dotted-quad text of the 4 bytes at `offset`. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  checkSpan(bytes, offset, 4);
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * Text of the 16 bytes at `offset`, exactly as Node prints addresses (libuv's inet_ntop):
 * lowercase hex without leading zeros; the longest run of two or more zero groups becomes `::`
 * (the first one on ties); `::ffff:a.b.c.d` (IPv4-mapped) and `::a.b.c.d` (six zero groups then
 * a non-zero word) keep a dotted tail.
 */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  checkSpan(bytes, offset, 16);
  let bestStart = -1, bestLength = 0, runStart = -1;
  for (let g = 0; g <= 8; g++) {
    if (g < 8 && bytes[offset + 2 * g] === 0 && bytes[offset + 2 * g + 1] === 0) {
      if (runStart === -1) runStart = g;
    } else if (runStart !== -1) {
      if (g - runStart > bestLength) {
        bestStart = runStart;
        bestLength = g - runStart;
      }
      runStart = -1;
    }
  }
  if (bestLength < 2) bestStart = -1;
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff))) {
    return (bestLength === 5 ? '::ffff:' : '::') + formatIPv4(bytes, offset + 12);
  }
  let text = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      text += '::';
      g += bestLength - 1;
      continue;
    }
    if (g > 0 && g !== bestStart + bestLength) text += ':';
    text += ((bytes[offset + 2 * g] << 8) | bytes[offset + 2 * g + 1]).toString(16);
  }
  return text;
}

/** '1.2.3.4:80', '[::1]:80', '[fe80::1%2]:80', 'unix /tmp/x', 'unix @abstract', 'unix (unnamed)'. */
export function formatAddress(addr: SocketAddress): string {
  const family = addr !== null && typeof addr === 'object' ? addr.family : undefined;
  const valid =
    family === 'unix'
      ? typeof (addr as UnixAddress).path === 'string'
      : (family === 'IPv4' || family === 'IPv6') && typeof (addr as InetAddress).address === 'string' && Number.isInteger((addr as InetAddress).port);
  if (!valid) throw invalidType('addr', "a SocketAddress ({ family: 'IPv4' | 'IPv6', address, port } or { family: 'unix', path })", addr);
  if (addr.family === 'unix') {
    // Abstract names are shown with '@' for each NUL, as ss(8) and netstat do.
    return addr.path === '' ? 'unix (unnamed)' : `unix ${addr.path.replace(/\0/g, '@')}`;
  }
  if (addr.family === 'IPv4') return `${addr.address}:${addr.port}`;
  return `[${addr.address}${addr.scopeId ? `%${addr.scopeId}` : ''}]:${addr.port}`;
}

/** The text of an InetAddress argument, or a TypeError naming "addr" (no crash, no silent false). */
function inetText(addr: unknown): string {
  const a = addr as InetAddress | null;
  if (a === null || typeof a !== 'object' || (a.family !== 'IPv4' && a.family !== 'IPv6') || typeof a.address !== 'string') {
    throw invalidType('addr', "an InetAddress ({ family: 'IPv4' | 'IPv6', address, port })", addr);
  }
  return a.address;
}

/** True for the wildcard addresses '0.0.0.0' and '::' (normalised text, as InetAddress holds). */
export function isUnspecified(addr: InetAddress): boolean {
  const a = inetText(addr);
  return a === '0.0.0.0' || a === '::';
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (normalised text, as InetAddress holds). */
export function isLoopback(addr: InetAddress): boolean {
  const a = inetText(addr);
  return a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.');
}

// ---------------------------------------------------------------------------------------------
// Validation of user input

/**
 * Validates `{host, port}` from user input. `host` must be a numeric IP literal (names are
 * resolved elsewhere, with resolve()); an IPv6 zone (`fe80::1%lo`, `fe80::1%2`) becomes
 * `scopeId`. `argName` names the arguments in errors: a prefix (`inetAddress(h, p, 'options')`
 * reports "options.host" / "options.port"), or the two names themselves where they are not a
 * pair of that shape (`{ host: 'options.localAddress', port: 'options.localPort' }`).
 */
export function inetAddress(host: unknown, port: unknown, argName?: string | { host: string; port: string }): InetAddress {
  const hostName = typeof argName === 'object' ? argName.host : argName ? `${argName}.host` : 'host';
  const portName = typeof argName === 'object' ? argName.port : argName ? `${argName}.port` : 'port';
  if (typeof host !== 'string') throw invalidType(hostName, 'of type string', host);
  checkInteger(portName, port, 0, 65535);
  const p = port as number;
  // A strict dotted quad is already normalised.
  if (parse4(host, 0, host.length, null, 0)) return { family: 'IPv4', address: host, port: p };
  const parsed = parseIPv6(host);
  if (parsed === null) {
    throw invalidValue(hostName, 'is not an IP address literal (resolve host names first, with resolve())', host);
  }
  const addr: InetAddress = { family: 'IPv6', address: formatIPv6(parsed.bytes), port: p };
  if (parsed.zone !== null) {
    const scopeId = scopeIdOf(parsed.zone, hostName, host);
    if (scopeId !== 0) addr.scopeId = scopeId;
  }
  return addr;
}

function scopeIdOf(zone: string, hostName: string, host: string): number {
  if (/^[0-9]+$/.test(zone)) {
    const n = Number(zone);
    if (n > 0xffffffff) throw invalidValue(hostName, `has a zone index above 2^32-1`, host);
    return n;
  }
  try {
    return ifNameToIndex(zone);
  } catch (err) {
    if (!(err instanceof SocketError)) throw err;
    throw invalidValue(hostName, `names zone "${zone}", which is not a network interface here (${err.code})`, host);
  }
}

/**
 * Bytes `text` takes in UTF-8 (lone surrogates count as U+FFFD, 3 bytes, as TextEncoder writes
 * them); also writes them into `out` at `at` when given.
 */
/** @internal (lib/sockaddr.ts) */
export function utf8(text: string, out: Uint8Array | null, at: number): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = text.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else c = 0xfffd;
    }
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (out !== null) {
      if (size === 1) out[at + n] = c;
      else {
        out[at + n] = ((0xff00 >> size) & 0xff) | (c >> (6 * (size - 1))); // 110xxxxx, 1110xxxx or 11110xxx
        for (let k = 1; k < size; k++) out[at + n + k] = 0x80 | ((c >> (6 * (size - 1 - k))) & 0x3f);
      }
    }
    n += size;
  }
  return n;
}

/** Checks a non-empty Unix path or abstract name and returns its length in UTF-8 bytes. */
/** @internal (lib/sockaddr.ts) */
export function unixPathBytes(path: string, name: string): number {
  const abstract = path.charCodeAt(0) === 0;
  if (path.indexOf('\0', abstract ? 1 : 0) !== -1) {
    throw invalidValue(name, 'must not contain a NUL character, except the first one of an abstract name', path);
  }
  const bytes = utf8(path, null, 0);
  const max = abstract ? SUN_PATH : SUN_PATH - 1;
  if (bytes > max) {
    const what = abstract
      ? `an abstract name may have at most ${max} bytes, its leading NUL included`
      : `a Unix socket path may have at most ${max} bytes (sun_path holds ${SUN_PATH}, including the terminating NUL)`;
    throw invalidValue(name, `is ${bytes} bytes long in UTF-8; ${what}`, path);
  }
  return bytes;
}

/**
 * Validates a Unix socket path from user input: a filesystem path of 1 to 107 UTF-8 bytes, or a
 * Linux abstract name ('\0' + name) of up to 108 bytes in all. NUL is allowed only as the first
 * character of an abstract name. Errors name `argName` (default 'path').
 */
export function unixAddress(path: unknown, argName = 'path'): UnixAddress {
  if (typeof path !== 'string') throw invalidType(argName, 'of type string', path);
  if (path === '') throw invalidValue(argName, 'must not be empty', path);
  unixPathBytes(path, argName);
  return { family: 'unix', path };
}
