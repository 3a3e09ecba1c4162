#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int order, at_usr1, at_usr2, count;

static void on_sig(int sig) {
    count++;
    if (sig == SIGUSR1) at_usr1 = ++order; else at_usr2 = ++order;
}

static void once(int sig) { printf("one-shot handler: %d\n", sig); }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t set, old, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR2);
    raise(SIGUSR1);
    raise(SIGUSR1);                 /* standard signals do not queue */
    sigpending(&pend);
    printf("blocked: count=%d pending usr1=%d usr2=%d\n", count, sigismember(&pend, SIGUSR1),
           sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblock: count=%d usr1 ran %s usr2\n", count, at_usr1 < at_usr2 ? "before" : "after");
    sigpending(&pend);
    printf("pending now: %d\n", sigismember(&pend, SIGUSR1));

    /* SA_RESETHAND: the first delivery resets to SIG_DFL */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = once;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    printf("after one-shot: handler is %s\n", now.sa_handler == SIG_DFL ? "SIG_DFL" : "still set");
    /* sigsuspend waits for a blocked signal */
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR1);
    sigset_t wait;
    sigemptyset(&wait);
    int r = sigsuspend(&wait);
    printf("sigsuspend returned %d, count=%d\n", r, count);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    fflush(stdout);
    raise(SIGUSR2);                 /* the default action now: killed */
    printf("not reached\n");
    return 0;
}
