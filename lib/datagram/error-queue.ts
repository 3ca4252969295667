/**
 * The socket's error queue (IP_RECVERR / IPV6_RECVERR): with it on, the kernel keeps each ICMP
 * error (port unreachable, host unreachable, too big...) about a datagram this socket sent, with
 * the address the datagram went to, instead of dropping it (unconnected sockets) or leaving a
 * bare errno (connected ones). Read with recvmsg(MSG_ERRQUEUE) until empty: a non-empty queue
 * keeps EPOLLERR up, so it must be drained every time it is reported.
 *
 * One off-heap block per socket that asked for it (a msghdr, the address, a control buffer and a
 * small data buffer: the kernel hands back the start of the datagram that failed, which we do not
 * need), referenced by the reader for as long as it lives.
 */
import koffi from 'koffi';
import { IP_RECVERR, IPPROTO_IP, IPPROTO_IPV6, IPV6_RECVERR, MSG_ERRQUEUE, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, SO_EE_ORIGIN_LOCAL } from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { SocketError, sys, WOULD_BLOCK } from '../../ffi/syscall.ts';
import { decodeSockaddr, errorDetails } from '../core/sockaddr.ts';
import { findControl } from './metadata.ts';

const HDR = OFFSETOF.msghdr;
const NAME_AT = 64; // after the msghdr (56 bytes), 8-aligned
const IOV_AT = NAME_AT + SIZEOF.sockaddr_storage;
const CONTROL_AT = IOV_AT + SIZEOF.iovec;
const CONTROL = 256;
const DATA_AT = CONTROL_AT + CONTROL;
const DATA = 64;
/** Errors read per drain at the most: the kernel caps the queue by the receive buffer; this caps our turn. */
const MAX_PER_DRAIN = 64;

/** Where an ICMP error came from, on the error `DatagramSocket` events carry. */
export type ErrorOrigin = 'icmp' | 'icmp6' | 'local' | 'other';

export class ErrorQueueReader {
  readonly #block: Buffer;
  readonly #view: DataView;
  readonly #name: Uint8Array;

  constructor() {
    const block = Buffer.allocUnsafeSlow(DATA_AT + DATA);
    block.fill(0);
    this.#block = block;
    this.#view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    this.#name = block.subarray(NAME_AT, NAME_AT + SIZEOF.sockaddr_storage);
    const base = koffi.address(block) as bigint;
    this.#view.setBigUint64(HDR.name, base + BigInt(NAME_AT), true);
    this.#view.setBigUint64(HDR.iov, base + BigInt(IOV_AT), true);
    this.#view.setBigUint64(HDR.iovlen, 1n, true);
    this.#view.setBigUint64(HDR.control, base + BigInt(CONTROL_AT), true);
    this.#view.setBigUint64(IOV_AT + OFFSETOF.iovec.base, base + BigInt(DATA_AT), true);
    this.#view.setBigUint64(IOV_AT + OFFSETOF.iovec.len, BigInt(DATA), true);
  }

  /**
   * Reads the queue empty (bounded); returns the errors, oldest first, each a SocketError
   * naming the destination of the datagram it is about, with `origin` and the ICMP type/code.
   */
  drain(fd: number): SocketError[] {
    const errors: SocketError[] = [];
    const view = this.#view;
    for (let i = 0; i < MAX_PER_DRAIN; i++) {
      view.setUint32(HDR.namelen, SIZEOF.sockaddr_storage, true);
      view.setBigUint64(HDR.controllen, BigInt(CONTROL), true);
      view.setInt32(HDR.flags, 0, true);
      const n = sys.recvmsg(fd, this.#block, MSG_ERRQUEUE);
      if (n === WOULD_BLOCK) break;
      const controlLength = Number(view.getBigUint64(HDR.controllen, true));
      let at = findControl(view, CONTROL_AT, controlLength, IPPROTO_IP, IP_RECVERR);
      if (at < 0) at = findControl(view, CONTROL_AT, controlLength, IPPROTO_IPV6, IPV6_RECVERR);
      if (at < 0) continue; // an entry of another kind (a timestamp report): not ours to read
      const E = OFFSETOF.sock_extended_err;
      const errno = view.getUint32(at + E.errno, true);
      const origin = view.getUint8(at + E.origin);
      const nameLength = view.getUint32(HDR.namelen, true);
      let details = {};
      try {
        if (nameLength > 0) details = errorDetails(decodeSockaddr(this.#name, nameLength));
      } catch {
        // an address we cannot decode: the error still counts, without it
      }
      errors.push(
        Object.assign(new SocketError('sendto', errno, details), {
          origin: (origin === SO_EE_ORIGIN_ICMP ? 'icmp' : origin === SO_EE_ORIGIN_ICMP6 ? 'icmp6' : origin === SO_EE_ORIGIN_LOCAL ? 'local' : 'other') as ErrorOrigin,
          icmpType: view.getUint8(at + E.type),
          icmpCode: view.getUint8(at + E.code),
        }),
      );
    }
    return errors;
  }
}
