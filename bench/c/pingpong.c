// bench/c/pingpong.c: closed-loop ping-pong load generator (one thread, epoll). Each of CONNS
// connections sends a MSG-byte message, waits for the whole echo, and repeats.
// Usage: pingpong PORT CONNS [SECONDS=5] [WARMUP_S=1] [MSG=64] [MAX_REQS=50000000]
// Bounded: stops after WARMUP_S + SECONDS, or MAX_REQS measured requests, or 5 s without progress.
// Prints one key=value line; total_reqs counts the warm-up too (to divide the server's CPU by).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NBUCK 100000 /* 1 us buckets up to 100 ms */

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static double cpu_s(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

struct c { int fd; int got; double t0; };
static unsigned long hist[NBUCK + 1];

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT CONNS [SECONDS] [WARMUP] [MSG] [MAX_REQS]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), nc = atoi(argv[2]);
    double secs = argc > 3 ? atof(argv[3]) : 5, warm = argc > 4 ? atof(argv[4]) : 1;
    int msg = argc > 5 ? atoi(argv[5]) : 64;
    long maxreq = argc > 6 ? atol(argv[6]) : 50000000L;
    if (nc < 1 || nc > 20000 || msg < 1 || msg > 65536 || secs <= 0 || secs > 120 || warm < 0 || warm > 60) { fprintf(stderr, "bad args\n"); return 2; }
    char *sbuf = malloc(msg), *rbuf = malloc(65536);
    memset(sbuf, 'x', msg);
    struct c *cs = calloc(nc, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nc; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        cs[i].fd = fd;
        struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    double t_start = now(), t_meas = t_start + warm, t_end = t_meas + secs;
    double c_start = cpu_s();
    for (int i = 0; i < nc; i++) {
        cs[i].t0 = now();
        if (send(cs[i].fd, sbuf, msg, MSG_NOSIGNAL) != msg) { perror("send"); return 1; }
    }
    long reqs = 0, warm_reqs = 0; int measuring = warm == 0;
    double cpu0 = c_start, tm0 = t_start, last_progress = t_start;
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, 100);
        double t = now();
        if (!measuring && t >= t_meas) { measuring = 1; cpu0 = cpu_s(); tm0 = t; }
        if (t >= t_end || reqs >= maxreq) break;
        if (n <= 0) { if (t - last_progress > 5) { fprintf(stderr, "stalled\n"); return 1; } continue; }
        for (int j = 0; j < n; j++) {
            struct c *k = &cs[evs[j].data.u32];
            ssize_t r = recv(k->fd, rbuf, 65536, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                fprintf(stderr, "connection closed/error: %zd %s\n", r, strerror(errno)); return 1;
            }
            k->got += r;
            if (k->got < msg) continue;
            if (k->got != msg) { fprintf(stderr, "protocol error (got %d)\n", k->got); return 1; }
            k->got = 0;
            if (measuring) { reqs++; long us = (long)((t - k->t0) * 1e6); hist[us < NBUCK ? us : NBUCK]++; }
            else warm_reqs++;
            last_progress = t;
            k->t0 = t;
            if (send(k->fd, sbuf, msg, MSG_NOSIGNAL) != msg) { perror("send"); return 1; }
        }
    }
    double el = now() - tm0, cpu = cpu_s() - cpu0;
    long p50 = -1, p99 = -1, acc = 0;
    for (long i = 0; i <= NBUCK; i++) {
        acc += hist[i];
        if (p50 < 0 && acc * 2 >= reqs) p50 = i;
        if (p99 < 0 && acc * 100 >= reqs * 99) { p99 = i; break; }
    }
    printf("conns=%d msg=%d reqs=%ld total_reqs=%ld secs=%.3f rps=%.0f p50_us=%ld p99_us=%ld client_cpu_pct=%.1f\n",
           nc, msg, reqs, reqs + warm_reqs, el, reqs / el, p50, p99, 100.0 * cpu / el);
    for (int i = 0; i < nc; i++) close(cs[i].fd);
    return 0;
}
