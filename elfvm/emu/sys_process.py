"""System calls on processes: exit, fork/clone/vfork, wait, ids, TLS, limits (kernel/)."""

from __future__ import annotations

import errno
import os
import struct

from unicorn.x86_const import UC_X86_REG_ESP

from elfvm.emu.cpu import user_desc_to_descriptor
from elfvm.emu.exit import do_exit, do_group_exit, futex_key, futex_wake
from elfvm.emu.fork import fork
from elfvm.emu.pages import flush_refs
from elfvm.emu.rlimit import task_rlimit
from elfvm.emu.task import Blocked, EFault, Process, s32
from elfvm.emu.uaccess import read_u32, read_user, write_u32, write_user
from elfvm.emu.uapi import RLIMIT_STACK


def sys_exit(k, p, code):
    do_exit(k, p, code & 0xFF)
    return None


def sys_fork(k, p):
    child = fork(k, p)
    return child.pid


def sys_clone(k, p, flags, newsp, ptid, tls, ctid):
    """clone(): a process (fork), or with CLONE_VM a task on the same mm (threads with
    CLONE_THREAD, vfork and posix_spawn with CLONE_VFORK: the parent sleeps until the child
    execs or exits)."""
    from elfvm.emu.fork import CLONE_SETTLS, CLONE_THREAD, CLONE_VFORK, CLONE_VM, clone_vm

    CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x100000, 0x1000000, 0x200000
    if flags & CLONE_THREAD and not flags & CLONE_VM or flags & 0x800 and not flags & CLONE_VM:
        return -errno.EINVAL             # CLONE_THREAD needs CLONE_SIGHAND needs CLONE_VM
    desc = None
    if flags & CLONE_SETTLS:
        desc = struct.unpack("<iIII", read_user(k, p, tls, 16))
    child = clone_vm(k, p, flags) if flags & CLONE_VM else fork(k, p)
    if desc is not None:
        entry, base, limit, fl = desc
        s = k.segments
        if not s.tls_min <= entry < s.tls_min + s.tls_entries:
            entry = next((i for i in range(s.tls_min, s.tls_min + s.tls_entries)
                          if i not in child.tls), s.tls_min)
        child.tls[entry] = user_desc_to_descriptor(base, limit, fl)
        load_child_tls(k, child, entry)
    if flags & CLONE_PARENT_SETTID:
        write_u32(k, p, ptid, child.pid)
    if flags & CLONE_CHILD_SETTID:
        write_u32(k, child, ctid, child.pid)
    if flags & CLONE_CHILD_CLEARTID:
        child.tid_address = ctid
    if newsp:
        saved = k.uc.context_save()
        k.uc.context_restore(child.context)
        k.uc.reg_write(UC_X86_REG_ESP, newsp)
        child.context = k.uc.context_save()
        k.uc.context_restore(saved)
    if flags & CLONE_VFORK:              # wait_for_vfork_done()
        child.vfork_parent = p.pid
        p.state = "blocked"
        p.nvcsw += 1
        k.uc.emu_stop()
    return child.pid


def load_child_tls(k, child, entry: int) -> None:
    """CLONE_SETTLS: the child's %gs must use its own TLS descriptor, so its saved context
    reloads the segment register with the new descriptor in the GDT (the CPU caches a
    segment's base when it is loaded)."""
    from unicorn.x86_const import UC_X86_REG_GS

    gdt = k.gdt_frame + entry * 8
    old_desc = k.frames.read(gdt, 8)
    saved = k.uc.context_save()
    try:
        k.frames.write(gdt, child.tls[entry])
        k.uc.context_restore(child.context)
        sel = k.uc.reg_read(UC_X86_REG_GS)
        if sel >> 3 == entry:
            k.uc.reg_write(UC_X86_REG_GS, sel)
            child.context = k.uc.context_save()
    finally:
        k.frames.write(gdt, old_desc)
        k.uc.context_restore(saved)


def sys_clone3(k, p, uargs, size):
    """clone3(struct clone_args): the same as clone() with the stack as (stack, stack_size)."""
    if size < 64:
        return -errno.EINVAL
    flags, _pidfd, child_tid, parent_tid, _sig, stack, stack_size, tls = \
        struct.unpack("<8Q", read_user(k, p, uargs, 64))
    if flags >> 32:
        return -errno.EINVAL
    return sys_clone(k, p, flags, (stack + stack_size) & 0xFFFFFFFF if stack else 0,
                     parent_tid & 0xFFFFFFFF, tls & 0xFFFFFFFF, child_tid & 0xFFFFFFFF)


def sys_vfork(k, p):
    from elfvm.emu.fork import CLONE_VFORK, CLONE_VM

    return sys_clone(k, p, CLONE_VM | CLONE_VFORK, 0, 0, 0, 0)


def sys_exit_group(k, p, code):
    do_group_exit(k, p, code & 0xFF)
    return None


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
    return p.group


def sys_gettid(k, p):
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


def sys_getresuid(k, p, r, e, s):
    c = _creds(k, p)
    for addr, v in ((r, c["uid"]), (e, c["euid"]), (s, c["suid"])):
        write_u32(k, p, addr, v)
    return 0


def sys_getresgid(k, p, r, e, s):
    c = _creds(k, p)
    for addr, v in ((r, c["gid"]), (e, c["egid"]), (s, c["sgid"])):
        write_u32(k, p, addr, v)
    return 0


def sys_getgroups32(k, p, size, lst):
    """The supplementary groups: the host's (the source of AT_GID), or those set since."""
    groups = getattr(p, "groups", None)
    if groups is None:
        groups = p.groups = list(os.getgroups()) if hasattr(os, "getgroups") else []
    size = s32(size)
    if size < 0:
        return -errno.EINVAL
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -errno.EINVAL
    write_user(k, p, lst, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def sys_setgroups32(k, p, size, lst):
    if _creds(k, p)["euid"] != 0:
        return -errno.EPERM
    if size > 65536:
        return -errno.EINVAL
    p.groups = list(struct.unpack(f"<{size}I", read_user(k, p, lst, 4 * size))) if size else []
    return 0


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


FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_PRIVATE_FLAG = 9, 10, 128


def futex_wait(k, p, uaddr: int, val: int, key: tuple, deadline: int | None):
    """FUTEX_WAIT: sleep while *uaddr == val until a FUTEX_WAKE on key (0), the virtual
    clock passes the deadline (-ETIMEDOUT) or a signal (-EINTR, by the dispatcher). The call
    is re-executed when the task is woken; the flags on it say why."""
    if p.futex_key == key and p.futex_woken:
        p.futex_key, p.futex_woken, p.wake_at = None, False, None
        return 0
    if p.futex_key == key and p.timed_out:
        p.futex_key, p.timed_out, p.wake_at = None, False, None
        return -errno.ETIMEDOUT
    if read_u32(k, p, uaddr) != val:
        p.futex_key, p.wake_at = None, None
        return -errno.EAGAIN
    if p.futex_key != key:
        p.futex_key, p.futex_woken, p.timed_out, p.wake_at = key, False, False, deadline
    raise Blocked()


def _futex_deadline(k, p, op: int, timeout: int, time64: bool) -> int | None:
    from elfvm.emu.sys_time import now_ns

    if not timeout or op & 0x7F not in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        return None
    if p.futex_key is not None and p.wake_at is not None:
        return p.wake_at                                  # restarted: the same deadline
    sec, nsec = struct.unpack("<qq" if time64 else "<ii", read_user(k, p, timeout, 16 if time64 else 8))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise OSError(errno.EINVAL, "")
    ns = sec * 10**9 + nsec
    return now_ns(k) + ns if op & 0x7F == FUTEX_WAIT else ns      # BITSET: absolute


def _wake_op(k, p, uaddr2: int, encoded: int) -> bool:
    """FUTEX_WAKE_OP's atomic op on *uaddr2 and its comparison of the old value."""
    op, cmp = (encoded >> 28) & 7, (encoded >> 24) & 15
    oparg, cmparg = (encoded >> 12) & 0xFFF, encoded & 0xFFF
    if op & 8:
        oparg = 1 << oparg
    old = read_u32(k, p, uaddr2)
    new = {0: oparg, 1: old + oparg, 2: old | oparg, 3: old & ~oparg, 4: old ^ oparg}.get(op & 7, old)
    write_u32(k, p, uaddr2, new)
    o = s32(old)
    return {0: o == cmparg, 1: o != cmparg, 2: o < cmparg, 3: o <= cmparg, 4: o > cmparg,
            5: o >= cmparg}.get(cmp, False)


def do_futex(k, p, uaddr, op, val, timeout, uaddr2, val3, time64: bool):
    cmd, private = op & 0x7F, bool(op & FUTEX_PRIVATE_FLAG)
    if uaddr & 3:
        return -errno.EINVAL
    key = futex_key(k, p, uaddr, private)
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if cmd == FUTEX_WAIT_BITSET and val3 == 0:
            return -errno.EINVAL
        return futex_wait(k, p, uaddr, val, key, _futex_deadline(k, p, op, timeout, time64))
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return futex_wake(k, key, val)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and read_u32(k, p, uaddr) != val3:
            return -errno.EAGAIN
        n = futex_wake(k, key, val)
        key2 = futex_key(k, p, uaddr2, private)
        moved = 0
        for q in sorted(k.procs.values(), key=lambda q: q.pid):
            if moved < timeout and q.state == "blocked" and q.futex_key == key:
                q.futex_key, moved = key2, moved + 1
        return n + moved
    if cmd == FUTEX_WAKE_OP:
        n = futex_wake(k, key, val)
        if _wake_op(k, p, uaddr2, val3):
            n += futex_wake(k, futex_key(k, p, uaddr2, private), timeout)
        return n
    return -errno.ENOSYS


def sys_futex(k, p, uaddr, op, val, timeout, uaddr2, val3):
    return do_futex(k, p, uaddr, op, val, timeout, uaddr2, val3, False)


def sys_futex_time64(k, p, uaddr, op, val, timeout, uaddr2, val3):
    return do_futex(k, p, uaddr, op, val, timeout, uaddr2, val3, True)


ROBUST_HEAD_SIZE = 12                      # sizeof(struct robust_list_head) on i386


def sys_set_robust_list(k, p, head, length):
    """The list is glibc's; the kernel walks it when the thread exits or execs
    (elfvm.emu.exit.exit_robust_list): mutexes the thread still holds become owner-dead."""
    if length != ROBUST_HEAD_SIZE:
        return -errno.EINVAL
    p.robust_list = head
    return 0


def sys_get_robust_list(k, p, pid, head_ptr, len_ptr):
    """The head registered by task pid (0: the caller)."""
    t = p if s32(pid) == 0 else k.procs.get(s32(pid))
    if t is None or t.state in ("zombie", "reaped"):
        return -errno.ESRCH
    write_u32(k, p, len_ptr, ROBUST_HEAD_SIZE)
    write_u32(k, p, head_ptr, t.robust_list)
    return 0


def sys_ugetrlimit(k, p, res, rlim):
    cur, mx = task_rlimit(k, p, res)
    write_user(k, p, rlim, struct.pack("<II", min(cur, 0xFFFFFFFF), min(mx, 0xFFFFFFFF)))
    return 0


def sys_prlimit64(k, p, pid, res, new, old):
    if s32(pid) not in (0, p.pid):
        return -errno.ESRCH
    if old:
        write_user(k, p, old, struct.pack("<QQ", *task_rlimit(k, p, res)))
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
