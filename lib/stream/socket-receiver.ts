/**
 * The receive side of a stream socket (socket.ts): recv(2) and recvmsg with fds, the end of
 * reading, and the bytes a multiplexer's backend received for the socket (io_uring's
 * completion-based receive): those it holds now (`Watcher._received`), and those it handed over
 * when the socket left it (`_adoptReceived`), which come before anything read from the fd.
 * Socket keeps the public methods and their argument checks, and hands the work to its
 * `SocketReceiver`.
 *
 * The rules it keeps (design §2): would-block is a value (0); a lost connection ends reading and
 * is reported (`'closed'`, END_OF_STREAM), never thrown; nothing read is ever lost.
 */
import { sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { FdsTruncatedError, SocketError } from '../core/errors.ts';
import { receiveWithRights, type RightsReceived } from '../core/fd-passing.ts';
import { INTERNAL } from '../core/internal.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import { HELD_END, HELD_NONE, type Watcher } from '../core/watch.ts';
import { adoptReceivedFds, type FdAdopters, type ReceiveWithFdsResult } from './received-fd.ts';
import { lostConnection } from './socket-sender.ts';
import type { ReceiveResult, Socket } from './socket.ts';
import { byteLengthOf, copyBytes, headOf } from '../core/bytes.ts';

/** `receiveInto` result when the peer has closed the connection (EOF or reset). */
export const END_OF_STREAM = -1;
const DEFAULT_RECEIVE_BUFFER = 64 * 1024;

/** What the receiver reads of its socket and asks of it (the socket module makes one for all its sockets, as for SenderHost). */
export interface ReceiverHost {
  /** Still connecting: nothing to read yet. */
  connecting(socket: Socket): boolean;
  /** The connection is gone (`error` is set). */
  failed(socket: Socket): boolean;
  /** The connection is gone: the socket remembers why and reports it. */
  lose(socket: Socket, err: SocketError): void;
}

/** A socket's receive side (see the file's header). */
export class SocketReceiver {
  readonly #socket: Socket;
  readonly #host: ReceiverHost;
  /** Nothing more will be read: EOF, a lost connection, `shutdown('read')`, a failed connect. */
  ended = false;
  #scratch: Uint8Array | null = null;
  /**
   * Bytes a multiplexer's backend received for this socket before it left that multiplexer
   * (io_uring's completion-based receive), from `#heldAt` on, and the failure that came after
   * them (errno, 0 for none): handed out before anything read from the fd.
   */
  #held: Uint8Array | null = null;
  #heldAt = 0;
  #heldErrno = 0;

  constructor(socket: Socket, host: ReceiverHost) {
    this.#socket = socket;
    this.#host = host;
  }

  /** What `receiveInto` answers, for a checked `into` on the socket's `fd` (see Socket.receiveInto). */
  receiveInto(fd: number, into: Uint8Array): number {
    const early = this.#beforeReceive();
    if (early !== null) return early;
    const held = this.#receiveHeld(into);
    if (held !== HELD_NONE) return held;
    try {
      return this.#afterReceive(sys.recv(fd, into, byteLengthOf(into), 0));
    } catch (err) {
      return this.#receiveFailed(err);
    }
  }

  /**
   * `receive()` on a multiplexer whose backend receives: a view of the bytes in the backend's
   * buffers, or what a receive answers before any system call; null when the fd must be read.
   */
  receiveShared(watcher: Watcher): ReceiveResult | null {
    const early = this.#beforeReceive();
    if (early !== null) return receiveResult(watcher.receiveBuffer, early);
    if (this.#held === null && this.#heldErrno === 0) {
      const n = this.#fromWatcher(null);
      if (n > 0) return { bytes: watcher._receivedView, status: 'alive' };
      if (n !== HELD_NONE) return receiveResult(watcher.receiveBuffer, n);
    }
    return null;
  }

  /** The buffer `receive()` reads into without a multiplexer (made by the first such receive). */
  scratch(): Uint8Array {
    return (this.#scratch ??= new Uint8Array(DEFAULT_RECEIVE_BUFFER));
  }

  /** What `receiveWithFds` answers, for checked arguments on the socket's `fd` (see Socket.receiveWithFds). */
  receiveWithFds(fd: number, into: Uint8Array, maxFds: number, adopters: FdAdopters): ReceiveWithFdsResult {
    const early = this.#beforeReceive();
    if (early !== null) return { ...receiveResult(into, early), fds: [], credentials: null, pidfd: null };
    let received: RightsReceived;
    try {
      received = receiveWithRights(fd, into, maxFds);
    } catch (err) {
      return { ...receiveResult(into, this.#receiveFailed(err)), fds: [], credentials: null, pidfd: null };
    }
    if (received.truncated) throw new FdsTruncatedError(headOf(into, Math.min(received.count, byteLengthOf(into))), maxFds, received.credentials);
    const n = this.#afterReceive(received.count);
    // Adoption never throws: the bytes are read, and nothing read may be lost.
    return {
      ...receiveResult(into, n),
      fds: adoptReceivedFds(received.fds, adopters),
      credentials: received.credentials,
      pidfd: received.pidfd >= 0 ? new OwnedFd(INTERNAL, received.pidfd) : null,
    };
  }

  /** Reading ends (EOF, a reset, `shutdown('read')`): the interest changes. */
  end(): void {
    this.ended = true;
    this.#socket._watcher?._update(this.#socket);
  }

  /** Whether bytes (or a failure) handed over by a backend still wait (see `#held`). */
  holds(): boolean {
    return this.#held !== null || this.#heldErrno !== 0;
  }

  /** See Watchable._adoptReceived. */
  adopt(bytes: Uint8Array | null, errno: number): void {
    if (bytes !== null && bytes.byteLength > 0) {
      const rest = this.#held === null ? null : this.#held.subarray(this.#heldAt);
      if (rest === null || rest.byteLength === 0) this.#held = bytes;
      else {
        const joined = new Uint8Array(rest.byteLength + bytes.byteLength);
        joined.set(rest);
        joined.set(bytes, rest.byteLength);
        this.#held = joined;
      }
      this.#heldAt = 0;
    }
    if (errno !== 0 && this.#heldErrno === 0) this.#heldErrno = errno;
  }

  /** The socket is closed: the bytes handed over are not wanted. */
  dropHeld(): void {
    this.#held = null;
  }

  /**
   * A closing socket reads and drops what the peer still sends (bounded per event), as a server's
   * graceful shutdown does: the user has said, by closing, that nothing more will be read; leaving
   * it in the kernel would stop a peer that is closing too from flushing, and so us.
   */
  discard(): void {
    const socket = this.#socket;
    const buffer = socket._watcher?.receiveBuffer ?? this.scratch();
    this.#held = null;
    for (let i = 0; i < 64; i++) {
      // Bytes a backend received already go first (their buffers go back to it).
      let held: number;
      try {
        held = this.#fromWatcher(buffer);
      } catch {
        this.ended = true; // a failure held for us: nothing more to drop
        return;
      }
      if (held > 0) continue;
      if (held !== HELD_NONE) return; // none now (the next event brings more), or the end (reading ended)
      let n: number;
      try {
        n = sys.recv(socket.fd, buffer, byteLengthOf(buffer), 0);
      } catch {
        this.ended = true; // reset: nothing more to drop; the flush will meet it too
        return;
      }
      if (n === WOULD_BLOCK) return;
      if (n === 0) {
        this.end();
        return;
      }
    }
  }

  /**
   * What was received for this socket before the kernel's bytes (see `#held`, and io_uring's
   * completion-based receive): a count, 0 (none now, a receive is armed), END_OF_STREAM, or
   * HELD_NONE (read the fd).
   */
  #receiveHeld(into: Uint8Array): number {
    const held = this.#held;
    if (held !== null) {
      const n = Math.min(byteLengthOf(into), held.byteLength - this.#heldAt);
      copyBytes(into, held.subarray(this.#heldAt, this.#heldAt + n));
      this.#heldAt += n;
      if (this.#heldAt === held.byteLength) this.#held = null;
      return n;
    }
    if (this.#heldErrno !== 0) {
      const errno = this.#heldErrno;
      this.#heldErrno = 0;
      return this.#receiveFailed(new SocketError('recv', errno, { fd: this.#socket.fd }));
    }
    return this.#fromWatcher(into);
  }

  #fromWatcher(into: Uint8Array | null): number {
    const socket = this.#socket;
    const watcher = socket._watcher;
    if (watcher === null || !watcher._receives) return HELD_NONE;
    const n = watcher._received(socket, into);
    if (n >= 0 || n === HELD_NONE) return n;
    if (n === HELD_END) {
      this.end();
      return END_OF_STREAM;
    }
    return this.#receiveFailed(new SocketError('recv', watcher._receivedErrno(socket), { fd: socket.fd }));
  }

  /** What a receive answers before any system call: END_OF_STREAM, 0 while connecting, or null. */
  #beforeReceive(): number | null {
    // An error found by send (EPIPE, ECONNRESET) does not end reading: what the peer sent before
    // it went away may still wait in the kernel, and recv hands it over first.
    if (this.ended) return END_OF_STREAM;
    return this.#host.connecting(this.#socket) ? 0 : null;
  }

  /** recv's result as `receiveInto` answers it: bytes, 0 for would-block, END_OF_STREAM at EOF. */
  #afterReceive(n: number): number {
    if (n > 0) return n;
    if (n === WOULD_BLOCK) return 0;
    this.end();
    return END_OF_STREAM;
  }

  /** A receive failed: a lost connection ends reading (remembered in `error`); the rest is thrown. */
  #receiveFailed(err: unknown): number {
    if (!lostConnection(err)) throw err;
    if (!this.#host.failed(this.#socket)) this.#host.lose(this.#socket, err);
    this.end();
    return END_OF_STREAM;
  }
}

/** A receive's answer as `receive` returns it: a view of the bytes read, and the status. */
export function receiveResult(buffer: Uint8Array, n: number): ReceiveResult {
  return n >= 0 ? { bytes: headOf(buffer, n), status: 'alive' } : { bytes: headOf(buffer, 0), status: 'closed' };
}
