/**
 * Fds that cross a Unix socket: duplicating the ones we send later (so the caller may close
 * theirs at once), and giving each received fd an owner of the right kind.
 */
import { F_DUPFD_CLOEXEC, SO_ACCEPTCONN, SO_TYPE, SOCK_STREAM, SOL_SOCKET } from '../../ffi/constants.ts';
import { closeFd, SocketError, sys } from '../../ffi/syscall.ts';
import { checkInteger, invalidType, outOfRange, SocketClosedError } from '../core/errors.ts';
import { MAX_FDS_PER_MESSAGE } from './fd-passing.ts';
import { Listener } from './listener.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import { INTERNAL } from '../core/internal.ts';
import { Socket } from './socket.ts';

/** A received fd and its owner: a stream Socket, a listening socket, or anything else. */
export type ReceivedFd = Socket | Listener | OwnedFd;

/** Closes every fd, reporting nothing: they are ours and nobody can use them any more. */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeFd(fd);
    } catch {
      // An fd we own cannot be invalid; nothing better to do with an EIO here.
    }
  }
}

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

/** Gives each received fd its owner; if one fails, every fd not yet owned is closed. */
export function adoptReceivedFd(fds: readonly number[]): ReceivedFd[] {
  const owned: ReceivedFd[] = [];
  try {
    for (const fd of fds) {
      const type = intOption(fd, SO_TYPE);
      if (type !== SOCK_STREAM) owned.push(new OwnedFd(INTERNAL, fd));
      else if (intOption(fd, SO_ACCEPTCONN) === 1) owned.push(Listener.fromFd(fd));
      else owned.push(Socket.fromFd(fd));
    }
    return owned;
  } catch (err) {
    closeAll(fds.slice(owned.length));
    for (const o of owned) (o instanceof Listener || o instanceof OwnedFd ? o.close() : o.destroy());
    throw err;
  }
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
