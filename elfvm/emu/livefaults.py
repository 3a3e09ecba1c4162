"""The live kernel's own minor-fault count for a run of a program: the figure elfvm is judged by.

`live_minflt(path, argv)` runs the program (ASLR off, as elfvm's default), stops it at the exec
SIGTRAP (ptrace) and reads `minflt` from /proc/PID/stat, lets it run to PTRACE_EVENT_EXIT and
reads `minflt` and `cminflt` (faults of waited-for children) again. The difference is the faults
of the program's own run, from its first instruction to exit_group, without the faults of
fork/exec that `getrusage` / `/usr/bin/time -f %R` also include (those are returned too, as
`rusage_minflt`, from wait4).
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
from dataclasses import dataclass

from elfvm.host.procfs import read_stat, stat_field
from elfvm.host.ptrace import (
    PTRACE_CONT,
    PTRACE_EVENT_EXIT,
    PTRACE_O_TRACEEXIT,
    PTRACE_SETOPTIONS,
    kill_reap,
    ptrace,
    spawn,
)

MINFLT, CMINFLT = 10, 11             # /proc/PID/stat fields (proc(5))


@dataclass(frozen=True)
class LiveFaults:
    minflt: int            # faults from the first user instruction to exit (the process itself)
    cminflt: int           # faults of the children it waited for
    rusage_minflt: int     # wait4's ru_minflt: exec's own faults included
    exit_status: int
    stdout: bytes

    @property
    def total(self) -> int:
        return self.minflt + self.cminflt


def live_minflt(path: str, argv: list[str], env: dict | None = None, stdin: bytes = b"",
                timeout: float = 20) -> LiveFaults:
    out = tempfile.TemporaryFile()
    inp = tempfile.TemporaryFile()
    inp.write(stdin)
    inp.seek(0)

    def redirect():
        os.dup2(inp.fileno(), 0)
        os.dup2(out.fileno(), 1)

    pid = spawn(path, argv, env or {}, aslr=False, personality_extra=0, rlimit_stack=None, cwd=None,
                 timeout=timeout, pre_exec=redirect)
    try:
        start_min = stat_field(read_stat(pid), MINFLT)
        ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACEEXIT))
        ptrace(PTRACE_CONT, pid, None, None)
        end_min = cmin = None
        while True:
            _, status = os.waitpid(pid, 0)
            if os.WIFSTOPPED(status):
                if status >> 16 == PTRACE_EVENT_EXIT:
                    f = read_stat(pid)
                    end_min, cmin = stat_field(f, MINFLT), stat_field(f, CMINFLT)
                    ptrace(PTRACE_CONT, pid, None, None)
                    continue
                sig = os.WSTOPSIG(status)
                ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(0 if sig == signal.SIGTRAP else sig))
                continue
            break
    except BaseException:
        kill_reap(pid)
        raise
    # the child is reaped by waitpid above; its rusage through wait4 is not available any more,
    # so rusage_minflt is measured by a second, untraced run
    ru = _rusage_run(path, argv, env or {}, stdin)
    out.seek(0)
    data = out.read()
    code = os.waitstatus_to_exitcode(status)
    return LiveFaults(end_min - start_min, cmin, ru, 128 - code if code < 0 else code, data)


def _rusage_run(path: str, argv: list[str], env: dict, stdin: bytes) -> int:
    """ru_minflt of an untraced run started by posix_spawn (vfork: little pre-exec noise)."""
    r, w = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        pid = os.posix_spawn(path, argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_CLOSE, w)])
    finally:
        os.close(r)
        os.close(devnull)
    try:
        os.write(w, stdin)
    finally:
        os.close(w)
    _, _, ru = os.wait4(pid, 0)
    return ru.ru_minflt
