/* ppoll / pselect6 with a signal mask: the mask applies atomically for the call's duration;
 * a blocked signal it unblocks interrupts the call with EINTR, the handler runs with the old
 * mask (plus its own), and the old mask is back after.  Prints what it sees, line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int hits;
static volatile int usr2_blocked_in_handler = -1;

static void on_sig(int sig)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    usr2_blocked_in_handler = sigismember(&now, SIGUSR2);
    hits++;
    (void)sig;
}

static void show(const char *what, int r, int err)
{
    sigset_t now, pend;
    sigprocmask(SIG_BLOCK, NULL, &now);
    sigpending(&pend);
    printf("%-28s r=%d %s hits=%d in-handler-usr2=%d blocked:usr1=%d usr2=%d alrm=%d "
           "pending:usr1=%d\n", what, r, r < 0 ? strerror(err) : "ok", hits,
           usr2_blocked_in_handler, sigismember(&now, SIGUSR1), sigismember(&now, SIGUSR2),
           sigismember(&now, SIGALRM), sigismember(&pend, SIGUSR1));
    usr2_blocked_in_handler = -1;
}

int main(void)
{
    int p[2];
    sigset_t block, empty, only_usr1;
    struct sigaction sa;
    struct timespec ts = {1, 0}, short_ts = {0, 20 * 1000 * 1000};
    struct pollfd pfd;
    fd_set rd;
    int r;

    setvbuf(stdout, NULL, _IONBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigemptyset(&empty);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGALRM);
    sigemptyset(&only_usr1);
    sigaddset(&only_usr1, SIGUSR1);
    sigprocmask(SIG_SETMASK, &block, NULL);
    pipe(p);
    pfd.fd = p[0];
    pfd.events = POLLIN;

    /* 1. pending and blocked; ppoll's empty mask lets it in: EINTR, handler, old mask back */
    raise(SIGUSR1);
    show("pending before ppoll", 0, 0);
    r = ppoll(&pfd, 1, &ts, &empty);
    show("ppoll empty mask", r, errno);

    /* 2. the call's mask still blocks it: a timeout, the signal stays pending */
    raise(SIGUSR1);
    r = ppoll(&pfd, 1, &short_ts, &only_usr1);
    show("ppoll mask blocks usr1", r, errno);

    /* 3. a ready descriptor wins: returns 1, the signal stays pending and blocked */
    write(p[1], "x", 1);
    r = ppoll(&pfd, 1, &ts, &empty);
    show("ppoll ready fd", r, errno);
    sigprocmask(SIG_SETMASK, &empty, NULL);     /* delivers the pending one now */
    show("unblocked after", 0, 0);
    sigprocmask(SIG_SETMASK, &block, NULL);
    read(p[0], &r, 1);

    /* 4. pselect6, the same as 1 */
    raise(SIGUSR1);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty);
    show("pselect empty mask", r, errno);

    /* 5. pselect with a ready descriptor and a mask that blocks everything */
    write(p[1], "y", 1);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &block);
    show("pselect ready fd", r, errno);
    printf("read set has the pipe: %d\n", FD_ISSET(p[0], &rd));
    read(p[0], &r, 1);

    /* 6. a signal that arrives while the call sleeps: SIGALRM from a timer, blocked outside */
    struct itimerval it = {{0, 0}, {0, 30 * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    r = ppoll(&pfd, 1, NULL, &empty);
    show("ppoll woken by alarm", r, errno);
    setitimer(ITIMER_REAL, &it, NULL);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    r = pselect(p[0] + 1, &rd, NULL, NULL, NULL, &empty);
    show("pselect woken by alarm", r, errno);

    /* 7. no mask (NULL): plain ppoll/pselect, the blocked mask is the process's */
    r = ppoll(&pfd, 1, &short_ts, NULL);
    show("ppoll no mask", r, errno);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = {0, 10000};
    r = select(p[0] + 1, &rd, NULL, NULL, &tv);
    show("select timeout", r, errno);
    return 0;
}
