/* epoll on pipes: level- and edge-triggered items, EPOLLONESHOT and MOD, DEL, the errors of
 * epoll_ctl in the kernel's order, the ready list's order with maxevents 1, an item dropped
 * with its file's last reference (not with its fd), EPOLLHUP, epoll_pwait's signal mask.
 * Prints what it sees. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

static int ep;

static void ctl(const char *what, int op, int fd, unsigned events, int tag)
{
    struct epoll_event ev = {events, {.u32 = tag}};
    int r = epoll_ctl(ep, op, fd, &ev);
    printf("%-26s %d %s\n", what, r, r ? strerror(errno) : "");
}

static void wait_(const char *what, int max, int timeout)
{
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, max, timeout), i;
    printf("%-26s %d:", what, n);
    for (i = 0; i < n; i++)
        printf(" tag%u=%#x", evs[i].data.u32, evs[i].events);
    printf("%s\n", n < 0 ? strerror(errno) : "");
}

static void on_usr1(int s) { (void)s; }

int main(int argc, char **argv)
{
    int a[2], b[2], c[2], d, reg;
    char buf[16];
    struct stat st;
    sigset_t blk, none;

    setvbuf(stdout, NULL, _IONBF, 0);
    ep = epoll_create1(EPOLL_CLOEXEC);
    int r0 = epoll_create1(1);
    printf("epoll_create1 bad flags    %d %s\n", r0, strerror(errno));
    r0 = epoll_create(0);
    printf("epoll_create(0)            %d %s\n", r0, strerror(errno));
    fstat(ep, &st);
    printf("fstat mode %o, cloexec %d\n", st.st_mode, fcntl(ep, F_GETFD));
    printf("read on epoll fd           %zd %s\n", read(ep, buf, 1), strerror(errno));
    pipe(a);
    pipe(b);
    pipe(c);
    reg = open(argv[0], O_RDONLY);
    ctl("add regular file", EPOLL_CTL_ADD, reg, EPOLLIN, 9);
    ctl("add itself", EPOLL_CTL_ADD, ep, EPOLLIN, 9);
    ctl("add bad fd", EPOLL_CTL_ADD, 99, EPOLLIN, 9);
    ctl("mod absent", EPOLL_CTL_MOD, a[0], EPOLLIN, 9);
    ctl("del absent", EPOLL_CTL_DEL, a[0], 0, 9);
    ctl("add a LT", EPOLL_CTL_ADD, a[0], EPOLLIN, 1);
    ctl("add a again", EPOLL_CTL_ADD, a[0], EPOLLIN, 1);
    ctl("add b ET", EPOLL_CTL_ADD, b[0], EPOLLIN | EPOLLET, 2);
    ctl("add c ONESHOT", EPOLL_CTL_ADD, c[0], EPOLLIN | EPOLLONESHOT, 3);
    ctl("exclusive with MOD", EPOLL_CTL_MOD, c[0], EPOLLIN | EPOLLEXCLUSIVE, 3);
    wait_("nothing ready", 8, 0);
    wait_("nothing, 10 ms", 8, 10);
    write(a[1], "x", 1);
    write(b[1], "x", 1);
    write(c[1], "x", 1);
    wait_("all three", 8, 0);
    wait_("LT again, ET/1shot quiet", 8, 0);
    write(b[1], "y", 1);
    wait_("ET after a new write", 8, 0);
    read(b[0], buf, 2);
    wait_("ET after its read", 8, 0);
    ctl("rearm c", EPOLL_CTL_MOD, c[0], EPOLLIN, 3);
    wait_("c back as LT", 8, 0);
    wait_("maxevents 1", 1, 0);
    wait_("maxevents 1 again", 1, 0);
    wait_("maxevents 1 third", 1, 0);
    ctl("del a", EPOLL_CTL_DEL, a[0], 0, 1);
    wait_("without a", 8, 0);
    d = dup(c[0]);
    close(c[0]);
    wait_("c's fd closed, dup open", 8, 0);
    close(d);
    wait_("c's file closed", 8, 0);
    ctl("add writer end", EPOLL_CTL_ADD, a[1], EPOLLOUT, 4);
    wait_("a writable", 8, 0);
    close(a[0]);
    wait_("a's reader gone: ERR", 8, 0);
    ctl("del a writer", EPOLL_CTL_DEL, a[1], 0, 4);
    close(b[1]);
    wait_("b's writer gone: HUP", 8, 0);
    ctl("del b", EPOLL_CTL_DEL, b[0], 0, 2);
    wait_("empty", 8, 0);
    wait_("maxevents 0", 0, 0);

    /* epoll_pwait: a pending blocked signal let in by the call's mask */
    signal(SIGUSR1, on_usr1);
    sigemptyset(&blk);
    sigaddset(&blk, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &blk, NULL);
    raise(SIGUSR1);
    struct epoll_event ev;
    int r = epoll_pwait(ep, &ev, 1, 1000, &none);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("epoll_pwait                %d %s, usr1 blocked after %d\n", r, strerror(errno),
           sigismember(&now, SIGUSR1));
    return 0;
}
