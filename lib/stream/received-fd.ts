/**
 * Received fds get an owner of the right kind: a Socket for a stream socket, a Listener for a
 * listening one, an OwnedFd for anything else.
 *
 * Making the first two is the Socket and Listener modules' business, and they import each
 * other's work the other way round already (Listener.accept makes Sockets), so the makers come
 * in as `FdAdopters` from the caller instead of being imported: this module knows neither class
 * at run time, only their types.
 */
import { AF_INET, AF_INET6, AF_UNIX, SO_ACCEPTCONN, SO_DOMAIN, SO_TYPE, SOCK_STREAM, SOL_SOCKET } from '../../ffi/constants.ts';
import { SocketError, sys } from '../../ffi/syscall.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import { INTERNAL } from '../core/internal.ts';
import type { Listener } from './listener.ts';
import type { ReceiveResult, Socket } from './socket.ts';
import type { PeerCredentials } from '../core/fd-passing.ts';

/** A received fd and its owner: a stream Socket, a listening socket, or anything else. */
export type ReceivedFd = Socket | Listener | OwnedFd;

/** How to own a received stream socket, and a listening one (null: as an OwnedFd). */
export interface FdAdopters {
  stream(fd: number): Socket;
  listener: ((fd: number) => Listener) | null;
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
function ownerOf(fd: number, adopters: FdAdopters): ReceivedFd {
  try {
    if (intOption(fd, SO_TYPE) === SOCK_STREAM && KNOWN_FAMILIES.has(intOption(fd, SO_DOMAIN) ?? -1)) {
      if (intOption(fd, SO_ACCEPTCONN) !== 1) return adopters.stream(fd);
      if (adopters.listener !== null) return adopters.listener(fd);
    }
  } catch {
    // The kernel refused a query or the adoption: what remains is an fd, owned as one.
  }
  return new OwnedFd(INTERNAL, fd);
}

/** Gives each received fd its owner (see `ownerOf`); never throws, so no fd and no byte is lost. */
export function adoptReceivedFds(fds: readonly number[], adopters: FdAdopters): ReceivedFd[] {
  return fds.map((fd) => ownerOf(fd, adopters));
}

/** What `Socket.receiveWithFds` returns: the bytes, and the fds and credentials that came with them. */
export interface ReceiveWithFdsResult extends ReceiveResult {
  /** Received fds (at most `maxFds`), each owned by an object: close them when done. */
  fds: ReceivedFd[];
  /**
   * The sender's pid, uid and gid as the kernel recorded them when these bytes were sent
   * (SCM_CREDENTIALS), when the receiving socket has SO_PASSCRED on; null otherwise.
   */
  credentials: PeerCredentials | null;
  /**
   * A pidfd of the sending process (SCM_PIDFD), when the receiving socket has SO_PASSPIDFD on
   * (Linux 6.5+); null otherwise or when the sender had exited. Yours: close it.
   */
  pidfd: OwnedFd | null;
}
