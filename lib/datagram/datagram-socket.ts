/**
 * DatagramSocket: one UDP (IPv4, IPv6, dual-stack) or Unix datagram socket. Datagrams travel
 * whole: `sendTo` hands one to the kernel or queues a copy of it, never a part; `receiveFrom`
 * reads one into the caller's buffer, with no copy, and says who sent it and whether it was cut.
 * Batches (`receiveBatch` / `sendBatch`) move many in one system call.
 *
 * ## Sending semantics
 * `sendTo` / `send` answer:
 * - `'sent'`: the kernel took the datagram;
 * - `'queued'`: the kernel's buffer was full (EAGAIN), so a copy waits in the socket's queue, sent
 *   in order when the socket becomes writable (a multiplexer does it; or `flush()`);
 * - `'not-sent'`: the queue already holds `sendQueueLimit` bytes or more: nothing was taken;
 * - `'refused'`: the kernel refused this datagram for a reason of delivery, not of the socket
 *   (ECONNREFUSED after an ICMP port unreachable on a connected socket, EHOSTUNREACH,
 *   ENETUNREACH, ENOBUFS...): it was not sent; `lastError` says why, and the socket stays usable.
 * A datagram of the queue that the kernel refuses when its turn comes is dropped, and reported:
 * the next multiplexer event of the socket carries the error, with `unsentDatagrams`.
 * Programming errors (too large: EMSGSIZE with the limit; an address of the wrong family; no
 * destination) are thrown.
 *
 * ## Errors from the network
 * UDP reports ICMP errors only to connected sockets (Linux, without IP_RECVERR). They never
 * close the socket: a receive that meets one skips it (the next datagram is read), and it is
 * reported once, as the `error` of the socket's next multiplexer event and in `lastError`.
 *
 * ## Where the work is
 * Split by direction, as Socket is (lib/stream/socket.ts): the send side, the queue, its flush,
 * GSO and the stall's pacing included, is its DatagramSender's (datagram-sender.ts); the receive
 * side, the error queue and SO_ERROR included, its DatagramReceiver's (datagram-receiver.ts). The
 * two share nothing but the socket's state, which this class owns with the public API and its
 * argument checks, the lifecycle (factories, connect, close) and what it tells a multiplexer.
 */
import { AF_INET6, AF_UNIX, AF_UNSPEC, SO_PASSCRED, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_SEQPACKET, SOL_SOCKET } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { SIZEOF } from '../../ffi/layouts.ts';
import { closeFd, SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { unixAddress, type InetAddress, type PortOf, type SocketAddress, type UnixAddress } from '../core/address.ts';
import { checkBytes, checkInteger, checkSendLength, illegalConstructor, invalidType, invalidValue, outOfRange, SocketClosedError } from '../core/errors.ts';
import { INTERNAL } from '../core/internal.ts';
import { track, untrack } from '../core/lifetime.ts';
import { getOption, getRawOption, setOption, setRawOption, type SocketOptionName, type SocketOptionValues } from '../core/options.ts';
import { encodeSockaddr, errorDetails, readAddress } from '../core/sockaddr.ts';
import { boundFile, removeBoundFile, type BoundFile } from '../core/socket-file.ts';
import { DORMANT, ERROR, HANGUP, READABLE, WRITABLE, Watchable } from '../core/watch.ts';
import { DatagramBatch } from './batch.ts';
import { addressOf, encodeDestination, familyName, type DatagramDestination } from './destination.ts';
import { membership, requestMetadata, setBroadcast, setMulticastInterface, setMulticastLoopback, setMulticastTtl, setTtl, type DatagramMetadataOptions } from './ip-options.ts';
import { openBound, openUnbound, sendQueueLimitOf, type DatagramBindOptions, type DatagramCreateOptions } from './open.ts';
import { DatagramReceipt } from './receipt.ts';
import { fdNumbers, MAX_FDS_PER_MESSAGE, type FdLike, type PeerCredentials } from '../core/fd-passing.ts';
import { OwnedFd } from '../core/owned-fd.ts';
import { DatagramReceiver, type DatagramReceiverHost } from './datagram-receiver.ts';
import { DatagramSender, type DatagramSenderHost } from './datagram-sender.ts';
import { disposeGracefully } from '../core/drive-alone.ts';
import { checkBatchAddresses, checkBatchSizes, checkDatagramSize, MAX_UDP_PAYLOAD, udpLimit } from './send-checks.ts';

/** What `sendTo` / `send` did with a datagram. See {@link DatagramSocket}. */
export type DatagramSendStatus = 'sent' | 'queued' | 'not-sent' | 'refused';

export type { DatagramBindOptions, DatagramCreateOptions, DatagramDestination, DatagramMetadataOptions };

/** What {@link DatagramSocket.receiveWithFds} found: a datagram, and what came with it. */
export interface DatagramWithFds {
  /** The bytes received: a view of the buffer given (at most its length). */
  bytes: Uint8Array;
  /** The datagram's real size; larger than `bytes.byteLength` when it was cut. */
  size: number;
  truncated: boolean;
  /** Who sent it (`path` `''` for a sender with no name, or one end of a pair). */
  address: SocketAddress;
  /** The fds that came with it, each an OwnedFd (yours: close them; `Socket.fromFd(fd.release())` makes a Socket of one). */
  fds: OwnedFd[];
  /** The sender's pid, uid and gid (SCM_CREDENTIALS), when `passCredentials(true)` is on; else null. */
  credentials: PeerCredentials | null;
  /** A pidfd of the sender (SO_PASSPIDFD, Linux 6.5+), or null. Yours: close it. */
  pidfd: OwnedFd | null;
}

/** The most segments one GSO send may carry (UDP_MAX_SEGMENTS; 128 since Linux 6.x, 64 before: the smaller). */
export const MAX_GSO_SEGMENTS = 64;

export { MAX_UDP_PAYLOAD };

/** A UDP socket (IPv4 or IPv6): what `DatagramSocket.bind({ host, port })` and `create({ family: 'IPv4' | 'IPv6' })` return. Its `port` is a number. */
export type UdpSocket = DatagramSocket<InetAddress>;
/** A Unix datagram or seqpacket socket: what `bind({ path })`, `create({ family: 'unix' })`, `pair()` and `connectSeqpacket()` return. Its `port` is undefined. */
export type UnixDatagramSocket = DatagramSocket<UnixAddress>;

/**
 * A non-blocking datagram socket. Make one with `DatagramSocket.bind()` (a server, or a client
 * that wants a known port), `DatagramSocket.create()` (UDP picks a port at the first send) or
 * `DatagramSocket.pair()` (two connected Unix datagram sockets).
 * `A` is the type of its local address, which the factory knows from its options (as for
 * `Listener`): a {@link UdpSocket} (`DatagramSocket<InetAddress>`) has a numeric `port`.
 */
export class DatagramSocket<A extends SocketAddress = SocketAddress> extends Watchable {
  /** What a socket's sender and receiver read of it and ask of it (see DatagramSenderHost, DatagramReceiverHost): one for every socket. */
  static readonly #host: DatagramSenderHost & DatagramReceiverHost = {
    closing: (socket) => socket.#closing,
    seqpacket: (socket) => socket.#seqpacket,
    refused: (socket, err) => {
      socket.#lastError = err;
    },
    report: (socket, err) => socket.#report(err),
    unreported: (socket) => socket.#unreported !== null,
  };

  #fd: number;
  /** AF_INET, AF_INET6 or AF_UNIX. */
  readonly #family: number;
  #closing = false;
  #hungUp = false;
  #connected: SocketAddress | null = null;
  /** The send side: direct sends, GSO, the queue, its flush and its pacing (see datagram-sender.ts). */
  readonly #sender: DatagramSender;
  /** The receive side: recvfrom, batches, fds, a seqpacket's end, the error queue (see datagram-receiver.ts). */
  readonly #receiver: DatagramReceiver;
  #lastError: SocketError | null = null;
  #unreported: SocketError | null = null;
  #closeWaiters: (() => void)[] | null = null;
  /** Scratch for the destination of one send: the socket's own, so sends allocate nothing. */
  readonly #to = new Uint8Array(SIZEOF.sockaddr_storage);
  #ipv6Only: boolean | null = null;
  /** A Unix SOCK_SEQPACKET connection (connectSeqpacket, a SeqpacketListener's accept, pair): a read of 0 is its end. */
  #seqpacket = false;
  /**
   * Whether the kernel joins datagrams (`requestMetadata({ gro: true })`): then only a batch with
   * metadata can tell them apart (`segmentSize(i)`), and the other receives refuse to lose them.
   */
  #joins = false;
  /** The socket file `bind({ path })` made, removed on close if it is still that file. */
  #socketFile: BoundFile | null = null;

  /** The local port once known (UDP; see `port`), 0 before. */
  #port = 0;

  /** @internal */
  readonly _kind = 'datagram socket';

  /** Use `DatagramSocket.bind`, `create` or `pair`. Only the library holds the token. */
  constructor(token: typeof INTERNAL, fd: number, family: number, sendQueueLimit: number) {
    super();
    if (token !== INTERNAL) throw illegalConstructor('DatagramSocket', 'DatagramSocket.bind(), DatagramSocket.create() or DatagramSocket.pair()');
    this.#fd = fd;
    this.#family = family;
    this.#sender = new DatagramSender(this, DatagramSocket.#host, sendQueueLimit);
    this.#receiver = new DatagramReceiver(this, DatagramSocket.#host);
    track(this, fd, 'datagram socket');
  }

  /**
   * A socket bound to `{ host, port }` (UDP; `host` defaults to `'::'`, dual-stack) or
   * `{ path }` (Unix datagram). Errors name the address (EADDRINUSE...). (`override`: a class
   * inherits Function's own `bind`, which this static method replaces on DatagramSocket.)
   */
  static override bind(options: DatagramBindOptions & { path: string }): UnixDatagramSocket;
  static override bind(options?: DatagramBindOptions & { path?: undefined }): UdpSocket;
  static override bind(options?: DatagramBindOptions): DatagramSocket;
  static override bind(options: DatagramBindOptions = {}): DatagramSocket {
    const opened = openBound(options);
    const socket = new DatagramSocket(INTERNAL, opened.fd, opened.family, opened.sendQueueLimit);
    socket.#ipv6Only = opened.ipv6Only;
    if (options.path !== undefined) socket.#socketFile = boundFile(options.path);
    return socket;
  }

  /** An unbound socket of `family`: UDP binds a free port at the first send; Unix stays nameless. */
  static create(options: DatagramCreateOptions & { family: 'unix' }): UnixDatagramSocket;
  static create(options: DatagramCreateOptions & { family: 'IPv4' | 'IPv6' }): UdpSocket;
  static create(options: DatagramCreateOptions): DatagramSocket;
  static create(options: DatagramCreateOptions): DatagramSocket {
    const opened = openUnbound(options);
    const socket = new DatagramSocket(INTERNAL, opened.fd, opened.family, opened.sendQueueLimit);
    socket.#ipv6Only = opened.ipv6Only;
    return socket;
  }

  /**
   * Two connected Unix sockets (socketpair) that keep message boundaries, for talking to a child
   * or a worker: `SOCK_DGRAM` by default, `SOCK_SEQPACKET` with `{ type: 'seqpacket' }` (a
   * connection: when one end closes, the other sees `ended`).
   */
  static pair(options: { sendQueueLimit?: number | undefined; type?: 'datagram' | 'seqpacket' | undefined } = {}): [UnixDatagramSocket, UnixDatagramSocket] {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const limit = sendQueueLimitOf(options);
    const type = options.type ?? 'datagram';
    if (type !== 'datagram' && type !== 'seqpacket') throw invalidValue('options.type', "must be 'datagram' or 'seqpacket'", type);
    const fds = new Int32Array(2);
    sys.socketpair(AF_UNIX, (type === 'seqpacket' ? SOCK_SEQPACKET : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
    const pair: [UnixDatagramSocket, UnixDatagramSocket] = [new DatagramSocket<UnixAddress>(INTERNAL, fds[0], AF_UNIX, limit), new DatagramSocket<UnixAddress>(INTERNAL, fds[1], AF_UNIX, limit)];
    for (const end of pair) {
      end.#connected = { family: 'unix', path: '' };
      end.#seqpacket = type === 'seqpacket';
    }
    return pair;
  }

  /**
   * A Unix `SOCK_SEQPACKET` connection to a listening path (a `SeqpacketListener`, or any
   * seqpacket server): messages keep their boundaries, arrive in order and are never lost, and
   * the peer's close is seen as `ended`. Connecting never blocks: a listener whose backlog is
   * full answers EAGAIN, thrown like a refusal.
   */
  static connectSeqpacket(options: { path: string; sendQueueLimit?: number | undefined }): UnixDatagramSocket {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const address = unixAddress(options.path, 'options.path');
    const limit = sendQueueLimitOf(options);
    const fd = sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    try {
      const sockaddr = new Uint8Array(SIZEOF.sockaddr_storage);
      const r = sys.connect(fd, sockaddr, encodeSockaddr(address, sockaddr));
      if (r === WOULD_BLOCK) throw new SocketError('connect', ERRNO.EAGAIN);
    } catch (err) {
      closeFd(fd);
      throw err instanceof SocketError ? err.withDetails({ fd: undefined, path: address.path }) : err;
    }
    return DatagramSocket._seqpacket(fd, limit, address);
  }

  /** @internal A connected seqpacket fd (connectSeqpacket, or SeqpacketListener.accept). */
  static _seqpacket(fd: number, sendQueueLimit: number, peer: SocketAddress): UnixDatagramSocket {
    const socket = new DatagramSocket<UnixAddress>(INTERNAL, fd, AF_UNIX, sendQueueLimit);
    socket.#connected = peer;
    socket.#seqpacket = true;
    return socket;
  }

  /** A seqpacket connection whose peer has closed: everything it sent has been read, nothing more will come. */
  get ended(): boolean {
    return this.#receiver.ended;
  }

  /** The raw fd, or -1 once closed. Do not close it yourself. */
  get fd(): number {
    return this.#fd;
  }

  /** `'open'`, `'closing'` (close() called, queue still draining) or `'closed'`. */
  get state(): 'open' | 'closing' | 'closed' {
    return this.#fd < 0 ? 'closed' : this.#closing ? 'closing' : 'open';
  }

  /** The address family: `'IPv4'`, `'IPv6'` or `'unix'`. */
  get family(): 'IPv4' | 'IPv6' | 'unix' {
    return familyName(this.#family);
  }

  /** The local address (getsockname): of the family the socket was made for. */
  get localAddress(): A {
    // The kernel reports the family the socket was made with, the one the factories' overloads promise.
    return readAddress(sys.getsockname, this.#open('localAddress')) as A;
  }

  /**
   * The local port of a UDP socket, as a number (what `localAddress.port` says, without the
   * narrowing): the one bound, or the one the kernel picked for port 0. A socket made by
   * `create()` has port 0 until its first send or `connect` binds it. The port is kept once
   * known, so it still answers after `close()` (0 for a socket closed before it had one).
   * Undefined for a Unix datagram or seqpacket socket, which has a path (`localAddress.path`),
   * never a port. A number for a {@link UdpSocket}, as `Listener.port` is for a TCP listener.
   */
  get port(): PortOf<A> {
    if (this.#family === AF_UNIX) return undefined as PortOf<A>;
    if (this.#port === 0 && this.#fd >= 0) this.#port = (readAddress(sys.getsockname, this.#fd) as InetAddress).port;
    return this.#port as PortOf<A>;
  }

  /** The address `connect` set, or null. */
  get remoteAddress(): SocketAddress | null {
    this.#open('remoteAddress');
    return this.#connected;
  }

  /** The last error the network reported (see the class comment), or null. */
  get lastError(): SocketError | null {
    return this.#lastError;
  }

  /** Bytes of datagrams waiting in the send queue. */
  get queuedBytes(): number {
    return this.#sender.queuedBytes;
  }

  /** Datagrams waiting in the send queue. */
  get queuedDatagrams(): number {
    return this.#sender.queuedDatagrams;
  }

  /** Whether the send queue holds `sendQueueLimit` bytes or more: the next send would answer `'not-sent'`. */
  get sendQueueFull(): boolean {
    return this.#sender.full;
  }

  /** Soft cap of the send queue, in bytes. */
  get sendQueueLimit(): number {
    return this.#sender.limit;
  }
  /** An integer from 1 to 2^31 - 1; the next send sees the new cap. */
  set sendQueueLimit(limit: number) {
    this.#sender.limit = checkInteger('sendQueueLimit', limit, 1, 2 ** 31 - 1);
  }

  /**
   * Fixes the peer: `send` goes there, and only its datagrams are received (UDP), and ICMP
   * errors about it are reported. Does not block. `null` dissolves the association.
   */
  connect(to: DatagramDestination | null): void {
    const fd = this.#open('connect');
    if (to === null) {
      const unspec = new Uint8Array(SIZEOF.sockaddr_storage);
      unspec[0] = AF_UNSPEC;
      sys.connect(fd, unspec, 2);
      this.#connected = null;
      return;
    }
    const length = encodeDestination(to, this.#family, this.#ipv6Only, this.#to, 'to');
    try {
      const r = sys.connect(fd, this.#to, length);
      if (r === WOULD_BLOCK) throw new SocketError('connect', ERRNO.EAGAIN);
    } catch (err) {
      throw err instanceof SocketError && !(to instanceof DatagramReceipt) ? err.withDetails(errorDetails(addressOf(to))) : err;
    }
    this.#connected = to instanceof DatagramReceipt ? to.address : addressOf(to);
  }

  /** Sends the first `length` bytes of `data` (default all) as one datagram to the connected peer. */
  send(data: Uint8Array, length?: number): DatagramSendStatus {
    const fd = this.#open('send');
    const n = checkSendLength(data, length);
    if (this.#connected === null) throw invalidValue('this', 'is not connected: use sendTo(data, address), or connect() first');
    if (n === 0 && this.#seqpacket) throw outOfRange('length', 'at least 1 on a SOCK_SEQPACKET socket (an empty message reads as the end of the connection)', n);
    checkDatagramSize(this.#family, fd, n);
    return this.#sender.send(fd, data, n);
  }

  /** Sends the first `length` bytes of `data` (default all) as one datagram to `to`. */
  sendTo(data: Uint8Array, to: DatagramDestination, length?: number): DatagramSendStatus {
    const fd = this.#open('sendTo');
    // `to` first: its getters may resize data's buffer, and the size libc gets is taken after them.
    const addressLength = this.#destination(to);
    const n = checkSendLength(data, length);
    checkDatagramSize(this.#family, fd, n);
    return this.#sender.sendTo(fd, data, n, this.#to, addressLength, to);
  }

  /**
   * Sends `data` (its first `length` bytes) as datagrams of `segmentSize` bytes each (the last
   * may be shorter) to `to` (or the connected peer when `to` is null), in one system call where
   * the kernel segments them (UDP GSO, UDP_SEGMENT): one send for up to 64 datagrams. Where the
   * kernel refuses GSO, the segments go one by one (`segmentation` says which way the last one
   * went). Answers like `sendTo`, for all the segments together: when the kernel's buffer is full
   * they are queued, each as its own datagram.
   */
  sendSegments(data: Uint8Array, segmentSize: number, to: DatagramDestination | null = null, length?: number): DatagramSendStatus {
    const fd = this.#open('sendSegments');
    if (this.#family === AF_UNIX) throw invalidValue('this', 'is a Unix datagram socket: segmentation is UDP only');
    const size = checkInteger('segmentSize', segmentSize, 1, udpLimit(this.#family));
    if (to === null && this.#connected === null) throw invalidValue('to', 'is null, but this socket is not connected');
    // `to` before data's size, as in sendTo.
    const addressLength = to === null ? 0 : this.#destination(to);
    const n = checkSendLength(data, length);
    if (Math.ceil(n / size) > MAX_GSO_SEGMENTS) {
      throw outOfRange('length', `at most ${MAX_GSO_SEGMENTS} segments of segmentSize (${size}): ${MAX_GSO_SEGMENTS * size} bytes`, n);
    }
    checkDatagramSize(this.#family, fd, n);
    return this.#sender.sendSegments(fd, data, n, size, to === null ? null : this.#to, addressLength, to);
  }

  /** How the last `sendSegments` went out: `'gso'` (one call, the kernel segmented) or `'one-by-one'`. */
  segmentation: 'gso' | 'one-by-one' | null = null;

  /**
   * Reads one datagram into `into` (no copy) and returns its receipt (length, size, truncated,
   * the sender's address on demand), or `null` when none is waiting. The receipt object is
   * reused by the next call on this socket. A datagram larger than `into` is cut: `truncated`.
   */
  receiveFrom(into: Uint8Array): DatagramReceipt | null {
    const fd = this.#open('receiveFrom');
    checkBytes('into', into);
    // Found from outside: 40 datagrams came as one of 48,000 bytes, with nothing to split them by.
    if (this.#joins) throw invalidValue('this', 'joins datagrams (requestMetadata({ gro: true })), which receiveFrom cannot tell apart: receive into a DatagramBatch made with { metadata: true } and split each slot by segmentSize(i)');
    return this.#receiver.receiveFrom(fd, into);
  }

  /**
   * Receives up to `batch.capacity` datagrams in one system call (recvmmsg) into the batch's
   * slots, and returns how many arrived (0 when none was waiting). Read them with
   * `batch.bytes(i)`, `batch.length(i)`, `batch.address(i)`, until the next receive into it.
   */
  receiveBatch(batch: DatagramBatch): number {
    const fd = this.#open('receiveBatch');
    checkBatch(batch);
    if (this.#joins && !batch.metadata) throw invalidValue('batch', 'has no metadata, but this socket joins datagrams (requestMetadata({ gro: true })): make it with { metadata: true } and split each slot by segmentSize(i)');
    return this.#receiver.receiveBatch(fd, batch);
  }

  /**
   * Sends slots `start` to `start + count - 1` of `batch` (default: every slot of its last
   * receive, from 0), each its `length(i)` bytes to its `address` (what was received there, or
   * what `batch.set` put), in as few sendmmsg calls as the kernel allows. Returns how many
   * datagrams were taken: sent, or queued (copies) when the kernel's buffer was full, in order.
   * Fewer than asked means the queue reached its cap, or the kernel refused the next datagram
   * (`lastError`): the rest are still yours, from slot `start + taken`. A datagram larger than
   * UDP allows is thrown (EMSGSIZE, naming the slot and the limit) before anything is sent; any
   * other failure is thrown only when nothing was taken (after some were, it is `lastError`, and
   * the next call, from the slot it stopped at, meets it).
   */
  sendBatch(batch: DatagramBatch, count?: number, start = 0): number {
    const fd = this.#open('sendBatch');
    checkBatch(batch);
    const total = count ?? batch.received;
    checkInteger('start', start, 0, batch.capacity);
    if (typeof total === 'number' && Number.isInteger(total) && total > batch.capacity - start && total <= batch.capacity) {
      // In range for the batch, but not from `start`: say so (found from outside: "<= 0" alone blamed count).
      throw outOfRange('count', `an integer >= 0 and <= ${batch.capacity - start} (the slots from start ${start} of ${batch.capacity})`, total);
    }
    checkInteger('count', total, 0, batch.capacity - start);
    checkBatchSizes(this.#family, fd, batch, start, total);
    // A seqpacket socket sends to its peer whatever a slot says (a received batch holds the
    // peer's address): an echo answers from the same slots.
    if (!this.#seqpacket) checkBatchAddresses(this.#family, this.#ipv6Only, batch, start, total);
    return this.#sender.sendBatch(fd, batch, start, total);
  }

  /**
   * Unix datagram sockets: sends `data` as one datagram with `fds` attached (SCM_RIGHTS), to
   * `to` or (when `to` is omitted) the connected peer. Answers like `sendTo`; queued, it holds
   * duplicates of the fds, so you may close yours at once. At most 253 fds.
   */
  sendWithFds(data: Uint8Array, fds: readonly FdLike[], to?: DatagramDestination): DatagramSendStatus {
    const fd = this.#open('sendWithFds');
    if (this.#family !== AF_UNIX) throw invalidValue('this', 'is a UDP socket: fds travel over Unix sockets only');
    // The fds and `to` first: their getters may resize data's buffer (see sendTo).
    const numbers = fdNumbers(fds);
    if (to === undefined && this.#connected === null) throw invalidValue('to', 'is missing, and this socket is not connected');
    const addressLength = to === undefined ? 0 : this.#destination(to);
    const n = checkSendLength(data, undefined);
    if (n === 0 && this.#seqpacket) throw outOfRange('data.byteLength', 'at least 1 on a SOCK_SEQPACKET socket', n);
    return this.#sender.sendWithFds(fd, data, numbers, to === undefined ? null : this.#to, addressLength, to);
  }

  /**
   * Unix datagram sockets: receives one datagram into `into` and the fds (room for `maxFds`,
   * default 16) and credentials that came with it, or null when none is waiting. Received fds are
   * close-on-exec OwnedFds. More fds than `maxFds` is an FdsTruncatedError (its `bytes` hold the
   * datagram), with every fd that arrived closed. The bytes are copied once (as for streams).
   */
  receiveWithFds(into: Uint8Array, options: { maxFds?: number | undefined } = {}): DatagramWithFds | null {
    const fd = this.#open('receiveWithFds');
    if (this.#family !== AF_UNIX) throw invalidValue('this', 'is a UDP socket: fds travel over Unix sockets only');
    // Options first: a getter there may resize into's buffer, whose size is taken after it.
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const maxFdsOption = options.maxFds;
    const maxFds = maxFdsOption === undefined ? 16 : checkInteger('options.maxFds', maxFdsOption, 1, MAX_FDS_PER_MESSAGE);
    checkBytes('into', into);
    return this.#receiver.receiveWithFds(fd, into, maxFds);
  }

  /** Unix datagram sockets: SO_PASSCRED, so that every datagram received carries its sender's credentials (`receiveWithFds`). */
  passCredentials(on: boolean): void {
    const fd = this.#open('passCredentials');
    if (typeof on !== 'boolean') throw invalidType('on', 'of type boolean', on);
    if (this.#family !== AF_UNIX) throw invalidValue('this', 'is a UDP socket: credentials travel over Unix sockets only');
    sys.setsockopt(fd, SOL_SOCKET, SO_PASSCRED, new Int32Array([on ? 1 : 0]), 4);
  }

  /** Hands queued datagrams to the kernel now, as far as it takes them; returns how many remain. */
  flush(): number {
    if (this.#fd >= 0) this.#sender.flushQueue();
    return this.queuedDatagrams;
  }

  /** Sets a socket option by name (`'receiveBufferSize'`, `'reusePort'`, `'broadcast'`...). */
  setOption<K extends SocketOptionName>(name: K, value: SocketOptionValues[K]): void {
    setOption(this.#open('setOption'), name, value);
  }

  /** Reads a socket option back, as the kernel reports it. */
  getOption<K extends SocketOptionName>(name: K): SocketOptionValues[K] {
    return getOption(this.#open('getOption'), name);
  }

  /** setsockopt with any level and name. */
  setRawOption(level: number, name: number, value: number | boolean | Uint8Array): void {
    setRawOption(this.#open('setRawOption'), level, name, value);
  }

  /** getsockopt with any level and name: the bytes the kernel wrote (at most `length`). */
  getRawOption(level: number, name: number, length?: number): Uint8Array {
    return getRawOption(this.#open('getRawOption'), level, name, length);
  }

  /**
   * Turns per-datagram metadata on or off (each key given). It arrives with batches made with
   * `{ metadata: true }` (a batch of capacity 1 is fine for one datagram at a time); `receiveFrom`
   * does not carry it.
   */
  requestMetadata(options: DatagramMetadataOptions): void {
    requestMetadata(this.#open('requestMetadata'), this.#family, this.#ipv6Only, options);
    if (typeof options.gro === 'boolean') this.#joins = options.gro;
  }

  /**
   * Opt-in: report ICMP errors about datagrams this socket sent (IP_RECVERR / IPV6_RECVERR):
   * port or host unreachable, too big... Each comes as the `error` of the socket's next event: a
   * SocketError (ECONNREFUSED...) whose `address`/`port` is where the failed datagram went, with
   * `origin`, `icmpType` and `icmpCode`; several at once come as the last, with `count`. They are
   * reports, never thrown, and never close the socket: a server that hears that one client went
   * away goes on serving the others. Off by default, where UDP drops them silently (an
   * unconnected socket) or reports a bare errno (a connected one).
   */
  reportIcmpErrors(on: boolean): void {
    const fd = this.#open('reportIcmpErrors');
    if (typeof on !== 'boolean') throw invalidType('on', 'of type boolean', on);
    if (this.#family === AF_UNIX) throw invalidValue('this', 'is a Unix datagram socket: ICMP errors are UDP only');
    this.#receiver.reportIcmpErrors(fd, this.#family === AF_INET6, this.#ipv6Only, on);
  }

  /** SO_BROADCAST: allow `sendTo` a broadcast address (off by default: EACCES). */
  setBroadcast(on: boolean): void {
    setBroadcast(this.#open('setBroadcast'), on);
  }

  /** The TTL (IPv4) or hop limit (IPv6) of unicast datagrams, 1..255. */
  setTtl(ttl: number): void {
    setTtl(this.#open('setTtl'), this.#family, ttl);
  }

  /** The TTL / hop limit of multicast datagrams, 0..255 (default 1: they stay on the local network). */
  setMulticastTtl(ttl: number): void {
    setMulticastTtl(this.#open('setMulticastTtl'), this.#family, ttl);
  }

  /** Whether multicast datagrams this socket sends reach members on this host too (default true). */
  setMulticastLoopback(on: boolean): void {
    setMulticastLoopback(this.#open('setMulticastLoopback'), this.#family, on);
  }

  /** Where multicast datagrams leave: IPv4, a local address or interface name; IPv6, an interface name or index. */
  setMulticastInterface(iface: string | number): void {
    setMulticastInterface(this.#open('setMulticastInterface'), this.#family, iface);
  }

  /** Joins multicast `group` (`'239.1.2.3'`, `'ff02::1:3'`) on `iface` (an interface name or index, or an IPv4 local address; default: the kernel's choice). */
  addMembership(group: string, iface?: string | number): void {
    membership(this.#open('addMembership'), this.#family, true, group, iface);
  }

  /** Leaves multicast `group` (as joined). */
  dropMembership(group: string, iface?: string | number): void {
    membership(this.#open('dropMembership'), this.#family, false, group, iface);
  }

  /** Closes once the send queue has drained (at once when it is empty). Calling it again does nothing. */
  close(): void {
    if (this.#fd < 0 || this.#closing) return;
    if (this.queuedBytes === 0) {
      this.destroy();
      return;
    }
    this.#closing = true;
    this.#sender.flushQueue();
    if (this.#fd >= 0) this._watcher?._update(this);
  }

  /** Closes at once, dropping anything queued. */
  destroy(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    try {
      this._watcher?._forget(this);
    } catch {
      // epoll_ctl(DEL) failed: closing the fd takes it out of the epoll set anyway (as Socket).
    }
    this.#fd = -1;
    this.#closing = false;
    this.#sender.drop();
    untrack(this);
    try {
      closeFd(fd);
    } catch {
      // Linux releases the fd whatever close(2) reports (EIO, EINTR): nothing to undo, nothing to retry.
    } finally {
      removeBoundFile(this.#socketFile);
      const waiters = this.#closeWaiters;
      this.#closeWaiters = null;
      if (waiters !== null) for (const wake of waiters) wake();
    }
  }

  /** Resolves once the fd is closed (after a graceful close drained the queue, or destroy). */
  whenClosed(): Promise<void> {
    if (this.#fd < 0) return Promise.resolve();
    return new Promise((resolve) => (this.#closeWaiters ??= []).push(resolve));
  }

  /** Calls `destroy()`: `using` scopes end with it (queued datagrams are dropped). */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /**
   * `await using` support: closes gracefully (`close()`) and waits until the send queue has
   * drained and the fd is closed, as a stream `Socket` does: on a Reactor, the Reactor finishes
   * it; with no multiplexer, poll(2) with a zero timeout, now and then; on a Multiplexer you drive
   * yourself it returns at once, and your next `wait()` finishes the close.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await disposeGracefully(this);
  }

  /** @internal */
  _internalInterest(user: number): number {
    let bits = user;
    if (this.#closing) bits &= ~READABLE;
    if (this.#sender.wantsWritable()) bits |= WRITABLE;
    // A connected Unix datagram socket whose peer closed reports EPOLLHUP for good: once that has
    // been reported and nobody reads, stop watching (no busy loop) until the interest changes.
    if (this.#hungUp && (bits & READABLE) === 0 && this.queuedBytes === 0) return DORMANT;
    if (this.#receiver.ended && this.queuedBytes === 0) return DORMANT; // its end was read: nothing more can happen
    return bits;
  }

  /** @internal */
  _ready(bits: number, user: number): number {
    if ((bits & ERROR) !== 0) this.#receiver.takeSocketError(this.#fd);
    const drained = this.#sender.ready(bits); // flushes the queue
    if (this.#fd < 0) return 0;
    let report = (bits & HANGUP) | (bits & user & (READABLE | WRITABLE));
    if (drained) report |= WRITABLE;
    if (this.#unreported !== null) report |= ERROR;
    if ((bits & (HANGUP | READABLE)) === HANGUP && !this.#hungUp) {
      this.#hungUp = true;
      this._watcher?._update(this);
    }
    return report;
  }

  /** @internal */
  _takeError(): SocketError | null {
    const err = this.#unreported;
    this.#unreported = null;
    return err;
  }

  /** @internal */
  override _deadlinePending(): boolean {
    return this.#sender.stalled && this.#fd >= 0;
  }

  /** @internal The stalled queue's time to try again. */
  override _deadlinePassed(): number {
    return this.#sender.retry();
  }

  /** @internal */
  override _orphaned(): void {
    if (this.#fd < 0 || !this.#closing) return;
    this.flush();
    // Nothing will drive the rest: the datagrams still queued are lost, and must be said so (they
    // went silently: found from outside), as a stream socket says it.
    const stranded = this.queuedBytes;
    if (stranded > 0) {
      const err = Object.assign(new SocketError('close', ERRNO.ECANCELED, { fd: this.#fd }), { unsentBytes: stranded });
      err.message += `; ${this.queuedDatagrams} queued datagrams (${stranded} bytes) were not sent`;
      this.#report(err);
    }
    this.destroy();
  }

  /** `to` encoded into `#to`; its length. */
  #destination(to: DatagramDestination): number {
    // The kernel ignores the address of a seqpacket send and delivers to the connected peer
    // (found from outside: a message "to" another path reached the peer).
    if (this.#seqpacket) throw invalidValue('to', 'is an address, but a seqpacket socket sends only to its connected peer: use send()');
    return encodeDestination(to, this.#family, this.#ipv6Only, this.#to, 'to');
  }

  #open(operation: string): number {
    if (this.#fd < 0 || this.#closing) throw new SocketClosedError('datagram socket', operation);
    return this.#fd;
  }

  /** Remembers an error of the network, to be reported once by the next event. */
  #report(err: SocketError): void {
    this.#lastError = err;
    this.#unreported = err;
  }
}

function checkBatch(batch: unknown): asserts batch is DatagramBatch {
  if (!(batch instanceof DatagramBatch)) throw invalidType('batch', 'a DatagramBatch', batch);
}
