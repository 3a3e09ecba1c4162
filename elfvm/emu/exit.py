"""Exit and the signals a dying task sends: do_exit, exit_mm, closing files, SIGCHLD.

send_signal lives here because SIGKILL ends the target at once (do_exit), and do_exit sends
SIGCHLD to the parent (do_notify_parent): the two call each other, as kernel/exit.c and
kernel/signal.c do.
"""

from __future__ import annotations

from elfvm.emu.pages import flush_refs, follow_pte, free_pgtables, mm_entries, resident_vpns, unmap_range
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
from elfvm.emu.uaccess import read_u32, write_u32


def exit_mm(k, p: Process, entries=None) -> None:
    """exit_mmap(): every PTE goes, frames whose last mapping it was are freed (`entries`:
    pages.mm_entries(p), when the caller walked the tables already)."""
    flush_refs(k)
    unmap_range(k, p, 0, p.mm.task_size, entries)
    free_pgtables(k, p)
    for addr, shmid in p.shm_attach.items():
        k.shm[shmid]["nattch"] -= 1


def live_tasks(k, p: Process, same) -> list[Process]:
    return [q for q in k.procs.values() if q is not p and q.state not in ("zombie", "reaped")
            and same(q)]


def futex_key(k, p: Process, uaddr: int, private: bool) -> tuple:
    """get_futex_key(): (mm, address) for private futexes and private mappings; the
    physical location for a futex in a shared mapping (another process may wait there)."""
    vma = p.mm.vma_at(uaddr)
    if not private and vma is not None and vma.shared:
        pte = follow_pte(p, uaddr >> 12)
        if pte is not None:
            return ("phys", pte.frame + (uaddr & 0xFFF))
    return ("mm", id(p.pt), uaddr)


def futex_wake(k, key: tuple, n: int) -> int:
    """Wake up to n tasks asleep in FUTEX_WAIT on key, lowest tid first (deterministic)."""
    woken = 0
    for q in sorted(k.procs.values(), key=lambda q: q.pid):
        if woken >= n:
            break
        if q.state == "blocked" and q.futex_key == key:
            q.futex_woken, q.state = True, "runnable"
            woken += 1
    return woken


FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048


def handle_futex_death(k, p: Process, uaddr: int, pi: bool, pending_op: bool) -> bool:
    """handle_futex_death() (kernel/futex/core.c): a robust futex word the dying task owns
    gets FUTEX_OWNER_DIED (keeping FUTEX_WAITERS) and one waiter is woken; a pending unlock
    whose word is already 0 only wakes. False when the word cannot be read or written (the
    walk then stops)."""
    if uaddr & 3:
        return False
    try:
        uval = read_u32(k, p, uaddr)
        owner = uval & FUTEX_TID_MASK
        if pending_op and not pi and not owner:
            futex_wake(k, futex_key(k, p, uaddr, False), 1)
            return True
        if owner != p.pid:
            return True
        write_u32(k, p, uaddr, (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
    except EFault:
        return False
    if not pi and uval & FUTEX_WAITERS:       # PI futexes are woken by exit_pi_state()
        futex_wake(k, futex_key(k, p, uaddr, False), 1)
    return True


def _fetch_robust_entry(k, p: Process, at: int) -> tuple[int, bool]:
    """fetch_robust_entry(): a list pointer; bit 0 marks a PI futex. EFault when unreadable."""
    v = read_u32(k, p, at)
    return v & ~1, bool(v & 1)


def exit_robust_list(k, p: Process) -> None:
    """compat_exit_robust_list(): walk the dying task's robust mutex list (struct
    robust_list_head {next; long futex_offset; list_op_pending}) and mark every futex it still
    holds owner-dead; at most ROBUST_LIST_LIMIT entries (a circular list ends there), and a bad
    pointer ends the walk quietly. The pending lock/unlock comes last, unless it is on the list."""
    head, p.robust_list = p.robust_list, 0
    try:
        entry, pi = _fetch_robust_entry(k, p, head)
        offset = read_u32(k, p, head + 4)
        pending, pip = _fetch_robust_entry(k, p, head + 8)
    except EFault:
        return
    limit = ROBUST_LIST_LIMIT
    while entry != head:
        try:
            nxt, next_pi = _fetch_robust_entry(k, p, entry)
            rc = True
        except EFault:
            rc = False
        if entry != pending and not handle_futex_death(k, p, (entry + offset) & 0xFFFFFFFF,
                                                       pi, False):
            return
        if not rc:
            return
        entry, pi = nxt, next_pi
        limit -= 1
        if not limit:
            break
    if pending:
        handle_futex_death(k, p, (pending + offset) & 0xFFFFFFFF, pip, True)


def mm_release(k, p: Process) -> None:
    """exit_mm_release() / exec_mm_release(): the robust futex list first (futex_cleanup),
    then mm_release(): CLONE_CHILD_CLEARTID (pthread_join's wake-up: 0 at the tid address
    and a FUTEX_WAKE there); a vfork parent gets its mm back and runs again."""
    if p.robust_list:
        exit_robust_list(k, p)
    if p.tid_address:
        try:
            write_u32(k, p, p.tid_address, 0)
            futex_wake(k, futex_key(k, p, p.tid_address, False), 1)
        except EFault:
            pass
        p.tid_address = 0
    vparent = k.procs.get(p.vfork_parent) if p.vfork_parent is not None else None
    p.vfork_parent = None
    if vparent is not None and vparent.state == "blocked":
        vparent.state = "runnable"


def do_group_exit(k, p: Process, code: int | None = None, death: Death | None = None) -> None:
    """exit_group() or a fatal signal: every thread of the group ends, the leader last with
    the status its parent will see."""
    leader = k.procs.get(p.group, p)
    for q in live_tasks(k, leader, lambda q: q.group == p.group):
        mm_release(k, q)
        q.state = "reaped"                    # threads are reaped by their group (no SIGCHLD)
    do_exit(k, leader, code, death, whole_group=True)
    if p is k.current:
        k.uc.emu_stop()


def do_exit(k, p: Process, code: int | None = None, death: Death | None = None,
            whole_group: bool = False) -> None:
    if p.state in ("zombie", "reaped"):
        return
    if death is not None and not whole_group and \
            live_tasks(k, p, lambda q: q.group == p.group):
        do_group_exit(k, p, death=death)    # a fatal signal kills the whole thread group
        return
    p.exit_code = code
    p.death = death
    if not live_tasks(k, p, lambda q: q.fds is p.fds):
        for fd in list(p.fds):
            close_fd(k, p, fd)
    mm_release(k, p)
    entries = mm_entries(p)                  # one walk for the resident set and exit_mmap
    p.final_resident = resident_vpns(p, entries)     # the resident set as the process ended
    if all(q.state in ("zombie", "reaped") for q in k.procs.values() if q is not p):
        flush_refs(k)                    # the last one: the model as the run ended
        k.final_stats = k.model.stats()
        k.final_timeline = k.model.timeline()
    if not live_tasks(k, p, lambda q: q.pt is p.pt):
        exit_mm(k, p, entries)
    p.state = "zombie"
    for c in k.procs.values():
        if c.ppid == p.pid:
            c.ppid = 1
    if p.tgid:
        p.state = "reaped"                   # a thread: no SIGCHLD, nobody waits for it
    else:
        notify_parent(k, p)
        parent = k.procs.get(p.ppid)
        if parent is not None and parent.state == "blocked" and parent.futex_key is None \
                and not vfork_waiting(k, parent):
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
        f.pipe.attach(f.pipe_end, -1)
        f.pipe.wake(0)                          # pipe_release: both wait queues, every event
        wake_all(k)
    return True


def vfork_waiting(k, q: Process) -> bool:
    """q sleeps in vfork until its child execs or exits (no other event wakes it)."""
    return any(c.vfork_parent == q.pid for c in k.procs.values()
               if c.state not in ("zombie", "reaped"))


def wake_all(k) -> None:
    """A pipe changed: every sleeper re-executes its call and sleeps again if it must."""
    for q in k.procs.values():
        if q.state == "blocked" and not vfork_waiting(k, q):
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
