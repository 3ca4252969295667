/**
 * DatagramBatch: the memory for moving many datagrams in one system call (recvmmsg/sendmmsg),
 * laid out once and reused, so that a batch allocates nothing per datagram or per call.
 *
 * One off-heap block holds, per slot: a receive mmsghdr, a send mmsghdr, their two iovecs, a
 * sockaddr_storage for the peer's address and `datagramSize` bytes of data. The pointers between
 * them are written once, here; a receive then only resets the address lengths the kernel
 * overwrote, and a send only writes each slot's length and address length. Receiving into a
 * batch and sending the same batch back answers every sender with no copy at all (an echo).
 *
 * The block is a Buffer of more than 64 bytes made by `allocUnsafeSlow`: V8 never moves such a
 * backing store, so the addresses written into it stay valid, and the batch object holds the
 * block for as long as it lives (the kernel sees it only during the calls).
 */
import koffi from 'koffi';
import { MSG_NOSIGNAL, MSG_TRUNC } from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import type { SocketAddress } from '../core/address.ts';
import { checkBytes, checkInteger, invalidValue, outOfRange } from '../core/errors.ts';
import { decodeSockaddr, encodeSockaddr } from '../core/sockaddr.ts';
import { parseIPv4, parseIPv6 } from '../core/address.ts';
import {
  destinationOf, RECEIVE_CONTROL, SEND_CONTROL, segmentSizeOf, timestampOf, tosOf, writeSendControl, type DatagramDestinationInfo,
} from './metadata.ts';
import { byteLengthOf, copyBytes } from '../core/bytes.ts';

/** Options of {@link DatagramBatch}. */
export interface DatagramBatchOptions {
  /** Slots: the most datagrams one call moves (default 64, at most 1024, the kernel's UIO_MAXIOV). */
  capacity?: number | undefined;
  /** Bytes per slot (default 2048; up to 65536). A larger datagram is cut: `truncated(i)`. */
  datagramSize?: number | undefined;
  /**
   * Room for per-datagram metadata (default false): what `DatagramSocket.requestMetadata` asks
   * the kernel to attach (`destination(i)`, `tos(i)`, `timestamp(i)`, `segmentSize(i)`), and a
   * source address or segment size per datagram sent (`setSource`, `setSegmentSize`).
   */
  metadata?: boolean | undefined;
}

const MMSG = SIZEOF.mmsghdr;
const MSG = OFFSETOF.mmsghdr.hdr;
const HDR = OFFSETOF.msghdr;
const IOV = SIZEOF.iovec;
const NAME = SIZEOF.sockaddr_storage;
const align8 = (n: number) => (n + 7) & ~7;

/**
 * Slots for up to `capacity` datagrams of up to `datagramSize` bytes each. Use one per socket
 * (or per loop): a receive overwrites what the last one left.
 */
export class DatagramBatch {
  /** The most datagrams one receive or send moves. */
  readonly capacity: number;
  /** Bytes per slot. */
  readonly datagramSize: number;
  /** How many datagrams the last `receiveBatch` brought (0 before any). */
  received = 0;
  readonly #block: Buffer;
  /** 32-bit views of the receive and send headers (the fields written per call are 32-bit). */
  readonly #recv32: Uint32Array;
  readonly #send32: Uint32Array;
  readonly #sendHeaders: Uint8Array;
  readonly #sendIov32: Uint32Array;
  readonly #lengths: Uint32Array;
  readonly #nameLengths: Uint32Array;
  readonly #flags: Int32Array;
  readonly #slots: Uint8Array[];
  readonly #names: Uint8Array[];
  readonly #addresses: (SocketAddress | null)[];
  readonly #view: DataView;
  /** Offsets of the control areas in the block, or -1 without metadata. */
  readonly #recvControlAt: number;
  readonly #sendControlAt: number;
  readonly #controlLengths: Uint32Array;
  readonly #sendControlLengths: Uint32Array;
  readonly #sources: (Uint8Array | null)[];
  readonly #segmentSizes: Uint16Array;
  /** Whether the batch has room for metadata. */
  readonly metadata: boolean;

  constructor(options: DatagramBatchOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
    const capacity = options.capacity === undefined ? 64 : checkInteger('options.capacity', options.capacity, 1, 1024);
    const size = options.datagramSize === undefined ? 2048 : checkInteger('options.datagramSize', options.datagramSize, 1, 65536);
    this.capacity = capacity;
    this.datagramSize = size;
    const recvAt = 0;
    const sendAt = recvAt + capacity * MMSG;
    const recvIovAt = sendAt + capacity * MMSG;
    const sendIovAt = recvIovAt + capacity * IOV;
    const namesAt = sendIovAt + capacity * IOV;
    const metadata = options.metadata === undefined ? false : options.metadata;
    if (typeof metadata !== 'boolean') throw invalidValue('options.metadata', 'must be a boolean', metadata);
    this.metadata = metadata;
    const recvControlAt = namesAt + capacity * NAME;
    const sendControlAt = recvControlAt + (metadata ? capacity * RECEIVE_CONTROL : 0);
    const dataAt = sendControlAt + (metadata ? capacity * SEND_CONTROL : 0);
    this.#recvControlAt = metadata ? recvControlAt : -1;
    this.#sendControlAt = metadata ? sendControlAt : -1;
    const stride = align8(size);
    const block = Buffer.allocUnsafeSlow(dataAt + capacity * stride);
    block.fill(0, 0, dataAt);
    this.#block = block;
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    const base = koffi.address(block) as bigint;
    const at = (offset: number) => base + BigInt(offset);
    for (let i = 0; i < capacity; i++) {
      const name = namesAt + i * NAME;
      const data = dataAt + i * stride;
      for (const [headers, iovs] of [[recvAt, recvIovAt], [sendAt, sendIovAt]]) {
        const h = headers + i * MMSG + MSG;
        view.setBigUint64(h + HDR.name, at(name), true);
        view.setUint32(h + HDR.namelen, NAME, true);
        view.setBigUint64(h + HDR.iov, at(iovs + i * IOV), true);
        view.setBigUint64(h + HDR.iovlen, 1n, true);
        view.setBigUint64(iovs + i * IOV + OFFSETOF.iovec.base, at(data), true);
        view.setBigUint64(iovs + i * IOV + OFFSETOF.iovec.len, BigInt(size), true);
      }
      if (metadata) {
        const r = recvAt + i * MMSG + MSG;
        view.setBigUint64(r + HDR.control, at(recvControlAt + i * RECEIVE_CONTROL), true);
        view.setBigUint64(r + HDR.controllen, BigInt(RECEIVE_CONTROL), true);
        view.setBigUint64(sendAt + i * MMSG + MSG + HDR.control, at(sendControlAt + i * SEND_CONTROL), true);
      }
    }
    this.#view = view;
    this.#controlLengths = new Uint32Array(capacity);
    this.#sendControlLengths = new Uint32Array(capacity);
    this.#sources = new Array<Uint8Array | null>(capacity).fill(null);
    this.#segmentSizes = new Uint16Array(capacity);
    this.#recv32 = new Uint32Array(block.buffer, block.byteOffset + recvAt, (capacity * MMSG) >> 2);
    this.#send32 = new Uint32Array(block.buffer, block.byteOffset + sendAt, (capacity * MMSG) >> 2);
    this.#sendHeaders = new Uint8Array(block.buffer, block.byteOffset + sendAt, capacity * MMSG);
    this.#sendIov32 = new Uint32Array(block.buffer, block.byteOffset + sendIovAt, (capacity * IOV) >> 2);
    this.#lengths = new Uint32Array(capacity);
    this.#nameLengths = new Uint32Array(capacity);
    this.#flags = new Int32Array(capacity);
    this.#slots = Array.from({ length: capacity }, (_, i) => new Uint8Array(block.buffer, block.byteOffset + dataAt + i * stride, size));
    this.#names = Array.from({ length: capacity }, (_, i) => new Uint8Array(block.buffer, block.byteOffset + namesAt + i * NAME, NAME));
    this.#addresses = new Array<SocketAddress | null>(capacity).fill(null);
  }

  /** The whole of slot `i` (`datagramSize` bytes): write a datagram there, then `setLength(i, n)`. Made once: no allocation. */
  slot(i: number): Uint8Array {
    return this.#slots[this.#index(i)];
  }

  /** Bytes of the datagram in slot `i`. */
  length(i: number): number {
    return this.#lengths[this.#index(i)];
  }

  /** The datagram in slot `i`: a view of its slot (one small object per call; `slot(i)` + `length(i)` make none). */
  bytes(i: number): Uint8Array {
    const slot = this.#index(i);
    return this.#slots[slot].subarray(0, this.#lengths[slot]);
  }

  /** Whether the datagram received in slot `i` was larger than the slot, and cut (MSG_TRUNC). */
  truncated(i: number): boolean {
    return (this.#flags[this.#index(i)] & MSG_TRUNC) !== 0;
  }

  /** The sender of the datagram received in slot `i` (or the destination `setAddress` put there), decoded when first asked. */
  address(i: number): SocketAddress {
    const slot = this.#index(i);
    // No name at all: a Unix sender with none (one end of a pair); UDP always names its sender.
    return (this.#addresses[slot] ??= this.#nameLengths[slot] === 0 ? { family: 'unix', path: '' } : decodeSockaddr(this.#names[slot], this.#nameLengths[slot]));
  }

  /** Sets how many bytes of slot `i` the next send takes. */
  setLength(i: number, length: number): void {
    this.#lengths[this.#index(i)] = checkInteger('length', length, 0, this.datagramSize);
  }

  /** Copies `data` into slot `i` (it must fit) and sets its length. */
  set(i: number, data: Uint8Array): void {
    const slot = this.#index(i);
    checkBytes('data', data);
    const size = byteLengthOf(data);
    if (size > this.datagramSize) throw outOfRange('data.byteLength', `at most the batch's datagramSize (${this.datagramSize})`, size);
    if (size > 0) copyBytes(this.#slots[slot], data); // none: even an empty set throws for a view its buffer shrank below
    this.#lengths[slot] = size;
  }

  /**
   * Sets where slot `i` is sent (an address of the socket's own family: an IPv6 socket reaches
   * IPv4 peers as `::ffff:a.b.c.d`). `null`: no address, for a connected socket.
   */
  setAddress(i: number, address: SocketAddress | null): void {
    const slot = this.#index(i);
    // Nothing can receive at port 0 (found from outside: the kernel's EINVAL came from sendmmsg).
    if (address !== null && typeof address === 'object' && address.family !== 'unix' && address.port === 0) {
      throw outOfRange('address.port', 'an integer >= 1 and <= 65535 (nothing can receive at port 0)', 0);
    }
    this.#nameLengths[slot] = address === null ? 0 : encodeSockaddr(address, this.#names[slot], 'address');
    this.#addresses[slot] = address;
  }

  /** Where the datagram received in slot `i` was sent to (IP_PKTINFO), or null when the kernel did not say. */
  destination(i: number): DatagramDestinationInfo | null {
    const slot = this.#metadataSlot(i);
    return destinationOf(this.#view, this.#block, this.#recvControlAt + slot * RECEIVE_CONTROL, this.#controlLengths[slot]);
  }

  /** The TOS byte (IPv4) or traffic class (IPv6) of the datagram in slot `i`, or -1. */
  tos(i: number): number {
    const slot = this.#metadataSlot(i);
    return tosOf(this.#view, this.#recvControlAt + slot * RECEIVE_CONTROL, this.#controlLengths[slot]);
  }

  /** When the kernel received the datagram in slot `i`, in nanoseconds since the epoch, or null. */
  timestamp(i: number): bigint | null {
    const slot = this.#metadataSlot(i);
    return timestampOf(this.#view, this.#recvControlAt + slot * RECEIVE_CONTROL, this.#controlLengths[slot]);
  }

  /**
   * With GRO on: the size of each of the equal segments the kernel joined into slot `i` (the
   * last may be shorter), or 0 when the slot holds one datagram as it was sent.
   */
  segmentSize(i: number): number {
    const slot = this.#metadataSlot(i);
    return segmentSizeOf(this.#view, this.#recvControlAt + slot * RECEIVE_CONTROL, this.#controlLengths[slot]);
  }

  /**
   * The source address slot `i` is sent from (IP_PKTINFO), one of this host's (a multi-homed
   * server answers from the address it was asked on: `setSource(i, batch.destination(i)?.address
   * ?? null)`); null: the kernel's choice. A receive into the slot clears it.
   */
  setSource(i: number, address: string | null): void {
    const slot = this.#metadataSlot(i);
    let bytes: Uint8Array | null = null;
    if (address !== null) {
      if (typeof address !== 'string') throw invalidValue('address', 'must be an IP address or null', address);
      bytes = parseIPv4(address) ?? parseIPv6(address)?.bytes ?? null;
      if (bytes === null) throw invalidValue('address', 'is not an IP address', address);
    }
    this.#sources[slot] = bytes;
    this.#writeSendControl(slot);
  }

  /** Sends slot `i` as segments of `size` bytes (UDP GSO, 0: as one datagram); a receive clears it. */
  setSegmentSize(i: number, size: number): void {
    const slot = this.#metadataSlot(i);
    this.#segmentSizes[slot] = checkInteger('size', size, 0, 65535);
    this.#writeSendControl(slot);
  }

  #writeSendControl(slot: number): void {
    const at = this.#sendControlAt + slot * SEND_CONTROL;
    this.#sendControlLengths[slot] = writeSendControl(this.#view, this.#block, at, this.#sources[slot], this.#segmentSizes[slot]);
  }

  #metadataSlot(i: number): number {
    const slot = this.#index(i);
    if (!this.metadata) throw invalidValue('this', 'was made without room for metadata: new DatagramBatch({ metadata: true })');
    return slot;
  }

  #index(i: number): number {
    if (!(Number.isInteger(i) && i >= 0 && i < this.capacity)) throw outOfRange('i', `an integer from 0 to ${this.capacity - 1}`, i);
    return i;
  }

  /** @internal One recvmmsg into every slot: the count received (0 when nothing waited). */
  _receive(fd: number): number {
    const recv32 = this.#recv32;
    // The kernel wrote the address length of every slot it filled last time: give the room back.
    for (let i = 0, h = (MSG + HDR.namelen) >> 2; i < this.received; i++, h += MMSG >> 2) recv32[h] = NAME;
    if (this.metadata) this.#resetControls();
    this.received = 0;
    const n = sys.recvmmsg(fd, this.#block, this.capacity, 0, null);
    if (n === WOULD_BLOCK) return 0;
    const nameAt = (MSG + HDR.namelen) >> 2;
    const flagsAt = (MSG + HDR.flags) >> 2;
    const lenAt = OFFSETOF.mmsghdr.len >> 2;
    for (let i = 0, h = 0; i < n; i++, h += MMSG >> 2) {
      this.#lengths[i] = recv32[h + lenAt];
      this.#nameLengths[i] = recv32[h + nameAt];
      this.#flags[i] = recv32[h + flagsAt] | 0;
      this.#addresses[i] = null;
    }
    if (this.metadata) {
      // msg_controllen is a 64-bit size_t: its low half is all a 256-byte area can need.
      const controlAt = (MSG + HDR.controllen) >> 2;
      for (let i = 0, h = 0; i < n; i++, h += MMSG >> 2) this.#controlLengths[i] = recv32[h + controlAt];
    }
    this.received = n;
    return n;
  }

  /** The kernel wrote how much control data it left in every slot it filled: give the room back, and clear what those slots would send. */
  #resetControls(): void {
    const recv32 = this.#recv32;
    const controlAt = (MSG + HDR.controllen) >> 2;
    for (let i = 0, h = 0; i < this.received; i++, h += MMSG >> 2) {
      recv32[h + controlAt] = RECEIVE_CONTROL;
      this.#controlLengths[i] = 0;
      if (this.#sendControlLengths[i] !== 0) {
        this.#sources[i] = null;
        this.#segmentSizes[i] = 0;
        this.#sendControlLengths[i] = 0;
      }
    }
  }

  /** @internal One sendmmsg of slots [start, start + count): how many the kernel took, or WOULD_BLOCK. */
  _send(fd: number, start: number, count: number): number {
    const send32 = this.#send32;
    const iov32 = this.#sendIov32;
    const nameAt = (MSG + HDR.namelen) >> 2;
    const lenAt = OFFSETOF.iovec.len >> 2;
    for (let i = start, h = start * (MMSG >> 2); i < start + count; i++, h += MMSG >> 2) {
      send32[h + nameAt] = this.#nameLengths[i];
      iov32[i * (IOV >> 2) + lenAt] = this.#lengths[i]; // iov_len is 64-bit: its high half stays 0
    }
    if (this.metadata) {
      const controlAt = (MSG + HDR.controllen) >> 2;
      for (let i = start, h = start * (MMSG >> 2); i < start + count; i++, h += MMSG >> 2) send32[h + controlAt] = this.#sendControlLengths[i];
    }
    const headers = start === 0 ? this.#sendHeaders : this.#sendHeaders.subarray(start * MMSG);
    return sys.sendmmsg(fd, headers, count, MSG_NOSIGNAL);
  }

  /** @internal The address bytes of slot `i`, for a queue copy. */
  _name(i: number): Uint8Array | null {
    return this.#nameLengths[i] === 0 ? null : this.#names[i];
  }

  /** @internal */
  _nameLength(i: number): number {
    return this.#nameLengths[i];
  }
}
