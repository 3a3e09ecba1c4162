"""The emulated task's resource limits (include/asm-generic/resource.h INIT_RLIMITS, with
fork_init()'s RLIMIT_NPROC and RLIMIT_SIGPENDING of threads-max / 2): what getrlimit,
prlimit64 and /proc/PID/limits (proc_pid_limits) answer. RLIMIT_STACK is the task's own
(execve and prlimit64 set it); RLIMIT_NOFILE's hard limit is the one poll() enforces."""

from __future__ import annotations

from elfvm.emu.uapi import (RLIMIT_CORE, RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE,
                            RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RTPRIO, RLIMIT_SIGPENDING,
                            RLIMIT_STACK)

RLIM_INFINITY = (1 << 64) - 1

# (name, unit) of each resource in proc_pid_limits' order (fs/proc/base.c lnames)
LIMIT_NAMES = (("Max cpu time", "seconds"), ("Max file size", "bytes"),
               ("Max data size", "bytes"), ("Max stack size", "bytes"),
               ("Max core file size", "bytes"), ("Max resident set", "bytes"),
               ("Max processes", "processes"), ("Max open files", "files"),
               ("Max locked memory", "bytes"), ("Max address space", "bytes"),
               ("Max file locks", "locks"), ("Max pending signals", "signals"),
               ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
               ("Max realtime priority", ""), ("Max realtime timeout", "us"))


def task_rlimit(k, p, res: int) -> tuple[int, int]:
    """(rlim_cur, rlim_max) of resource `res` for task `p`."""
    inf = RLIM_INFINITY
    if res == RLIMIT_STACK:
        return p.rlimit_stack, inf
    if res == RLIMIT_CORE:
        return 0, inf
    if res in (RLIMIT_NPROC, RLIMIT_SIGPENDING):
        n = k.threads_max // 2
        return n, n
    if res == RLIMIT_NOFILE:
        return 1024, 1048576
    if res == RLIMIT_MEMLOCK:
        return 8 << 20, 8 << 20                  # MLOCK_LIMIT
    if res == RLIMIT_MSGQUEUE:
        return 819200, 819200                    # MQ_BYTES_MAX
    if res in (RLIMIT_NICE, RLIMIT_RTPRIO):
        return 0, 0
    return inf, inf


def proc_pid_limits(k, p) -> str:
    """/proc/PID/limits: "%-25s %-20s %-20s %-10s" rows, "unlimited" for RLIM_INFINITY."""
    def col(v: int) -> str:
        return f"{'unlimited' if v == RLIM_INFINITY else v:<20} "

    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for res, (name, unit) in enumerate(LIMIT_NAMES):
        cur, mx = task_rlimit(k, p, res)
        out.append(f"{name:<25} " + col(cur) + col(mx) + (f"{unit:<10}\n" if unit else "\n"))
    return "".join(out)
