/**
 * Socket.connect: a non-blocking connect to a numeric address or a Unix socket path. The
 * promise form, with host names, is `connect` in `promises.ts`.
 */
import { SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from '../ffi/constants.ts';
import { ERRNO } from '../ffi/errno.ts';
import { SIZEOF } from '../ffi/layouts.ts';
import { closeFd, IN_PROGRESS, SocketError, sys, WOULD_BLOCK } from '../ffi/syscall.ts';
import { encodeSockaddr, inetAddress, unixAddress } from './address.ts';
import { invalidValue } from './errors.ts';
import { INTERNAL } from './internal.ts';
import { errorDetails, familyOf } from './sockaddr-io.ts';
import { Socket, sendQueueLimitOf, type SocketOptions } from './socket.ts';

/** Where `Socket.connect` connects: an IP literal and port, or a Unix socket path. */
export type ConnectOptions = SocketOptions &
  ({ host?: string; port: number; path?: undefined } | { path: string; host?: undefined; port?: undefined });

/**
 * Starts connecting, without blocking, and returns the socket at once. A TCP socket is usually
 * `'connecting'`: a multiplexer reports it writable when the attempt ends, and then `state` is
 * `'open'`, or `error` says why it failed (ECONNREFUSED, ETIMEDOUT...), reported once as the
 * event's `error`. Sends made meanwhile are queued and flushed on success. `host` must be an IP
 * literal (default `'127.0.0.1'`); failures known at once (a missing Unix path) are thrown.
 */
export function connectSocket(options: ConnectOptions): Socket {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const limit = sendQueueLimitOf(options);
  const address =
    options.path !== undefined ? unixAddress(options.path, 'options.path') : inetAddress(options.host ?? '127.0.0.1', options.port, 'options');
  const fd = sys.socket(familyOf(address), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
    const result = sys.connect(fd, sockaddr, encodeSockaddr(address, sockaddr));
    // A Unix socket answers EAGAIN when the listener's backlog is full: a refusal, not progress.
    if (result === WOULD_BLOCK) throw new SocketError('connect', ERRNO.EAGAIN);
    return new Socket(INTERNAL, fd, result === IN_PROGRESS, limit, address);
  } catch (err) {
    closeFd(fd);
    throw err instanceof SocketError ? err.withDetails({ fd: undefined, ...errorDetails(address) }) : err;
  }
}
