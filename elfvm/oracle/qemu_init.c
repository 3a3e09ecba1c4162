/* The init of the qemu oracle's initramfs (elfvm/oracle/qemu.py builds it: gcc -m32 -static).
 *
 * It runs as PID 1 in a kernel booted under qemu and, for every program listed in /oracle/list
 * (one per line: "stop" or "exit", RLIMIT_STACK or "-", the path, then the environment entries,
 * separated by tabs), does what
 * elfvm/oracle/live.py does on the host: fork, PTRACE_TRACEME, personality(ADDR_NO_RANDOMIZE),
 * setrlimit(RLIMIT_STACK), execve(path, {path}, env); at the SIGTRAP that stops the new image before its first
 * instruction it prints /proc/PID/maps, /proc/PID/stat, the registers and the stack from esp to
 * the top of its VMA, then kills the child ("stop"), or ("exit") lets it run to PTRACE_EVENT_EXIT
 * and prints its minor faults from exec to exit (as elfvm/emu/livefaults.py counts them) and
 * which pages of [vvar], [vvar_vclock] and [vdso] are present then (/proc/PID/pagemap: the
 * vDSO pages the program faulted in) and every mapping's present pages.  It also prints the kernel release, the sysctls
 * elfvm takes from the host, and its own auxv and [vdso] bytes (the real vDSO image of this
 * kernel), once the kernel's random generator is ready.  Everything goes to the console between "@@" markers; then it powers the machine off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[1 << 20];

static long slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    long n = 0, r;
    if (fd < 0)
        return -1;
    while ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

static void print_file(const char *tag, const char *path)
{
    long n = slurp(path);
    printf("@@%s\n%s@@end\n", tag, n < 0 ? "" : buf);
}

static void hexdump(const char *tag, unsigned long addr, const unsigned char *p, long n)
{
    printf("@@%s %lx\n", tag, addr);
    for (long i = 0; i < n; i++)
        printf("%02x%s", p[i], (i % 64 == 63) ? "\n" : "");
    printf("\n@@end\n");
}

/* The [vdso] (or [stack]) range of a process from its maps text in buf. */
static int find_range(const char *name, unsigned long *lo, unsigned long *hi, unsigned long inside)
{
    char *line = buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 &&
            ((name && strstr(line, name) && (!nl || strstr(line, name) < nl)) ||
             (!name && a <= inside && inside < b))) {
            *lo = a;
            *hi = b;
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

static void dump_mem(const char *tag, int pid, unsigned long lo, unsigned long hi)
{
    static unsigned char mem[1 << 20];
    char path[64];
    long n;
    int fd;
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    fd = open(path, O_RDONLY);
    if (hi - lo > sizeof(mem))
        lo = hi - sizeof(mem);
    n = fd < 0 ? -1 : pread(fd, mem, hi - lo, lo);
    if (fd >= 0)
        close(fd);
    hexdump(tag, lo, mem, n < 0 ? 0 : n);
}

/* Field 10 of /proc/PID/stat (minflt), counted after the ")" of the command name. */
static long minflt(int pid)
{
    char path[64], *p;
    long v = -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (slurp(path) > 0 && (p = strrchr(buf, ')')))
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %ld", &v);
    return v;
}

/* Which pages of the special mappings are present: one '1' or '0' per page, from pagemap
 * (bit 63: a present PTE; the page walk skips a VM_PFNMAP mapping, so [vvar] before 7.1 shows
 * as absent). */
static void print_present(int pid, const char *maps)
{
    static const char *names[] = {"[vvar]", "[vvar_vclock]", "[vdso]"};
    char path[64], bits[64];
    unsigned long lo, hi;
    int fd;
    snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
    fd = open(path, O_RDONLY);
    for (int i = 0; i < 3 && fd >= 0; i++) {
        int n = 0;
        strcpy(buf, maps);
        if (find_range(names[i], &lo, &hi, 0) != 0)
            continue;
        for (unsigned long a = lo; a < hi && n < 63; a += 4096) {
            unsigned long long e = 0;
            pread(fd, &e, 8, (off_t)(a / 4096) * 8);
            bits[n++] = (e >> 63) ? '1' : '0';
        }
        bits[n] = 0;
        printf("@@present %s %s\n", names[i], bits);
    }
    if (fd >= 0)
        close(fd);
}

/* Every mapping's present pages at exit, "@@mapped LO BITS" (pagemap bit 63, up to 4096
 * pages each): where the faults went, to compare with elfvm's pages per VMA. */
static void print_mapped(int pid, const char *maps)
{
    static char bits[4097];
    char path[64];
    const char *line = maps;
    unsigned long lo, hi;
    int fd;
    snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
    fd = open(path, O_RDONLY);
    while (fd >= 0 && line && *line) {
        const char *nl = strchr(line, '\n');
        int n = 0;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
            for (unsigned long a = lo; a < hi && n < 4096; a += 4096) {
                unsigned long long e = 0;
                pread(fd, &e, 8, (off_t)(a / 4096) * 8);
                bits[n++] = (e >> 63) ? '1' : '0';
            }
            bits[n] = 0;
            printf("@@mapped %lx %s\n", lo, bits);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (fd >= 0)
        close(fd);
}

/* Let the stopped child run to exit: its faults from here (exec) to PTRACE_EVENT_EXIT. */
static void run_to_exit(int pid)
{
    static char maps[1 << 16];
    char procp[64];
    long start = minflt(pid);
    int status, sig = 0;
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT);
    for (;;) {
        ptrace(PTRACE_CONT, pid, 0, sig);
        if (waitpid(pid, &status, 0) < 0 || !WIFSTOPPED(status))
            break;
        sig = WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status);
        if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) {
            printf("@@minflt %ld\n", minflt(pid) - start);
            snprintf(procp, sizeof(procp), "/proc/%d/maps", pid);
            slurp(procp);
            strncpy(maps, buf, sizeof(maps) - 1);
            print_present(pid, maps);
            print_mapped(pid, maps);
            sig = 0;
        }
    }
}

static void run_one(int index, char *line)
{
    char *env[256], *path, *tok, procp[64];
    int n = 0, status, pid;
    struct user_regs_struct regs;
    unsigned long lo, hi;

    char *mode = strtok(line, "\t");
    char *rlim = strtok(NULL, "\t");
    path = strtok(NULL, "\t");
    while ((tok = strtok(NULL, "\t")) && n < 255)
        env[n++] = tok;
    env[n] = NULL;
    printf("@@program %d %s\n", index, path);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char *argv[] = {path, NULL};
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        personality(ADDR_NO_RANDOMIZE);
        if (strcmp(rlim, "-") != 0) {
            struct rlimit rl = {strtoul(rlim, NULL, 0), RLIM_INFINITY};
            setrlimit(RLIMIT_STACK, &rl);
        }
        execve(path, argv, env);
        _exit(errno & 0x7f);            /* execve returned: its errno is the exit status */
    }
    waitpid(pid, &status, 0);
    if (WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP) {
        /* a failure after the point of no return: the fatal signal the kernel forces
         * (SIGSEGV) is seen here as a signal-delivery stop before the death */
        printf("@@verdict killed %d\n", WSTOPSIG(status));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return;
    }
    if (!WIFSTOPPED(status)) {
        printf("@@verdict %s %d\n", WIFSIGNALED(status) ? "killed" : "errno",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return;
    }
    printf("@@verdict ok 0\n");
    ptrace(PTRACE_GETREGS, pid, 0, &regs);
    printf("@@regs eip=%lx esp=%lx\n", (unsigned long)regs.eip, (unsigned long)regs.esp);
    snprintf(procp, sizeof(procp), "/proc/%d/stat", pid);
    print_file("stat", procp);
    snprintf(procp, sizeof(procp), "/proc/%d/maps", pid);
    print_file("maps", procp);
    if (find_range(NULL, &lo, &hi, regs.esp) == 0)
        dump_mem("stack", pid, regs.esp, hi);
    if (strcmp(mode, "exit") == 0)
        run_to_exit(pid);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

int main(void)
{
    struct utsname u;
    unsigned long lo, hi;
    long n;

    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    {
        /* Wait until the kernel's random generator is ready, as it is on a machine that has been
         * up a while: before that glibc's malloc (tcache_key_initialize) finds getrandom()
         * failing with EAGAIN and reads the clock instead, through the vDSO (2 more faults). */
        char seed[16];
        printf("@@crng %ld\n", (long)getrandom(seed, sizeof(seed), 0));
    }
    uname(&u);
    printf("@@release %s %s\n", u.release, u.machine);
    print_file("mmap_min_addr", "/proc/sys/vm/mmap_min_addr");
    print_file("cpuinfo", "/proc/cpuinfo");
    n = slurp("/proc/self/auxv");
    hexdump("auxv", 0, (unsigned char *)buf, n < 0 ? 0 : n);
    slurp("/proc/self/maps");
    if (find_range("[vdso]", &lo, &hi, 0) == 0)
        hexdump("vdso", lo, (unsigned char *)lo, hi - lo);
    print_file("selfmaps", "/proc/self/maps");
    if (slurp("/oracle/list") > 0) {
        static char list[1 << 20];
        char *save = NULL, *line;
        int index = 0;
        strncpy(list, buf, sizeof(list) - 1);
        for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            run_one(index++, line);
    }
    printf("@@done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
