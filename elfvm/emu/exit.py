"""Exit and the signals a dying task sends: do_exit, exit_mm, closing files, SIGCHLD.

send_signal lives here because SIGKILL ends the target at once (do_exit), and do_exit sends
SIGCHLD to the parent (do_notify_parent): the two call each other, as kernel/exit.c and
kernel/signal.c do.
"""

from __future__ import annotations

from elfvm.emu.pages import clear_pte, flush_refs
from elfvm.emu.sigstate import (
    CLD_DUMPED,
    CLD_EXITED,
    CLD_KILLED,
    COREDUMP,
    SA_NOCLDWAIT,
    SIG_IGN,
    SIGCHLD,
    SIGKILL,
    SigInfo,
    action,
    bit,
    deliverable,
    ignored,
    state,
)
from elfvm.emu.task import Death, EFault, Process
from elfvm.emu.uaccess import write_u32


def exit_mm(k, p: Process) -> None:
    """exit_mmap(): every PTE goes, frames whose last mapping it was are freed."""
    flush_refs(k)
    for vpn in sorted(p.ptes):
        clear_pte(k, p, vpn)
        k.model.unmap(p.mi, vpn)
    for vpn, slot in p.swapped.items():
        k.model.unmap(p.mi, vpn)
        k.swap_refs[slot] -= 1
        if k.swap_refs[slot] <= 0:
            k.swap.pop(slot, None)
    p.swapped.clear()
    for addr, shmid in p.shm_attach.items():
        k.shm[shmid]["nattch"] -= 1


def do_exit(k, p: Process, code: int | None = None, death: Death | None = None) -> None:
    if p.state in ("zombie", "reaped"):
        return
    p.exit_code = code
    p.death = death
    for fd in list(p.fds):
        close_fd(k, p, fd)
    if p.tid_address:
        try:
            write_u32(k, p, p.tid_address, 0)
        except EFault:
            pass
    p.final_resident = set(p.ptes)           # the resident set as the process ended
    if all(q.state in ("zombie", "reaped") for q in k.procs.values() if q is not p):
        flush_refs(k)                    # the last one: the model as the run ended
        k.final_stats = k.model.stats()
        k.final_timeline = k.model.timeline()
    exit_mm(k, p)
    p.state = "zombie"
    for c in k.procs.values():
        if c.ppid == p.pid:
            c.ppid = 1
    notify_parent(k, p)
    parent = k.procs.get(p.ppid)
    if parent is not None and parent.state == "blocked":
        parent.state = "runnable"
    if p is k.current:
        k.uc.emu_stop()


def close_fd(k, p: Process, fd: int) -> bool:
    f = p.fds.pop(fd, None)
    p.cloexec.discard(fd)
    if f is None:
        return False
    f.refs -= 1
    if f.pipe is not None:
        if f.pipe_end == "r":
            f.pipe.readers -= 1
        else:
            f.pipe.writers -= 1
        wake_all(k)
    return True


def wake_all(k) -> None:
    for q in k.procs.values():
        if q.state == "blocked":
            q.state = "runnable"


def send_signal(k, q, sig: int, info: SigInfo) -> None:
    """__send_signal_locked(): pend it (unless ignored and not blocked) and wake the target."""
    state(q)
    if q.state in ("zombie", "reaped"):
        return
    if sig == SIGKILL:
        do_exit(k, q, death=Death(SIGKILL, reason=f"killed by SIGKILL (si_code {info.code}, pid {info.pid})"))
        return
    if not q.sig_blocked & bit(sig) and ignored(q, sig):
        return
    if sig not in q.sig_pending:
        q.sig_pending[sig] = info
    if q.state == "blocked" and deliverable(q) is not None:
        q.state = "runnable"                          # signal_wake_up()


def notify_parent(k, child) -> None:
    """do_notify_parent(): SIGCHLD to the parent; SIG_IGN / SA_NOCLDWAIT reap the child at once."""
    parent = k.procs.get(child.ppid)
    if parent is None or parent.state in ("zombie", "reaped"):
        return
    state(parent)
    if child.death is not None:
        code = CLD_DUMPED if child.death.signal in COREDUMP else CLD_KILLED
        status = child.death.signal
    else:
        code, status = CLD_EXITED, child.exit_code or 0
    act = action(parent, SIGCHLD)
    autoreap = act.handler == SIG_IGN or bool(act.flags & SA_NOCLDWAIT)
    send_signal(k, parent, SIGCHLD, SigInfo(SIGCHLD, code, child.pid, 0, status=status))
    if autoreap:
        child.state = "reaped"
