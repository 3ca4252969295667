// bench/c/echo_server.c: single-threaded, non-blocking, level-triggered epoll echo server (the
// C reference the m-socket server is compared with). Compiled by bench/ at run time.
// Usage: echo_server PORT(0 = any) [LIFETIME_S=900] [EPOLL_TIMEOUT_MS=1000; 0 = busy-poll]
// Prints "PORT <n>" on stdout once listening. One recv (<= 64 KiB, into one shared buffer) per
// readiness event, echoed with send(); a short send keeps the remainder (malloc'd) and switches
// the connection to EPOLLOUT until drained, so nothing is held per idle connection.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 65536
#define MAXFD 65536
#define MAXEV 256

struct pending { size_t off, len; char *buf; };
static struct pending *pend[MAXFD];
static char rbuf[BUFSZ];

static void die(const char *m) { perror(m); exit(1); }

static void set_events(int ep, int fd, unsigned ev) {
    struct epoll_event e = { .events = ev, .data.fd = fd };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) < 0) die("epoll_ctl MOD");
}

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (pend[fd]) { free(pend[fd]->buf); free(pend[fd]); pend[fd] = NULL; }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int lifetime = argc > 2 ? atoi(argv[2]) : 900;
    int tmo = argc > 3 ? atoi(argv[3]) : 1000;
    unsigned long idle = 0;
    time_t t_end = time(NULL) + lifetime;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(lfd, 511) < 0) die("listen");
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN, .data.fd = lfd };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    struct epoll_event evs[MAXEV];
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);

    for (;;) {
        int n = epoll_wait(ep, evs, MAXEV, tmo);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (n == 0 && (tmo > 0 || (++idle & 0xfffff) == 0) && time(NULL) > t_end) break;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            unsigned ev = evs[i].events;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            struct pending *p = pend[fd];
            if (!p && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t r = recv(fd, rbuf, BUFSZ, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { drop(ep, fd); continue; }
                if (r < 0) continue;
                ssize_t w = send(fd, rbuf, r, MSG_NOSIGNAL);
                if (w < 0) { if (errno != EAGAIN) { drop(ep, fd); continue; } w = 0; }
                if (w < r) {
                    p = malloc(sizeof *p);
                    p->len = r - w; p->off = 0; p->buf = malloc(p->len);
                    memcpy(p->buf, rbuf + w, p->len);
                    pend[fd] = p;
                    set_events(ep, fd, EPOLLOUT);
                }
            } else if (p && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
                ssize_t w = send(fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
                if (w < 0) { if (errno != EAGAIN) drop(ep, fd); continue; }
                p->off += w;
                if (p->off == p->len) { free(p->buf); free(p); pend[fd] = NULL; set_events(ep, fd, EPOLLIN); }
            }
        }
    }
    return 0;
}
