/**
 * Where a datagram goes, as the kernel wants it: a sockaddr of the socket's own family, from an
 * address object, `{ host, port }`, `{ path }`, or the receipt of a datagram to answer (whose
 * sockaddr bytes are copied as they came: nothing decoded).
 */
import { AF_INET6, AF_UNIX } from '../../ffi/constants.ts';
import { inetAddress, unixAddress, type InetAddress, type SocketAddress } from '../core/address.ts';
import { invalidType, invalidValue, outOfRange } from '../core/errors.ts';
import { encodeSockaddr } from '../core/sockaddr.ts';
import { DatagramReceipt } from './receipt.ts';

/** Where a datagram goes: an address (as `receiveFrom` reports them), `{ host, port }`, `{ path }`, or the receipt of a datagram to answer. */
export type DatagramDestination = SocketAddress | { host: string; port: number } | { path: string } | DatagramReceipt;

/** `'IPv4'`, `'IPv6'` or `'unix'` for an address family constant. */
export function familyName(family: number): 'IPv4' | 'IPv6' | 'unix' {
  return family === AF_INET6 ? 'IPv6' : family === AF_UNIX ? 'unix' : 'IPv4';
}

/**
 * Encodes a destination for a socket of `family` into `into` and returns its length; refuses an
 * address of the wrong family, naming the argument. An IPv4 address on a dual-stack IPv6 socket
 * becomes IPv4-mapped, as the kernel wants it.
 */
export function encodeDestination(to: DatagramDestination, family: number, ipv6Only: boolean | null, into: Uint8Array, name: string): number {
  if (to instanceof DatagramReceipt) {
    const length = to._nameLength[0];
    if (length <= 2) throw invalidValue(name, 'is a datagram from a sender with no address: it cannot be answered');
    into.set(to._name.subarray(0, length));
    return length;
  }
  const address = addressOf(to, name);
  if (family === AF_UNIX) {
    if (address.family !== 'unix') throw invalidValue(name, `is an ${address.family} address, but this is a Unix datagram socket`);
    return encodeSockaddr(address, into, name);
  }
  if (address.family === 'unix') throw invalidValue(name, `is a Unix address, but this is a UDP (${familyName(family)}) socket`);
  if (family === AF_INET6 && address.family === 'IPv4') {
    // A dual-stack IPv6 socket reaches IPv4 peers through IPv4-mapped addresses, as the kernel reports them.
    if (ipv6Only === true) throw invalidValue(name, 'is an IPv4 address, but this socket is IPv6-only');
    if (address.port === 0) throw portOutOfRange(`${name}.port`, 0);
    return encodeSockaddr({ family: 'IPv6', address: `::ffff:${address.address}`, port: address.port }, into, name);
  }
  if (family !== AF_INET6 && address.family === 'IPv6') throw invalidValue(name, 'is an IPv6 address, but this is an IPv4 socket');
  if (address.port === 0) throw portOutOfRange(`${name}.port`, 0);
  return encodeSockaddr(address, into, name);
}

/** The address a destination names (`{ host, port }` and `{ path }` checked and parsed). */
export function addressOf(to: Exclude<DatagramDestination, DatagramReceipt>, name = 'to'): SocketAddress {
  if (to === null || typeof to !== 'object') throw invalidType(name, 'an address ({ host, port }, { path }, or a SocketAddress)', to);
  if ('family' in to && (to.family === 'IPv4' || to.family === 'IPv6' || to.family === 'unix')) {
    // A SocketAddress; from plain JavaScript, `{ family, host, port }` has no `address`: say so.
    if (to.family !== 'unix' && typeof (to as { address?: unknown }).address !== 'string') {
      throw invalidType(`${name}.address`, `of type string (an ${to.family} address; use { host, port } for a host)`, (to as { address?: unknown }).address);
    }
    return to as SocketAddress;
  }
  if ('path' in to && to.path !== undefined) return unixAddress(to.path, `${name}.path`);
  const inet = to as { host?: unknown; port?: unknown };
  // A destination's port is 1 to 65535 (one range named for 0 and 70000 alike: found from outside).
  const port = inet.port;
  if (typeof port === 'number' && Number.isInteger(port) && (port < 1 || port > 65535)) throw portOutOfRange(`${name}.port`, port);
  return inetAddress(inet.host, inet.port, name) as InetAddress;
}

function portOutOfRange(name: string, port: number): Error {
  return outOfRange(name, 'an integer >= 1 and <= 65535 (nothing can receive at port 0)', port);
}
