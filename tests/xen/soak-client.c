/* The Xen soak's load generator: HTTP/1.0 GETs against one server, sequential or
 * concurrent, each checked (status 200, Content-Length present and equal to the body
 * and to the expected size), with a deadline per connection. It runs in the harness's
 * dom0, where busybox's wget segfaults and dozens of busybox processes started at once
 * crash (docs/xen-under-qemu.md): one static process, no threads, no name lookups.
 * Built on the host by tests/xen/run-guest.sh with `gcc -O2 -static`.
 *
 *   soak-client [-t MS] [-b BYTES] [-x HOOK] [-p PATH] ADDR PORT seq N
 *   soak-client [-t MS] [-b BYTES] [-x HOOK] [-p PATH] ADDR PORT conc C TOTAL
 *
 * -t   deadline of one connection, connect to end of response (default 20000 ms)
 * -b   expected body size (default: any, as long as it matches Content-Length)
 * -x   shell command run once, at the first failure (the diagnostics), then the load
 *      goes on
 * -p   the path to GET (default /)
 * seq  N connections one after the other
 * conc TOTAL connections, C of them open at any time (a new one starts as soon as one
 *      ends)
 *
 * Output: one `FAIL <mode> <n> <reason>` line per failure (the first 20; later ones
 * are counted), progress every 500 connections, then
 *   SOAK <mode> ok=<n> failed=<n> first_failure=<n|-> ms=<elapsed> max_ms=<slowest>
 * After 30 failures in a row the load stops early (`STALLED`): a guest that has
 * stopped answering is diagnosed once and not waited on thousands of times.
 * Exit status: 0 when every connection succeeded, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 1000
#define RESP_MAX 65536
#define STALL_RUN 30
#define PRINT_FAILS 20

static struct sockaddr_in server;
static int deadline_ms = 20000;
static long expect_bytes = -1;
static const char *hook;
static char request[512];
static size_t request_len;

static long ok_count, fail_count, first_failure = -1, run_of_failures, max_ms;

static long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* One connection's state. */
struct conn {
	int fd;
	int state; /* 0 connecting, 1 sending, 2 receiving, 3 done */
	size_t sent;
	char *buf;
	size_t len;
	long start;
	long index;
};

/* Checks a complete response; returns NULL when it is good, else why not. */
static const char *check(const char *buf, size_t len) {
	static char why[128];
	if (len < 12 || (memcmp(buf, "HTTP/1.0 200", 12) && memcmp(buf, "HTTP/1.1 200", 12))) {
		size_t n = 0;
		while (n < len && n < 40 && buf[n] != '\r' && buf[n] != '\n') n++;
		snprintf(why, sizeof why, "status line '%.*s' (%zu bytes)", (int)n, buf, len);
		return why;
	}
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end) {
		snprintf(why, sizeof why, "no end of header in %zu bytes", len);
		return why;
	}
	size_t head = (size_t)(end - buf) + 4;
	long body = (long)(len - head);
	long declared = -1;
	for (const char *p = buf; p < end; p++) {
		if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15)) {
			declared = strtol(p + 15, NULL, 10);
			break;
		}
	}
	if (declared < 0) return "no Content-Length";
	if (declared != body) {
		snprintf(why, sizeof why, "body %ld bytes, Content-Length %ld", body, declared);
		return why;
	}
	if (expect_bytes >= 0 && body != expect_bytes) {
		snprintf(why, sizeof why, "body %ld bytes, expected %ld", body, expect_bytes);
		return why;
	}
	return NULL;
}

static void failed(const char *mode, long index, const char *why) {
	fail_count++;
	run_of_failures++;
	if (fail_count <= PRINT_FAILS) printf("FAIL %s %ld %s\n", mode, index, why);
	if (first_failure < 0) {
		first_failure = index;
		fflush(stdout);
		if (hook && system(hook) == -1) perror("soak-client: hook");
		fflush(stdout);
	}
}

static void succeeded(long start) {
	long ms = now_ms() - start;
	if (ms > max_ms) max_ms = ms;
	ok_count++;
	run_of_failures = 0;
}

static void conn_open(struct conn *c, long index) {
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->state = 0;
	c->sent = 0;
	c->len = 0;
	c->start = now_ms();
	c->index = index;
	if (c->fd < 0) return;
	if (connect(c->fd, (struct sockaddr *)&server, sizeof server) == 0) c->state = 1;
	else if (errno != EINPROGRESS) {
		c->state = -errno;
	}
}

/* Advances `c` as far as it can go without blocking; returns 1 once it is finished
 * (counted as a success or a failure). */
static int conn_step(const char *mode, struct conn *c, short revents) {
	char why[160];
	if (c->fd < 0) {
		snprintf(why, sizeof why, "socket: %s", strerror(errno));
		failed(mode, c->index, why);
		return 1;
	}
	if (c->state < 0) {
		snprintf(why, sizeof why, "connect: %s", strerror(-c->state));
		goto fail;
	}
	if (c->state == 0) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP))) goto pending;
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			snprintf(why, sizeof why, "connect: %s", strerror(err));
			goto fail;
		}
		c->state = 1;
	}
	if (c->state == 1) {
		ssize_t n = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			snprintf(why, sizeof why, "send: %s", strerror(errno));
			goto fail;
		}
		if (n > 0) c->sent += (size_t)n;
		if (c->sent < request_len) goto pending;
		c->state = 2;
	}
	for (;;) {
		if (c->len == RESP_MAX) {
			snprintf(why, sizeof why, "response longer than %d bytes", RESP_MAX);
			goto fail;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, RESP_MAX - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0) break;
		if (errno == EAGAIN) goto pending;
		snprintf(why, sizeof why, "recv after %zu bytes: %s", c->len, strerror(errno));
		goto fail;
	}
	const char *bad = check(c->buf, c->len);
	close(c->fd);
	c->state = 3;
	if (bad) {
		failed(mode, c->index, bad);
	} else {
		succeeded(c->start);
	}
	return 1;
pending:
	if (now_ms() - c->start < deadline_ms) return 0;
	snprintf(why, sizeof why, "no complete response in %d ms (state %s, %zu bytes)",
		 deadline_ms, c->state == 0 ? "connecting" : c->state == 1 ? "sending" : "receiving",
		 c->len);
fail:
	close(c->fd);
	c->state = 3;
	failed(mode, c->index, why);
	return 1;
}

/* Runs `total` connections, numbered from `first`, with at most `width` open at once
 * (seq: width 1); stops starting new ones after STALL_RUN failures in a row. */
static void pool(const char *mode, struct conn *conns, int width, long total, long first) {
	static struct pollfd pfd[MAX_CONC];
	long started = 0, finished = 0;
	for (int i = 0; i < width; i++) conns[i].state = 3;
	while (finished < started || (started < total && run_of_failures < STALL_RUN)) {
		for (int i = 0; i < width; i++) {
			if (conns[i].state == 3 && started < total && run_of_failures < STALL_RUN) {
				conn_open(&conns[i], first + started);
				started++;
			}
		}
		int n = 0;
		for (int i = 0; i < width; i++) {
			struct conn *c = &conns[i];
			pfd[i].fd = c->state == 3 || c->fd < 0 || c->state < 0 ? -1 : c->fd;
			pfd[i].events = c->state <= 1 ? POLLOUT : POLLIN;
			pfd[i].revents = 0;
			n++;
		}
		poll(pfd, (nfds_t)n, 100);
		for (int i = 0; i < width; i++) {
			struct conn *c = &conns[i];
			if (c->state == 3) continue;
			short rev = pfd[i].revents;
			if (c->fd < 0 || c->state < 0 || rev || now_ms() - c->start >= deadline_ms ||
			    c->state == 1) {
				if (conn_step(mode, c, rev)) {
					finished++;
					if (finished % 500 == 0)
						printf("progress %s %ld/%ld ok=%ld failed=%ld\n", mode, finished,
						       total, ok_count, fail_count);
				}
			}
		}
	}
}

static int usage(void) {
	fprintf(stderr, "usage: soak-client [-t MS] [-b BYTES] [-x HOOK] [-p PATH] ADDR PORT "
			"seq N | conc C TOTAL\n");
	return 2;
}

int main(int argc, char **argv) {
	const char *path = "/";
	int opt;
	while ((opt = getopt(argc, argv, "t:b:x:p:")) != -1) {
		switch (opt) {
		case 't': deadline_ms = atoi(optarg); break;
		case 'b': expect_bytes = atol(optarg); break;
		case 'x': hook = optarg; break;
		case 'p': path = optarg; break;
		default: return usage();
		}
	}
	if (argc - optind < 4) return usage();
	server.sin_family = AF_INET;
	server.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &server.sin_addr) != 1) return usage();
	const char *mode = argv[optind + 2];
	request_len = (size_t)snprintf(request, sizeof request,
				       "GET %s HTTP/1.0\r\nHost: soak\r\nUser-Agent: soak-client\r\n\r\n",
				       path);
	setvbuf(stdout, NULL, _IOLBF, 0);
	long start = now_ms();
	int width;
	long total;
	if (!strcmp(mode, "seq")) {
		width = 1;
		total = atol(argv[optind + 3]);
	} else if (!strcmp(mode, "conc")) {
		if (argc - optind < 5) return usage();
		width = atoi(argv[optind + 3]);
		total = atol(argv[optind + 4]);
		if (width < 1 || width > MAX_CONC) return usage();
	} else {
		return usage();
	}
	struct conn *conns = calloc((size_t)width, sizeof *conns);
	for (int i = 0; i < width; i++) conns[i].buf = malloc(RESP_MAX);
	pool(mode, conns, width, total, 0);
	int stalled = run_of_failures >= STALL_RUN;
	if (stalled) printf("STALLED %s after %ld failures in a row\n", mode, run_of_failures);
	if (first_failure >= 0)
		printf("SOAK %s ok=%ld failed=%ld first_failure=%ld ms=%ld max_ms=%ld\n", mode,
		       ok_count, fail_count, first_failure, now_ms() - start, max_ms);
	else
		printf("SOAK %s ok=%ld failed=%ld first_failure=- ms=%ld max_ms=%ld\n", mode,
		       ok_count, fail_count, now_ms() - start, max_ms);
	return fail_count ? 1 : 0;
}
