/**
 * What a datagram send may be, checked before any system call: sizes against UDP's limit and a
 * batch's slot addresses against the socket's family. Each is a programming error, thrown
 * naming the slot (the kernel would answer for the whole call, naming none).
 */
import { AF_INET, AF_INET6, AF_UNIX } from '../../ffi/constants.ts';
import { ERRNO } from '../../ffi/errno.ts';
import { SocketError } from '../../ffi/syscall.ts';
import { invalidValue } from '../core/errors.ts';
import type { DatagramBatch } from './batch.ts';
import { familyName } from './destination.ts';

/** The largest UDP payload: 65535 minus the IP and UDP headers (IPv4 20 + 8; IPv6's header is not counted in its length). */
export const MAX_UDP_PAYLOAD = Object.freeze({ IPv4: 65507, IPv6: 65527 });

/** The largest UDP payload over `family` (AF_INET or AF_INET6). */
export function udpLimit(family: number): number {
  return family === AF_INET6 ? MAX_UDP_PAYLOAD.IPv6 : MAX_UDP_PAYLOAD.IPv4;
}

/** A datagram larger than its family allows: thrown as EMSGSIZE naming the limit (Unix: the kernel's to say). */
export function checkDatagramSize(family: number, fd: number, length: number): void {
  if (family === AF_UNIX) return; // the limit is the send buffer: the kernel says EMSGSIZE
  const limit = udpLimit(family);
  if (length > limit) {
    const err = new SocketError('sendto', ERRNO.EMSGSIZE, { fd });
    err.message += `; a UDP datagram over ${familyName(family)} carries at most ${limit} bytes, this one has ${length}`;
    throw err;
  }
}

/** sendBatch: no slot may be larger than UDP allows (checked only when the batch's slots could be). */
export function checkBatchSizes(family: number, fd: number, batch: DatagramBatch, start: number, count: number): void {
  if (family === AF_UNIX) return;
  const limit = udpLimit(family);
  if (batch.datagramSize <= limit) return;
  for (let i = start; i < start + count; i++) {
    const length = batch.length(i);
    if (length <= limit) continue;
    const err = new SocketError('sendmmsg', ERRNO.EMSGSIZE, { fd });
    err.message += `; slot ${i}: a UDP datagram over ${familyName(family)} carries at most ${limit} bytes, this one has ${length} (nothing was sent)`;
    throw err;
  }
}

/**
 * sendBatch: a slot's address of another family is an argument error naming the slot, as for
 * `sendTo` (the kernel answered EINVAL, EAFNOSUPPORT or EDESTADDRREQ for the whole call, found
 * from outside: a batch received on one socket and answered on another). Port 0 cannot be
 * here: `setAddress` refuses it, and no datagram comes from it. An
 * IPv4 address on a dual-stack IPv6 socket is the kernel's to take; on an IPv6-only one it is
 * refused, as `sendTo` refuses it (the kernel said ENETUNREACH).
 */
export function checkBatchAddresses(own: number, ipv6Only: boolean | null, batch: DatagramBatch, start: number, count: number): void {
  for (let i = start; i < start + count; i++) {
    const length = batch._nameLength(i);
    if (length === 0) continue; // none: the connected peer's
    const name = batch._name(i)!;
    const family = name[0] | (name[1] << 8); // sa_family_t, little-endian on x86_64 and aarch64
    if (family === own ? own !== AF_UNIX || length > 2 : own === AF_INET6 && family === AF_INET && ipv6Only !== true) continue;
    if (own === AF_INET6 && family === AF_INET) throw invalidValue('batch', `slot ${i} holds an IPv4 address, but this socket is IPv6-only (nothing was sent)`);
    const what = family === own ? 'the address of a sender with no address (it cannot be answered)' : family === AF_UNIX ? 'a Unix address' : `an ${familyName(family)} address`;
    throw invalidValue('batch', `slot ${i} holds ${what}, but this is ${own === AF_UNIX ? 'a Unix datagram socket' : `a UDP (${familyName(own)}) socket`} (nothing was sent)`);
  }
}
