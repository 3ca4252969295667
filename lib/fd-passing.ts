/**
 * Passing fds over Unix stream sockets: sendmsg/recvmsg with an SCM_RIGHTS control message.
 *
 * Every pointer inside a msghdr must point to memory that cannot move while the call runs, so
 * each call builds its msghdr, iovec, control buffer and a copy of the data in one off-heap block
 * (Buffer.allocUnsafeSlow of more than 64 bytes: V8 never keeps those on its moving heap). This
 * costs a copy, which is fine: fd passing is not a hot path. Pointers and size_t are 64-bit
 * little-endian on both supported architectures.
 */
import koffi from 'koffi';
import { MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_NOSIGNAL, SCM_RIGHTS, SOL_SOCKET } from '../ffi/constants.ts';
import { cmsgAlign, cmsgLen, cmsgSpace, OFFSETOF, SIZEOF } from '../ffi/layouts.ts';
import { sys, WOULD_BLOCK } from '../ffi/syscall.ts';
import type { ReceivedFd } from './received-fd.ts';
import type { ReceiveResult } from './socket.ts';

/** What `Socket.receiveWithFds` returns: the bytes, and the fds that came with them. */
export interface ReceiveWithFdsResult extends ReceiveResult {
  /** Received fds, each owned by an object: close them when done. */
  fds: ReceivedFd[];
}

/** The process at the other end of a Unix socket, as the kernel recorded it at connect time. */
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

/** A msghdr in one off-heap block, with its iovec and control buffer, over `dataLength` bytes. */
function messageBlock(controlLength: number, dataLength: number): { block: Buffer; view: DataView; dataAt: number } {
  const dataAt = CONTROL_AT + controlLength;
  const block = Buffer.allocUnsafeSlow(dataAt + dataLength);
  block.fill(0, 0, dataAt);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const base = koffi.address(block) as bigint;
  view.setBigUint64(MSG.iov, base + BigInt(IOV_AT), true);
  view.setBigUint64(MSG.iovlen, 1n, true);
  if (controlLength > 0) {
    view.setBigUint64(MSG.control, base + BigInt(CONTROL_AT), true);
    view.setBigUint64(MSG.controllen, BigInt(controlLength), true);
  }
  view.setBigUint64(IOV_AT + IOV.base, base + BigInt(dataAt), true);
  view.setBigUint64(IOV_AT + IOV.len, BigInt(dataLength), true);
  return { block, view, dataAt };
}

/**
 * Sends the start of `data` (up to 64 KiB) with `fds` attached to its first byte. Returns the
 * bytes sent (the fds went with the first one) or WOULD_BLOCK (nothing went).
 */
export function sendWithRights(fd: number, data: Uint8Array, fds: readonly number[]): number {
  const dataLength = Math.min(data.byteLength, MAX_BYTES_WITH_FDS);
  const { block, view, dataAt } = messageBlock(cmsgSpace(4 * fds.length), dataLength);
  block.set(data.subarray(0, dataLength), dataAt);
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
  /** Fds that arrived (close-on-exec), now the caller's. */
  fds: number[];
  /** The control buffer was too small: some fds were lost in the kernel (MSG_CTRUNC). */
  truncated: boolean;
}

/** recvmsg into `into` with room for `maxFds` fds; received fds are close-on-exec. */
export function receiveWithRights(fd: number, into: Uint8Array, maxFds: number): RightsReceived {
  const controlLength = cmsgSpace(4 * maxFds);
  const { block, view, dataAt } = messageBlock(controlLength, into.byteLength);
  const count = sys.recvmsg(fd, block, MSG_CMSG_CLOEXEC);
  if (count === WOULD_BLOCK) return { count, fds: [], truncated: false };
  into.set(block.subarray(dataAt, dataAt + count));
  const fds: number[] = [];
  const received = Number(view.getBigUint64(MSG.controllen, true));
  for (let at = CONTROL_AT; at + cmsgLen(0) <= CONTROL_AT + received; ) {
    const length = Number(view.getBigUint64(at + CMSG.len, true));
    if (length < cmsgLen(0)) break;
    if (view.getInt32(at + CMSG.level, true) === SOL_SOCKET && view.getInt32(at + CMSG.type, true) === SCM_RIGHTS) {
      for (let p = at + cmsgLen(0); p + 4 <= at + length; p += 4) fds.push(view.getInt32(p, true));
    }
    at += cmsgAlign(length);
  }
  return { count, fds, truncated: (view.getInt32(MSG.flags, true) & MSG_CTRUNC) !== 0 };
}
