/**
 * sockaddr bytes: encoding a SocketAddress for bind/connect, decoding what getsockname,
 * getpeername and accept4 report, and the small bridges between addresses and system calls.
 * Offsets come from ffi/layouts.ts; nothing here allocates beyond its result.
 */
import { AF_INET, AF_INET6, AF_UNIX } from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import type { ErrorDetails } from '../../ffi/syscall.ts';
import { formatIPv4, formatIPv6, parse4, parse6, unixPathBytes, utf8, type InetAddress, type SocketAddress } from './address.ts';
import { checkInteger, invalidType, invalidValue, outOfRange } from './errors.ts';

const IN = OFFSETOF.sockaddr_in;
const IN6 = OFFSETOF.sockaddr_in6;
const UN = OFFSETOF.sockaddr_un;
/** sa_family is the common first member of every sockaddr, so any layout's offset will do. */
const FAMILY = IN.family;
/** Keeps a leading U+FEFF in a path: the default decoder would strip it as a byte-order mark. */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

// Host order is little-endian: both ABIs ffi/layouts.ts accepts (x86_64, aarch64) are.
function writeLE16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = v >> 8;
}
function writeLE32(b: Uint8Array, at: number, v: number): void {
  for (let k = 0; k < 4; k++) b[at + k] = (v >>> (8 * k)) & 0xff;
}
function writeBE32(b: Uint8Array, at: number, v: number): void {
  for (let k = 0; k < 4; k++) b[at + 3 - k] = (v >>> (8 * k)) & 0xff;
}
function readLE32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
function readBE32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function writeInet(addr: InetAddress, into: Uint8Array, name: string): number {
  checkInteger(`${name}.port`, addr.port, 0, 65535);
  const v6 = addr.family === 'IPv6';
  const off = v6 ? IN6 : IN;
  const size = v6 ? SIZEOF.sockaddr_in6 : SIZEOF.sockaddr_in;
  into.fill(0, 0, size);
  writeLE16(into, off.family, v6 ? AF_INET6 : AF_INET);
  into[off.port] = addr.port >> 8; // network order
  into[off.port + 1] = addr.port & 0xff;
  const text: unknown = addr.address;
  // Plain JavaScript callers can hand anything: `{ family, host, port }` has no address.
  if (typeof text !== 'string') throw invalidType(`${name}.address`, 'of type string (an IP address literal)', text);
  if (!v6) {
    if (!parse4(text, 0, text.length, into, off.addr)) throw invalidValue(`${name}.address`, 'is not an IPv4 address', text);
    return size;
  }
  // A zone would need a libc lookup: inetAddress() resolves it into scopeId once.
  if (parse6(text, into, off.addr) !== text.length) {
    throw invalidValue(`${name}.address`, 'is not an IPv6 address without a zone (inetAddress() turns a zone into scopeId)', text);
  }
  writeBE32(into, IN6.flowinfo, addr.flowinfo ?? 0); // network order, as sin6_flowinfo is
  writeLE32(into, IN6.scope_id, addr.scopeId ?? 0); // host order
  return size;
}

/**
 * Writes the sockaddr for `addr` into `into` (at least sizeof(sockaddr_storage) = 128 bytes) and
 * returns the socklen_t to pass with it: 16 for IPv4, 28 for IPv6; for Unix, the path offset plus
 * the path's bytes, plus its NUL for a filesystem path (abstract names have none; unnamed: 2).
 * Only the bytes covered by the returned length are written (zeroed first).
 */
export function encodeSockaddr(addr: SocketAddress, into: Uint8Array, name = 'addr'): number {
  if (addr === null || typeof addr !== 'object') throw invalidType(name, 'a SocketAddress object', addr);
  if (into.length < SIZEOF.sockaddr_storage) {
    throw invalidValue('into', `must hold at least ${SIZEOF.sockaddr_storage} bytes (sizeof sockaddr_storage); it has ${into.length}`);
  }
  switch (addr.family) {
    case 'IPv4':
    case 'IPv6':
      return writeInet(addr, into, name);
    case 'unix': {
      const path = addr.path;
      if (typeof path !== 'string') throw invalidType(`${name}.path`, 'of type string', path);
      const bytes = path === '' ? 0 : unixPathBytes(path, `${name}.path`);
      const length = UN.path + bytes + (bytes > 0 && path.charCodeAt(0) !== 0 ? 1 : 0);
      into.fill(0, 0, length);
      writeLE16(into, UN.family, AF_UNIX);
      utf8(path, into, UN.path);
      return length;
    }
    default:
      throw invalidValue(`${name}.family`, "must be 'IPv4', 'IPv6' or 'unix'", (addr as { family: unknown }).family);
  }
}

/**
 * Reads a sockaddr of `length` bytes (as getsockname, getpeername or accept4 report it) and
 * returns a new SocketAddress. IPv6 `flowinfo` and `scopeId` are set only when non-zero. Unix: a
 * filesystem path ends at its first NUL; an abstract name keeps its leading '\0' and spans all
 * `length - 2` bytes; length <= 2 is the unnamed address ''.
 */
export function decodeSockaddr(bytes: Uint8Array, length: number): SocketAddress {
  if (!Number.isInteger(length) || length < 0 || length > bytes.length) {
    throw outOfRange('length', `an integer >= 0 and <= ${bytes.length} (the bytes available)`, length);
  }
  const family = bytes[FAMILY] | (bytes[FAMILY + 1] << 8);
  if (family === AF_INET) {
    checkMinimum(length, SIZEOF.sockaddr_in, 'AF_INET');
    return { family: 'IPv4', address: formatIPv4(bytes, IN.addr), port: (bytes[IN.port] << 8) | bytes[IN.port + 1] };
  }
  if (family === AF_INET6) {
    checkMinimum(length, SIZEOF.sockaddr_in6, 'AF_INET6');
    const addr: InetAddress = { family: 'IPv6', address: formatIPv6(bytes, IN6.addr), port: (bytes[IN6.port] << 8) | bytes[IN6.port + 1] };
    const flowinfo = readBE32(bytes, IN6.flowinfo);
    const scopeId = readLE32(bytes, IN6.scope_id);
    if (flowinfo !== 0) addr.flowinfo = flowinfo;
    if (scopeId !== 0) addr.scopeId = scopeId;
    return addr;
  }
  if (family === AF_UNIX) {
    if (length <= UN.path) return { family: 'unix', path: '' };
    let end = length; // an abstract name spans every byte
    if (bytes[UN.path] !== 0) {
      end = UN.path; // a filesystem path ends at its NUL (if the kernel gave one)
      while (end < length && bytes[end] !== 0) end++;
    }
    // The one allocation beyond the result: a view for the decoder (Unix addresses are rare on hot paths).
    return { family: 'unix', path: UTF8.decode(bytes.subarray(UN.path, end)) };
  }
  throw invalidValue('bytes', `holds a sockaddr of address family ${family}, which is not AF_INET (${AF_INET}), AF_INET6 (${AF_INET6}) or AF_UNIX (${AF_UNIX})`);
}

function checkMinimum(length: number, size: number, family: string): void {
  if (length < size) throw outOfRange('length', `at least ${size} for ${family}`, length);
}

/** The address family constant for an address. */
export function familyOf(address: SocketAddress): number {
  return address.family === 'IPv4' ? AF_INET : address.family === 'IPv6' ? AF_INET6 : AF_UNIX;
}

/** Calls getsockname or getpeername on fd and decodes the result. */
export function readAddress(call: (fd: number, addr: Uint8Array, length: Uint32Array) => number, fd: number): SocketAddress {
  const bytes = new Uint8Array(SIZEOF.sockaddr_storage);
  const length = new Uint32Array([bytes.byteLength]);
  call(fd, bytes, length);
  return decodeSockaddr(bytes, length[0]);
}

/** What an error about this address should name. */
export function errorDetails(address: SocketAddress): ErrorDetails {
  return address.family === 'unix' ? { path: address.path } : { address: address.address, port: address.port };
}
