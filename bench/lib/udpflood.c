// UDP echo load generator for bench/udp-echo.sh: keeps WINDOW datagrams of SIZE bytes in
// flight to HOST:PORT for SECONDS, counting the echoes; prints "<echoes/s> <lost>".
// A lost datagram (no echo within 200 ms of the last one) is replaced, so loss cannot
// stall the window.
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: udpflood HOST PORT SIZE WINDOW SECONDS\n");
    return 2;
  }
  int size = atoi(argv[3]), window = atoi(argv[4]);
  double seconds = atof(argv[5]);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof to) < 0) { perror("socket"); return 1; }
  char *buf = calloc(1, size > 0 ? size : 1);
  char *in = malloc(65536);
  long echoes = 0, lost = 0;
  for (int i = 0; i < window; i++) send(s, buf, size, 0);
  double start = now(), end = start + seconds, last = start;
  struct pollfd p = {.fd = s, .events = POLLIN};
  while (now() < end) {
    int r = poll(&p, 1, 200);
    if (r == 0) {  // nothing for 200 ms: count the window as lost, refill it
      lost += window;
      for (int i = 0; i < window; i++) send(s, buf, size, 0);
      continue;
    }
    while (recv(s, in, 65536, MSG_DONTWAIT) >= 0) {
      echoes++;
      send(s, buf, size, 0);
    }
    last = now();
  }
  printf("%.0f %ld\n", echoes / (last - start), lost);
  return 0;
}
