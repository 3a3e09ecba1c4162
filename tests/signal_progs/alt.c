#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *alt;
static volatile int on_alt, flags_inside;

static void h(int sig) {
    char local;
    stack_t cur;
    sigaltstack(NULL, &cur);
    flags_inside = cur.ss_flags;
    on_alt = &local >= alt && &local < alt + 65536;
}

int main(void) {
    alt = malloc(65536);
    stack_t ss = {.ss_sp = alt, .ss_size = 65536, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    stack_t out;
    sigaltstack(NULL, &out);
    printf("handler on the alternate stack: %d (SS_ONSTACK inside: %d), after: flags %d\n", on_alt,
           flags_inside == SS_ONSTACK, out.ss_flags);
    return 0;
}
