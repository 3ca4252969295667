/**
 * The receive side of a datagram socket (datagram-socket.ts): recvfrom into the reused receipt,
 * recvmmsg into a batch, recvmsg with fds and credentials, the end of a seqpacket connection
 * (a message of no bytes), and what the kernel reports beside the datagrams: the ICMP errors of
 * the error queue (IP_RECVERR, once `reportIcmpErrors(true)` turned it on) and SO_ERROR.
 * DatagramSocket keeps the public methods and their argument checks, and hands the work to its
 * `DatagramReceiver`. (Per-datagram metadata is read by the batch: batch.ts, metadata.ts.) The
 * split is by direction, as for stream sockets (lib/stream/socket-receiver.ts): what only
 * receiving touches lives here (the receipt, a seqpacket's end, the error queue's reader); what
 * both sides touch (whether it is seqpacket, the errors to report) stays the socket's, lent
 * through DatagramReceiverHost.
 *
 * The rules it keeps (design §2): would-block is a value (null, 0); an error of the network met
 * by a receive is skipped and reported once (the socket's `report`), never thrown, and never
 * closes the socket; the receive reads into the caller's buffer, with no copy.
 */
import { IP_RECVERR, IPPROTO_IP, IPPROTO_IPV6, IPV6_RECVERR, MSG_TRUNC, SO_ERROR, SOL_SOCKET } from '../../ffi/constants.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { FdsTruncatedError } from '../core/errors.ts';
import { receiveWithRights } from '../core/fd-passing.ts';
import { INTERNAL } from '../core/internal.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import type { DatagramBatch } from './batch.ts';
import { isDeliveryError } from './datagram-sender.ts';
import type { DatagramSocket, DatagramWithFds } from './datagram-socket.ts';
import { ErrorQueueReader } from './error-queue.ts';
import { DatagramReceipt } from './receipt.ts';
import { byteLengthOf, headOf } from '../core/bytes.ts';

/** What the receiver reads of its socket and asks of it (the socket module makes one for all its sockets, as for DatagramSenderHost). */
export interface DatagramReceiverHost {
  /** A Unix SOCK_SEQPACKET connection: a read of 0 is its end. */
  seqpacket(socket: DatagramSocket): boolean;
  /** An error of the network, to be reported once by the socket's next event (and kept as `lastError`). */
  report(socket: DatagramSocket, err: SocketError): void;
}

/** A datagram socket's receive side: owns its receipt and its error queue's reader (see the file's header). */
export class DatagramReceiver {
  readonly #socket: DatagramSocket;
  readonly #host: DatagramReceiverHost;
  readonly #receipt = new DatagramReceipt();
  /** The peer of a seqpacket connection has closed: nothing more will arrive. */
  ended = false;
  /** The error queue's reader, once `reportIcmpErrors(true)` turned IP_RECVERR on. */
  #errorQueue: ErrorQueueReader | null = null;

  constructor(socket: DatagramSocket, host: DatagramReceiverHost) {
    this.#socket = socket;
    this.#host = host;
  }

  /** What `receiveFrom` answers, for a checked `into` on the socket's `fd`. */
  receiveFrom(fd: number, into: Uint8Array): DatagramReceipt | null {
    const receipt = this.#receipt;
    // An ICMP error queued on the socket comes out of recvfrom instead of a datagram: note it and
    // read on (bounded: the kernel keeps at most one such error at a time).
    for (let attempt = 0; attempt < 4; attempt++) {
      receipt._nameLength[0] = SIZEOF.sockaddr_storage;
      let n: number;
      try {
        n = sys.recvfrom(fd, into, byteLengthOf(into), MSG_TRUNC, receipt._name, receipt._nameLength);
      } catch (err) {
        if (!isDeliveryError(err)) throw err;
        this.#host.report(this.#socket, err);
        continue;
      }
      if (n === WOULD_BLOCK) return null;
      if (n === 0 && this.#host.seqpacket(this.#socket)) {
        this.#end();
        return null;
      }
      receipt._received(into, n);
      return receipt;
    }
    return null;
  }

  /** What `receiveBatch` answers, for a checked `batch` on the socket's `fd`. */
  receiveBatch(fd: number, batch: DatagramBatch): number {
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const n = batch._receive(fd);
        if (!this.#host.seqpacket(this.#socket)) return n;
        // A seqpacket connection's end reads as a message of no bytes: the slots before it count.
        for (let i = 0; i < n; i++) {
          if (batch.length(i) === 0) {
            batch.received = i;
            this.#end();
            return i;
          }
        }
        return n;
      } catch (err) {
        if (!isDeliveryError(err)) throw err;
        this.#host.report(this.#socket, err);
      }
    }
    return 0;
  }

  /** What `receiveWithFds` answers, for a checked `into` and `maxFds` on the Unix socket's `fd`. */
  receiveWithFds(fd: number, into: Uint8Array, maxFds: number): DatagramWithFds | null {
    const from = { name: new Uint8Array(SIZEOF.sockaddr_storage), nameLength: new Uint32Array(1) };
    let received;
    try {
      received = receiveWithRights(fd, into, maxFds, from);
    } catch (err) {
      if (!isDeliveryError(err)) throw err;
      this.#host.report(this.#socket, err);
      return null;
    }
    if (received.count === WOULD_BLOCK) return null;
    const length = Math.min(received.count, byteLengthOf(into));
    if (received.truncated) throw new FdsTruncatedError(headOf(into, length), maxFds, received.credentials);
    if (received.count === 0 && this.#host.seqpacket(this.#socket) && received.fds.length === 0) {
      this.#end();
      return null;
    }
    const receipt = new DatagramReceipt();
    receipt._name.set(from.name);
    receipt._nameLength[0] = from.nameLength[0];
    return {
      bytes: headOf(into, length),
      size: received.count,
      truncated: received.count > length,
      address: receipt.address,
      fds: received.fds.map((n) => new OwnedFd(INTERNAL, n)),
      credentials: received.credentials,
      pidfd: received.pidfd >= 0 ? new OwnedFd(INTERNAL, received.pidfd) : null,
    };
  }

  /** What `reportIcmpErrors` does, for a checked `on` on the UDP socket's `fd`: IP_RECVERR / IPV6_RECVERR, and the error queue's reader. */
  reportIcmpErrors(fd: number, ipv6: boolean, ipv6Only: boolean | null, on: boolean): void {
    const value = new Int32Array([on ? 1 : 0]);
    if (ipv6) {
      sys.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, value, 4);
      if (ipv6Only !== true) sys.setsockopt(fd, IPPROTO_IP, IP_RECVERR, value, 4); // its IPv4 peers
    } else {
      sys.setsockopt(fd, IPPROTO_IP, IP_RECVERR, value, 4);
    }
    this.#errorQueue = on ? (this.#errorQueue ?? new ErrorQueueReader()) : null;
  }

  /** An event said ERROR: drains the error queue (when on) and SO_ERROR, reporting what they held. */
  takeSocketError(fd: number): void {
    const socket = this.#socket;
    if (this.#errorQueue !== null) {
      // Drain the queue (else EPOLLERR stays up); SO_ERROR below clears the errno it also left.
      const errors = this.#errorQueue.drain(fd);
      if (errors.length > 0) {
        const last = errors[errors.length - 1];
        this.#host.report(socket, errors.length === 1 ? last : Object.assign(last, { count: errors.length }));
      }
    }
    const value = new Int32Array(1);
    sys.getsockopt(fd, SOL_SOCKET, SO_ERROR, value, new Uint32Array([4]));
    if (value[0] !== 0) this.#host.report(socket, new SocketError('recvfrom', value[0], { fd }));
  }

  /** The seqpacket peer closed: reading is over; the socket goes quiet in its multiplexer. */
  #end(): void {
    if (this.ended) return;
    this.ended = true;
    this.#socket._watcher?._update(this.#socket);
  }
}
