/**
 * Linux constants for sockets, epoll, poll, fcntl and getaddrinfo.
 *
 * Values are the asm-generic ones, shared by x86_64 and aarch64 (the two architectures
 * `ffi/layouts.ts` supports). They are immutable declarations: nothing here is ever assigned.
 * Checked against the C headers by `test/ffi-layouts.test.ts` when a C compiler is present.
 */

// Address families (<sys/socket.h>)
export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_VSOCK = 40;

// Socket types and type flags
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

// Socket-level options (asm-generic/socket.h)
export const SOL_SOCKET = 1;
export const SO_DEBUG = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_DONTROUTE = 5;
export const SO_BROADCAST = 6;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_OOBINLINE = 10;
export const SO_LINGER = 13;
export const SO_REUSEPORT = 15;
export const SO_PASSCRED = 16;
export const SO_PEERCRED = 17;
export const SO_RCVLOWAT = 18;
export const SO_SNDLOWAT = 19;
export const SO_ACCEPTCONN = 30;
export const SO_PASSSEC = 34;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
/** SO_TIMESTAMPNS (the 64-bit-time value on both supported ABIs); its control message is SCM_TIMESTAMPNS. */
export const SO_TIMESTAMPNS = 35;
export const SCM_TIMESTAMPNS = 35;
/** Linux 6.5: every read gets an SCM_PIDFD of the sender. Not in older C headers (uapi asm-generic/socket.h). */
export const SO_PASSPIDFD = 76;

// Protocols (<netinet/in.h>)
export const IPPROTO_IP = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;

// TCP options (<netinet/tcp.h>)
export const TCP_NODELAY = 1;
export const TCP_MAXSEG = 2;
export const TCP_CORK = 3;
export const TCP_KEEPIDLE = 4;
export const TCP_KEEPINTVL = 5;
export const TCP_KEEPCNT = 6;
export const TCP_INFO = 11;
export const TCP_QUICKACK = 12;
export const TCP_USER_TIMEOUT = 18;
export const TCP_FASTOPEN = 23;

// IPv4 options (<netinet/in.h>)
export const IP_TOS = 1;
export const IP_TTL = 2;
export const IP_PKTINFO = 8;
export const IP_RECVERR = 11;
export const IP_RECVTOS = 13;
export const IP_MULTICAST_IF = 32;
export const IP_MULTICAST_TTL = 33;
export const IP_MULTICAST_LOOP = 34;
export const IP_ADD_MEMBERSHIP = 35;
export const IP_DROP_MEMBERSHIP = 36;

// IPv6 options
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_IF = 17;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_LOOP = 19;
export const IPV6_JOIN_GROUP = 20;
export const IPV6_LEAVE_GROUP = 21;
export const IPV6_RECVERR = 25;
export const IPV6_V6ONLY = 26;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_RECVTCLASS = 66;
export const IPV6_TCLASS = 67;

// UDP options (<netinet/udp.h>, level SOL_UDP = IPPROTO_UDP)
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;

// struct sock_extended_err origins (<linux/errqueue.h>)
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;

// send/recv flags
export const MSG_OOB = 0x1;
export const MSG_PEEK = 0x2;
export const MSG_DONTROUTE = 0x4;
export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_ERRQUEUE = 0x2000;
export const MSG_DONTWAIT = 0x40;
export const MSG_EOR = 0x80;
export const MSG_WAITALL = 0x100;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_MORE = 0x8000;
export const MSG_CMSG_CLOEXEC = 0x40000000;

// Control messages (SOL_SOCKET level, <linux/socket.h>)
export const SCM_RIGHTS = 1;
export const SCM_CREDENTIALS = 2;
export const SCM_SECURITY = 3;
/** Linux 6.5 (glibc 2.39 headers): a pidfd of the sender. */
export const SCM_PIDFD = 4;

// shutdown(2)
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

// epoll(7). EPOLLET is bit 31: written unsigned so that it fits a uint32 field.
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDNORM = 0x040;
export const EPOLLWRNORM = 0x100;
export const EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 0x10000000;
export const EPOLLWAKEUP = 0x20000000;
export const EPOLLONESHOT = 0x40000000;
export const EPOLLET = 0x80000000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;

// poll(2)
export const POLLIN = 0x001;
export const POLLPRI = 0x002;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const POLLRDHUP = 0x2000;

// fcntl(2)
export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const FD_CLOEXEC = 1;

// open(2) flags
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

// eventfd(2)
export const EFD_SEMAPHORE = 1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

// io_uring (<linux/io_uring.h>): the few flags and opcodes the io_uring backend uses.
// Syscall numbers: io_uring came after the generic syscall table was unified, so x86_64 and
// aarch64 share them.
export const SYS_io_uring_setup = 425;
export const SYS_io_uring_enter = 426;
export const SYS_io_uring_register = 427;
export const IORING_SETUP_CQSIZE = 1 << 3;
export const IORING_SETUP_CLAMP = 1 << 4;
export const IORING_SETUP_SUBMIT_ALL = 1 << 7;
export const IORING_SETUP_COOP_TASKRUN = 1 << 8;
export const IORING_SETUP_TASKRUN_FLAG = 1 << 9;
export const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
export const IORING_SETUP_DEFER_TASKRUN = 1 << 13;
/** The rings in memory the application gives (sq_off/cq_off user_addr): Linux 6.5; several pages of it need a newer kernel. */
export const IORING_SETUP_NO_MMAP = 1 << 14;
export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
export const IORING_FEAT_NODROP = 1 << 1;
export const IORING_FEAT_EXT_ARG = 1 << 8;
export const IORING_ENTER_GETEVENTS = 1 << 0;
export const IORING_ENTER_EXT_ARG = 1 << 3;
export const IORING_SQ_CQ_OVERFLOW = 1 << 1;
export const IORING_SQ_TASKRUN = 1 << 2;
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;
export const IORING_POLL_ADD_MULTI = 1 << 0;
export const IORING_ASYNC_CANCEL_ALL = 1 << 0;
export const IORING_ASYNC_CANCEL_ANY = 1 << 2;
export const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;
export const IORING_CQE_F_MORE = 1 << 1;
// Completion-based receive: multishot IORING_OP_RECV into a provided-buffer ring.
export const IORING_CQE_F_BUFFER = 1 << 0;
export const IOSQE_BUFFER_SELECT = 1 << 5;
export const IORING_RECV_MULTISHOT = 1 << 1;
// Completion-based accept: multishot IORING_OP_ACCEPT (its flag goes in the SQE's ioprio).
export const IORING_ACCEPT_MULTISHOT = 1 << 0;
// Enums in the header (no #define, so test/io-uring.test.ts checks them against C by itself).
export const IORING_OP_NOP = 0;
export const IORING_OP_POLL_ADD = 6;
export const IORING_OP_POLL_REMOVE = 7;
export const IORING_OP_ACCEPT = 13;
export const IORING_OP_ASYNC_CANCEL = 14;
export const IORING_REGISTER_EVENTFD = 4;
export const IORING_OP_SEND = 26;
export const IORING_OP_RECV = 27;
export const IORING_REGISTER_PBUF_RING = 22;
export const IORING_UNREGISTER_PBUF_RING = 23;
/** A CQE's buffer id sits above this bit (IORING_CQE_BUFFER_SHIFT, an enum in the header). */
export const IORING_CQE_BUFFER_SHIFT = 16;

// mmap(2), for the io_uring rings.
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_POPULATE = 0x8000;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;

// getaddrinfo(3) flags and errors (glibc <netdb.h>). Errors are negative return codes, not errno.
export const AI_PASSIVE = 0x0001;
export const AI_CANONNAME = 0x0002;
export const AI_NUMERICHOST = 0x0004;
export const AI_V4MAPPED = 0x0008;
export const AI_ALL = 0x0010;
export const AI_ADDRCONFIG = 0x0020;
export const AI_NUMERICSERV = 0x0400;

export const EAI_BADFLAGS = -1;
export const EAI_NONAME = -2;
export const EAI_AGAIN = -3;
export const EAI_FAIL = -4;
export const EAI_NODATA = -5;
export const EAI_FAMILY = -6;
export const EAI_SOCKTYPE = -7;
export const EAI_SERVICE = -8;
export const EAI_ADDRFAMILY = -9;
export const EAI_MEMORY = -10;
export const EAI_SYSTEM = -11;
export const EAI_OVERFLOW = -12;

/** getaddrinfo's negative codes by name, for messages and for mapping to Node's codes. */
export const EAI_NAMES: ReadonlyMap<number, string> = new Map([
  [EAI_BADFLAGS, 'EAI_BADFLAGS'],
  [EAI_NONAME, 'EAI_NONAME'],
  [EAI_AGAIN, 'EAI_AGAIN'],
  [EAI_FAIL, 'EAI_FAIL'],
  [EAI_NODATA, 'EAI_NODATA'],
  [EAI_FAMILY, 'EAI_FAMILY'],
  [EAI_SOCKTYPE, 'EAI_SOCKTYPE'],
  [EAI_SERVICE, 'EAI_SERVICE'],
  [EAI_ADDRFAMILY, 'EAI_ADDRFAMILY'],
  [EAI_MEMORY, 'EAI_MEMORY'],
  [EAI_SYSTEM, 'EAI_SYSTEM'],
  [EAI_OVERFLOW, 'EAI_OVERFLOW'],
]);

/** Largest Unix socket path: sizeof(sun_path) is 108, and a filesystem path needs its NUL. */
export const UNIX_PATH_MAX = 108;

// splice(2) flags.
export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;
