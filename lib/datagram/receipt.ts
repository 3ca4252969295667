/**
 * What `DatagramSocket.receiveFrom` found: one reusable object per socket, so that receiving a
 * datagram allocates nothing; the sender's address is decoded only when asked, then cached.
 */
import { SIZEOF } from '../../ffi/layouts.ts';
import type { SocketAddress } from '../core/address.ts';
import { decodeSockaddr } from '../core/sockaddr.ts';
import { byteLengthOf, headOf } from '../core/bytes.ts';

/**
 * One received datagram. The object is reused by the next `receiveFrom` on the same socket:
 * copy what you keep (`bytes.slice()`, `{ ...address }`).
 */
export class DatagramReceipt {
  /** Bytes written into the buffer given to `receiveFrom` (at most its length). */
  length = 0;
  /** The datagram's real size; larger than `length` when it did not fit and was cut. */
  size = 0;
  #into: Uint8Array | null = null;
  #address: SocketAddress | null = null;
  /** @internal The sender's sockaddr as the kernel wrote it, and its length. */
  readonly _name = new Uint8Array(SIZEOF.sockaddr_storage);
  /** @internal */
  readonly _nameLength = new Uint32Array(1);

  /** Whether the datagram was larger than the buffer: its end was dropped by the kernel (MSG_TRUNC). */
  get truncated(): boolean {
    return this.size > this.length;
  }

  /** The bytes received: a view of the buffer given to `receiveFrom` (made when asked). */
  get bytes(): Uint8Array {
    return headOf(this.#into as Uint8Array, this.length);
  }

  /**
   * Who sent it. Unix: `path` is `''` for a sender that has no name (an unbound socket, or one
   * end of a pair), which cannot be answered by address.
   */
  get address(): SocketAddress {
    // No name at all: a Unix sender with none (one end of a pair); UDP always names its sender.
    return (this.#address ??= this._nameLength[0] === 0 ? { family: 'unix', path: '' } : decodeSockaddr(this._name, this._nameLength[0]));
  }

  /** @internal Records a receive of `size` bytes into `into`. */
  _received(into: Uint8Array, size: number): void {
    this.#into = into;
    this.size = size;
    this.length = Math.min(size, byteLengthOf(into));
    this.#address = null;
  }
}
