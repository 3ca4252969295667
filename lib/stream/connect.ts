/**
 * The fd side of `Socket.connect`: a non-blocking connect to a numeric address or a Unix socket
 * path, with options and a local address set first. It hands back the fd and what the socket
 * needs to know (so this module never imports the Socket class: socket.ts imports it). The
 * promise form, with host names, is `connect` in `face/promises.ts`.
 */
import { SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { closeFd, IN_PROGRESS, SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { inetAddress, unixAddress } from '../core/address.ts';
import { invalidType, invalidValue, outOfRange } from '../core/errors.ts';
import { applyOptions, type SocketOptionValues } from '../core/options.ts';
import { encodeSockaddr, errorDetails, familyOf } from '../core/sockaddr.ts';
import type { SocketAddress } from '../core/address.ts';
import { sendQueueLimitOf, type SocketOptions } from './send-queue.ts';

/** What every `Socket.connect` takes, whatever the address. */
export interface ConnectCommonOptions extends SocketOptions {
  /** Socket options set before connecting (`{ noDelay: true, sendBufferSize: 1 << 20 }`). */
  socketOptions?: Partial<SocketOptionValues> | undefined;
  /**
   * Give up when the connection is not open after this many milliseconds: the attempt fails
   * with ETIMEDOUT, reported like any connect failure. The multiplexer (or reactor) watching the
   * socket keeps the time; an unwatched socket has no timeout.
   */
  timeoutMs?: number | undefined;
}

/** Where `Socket.connect` connects: an IP literal and port (optionally from a chosen local address), or a Unix socket path. */
export type ConnectOptions = ConnectCommonOptions &
  (
    | { host?: string | undefined; port: number; localAddress?: string | undefined; localPort?: number | undefined; path?: undefined }
    | { path: string; host?: undefined; port?: undefined; localAddress?: undefined; localPort?: undefined }
  );

/** A connect that has started: the socket's fd and what the Socket made around it needs. */
export interface StartedConnect {
  fd: number;
  /** Still in progress (EINPROGRESS): a multiplexer finishes it. */
  connecting: boolean;
  sendQueueLimit: number;
  peer: SocketAddress;
  /** performance.now() by which the connect must have finished, or 0 for no timeout. */
  deadline: number;
}

/**
 * Starts connecting, without blocking, and returns the socket at once. A TCP socket is usually
 * `'connecting'`: a multiplexer reports it writable when the attempt ends, and then `state` is
 * `'open'`, or `error` says why it failed (ECONNREFUSED, ETIMEDOUT...), reported once as the
 * event's `error`. Sends made meanwhile are queued and flushed on success. `host` must be an IP
 * literal (default `'127.0.0.1'`); failures known at once (a missing Unix path) are thrown.
 * Socket options, and a local address and port to bind, are set before the connect starts.
 */
export function startConnect(options: ConnectOptions): StartedConnect {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const limit = sendQueueLimitOf(options);
  const timeoutMs = options.timeoutMs === undefined ? 0 : checkTimeout(options.timeoutMs);
  const address =
    options.path !== undefined ? unixAddress(options.path, 'options.path') : inetAddress(options.host ?? '127.0.0.1', options.port, 'options');
  const local =
    address.family !== 'unix' && (options.localAddress !== undefined || options.localPort !== undefined)
      ? inetAddress(options.localAddress ?? (address.family === 'IPv4' ? '0.0.0.0' : '::'), options.localPort ?? 0, { host: 'options.localAddress', port: 'options.localPort' })
      : null;
  if (local !== null && local.family !== address.family) {
    throw invalidValue('options.localAddress', `is an ${local.family} address, but host is ${address.family}`, options.localAddress);
  }
  const fd = sys.socket(familyOf(address), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    applyOptions(fd, options.socketOptions, 'options.socketOptions');
    const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
    if (local !== null) {
      try {
        sys.bind(fd, sockaddr, encodeSockaddr(local, sockaddr));
      } catch (err) {
        throw err instanceof SocketError ? err.withDetails({ fd: undefined, ...errorDetails(local) }) : err;
      }
    }
    let result: number;
    try {
      result = sys.connect(fd, sockaddr, encodeSockaddr(address, sockaddr));
      // A Unix socket answers EAGAIN when the listener's backlog is full: a refusal, not progress.
      if (result === WOULD_BLOCK) throw new SocketError('connect', ERRNO.EAGAIN);
    } catch (err) {
      throw err instanceof SocketError ? err.withDetails({ fd: undefined, ...errorDetails(address) }) : err;
    }
    const connecting = result === IN_PROGRESS;
    return { fd, connecting, sendQueueLimit: limit, peer: address, deadline: connecting && timeoutMs > 0 ? performance.now() + timeoutMs : 0 };
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

function checkTimeout(value: unknown): number {
  if (typeof value !== 'number') throw invalidType('options.timeoutMs', 'of type number', value);
  if (!(value > 0 && value <= 2 ** 31 - 1)) throw outOfRange('options.timeoutMs', 'a number of milliseconds > 0', value);
  return value;
}
