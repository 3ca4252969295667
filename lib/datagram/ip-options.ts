/**
 * UDP's IP options as functions of an fd and its family: broadcast, TTL / hop limit, multicast
 * TTL, loopback and interface, group membership, and the switches for per-datagram metadata. The level and name differ between
 * IPv4 and IPv6 (IP_MULTICAST_TTL vs IPV6_MULTICAST_HOPS...): callers say which family the socket
 * is, and these pick. The names follow node:dgram's methods, which Node users know.
 */
import {
  AF_INET6, IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP, IP_MULTICAST_IF, IP_MULTICAST_LOOP, IP_MULTICAST_TTL, IP_TTL, IPPROTO_IP,
  IPPROTO_IPV6, IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_LOOP, IPV6_UNICAST_HOPS,
  SO_BROADCAST, SOL_SOCKET, AF_UNIX, IP_PKTINFO, IP_RECVTOS, IPV6_RECVPKTINFO, IPV6_RECVTCLASS, SO_TIMESTAMPNS, SOL_UDP, UDP_GRO,
} from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { ifNameToIndex, sys } from '../../ffi/syscall.ts';
import { parseIPv4, parseIPv6 } from '../core/address.ts';
import { checkInteger, invalidType, invalidValue } from '../core/errors.ts';

function setInt(fd: number, level: number, name: number, value: number): void {
  sys.setsockopt(fd, level, name, new Int32Array([value]), 4);
}

function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

/** SO_BROADCAST: allow sending to a broadcast address. */
export function setBroadcast(fd: number, on: boolean): void {
  setInt(fd, SOL_SOCKET, SO_BROADCAST, checkBoolean('on', on) ? 1 : 0);
}

/** IP_TTL / IPV6_UNICAST_HOPS (1..255). */
export function setTtl(fd: number, family: number, ttl: number): void {
  checkInteger('ttl', ttl, 1, 255);
  if (family === AF_INET6) setInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
  else setInt(fd, IPPROTO_IP, IP_TTL, ttl);
}

/** IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (0..255; 1 by default: the local network only). */
export function setMulticastTtl(fd: number, family: number, ttl: number): void {
  checkInteger('ttl', ttl, 0, 255);
  if (family === AF_INET6) setInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl);
  else setInt(fd, IPPROTO_IP, IP_MULTICAST_TTL, ttl);
}

/** IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP: whether this host's own members get what it sends. */
export function setMulticastLoopback(fd: number, family: number, on: boolean): void {
  const value = checkBoolean('on', on) ? 1 : 0;
  if (family === AF_INET6) setInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, value);
  else setInt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, value);
}

/** An interface given by name (`'lo'`, `'eth0'`) or index, as its index. */
function interfaceIndex(name: string, iface: unknown): number {
  if (typeof iface === 'number') return checkInteger(name, iface, 0, 2 ** 31 - 1);
  if (typeof iface !== 'string' || iface === '') throw invalidType(name, 'an interface name or index', iface);
  return ifNameToIndex(iface);
}

/**
 * IP_MULTICAST_IF / IPV6_MULTICAST_IF: where multicast sends leave. IPv4 takes a local address
 * (`'127.0.0.1'`) or an interface name; IPv6 an interface name or index.
 */
export function setMulticastInterface(fd: number, family: number, iface: string | number): void {
  if (family === AF_INET6) {
    setInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, interfaceIndex('iface', iface));
    return;
  }
  sys.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, ipMreqn(null, iface), SIZEOF.ip_mreqn);
}

/** struct ip_mreqn for `group` (or none) and an interface given by IPv4 address, name or index. */
function ipMreqn(group: Uint8Array | null, iface: unknown): Uint8Array {
  const m = new Uint8Array(SIZEOF.ip_mreqn);
  if (group !== null) m.set(group, OFFSETOF.ip_mreqn.multiaddr);
  if (iface === undefined) return m;
  const local = typeof iface === 'string' ? parseIPv4(iface) : null;
  if (local !== null) m.set(local, OFFSETOF.ip_mreqn.address);
  else new DataView(m.buffer).setInt32(OFFSETOF.ip_mreqn.ifindex, interfaceIndex('iface', iface), true);
  return m;
}

/** Joins (`join` true) or leaves the multicast `group` on `iface` (default: the kernel's choice by route). */
export function membership(fd: number, family: number, join: boolean, group: string, iface?: string | number): void {
  if (typeof group !== 'string') throw invalidType('group', 'of type string', group);
  const v4 = parseIPv4(group);
  if (v4 !== null) {
    if (v4[0] < 224 || v4[0] > 239) throw invalidValue('group', 'is not an IPv4 multicast address (224.0.0.0/4)', group);
    // A dual-stack IPv6 socket takes IPv4 memberships too (Linux), for its IPv4-mapped traffic.
    sys.setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, ipMreqn(v4, iface), SIZEOF.ip_mreqn);
    return;
  }
  const v6 = parseIPv6(group);
  if (v6 === null || v6.bytes[0] !== 0xff) throw invalidValue('group', 'is not a multicast address (224.0.0.0/4 or ff00::/8)', group);
  if (family !== AF_INET6) throw invalidValue('group', 'is an IPv6 group, but this is an IPv4 socket', group);
  const m = new Uint8Array(SIZEOF.ipv6_mreq);
  m.set(v6.bytes, OFFSETOF.ipv6_mreq.multiaddr);
  const index = iface === undefined ? (v6.zone === null ? 0 : ifNameToIndex(v6.zone)) : interfaceIndex('iface', iface);
  new DataView(m.buffer).setUint32(OFFSETOF.ipv6_mreq.interface, index, true);
  sys.setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, m, SIZEOF.ipv6_mreq);
}

/** What {@link DatagramSocket.requestMetadata} asks the kernel to attach to each received datagram. */
export interface DatagramMetadataOptions {
  /** The local address and interface each datagram came to (IP_PKTINFO / IPV6_RECVPKTINFO): `batch.destination(i)`. */
  destination?: boolean | undefined;
  /** The TOS byte or traffic class (IP_RECVTOS / IPV6_RECVTCLASS), ECN bits included: `batch.tos(i)`. */
  tos?: boolean | undefined;
  /** The kernel's receive time, in ns (SO_TIMESTAMPNS): `batch.timestamp(i)`. */
  timestamp?: boolean | undefined;
  /** Let the kernel join equal segments of a flow into one slot (UDP_GRO): `batch.segmentSize(i)`. Use 64 KiB slots. */
  gro?: boolean | undefined;
}

/**
 * Turns per-datagram metadata on or off on `fd` (each key given), with the options of the
 * socket's family; a dual-stack IPv6 socket gets the IPv4 forms too, for its IPv4 peers.
 */
export function requestMetadata(fd: number, family: number, ipv6Only: boolean | null, options: DatagramMetadataOptions): void {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  for (const key of Object.keys(options)) {
    if (!['destination', 'tos', 'timestamp', 'gro'].includes(key)) throw invalidValue(`options.${key}`, "is not a metadata option (destination, tos, timestamp, gro)", (options as Record<string, unknown>)[key]);
  }
  const on = (key: keyof DatagramMetadataOptions): number | null => {
    const value = options[key];
    if (value === undefined) return null;
    if (typeof value !== 'boolean') throw invalidValue(`options.${key}`, 'must be a boolean', value);
    return value ? 1 : 0;
  };
  const set = (level: number, name: number, value: number | null) => {
    if (value !== null) sys.setsockopt(fd, level, name, new Int32Array([value]), 4);
  };
  const [destination, tos, timestamp, gro] = [on('destination'), on('tos'), on('timestamp'), on('gro')];
  if (family === AF_UNIX && (destination !== null || tos !== null || gro !== null)) {
    throw invalidValue('options', 'asks for IP metadata, but this is a Unix datagram socket (timestamp only)');
  }
  if (family === AF_INET6) {
    set(IPPROTO_IPV6, IPV6_RECVPKTINFO, destination);
    set(IPPROTO_IPV6, IPV6_RECVTCLASS, tos);
    // IPv4 datagrams that reach a dual-stack socket carry the IPv4 forms.
    if (ipv6Only !== true) {
      set(IPPROTO_IP, IP_PKTINFO, destination);
      set(IPPROTO_IP, IP_RECVTOS, tos);
    }
  } else if (family !== AF_UNIX) {
    set(IPPROTO_IP, IP_PKTINFO, destination);
    set(IPPROTO_IP, IP_RECVTOS, tos);
  }
  set(SOL_SOCKET, SO_TIMESTAMPNS, timestamp);
  set(SOL_UDP, UDP_GRO, gro);
}
