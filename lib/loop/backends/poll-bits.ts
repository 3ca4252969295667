/**
 * POLL* bits and the watch bits (READABLE, WRITABLE, HANGUP, ERROR), both ways: the poll(2)
 * backend hands them to the kernel in struct pollfd, the io_uring backend in IORING_OP_POLL_ADD.
 */
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLRDHUP } from '../../../ffi/constants.ts';
import { ERROR, HANGUP, READABLE, WRITABLE } from '../../core/watch.ts';

/** The POLL* events to wait for, for the watch bits of an interest (reading asks for the peer's FIN too). */
export function toPoll(bits: number): number {
  return ((bits & READABLE) !== 0 ? POLLIN | POLLRDHUP : 0) | ((bits & WRITABLE) !== 0 ? POLLOUT : 0);
}

/** The watch bits of the POLL* events the kernel reported. */
export function fromPoll(revents: number): number {
  return (
    ((revents & POLLIN) !== 0 ? READABLE : 0) |
    ((revents & POLLOUT) !== 0 ? WRITABLE : 0) |
    ((revents & (POLLHUP | POLLRDHUP)) !== 0 ? HANGUP : 0) |
    // POLLNVAL (fd not open) should never happen: the Multiplexer removes an fd before it is
    // closed. Should it happen anyway, an error is the honest report.
    ((revents & (POLLERR | POLLNVAL)) !== 0 ? ERROR : 0)
  );
}
