// bench/c/bulk.c: bulk echo throughput. One connection streams TOTAL bytes to the echo server in
// CHUNK-sized send() calls while reading the echo back (one thread, epoll).
// Usage: bulk PORT [TOTAL_MIB=1024] [CHUNK=65536] [TIMEOUT_S=60]
// Timing: first send until the last echoed byte is received. MB = 1e6 bytes. The echoed stream
// is checked against the sent pattern on a sample of reads (cheap), so a broken server fails.
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

#define PAT 251
static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static double cpu_s(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [TOTAL_MIB] [CHUNK] [TIMEOUT_S]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    long long total = (argc > 2 ? atoll(argv[2]) : 1024) << 20;
    int chunk = argc > 3 ? atoi(argv[3]) : 65536;
    double tmo = argc > 4 ? atof(argv[4]) : 60;
    if (total <= 0 || total > (16LL << 30) || chunk < 1 || chunk > (1 << 22) || tmo <= 0 || tmo > 600) { fprintf(stderr, "bad args\n"); return 2; }
    char *pat = malloc(chunk + PAT), *rbuf = malloc(1 << 22);
    for (int i = 0; i < chunk + PAT; i++) pat[i] = (char)(i % PAT);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN | EPOLLOUT, .data.fd = fd };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    long long sent = 0, rcvd = 0; long nsend = 0, nrecv = 0;
    double t0 = now(), c0 = cpu_s(), tend = t0 + tmo;
    struct epoll_event evs[4];
    int out_on = 1;
    while (rcvd < total) {
        if (now() > tend) { fprintf(stderr, "timeout: sent=%lld rcvd=%lld\n", sent, rcvd); return 1; }
        int n = epoll_wait(ep, evs, 4, 100);
        if (n <= 0) continue;
        unsigned ev = evs[0].events;
        if ((ev & EPOLLOUT) && sent < total) {
            long long left = total - sent;
            int len = left < chunk ? (int)left : chunk;
            ssize_t w = send(fd, pat + (sent % PAT), len, MSG_NOSIGNAL);
            if (w > 0) { sent += w; nsend++; }
            else if (w < 0 && errno != EAGAIN) { perror("send"); return 1; }
            if (sent == total && out_on) {
                struct epoll_event e2 = { .events = EPOLLIN, .data.fd = fd };
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e2); out_on = 0;
            }
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            ssize_t r = recv(fd, rbuf, 1 << 22, 0);
            if (r == 0) { fprintf(stderr, "server closed early at %lld\n", rcvd); return 1; }
            if (r < 0) { if (errno == EAGAIN) continue; perror("recv"); return 1; }
            if ((nrecv & 63) == 0) {
                for (ssize_t i = 0; i < r; i += 4093)
                    if (rbuf[i] != (char)((rcvd + i) % PAT)) { fprintf(stderr, "VERIFY FAILED near %lld\n", rcvd + i); return 1; }
            }
            rcvd += r; nrecv++;
        }
    }
    double el = now() - t0, cpu = cpu_s() - c0;
    printf("bytes=%lld chunk=%d secs=%.3f MBps=%.1f sends=%ld recvs=%ld client_cpu_pct=%.1f\n",
           total, chunk, el, total / el / 1e6, nsend, nrecv, 100.0 * cpu / el);
    close(fd);
    return 0;
}
