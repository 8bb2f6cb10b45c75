// The reference UDP echo server of bench/udp-echo.sh: recvfrom, sendto, as plain as it
// gets (one socket, blocking, no batching), on 127.0.0.1:PORT.
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: udpecho PORT\n"); return 2; }
  struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 1; }
  static char buf[65536];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
  }
}
