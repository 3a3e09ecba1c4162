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
from dataclasses import dataclass

from elfvm.emu.task import Process
from elfvm.emu.vfs import Inode, VfsError, fifo_ino

PROC_PATH = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/(\d+))?(?:/([^/]+)(?:/([^/]+))?)?$")
FILES = ("cmdline", "environ", "comm", "maps", "stat", "statm", "status")
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
# tgid_base_stuff / tid_base_stuff (fs/proc/base.c), in the kernel's order: the entries elfvm
# models (a directory lists only what the guest can open)
TGID_ENTRIES = (("task", DT_DIR), ("fd", DT_DIR), ("environ", DT_REG), ("status", DT_REG),
                ("comm", DT_REG), ("cmdline", DT_REG), ("stat", DT_REG), ("statm", DT_REG),
                ("maps", DT_REG), ("cwd", DT_LNK), ("root", DT_LNK), ("exe", DT_LNK))
TID_ENTRIES = tuple(e for e in TGID_ENTRIES if e[0] != "task")


@dataclass
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
    """The non-process entries of the root's /proc (cpuinfo, meminfo, ...: what a lookup there
    reaches), never its numbered ones (the host's processes)."""
    try:
        entries = k.vfs.listdir("/proc")
    except VfsError:
        return []
    return [(n, t) for n, t in entries if n not in (".", "..", "self", "thread-self")
            and not n.isdigit()]


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
FILE_MODES = {"environ": 0o400, "comm": 0o644}


def comm(task: Process) -> str:
    name = task.prctl.get("comm")
    if name is not None:
        return name.decode("utf-8", "replace")
    return os.path.basename(task.images[-1] if task.images else task.exe)[:15]


def _strings(items) -> bytes:
    return b"".join(os.fsencode(s) + b"\0" for s in items)


def _rss(t: Process) -> int:
    from elfvm.emu.pages import resident_vpns

    return len(resident_vpns(t)) if t.pt is not None else 0


def _stat(k, t: Process) -> str:
    """/proc/PID/stat (do_task_stat): the fields programs read (state, ppid, minflt, vsize,
    rss); times are 0 (the emulated CPU has no tick accounting)."""
    from elfvm.emu.pages import flush_refs

    flush_refs(k)
    state = {"runnable": "R", "blocked": "S", "zombie": "Z"}.get(t.state, "R")
    vsize = sum(v.end - v.start for v in t.mm.vmas)
    threads = 1 + sum(1 for q in k.procs.values() if q is not t and q.tgid == t.group
                      and q.state not in ("zombie", "reaped"))
    fields = [t.pid, f"({comm(t)})", state, t.ppid, t.group, t.group, 0, -1, 0x400000,
              k.model.page_faults(t.mi), 0, 0, 0, 0, 0, 0, 0, 20, 0, threads, 0, 0, vsize,
              _rss(t), 0xFFFFFFFF] + [0] * 27
    return " ".join(str(f) for f in fields) + "\n"


def _status(k, t: Process) -> str:
    c = getattr(t, "creds", None) or {}
    uid, gid = c.get("uid", k.profile.host.uid), c.get("gid", k.profile.host.gid)
    return (f"Name:\t{comm(t)}\nState:\t{_stat(k, t).split()[2]}\nTgid:\t{t.group}\n"
            f"Pid:\t{t.pid}\nPPid:\t{t.ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
            f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\n"
            f"VmSize:\t{sum(v.end - v.start for v in t.mm.vmas) // 1024:8d} kB\n"
            f"VmRSS:\t{_rss(t) * 4:8d} kB\nThreads:\t{_stat(k, t).split()[19]}\n")


def proc_file(k, p: Process, path: str) -> Inode | None:
    """The contents of a guest /proc file, as an in-memory inode (None: not under /proc/PID)."""
    from elfvm.mm.maps import maps_text

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
        data = maps_text(t.mm).encode()
    elif entry == "stat":
        data = _stat(k, t).encode()
    elif entry == "statm":
        size = sum(v.end - v.start for v in t.mm.vmas) // 4096
        data = f"{size} {_rss(t)} 0 0 0 0 0\n".encode()
    elif entry == "status":
        data = _status(k, t).encode()
    else:
        raise VfsError(errno.ENOENT)
    return Inode(found.path, None, None, data=bytearray(data),
                 attrs={"mode": 0o100000 | FILE_MODES.get(entry, 0o444),
                        "st_size": 0})      # proc files are generated when read: stat says 0


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
    if entry == "exe":
        return t.images[-1] if t.images else t.exe
    if entry == "cwd":
        return k.vfs.cwd
    if entry == "root":
        return "/"
    if entry == "" or entry in ("task", "fd") or entry in FILES:
        raise VfsError(errno.EINVAL)
    raise VfsError(errno.ENOENT)
