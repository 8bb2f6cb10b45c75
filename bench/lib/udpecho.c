// The reference UDP echo server of bench/udp-echo.sh: recvfrom, sendto, as plain as it
// gets (one socket, blocking, no batching), on 127.0.0.1:PORT.
// `udpecho PORT mmsg`: the same, but up to 16 datagrams per recvmmsg and their echoes in
// one sendmmsg (what the Unix platform's UDP sockets do). bench/dns-appliance.sh runs both
// under dnsperf as servers that do no DNS work at all (dnsperf takes an echoed query as
// its answer): the cost of the loopback datagrams alone.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 16

static void batched(int s) {
  static char bufs[BATCH][4096];
  static struct mmsghdr msgs[BATCH];
  static struct iovec iov[BATCH];
  static struct sockaddr_in from[BATCH];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof bufs[i]};
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    // Blocks for the first datagram, then takes what is queued, up to BATCH.
    int n = recvmmsg(s, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    for (int sent = 0; sent < n;) {
      int k = sendmmsg(s, msgs + sent, n - sent, 0);
      if (k <= 0) break;
      sent += k;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "mmsg"))) {
    fprintf(stderr, "usage: udpecho PORT [mmsg]\n");
    return 2;
  }
  struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 1; }
  if (argc == 3) batched(s);
  static char buf[65536];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
  }
}
