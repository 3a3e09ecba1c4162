#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t chld_pid;
static volatile int chld_code, chld_status, chld_count;

static void on_chld(int sig, siginfo_t *si, void *uc) {
    chld_count++;
    chld_pid = si->si_pid;
    chld_code = si->si_code;
    chld_status = si->si_status;
}

static void on_pipe(int sig) { printf("SIGPIPE handler\n"); }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t set, empty;
    sigemptyset(&set);
    sigemptyset(&empty);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child running\n");
        fflush(stdout);
        _exit(7);
    }
    while (chld_count == 0)
        sigsuspend(&empty);
    printf("SIGCHLD: from child %d, code %s, status %d\n", chld_pid == pid,
           chld_code == CLD_EXITED ? "CLD_EXITED" : "?", chld_status);
    int st;
    pid_t w = waitpid(pid, &st, 0);
    printf("waitpid: %d exit %d\n", w == pid, WEXITSTATUS(st));
    sigprocmask(SIG_UNBLOCK, &set, NULL);

    /* a child killed by a signal, the parent asleep in waitpid (SA_RESTART) */
    pid = fork();
    if (pid == 0) {
        raise(SIGTERM);
        _exit(0);
    }
    w = waitpid(pid, &st, 0);
    printf("waitpid: %d signaled %d sig %d; handler saw code %s status %d count %d\n", w == pid,
           WIFSIGNALED(st), WTERMSIG(st), chld_code == CLD_KILLED ? "CLD_KILLED" : "?", chld_status,
           chld_count);

    /* SIGPIPE: ignored -> EPIPE; handler -> runs, EPIPE; default -> killed */
    int fds[2];
    pipe(fds);
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    int n = write(fds[1], "x", 1);
    printf("ignored: write %d errno %s\n", n, errno == EPIPE ? "EPIPE" : "?");
    signal(SIGPIPE, on_pipe);
    n = write(fds[1], "x", 1);
    printf("handled: write %d errno %s\n", n, errno == EPIPE ? "EPIPE" : "?");
    signal(SIGPIPE, SIG_DFL);
    fflush(stdout);
    write(fds[1], "x", 1);
    printf("not reached\n");
    return 0;
}
