#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got, info_code, info_pid_ok, blocked_inside;

static void on_usr1(int sig) {
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    blocked_inside = sigismember(&cur, SIGUSR1) + 2 * sigismember(&cur, SIGUSR2);
    got = sig;
    printf("handler: signal %d\n", sig);
}

static void on_info(int sig, siginfo_t *si, void *uc) {
    info_code = si->si_code;
    info_pid_ok = si->si_pid == getpid() && si->si_signo == sig;
    printf("siginfo handler: signal %d\n", sig);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    printf("before raise\n");
    volatile long acc = 0;
    for (int i = 0; i < 10; i++) acc += i * 3;
    int r = raise(SIGUSR1);
    for (int i = 0; i < 10; i++) acc += i;
    printf("after raise: r=%d got=%d acc=%ld blocked-inside=%d\n", r, got, acc, blocked_inside);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("blocked after return: %d\n", sigismember(&now, SIGUSR1));

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    printf("after kill: code=%d (SI_USER=%d) pid_ok=%d\n", info_code, SI_USER, info_pid_ok);
    raise(SIGUSR2);
    printf("after raise: code=%d (SI_TKILL=%d) pid_ok=%d\n", info_code, SI_TKILL, info_pid_ok);

    signal(SIGTERM, SIG_IGN);
    raise(SIGTERM);
    printf("SIGTERM ignored\n");
    signal(SIGUSR1, SIG_DFL);
    struct sigaction old;
    sigaction(SIGUSR2, NULL, &old);
    printf("old SIGUSR2 has SA_SIGINFO: %d\n", !!(old.sa_flags & SA_SIGINFO));
    fflush(stdout);
    raise(SIGUSR1);
    printf("not reached\n");
    return 0;
}
