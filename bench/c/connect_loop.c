// bench/c/connect_loop.c: connection churn (accept rate). Keeps PARALLEL connections in flight;
// each one connects, sends 1 byte, waits for the 1-byte echo (so the server has accepted and
// served it, and the accept queue cannot silently pile up), then closes. Counts completed cycles.
// Usage: connect_loop PORT [SECONDS=3] [PARALLEL=8] [MAX=1000000]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static double cpu_s(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}
static struct sockaddr_in addr;
static int ep;
static long errors;

struct slot { int fd; int sent; };

static void start(struct slot *s, int i) {
    for (int tries = 0; tries < 1000; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) { perror("socket"); exit(1); }
        int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        if (r == 0 || errno == EINPROGRESS) {
            s->fd = fd; s->sent = 0;
            struct epoll_event e = { .events = EPOLLOUT, .data.u32 = i };
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
            return;
        }
        errors++; close(fd); // EADDRNOTAVAIL: ephemeral ports exhausted for a moment
        usleep(1000);
    }
    fprintf(stderr, "cannot connect\n"); exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [SECONDS] [PARALLEL] [MAX]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    double secs = argc > 2 ? atof(argv[2]) : 3;
    int par = argc > 3 ? atoi(argv[3]) : 8;
    long max = argc > 4 ? atol(argv[4]) : 1000000;
    if (secs <= 0 || secs > 120 || par < 1 || par > 1024) { fprintf(stderr, "bad args\n"); return 2; }
    addr.sin_family = AF_INET; addr.sin_port = htons(port); addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct slot *ss = calloc(par, sizeof *ss);
    double t0 = now(), c0 = cpu_s(), tend = t0 + secs, last = t0;
    for (int i = 0; i < par; i++) start(&ss[i], i);
    long done = 0;
    char b = 'x';
    struct epoll_event evs[1024];
    while (done < max) {
        double t = now();
        if (t >= tend) break;
        if (t - last > 5) { fprintf(stderr, "stalled\n"); return 1; }
        int n = epoll_wait(ep, evs, 1024, 100);
        for (int j = 0; j < n; j++) {
            int i = evs[j].data.u32;
            struct slot *s = &ss[i];
            if (!s->sent) {
                if (send(s->fd, &b, 1, MSG_NOSIGNAL) != 1) { errors++; epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL); close(s->fd); start(s, i); continue; }
                s->sent = 1;
                struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
                epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
            } else {
                char r;
                ssize_t k = recv(s->fd, &r, 1, 0);
                if (k < 0 && errno == EAGAIN) continue;
                if (k != 1) errors++; else done++;
                last = now();
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                close(s->fd);
                start(s, i);
            }
        }
    }
    double el = now() - t0, cpu = cpu_s() - c0;
    printf("conns=%ld secs=%.3f cps=%.0f errors=%ld client_cpu_pct=%.1f\n", done, el, done / el, errors, 100.0 * cpu / el);
    return 0;
}
