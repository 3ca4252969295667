/**
 * C struct layouts, declared with koffi so that koffi computes sizes and offsets the way the C
 * compiler does, and exported as plain numbers that `lib/` uses with a DataView on a reusable
 * Uint8Array (2x cheaper than koffi's JS-object structs on the hot path, see design §3).
 *
 * The one ABI difference between the supported architectures is `struct epoll_event`: glibc
 * declares it `__attribute__((packed))` on x86_64 (12 bytes, data at offset 4) but not on
 * aarch64 (16 bytes, data at offset 8).
 */
import koffi, { type TypeObject } from 'koffi';

/** The architectures whose ABI this file describes. */
export const SUPPORTED_ARCHES: readonly string[] = ['x64', 'arm64'];

if (process.platform !== 'linux' || !SUPPORTED_ARCHES.includes(process.arch)) {
  throw new Error(
    `m-socket supports Linux on ${SUPPORTED_ARCHES.join(' and ')}; ` +
      `this is ${process.platform} on ${process.arch}`,
  );
}

const u8 = (n: number) => koffi.array('uint8_t', n);

/** struct sockaddr_in (<netinet/in.h>): port and address in network byte order. */
export const SockaddrIn = koffi.struct({
  sin_family: 'uint16_t',
  sin_port: 'uint16_t',
  sin_addr: 'uint32_t',
  sin_zero: u8(8),
});

/** struct sockaddr_in6. */
export const SockaddrIn6 = koffi.struct({
  sin6_family: 'uint16_t',
  sin6_port: 'uint16_t',
  sin6_flowinfo: 'uint32_t',
  sin6_addr: u8(16),
  sin6_scope_id: 'uint32_t',
});

/** struct sockaddr_un. `sun_path` is bytes, not chars: abstract names start with a NUL. */
export const SockaddrUn = koffi.struct({
  sun_family: 'uint16_t',
  sun_path: u8(108),
});

/** struct sockaddr_storage: big enough and aligned for every address family. */
export const SockaddrStorage = koffi.struct({
  ss_family: 'uint16_t',
  __ss_padding: u8(118),
  __ss_align: 'uint64_t',
});

/** struct epoll_event: packed on x86_64 only. */
export const EpollEvent =
  process.arch === 'x64'
    ? koffi.pack({ events: 'uint32_t', data: 'uint64_t' })
    : koffi.struct({ events: 'uint32_t', data: 'uint64_t' });

/** struct addrinfo (<netdb.h>). */
export const AddrInfo = koffi.struct({
  ai_flags: 'int',
  ai_family: 'int',
  ai_socktype: 'int',
  ai_protocol: 'int',
  ai_addrlen: 'uint32_t',
  ai_addr: 'void *',
  ai_canonname: 'void *',
  ai_next: 'void *',
});

/** struct linger (SO_LINGER). */
export const Linger = koffi.struct({ l_onoff: 'int', l_linger: 'int' });

/** struct iovec (readv/writev/sendmsg). */
export const IoVec = koffi.struct({ iov_base: 'void *', iov_len: 'size_t' });

/** struct pollfd (poll(2)). */
export const PollFd = koffi.struct({ fd: 'int', events: 'int16_t', revents: 'int16_t' });

/** struct msghdr (sendmsg/recvmsg). */
export const MsgHdr = koffi.struct({
  msg_name: 'void *',
  msg_namelen: 'uint32_t',
  msg_iov: 'void *',
  msg_iovlen: 'size_t',
  msg_control: 'void *',
  msg_controllen: 'size_t',
  msg_flags: 'int',
});

/** struct mmsghdr (recvmmsg/sendmmsg): a msghdr and the byte count the kernel fills in. */
export const MmsgHdr = koffi.struct({ msg_hdr: MsgHdr, msg_len: 'uint32_t' });

/** struct ip_mreqn (IP_ADD_MEMBERSHIP): group, local address, interface index. */
export const IpMreqn = koffi.struct({ imr_multiaddr: 'uint32_t', imr_address: 'uint32_t', imr_ifindex: 'int' });

/** struct ipv6_mreq (IPV6_JOIN_GROUP): group and interface index. */
export const Ipv6Mreq = koffi.struct({ ipv6mr_multiaddr: u8(16), ipv6mr_interface: 'uint32_t' });

/** struct in_pktinfo (IP_PKTINFO): the interface and the local address a datagram came to / leaves from. */
export const InPktinfo = koffi.struct({ ipi_ifindex: 'int', ipi_spec_dst: 'uint32_t', ipi_addr: 'uint32_t' });

/** struct in6_pktinfo (IPV6_PKTINFO). */
export const In6Pktinfo = koffi.struct({ ipi6_addr: u8(16), ipi6_ifindex: 'uint32_t' });

/** struct sock_extended_err (<linux/errqueue.h>): an error from the error queue (IP_RECVERR). */
export const SockExtendedErr = koffi.struct({
  ee_errno: 'uint32_t',
  ee_origin: 'uint8_t',
  ee_type: 'uint8_t',
  ee_code: 'uint8_t',
  ee_pad: 'uint8_t',
  ee_info: 'uint32_t',
  ee_data: 'uint32_t',
});

/** struct timespec (SCM_TIMESTAMPNS), 64-bit time on both supported ABIs. */
export const Timespec = koffi.struct({ tv_sec: 'int64_t', tv_nsec: 'int64_t' });

/** struct cmsghdr: a control message header; its data follows at CMSG_LEN(0). */
export const CmsgHdr = koffi.struct({ cmsg_len: 'size_t', cmsg_level: 'int', cmsg_type: 'int' });

/** struct ucred (SO_PEERCRED). */
export const UCred = koffi.struct({ pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });

/** struct io_sqring_offsets (<linux/io_uring.h>): where the SQ ring's fields lie in its mapping. */
export const IoSqringOffsets = koffi.struct({
  head: 'uint32_t',
  tail: 'uint32_t',
  ring_mask: 'uint32_t',
  ring_entries: 'uint32_t',
  flags: 'uint32_t',
  dropped: 'uint32_t',
  array: 'uint32_t',
  resv1: 'uint32_t',
  resv2: 'uint64_t',
});

/** struct io_cqring_offsets: where the CQ ring's fields lie in its mapping. */
export const IoCqringOffsets = koffi.struct({
  head: 'uint32_t',
  tail: 'uint32_t',
  ring_mask: 'uint32_t',
  ring_entries: 'uint32_t',
  overflow: 'uint32_t',
  cqes: 'uint32_t',
  flags: 'uint32_t',
  resv1: 'uint32_t',
  resv2: 'uint64_t',
});

/**
 * Where `user_addr` lies in io_sqring_offsets and io_cqring_offsets (the same place in both):
 * the application's memory for the rings under IORING_SETUP_NO_MMAP (Linux 6.5). Headers before
 * 6.5 call the field `resv2`, so it is not in OFFSETOF (whose names the layout test looks up).
 */
export const RING_USER_ADDR_AT = koffi.offsetof(IoSqringOffsets, 'resv2');

/** struct io_uring_params: what io_uring_setup takes and fills in. */
export const IoUringParams = koffi.struct({
  sq_entries: 'uint32_t',
  cq_entries: 'uint32_t',
  flags: 'uint32_t',
  sq_thread_cpu: 'uint32_t',
  sq_thread_idle: 'uint32_t',
  features: 'uint32_t',
  wq_fd: 'uint32_t',
  resv: koffi.array('uint32_t', 3),
  sq_off: IoSqringOffsets,
  cq_off: IoCqringOffsets,
});

/**
 * struct io_uring_sqe, 64 bytes. The C struct is mostly unions; each is declared here by the
 * member the backend writes (`off`, `addr`, `poll32_events`, `buf_group`), which is all the
 * layout test needs to compare offsets with the header's.
 */
export const IoUringSqe = koffi.struct({
  opcode: 'uint8_t',
  flags: 'uint8_t',
  ioprio: 'uint16_t',
  fd: 'int32_t',
  off: 'uint64_t',
  addr: 'uint64_t',
  len: 'uint32_t',
  poll32_events: 'uint32_t',
  user_data: 'uint64_t',
  buf_group: 'uint16_t',
  personality: 'uint16_t',
  file_index: 'uint32_t',
  addr3: 'uint64_t',
  __pad2: 'uint64_t',
});

/** struct io_uring_cqe (without CQE32): user_data, res, flags. */
export const IoUringCqe = koffi.struct({ user_data: 'uint64_t', res: 'int32_t', flags: 'uint32_t' });

/** struct io_uring_getevents_arg (IORING_ENTER_EXT_ARG): a signal mask and a timeout, by address. */
export const IoUringGeteventsArg = koffi.struct({ sigmask: 'uint64_t', sigmask_sz: 'uint32_t', pad: 'uint32_t', ts: 'uint64_t' });

/** struct io_uring_buf: one entry of a provided-buffer ring. */
export const IoUringBuf = koffi.struct({ addr: 'uint64_t', len: 'uint32_t', bid: 'uint16_t', resv: 'uint16_t' });

const off = (type: TypeObject, field: string) => koffi.offsetof(type, field);

/** Sizes in bytes, as `sizeof` gives them in C on this architecture. */
export const SIZEOF = Object.freeze({
  sockaddr_in: koffi.sizeof(SockaddrIn),
  sockaddr_in6: koffi.sizeof(SockaddrIn6),
  sockaddr_un: koffi.sizeof(SockaddrUn),
  sockaddr_storage: koffi.sizeof(SockaddrStorage),
  epoll_event: koffi.sizeof(EpollEvent),
  addrinfo: koffi.sizeof(AddrInfo),
  linger: koffi.sizeof(Linger),
  iovec: koffi.sizeof(IoVec),
  pollfd: koffi.sizeof(PollFd),
  msghdr: koffi.sizeof(MsgHdr),
  mmsghdr: koffi.sizeof(MmsgHdr),
  ip_mreqn: koffi.sizeof(IpMreqn),
  ipv6_mreq: koffi.sizeof(Ipv6Mreq),
  in_pktinfo: koffi.sizeof(InPktinfo),
  in6_pktinfo: koffi.sizeof(In6Pktinfo),
  timespec: koffi.sizeof(Timespec),
  sock_extended_err: koffi.sizeof(SockExtendedErr),
  cmsghdr: koffi.sizeof(CmsgHdr),
  ucred: koffi.sizeof(UCred),
  io_sqring_offsets: koffi.sizeof(IoSqringOffsets),
  io_cqring_offsets: koffi.sizeof(IoCqringOffsets),
  io_uring_params: koffi.sizeof(IoUringParams),
  io_uring_sqe: koffi.sizeof(IoUringSqe),
  io_uring_cqe: koffi.sizeof(IoUringCqe),
  io_uring_getevents_arg: koffi.sizeof(IoUringGeteventsArg),
  io_uring_buf: koffi.sizeof(IoUringBuf),
  pointer: koffi.sizeof('void *'),
  int: koffi.sizeof('int'),
});

/** Field offsets the library reads or writes, as `offsetof` gives them in C. */
export const OFFSETOF = Object.freeze({
  sockaddr_in: { family: off(SockaddrIn, 'sin_family'), port: off(SockaddrIn, 'sin_port'), addr: off(SockaddrIn, 'sin_addr') },
  sockaddr_in6: {
    family: off(SockaddrIn6, 'sin6_family'),
    port: off(SockaddrIn6, 'sin6_port'),
    flowinfo: off(SockaddrIn6, 'sin6_flowinfo'),
    addr: off(SockaddrIn6, 'sin6_addr'),
    scope_id: off(SockaddrIn6, 'sin6_scope_id'),
  },
  sockaddr_un: { family: off(SockaddrUn, 'sun_family'), path: off(SockaddrUn, 'sun_path') },
  epoll_event: { events: off(EpollEvent, 'events'), data: off(EpollEvent, 'data') },
  addrinfo: {
    flags: off(AddrInfo, 'ai_flags'),
    family: off(AddrInfo, 'ai_family'),
    socktype: off(AddrInfo, 'ai_socktype'),
    protocol: off(AddrInfo, 'ai_protocol'),
    addrlen: off(AddrInfo, 'ai_addrlen'),
    addr: off(AddrInfo, 'ai_addr'),
    canonname: off(AddrInfo, 'ai_canonname'),
    next: off(AddrInfo, 'ai_next'),
  },
  linger: { onoff: off(Linger, 'l_onoff'), linger: off(Linger, 'l_linger') },
  iovec: { base: off(IoVec, 'iov_base'), len: off(IoVec, 'iov_len') },
  pollfd: { fd: off(PollFd, 'fd'), events: off(PollFd, 'events'), revents: off(PollFd, 'revents') },
  msghdr: {
    name: off(MsgHdr, 'msg_name'),
    namelen: off(MsgHdr, 'msg_namelen'),
    iov: off(MsgHdr, 'msg_iov'),
    iovlen: off(MsgHdr, 'msg_iovlen'),
    control: off(MsgHdr, 'msg_control'),
    controllen: off(MsgHdr, 'msg_controllen'),
    flags: off(MsgHdr, 'msg_flags'),
  },
  mmsghdr: { hdr: off(MmsgHdr, 'msg_hdr'), len: off(MmsgHdr, 'msg_len') },
  ip_mreqn: { multiaddr: off(IpMreqn, 'imr_multiaddr'), address: off(IpMreqn, 'imr_address'), ifindex: off(IpMreqn, 'imr_ifindex') },
  ipv6_mreq: { multiaddr: off(Ipv6Mreq, 'ipv6mr_multiaddr'), interface: off(Ipv6Mreq, 'ipv6mr_interface') },
  in_pktinfo: { ifindex: off(InPktinfo, 'ipi_ifindex'), spec_dst: off(InPktinfo, 'ipi_spec_dst'), addr: off(InPktinfo, 'ipi_addr') },
  in6_pktinfo: { addr: off(In6Pktinfo, 'ipi6_addr'), ifindex: off(In6Pktinfo, 'ipi6_ifindex') },
  timespec: { sec: off(Timespec, 'tv_sec'), nsec: off(Timespec, 'tv_nsec') },
  sock_extended_err: {
    errno: off(SockExtendedErr, 'ee_errno'),
    origin: off(SockExtendedErr, 'ee_origin'),
    type: off(SockExtendedErr, 'ee_type'),
    code: off(SockExtendedErr, 'ee_code'),
  },
  cmsghdr: { len: off(CmsgHdr, 'cmsg_len'), level: off(CmsgHdr, 'cmsg_level'), type: off(CmsgHdr, 'cmsg_type') },
  ucred: { pid: off(UCred, 'pid'), uid: off(UCred, 'uid'), gid: off(UCred, 'gid') },
  io_sqring_offsets: {
    head: off(IoSqringOffsets, 'head'),
    tail: off(IoSqringOffsets, 'tail'),
    ring_mask: off(IoSqringOffsets, 'ring_mask'),
    ring_entries: off(IoSqringOffsets, 'ring_entries'),
    flags: off(IoSqringOffsets, 'flags'),
    dropped: off(IoSqringOffsets, 'dropped'),
    array: off(IoSqringOffsets, 'array'),
  },
  io_cqring_offsets: {
    head: off(IoCqringOffsets, 'head'),
    tail: off(IoCqringOffsets, 'tail'),
    ring_mask: off(IoCqringOffsets, 'ring_mask'),
    ring_entries: off(IoCqringOffsets, 'ring_entries'),
    overflow: off(IoCqringOffsets, 'overflow'),
    cqes: off(IoCqringOffsets, 'cqes'),
    flags: off(IoCqringOffsets, 'flags'),
  },
  io_uring_params: {
    sq_entries: off(IoUringParams, 'sq_entries'),
    cq_entries: off(IoUringParams, 'cq_entries'),
    flags: off(IoUringParams, 'flags'),
    features: off(IoUringParams, 'features'),
    sq_off: off(IoUringParams, 'sq_off'),
    cq_off: off(IoUringParams, 'cq_off'),
  },
  io_uring_sqe: {
    opcode: off(IoUringSqe, 'opcode'),
    flags: off(IoUringSqe, 'flags'),
    ioprio: off(IoUringSqe, 'ioprio'),
    fd: off(IoUringSqe, 'fd'),
    off: off(IoUringSqe, 'off'),
    addr: off(IoUringSqe, 'addr'),
    len: off(IoUringSqe, 'len'),
    poll32_events: off(IoUringSqe, 'poll32_events'),
    user_data: off(IoUringSqe, 'user_data'),
    buf_group: off(IoUringSqe, 'buf_group'),
  },
  io_uring_cqe: { user_data: off(IoUringCqe, 'user_data'), res: off(IoUringCqe, 'res'), flags: off(IoUringCqe, 'flags') },
  io_uring_getevents_arg: {
    sigmask: off(IoUringGeteventsArg, 'sigmask'),
    sigmask_sz: off(IoUringGeteventsArg, 'sigmask_sz'),
    ts: off(IoUringGeteventsArg, 'ts'),
  },
  io_uring_buf: { addr: off(IoUringBuf, 'addr'), len: off(IoUringBuf, 'len'), bid: off(IoUringBuf, 'bid') },
});

/** CMSG_ALIGN: control messages are aligned to `size_t` (8 bytes on both supported ABIs). */
export function cmsgAlign(length: number): number {
  const a = SIZEOF.pointer;
  return (length + a - 1) & ~(a - 1);
}
/** CMSG_LEN(n): header plus n data bytes, the value of cmsg_len. */
export function cmsgLen(dataLength: number): number {
  return cmsgAlign(SIZEOF.cmsghdr) + dataLength;
}
/** CMSG_SPACE(n): bytes one control message with n data bytes takes in the control buffer. */
export function cmsgSpace(dataLength: number): number {
  return cmsgAlign(SIZEOF.cmsghdr) + cmsgAlign(dataLength);
}
