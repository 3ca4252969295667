// udp_echo: the C peer of the datagram benchmark, a UDP echo server on 127.0.0.1 (or ::1).
//   udp_echo MODE LIFETIME_S [v6]
// MODE mmsg : epoll, then recvmmsg of up to 64 datagrams and one sendmmsg back from the same
//             slots (what DatagramBatch does from TypeScript);
//      basic: epoll, then recvfrom + sendto, one datagram per call (what node:dgram does).
// Prints "PORT n" once bound; exits after LIFETIME_S seconds. Loopback only.
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SIZE 2048

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: udp_echo mmsg|basic LIFETIME_S [v6]\n"); return 2; }
  int mmsg = strcmp(argv[1], "mmsg") == 0;
  int lifetime = atoi(argv[2]);
  int v6 = argc > 3 && strcmp(argv[3], "v6") == 0;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6; a->sin6_addr = in6addr_loopback; sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET; a->sin_addr.s_addr = htonl(INADDR_LOOPBACK); sl = sizeof *a;
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) { perror("bind"); return 1; }
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int port = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("PORT %d\n", port);
  fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  static char data[BATCH][SIZE];
  static struct sockaddr_storage names[BATCH];
  static struct iovec riov[BATCH], siov[BATCH];
  static struct mmsghdr rm[BATCH], sm[BATCH];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = siov[i].iov_base = data[i];
    riov[i].iov_len = SIZE;
    rm[i].msg_hdr.msg_name = sm[i].msg_hdr.msg_name = &names[i];
    rm[i].msg_hdr.msg_iov = &riov[i];
    sm[i].msg_hdr.msg_iov = &siov[i];
    rm[i].msg_hdr.msg_iovlen = sm[i].msg_hdr.msg_iovlen = 1;
  }
  time_t end = time(NULL) + lifetime;
  while (time(NULL) < end) {
    struct epoll_event out[4];
    if (epoll_wait(ep, out, 4, 1000) <= 0) continue;
    if (mmsg) {
      for (;;) {
        for (int i = 0; i < BATCH; i++) rm[i].msg_hdr.msg_namelen = sizeof names[i];
        int n = recvmmsg(fd, rm, BATCH, 0, NULL);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
          siov[i].iov_len = rm[i].msg_len;
          sm[i].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
        }
        for (int done = 0; done < n;) {
          int w = sendmmsg(fd, sm + done, n - done, 0);
          if (w <= 0) break;
          done += w;
        }
        if (n < BATCH) break;
      }
    } else {
      for (;;) {
        socklen_t nl = sizeof names[0];
        ssize_t n = recvfrom(fd, data[0], SIZE, 0, (struct sockaddr *)&names[0], &nl);
        if (n < 0) break;
        sendto(fd, data[0], n, 0, (struct sockaddr *)&names[0], nl);
      }
    }
  }
  return 0;
}
