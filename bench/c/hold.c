// bench/c/hold.c: opens N connections, echoes MSG bytes once on each (so the server has accepted
// and served every one), prints "READY n=<N>", then holds them open until stdin closes (or the
// TIMEOUT_S alarm fires). For the RSS-per-connection measurement.
// Usage: hold PORT N [MSG=1] [TIMEOUT_S=300]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT N [MSG] [TIMEOUT_S]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    int msg = argc > 3 ? atoi(argv[3]) : 1;
    int tmo = argc > 4 ? atoi(argv[4]) : 300;
    if (n < 1 || n > 100000 || msg < 1 || msg > (1 << 20) || tmo < 1) { fprintf(stderr, "bad args\n"); return 2; }
    alarm(tmo);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char *buf = malloc(msg), *rb = malloc(msg);
    memset(buf, 'h', msg);
    int one = 1;
    struct timeval tv = { .tv_sec = 10 };
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { perror("socket"); return 1; }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (send(fd, buf, msg, MSG_NOSIGNAL) != msg) { perror("send"); return 1; }
        for (int got = 0; got < msg;) {
            ssize_t r = recv(fd, rb, msg - got, 0);
            if (r <= 0) { fprintf(stderr, "echo failed on connection %d\n", i); return 1; }
            got += r;
        }
    }
    printf("READY n=%d\n", n);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return 0;
}
