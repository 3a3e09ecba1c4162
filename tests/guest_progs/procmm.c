/* /proc/self's memory files as a lecture: lazy allocation, the zero page, copy-on-write after
 * fork and shared anonymous memory in smaps; pagemap's bits for the same pages; the auxv file
 * against the auxv on the stack. Prints only what does not depend on where things are.
 *   procmm            the lecture (smaps blocks of its own mappings, pagemap bits, auxv)
 *   procmm smaps      its whole /proc/self/smaps, then smaps_rollup, status, statm, limits
 *   procmm swap N     touches N pages, then its smaps block, status and pagemap bits
 *   procmm sendfile   sendfile() from each file (generated files cannot be spliced) */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char buf[1 << 20];

static long slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    long n = 0, r;
    if (fd < 0) return -1;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

static void cat(const char *path) {
    long n = slurp(path);
    printf("== %s\n", path);
    fflush(stdout);
    if (n > 0) write(1, buf, n);
}

/* the smaps block of the VMA starting at `addr`, header line without its name column */
static void smaps_of(const char *who, void *addr) {
    char head[32];
    snprintf(head, sizeof head, "%08lx-", (unsigned long)addr);
    slurp("/proc/self/smaps");
    char *p = strstr(buf, head);
    if (!p) { printf("%s: no VMA\n", who); return; }
    char *end = strstr(p, "VmFlags:");
    end = strchr(end, '\n') + 1;
    char *nl = strchr(p, '\n');
    printf("-- %s (%.*s)\n%.*s", who, 4, strchr(p, ' ') + 1, (int)(end - nl - 1), nl + 1);
}

static uint64_t pme(const char *pid, void *addr) {
    char path[64];
    uint64_t e = 0;
    snprintf(path, sizeof path, "/proc/%s/pagemap", pid);
    int fd = open(path, O_RDONLY);
    pread(fd, &e, 8, (off_t)((uintptr_t)addr / 4096) * 8);
    close(fd);
    return e;
}

static void bits(const char *who, uint64_t e) {
    printf("pagemap %s: present %d swap %d file %d exclusive %d soft-dirty %d pfn %s\n", who,
           (int)(e >> 63 & 1), (int)(e >> 62 & 1), (int)(e >> 61 & 1), (int)(e >> 56 & 1),
           (int)(e >> 55 & 1), e & ((1ULL << 55) - 1) ? "set" : "0");
}

static void auxv(void) {
    char **e = environ;
    while (*e) e++;
    uint32_t *a = (uint32_t *)(e + 1), n = 0;
    while (a[n]) n += 2;
    long len = slurp("/proc/self/auxv");
    printf("auxv: %u entries + AT_NULL, file %ld bytes, same words as the stack %d, "
           "zeros after %d\n", n / 2, len, memcmp(buf, a, (n + 2) * 4) == 0,
           len >= (long)(n + 2) * 4 && !memcmp(buf + (n + 2) * 4, (char[64]){0}, len - (n + 2) * 4));
}

static int lecture(void) {
    char *lazy = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile char sink = lazy[0] + lazy[4096];          /* two reads: the zero page */
    (void)sink;
    lazy[2 * 4096] = 1;                                 /* one write: a page of its own */
    smaps_of("16 pages, 2 read, 1 written", lazy);
    bits("read (zero page)", pme("self", lazy));
    bits("written", pme("self", lazy + 2 * 4096));
    bits("untouched", pme("self", lazy + 3 * 4096));
    printf("zero page twice: same pfn %d\n", pme("self", lazy) == pme("self", lazy + 4096));

    char *shared = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared[0] = 1;
    smaps_of("shared anonymous, 1 written", shared);
    bits("shared", pme("self", shared));

    char *cow = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(cow, 7, 4 * 4096);
    int go[2], done[2];
    pipe(go);
    pipe(done);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        char c, ppid[16];
        read(go[0], &c, 1);
        cow[0] = 8;                                     /* copy-on-write: a new frame */
        snprintf(ppid, sizeof ppid, "%d", getppid());
        smaps_of("child after writing 1 of 4 COW pages", cow);
        printf("child: written page's pfn differs from the parent's %d, unwritten one same %d\n",
               pme("self", cow) != pme(ppid, cow), pme("self", cow + 4096) == pme(ppid, cow + 4096));
        bits("child written", pme("self", cow));
        bits("child shared", pme("self", cow + 4096));
        fflush(stdout);
        write(done[1], "x", 1);
        read(go[0], &c, 1);
        _exit(0);
    }
    smaps_of("parent after fork, 4 COW pages", cow);
    bits("parent after fork", pme("self", cow));
    fflush(stdout);
    write(go[1], "x", 1);
    char c;
    read(done[0], &c, 1);
    smaps_of("parent, child wrote 1", cow);
    fflush(stdout);
    write(go[1], "x", 1);
    waitpid(child, 0, 0);
    smaps_of("parent, child gone", cow);
    auxv();
    return 0;
}

int main(int argc, char **argv) {
    /* the buffer first: the kernel's seq_file copies the first record to it before it
     * generates the rest, so a fresh buffer's first page would count in the bss's Rss natively
     * and not under elfvm, which generates the whole file at open */
    memset(buf, 1, sizeof buf);
    if (argc > 1 && !strcmp(argv[1], "smaps")) {
        cat("/proc/self/smaps");
        cat("/proc/self/smaps_rollup");
        cat("/proc/self/status");
        cat("/proc/self/statm");
        cat("/proc/self/limits");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "sendfile")) {    /* no ->splice_read: EINVAL */
        const char *f[] = {"cmdline", "environ", "auxv", "limits", "maps", "stat", "statm",
                           "status", "smaps", "smaps_rollup", "pagemap", 0};
        int p[2], dn = open("/dev/null", O_WRONLY);
        pipe(p);
        for (int i = 0; f[i]; i++) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/%s", f[i]);
            int fd = open(path, O_RDONLY);
            long r = sendfile(p[1], fd, 0, 8), e = r < 0 ? errno : 0;
            long r2 = sendfile(dn, fd, 0, 8);
            printf("sendfile %s: to a pipe %ld (%ld), to a file %ld (%d)\n", f[i], r, e, r2,
                   r2 < 0 ? errno : 0);
            close(fd);
        }
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "swap")) {
        long n = atol(argv[2]);
        char *m = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (long i = 0; i < n; i++) m[i * 4096] = 1;
        smaps_of("touched", m);
        bits("first page", pme("self", m));
        cat("/proc/self/status");
        return 0;
    }
    return lecture();
}
