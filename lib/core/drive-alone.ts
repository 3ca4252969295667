/**
 * Drives a closing socket that no multiplexer watches to its end (`await using` on the socket
 * `connect()` resolves, say): nothing else will say when its fd is writable, and a family does not
 * know the loop (test/layout.test.ts). So it asks poll(2) with a zero timeout (nothing blocks) and
 * hands what it says to the socket as a multiplexer would: at once again after the queue
 * shrank, else after a pause that doubles up to 64 ms. A peer that never reads keeps it asking,
 * as a multiplexer would keep watching.
 */
import { POLLERR, POLLHUP, POLLOUT } from '../../ffi/constants.ts';
import { sys } from '../../ffi/syscall.ts';
import { ERROR, HANGUP, WRITABLE, type Watchable } from './watch.ts';

/** What this needs of a Socket or DatagramSocket. */
export interface Drivable extends Watchable {
  readonly fd: number;
  readonly queuedBytes: number;
  close(): void;
  destroy(): void;
  whenClosed(): Promise<void>;
}

/**
 * `await using` for both families: a graceful close, awaited where something will finish it.
 * On a Reactor the Reactor does; with no multiplexer, `driveUntilClosed` (the queue went with
 * the socket before: flushed as far as the kernel took it, the rest dropped behind a clean FIN,
 * found from outside); on a Multiplexer driven by hand, only its next `wait()` can, and the code
 * that would call it is the code awaiting here: the close is left to that wait.
 */
export async function disposeGracefully(target: Drivable): Promise<void> {
  if (target.fd < 0) return;
  const watcher = target._watcher;
  target.close();
  if (target.fd < 0) return;
  if (watcher !== null) {
    if (watcher._driven) await target.whenClosed();
    return;
  }
  await driveUntilClosed(target);
  if (target.fd >= 0) target.destroy();
}

const LONGEST_PAUSE_MS = 64;

/** Resolves once `target`, already closing gracefully, has closed its fd, or once its last flush failed. */
export async function driveUntilClosed(target: Drivable): Promise<void> {
  const pollfd = new Int32Array(2); // struct pollfd: int fd; short events; short revents
  const shorts = new Int16Array(pollfd.buffer);
  let pause = 1;
  while (target.fd >= 0) {
    pollfd[0] = target.fd;
    shorts[2] = POLLOUT;
    shorts[3] = 0;
    const before = target.queuedBytes;
    if (sys.poll(pollfd, 1, 0) > 0) {
      const revents = shorts[3];
      target._ready(((revents & POLLOUT) !== 0 ? WRITABLE : 0) | ((revents & POLLHUP) !== 0 ? HANGUP : 0) | ((revents & POLLERR) !== 0 ? ERROR : 0), 0);
      // A failed flush or connect: the target keeps it (`error`); what it left open, the caller closes.
      if (target._takeError() !== null) return;
    }
    if (target.fd < 0) return;
    // What a multiplexer's deadlines do: a connect's timeout, a datagram queue the kernel's
    // readiness cannot announce (an unconnected Unix socket whose receiver was full: found from
    // outside, it stayed stalled for good).
    if (target._deadlinePending() && performance.now() >= target._deadline) {
      target._deadlinePassed();
      if (target._takeError() !== null || target.fd < 0) return;
    }
    pause = target.queuedBytes < before ? 1 : Math.min(pause * 2, LONGEST_PAUSE_MS);
    if (target._deadlinePending()) pause = Math.max(1, Math.min(pause, Math.ceil(target._deadline - performance.now())));
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
