// bench/c/paced.c: paced (fixed offered load) ping-pong load generator, one thread, epoll: the idea
// of the anchors' l3_paced.c. RATE requests per second in all are offered over CONNS connections,
// on a fixed schedule: request k of connection i is due at start + (k * CONNS + i) / RATE. A
// connection has at most one request in flight (MSG bytes, answered by the whole echo); when a
// reply comes back after the next request of that connection was due, that request goes at once.
// Latency is counted from the time a request was DUE, not from when it went (no coordinated
// omission: a server that falls behind shows it in the percentiles, not in a lower offered load).
// Usage: paced PORT CONNS RATE [SECONDS=5] [WARMUP_S=1] [MSG=64]
// Bounded: stops sending after WARMUP_S + SECONDS, waits at most 1 s for the replies in flight,
// fails after 5 s without a reply while requests are in flight. Prints one key=value line:
// rps is the achieved rate over the measured window (replies received in it), total_reqs counts
// the warm-up too (to divide the server's CPU by), late = measured requests sent more than 1 ms
// after they were due (the server, or this client, could not keep the pace).
// Sleeps with epoll_pwait2 (ns timeouts, Linux 5.11) and a 1 ns timer slack; without epoll_pwait2
// it sleeps whole milliseconds and spins the last one (client_cpu_pct shows it).
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NBUCK 100000 /* 1 us buckets up to 100 ms */

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static double cpu_s(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

struct c { int fd; int got; int busy; long k; double due; };
static unsigned long hist[NBUCK + 1];
static int have_pwait2 = 1;

/** Waits up to `secs` (>= 0) for events. */
static int wait_for(int ep, struct epoll_event *evs, int max, double secs) {
#ifdef SYS_epoll_pwait2
    if (have_pwait2) {
        struct timespec ts = { .tv_sec = (time_t)secs, .tv_nsec = (long)((secs - (time_t)secs) * 1e9) };
        int n = (int)syscall(SYS_epoll_pwait2, ep, evs, max, &ts, NULL, 0);
        if (n >= 0 || errno != ENOSYS) return n;
        have_pwait2 = 0;
    }
#endif
    int ms = (int)(secs * 1000) - 1;
    return epoll_wait(ep, evs, max, ms > 0 ? ms : 0);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s PORT CONNS RATE [SECONDS] [WARMUP] [MSG]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), nc = atoi(argv[2]);
    double rate = atof(argv[3]);
    double secs = argc > 4 ? atof(argv[4]) : 5, warm = argc > 5 ? atof(argv[5]) : 1;
    int msg = argc > 6 ? atoi(argv[6]) : 64;
    if (nc < 1 || nc > 20000 || rate <= 0 || rate > 10e6 || msg < 1 || msg > 65536 || secs <= 0 || secs > 120 || warm < 0 || warm > 60) {
        fprintf(stderr, "bad args\n"); return 2;
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
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
    double dt = 1.0 / rate;
    double t_start = now() + 0.001, t_meas = t_start + warm, t_end = t_meas + secs;
    for (int i = 0; i < nc; i++) cs[i].due = t_start + i * dt;
    double c_start = cpu_s(), cpu0 = c_start, cpu1 = c_start;
    long reqs = 0, warm_reqs = 0, late = 0, inflight = 0, sent = 0;
    long slot = 0; /* next slot of the global schedule: connection slot % nc, its request slot / nc */
    double last_progress = t_start;
    int measuring = warm == 0, sending = 1;
    struct epoll_event evs[512];
    for (;;) {
        double t = now();
        if (!measuring && t >= t_meas) { measuring = 1; cpu0 = cpu_s(); }
        if (sending && t >= t_end) { sending = 0; cpu1 = cpu_s(); }
        if (!sending && (inflight == 0 || t >= t_end + 1)) break;
        // Send what is due to connections that are free (the others send when their reply comes).
        while (sending) {
            double due = t_start + slot * dt;
            if (due > t) break;
            struct c *k = &cs[slot % nc];
            if (!k->busy && k->k == slot / nc) {
                if (send(k->fd, sbuf, msg, MSG_NOSIGNAL) != msg) { perror("send"); return 1; }
                if (measuring && t - k->due > 1e-3) late++;
                k->busy = 1; inflight++; sent++;
            }
            slot++;
        }
        double next = sending ? t_start + slot * dt - t : 0.1;
        if (next > 0.1) next = 0.1;
        if (next < 0) next = 0;
        int n = wait_for(ep, evs, 512, next);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        t = now();
        if (n == 0) {
            if (inflight > 0 && t - last_progress > 5) { fprintf(stderr, "stalled\n"); return 1; }
            continue;
        }
        for (int j = 0; j < n; j++) {
            struct c *k = &cs[evs[j].data.u32];
            ssize_t r = recv(k->fd, rbuf, 65536, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                fprintf(stderr, "connection closed/error: %zd %s\n", r, strerror(errno)); return 1;
            }
            k->got += r;
            if (k->got < msg) continue;
            if (k->got != msg || !k->busy) { fprintf(stderr, "protocol error (got %d)\n", k->got); return 1; }
            k->got = 0; k->busy = 0; inflight--;
            last_progress = t;
            if (k->due >= t_meas && k->due < t_end) {
                reqs++;
                long us = (long)((t - k->due) * 1e6);
                hist[us < NBUCK ? us : NBUCK]++;
            } else warm_reqs++;
            k->k++;
            k->due = t_start + (k->k * nc + (k - cs)) * dt;
            if (sending && k->due <= t && k->due < t_end) {
                // Behind schedule: the request that was due goes now.
                if (send(k->fd, sbuf, msg, MSG_NOSIGNAL) != msg) { perror("send"); return 1; }
                if (k->due >= t_meas && t - k->due > 1e-3) late++;
                k->busy = 1; inflight++; sent++;
            }
        }
    }
    if (sending) cpu1 = cpu_s();
    long p50 = -1, p99 = -1, p999 = -1, acc = 0;
    for (long i = 0; i <= NBUCK && reqs > 0; i++) {
        acc += hist[i];
        if (p50 < 0 && acc * 2 >= reqs) p50 = i;
        if (p99 < 0 && acc * 100 >= reqs * 99) p99 = i;
        if (p999 < 0 && acc * 1000 >= reqs * 999) { p999 = i; break; }
    }
    printf("conns=%d msg=%d rate=%.0f reqs=%ld total_reqs=%ld secs=%.3f rps=%.0f p50_us=%ld p99_us=%ld p999_us=%ld late=%ld client_cpu_pct=%.1f\n",
           nc, msg, rate, reqs, reqs + warm_reqs, secs, reqs / secs, p50, p99, p999, late, 100.0 * (cpu1 - cpu0) / secs);
    for (int i = 0; i < nc; i++) close(cs[i].fd);
    return 0;
}
