/* A fork bomb that stops: every process forks until fork fails, then reports how it failed
   (EAGAIN: threads-max, ENOMEM: no memory) and exits without waiting for its children. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    pid_t first = getpid();
    for (;;) {
        pid_t pid = fork();
        if (pid < 0) {
            int e = errno;
            if (getpid() == first)          /* the first process only: one line */
                printf("fork failed: %s\n", e == EAGAIN ? "EAGAIN" : e == ENOMEM ? "ENOMEM" : "other");
            return 0;
        }
    }
}
