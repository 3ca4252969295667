/**
 * The control messages recvmsg may attach to bytes read from a Unix stream socket, and how much
 * room to give them.
 *
 * The kernel attaches more than the SCM_RIGHTS the caller asked for: SCM_CREDENTIALS on every
 * read once the socket has SO_PASSCRED, SCM_PIDFD (an fd!) once it has SO_PASSPIDFD, SCM_SECURITY
 * under SO_PASSSEC, and whatever a later kernel adds. A control buffer sized for the fds alone
 * makes those truncate the fds (MSG_CTRUNC, fds destroyed) and, ignored, a pidfd leaks per read.
 * So the buffer has room for all of them, every message is parsed, every fd in one is owned.
 *
 * Room is no promise: the kernel fills whatever room it is given with fds (and qemu-user hands it
 * twice the buffer the program asked for, issue 16), so more than `maxFds` fds can arrive without
 * MSG_CTRUNC. `parseControl` counts what arrived against `maxFds`; the caller treats an excess
 * as a truncation.
 */
import { SCM_CREDENTIALS, SCM_PIDFD, SCM_RIGHTS, SOL_SOCKET } from '../../ffi/constants.ts';
import { cmsgAlign, cmsgLen, cmsgSpace, OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import type { PeerCredentials } from './fd-passing.ts';

const CMSG = OFFSETOF.cmsghdr;
const UCRED = OFFSETOF.ucred;
const FD_SIZE = 4;
/** Room for a message the library does not know (an SCM_SECURITY label, a future type). */
const UNKNOWN_ROOM = cmsgSpace(256);

/** Control-buffer bytes for `maxFds` fds and every other message a Unix socket may attach. */
export function controlRoom(maxFds: number): number {
  return cmsgSpace(FD_SIZE * maxFds) + cmsgSpace(SIZEOF.ucred) + cmsgSpace(FD_SIZE) + UNKNOWN_ROOM;
}

/** What the control messages of one recvmsg held. Every fd in it is the caller's to own or close. */
export interface ControlMessages {
  /** Fds from SCM_RIGHTS, in order. */
  fds: number[];
  /** SCM_CREDENTIALS: the sender's pid, uid and gid (SO_PASSCRED), or null. */
  credentials: PeerCredentials | null;
  /** SCM_PIDFD: a pidfd of the sender (SO_PASSPIDFD), or -1 (none, or the kernel could not make one). */
  pidfd: number;
  /** Fds nobody should get: a second SCM_PIDFD (never sent by Linux, but it would be an fd). */
  extra: number[];
  /** More fds arrived than `maxFds`, or the kernel reported MSG_CTRUNC. */
  truncated: boolean;
}

/**
 * Parses the `length` bytes of control messages at `start` of `view`, as recvmsg left them (with
 * `ctrunc` its MSG_CTRUNC flag). A message whose length runs past the end is read up to the end
 * only, so no byte outside what the kernel wrote is ever taken for an fd.
 */
export function parseControl(view: DataView, start: number, length: number, maxFds: number, ctrunc: boolean): ControlMessages {
  const found: ControlMessages = { fds: [], credentials: null, pidfd: -1, extra: [], truncated: ctrunc };
  const end = start + length;
  const header = cmsgLen(0);
  for (let at = start; at + header <= end; ) {
    const messageLength = Number(view.getBigUint64(at + CMSG.len, true));
    if (messageLength < header) break; // malformed: the kernel never writes one
    const dataAt = at + header;
    const dataEnd = Math.min(at + messageLength, end);
    const level = view.getInt32(at + CMSG.level, true);
    const type = view.getInt32(at + CMSG.type, true);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = dataAt; p + FD_SIZE <= dataEnd; p += FD_SIZE) found.fds.push(view.getInt32(p, true));
    } else if (level === SOL_SOCKET && type === SCM_PIDFD && dataAt + FD_SIZE <= dataEnd) {
      // A negative value is the kernel's error making the pidfd (-ESRCH: the sender has exited).
      const pidfd = view.getInt32(dataAt, true);
      if (pidfd >= 0 && found.pidfd < 0) found.pidfd = pidfd;
      else if (pidfd >= 0) found.extra.push(pidfd);
    } else if (level === SOL_SOCKET && type === SCM_CREDENTIALS && dataAt + SIZEOF.ucred <= dataEnd) {
      found.credentials = {
        pid: view.getInt32(dataAt + UCRED.pid, true),
        uid: view.getUint32(dataAt + UCRED.uid, true),
        gid: view.getUint32(dataAt + UCRED.gid, true),
      };
    }
    // Anything else carries no fd Linux defines (SCM_SECURITY is a label): skipped.
    at += cmsgAlign(messageLength);
  }
  if (found.fds.length > maxFds) found.truncated = true;
  return found;
}
