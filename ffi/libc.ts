/**
 * libc prototypes, declared for koffi. Declarations only: every call from the library goes
 * through `ffi/syscall.ts`, which reads errno and turns failures into values or errors.
 *
 * Conventions: buffers and structs are `void *` so that a Uint8Array (or Uint32Array for a
 * socklen_t*) passes zero-copy to synchronous calls; `ssize_t` is `intptr_t` (koffi has no
 * ssize_t); socklen_t is uint32_t. `fcntl` is variadic in C; declaring its third argument as
 * `int` is ABI-compatible on x86_64 and aarch64 Linux, where variadic integers travel in the same
 * registers as fixed ones.
 *
 * Each worker thread evaluates this module for itself and so loads its own bindings.
 */
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');

/** The raw libc functions. Call them through `ffi/syscall.ts`, never directly from `lib/`. */
export const libc = Object.freeze({
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  socketpair: lib.func('int socketpair(int domain, int type, int protocol, void *fds)'),
  bind: lib.func('int bind(int fd, void *addr, uint32_t addrlen)'),
  listen: lib.func('int listen(int fd, int backlog)'),
  accept4: lib.func('int accept4(int fd, void *addr, void *addrlen, int flags)'),
  connect: lib.func('int connect(int fd, void *addr, uint32_t addrlen)'),
  getsockname: lib.func('int getsockname(int fd, void *addr, void *addrlen)'),
  getpeername: lib.func('int getpeername(int fd, void *addr, void *addrlen)'),
  setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
  getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)'),
  shutdown: lib.func('int shutdown(int fd, int how)'),
  close: lib.func('int close(int fd)'),
  recv: lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)'),
  send: lib.func('intptr_t send(int fd, void *buf, size_t len, int flags)'),
  read: lib.func('intptr_t read(int fd, void *buf, size_t len)'),
  write: lib.func('intptr_t write(int fd, void *buf, size_t len)'),
  readv: lib.func('intptr_t readv(int fd, void *iov, int iovcnt)'),
  writev: lib.func('intptr_t writev(int fd, void *iov, int iovcnt)'),
  sendmsg: lib.func('intptr_t sendmsg(int fd, void *msg, int flags)'),
  recvfrom: lib.func('intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)'),
  sendto: lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrlen)'),
  recvmmsg: lib.func('int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)'),
  sendmmsg: lib.func('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)'),
  recvmsg: lib.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
  fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
  open: lib.func('int open(const char *path, int flags, int mode)'),
  pipe2: lib.func('int pipe2(void *fds, int flags)'),
  epoll_create1: lib.func('int epoll_create1(int flags)'),
  epoll_ctl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
  poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
  // glibc has no io_uring wrappers: these three are syscall(2) with the syscall number first.
  // syscall is variadic in C; declaring fixed prototypes is ABI-compatible on x86_64 and aarch64
  // Linux (variadic integers and pointers travel in the same registers, and glibc's syscall is an
  // assembly shim that ignores %al). It returns long; every result here fits an int.
  io_uring_setup: lib.func('syscall', 'long', ['long', 'uint32_t', 'void *']),
  io_uring_enter: lib.func('syscall', 'long', ['long', 'int', 'uint32_t', 'uint32_t', 'uint32_t', 'void *', 'size_t']),
  io_uring_register: lib.func('syscall', 'long', ['long', 'int', 'uint32_t', 'void *', 'uint32_t']),
  mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: lib.func('int munmap(void *addr, size_t length)'),
  getaddrinfo: lib.func('int getaddrinfo(void *node, void *service, void *hints, void *res)'),
  freeaddrinfo: lib.func('void freeaddrinfo(void *res)'),
  // Copies native memory into bytes of ours (an addrinfo list): its return value (dst) is not
  // read, so it is declared void, and no pointer object is made for it.
  memcpy: lib.func('void memcpy(void *dst, void *src, size_t n)'),
  gai_strerror: lib.func('const char *gai_strerror(int code)'),
  if_nametoindex: lib.func('unsigned int if_nametoindex(const char *name)'),
  // Zero-copy file sending (Socket#sendFile): offsets are off_t* / loff_t*, 64-bit on both ABIs.
  sendfile: lib.func('intptr_t sendfile(int out_fd, int in_fd, void *offset, size_t count)'),
  splice: lib.func('intptr_t splice(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)'),
});

/** Names of the functions above, as used in error messages (`err.syscall`). */
export type LibcName = keyof typeof libc;
