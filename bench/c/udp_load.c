// udp_load: a closed-loop UDP load generator for the datagram benchmark, loopback only.
//   udp_load PORT SECONDS SOCKETS WINDOW LENGTH [v6]
// SOCKETS connected UDP sockets each keep WINDOW datagrams of LENGTH bytes in flight: every echo
// received releases one more send. A socket that hears nothing for 200 ms counts its WINDOW as
// lost and sends a new window, so the loop never stalls. Bounded by SECONDS (after a 0.5 s
// warm-up). Client I/O is batched (recvmmsg / sendmmsg of up to 64), so that one client core can
// drive a server faster than a datagram-at-a-time client could. Prints one line:
// echoes=N seconds=S lost=N per_s=N.
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXS 256
#define BATCH 64

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: udp_load PORT SECONDS SOCKETS WINDOW LENGTH [v6]\n"); return 2; }
  int port = atoi(argv[1]);
  double secs = atof(argv[2]);
  int S = atoi(argv[3]), W = atoi(argv[4]), L = atoi(argv[5]);
  int v6 = argc > 6 && strcmp(argv[6], "v6") == 0;
  if (S < 1 || S > MAXS || W < 1 || L < 1 || L > 65507) { fprintf(stderr, "udp_load: bad arguments\n"); return 2; }
  struct sockaddr_storage to;
  memset(&to, 0, sizeof to);
  socklen_t tl;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
    a->sin6_family = AF_INET6; a->sin6_addr = in6addr_loopback; a->sin6_port = htons(port); tl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&to;
    a->sin_family = AF_INET; a->sin_addr.s_addr = htonl(INADDR_LOOPBACK); a->sin_port = htons(port); tl = sizeof *a;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int fds[MAXS];
  double last[MAXS];
  char *payload = calloc(1, L);
  for (int i = 0; i < L; i++) payload[i] = (char)i;
  // Receive slots and send headers, laid out once: every send sends the same payload.
  static char in[BATCH][2048];
  static struct iovec riov[BATCH], siov[BATCH];
  static struct mmsghdr rm[BATCH], sm[BATCH];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = in[i];
    riov[i].iov_len = sizeof in[i];
    rm[i].msg_hdr.msg_iov = &riov[i];
    rm[i].msg_hdr.msg_iovlen = 1;
    siov[i].iov_base = payload;
    siov[i].iov_len = L;
    sm[i].msg_hdr.msg_iov = &siov[i];
    sm[i].msg_hdr.msg_iovlen = 1;
  }
  for (int s = 0; s < S; s++) {
    fds[s] = socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int buf = 1 << 20;
    setsockopt(fds[s], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    connect(fds[s], (struct sockaddr *)&to, tl);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = s };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[s], &ev);
  }
  double start = now(), warm = start + 0.5, stop = warm + secs, t;
  for (int s = 0; s < S; s++) {
    for (int k = 0; k < W; k++) send(fds[s], payload, L, 0);
    last[s] = start;
  }
  long long echoes = 0, lost = 0;
  int measuring = 0;
  while ((t = now()) < stop) {
    if (!measuring && t >= warm) { measuring = 1; echoes = 0; lost = 0; }
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 50);
    for (int e = 0; e < n; e++) {
      int s = evs[e].data.u32;
      for (;;) {
        int r = recvmmsg(fds[s], rm, BATCH, 0, NULL);
        if (r <= 0) break;
        echoes += r;
        for (int done = 0; done < r;) {
          int w = sendmmsg(fds[s], sm, r - done, 0);
          if (w <= 0) break;
          done += w;
        }
        if (r < BATCH) break;
      }
      last[s] = t;
    }
    for (int s = 0; s < S; s++) {
      if (t - last[s] > 0.2) {
        lost += W;
        for (int k = 0; k < W; k++) send(fds[s], payload, L, 0);
        last[s] = t;
      }
    }
  }
  double took = now() - warm;
  printf("echoes=%lld seconds=%.3f lost=%lld per_s=%.0f\n", echoes, took, lost, echoes / took);
  return 0;
}
