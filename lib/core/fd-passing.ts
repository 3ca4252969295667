/**
 * Passing fds over Unix sockets (stream and datagram): sendmsg/recvmsg with an SCM_RIGHTS
 * control message, and the fd bookkeeping around it (duplicates for queues, validation).
 *
 * Every pointer inside a msghdr must point to memory that cannot move while the call runs, so
 * each call builds its msghdr, iovec, control buffer and a copy of the data in one off-heap block
 * (Buffer.allocUnsafeSlow of more than 64 bytes: V8 never keeps those on its moving heap). This
 * costs a copy, which is fine: fd passing is not a hot path. Pointers and size_t are 64-bit
 * little-endian on both supported architectures.
 */
import koffi from 'koffi';
import { F_DUPFD_CLOEXEC, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_NOSIGNAL, MSG_TRUNC, SCM_RIGHTS, SOL_SOCKET } from '../../ffi/constants.ts';
import { cmsgAlign, cmsgLen, cmsgSpace, OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { closeFd, SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { closeAtTeardown, keepAtTeardown } from '../../ffi/teardown.ts';
import { checkInteger, invalidType, outOfRange, SocketClosedError } from './errors.ts';
import { controlRoom, parseControl } from './control-messages.ts';
import { byteLengthOf, copyBytes, partOf } from './bytes.ts';

/**
 * A process at the other end of a Unix socket: as the kernel recorded it at connect time
 * (`peerCredentials`), or when it sent bytes (`ReceiveWithFdsResult.credentials`).
 */
export interface PeerCredentials {
  /** Process id of the peer. */
  pid: number;
  /** Its effective user id. */
  uid: number;
  /** Its effective group id. */
  gid: number;
}

/** An fd to pass: a number, or an object that has one (a Socket, Listener, OwnedFd...). */
export type FdLike = number | { readonly fd: number };

/** Most fds one message can carry on Linux (SCM_MAX_FD). */
export const MAX_FDS_PER_MESSAGE = 253;
/** Bytes that travel in one sendmsg together with fds; the rest goes by plain send. */
const MAX_BYTES_WITH_FDS = 64 * 1024;

const MSG = OFFSETOF.msghdr;
const IOV = OFFSETOF.iovec;
const CMSG = OFFSETOF.cmsghdr;
const IOV_AT = cmsgAlign(SIZEOF.msghdr);
const CONTROL_AT = IOV_AT + cmsgAlign(SIZEOF.iovec);

/**
 * A msghdr in one off-heap block, with its iovec, control buffer and (for datagrams) a sockaddr
 * of `nameLength` bytes, over `dataLength` bytes.
 */
function messageBlock(controlLength: number, dataLength: number, nameLength = 0): { block: Buffer; view: DataView; dataAt: number; nameAt: number } {
  const nameAt = CONTROL_AT + cmsgAlign(controlLength);
  const dataAt = nameAt + cmsgAlign(nameLength);
  const block = Buffer.allocUnsafeSlow(dataAt + dataLength);
  block.fill(0, 0, dataAt);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const base = koffi.address(block) as bigint;
  if (nameLength > 0) {
    view.setBigUint64(MSG.name, base + BigInt(nameAt), true);
    view.setUint32(MSG.namelen, nameLength, true);
  }
  view.setBigUint64(MSG.iov, base + BigInt(IOV_AT), true);
  view.setBigUint64(MSG.iovlen, 1n, true);
  if (controlLength > 0) {
    view.setBigUint64(MSG.control, base + BigInt(CONTROL_AT), true);
    view.setBigUint64(MSG.controllen, BigInt(controlLength), true);
  }
  view.setBigUint64(IOV_AT + IOV.base, base + BigInt(dataAt), true);
  view.setBigUint64(IOV_AT + IOV.len, BigInt(dataLength), true);
  return { block, view, dataAt, nameAt };
}

/** Where a datagram with fds goes (an encoded sockaddr), or null for a connected socket; and that it goes whole. */
export interface DatagramRights {
  name: Uint8Array | null;
  nameLength: number;
}

/**
 * Sends the start of `data` (up to 64 KiB) with `fds` attached to its first byte. Returns the
 * bytes sent (the fds went with the first one) or WOULD_BLOCK (nothing went).
 */
export function sendWithRights(fd: number, data: Uint8Array, fds: readonly number[], datagram: DatagramRights | null = null): number {
  // A stream sends the rest by plain send; a datagram goes whole or not at all.
  const size = byteLengthOf(data);
  const dataLength = datagram === null ? Math.min(size, MAX_BYTES_WITH_FDS) : size;
  const nameLength = datagram?.name == null ? 0 : datagram.nameLength;
  const { block, view, dataAt, nameAt } = messageBlock(cmsgSpace(4 * fds.length), dataLength, nameLength);
  if (nameLength > 0) block.set(datagram!.name!.subarray(0, nameLength), nameAt);
  block.set(partOf(data, 0, dataLength), dataAt);
  view.setBigUint64(CONTROL_AT + CMSG.len, BigInt(cmsgLen(4 * fds.length)), true);
  view.setInt32(CONTROL_AT + CMSG.level, SOL_SOCKET, true);
  view.setInt32(CONTROL_AT + CMSG.type, SCM_RIGHTS, true);
  const fdsAt = CONTROL_AT + cmsgLen(0);
  fds.forEach((passed, i) => view.setInt32(fdsAt + 4 * i, passed, true));
  return sys.sendmsg(fd, block, MSG_NOSIGNAL);
}

/** What one recvmsg brought. */
export interface RightsReceived {
  /** Bytes read into the caller's buffer; 0 at EOF; WOULD_BLOCK when nothing was there. */
  count: number;
  /** Fds that arrived (close-on-exec), now the caller's; empty when `truncated`. */
  fds: number[];
  /** SCM_CREDENTIALS that came with the bytes (SO_PASSCRED), or null. */
  credentials: PeerCredentials | null;
  /** SCM_PIDFD that came with the bytes (SO_PASSPIDFD), now the caller's, or -1; -1 when `truncated`. */
  pidfd: number;
  /**
   * More fds came than `maxFds`, or the kernel dropped some (MSG_CTRUNC): every fd that did
   * arrive has been closed already.
   */
  truncated: boolean;
}

/**
 * recvmsg into `into` with room for `maxFds` fds and every other control message; received fds
 * are close-on-exec. Never hands back more than `maxFds` fds (see control-messages.ts).
 */
export function receiveWithRights(fd: number, into: Uint8Array, maxFds: number, from: { name: Uint8Array; nameLength: Uint32Array } | null = null): RightsReceived {
  const { block, view, dataAt, nameAt } = messageBlock(controlRoom(maxFds), byteLengthOf(into), from === null ? 0 : from.name.byteLength);
  // A datagram: MSG_TRUNC makes the count its real size, so a cut one is known as such.
  const count = sys.recvmsg(fd, block, from === null ? MSG_CMSG_CLOEXEC : MSG_CMSG_CLOEXEC | MSG_TRUNC);
  if (count === WOULD_BLOCK) return { count, fds: [], credentials: null, pidfd: -1, truncated: false };
  const received = Number(view.getBigUint64(MSG.controllen, true));
  const ctrunc = (view.getInt32(MSG.flags, true) & MSG_CTRUNC) !== 0;
  const found = parseControl(view, CONTROL_AT, received, maxFds, ctrunc);
  // Registered for a worker's teardown at once, a few statements after recvmsg made them: until
  // each has its owner (an OwnedFd, a Socket) a terminate() would leave them open (found from
  // outside: 28 fds left by 20 workers terminated in a send/receive-with-fds loop). Whoever
  // closes or hands one over takes it back first (closeAll, the owners' untrack).
  for (const passed of found.fds) closeAtTeardown(passed);
  for (const passed of found.extra) closeAtTeardown(passed);
  if (found.pidfd >= 0) closeAtTeardown(found.pidfd);
  closeAll(found.extra);
  try {
    // No bytes to copy: none came, or `into` has none (a view of a resizable buffer that shrank
    // below it, on which even an empty set throws). A copy that throws all the same leaves no
    // fd open (found from outside: a detached `into` leaked the fds that had come).
    const n = Math.min(count, byteLengthOf(into));
    if (n > 0) copyBytes(into, block.subarray(dataAt, dataAt + n));
    if (from !== null) {
      const nameLength = view.getUint32(MSG.namelen, true);
      from.nameLength[0] = nameLength;
      from.name.set(block.subarray(nameAt, nameAt + Math.min(nameLength, from.name.byteLength)));
    }
  } catch (err) {
    closeAll(found.fds);
    if (found.pidfd >= 0) closeAll([found.pidfd]);
    throw err;
  }
  if (found.truncated) {
    closeAll(found.fds);
    if (found.pidfd >= 0) closeAll([found.pidfd]);
    return { count, fds: [], credentials: found.credentials, pidfd: -1, truncated: true };
  }
  return { count, fds: found.fds, credentials: found.credentials, pidfd: found.pidfd, truncated: false };
}

/**
 * Closes every fd, reporting nothing: they are ours and nobody can use them any more. Each is
 * taken back from the worker's teardown first (its number may be reused once closed).
 */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    keepAtTeardown(fd);
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
        const copy = sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
        closeAtTeardown(copy); // a queue's, until it is sent: a terminated worker must not leave it open
        copies.push(copy);
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

/** Validates the fds argument of sendWithFds and returns the numbers. */
export function fdNumbers(fds: unknown): number[] {
  if (!Array.isArray(fds)) throw invalidType('fds', 'an array of fds (numbers, or objects with an fd)', fds);
  const count = fds.length; // read once: a Proxy may answer differently each time
  if (count === 0 || count > MAX_FDS_PER_MESSAGE) throw outOfRange('fds.length', `from 1 to ${MAX_FDS_PER_MESSAGE}`, count);
  // By index, not map: map skips the holes of a sparse array (`[, fd]`), whose slots then went
  // out as fd 0 (found from outside); a hole reads as undefined here and is refused by name.
  const numbers: number[] = [];
  for (let i = 0; i < count; i++) {
    const item: unknown = fds[i];
    const owned = typeof item === 'object' && item !== null;
    const value = owned ? (item as { fd: unknown }).fd : item;
    // -1 from an object is a closed owner's fd; a plain -1 is only a number out of range.
    if (owned && value === -1) throw new SocketClosedError('fd', `sendWithFds: fds[${i}]: the object that owned this`);
    numbers.push(checkInteger(`fds[${i}]`, value, 0, 2 ** 31 - 1));
  }
  return numbers;
}
