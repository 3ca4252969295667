/**
 * Adopting an fd someone else made (Socket.fromFd, Listener.fromFd, a received fd): check that it
 * is a stream socket of a family the library speaks, then make it non-blocking and close-on-exec,
 * before any object owns it. A wrong fd is refused naming the `fd` argument, never with an error
 * about bytes the caller never passed.
 */
import { AF_INET, AF_INET6, AF_UNIX, F_GETFD, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, O_NONBLOCK, SO_ACCEPTCONN, SO_DOMAIN, SO_TYPE, SOCK_STREAM, SOL_SOCKET } from '../../ffi/constants.ts';
import { sys } from '../../ffi/syscall.ts';
import { checkInteger, invalidValue } from '../core/errors.ts';

const KNOWN_FAMILIES: ReadonlySet<number> = new Set([AF_UNIX, AF_INET, AF_INET6]);

function intOption(fd: number, name: number): number {
  const value = new Int32Array(1);
  sys.getsockopt(fd, SOL_SOCKET, name, value, new Uint32Array([4]));
  return value[0];
}

/** Checks `fd` (a listening socket when `listening`, else a connected stream socket) and sets its flags. */
export function adoptStreamFd(fd: unknown, listening: boolean): number {
  checkInteger('fd', fd, 0, 2 ** 31 - 1);
  const n = fd as number;
  const type = intOption(n, SO_TYPE);
  if (type !== SOCK_STREAM) throw invalidValue('fd', `must be a stream socket (SO_TYPE ${type})`, fd);
  const family = intOption(n, SO_DOMAIN);
  if (!KNOWN_FAMILIES.has(family)) throw invalidValue('fd', `is a socket of address family ${family}; m-socket speaks AF_UNIX, AF_INET and AF_INET6`, fd);
  const accepting = intOption(n, SO_ACCEPTCONN) === 1;
  if (listening && !accepting) throw invalidValue('fd', 'must be a listening socket', fd);
  if (!listening && accepting) throw invalidValue('fd', 'is a listening socket: adopt it with Listener.fromFd', fd);
  sys.fcntl(n, F_SETFL, sys.fcntl(n, F_GETFL, 0) | O_NONBLOCK);
  sys.fcntl(n, F_SETFD, sys.fcntl(n, F_GETFD, 0) | FD_CLOEXEC);
  return n;
}
