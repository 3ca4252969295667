// bench/c/uring_echo.c: C io_uring echo server, "the io_uring limit" of bench/io-uring.ts.
// Copied from the steering team's anchor ../shared/anchors/io_uring/c_uring_echo.c (same design as
// the koffi prototype u_echo.mjs in block mode; raw syscalls, no liburing). Changes from the anchor,
// all outside the loop: port 0 picks a free port and "PORT <n>" goes to stdout once listening (as
// bench/c/echo_server.c), a ring the kernel refuses prints "UNSUPPORTED <why>" and exits with
// status 3 (the bench skips the server then), and these lines.
// Usage: uring_echo PORT(0 = any) [RECV=link|plain|multi] [LIFETIME_S=900] [BUFSZ=65536] [NBUF=256]
// Ring: SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|NO_SQARRAY|SUBMIT_ALL, 1024 SQ / 8192 CQ.
// Loop: io_uring_enter(to_submit, min_complete=1, GETEVENTS|EXT_ARG(1 s timeout)), drain CQ, repeat.
// RECV link (default): RECV -> CQE -> SEND(MSG_WAITALL, IO_LINK|CQE_SKIP_SUCCESS) + RECV in one
// batch; plain: RECV -> SEND -> RECV; multi: multishot RECV into a provided buffer ring.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#define MAXFD 4096
enum { T_ACCEPT = 1, T_RECV = 2, T_SEND = 3 };
enum { M_PLAIN, M_LINK, M_MULTI };

static int ring_fd, mode;
static unsigned *sq_head, *sq_tail, sq_mask, sq_entries, local_tail;
static unsigned *cq_head, *cq_tail, cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static size_t bufsz = 65536; static unsigned nbuf = 256;
static char *arena;                         // plain/link: one buffer per fd
static struct io_uring_buf_ring *br; static char *brbufs; static unsigned br_tail, br_mask; static int br_dirty;
static unsigned char state[MAXFD], inflight[MAXFD], sendbusy[MAXFD], needrearm[MAXFD];
static int sendbid[MAXFD];
struct q { int n, h, cap; int *bid, *len; } queues[MAXFD];

static void die(const char *m) { perror(m); exit(1); }
static void unsupported(const char *what) {
    printf("UNSUPPORTED %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(3);
}
static int enter(unsigned to_submit, unsigned min, unsigned flags, void *arg, size_t sz) {
    return (int)syscall(__NR_io_uring_enter, ring_fd, to_submit, min, flags, arg, sz);
}
static unsigned sq_pending(void) { return local_tail - atomic_load_explicit((_Atomic unsigned *)sq_head, memory_order_acquire); }
static void flush_sq(void) { atomic_store_explicit((_Atomic unsigned *)sq_tail, local_tail, memory_order_release); }
static struct io_uring_sqe *get_sqe(void) {
    if (sq_pending() >= sq_entries) { flush_sq(); enter(sq_pending(), 0, 0, NULL, 0); }
    struct io_uring_sqe *s = &sqes[local_tail & sq_mask];
    local_tail++;
    memset(s, 0, sizeof *s);
    return s;
}
static void prep(int op, int sflags, int ioprio, int fd, uint64_t addr, unsigned len, unsigned opflags, int udfd, int tag) {
    struct io_uring_sqe *s = get_sqe();
    s->opcode = op; s->flags = sflags; s->ioprio = ioprio; s->fd = fd; s->addr = addr; s->len = len;
    s->msg_flags = opflags; s->user_data = ((uint64_t)tag << 32) | (unsigned)udfd;
}
static void br_add(int bid) {
    struct io_uring_buf *b = &br->bufs[br_tail & br_mask];
    b->addr = (uint64_t)(uintptr_t)(brbufs + (size_t)bid * bufsz); b->len = bufsz; b->bid = bid;
    br_tail++; br_dirty = 1;
}
static void br_publish(void) { atomic_store_explicit((_Atomic unsigned short *)&br->tail, (unsigned short)br_tail, memory_order_release); br_dirty = 0; }
static void arm_accept(int lfd) { prep(IORING_OP_ACCEPT, 0, IORING_ACCEPT_MULTISHOT, lfd, 0, 0, SOCK_CLOEXEC, lfd, T_ACCEPT); }
static void arm_recv(int fd) {
    if (mode == M_MULTI) {
        prep(IORING_OP_RECV, IOSQE_BUFFER_SELECT, IORING_RECV_MULTISHOT, fd, 0, 0, 0, fd, T_RECV);
        sqes[(local_tail - 1) & sq_mask].buf_group = 1;
    } else prep(IORING_OP_RECV, 0, 0, fd, (uint64_t)(uintptr_t)(arena + (size_t)fd * bufsz), bufsz, 0, fd, T_RECV);
    inflight[fd]++;
}
static void start_send(int fd, int bid, int len) {
    prep(IORING_OP_SEND, 0, 0, fd, (uint64_t)(uintptr_t)(brbufs + (size_t)bid * bufsz), len, MSG_NOSIGNAL | MSG_WAITALL, fd, T_SEND);
    sendbusy[fd] = 1; sendbid[fd] = bid; inflight[fd]++;
}
static void maybe_close(int fd) {
    if (state[fd] == 2 && inflight[fd] == 0) {
        close(fd); state[fd] = 0;
        struct q *q = &queues[fd]; while (q->n) { br_add(q->bid[q->h]); q->h = (q->h + 1) % q->cap; q->n--; }
    }
}
static void fail(int fd) { if (state[fd] == 1) { state[fd] = 2; if (inflight[fd]) shutdown(fd, SHUT_RDWR); } maybe_close(fd); }
static void qpush(int fd, int bid, int len) {
    struct q *q = &queues[fd];
    if (q->n == q->cap) {
        int nc = q->cap ? q->cap * 2 : 16; int *nb = malloc(nc * sizeof(int)), *nl = malloc(nc * sizeof(int));
        for (int i = 0; i < q->n; i++) { nb[i] = q->bid[(q->h + i) % q->cap]; nl[i] = q->len[(q->h + i) % q->cap]; }
        free(q->bid); free(q->len); q->bid = nb; q->len = nl; q->h = 0; q->cap = nc;
    }
    int t = (q->h + q->n) % q->cap; q->bid[t] = bid; q->len[t] = len; q->n++;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    const char *m = argc > 2 ? argv[2] : "link";
    int lifetime = argc > 3 ? atoi(argv[3]) : 900;
    if (argc > 4) bufsz = atoi(argv[4]);
    if (argc > 5) nbuf = atoi(argv[5]);
    mode = !strcmp(m, "plain") ? M_PLAIN : !strcmp(m, "multi") ? M_MULTI : M_LINK;
    time_t t_end = time(NULL) + lifetime;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(lfd, 1024) < 0) die("listen");
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);

    struct io_uring_params p; memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
              IORING_SETUP_NO_SQARRAY | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = 8192;
    ring_fd = (int)syscall(__NR_io_uring_setup, 1024, &p);
    if (ring_fd < 0) unsupported("io_uring_setup");
    size_t sqsz = p.sq_off.array + p.sq_entries * 4, cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t rsz = sqsz > cqsz ? sqsz : cqsz;
    char *rp = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
    if (rp == MAP_FAILED) die("mmap ring");
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) die("mmap sqes");
    sq_head = (unsigned *)(rp + p.sq_off.head); sq_tail = (unsigned *)(rp + p.sq_off.tail);
    sq_mask = *(unsigned *)(rp + p.sq_off.ring_mask); sq_entries = p.sq_entries; local_tail = *sq_tail;
    cq_head = (unsigned *)(rp + p.cq_off.head); cq_tail = (unsigned *)(rp + p.cq_off.tail);
    cq_mask = *(unsigned *)(rp + p.cq_off.ring_mask); cqes = (struct io_uring_cqe *)(rp + p.cq_off.cqes);

    if (mode == M_MULTI) {
        br = mmap(NULL, nbuf * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        brbufs = mmap(NULL, nbuf * bufsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = nbuf, .bgid = 1 };
        if (syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) unsupported("register pbuf ring");
        br_mask = nbuf - 1;
        for (unsigned i = 0; i < nbuf; i++) br_add(i);
        br_publish();
    } else {
        arena = mmap(NULL, (size_t)MAXFD * bufsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (arena == MAP_FAILED) die("mmap arena");
    }
    arm_accept(lfd);
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);

    struct __kernel_timespec ts = { .tv_sec = 1 };
    struct io_uring_getevents_arg ga = { .ts = (uint64_t)(uintptr_t)&ts };
    unsigned long turns = 0;
    for (;;) {
        flush_sq();
        int r = enter(sq_pending(), 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ga, sizeof ga);
        if (r < 0 && errno != ETIME && errno != EINTR && errno != EBUSY) die("io_uring_enter");
        unsigned head = *cq_head, tail = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
        for (; head != tail; head++) {
            struct io_uring_cqe *c = &cqes[head & cq_mask];
            int fd = (int)(unsigned)c->user_data, tag = (int)(c->user_data >> 32), res = c->res;
            unsigned fl = c->flags;
            if (tag == T_ACCEPT) {
                if (res >= 0) {
                    if (res >= MAXFD) close(res);
                    else {
                        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        state[res] = 1; inflight[res] = 0; sendbusy[res] = 0; needrearm[res] = 0;
                        arm_recv(res);
                    }
                }
                if (!(fl & IORING_CQE_F_MORE)) arm_accept(lfd);
            } else if (tag == T_RECV) {
                if (mode == M_MULTI) {
                    int more = fl & IORING_CQE_F_MORE;
                    if (!more) inflight[fd]--;
                    if (res > 0) {
                        int bid = fl >> 16;
                        if (state[fd] != 1) br_add(bid);
                        else if (sendbusy[fd]) qpush(fd, bid, res);
                        else start_send(fd, bid, res);
                        if (!more && state[fd] == 1) arm_recv(fd);
                    } else if (res == -ENOBUFS) {
                        if (!more && state[fd] == 1) needrearm[fd] = 1;
                    } else if (!more) fail(fd);
                    maybe_close(fd);
                } else {
                    inflight[fd]--;
                    if (res > 0 && state[fd] == 1) {
                        uint64_t ad = (uint64_t)(uintptr_t)(arena + (size_t)fd * bufsz);
                        if (mode == M_LINK) {
                            prep(IORING_OP_SEND, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS, 0, fd, ad, res, MSG_NOSIGNAL | MSG_WAITALL, fd, T_SEND);
                            prep(IORING_OP_RECV, 0, 0, fd, ad, bufsz, 0, fd, T_RECV);
                        } else prep(IORING_OP_SEND, 0, 0, fd, ad, res, MSG_NOSIGNAL | MSG_WAITALL, fd, T_SEND);
                        inflight[fd]++;
                    } else fail(fd);
                }
            } else if (tag == T_SEND) {
                if (mode == M_MULTI) {
                    inflight[fd]--; sendbusy[fd] = 0; br_add(sendbid[fd]);
                    if (res < 0) fail(fd);
                    else {
                        struct q *q = &queues[fd];
                        if (state[fd] == 1 && q->n) { int b = q->bid[q->h], l = q->len[q->h]; q->h = (q->h + 1) % q->cap; q->n--; start_send(fd, b, l); }
                        maybe_close(fd);
                    }
                } else if (mode == M_LINK) {
                    if (res < 0 && state[fd] == 1) state[fd] = 2;
                } else {
                    inflight[fd]--;
                    if (res >= 0 && state[fd] == 1) arm_recv(fd); else fail(fd);
                }
            }
        }
        atomic_store_explicit((_Atomic unsigned *)cq_head, head, memory_order_release);
        if (br_dirty) {
            br_publish();
            for (int fd = 0; fd < MAXFD && mode == M_MULTI; fd++) if (needrearm[fd] && state[fd] == 1) { needrearm[fd] = 0; arm_recv(fd); }
        }
        if ((++turns & 1023) == 0 || (r < 0 && errno == ETIME)) if (time(NULL) > t_end) break;
    }
    return 0;
}
