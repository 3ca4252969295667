/**
 * Fds that cross a Unix socket: duplicating the ones we send later (so the caller may close
 * theirs at once), and giving each received fd an owner of the right kind.
 */
import { AF_INET, AF_INET6, AF_UNIX, F_DUPFD_CLOEXEC, SO_ACCEPTCONN, SO_DOMAIN, SO_TYPE, SOCK_STREAM, SOL_SOCKET } from '../../ffi/constants.ts';
import { SocketError, sys } from '../../ffi/syscall.ts';
import { checkInteger, invalidType, outOfRange, SocketClosedError } from '../core/errors.ts';
import { closeAll, MAX_FDS_PER_MESSAGE } from './fd-passing.ts';
import { Listener } from './listener.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import { INTERNAL } from '../core/internal.ts';
import { Socket } from './socket.ts';

/** Socket's send path closes its queued duplicates with it. */
export { closeAll };

/** A received fd and its owner: a stream Socket, a listening socket, or anything else. */
export type ReceivedFd = Socket | Listener | OwnedFd;

/** Close-on-exec duplicates of `fds`, taken now so that they keep pointing where they did. */
export function duplicateFds(fds: readonly number[]): number[] {
  const copies: number[] = [];
  try {
    fds.forEach((fd, i) => {
      try {
        copies.push(sys.fcntl(fd, F_DUPFD_CLOEXEC, 0));
      } catch (err) {
        throw err instanceof SocketError ? Object.assign(err, { message: `fds[${i}]: ${err.message}` }) : err;
      }
    });
    return copies;
  } catch (err) {
    closeAll(copies);
    throw err;
  }
}

function intOption(fd: number, name: number): number | null {
  const value = new Int32Array(1);
  try {
    sys.getsockopt(fd, SOL_SOCKET, name, value, new Uint32Array([4]));
  } catch (err) {
    if (err instanceof SocketError && err.code === 'ENOTSOCK') return null;
    throw err;
  }
  return value[0];
}

/** Families whose stream sockets the library speaks (it can decode their addresses). */
const KNOWN_FAMILIES: ReadonlySet<number> = new Set([AF_UNIX, AF_INET, AF_INET6]);

/**
 * The owner of one received fd: a Socket or Listener for a stream socket of a known family, an
 * OwnedFd for anything else. Never throws: the bytes the fd came with are read already, and an
 * fd the library cannot make sense of is still yours, as an OwnedFd (an AF_VSOCK listener, for
 * one, whose address Listener could not decode).
 */
function ownerOf(fd: number): ReceivedFd {
  try {
    if (intOption(fd, SO_TYPE) === SOCK_STREAM && KNOWN_FAMILIES.has(intOption(fd, SO_DOMAIN) ?? -1)) {
      return intOption(fd, SO_ACCEPTCONN) === 1 ? Listener.fromFd(fd) : Socket.fromFd(fd);
    }
  } catch {
    // The kernel refused a query or the adoption: what remains is an fd, owned as one.
  }
  return new OwnedFd(INTERNAL, fd);
}

/** Gives each received fd its owner (see `ownerOf`); never throws, so no fd and no byte is lost. */
export function adoptReceivedFds(fds: readonly number[]): ReceivedFd[] {
  return fds.map(ownerOf);
}

/** Validates the fds argument of sendWithFds and returns the numbers. */
export function fdNumbers(fds: unknown): number[] {
  if (!Array.isArray(fds)) throw invalidType('fds', 'an array of fds (numbers, or objects with an fd)', fds);
  if (fds.length === 0 || fds.length > MAX_FDS_PER_MESSAGE) throw outOfRange('fds.length', `from 1 to ${MAX_FDS_PER_MESSAGE}`, fds.length);
  return fds.map((item, i) => {
    const value = typeof item === 'object' && item !== null ? (item as { fd: unknown }).fd : item;
    if (value === -1) throw new SocketClosedError('fd', `sendWithFds: fds[${i}]: the object that owned this`);
    return checkInteger(`fds[${i}]`, value, 0, 2 ** 31 - 1);
  });
}
