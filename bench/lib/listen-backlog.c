/* Preloaded into QEMU by bench/kv.sh and tests/tests/kv.rs: every listen(2) gets a backlog of at least 128.
 *
 * libslirp (QEMU's user network) listens on a forwarded port with a backlog of 1. When
 * redis-benchmark opens its 50 connections at once, the host's accept queue overflows
 * (/proc/net/netstat ListenOverflows), the host drops those handshakes, and the clients
 * wait for their retransmissions (1, 3, 7 ... s; a data segment's back-off reaches
 * ~50 s): the run measures the host's queue, not the guest. Both guests of the
 * benchmark, the kv kernel and the Linux guest, run under the same preload.
 *
 *   gcc -shared -fPIC -O2 -o listen-backlog.so listen-backlog.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

int listen(int fd, int backlog) {
    static int (*real)(int, int);
    if (!real)
        real = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    return real(fd, backlog < 128 ? 128 : backlog);
}
