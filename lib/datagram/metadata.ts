/**
 * Per-datagram metadata as control messages: what the kernel attaches to a received datagram
 * when asked (the local address and interface it came to, IP_PKTINFO / IPV6_PKTINFO; its TOS or
 * traffic class; a kernel timestamp, SCM_TIMESTAMPNS; the segment size of coalesced segments,
 * UDP_GRO), and what a send may carry (the source address, IP_PKTINFO; a GSO segment size,
 * UDP_SEGMENT). Read with a DataView over the batch's block, at a slot's control area; nothing
 * here allocates but the answers asked for.
 */
import {
  IP_PKTINFO, IP_TOS, IPPROTO_IP, IPPROTO_IPV6, IPV6_PKTINFO, IPV6_TCLASS, SCM_TIMESTAMPNS, SOL_SOCKET, SOL_UDP, UDP_GRO,
  UDP_SEGMENT,
} from '../../ffi/constants.ts';
import { cmsgAlign, cmsgLen, cmsgSpace, OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { formatIPv4, formatIPv6 } from '../core/address.ts';

/** Room for every control message a receive may carry: pktinfo (v6), TOS/TCLASS, timestamp, GRO. */
export const RECEIVE_CONTROL = 256;
/** Room for a send's control messages: a source address (in6_pktinfo) and a segment size. */
export const SEND_CONTROL = cmsgSpace(SIZEOF.in6_pktinfo) + cmsgSpace(2);

/** Where a datagram arrived: the local address it was sent to, and the interface. */
export interface DatagramDestinationInfo {
  /** The local address the datagram was sent to (a multicast or broadcast address, or one of ours). */
  address: string;
  /** The index of the interface it came in on. */
  interfaceIndex: number;
}

const CMSG = OFFSETOF.cmsghdr;
const HEADER = cmsgLen(0);

/**
 * Finds the control message (level, type) among `length` bytes at `at`; returns the offset of its
 * data, or -1. Walks the way CMSG_NXTHDR does, and stops at anything malformed.
 */
export function findControl(view: DataView, at: number, length: number, level: number, type: number): number {
  const end = at + length;
  for (let p = at; p + HEADER <= end; ) {
    const len = Number(view.getBigUint64(p + CMSG.len, true));
    if (len < HEADER || p + len > end) return -1;
    if (view.getInt32(p + CMSG.level, true) === level && view.getInt32(p + CMSG.type, true) === type) return p + HEADER;
    p += cmsgAlign(len);
  }
  return -1;
}

export function destinationOf(view: DataView, bytes: Uint8Array, at: number, length: number): DatagramDestinationInfo | null {
  const v4 = findControl(view, at, length, IPPROTO_IP, IP_PKTINFO);
  if (v4 >= 0) {
    return { address: formatIPv4(bytes, v4 + OFFSETOF.in_pktinfo.addr), interfaceIndex: view.getInt32(v4 + OFFSETOF.in_pktinfo.ifindex, true) };
  }
  const v6 = findControl(view, at, length, IPPROTO_IPV6, IPV6_PKTINFO);
  if (v6 >= 0) {
    return { address: formatIPv6(bytes, v6 + OFFSETOF.in6_pktinfo.addr), interfaceIndex: view.getUint32(v6 + OFFSETOF.in6_pktinfo.ifindex, true) };
  }
  return null;
}

/** The TOS byte (IPv4) or traffic class (IPv6), or -1 when none came. */
export function tosOf(view: DataView, at: number, length: number): number {
  const v4 = findControl(view, at, length, IPPROTO_IP, IP_TOS);
  if (v4 >= 0) return view.getUint8(v4);
  const v6 = findControl(view, at, length, IPPROTO_IPV6, IPV6_TCLASS);
  return v6 >= 0 ? view.getInt32(v6, true) : -1;
}

/** The kernel's receive timestamp in nanoseconds since the epoch, or null. */
export function timestampOf(view: DataView, at: number, length: number): bigint | null {
  const p = findControl(view, at, length, SOL_SOCKET, SCM_TIMESTAMPNS);
  if (p < 0) return null;
  return view.getBigInt64(p + OFFSETOF.timespec.sec, true) * 1_000_000_000n + view.getBigInt64(p + OFFSETOF.timespec.nsec, true);
}

/** The size of each coalesced segment (UDP_GRO), or 0 when the datagram is a single one. */
export function segmentSizeOf(view: DataView, at: number, length: number): number {
  const p = findControl(view, at, length, SOL_UDP, UDP_GRO);
  return p < 0 ? 0 : view.getInt32(p, true);
}

function writeHeader(view: DataView, p: number, level: number, type: number, dataLength: number): number {
  view.setBigUint64(p + CMSG.len, BigInt(cmsgLen(dataLength)), true);
  view.setInt32(p + CMSG.level, level, true);
  view.setInt32(p + CMSG.type, type, true);
  return p + HEADER;
}

/**
 * Writes a send's control messages at `at` (zeroed first): the source address (4 or 16 bytes,
 * or null) and a GSO segment size (0: none). Returns the control length to give the kernel.
 */
export function writeSendControl(view: DataView, bytes: Uint8Array, at: number, source: Uint8Array | null, segmentSize: number): number {
  bytes.fill(0, at, at + SEND_CONTROL);
  let p = at;
  if (source !== null && source.byteLength === 4) {
    const data = writeHeader(view, p, IPPROTO_IP, IP_PKTINFO, SIZEOF.in_pktinfo);
    bytes.set(source, data + OFFSETOF.in_pktinfo.spec_dst);
    p += cmsgSpace(SIZEOF.in_pktinfo);
  } else if (source !== null) {
    const data = writeHeader(view, p, IPPROTO_IPV6, IPV6_PKTINFO, SIZEOF.in6_pktinfo);
    bytes.set(source, data + OFFSETOF.in6_pktinfo.addr);
    p += cmsgSpace(SIZEOF.in6_pktinfo);
  }
  if (segmentSize > 0) {
    view.setUint16(writeHeader(view, p, SOL_UDP, UDP_SEGMENT, 2), segmentSize, true);
    p += cmsgSpace(2);
  }
  return p - at;
}
