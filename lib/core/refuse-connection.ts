/**
 * Closing a connection nobody accepted the way the kernel drops one from a listener's backlog:
 * with a reset (RST), not a FIN. An io_uring multiplexer accepts connections before the user
 * does (multishot accept); when the listener closes with some still held, its clients must see
 * what they would see on epoll (ECONNRESET), not a clean end of stream that a client waiting for
 * the server to speak first would take for an orderly, empty reply.
 */
import { SO_LINGER, SOL_SOCKET } from '../../ffi/constants.ts';
import { closeFd, sys } from '../../ffi/syscall.ts';

/** struct linger { l_onoff = 1, l_linger = 0 }: close(2) then resets the connection. */
const RESET_ON_CLOSE = new Int32Array([1, 0]);

/** Closes `fd` (a connected TCP or Unix stream socket nobody took) with a reset where TCP has one. Never throws. */
export function refuseConnection(fd: number): void {
  try {
    sys.setsockopt(fd, SOL_SOCKET, SO_LINGER, RESET_ON_CLOSE, 8);
  } catch {
    // A Unix socket takes SO_LINGER and has no reset to send: its peer sees the end either way.
  }
  try {
    closeFd(fd);
  } catch {
    // Linux releases the fd whatever close reports.
  }
}
