/* cpu_traps: instructions the kernel refuses a user task: inb/outb (no I/O privilege: #GP,
 * SIGSEGV SI_KERNEL), sysenter (#UD in compat mode on AMD: SIGILL ILL_ILLOPN; Intel enters
 * the kernel), a push with %esp = 0 (a fault above TASK_SIZE: SIGSEGV SEGV_MAPERR at
 * 0xfffffffc, handled on the alternate stack). argv[1] picks the case. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void h(int sig, siginfo_t *si, void *uc) {
    printf("signal %d si_code %d si_addr %p\n", sig, si->si_code, si->si_addr);
    fflush(stdout);
    signal(sig, SIG_DFL);
    raise(sig);
}
int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    static char alt[65536];
    stack_t ss = {alt, 0, sizeof alt};
    sigaltstack(&ss, NULL);
    sigaction(SIGSEGV, &sa, NULL); sigaction(SIGILL, &sa, NULL);
    int which = argc > 1 ? atoi(argv[1]) : 0;
    if (which == 0) { unsigned char v; __asm__ volatile("inb $0x80, %0" : "=a"(v)); printf("inb ran\n"); }
    if (which == 1) { __asm__ volatile("outb %0, $0x80" :: "a"((unsigned char)1)); printf("outb ran\n"); }
    if (which == 2) { __asm__ volatile("sysenter"); printf("sysenter ran\n"); }
    if (which == 3) { __asm__ volatile("mov %%esp, %%ebx; xor %%esp, %%esp; push %%eax; mov %%ebx, %%esp" ::: "ebx", "memory"); printf("push ran\n"); }
    return 0;
}
