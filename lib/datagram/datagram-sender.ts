/**
 * The send side of a datagram socket (datagram-socket.ts): the direct sends (send, sendTo,
 * sendSegments with UDP GSO or one by one, sendBatch, sendWithFds), the datagram queue that takes
 * what the kernel cannot yet, its flush, and the pacing of a queue that readiness cannot announce
 * (the stall and its timer). DatagramSocket keeps the public methods and their argument checks
 * (it encodes the destination into its scratch, which `connect` shares, and hands the sockaddr
 * over), and what waits for the queue to drain (a graceful close): the sender tells it when the
 * queue has drained. The split is by direction, as for stream sockets (lib/stream/socket-sender.ts):
 * what only sending touches lives here; what both sides touch (the fd, `closing`, the errors to
 * report) stays the socket's, lent through DatagramSenderHost.
 *
 * The rules it keeps (design §2): datagrams travel whole and in order, never a part of one; a
 * refusal of delivery is `'refused'` and `lastError`, never a closed socket; a queued datagram the
 * kernel refuses is dropped and reported (the socket's `report`), never lost silently.
 */
import { MSG_NOSIGNAL, SOL_UDP, UDP_SEGMENT } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { closeAll, duplicateFds, sendWithRights } from '../core/fd-passing.ts';
import { errorDetails } from '../core/sockaddr.ts';
import { ERROR, WRITABLE } from '../core/watch.ts';
import type { DatagramBatch } from './batch.ts';
import { DatagramQueue } from './datagram-queue.ts';
import { addressOf, type DatagramDestination } from './destination.ts';
import { DatagramReceipt } from './receipt.ts';
import type { DatagramSendStatus, DatagramSocket } from './datagram-socket.ts';
import { byteLengthOf, partOf } from '../core/bytes.ts';

/** Errors that concern one datagram's delivery, not the socket: the socket stays usable. */
const DELIVERY_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ENOBUFS', 'ENOMEM', 'EPERM', 'ENONET', 'EPIPE', 'ECONNRESET']);

/** Whether `err` concerns one datagram's delivery (a refusal, an unreachable host...): for sends and receives alike. */
export function isDeliveryError(err: unknown): err is SocketError {
  return err instanceof SocketError && DELIVERY_ERRORS.has(err.code);
}

/**
 * What the sender reads of its socket and asks of it. The socket module makes one for all its
 * sockets (the functions take the socket), so that a socket costs no closures of its own.
 */
export interface DatagramSenderHost {
  /** `close()` was called: the drain finishes it. */
  closing(socket: DatagramSocket): boolean;
  /** A delivery refusal answered `'refused'`: the socket keeps it as `lastError` (not reported by an event). */
  refused(socket: DatagramSocket, err: SocketError): void;
  /** An error of the network, to be reported once by the socket's next event (and kept as `lastError`). */
  report(socket: DatagramSocket, err: SocketError): void;
  /** Whether an error waits to be reported (see `report`). */
  unreported(socket: DatagramSocket): boolean;
}

/** A datagram socket's send side: owns its queue and the GSO setting (see the file's header). */
export class DatagramSender {
  readonly #socket: DatagramSocket;
  readonly #host: DatagramSenderHost;
  /** Soft cap of the send queue, in bytes (`DatagramSocket.sendQueueLimit`, which checks it). */
  limit: number;
  #queue: DatagramQueue | null = null;
  /** The UDP_SEGMENT size set on the socket now (0: none), or -1 once the kernel refused GSO. */
  #gso = 0;
  /**
   * The queue is waiting on a timer, not on readiness: the kernel said writable, yet took
   * nothing. An unconnected Unix datagram socket is writable while its own buffer has room,
   * whatever the receiver's queue holds (Linux checks the peer only for connected sockets), so
   * readiness alone would spin. Tries again after `#retryMs`, doubling up to 64 ms.
   */
  stalled = false;
  #retryMs = 0;

  constructor(socket: DatagramSocket, host: DatagramSenderHost, limit: number) {
    this.#socket = socket;
    this.#host = host;
    this.limit = limit;
  }

  /** Bytes of datagrams waiting in the queue. */
  get queuedBytes(): number {
    return this.#queue === null ? 0 : this.#queue.bytes;
  }

  /** Datagrams waiting in the queue. */
  get queuedDatagrams(): number {
    return this.#queue === null ? 0 : this.#queue.count;
  }

  /** Whether the queue holds `limit` bytes or more. */
  get full(): boolean {
    return this.queuedBytes >= this.limit;
  }

  /** Whether the queue wants writability: datagrams wait, and not on the stall's timer. */
  wantsWritable(): boolean {
    return this.queuedBytes > 0 && !this.stalled;
  }

  /** What `send` answers, for a checked datagram of `n` bytes on the connected socket's `fd`. */
  send(fd: number, data: Uint8Array, n: number): DatagramSendStatus {
    if (this.#gso > 0) this.#setGso(fd, 0);
    if (this.queuedBytes > 0) return this.#enqueue(data, n, null, 0);
    try {
      const r = sys.send(fd, data, n, MSG_NOSIGNAL);
      if (r !== WOULD_BLOCK) return 'sent';
    } catch (err) {
      return this.#sendFailed(err, 'send');
    }
    return this.#enqueue(data, n, null, 0);
  }

  /** What `sendTo` answers, for a checked datagram of `n` bytes to `address` (`to` encoded). */
  sendTo(fd: number, data: Uint8Array, n: number, address: Uint8Array, addressLength: number, to: DatagramDestination): DatagramSendStatus {
    if (this.#gso > 0) this.#setGso(fd, 0);
    if (this.queuedBytes > 0) return this.#enqueue(data, n, address, addressLength);
    try {
      const r = sys.sendto(fd, data, n, MSG_NOSIGNAL, address, addressLength);
      if (r !== WOULD_BLOCK) return 'sent';
    } catch (err) {
      return this.#sendFailed(err, 'sendto', to);
    }
    return this.#enqueue(data, n, address, addressLength);
  }

  /** What `sendSegments` answers, for checked arguments (`address` null: the connected peer). */
  sendSegments(fd: number, data: Uint8Array, n: number, size: number, address: Uint8Array | null, addressLength: number, to: DatagramDestination | null): DatagramSendStatus {
    if (this.queuedBytes > 0) return this.#enqueueSegments(data, n, size, address, addressLength);
    if (n <= size || this.#gso < 0 || !this.#setGso(fd, size)) return this.#sendSegmentsOneByOne(fd, data, n, size, address, addressLength, to);
    try {
      const r = address === null ? sys.send(fd, data, n, MSG_NOSIGNAL) : sys.sendto(fd, data, n, MSG_NOSIGNAL, address, addressLength);
      if (r !== WOULD_BLOCK) {
        this.#socket.segmentation = 'gso';
        return 'sent';
      }
    } catch (err) {
      // EIO: the route's device cannot checksum GSO packets. Never again on this socket: one by one.
      if (err instanceof SocketError && err.code === 'EIO') {
        this.#setGso(fd, 0);
        this.#gso = -1;
        return this.#sendSegmentsOneByOne(fd, data, n, size, address, addressLength, to);
      }
      return this.#sendFailed(err, 'sendto', to ?? undefined);
    }
    return this.#enqueueSegments(data, n, size, address, addressLength);
  }

  /** What `sendBatch` answers, for checked slots `start` to `start + total - 1`. */
  sendBatch(fd: number, batch: DatagramBatch, start: number, total: number): number {
    let taken = 0;
    if (this.queuedBytes === 0) {
      while (taken < total) {
        let sent: number;
        try {
          sent = batch._send(fd, start + taken, total - taken);
        } catch (err) {
          if (!(err instanceof SocketError) || (!isDeliveryError(err) && taken === 0)) throw this.#explained(err);
          // Refused (delivery), or failed after some went: the count must not be lost (a retry
          // of the whole batch would send those again). That datagram and the rest stay yours.
          this.#host.report(this.#socket, err);
          return taken;
        }
        if (sent === WOULD_BLOCK) break;
        taken += sent;
      }
    }
    for (; taken < total; taken++) {
      const slot = start + taken;
      if (this.queuedBytes >= this.limit) break;
      this.#enqueue(batch.slot(slot), batch.length(slot), batch._name(slot), batch._nameLength(slot));
    }
    return taken;
  }

  /** What `sendWithFds` answers, for checked arguments (`address` null: the connected peer). */
  sendWithFds(fd: number, data: Uint8Array, numbers: number[], address: Uint8Array | null, addressLength: number, to: DatagramDestination | undefined): DatagramSendStatus {
    if (this.queuedBytes === 0) {
      try {
        const r = sendWithRights(fd, data, numbers, { name: address, nameLength: addressLength });
        if (r !== WOULD_BLOCK) return 'sent';
      } catch (err) {
        return this.#sendFailed(err, 'sendmsg', to);
      }
    }
    if (this.queuedBytes >= this.limit) return 'not-sent';
    this.#enqueueWhole(data, address, addressLength, duplicateFds(numbers));
    return 'queued';
  }

  /**
   * An event's part in the write direction: writability flushes the queue (unless it waits on
   * the stall's timer), and stalls it when the kernel took nothing. Returns whether the queue drained.
   */
  ready(bits: number): boolean {
    if ((bits & WRITABLE) === 0 || this.queuedBytes === 0 || this.stalled) return false;
    if (this.flushQueue() === 0 && this.#socket.fd >= 0 && this.queuedBytes > 0) this.#stall();
    return this.queuedBytes === 0;
  }

  /**
   * The stall's timer passed (`_deadlinePassed`): tries the queue again, and stalls it again when
   * the kernel still takes nothing. Returns the bits to report: WRITABLE when the queue drained,
   * ERROR when an error waits.
   */
  retry(): number {
    const socket = this.#socket;
    this.stalled = false;
    socket._deadline = 0;
    if (socket.fd < 0) return 0;
    const sent = this.flushQueue();
    if (socket.fd < 0) return this.#host.unreported(socket) ? ERROR : 0;
    if (this.queuedBytes > 0 && sent === 0) this.#stall();
    else {
      this.#retryMs = 0;
      socket._watcher?._update(socket);
    }
    const report = (this.queuedBytes === 0 ? WRITABLE : 0) | (this.#host.unreported(socket) ? ERROR : 0);
    return report;
  }

  /** Drops the queue (destroy), closing the fds its datagrams held. */
  drop(): void {
    if (this.#queue !== null) closeAll(this.#queue.clear().fds);
    this.#queue = null;
  }

  /**
   * Sends queued datagrams in order until the kernel's buffer is full; drops and reports the
   * ones it refuses. Returns how many left the queue (sent or dropped).
   */
  flushQueue(): number {
    const queue = this.#queue;
    if (queue === null) return 0;
    const socket = this.#socket;
    const fd = socket.fd;
    let moved = 0;
    if (this.#gso > 0) this.#setGso(fd, 0); // queued entries are single datagrams
    let dropped: SocketError | null = null;
    let droppedCount = 0;
    for (let head = queue.head(); head !== null; head = queue.head()) {
      let r: number;
      try {
        r =
          head.fds !== null
            ? sendWithRights(fd, head.bytes, head.fds, { name: head.address, nameLength: head.addressLength })
            : head.address === null
              ? sys.send(fd, head.bytes, byteLengthOf(head.bytes), MSG_NOSIGNAL)
              : sys.sendto(fd, head.bytes, byteLengthOf(head.bytes), MSG_NOSIGNAL, head.address, head.addressLength);
      } catch (err) {
        if (head.fds !== null) closeAll(head.fds);
        // Nothing the kernel says about one queued datagram may stop the others or escape wait().
        dropped = err instanceof SocketError ? err : new SocketError('sendto', ERRNO.EIO);
        droppedCount++;
        queue.shift();
        moved++;
        continue;
      }
      if (r === WOULD_BLOCK) break;
      if (head.fds !== null) closeAll(head.fds); // our duplicates: the receiver has its own now
      queue.shift();
      moved++;
    }
    if (dropped !== null) this.#host.report(socket, Object.assign(dropped, { unsentDatagrams: droppedCount }));
    if (queue.count === 0) {
      this.#queue = null;
      this.stalled = false;
      socket._deadline = 0;
      this.#retryMs = 0;
      if (this.#host.closing(socket)) socket.destroy();
      else socket._watcher?._update(socket);
    }
    return moved;
  }

  /** Readiness cannot tell when the queue may move on: wait on a timer, doubling, instead of spinning. */
  #stall(): void {
    const socket = this.#socket;
    this.#retryMs = Math.min(64, Math.max(1, this.#retryMs * 2));
    this.stalled = true;
    socket._deadline = performance.now() + this.#retryMs;
    socket._watcher?._update(socket);
  }

  /** A Unix datagram's EMSGSIZE says what the limit is. */
  #explained(err: unknown): unknown {
    if (err instanceof SocketError && err.code === 'EMSGSIZE' && this.#socket.family === 'unix') {
      err.message += '; a Unix datagram must fit the socket send buffer (sendBufferSize)';
    }
    return err;
  }

  #sendFailed(err: unknown, syscall: string, to?: DatagramDestination): DatagramSendStatus {
    if (isDeliveryError(err)) {
      this.#host.refused(this.#socket, err);
      return 'refused';
    }
    if (err instanceof SocketError && err.code === 'EMSGSIZE') {
      err.message += '; a Unix datagram must fit the socket send buffer (sendBufferSize)';
    } else if (err instanceof SocketError && to !== undefined && !(to instanceof DatagramReceipt) && syscall === 'sendto') {
      throw err.withDetails(errorDetails(addressOf(to)));
    }
    throw err;
  }

  #enqueue(data: Uint8Array, length: number, address: Uint8Array | null, addressLength: number): DatagramSendStatus {
    if (this.queuedBytes >= this.limit) return 'not-sent';
    const queue = (this.#queue ??= new DatagramQueue());
    const wasEmpty = queue.count === 0;
    queue.push(data, length, address, addressLength);
    if (wasEmpty) this.#socket._watcher?._update(this.#socket);
    return 'queued';
  }

  /**
   * Sets UDP_SEGMENT to `size` (0: off) unless it is set already; false when the kernel refuses
   * GSO (ENOPROTOOPT before Linux 4.18, EINVAL...), which is then remembered.
   */
  #setGso(fd: number, size: number): boolean {
    if (this.#gso === size) return true;
    try {
      sys.setsockopt(fd, SOL_UDP, UDP_SEGMENT, new Int32Array([size]), 4);
    } catch (err) {
      if (!(err instanceof SocketError)) throw err;
      this.#gso = -1;
      return false;
    }
    this.#gso = size;
    return true;
  }

  /** GSO refused or pointless: each segment its own sendto, queued from the first that does not fit. */
  #sendSegmentsOneByOne(fd: number, data: Uint8Array, n: number, size: number, address: Uint8Array | null, addressLength: number, to: DatagramDestination | null): DatagramSendStatus {
    this.#socket.segmentation = 'one-by-one';
    // At least one datagram, even for no bytes (an empty datagram is a datagram).
    for (let at = 0; at === 0 || at < n; at += size) {
      const part = partOf(data, at, Math.min(n, at + size));
      let r: number;
      try {
        r = address === null ? sys.send(fd, part, byteLengthOf(part), MSG_NOSIGNAL) : sys.sendto(fd, part, byteLengthOf(part), MSG_NOSIGNAL, address, addressLength);
      } catch (err) {
        if (at > 0 && isDeliveryError(err)) {
          this.#host.report(this.#socket, err); // some went: report the refusal of the rest like a queue drop
          return 'sent';
        }
        return this.#sendFailed(err, 'sendto', to ?? undefined);
      }
      if (r === WOULD_BLOCK) {
        if (at === 0) return this.#enqueueSegments(data, n, size, address, addressLength);
        // Some went: the rest must follow them, cap or not, or the message would be cut.
        for (let rest = at; rest < n; rest += size) this.#enqueueWhole(partOf(data, rest, Math.min(n, rest + size)), address, addressLength);
        return 'queued';
      }
    }
    return 'sent';
  }

  /** Queues each segment as its own datagram (whole, in order), or none when the queue is at its cap. */
  #enqueueSegments(data: Uint8Array, n: number, size: number, address: Uint8Array | null, addressLength: number): DatagramSendStatus {
    if (this.queuedBytes >= this.limit) return 'not-sent';
    for (let at = 0; at < n; at += size) this.#enqueueWhole(partOf(data, at, Math.min(n, at + size)), address, addressLength);
    return 'queued';
  }

  #enqueueWhole(part: Uint8Array, address: Uint8Array | null, addressLength: number, fds: number[] | null = null): void {
    const queue = (this.#queue ??= new DatagramQueue());
    const wasEmpty = queue.count === 0;
    queue.push(part, byteLengthOf(part), address, addressLength, fds);
    if (wasEmpty) this.#socket._watcher?._update(this.#socket);
  }
}
