/**
 * Small bridges between addresses and system calls: which AF_* a SocketAddress needs, reading
 * getsockname/getpeername, and the details a SocketError should name.
 */
import { AF_INET, AF_INET6, AF_UNIX } from '../ffi/constants.ts';
import { SIZEOF } from '../ffi/layouts.ts';
import type { ErrorDetails } from '../ffi/syscall.ts';
import { decodeSockaddr, type SocketAddress } from './address.ts';

/** The address family constant for an address. */
export function familyOf(address: SocketAddress): number {
  return address.family === 'IPv4' ? AF_INET : address.family === 'IPv6' ? AF_INET6 : AF_UNIX;
}

/** Calls getsockname or getpeername on fd and decodes the result. */
export function readAddress(call: (fd: number, addr: Uint8Array, length: Uint32Array) => number, fd: number): SocketAddress {
  const bytes = new Uint8Array(SIZEOF.sockaddr_storage);
  const length = new Uint32Array([bytes.byteLength]);
  call(fd, bytes, length);
  return decodeSockaddr(bytes, length[0]);
}

/** What an error about this address should name. */
export function errorDetails(address: SocketAddress): ErrorDetails {
  return address.family === 'unix' ? { path: address.path } : { address: address.address, port: address.port };
}
