#define _GNU_SOURCE
/* A pipe's /proc/self/fd/N link opened anew (fifo_open): O_RDWR gives one descriptor on both
 * ends (reads and writes, no SIGPIPE, no EOF while it is open), O_WRONLY a writer, O_RDONLY a
 * reader; a read end refuses writes and a write end reads (EBADF); pipe2's O_NONBLOCK. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int reopen(int fd, int flags) {
    char path[64], a[64] = "", b[64] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int g = open(path, flags);
    if (g < 0) { printf("open %s: errno %d\n", path, errno); return g; }
    snprintf(path, sizeof path, "/proc/self/fd/%d", g);
    readlink(path, a, sizeof a - 1);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    readlink(path, b, sizeof b - 1);
    struct stat st, ls;
    fstat(g, &st);
    snprintf(path, sizeof path, "/proc/self/fd/%d", g);
    lstat(path, &ls);
    printf("reopen %o: same pipe %d, fifo %d, link mode %o, F_GETFL %o\n", flags,
           strcmp(a, b) == 0, S_ISFIFO(st.st_mode), ls.st_mode & 0777,
           fcntl(g, F_GETFL) & 0xfff);
    return g;
}

static void rw(const char *what, int wfd, int rfd, const char *msg) {
    char buf[16] = "";
    long w = write(wfd, msg, strlen(msg));
    int we = errno;
    long r = read(rfd, buf, sizeof buf - 1);
    printf("%s: write %ld (%d) read %ld (%d) '%s'\n", what, w, w < 0 ? we : 0, r,
           r < 0 ? errno : 0, r > 0 ? buf : "");
}

static void poll1(const char *what, int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    int n = poll(&p, 1, 0);
    printf("poll %s: %d revents %x\n", what, n, p.revents);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    pipe(p);
    int g = reopen(p[0], O_RDWR);
    rw("rdwr writes, read end reads", g, p[0], "abc");
    rw("write end writes, rdwr reads", p[1], g, "xy");
    poll1("rdwr, empty", g);
    close(p[1]);
    rw("no other writer: rdwr to itself", g, g, "z");
    close(p[0]);
    rw("no other reader: rdwr to itself", g, g, "q");
    poll1("rdwr alone", g);
    int w = reopen(g, O_WRONLY);
    int r = reopen(g, O_RDONLY);
    rw("new writer, new reader", w, r, "hello");
    close(g);
    close(r);
    rw("writer with no reader left", w, w, "x");
    close(w);

    pipe(p);
    rw("write to a read end", p[0], p[1], "a");
    rw("read from a write end", p[1], p[1], "b");
    close(p[0]);
    close(p[1]);
    pipe2(p, O_NONBLOCK);
    char c;
    long n = read(p[0], &c, 1);
    printf("pipe2 O_NONBLOCK: read %ld errno %d, F_GETFL %o %o\n", n, errno,
           fcntl(p[0], F_GETFL) & 0xfff, fcntl(p[1], F_GETFL) & 0xfff);
    return 0;
}
