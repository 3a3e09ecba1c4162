"""System calls on processes: exit, fork/clone/vfork, wait, ids, TLS, limits (kernel/)."""

from __future__ import annotations

import errno
import struct

from unicorn.x86_const import UC_X86_REG_ESP

from elfvm.emu.cpu import user_desc_to_descriptor
from elfvm.emu.exit import do_exit
from elfvm.emu.fork import fork
from elfvm.emu.pages import flush_refs
from elfvm.emu.task import Blocked, EFault, Process, s32
from elfvm.emu.uaccess import read_u32, read_user, write_u32, write_user
from elfvm.emu.uapi import RLIMIT_NOFILE, RLIMIT_STACK


def sys_exit(k, p, code):
    do_exit(k, p, code & 0xFF)
    return None


def sys_fork(k, p):
    child = fork(k, p)
    return child.pid


def sys_clone(k, p, flags, newsp, ptid, tls, ctid):
    CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
    CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x100000, 0x1000000, 0x200000
    if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
        return -errno.ENOSYS            # threads are not modelled
    child = fork(k, p)
    if flags & CLONE_PARENT_SETTID:
        write_u32(k, p, ptid, child.pid)
    if flags & CLONE_CHILD_SETTID:
        write_u32(k, child, ctid, child.pid)
    if flags & CLONE_CHILD_CLEARTID:
        child.tid_address = ctid
    if newsp:
        child.context = None
        saved = k.uc.context_save()
        k.uc.reg_write(UC_X86_REG_ESP, newsp)
        child.context = k.uc.context_save()
        k.uc.context_restore(saved)
    return child.pid


def sys_vfork(k, p):
    return sys_fork(k, p)


def sys_wait4(k, p, pid, status_ptr, options, rusage):
    WNOHANG = 1
    pid = s32(pid)
    kids = [c for c in k.procs.values() if c.ppid == p.pid and c.state != "reaped"
            and (pid in (-1, 0) or c.pid == pid)]
    if not kids:
        return -errno.ECHILD
    done = [c for c in kids if c.state == "zombie"]
    if not done:
        if options & WNOHANG:
            return 0
        raise Blocked()
    c = min(done, key=lambda c: c.pid)
    c.state = "reaped"
    if status_ptr:
        st = (c.death.signal & 0x7F) if c.death else ((c.exit_code or 0) & 0xFF) << 8
        write_u32(k, p, status_ptr, st)
    if rusage:
        ru = bytearray(72)
        flush_refs(k)
        struct.pack_into("<I", ru, 40, k.model.page_faults(c.mi))   # ru_minflt: 2 timevals, 6 longs
        write_user(k, p, rusage, bytes(ru))
    return c.pid


def sys_waitpid(k, p, pid, status_ptr, options):
    return sys_wait4(k, p, pid, status_ptr, options, 0)


def sys_getpid(k, p):
    return p.pid


def sys_getppid(k, p):
    return p.ppid


def _creds(k, p) -> dict:
    """The task's credentials: from the same source as the auxv's AT_UID/AT_EUID/AT_GID/AT_EGID
    (the profile's host), changed by setresuid/setresgid."""
    if not hasattr(p, "creds"):
        h = k.profile.host
        p.creds = {"uid": h.uid, "euid": h.euid, "suid": h.euid, "gid": h.gid, "egid": h.egid,
                   "sgid": h.egid}
    return p.creds


def sys_getuid(k, p):
    return _creds(k, p)["uid"]


def sys_geteuid(k, p):
    return _creds(k, p)["euid"]


def sys_getgid(k, p):
    return _creds(k, p)["gid"]


def sys_getegid(k, p):
    return _creds(k, p)["egid"]


def _setres(k, p, names: tuple[str, str, str], vals) -> int:
    """setresuid/setresgid: -1 keeps a field; an unprivileged task may only pick among its
    current real, effective and saved ids (EPERM otherwise)."""
    c = _creds(k, p)
    cur = {c[n] for n in names}
    want = [None if v == 0xFFFFFFFF else v for v in vals]
    if c["euid"] != 0 and any(v is not None and v not in cur for v in want):
        return -errno.EPERM
    for n, v in zip(names, want):
        if v is not None:
            c[n] = v
    return 0


def sys_setresuid(k, p, ruid, euid, suid):
    return _setres(k, p, ("uid", "euid", "suid"), (ruid, euid, suid))


def sys_setresgid(k, p, rgid, egid, sgid):
    return _setres(k, p, ("gid", "egid", "sgid"), (rgid, egid, sgid))


def sys_set_tid_address(k, p, addr):
    p.tid_address = addr
    return p.pid


def sys_set_thread_area(k, p, u_info):
    """arch/x86/kernel/tls.c do_set_thread_area(): entry -1 takes the first free TLS slot."""
    entry, base, limit, flags = struct.unpack("<iIII", read_user(k, p, u_info, 16))
    s = k.segments
    if entry == -1:
        free = [i for i in range(s.tls_min, s.tls_min + s.tls_entries) if i not in p.tls]
        if not free:
            return -errno.ESRCH
        entry = free[0]
        write_u32(k, p, u_info, entry)
    if not s.tls_min <= entry < s.tls_min + s.tls_entries:
        return -errno.EINVAL
    p.tls[entry] = user_desc_to_descriptor(base, limit, flags)
    k.frames.write(k.gdt_frame + entry * 8, p.tls[entry])
    return 0


def sys_rseq(k, p, rseq, length, flags, sig):
    """Registration succeeds; the kernel then writes cpu_id_start/cpu_id (put_user)."""
    write_user(k, p, rseq, struct.pack("<II", 0, 0))
    return 0


def sys_zero(k, p, *a):
    return 0


def sys_futex(k, p, uaddr, op, val, *rest):
    FUTEX_WAIT = 0
    if op & 0x7F == FUTEX_WAIT and read_u32(k, p, uaddr) != val:
        return -errno.EAGAIN
    return 0


def _rlimit(p: Process, res: int) -> tuple[int, int]:
    inf = (1 << 64) - 1
    if res == RLIMIT_STACK:
        return p.rlimit_stack, inf
    if res == RLIMIT_NOFILE:
        return 1024, 1048576
    return inf, inf


def sys_ugetrlimit(k, p, res, rlim):
    cur, mx = _rlimit(p, res)
    write_user(k, p, rlim, struct.pack("<II", min(cur, 0xFFFFFFFF), min(mx, 0xFFFFFFFF)))
    return 0


def sys_prlimit64(k, p, pid, res, new, old):
    if s32(pid) not in (0, p.pid):
        return -errno.ESRCH
    if old:
        write_user(k, p, old, struct.pack("<QQ", *_rlimit(p, res)))
    if new and res == RLIMIT_STACK:
        p.rlimit_stack = struct.unpack("<Q", read_user(k, p, new, 8))[0]
    return 0


def sys_sched_yield(k, p):
    return 0


def sys_getpgrp(k, p, *a):
    return p.pid


def read_strings(k, p, ptr: int, budget: list[int]) -> list[str]:
    """copy_strings() of argv or envp: a NULL-terminated array of C strings, each at most
    MAX_ARG_STRLEN (else E2BIG), all of them within a quarter of RLIMIT_STACK (E2BIG), so
    a hostile array never grows host memory past that."""
    from elfvm.emu.exec import MAX_ARG_STRLEN, ExecError
    from elfvm.emu.uaccess import read_cstr

    out: list[str] = []
    if not ptr:
        return out
    while True:
        sp = read_u32(k, p, ptr + 4 * len(out))
        if not sp:
            return out
        try:
            s = read_cstr(k, p, sp, MAX_ARG_STRLEN)
        except EFault as e:
            if str(e) == "string too long":
                raise ExecError(errno.E2BIG) from None
            raise
        budget[0] -= len(s) + 1 + 4
        if budget[0] < 0:
            raise ExecError(errno.E2BIG)
        out.append(s.decode("utf-8", "surrogateescape"))


def sys_execve(k, p, path_ptr, argv_ptr, envp_ptr):
    from elfvm.emu.exec import ExecError, do_execve
    from elfvm.emu.uaccess import read_cstr

    try:
        path = read_cstr(k, p, path_ptr, 4096)
        budget = [max(min(p.rlimit_stack, 6 << 30) // 4, 32 * 4096)]
        argv = read_strings(k, p, argv_ptr, budget)
        envp = read_strings(k, p, envp_ptr, budget)
        if not path:
            return -errno.ENOENT
        do_execve(k, p, path.decode("utf-8", "surrogateescape"), argv, envp)
    except ExecError as e:
        return -e.errno
    return None
