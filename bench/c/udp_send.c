// udp_send: the C peer of the GSO send benchmark (bench/gso.ts). Sends COUNT datagrams of SIZE
// bytes to 127.0.0.1:PORT, one way, as fast as it can, and prints
// `sent=N cpu_us=X wall_us=Y` (this process's user + system CPU over the send loop, which on
// loopback includes the kernel's work for each datagram), the format bench/servers/udp-sender.ts
// prints for the Node senders.
//   udp_send MODE COUNT SIZE PORT      MODE: sendto (one sendto(2) each) | gso (UDP_SEGMENT:
//                                      one sendto of up to 64 datagrams, as m-socket's sendSegments)
// The socket blocks when its buffer is full (waiting costs no CPU), so every datagram is sent.
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double cpu_us(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

static double wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: udp_send sendto|gso COUNT SIZE PORT\n"); return 2; }
  int gso = strcmp(argv[1], "gso") == 0;
  if (!gso && strcmp(argv[1], "sendto") != 0) { fprintf(stderr, "udp_send: unknown mode %s\n", argv[1]); return 2; }
  long count = atol(argv[2]);
  int size = atoi(argv[3]), port = atoi(argv[4]);
  if (count < 1 || size < 1 || size > 65507 || port < 1 || port > 65535) { fprintf(stderr, "udp_send: bad arguments\n"); return 2; }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001) };
  int per_call = gso ? 65507 / size : 1;
  if (per_call > 64) per_call = 64;
  if (gso && setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof size) != 0) { perror("udp_send: UDP_SEGMENT"); return 1; }
  char *payload = malloc((size_t)per_call * size);
  memset(payload, 0x5a, (size_t)per_call * size);
  double c0 = cpu_us(), w0 = wall_us();
  long sent = 0;
  while (sent < count) {
    long n = count - sent < per_call ? count - sent : per_call;
    if (sendto(fd, payload, (size_t)n * size, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("udp_send: sendto"); return 1; }
    sent += n;
  }
  printf("sent=%ld cpu_us=%.0f wall_us=%.0f\n", sent, cpu_us() - c0, wall_us() - w0);
  close(fd);
  free(payload);
  return 0;
}
