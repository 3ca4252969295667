// udp_load: the UDP load generator of the datagram benchmark, loopback only.
//   udp_load PORT SECONDS SOCKETS WINDOW LENGTH [v6] [blast]
// Closed loop (the default): SOCKETS connected UDP sockets each keep WINDOW datagrams of LENGTH
// bytes in flight: every echo received releases one more send. A socket that hears nothing for
// 200 ms counts its WINDOW as lost and sends a new window, so the loop never stalls. Prints one
// line: echoes=N seconds=S lost=N per_s=N.
// Blast (open loop): each turn sends WINDOW datagrams on every socket in one sendmmsg each,
// without waiting for echoes, then reads every echo waiting (recvmmsg): the offered rate is what
// the client core can send. Datagrams sent after the warm-up carry a mark (their first byte), so
// that only their echoes count; after SECONDS the sending stops and echoes are still read for a
// 300 ms drain. Prints one line: echoes=N (marked echoes, by the drain's end) seconds=S sent=N
// (marked) lost=N (sent - echoes) loss_pct=X per_s=N (marked echoes received before the stop, per
// second) offered_per_s=N echoes_all=N (every echo, warm-up and drain included) client_drops=N
// server_drops=N (datagrams the kernel dropped at a full receive buffer: the client's sockets
// over the whole run, the server's socket from the warm-up's end, both from /proc/net/udp).
// Both: bounded by SECONDS after a 0.5 s warm-up; client I/O is batched (recvmmsg / sendmmsg of up
// to 64), so that one client core can drive a server faster than a datagram-at-a-time client.
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
#define DRAIN_S 0.3

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Datagrams dropped at full receive buffers, from /proc/net/udp (or udp6): the sum of the `drops`
 * column over the sockets whose local port is in ports[0..n-1]. -1 if the file cannot be read.
 */
static long long drops_of(const int *ports, int n, int v6) {
  FILE *f = fopen(v6 ? "/proc/net/udp6" : "/proc/net/udp", "r");
  if (f == NULL) return -1;
  char line[512];
  long long total = 0;
  if (fgets(line, sizeof line, f) == NULL) { fclose(f); return -1; } // the header
  while (fgets(line, sizeof line, f) != NULL) {
    // "  sl: LOCALHEX:PORT REMHEX:PORT st ... drops": the local port follows the first ':' after "sl:".
    char *local = strchr(line, ':');
    if (local == NULL) continue;
    char *colon = strchr(local + 1, ':');
    if (colon == NULL) continue;
    int lport = (int)strtol(colon + 1, NULL, 16);
    int mine = 0;
    for (int i = 0; i < n && !mine; i++) mine = ports[i] == lport;
    if (!mine) continue;
    char *end = line + strlen(line);
    while (end > line && (end[-1] == '\n' || end[-1] == ' ')) end--;
    char *last = end;
    while (last > line && last[-1] != ' ') last--;
    total += atoll(last);
  }
  fclose(f);
  return total;
}

static int blast(int *fds, int S, int W, int L, char *payload, int port, double secs, int v6);

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: udp_load PORT SECONDS SOCKETS WINDOW LENGTH [v6] [blast]\n"); return 2; }
  int port = atoi(argv[1]);
  double secs = atof(argv[2]);
  int S = atoi(argv[3]), W = atoi(argv[4]), L = atoi(argv[5]);
  int v6 = 0, open_loop = 0;
  for (int i = 6; i < argc; i++) {
    if (strcmp(argv[i], "v6") == 0) v6 = 1;
    else if (strcmp(argv[i], "blast") == 0) open_loop = 1;
    else { fprintf(stderr, "udp_load: unknown argument %s\n", argv[i]); return 2; }
  }
  if (S < 1 || S > MAXS || W < 1 || W > BATCH * 16 || L < 1 || L > 65507 || !(secs > 0 && secs <= 600)) { fprintf(stderr, "udp_load: bad arguments\n"); return 2; }
  if (open_loop && W > BATCH) { fprintf(stderr, "udp_load: blast sends WINDOW <= %d datagrams per sendmmsg\n", BATCH); return 2; }
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
  if (open_loop) return blast(fds, S, W, L, payload, port, secs, v6);
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

/*
 * The open loop. Sends from two payloads that differ only in their first byte: 0 during the
 * warm-up, 1 after it. An echo is counted as measured when its first byte is 1, so a datagram
 * sent during the warm-up and echoed after it is not counted against the measured sends.
 */
static int blast(int *fds, int S, int W, int L, char *payload, int port, double secs, int v6) {
  char *marked = malloc(L);
  memcpy(marked, payload, L);
  payload[0] = 0;
  marked[0] = 1;
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
  int ports[MAXS];
  for (int s = 0; s < S; s++) {
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    getsockname(fds[s], (struct sockaddr *)&me, &ml);
    ports[s] = ntohs(v6 ? ((struct sockaddr_in6 *)&me)->sin6_port : ((struct sockaddr_in *)&me)->sin_port);
  }
  long long server_drops_before = 0;
  double start = now(), warm = start + 0.5, stop = warm + secs, end = stop + DRAIN_S, t;
  long long sent = 0, echoes = 0, in_window = 0, all = 0;
  int measuring = 0;
  while ((t = now()) < end) {
    int sending = t < stop;
    if (!measuring && t >= warm) {
      measuring = 1;
      server_drops_before = drops_of(&port, 1, v6);
      for (int i = 0; i < BATCH; i++) siov[i].iov_base = marked;
    }
    if (sending) {
      for (int s = 0; s < S; s++) {
        int w = sendmmsg(fds[s], sm, W, MSG_DONTWAIT);
        if (w > 0 && measuring) sent += w;
      }
    } else {
      usleep(1000); // the drain: nothing is sent; a little time for what is still on its way

    }
    for (int s = 0; s < S; s++) {
      for (int round = 0; round < 16; round++) {
        int r = recvmmsg(fds[s], rm, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        all += r;
        for (int i = 0; i < r; i++) {
          if (rm[i].msg_len > 0 && in[i][0] == 1) {
            echoes++;
            if (sending) in_window++;
          }
        }
        if (r < BATCH) break;
      }
    }
  }
  long long client_drops = drops_of(ports, S, v6);
  long long server_drops = drops_of(&port, 1, v6);
  if (server_drops >= 0 && server_drops_before >= 0) server_drops -= server_drops_before;
  double took = stop - warm;
  long long lost = sent - echoes;
  printf("echoes=%lld seconds=%.3f sent=%lld lost=%lld loss_pct=%.3f per_s=%.0f offered_per_s=%.0f echoes_all=%lld client_drops=%lld server_drops=%lld\n",
         echoes, took, sent, lost, sent > 0 ? 100.0 * lost / sent : 0.0, in_window / took, sent / took, all, client_drops, server_drops);
  return 0;
}
