/* badptrs: system calls handed pointers the kernel cannot use (unmapped, read-only, kernel
 * half) and hostile lengths; prints each result and errno, to compare with the live kernel. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    printf("%-28s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
    errno = 0;
}

int main(void)
{
    void *volatile bad = (void *)0xdeadbeef;
    void *volatile kern = (void *)0xfffff000;
    char *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *half = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(half + 4096, 4096);                   /* one page mapped, the next one not */
    int fd = open("/proc/self/exe", O_RDONLY);
    char buf[64];

    show("read bad", syscall(SYS_read, fd, bad, 16));
    show("read read-only", syscall(SYS_read, fd, ro, 16));
    show("read huge, half mapped", syscall(SYS_read, fd, half, 0xdeadbeef));
    show("read kernel half", syscall(SYS_read, fd, kern, 16));
    show("pread64 bad", syscall(SYS_pread64, fd, bad, 16, 0, 0));
    show("write bad", syscall(SYS_write, 1, bad, 16));
    show("write huge, half mapped", syscall(SYS_write, 1, half + 4096 - 3, 0xdeadbeef) - 3);
    show("open bad", syscall(SYS_open, bad, O_RDONLY));
    show("stat64 bad buf", syscall(SYS_stat64, "/", bad));
    show("fstat64 bad", syscall(SYS_fstat64, fd, bad));
    show("uname bad", syscall(SYS_uname, bad));
    show("getcwd bad", syscall(SYS_getcwd, bad, 64));
    show("sysinfo bad", syscall(SYS_sysinfo, bad));
    show("clock_gettime bad", syscall(SYS_clock_gettime, 0, bad));
    show("gettimeofday bad", syscall(SYS_gettimeofday, bad, 0));
    show("getrandom bad", syscall(SYS_getrandom, bad, 0xdeadbeef, 0));
    show("getrandom half mapped", syscall(SYS_getrandom, half, 0xdeadbeef, 0));
    show("getrandom read-only", syscall(SYS_getrandom, ro, 16, 0));
    show("pipe bad", syscall(SYS_pipe, bad));
    show("nanosleep bad", syscall(SYS_nanosleep, bad, 0));
    show("execve bad", syscall(SYS_execve, bad, 0, 0));
    show("execve bad argv", syscall(SYS_execve, "/proc/self/exe", bad, 0));
    show("readlink bad", syscall(SYS_readlink, "/proc/self/exe", bad, 64));
    show("writev bad iov", syscall(SYS_writev, 1, bad, 1));
    show("sched_getaffinity bad", syscall(SYS_sched_getaffinity, 0, 128, bad));
    show("prlimit64 bad", syscall(SYS_prlimit64, 0, 3, 0, bad));
    show("mincore bad vec", syscall(SYS_mincore, half, 4096, bad));
    show("mincore unmapped", syscall(SYS_mincore, half + 4096, 4096, buf));
    show("futex bad", syscall(SYS_futex, bad, 0, 0, 0, 0, 0));
    show("statfs64 bad", syscall(SYS_statfs64, "/", 84, bad));
    show("time bad", syscall(SYS_time, bad));
    show("set_thread_area bad", syscall(SYS_set_thread_area, bad));
    show("getdents64 bad", syscall(SYS_getdents64, open("/", O_RDONLY | O_DIRECTORY), bad, 4096));
    show("prctl get name bad", syscall(SYS_prctl, 16, bad, 0, 0, 0));
    show("getgroups32 bad", syscall(SYS_getgroups32, 64, bad));
    int null = open("/dev/null", O_RDWR), zero = open("/dev/zero", O_RDONLY);
    show("write /dev/null bad", syscall(SYS_write, null, bad, 0x7fffffff));
    show("read /dev/null", syscall(SYS_read, null, buf, 64));
    show("read /dev/zero half", syscall(SYS_read, zero, half, 0xdeadbeef));
    show("read /dev/zero bad", syscall(SYS_read, zero, bad, 16));
    return 0;
}
