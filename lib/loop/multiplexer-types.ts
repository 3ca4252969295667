/**
 * The multiplexer's public vocabulary: the interest bits, what it watches, the event it reports
 * and its options. Apart from the Multiplexer class so that the faces (Duplex, promises, the
 * ready iterator) speak it without loading the multiplexer.
 */
import type { SocketError } from '../core/errors.ts';
import { READABLE, WRITABLE } from '../core/watch.ts';
import type { BackendName } from './backends/backend.ts';
// Types only: no socket family is loaded by naming it here.
import type { Listener } from '../stream/listener.ts';
import type { Socket } from '../stream/socket.ts';
import type { Waker } from './waker.ts';
import type { DatagramSocket } from '../datagram/datagram-socket.ts';
import type { SeqpacketListener } from '../datagram/seqpacket-listener.ts';

/** Interest bits for `add` and `modify`: combine with `|`. */
export const Interest = Object.freeze({
  /** Nothing: keep the target (its queue is still flushed, a connect still finished) but report only errors and hangups. */
  NONE: 0,
  /** Report when there is something to read (data, EOF) or accept. */
  READABLE,
  /** Report whenever the socket can take more bytes. Rarely needed: see `MultiplexerEvent.writable`. */
  WRITABLE,
} as const);

/**
 * What a multiplexer can watch. Tell them apart with `instanceof`, which narrows the type:
 * `if (event.target instanceof Listener) event.target.accept(); else if (event.target instanceof Socket) event.target.receive();`.
 */
export type MultiplexerTarget = Socket | Listener | DatagramSocket | SeqpacketListener | Waker;

/**
 * One readiness report. Event objects and the array holding them are reused by the next `wait`:
 * copy what you want to keep.
 *
 * `T` is the target's type (a reactor handler added for a Socket gets `MultiplexerEvent<Socket>`),
 * `D` the type of the data given to `add` (see {@link Multiplexer}).
 */
export interface MultiplexerEvent<T extends MultiplexerTarget = MultiplexerTarget, D = unknown> {
  /** The socket or listener that is ready. */
  target: T;
  /** There is something to receive (or EOF), or a connection to accept. */
  readable: boolean;
  /**
   * The socket can take more bytes: a connect finished (check `target.state` / `error`), its
   * send queue just drained, or (with `Interest.WRITABLE`) the kernel buffer has room.
   */
  writable: boolean;
  /** The peer closed its side or the connection is gone; data may still wait to be received. */
  hangup: boolean;
  /** Why the connection failed, when this event found out (connect refused, reset while flushing...). */
  error: SocketError | null;
  /** The value given to `add` or `modify`. */
  data: D;
}

/**
 * The arguments of `add` after the target: `interest` and `data` may be left out only when the
 * multiplexer's data type admits `undefined` (the data of a target added without any).
 * `interest` may be `undefined` either way, for its default (READABLE): `add(socket, undefined, data)`.
 */
export type MultiplexerAddArguments<D> = undefined extends D ? [interest?: number, data?: D] : [interest: number | undefined, data: D];

/** Options of a {@link Multiplexer}. An option left `undefined` takes its default. */
export interface MultiplexerOptions {
  /**
   * Kernel mechanism (default `'epoll'`). `'io_uring'` falls back to `'epoll'` where io_uring is
   * missing or refused (kernel before 5.11, `kernel.io_uring_disabled`, a seccomp profile):
   * `multiplexer.backend` says which runs.
   */
  backend?: BackendName | undefined;
  /** Most events one `wait` returns (default 256); more stay ready for the next wait. */
  maxEvents?: number | undefined;
  /** Size of the receive buffer shared by this multiplexer's sockets (default 64 KiB). */
  receiveBufferSize?: number | undefined;
  /**
   * io_uring only (default `true`): TCP sockets are read by multishot receives into a ring of
   * buffers the kernel fills, so that `receive()` makes no system call (see the README's
   * "io_uring backend"). `false`: readiness only, every receive a recv(2), as on epoll.
   * `multiplexer.ringReceive` says whether it runs.
   */
  ringReceive?: boolean | undefined;
  /**
   * io_uring only (default `true` on the main thread, `false` in a worker thread): listeners'
   * connections are taken by multishot accepts as they come, so that `accept()` makes no system
   * call: it hands out the fds the kernel has accepted (the ring stops taking them once 128 are
   * held for a listener, after the turn that brought them, which can bring up to a backlog;
   * beyond that the listener accepts by accept4). `false`: readiness only, every accept an
   * accept4(2), as on epoll. `multiplexer.ringAccept` says whether it runs.
   *
   * Off by default in workers because `worker.terminate()` stops a worker wherever its
   * JavaScript is: connections the kernel has accepted in the ring and JavaScript has not read
   * yet are open fds of the process that nothing will close (their clients hang). With it on in
   * a worker, blocking waits sleep in poll(2), not in the ring (which accepts as connections
   * come), so only the short enter after each wake-up accepts: a worker stopped just then can
   * still leave that batch. A worker that ends by itself loses none. Turn it on in a worker only
   * if the worker is never terminated while it serves. That sleep needs an eventfd registered
   * with the ring: where io_uring_register is refused, a worker's ring does not accept.
   */
  ringAccept?: boolean | undefined;
  /**
   * io_uring only (default `false`): TCP sockets' send queues are handed to the kernel by ring
   * entries submitted once per loop turn, with the turn's other work, instead of one send(2) per
   * `send()`. `send()` then answers `'queued'` (never `'sent'` or `'partial'`): the bytes wait
   * in the socket's queue until the end of the turn. See the README's "io_uring backend" for
   * when the drain is reported as writable. `multiplexer.ringSend` says whether it runs.
   */
  ringSend?: boolean | undefined;
  /**
   * @internal An io_uring ring whose eventfd the kernel signals at once: where it signals a
   * DEFER_TASKRUN ring's late, the ring is a plain one (see IoUringBackend). A Reactor, which sleeps
   * in libuv on that eventfd, asks for it unless told `false` (tests of the ring's paths on a
   * Reactor, which wake late on such a kernel but run the same code).
   */
  _promptWake?: boolean | undefined;
}
