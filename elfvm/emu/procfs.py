"""/proc for the guest: /proc/self, /proc/thread-self and /proc/PID of the guest's own tasks are
built from the emulated kernel's state (fs/proc/base.c's files: cmdline, environ, comm, maps,
stat, statm, status, exe, cwd, root, the fd directory of links and the task directory), never
read from the host, where they would describe elfvm's Python process. A numeric /proc entry
that is not a guest task does not exist for the guest; /proc itself lists the guest's thread
groups (proc_pid_readdir), never the host's processes.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from dataclasses import dataclass

from elfvm.emu.rlimit import proc_pid_limits
# elfvm.emu.task_mmu (maps, smaps, statm, status's memory lines) is imported by the functions
# that read it: a run whose /proc use is readlink("/proc/self/exe") does not load it
from elfvm.emu.task import Process
from elfvm.emu.vfs import Inode, VfsError, fifo_ino

PROC_PATH = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/(\d+))?(?:/([^/]+)(?:/([^/]+))?)?$")
FILES = ("cmdline", "environ", "auxv", "comm", "limits", "maps", "stat", "statm", "status",
         "smaps", "smaps_rollup", "pagemap")
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
# tgid_base_stuff / tid_base_stuff (fs/proc/base.c), in the kernel's order: the entries elfvm
# models (a directory lists only what the guest can open)
TGID_ENTRIES = (("task", DT_DIR), ("fd", DT_DIR), ("environ", DT_REG), ("auxv", DT_REG),
                ("status", DT_REG), ("limits", DT_REG), ("comm", DT_REG), ("cmdline", DT_REG),
                ("stat", DT_REG), ("statm", DT_REG), ("maps", DT_REG), ("cwd", DT_LNK),
                ("root", DT_LNK), ("exe", DT_LNK), ("smaps", DT_REG), ("smaps_rollup", DT_REG),
                ("pagemap", DT_REG))
TID_ENTRIES = tuple(e for e in TGID_ENTRIES if e[0] != "task")


@dataclass(repr=False, eq=False)
class ProcPath:
    """A path under /proc/PID: the task, the entry in its directory ("" for the directory
    itself), what follows it (an fd number), and whether it was reached as /proc/PID/task/TID."""

    task: Process
    entry: str
    sub: str
    in_task_dir: bool
    path: str                       # d_path: /proc/self resolved to /proc/TGID



def _live(t: Process | None) -> bool:
    return t is not None and t.state != "reaped"


def proc_task(k, p: Process, path: str) -> ProcPath | None:
    """The task and entry of a /proc path naming a guest task; None for other paths. A
    /proc/PID (or /proc/PID/task/TID) that is no guest task raises ENOENT."""
    m = PROC_PATH.match(k.vfs.guest_path(path))          # relative to the cwd, normalized
    if m is None:
        return None
    who, tid, entry, sub = m.groups()
    if who == "self":
        task = k.procs.get(p.group, p)
    elif who == "thread-self":
        task = p
    else:
        task = k.procs.get(int(who))
    if not _live(task):
        raise VfsError(errno.ENOENT)
    if tid is not None:
        t = k.procs.get(int(tid))
        if not _live(t) or t.group != task.group:
            raise VfsError(errno.ENOENT)
        task = t
    in_task = tid is not None or who == "thread-self"
    top = who if who.isdigit() else str(task.group)
    canon = "/".join(["/proc", top] + ([f"task/{task.pid}"] if in_task else [])
                     + [x for x in (entry, sub) if x])
    return ProcPath(task, entry or "", sub or "", in_task, canon)


def _threads(k, t: Process) -> list[Process]:
    return sorted((q for q in k.procs.values() if q.group == t.group and _live(q)),
                  key=lambda q: q.pid)


def proc_listdir(k, p: Process, path: str) -> list[tuple[str, int]] | None:
    """(name, d_type) of a /proc directory elfvm models (None: not one of them): /proc
    (its other entries, then self, thread-self and every thread group, lowest first), a task's
    directory, its task/ (one entry per thread) and fd/ (one link per open descriptor)."""
    dots = [(".", DT_DIR), ("..", DT_DIR)]
    if k.vfs.guest_path(path) == "/proc":
        return dots + _proc_root_others(k) + [("self", DT_LNK), ("thread-self", DT_LNK)] + \
            [(str(q.pid), DT_DIR) for q in sorted(k.procs.values(), key=lambda q: q.pid)
             if _live(q) and not q.tgid]
    found = proc_task(k, p, path)
    if found is None:
        return None
    t, entry = found.task, found.entry
    if entry == "":
        return dots + list(TID_ENTRIES if found.in_task_dir else TGID_ENTRIES)
    if found.sub:
        raise VfsError(errno.ENOTDIR)
    if entry == "task" and not found.in_task_dir:
        return dots + [(str(q.pid), DT_DIR) for q in _threads(k, t)]
    if entry == "fd":
        return dots + [(str(fd), DT_LNK) for fd in sorted(t.fds)]
    if entry in (n for n, _ in TGID_ENTRIES):
        raise VfsError(errno.ENOTDIR)
    raise VfsError(errno.ENOENT)


def _proc_root_others(k) -> list[tuple[str, int]]:
    """The non-process entries of /proc: meminfo (the model's), then those of the root's /proc
    (cpuinfo...: what a lookup there reaches), never its numbered ones (the host's processes)."""
    try:
        entries = k.vfs.listdir("/proc")
    except VfsError:
        entries = []
    others = [(n, t) for n, t in entries if not n.isdigit()
              and n not in (".", "..", "self", "thread-self", "meminfo")]
    # proc_root's entries are in proc_match order: by name length, then by name
    at = next((i for i, (n, _) in enumerate(others) if (len(n), n) > (7, "meminfo")), len(others))
    return others[:at] + [("meminfo", DT_REG)] + others[at:]


def meminfo_inode(k) -> Inode:
    """/proc/meminfo from the model (elfvm.emu.task_mmu.meminfo), never the host's."""
    from elfvm.emu.pages import flush_refs
    from elfvm.emu.task_mmu import meminfo

    flush_refs(k)
    return Inode("/proc/meminfo", None, None, data=bytearray(meminfo(k).encode()),
                 attrs={"mode": 0o100444, "st_size": 0})


def fd_link(k, t: Process, fd: str) -> str:
    """readlink of /proc/PID/fd/N (proc_fd_link / d_path): the file's path, pipe:[ino]."""
    f = t.fds.get(int(fd)) if fd.isdigit() else None
    if f is None:
        raise VfsError(errno.ENOENT)
    if f.epoll is not None:
        return "anon_inode:[eventpoll]"
    if f.pipe is not None or f.sink is not None or f.inode is None:
        return f"pipe:[{fifo_ino(f)}]"
    ino = f.inode
    if ino.data is not None and ino.host is None and k.vfs.overlay.get(ino.path) is not ino \
            and ino.kind == "file" and not ino.path.startswith("/proc/"):
        return ino.path + " (deleted)"
    return ino.path


def proc_dir_inode(path: str, perm: int = 0o555) -> Inode:
    """The inode of a /proc directory (dr-xr-xr-x; fd/ is dr-x------), named by its d_path."""
    return Inode(path, None, None, kind="dir", attrs={"mode": 0o40000 | perm})


# the files' permissions (fs/proc/base.c: REG("environ", S_IRUSR, ...), ONE("stat", S_IRUGO))
FILE_MODES = {"environ": 0o400, "auxv": 0o400, "pagemap": 0o400, "comm": 0o644}


def comm(task: Process) -> str:
    name = task.prctl.get("comm")
    if name is not None:
        return name.decode("utf-8", "replace")
    return os.path.basename(task.images[-1] if task.images else task.exe)[:15]


def _strings(items) -> bytes:
    return b"".join(os.fsencode(s) + b"\0" for s in items)


def _stat(k, t: Process) -> str:
    """/proc/PID/stat (do_task_stat): the fields programs read (state, ppid, minflt, vsize,
    rss); times are 0 (the emulated CPU has no tick accounting)."""
    from elfvm.emu.pages import flush_refs
    from elfvm.emu.task_mmu import mm_counters

    flush_refs(k)
    state = {"runnable": "R", "blocked": "S", "zombie": "Z"}.get(t.state, "R")
    vsize = sum(v.end - v.start for v in t.mm.vmas)
    c = mm_counters(k, t).counters
    fields = [t.pid, f"({comm(t)})", state, t.ppid, t.group, t.group, 0, -1, 0x400000,
              k.model.page_faults(t.mi), 0, 0, 0, 0, 0, 0, 0, 20, 0, _nr_threads(k, t), 0, 0,
              vsize, c["anon"] + c["file"] + c["shmem"], 0xFFFFFFFF] + [0] * 27
    return " ".join(str(f) for f in fields) + "\n"


def _nr_threads(k, t: Process) -> int:
    return 1 + sum(1 for q in k.procs.values() if q is not t and q.group == t.group
                   and q.state not in ("zombie", "reaped"))


STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)"}


def _sigmask(sigs) -> str:
    return f"{sum(1 << (s - 1) for s in sigs):016x}"


def _status(k, t: Process) -> str:
    """/proc/PID/status (proc_pid_status) as far as the model answers: the task's names and
    ids, its credentials, the fd table's size, the memory lines (task_mem), threads, the
    signal masks (task_sig), capabilities of its uid, allowed CPUs and its context switches."""
    from elfvm.emu.sigstate import SIG_DFL, SIG_IGN
    from elfvm.emu.task_mmu import task_mem

    h = k.profile.host
    c = getattr(t, "creds", None) or {}
    uid, euid, suid = c.get("uid", h.uid), c.get("euid", h.euid), c.get("suid", h.euid)
    gid, egid, sgid = c.get("gid", h.gid), c.get("egid", h.egid), c.get("sgid", h.egid)
    state = _stat(k, t).split()[2]
    # the fd table's max_fds: NR_OPEN_DEFAULT (64), then expand_fdtable()'s steps of 128
    # pointers rounded up to a power of two
    fdsize = 64 if not t.fds or max(t.fds) < 64 else 128 << (max(t.fds) // 128).bit_length()
    acts = t.sigactions
    ign = [s for s, a in acts.items() if a.handler == SIG_IGN]
    cgt = [s for s, a in acts.items() if a.handler not in (SIG_DFL, SIG_IGN)]
    caps = "000001ffffffffff" if euid == 0 else "0000000000000000"
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    return (f"Name:\t{comm(t)}\nState:\t{STATE_NAMES.get(state, state)}\nTgid:\t{t.group}\n"
            f"Ngid:\t0\nPid:\t{t.pid}\nPPid:\t{t.ppid}\nTracerPid:\t0\n"
            f"Uid:\t{uid}\t{euid}\t{suid}\t{euid}\nGid:\t{gid}\t{egid}\t{sgid}\t{egid}\n"
            f"FDSize:\t{fdsize}\nGroups:\t \nNStgid:\t{t.group}\nNSpid:\t{t.pid}\n"
            f"Kthread:\t0\n" + task_mem(k, t) +
            f"CoreDumping:\t0\nTHP_enabled:\t{int(not t.prctl.get('thp_disable'))}\n"
            f"untag_mask:\t{(1 << 64) - 1:#x}\nThreads:\t{_nr_threads(k, t)}\n"
            f"SigQ:\t{len(t.sig_pending)}/{k.threads_max // 2}\n"
            f"SigPnd:\t{_sigmask(t.sig_pending)}\nShdPnd:\t{_sigmask(())}\n"
            f"SigBlk:\t{t.sig_blocked:016x}\nSigIgn:\t{_sigmask(ign)}\nSigCgt:\t{_sigmask(cgt)}\n"
            f"CapInh:\t{0:016x}\nCapPrm:\t{caps}\nCapEff:\t{caps}\nCapBnd:\t000001ffffffffff\n"
            f"CapAmb:\t{0:016x}\nNoNewPrivs:\t{int(bool(t.prctl.get('no_new_privs')))}\n"
            f"Seccomp:\t0\nSeccomp_filters:\t0\n"
            f"Cpus_allowed:\t{sum(1 << c for c in cpus):x}\n"
            f"Cpus_allowed_list:\t{_cpu_list(cpus)}\n"
            f"voluntary_ctxt_switches:\t{t.nvcsw}\nnonvoluntary_ctxt_switches:\t{t.nivcsw}\n")


def _cpu_list(cpus: list[int]) -> str:
    """A cpumask as bitmap_print_to_pagebuf(list=true) prints it: "0-1,4"."""
    runs: list[list[int]] = []
    for c in cpus:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def auxv_file(saved_auxv) -> bytes:
    """/proc/PID/auxv (auxv_read): mm->saved_auxv up to AT_NULL. A compat task's saved_auxv
    holds 32-bit words, but the kernel scans it as 64-bit unsigned longs two at a time
    for a zero one, so the file runs on past AT_NULL to the next even pair of zeros."""
    words = [w for pair in saved_auxv for w in pair] + [0] * 8
    n = 0
    while True:
        n += 2                                   # nwords += 2 (64-bit units)
        if words[2 * (n - 2)] == 0 and words[2 * (n - 2) + 1] == 0:
            break
    return struct.pack(f"<{2 * n}I", *words[:2 * n])


def proc_file(k, p: Process, path: str) -> Inode | None:
    """The contents of a guest /proc file, as an in-memory inode (None: not under /proc/PID)."""
    from elfvm.emu.task_mmu import guest_maps, statm

    found = proc_task(k, p, path)
    if found is None:
        return None
    t, entry = found.task, found.entry
    if found.sub:
        raise VfsError(errno.ENOTDIR if entry in FILES else errno.ENOENT)
    if entry == "cmdline":
        data = _strings(t.argv)
    elif entry == "environ":
        data = _strings(t.envp)
    elif entry == "comm":
        data = (comm(t) + "\n").encode()
    elif entry == "maps":
        data = "".join(line.text() + "\n" for line in guest_maps(k, t.mm)).encode()
    elif entry == "stat":
        data = _stat(k, t).encode()
    elif entry == "statm":
        data = statm(k, t).encode()
    elif entry == "status":
        data = _status(k, t).encode()
    else:
        data = _mm_file(k, p, t, entry)
    return Inode(found.path, None, None, data=bytearray(data),
                 attrs={"mode": 0o100000 | FILE_MODES.get(entry, 0o444),
                        "st_size": 0})      # proc files are generated when read: stat says 0


def _mm_file(k, p: Process, t: Process, entry: str) -> bytes:
    """auxv, limits, smaps, smaps_rollup, pagemap (PFNs for a CAP_SYS_ADMIN reader only)."""
    from elfvm.emu.pages import flush_refs
    from elfvm.emu.task_mmu import pagemap, show_smaps, show_smaps_rollup

    flush_refs(k)
    if entry == "auxv":
        return auxv_file(t.mm.saved_auxv)
    if entry == "limits":
        return proc_pid_limits(k, t).encode()
    if entry == "smaps":
        return show_smaps(k, t).encode()
    if entry == "smaps_rollup":
        return show_smaps_rollup(k, t).encode()
    if entry == "pagemap":
        c = getattr(p, "creds", None) or {}
        return pagemap(k, t, show_pfn=c.get("euid", c.get("uid", k.profile.host.euid)) == 0)
    raise VfsError(errno.ENOENT)


def proc_link(k, p: Process, path: str) -> str | None:
    """readlink() of /proc/self, /proc/thread-self, /proc/PID/{exe,cwd,root} and
    /proc/PID/fd/N: the guest's paths."""
    norm = k.vfs.guest_path(path)
    if norm == "/proc/self":
        return str(p.group)
    if norm == "/proc/thread-self":
        return f"{p.group}/task/{p.pid}"
    found = proc_task(k, p, path)
    if found is None:
        return None
    t, entry = found.task, found.entry
    if entry == "fd" and found.sub:
        return fd_link(k, t, found.sub)
    if found.sub:
        raise VfsError(errno.ENOENT)
    if entry == "exe":                      # the ELF mapped (a script's interpreter), by d_path
        return k.vfs.host_d_path(t.exe)
    if entry == "cwd":
        return k.vfs.cwd
    if entry == "root":
        return "/"
    if entry == "" or entry in ("task", "fd") or entry in FILES:
        raise VfsError(errno.EINVAL)
    raise VfsError(errno.ENOENT)
