// bench/c/eventfd_wake.c: how long after work arrives the kernel signals an io_uring's registered
// eventfd, the fd an m-socket io_uring Reactor sleeps on (libuv watches it), with DEFER_TASKRUN
// (the ring m-socket makes where the kernel has it) and without.
// Usage: eventfd_wake [ROUNDS=40]
// Per round: a one-shot IORING_OP_POLL_ADD on a pipe's read end is submitted, the eventfd is
// cleared, a byte is written to the pipe from this thread, and poll(2) waits (up to 100 ms) for
// the eventfd. With DEFER_TASKRUN the poll's wake-up queues task work and the kernel signals the
// eventfd for it; on a plain ring the completion is posted as this thread leaves write(2), which
// signals it. Prints one line per setup: "setup=defer ..." and "setup=plain ...", with the median
// and the largest delay in microseconds and how many rounds found the eventfd signalled at once
// (before write(2) returned). Raw syscalls, no liburing. A ring the kernel refuses prints
// "UNSUPPORTED <why>" and exits with status 3.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// One setup: returns 0, or 3 when the kernel refuses it.
static int measure(const char *name, unsigned flags, int rounds) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = flags;
  int ring = syscall(__NR_io_uring_setup, 8, &p);
  if (ring < 0) {
    printf("UNSUPPORTED io_uring_setup(%s): %s\n", name, strerror(errno));
    return 3;
  }
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (cq_size > sq_size) sq_size = cq_size; // FEAT_SINGLE_MMAP: one mapping for both rings
  char *sq = mmap(0, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  if (sq == MAP_FAILED || sqes == MAP_FAILED) {
    printf("UNSUPPORTED mmap: %s\n", strerror(errno));
    return 3;
  }
  _Atomic unsigned *sq_tail = (_Atomic unsigned *)(sq + p.sq_off.tail);
  unsigned *sq_array = (unsigned *)(sq + p.sq_off.array), mask = *(unsigned *)(sq + p.sq_off.ring_mask);
  _Atomic unsigned *cq_head = (_Atomic unsigned *)(sq + p.cq_off.head), *cq_tail = (_Atomic unsigned *)(sq + p.cq_off.tail);
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), ends[2];
  if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_EVENTFD, &efd, 1) < 0) {
    printf("UNSUPPORTED io_uring_register(EVENTFD): %s\n", strerror(errno));
    return 3;
  }
  if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) < 0) return perror("pipe2"), 1;
  double *delay = calloc(rounds, sizeof *delay);
  int at_once = 0;
  for (int i = 0; i < rounds; i++) {
    unsigned t = atomic_load_explicit(sq_tail, memory_order_relaxed);
    struct io_uring_sqe *e = &sqes[t & mask];
    memset(e, 0, sizeof *e);
    e->opcode = IORING_OP_POLL_ADD;
    e->fd = ends[0];
    e->poll32_events = POLLIN;
    sq_array[t & mask] = t & mask;
    atomic_store_explicit(sq_tail, t + 1, memory_order_release);
    syscall(__NR_io_uring_enter, ring, 1, 0, 0, NULL, 0);
    uint64_t counter;
    if (read(efd, &counter, 8) < 0) counter = 0; // nothing signalled yet: EAGAIN
    double start = now_us();
    if (write(ends[1], "x", 1) != 1) return perror("write"), 1;
    struct pollfd pf = { efd, POLLIN, 0 };
    if (poll(&pf, 1, 0) == 1) at_once++;
    else poll(&pf, 1, 100);
    delay[i] = now_us() - start;
    // Post the poll's completion (task work under DEFER_TASKRUN) and consume it; empty the pipe.
    syscall(__NR_io_uring_enter, ring, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    atomic_store_explicit(cq_head, atomic_load_explicit(cq_tail, memory_order_acquire), memory_order_release);
    char byte;
    if (read(ends[0], &byte, 1) != 1) return perror("read"), 1;
  }
  qsort(delay, rounds, sizeof *delay, cmp);
  printf("setup=%s flags=%#x rounds=%d signalled_at_once=%d p50_us=%.0f max_us=%.0f\n", name, flags, rounds, at_once, delay[rounds / 2], delay[rounds - 1]);
  free(delay);
  close(ends[0]);
  close(ends[1]);
  close(efd);
  close(ring);
  return 0;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 40;
  if (rounds < 1 || rounds > 10000) return fprintf(stderr, "ROUNDS: 1 to 10000\n"), 2;
  int r = measure("defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG, rounds);
  if (r != 0) return r;
  return measure("plain", 0, rounds);
}
