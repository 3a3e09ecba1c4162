#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf jb;
static void *volatile fault_addr;
static volatile int fault_code, fault_sig, nested;

static void on_fault(int sig, siginfo_t *si, void *ucv) {
    fault_sig = sig;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    siglongjmp(jb, 1);
}

static const char *code_name(int sig, int code) {
    if (sig == SIGSEGV) return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "?";
    if (sig == SIGFPE) return code == FPE_INTDIV ? "FPE_INTDIV" : "?";
    return "?";
}

int main(void) {
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(p, "hello");
    mprotect(p, 4096, PROT_READ);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    for (int i = 0; i < 3; i++) {
        if (sigsetjmp(jb, 1) == 0) {
            ((volatile char *)p)[100 + i] = 'x';
            printf("write %d did not fault\n", i);
        } else {
            printf("caught %s writing %d: si_addr = p + %ld, %s\n", fault_sig == SIGSEGV ? "SIGSEGV" : "?",
                   i, (long)((char *)fault_addr - p), code_name(fault_sig, fault_code));
        }
    }
    p[4096] = 'y';
    printf("second page writable: %c, first page still reads: %s\n", p[4096], p);
    munmap(p, 8192);
    if (sigsetjmp(jb, 1) == 0) {
        volatile char c = ((volatile char *)p)[5000];
        printf("read did not fault %d\n", c);
    } else {
        printf("caught reading unmapped: si_addr = p + %ld, %s\n", (long)((char *)fault_addr - p),
               code_name(fault_sig, fault_code));
    }
    volatile int zero = 0;
    if (sigsetjmp(jb, 1) == 0) {
        volatile int q = 7 / zero;
        printf("no SIGFPE %d\n", q);
    } else {
        printf("caught %s %s\n", fault_sig == SIGFPE ? "SIGFPE" : "?", code_name(fault_sig, fault_code));
    }
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("SIGSEGV blocked after siglongjmp: %d\n", sigismember(&now, SIGSEGV));
    fflush(stdout);
    signal(SIGSEGV, SIG_DFL);
    *(volatile int *)16 = 1;
    printf("not reached\n");
    return 0;
}
