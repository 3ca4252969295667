/**
 * The fd side of making a datagram socket: the socket call, options set before bind, the bind
 * itself (an address, a Unix path, an abstract name or autobind), with errors that name the
 * address. DatagramSocket wraps what these hand back (this module never imports the class).
 */
import { AF_INET, AF_INET6, AF_UNIX, IPPROTO_IPV6, IPV6_V6ONLY, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET } from '../../ffi/constants.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { closeFd, SocketError, sys } from '../../ffi/syscall.ts';
import { inetAddress, unixAddress, type SocketAddress } from '../core/address.ts';
import { checkInteger, invalidValue } from '../core/errors.ts';
import { applyOptions, type SocketOptionValues } from '../core/options.ts';
import { encodeSockaddr, errorDetails, familyOf } from '../core/sockaddr.ts';

/** Options of {@link DatagramSocket.bind}. */
export interface DatagramBindOptions {
  /** IP literal to bind (default `'::'`: every IPv4 and IPv6 address). */
  host?: string | undefined;
  /** Port (default 0: the kernel picks one; read it back from `socket.port`). */
  port?: number | undefined;
  /** Unix datagram socket path, `'\0name'` for an abstract name, or `''` for a name the kernel picks (autobind). */
  path?: string | undefined;
  /** SO_REUSEADDR (default false: on UDP it lets two sockets take the same port). */
  reuseAddress?: boolean | undefined;
  /** SO_REUSEPORT: several sockets (workers) share the port; the kernel spreads datagrams by flow. */
  reusePort?: boolean | undefined;
  /** IPv6 only, or dual-stack (default false). */
  ipv6Only?: boolean | undefined;
  /** Socket options set before bind (`{ receiveBufferSize: 4 << 20 }`). */
  socketOptions?: Partial<SocketOptionValues> | undefined;
  /** Soft cap of the send queue in bytes (default 64 KiB). */
  sendQueueLimit?: number | undefined;
}

/** Options of {@link DatagramSocket.create}. */
export interface DatagramCreateOptions {
  /** The address family: `'IPv4'`, `'IPv6'` (dual-stack unless `ipv6Only`) or `'unix'`. */
  family: 'IPv4' | 'IPv6' | 'unix';
  /** IPv6 only, or dual-stack (default false). */
  ipv6Only?: boolean | undefined;
  /** Socket options set on the new socket (`{ receiveBufferSize: 4 << 20 }`). */
  socketOptions?: Partial<SocketOptionValues> | undefined;
  /** Soft cap of the send queue in bytes (default 64 KiB). */
  sendQueueLimit?: number | undefined;
}

const DEFAULT_SEND_QUEUE_LIMIT = 64 * 1024;

/** A datagram socket's fd, just made, and what the DatagramSocket around it needs. */
export interface OpenedDatagramFd {
  fd: number;
  /** AF_INET, AF_INET6 or AF_UNIX. */
  family: number;
  /** For IPv6: whether IPV6_V6ONLY is on; null for the other families. */
  ipv6Only: boolean | null;
  sendQueueLimit: number;
}

function optionalBoolean(options: object, key: string, fallback: boolean): boolean {
  const value = (options as Record<string, unknown>)[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidValue(`options.${key}`, 'must be a boolean', value);
  return value;
}

/** Validates `sendQueueLimit` (default 64 KiB). */
export function sendQueueLimitOf(options: { sendQueueLimit?: number | undefined }): number {
  return options.sendQueueLimit === undefined ? DEFAULT_SEND_QUEUE_LIMIT : checkInteger('options.sendQueueLimit', options.sendQueueLimit, 1, 2 ** 31 - 1);
}


/** socket() + options + bind, for `DatagramSocket.bind`; the fd is closed again on any failure. */
export function openBound(options: DatagramBindOptions): OpenedDatagramFd {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  if (options.path !== undefined && (options.host !== undefined || options.port !== undefined)) {
    throw invalidValue('options', 'takes either path, or host and port, not both');
  }
  const reuseAddress = optionalBoolean(options, 'reuseAddress', false);
  const reusePort = optionalBoolean(options, 'reusePort', false);
  const ipv6Only = optionalBoolean(options, 'ipv6Only', false);
  const limit = sendQueueLimitOf(options);
  const wanted: SocketAddress =
    options.path !== undefined
      ? options.path === ''
        ? { family: 'unix', path: '' }
        : unixAddress(options.path, 'options.path')
      : inetAddress(options.host ?? '::', options.port ?? 0, 'options');
  const family = familyOf(wanted);
  const fd = sys.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    const one = new Int32Array([1]);
    applyOptions(fd, options.socketOptions, 'options.socketOptions');
    if (reuseAddress) sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
    if (reusePort) sys.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4);
    if (family === AF_INET6) sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, new Int32Array([ipv6Only ? 1 : 0]), 4);
    const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
    // A Unix address of length sizeof(sa_family_t) asks the kernel to pick an abstract name.
    sys.bind(fd, sockaddr, encodeSockaddr(wanted, sockaddr));
  } catch (err) {
    closeFd(fd);
    throw err instanceof SocketError ? err.withDetails({ fd: undefined, ...errorDetails(wanted) }) : err;
  }
  return { fd, family, ipv6Only: family === AF_INET6 ? ipv6Only : null, sendQueueLimit: limit };
}


/** socket() + options, for `DatagramSocket.create`. */
export function openUnbound(options: DatagramCreateOptions): OpenedDatagramFd {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const family = options.family === 'IPv4' ? AF_INET : options.family === 'IPv6' ? AF_INET6 : options.family === 'unix' ? AF_UNIX : -1;
  if (family < 0) throw invalidValue('options.family', "must be 'IPv4', 'IPv6' or 'unix'", options.family);
  const ipv6Only = optionalBoolean(options, 'ipv6Only', false);
  const limit = sendQueueLimitOf(options);
  const fd = sys.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    applyOptions(fd, options.socketOptions, 'options.socketOptions');
    if (family === AF_INET6) sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, new Int32Array([ipv6Only ? 1 : 0]), 4);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return { fd, family, ipv6Only: family === AF_INET6 ? ipv6Only : null, sendQueueLimit: limit };
}

