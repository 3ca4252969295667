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

/** Options of {@link DatagramBatch}. */
export interface DatagramBatchOptions {
  /** Slots: the most datagrams one call moves (default 64, at most 1024, the kernel's UIO_MAXIOV). */
  capacity?: number;
  /** Bytes per slot (default 2048; up to 65536). A larger datagram is cut: `truncated(i)`. */
  datagramSize?: number;
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
    const dataAt = namesAt + capacity * NAME;
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
    }
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
    return (this.#addresses[slot] ??= decodeSockaddr(this.#names[slot], this.#nameLengths[slot]));
  }

  /** Sets how many bytes of slot `i` the next send takes. */
  setLength(i: number, length: number): void {
    this.#lengths[this.#index(i)] = checkInteger('length', length, 0, this.datagramSize);
  }

  /** Copies `data` into slot `i` (it must fit) and sets its length. */
  set(i: number, data: Uint8Array): void {
    const slot = this.#index(i);
    checkBytes('data', data);
    if (data.byteLength > this.datagramSize) throw outOfRange('data.byteLength', `at most the batch's datagramSize (${this.datagramSize})`, data.byteLength);
    this.#slots[slot].set(data);
    this.#lengths[slot] = data.byteLength;
  }

  /**
   * Sets where slot `i` is sent (an address of the socket's own family: an IPv6 socket reaches
   * IPv4 peers as `::ffff:a.b.c.d`). `null`: no address, for a connected socket.
   */
  setAddress(i: number, address: SocketAddress | null): void {
    const slot = this.#index(i);
    this.#nameLengths[slot] = address === null ? 0 : encodeSockaddr(address, this.#names[slot]);
    this.#addresses[slot] = address;
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
    this.received = n;
    return n;
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
