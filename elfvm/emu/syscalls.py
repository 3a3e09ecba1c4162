"""The Linux i386 system calls the emulated kernel answers (int $0x80 and the vDSO's entry).

Arguments arrive in ebx, ecx, edx, esi, edi, ebp (arch/x86/entry/syscalls/syscall_32.tbl); the
result goes to eax, -errno on failure. Memory the kernel reads or writes in user space goes
through copy_from_user / copy_to_user (elfvm.emu.uaccess `read_user` / `write_user`), which fault pages in
exactly as the kernel's own accesses do (they count as minor faults too). An unknown system call
returns -ENOSYS and is listed in the report.

The guest cannot reach the host: files are read through the read-only view of elfvm.emu.vfs,
signals only reach simulated processes, and time and randomness are deterministic by default.
"""

from __future__ import annotations

import errno
import importlib

from elfvm.emu import sys_fs as FS
from elfvm.emu import sys_info as INFO
from elfvm.emu import sys_mm as MM
from elfvm.emu import sys_process as PROC
from elfvm.emu import sys_time as TIME
from elfvm.emu.sigstate import deliverable
from elfvm.emu.state import KernelState
from elfvm.emu.task import Blocked, EFault, Process



def later(module: str, name: str):
    """A handler of a module imported at its first call: epoll, System V shared memory, timers
    and signal handling are rare, and a run that never calls them does not pay for their import
    (start-up time)."""
    def handler(k, p, *args):
        return getattr(importlib.import_module(f"elfvm.emu.{module}"), name)(k, p, *args)

    handler.__name__ = name
    return handler


IPC = {n: later("sys_ipc", n) for n in ("sys_ipc", "sys_shmget", "sys_shmctl", "sys_shmat", "sys_shmdt")}
SIGNAL = {n: later("signals", n) for n in ("sys_pause", "sys_kill", "sys_sigreturn", "sys_rt_sigreturn",
                                          "sys_rt_sigaction", "sys_rt_sigprocmask", "sys_rt_sigpending",
                                          "sys_rt_sigsuspend", "sys_sigaltstack", "sys_tkill", "sys_tgkill")}
TIMER = {n: later("sys_timer", n) for n in ("sys_alarm", "sys_setitimer", "sys_getitimer", "sys_timer_create",
                                          "sys_timer_settime", "sys_timer_gettime", "sys_timer_getoverrun",
                                          "sys_timer_delete", "sys_timer_gettime64", "sys_timer_settime64")}
EPOLL = {n: later("sys_epoll", n) for n in ("sys_epoll_create", "sys_epoll_ctl", "sys_epoll_wait",
                                          "sys_epoll_pwait", "sys_epoll_create1", "sys_epoll_pwait2")}

# ============================================================ the table
SYSCALLS = {
    1: ("exit", PROC.sys_exit, 1), 2: ("fork", PROC.sys_fork, 0), 3: ("read", FS.sys_read, 3),
    4: ("write", FS.sys_write, 3), 5: ("open", FS.sys_open, 3), 6: ("close", FS.sys_close, 1),
    7: ("waitpid", PROC.sys_waitpid, 3), 11: ("execve", PROC.sys_execve, 3), 10: ("unlink", FS.sys_unlink, 1), 12: ("chdir", FS.sys_chdir, 1),
    13: ("time", TIME.sys_time, 1), 19: ("lseek", FS.sys_lseek, 3), 20: ("getpid", PROC.sys_getpid, 0),
    24: ("getuid", PROC.sys_getuid, 0), 33: ("access", FS.sys_access, 2), 
    41: ("dup", FS.sys_dup, 1), 42: ("pipe", FS.sys_pipe, 1), 45: ("brk", MM.sys_brk, 1),
    47: ("getgid", PROC.sys_getgid, 0), 49: ("geteuid", PROC.sys_geteuid, 0), 50: ("getegid", PROC.sys_getegid, 0),
    54: ("ioctl", FS.sys_ioctl, 3), 60: ("umask", FS.sys_umask, 1), 63: ("dup2", FS.sys_dup2, 2),
    64: ("getppid", PROC.sys_getppid, 0), 65: ("getpgrp", PROC.sys_getpgrp, 0),
    78: ("gettimeofday", TIME.sys_gettimeofday, 2), 85: ("readlink", FS.sys_readlink, 3),
    90: ("mmap", MM.sys_mmap, 1), 91: ("munmap", MM.sys_munmap, 2), 114: ("wait4", PROC.sys_wait4, 4),
    116: ("sysinfo", INFO.sys_sysinfo_model, 1), 117: ("ipc", IPC["sys_ipc"], 6), 120: ("clone", PROC.sys_clone, 5),
    122: ("uname", INFO.sys_uname, 1), 125: ("mprotect", MM.sys_mprotect, 3),
    132: ("getpgid", PROC.sys_getpgrp, 1), 140: ("_llseek", FS.sys__llseek, 5),
    145: ("readv", FS.sys_readv, 3), 146: ("writev", FS.sys_writev, 3), 147: ("getsid", PROC.sys_getpgrp, 1),
    158: ("sched_yield", PROC.sys_sched_yield, 0), 162: ("nanosleep", TIME.sys_nanosleep, 2),
    163: ("mremap", MM.sys_mremap, 5), 
    183: ("getcwd", FS.sys_getcwd, 2),
    190: ("vfork", PROC.sys_vfork, 0),
    191: ("ugetrlimit", PROC.sys_ugetrlimit, 2), 192: ("mmap2", MM.sys_mmap2, 6),
    195: ("stat64", FS.sys_stat64, 2), 196: ("lstat64", FS.sys_lstat64, 2), 197: ("fstat64", FS.sys_fstat64, 2),
    199: ("getuid32", PROC.sys_getuid, 0), 200: ("getgid32", PROC.sys_getgid, 0), 201: ("geteuid32", PROC.sys_geteuid, 0),
    202: ("getegid32", PROC.sys_getegid, 0), 219: ("madvise", MM.sys_madvise, 3),
    220: ("getdents64", FS.sys_getdents64, 3), 221: ("fcntl64", FS.sys_fcntl64, 3),
    224: ("gettid", PROC.sys_gettid, 0), 240: ("futex", PROC.sys_futex, 6),
    243: ("set_thread_area", PROC.sys_set_thread_area, 1), 252: ("exit_group", PROC.sys_exit_group, 1),
    258: ("set_tid_address", PROC.sys_set_tid_address, 1), 265: ("clock_gettime", TIME.sys_clock_gettime, 2),
    295: ("openat", FS.sys_openat, 4),
    300: ("fstatat64", FS.sys_fstatat64, 4), 301: ("unlinkat", FS.sys_unlinkat, 3),
    305: ("readlinkat", FS.sys_readlinkat, 4), 307: ("faccessat", FS.sys_faccessat, 3),
    311: ("set_robust_list", PROC.sys_set_robust_list, 2), 312: ("get_robust_list", PROC.sys_get_robust_list, 3), 330: ("dup3", FS.sys_dup3, 3), 331: ("pipe2", FS.sys_pipe2, 2),
    340: ("prlimit64", PROC.sys_prlimit64, 4), 355: ("getrandom", INFO.sys_getrandom, 3),
    383: ("statx", FS.sys_statx, 5), 386: ("rseq", PROC.sys_rseq, 4),
    395: ("shmget", IPC["sys_shmget"], 3), 396: ("shmctl", IPC["sys_shmctl"], 3), 397: ("shmat", IPC["sys_shmat"], 3),
    398: ("shmdt", IPC["sys_shmdt"], 1), 403: ("clock_gettime64", TIME.sys_clock_gettime64, 2),
    439: ("faccessat2", FS.sys_faccessat, 4),
    102: ("socketcall", INFO.sys_socketcall, 2), 133: ("fchdir", FS.sys_fchdir, 1),
    172: ("prctl", INFO.sys_prctl, 5), 180: ("pread64", FS.sys_pread64, 5),
    181: ("pwrite64", FS.sys_pwrite64, 5), 218: ("mincore", MM.sys_mincore, 3),
    226: ("setxattr", FS.sys_xattr_path, 5), 227: ("lsetxattr", FS.sys_xattr_path, 5),
    228: ("fsetxattr", FS.sys_xattr_fd, 5), 229: ("getxattr", FS.sys_xattr_path, 4),
    230: ("lgetxattr", FS.sys_xattr_path, 4), 231: ("fgetxattr", FS.sys_xattr_fd, 4),
    232: ("listxattr", FS.sys_xattr_path, 3), 233: ("llistxattr", FS.sys_xattr_path, 3),
    234: ("flistxattr", FS.sys_xattr_fd, 3), 235: ("removexattr", FS.sys_xattr_path, 2),
    236: ("lremovexattr", FS.sys_xattr_path, 2), 237: ("fremovexattr", FS.sys_xattr_fd, 2),
    242: ("sched_getaffinity", INFO.sys_sched_getaffinity, 3),
    250: ("fadvise64", FS.sys_fadvise64, 5), 268: ("statfs64", FS.sys_statfs64, 3),
    269: ("fstatfs64", FS.sys_fstatfs64, 3), 272: ("fadvise64_64", FS.sys_fadvise64_64, 6),
    359: ("socket", INFO.sys_socket, 3), 27: ("alarm", TIMER["sys_alarm"], 1),
    104: ("setitimer", TIMER["sys_setitimer"], 3), 105: ("getitimer", TIMER["sys_getitimer"], 2),
    259: ("timer_create", TIMER["sys_timer_create"], 3), 260: ("timer_settime", TIMER["sys_timer_settime"], 4),
    261: ("timer_gettime", TIMER["sys_timer_gettime"], 2),
    262: ("timer_getoverrun", TIMER["sys_timer_getoverrun"], 1), 263: ("timer_delete", TIMER["sys_timer_delete"], 1),
    266: ("clock_getres", TIME.sys_clock_getres, 2), 267: ("clock_nanosleep", TIME.sys_clock_nanosleep, 4),
    406: ("clock_getres_time64", TIME.sys_clock_getres_time64, 2),
    407: ("clock_nanosleep_time64", TIME.sys_clock_nanosleep_time64, 4),
    408: ("timer_gettime64", TIMER["sys_timer_gettime64"], 2),
    409: ("timer_settime64", TIMER["sys_timer_settime64"], 4), 435: ("clone3", PROC.sys_clone3, 2),
    422: ("futex_time64", PROC.sys_futex_time64, 6),
    39: ("mkdir", FS.sys_mkdir, 2), 296: ("mkdirat", FS.sys_mkdirat, 3), 40: ("rmdir", FS.sys_rmdir, 1),
    38: ("rename", FS.sys_rename, 2), 302: ("renameat", FS.sys_renameat, 4),
    353: ("renameat2", FS.sys_renameat2, 5), 83: ("symlink", FS.sys_symlink, 2),
    304: ("symlinkat", FS.sys_symlinkat, 3), 9: ("link", FS.sys_link, 2), 303: ("linkat", FS.sys_linkat, 5),
    15: ("chmod", FS.sys_chmod, 2), 94: ("fchmod", FS.sys_fchmod, 2), 306: ("fchmodat", FS.sys_fchmodat, 3),
    452: ("fchmodat2", FS.sys_fchmodat, 4), 212: ("chown32", FS.sys_chown32, 3),
    198: ("lchown32", FS.sys_lchown32, 3), 207: ("fchown32", FS.sys_fchown32, 3),
    298: ("fchownat", FS.sys_fchownat, 5), 320: ("utimensat", FS.sys_utimensat, 4),
    412: ("utimensat_time64", FS.sys_utimensat_time64, 4), 92: ("truncate", FS.sys_truncate, 2),
    93: ("ftruncate", FS.sys_ftruncate, 2), 193: ("truncate64", FS.sys_truncate64, 3),
    194: ("ftruncate64", FS.sys_ftruncate64, 3), 377: ("copy_file_range", FS.sys_copy_file_range, 6),
    187: ("sendfile", FS.sys_sendfile, 4), 239: ("sendfile64", FS.sys_sendfile64, 4), 168: ("poll", FS.sys_poll, 3),
    309: ("ppoll", FS.sys_ppoll, 5), 414: ("ppoll_time64", FS.sys_ppoll_time64, 5),
    205: ("getgroups32", PROC.sys_getgroups32, 2), 206: ("setgroups32", PROC.sys_setgroups32, 2),
    209: ("getresuid32", PROC.sys_getresuid, 3), 211: ("getresgid32", PROC.sys_getresgid, 3),
    165: ("getresuid", PROC.sys_getresuid, 3), 171: ("getresgid", PROC.sys_getresgid, 3), 208: ("setresuid32", PROC.sys_setresuid, 3),
    210: ("setresgid32", PROC.sys_setresgid, 3), 164: ("setresuid", PROC.sys_setresuid, 3),
    170: ("setresgid", PROC.sys_setresgid, 3), 436: ("close_range", FS.sys_close_range, 3),
    308: ("pselect6", FS.sys_pselect6, 6), 413: ("pselect6_time64", FS.sys_pselect6_time64, 6),
}
SYSCALLS.update({
    254: ("epoll_create", EPOLL["sys_epoll_create"], 1), 255: ("epoll_ctl", EPOLL["sys_epoll_ctl"], 4),
    256: ("epoll_wait", EPOLL["sys_epoll_wait"], 4), 319: ("epoll_pwait", EPOLL["sys_epoll_pwait"], 6),
    329: ("epoll_create1", EPOLL["sys_epoll_create1"], 1), 441: ("epoll_pwait2", EPOLL["sys_epoll_pwait2"], 6),
})
SYSCALLS.update({
    29: ("pause", SIGNAL["sys_pause"], 0), 37: ("kill", SIGNAL["sys_kill"], 2),
    119: ("sigreturn", SIGNAL["sys_sigreturn"], 0), 173: ("rt_sigreturn", SIGNAL["sys_rt_sigreturn"], 0),
    174: ("rt_sigaction", SIGNAL["sys_rt_sigaction"], 4), 175: ("rt_sigprocmask", SIGNAL["sys_rt_sigprocmask"], 4),
    176: ("rt_sigpending", SIGNAL["sys_rt_sigpending"], 2), 179: ("rt_sigsuspend", SIGNAL["sys_rt_sigsuspend"], 2),
    186: ("sigaltstack", SIGNAL["sys_sigaltstack"], 2), 238: ("tkill", SIGNAL["sys_tkill"], 2),
    270: ("tgkill", SIGNAL["sys_tgkill"], 3),
})


def dispatch(k: KernelState, p: Process) -> None:
    """One `int $0x80`: look the number up, run the handler, put the result in eax."""
    nr, *args = k.cpu.syscall_args()
    entry = SYSCALLS.get(nr)
    if entry is None:                               # never silent: listed by name in the report
        from elfvm.emu.syscall_names import syscall_name   # the names' table: only for these

        k.unknown_syscalls[nr] += 1
        k.syscall_counts[syscall_name(nr)] += 1
        k.cpu.set_return(-errno.ENOSYS)
        return
    name, fn, nargs = entry
    k.syscall_counts[name] += 1
    if k.timers:
        from elfvm.emu.sys_timer import fire_timers     # imported by the first timer armed

        fire_timers(k)
    p.sig_restart = False
    if name == "exit_group" or name == "exit":
        fn(k, p, *args[:nargs])
        return
    try:
        ret = fn(k, p, *args[:nargs])
    except Blocked as b:
        if deliverable(p) is not None:              # interrupted by a signal
            from elfvm.emu.signals import do_signal

            p.futex_key, p.futex_woken, p.wake_at, p.timed_out = None, False, None, False
            k.cpu.set_return(-errno.EINTR)
            do_signal(k, p, restart=None if b.nohand else nr)
            return
        k.syscall_counts[name] -= 1
        p.state = "blocked"
        p.nvcsw += 1                                # schedule() from a sleep
        p.sig_restart = True
        k.cpu.eip = k.cpu.eip - 2                   # re-execute `int $0x80` when woken
        k.uc.emu_stop()
        return
    except EFault:
        ret = -errno.EFAULT
    except OSError as e:
        ret = -(e.errno or errno.EINVAL)
    if ret is None:
        return
    if p.state in ("zombie", "reaped"):
        return
    k.cpu.set_return(ret)
    if p.sig_pending and p is k.current:
        from elfvm.emu.signals import do_signal     # imported by the first signal sent

        do_signal(k, p)                             # on the way back to user mode

