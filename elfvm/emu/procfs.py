"""/proc for the guest: /proc/self, /proc/thread-self and /proc/PID of the guest's own tasks are
built from the emulated kernel's state (fs/proc/base.c's files: cmdline, environ, comm, maps,
stat, statm, status, exe, cwd), never read from the host, where they would describe elfvm's
Python process. A numeric /proc entry that is not a guest task does not exist for the guest.
"""

from __future__ import annotations

import errno
import os
import re

from elfvm.emu.task import Process
from elfvm.emu.vfs import Inode, VfsError

PROC_PATH = re.compile(r"^/proc/(self|thread-self|\d+)(?:/(task/\d+/?)?([^/]*))?/?$")
FILES = ("cmdline", "environ", "comm", "maps", "stat", "statm", "status")


def proc_task(k, p: Process, path: str) -> tuple[Process, str] | None:
    """(task, entry) for a /proc path naming a guest task; None for other paths. A /proc/PID
    that is no guest task raises ENOENT."""
    m = PROC_PATH.match(os.path.normpath(path))
    if m is None:
        return None
    who, _, entry = m.groups()
    if who == "self":
        task = k.procs.get(p.group, p)
    elif who == "thread-self":
        task = p
    else:
        task = k.procs.get(int(who))
        if task is None or task.state == "reaped":
            raise VfsError(errno.ENOENT)
    return task, entry or ""


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
    t, entry = found
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
    return Inode(os.path.normpath(path), None, None, data=bytearray(data))


def proc_link(k, p: Process, path: str) -> str | None:
    """readlink() of /proc/PID/exe and /proc/PID/cwd: the guest's paths."""
    found = proc_task(k, p, path)
    if found is None:
        return None
    t, entry = found
    if entry == "exe":
        return t.images[-1] if t.images else t.exe
    if entry == "cwd":
        return k.vfs.cwd
    if entry == "root":
        return "/"
    raise VfsError(errno.EINVAL if entry in FILES else errno.ENOENT)
