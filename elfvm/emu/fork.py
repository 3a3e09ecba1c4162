"""fork(): copy_process() -> dup_mmap(), with copy-on-write PTEs."""

from __future__ import annotations

import errno
from dataclasses import replace

from elfvm.emu.memory import OutOfFrames

from elfvm.emu.pages import (
    flush_cpu_tlb,
    free_pgtables,
    unmap_range,
    follow_pte,
    map_page,
    new_page_tables,
    present_ptes,
    set_pte,
    swap_entry,
    swap_ptes,
)
from elfvm.emu.task import Process, Pte
from elfvm.mmu import entries as E


def new_pid(k) -> int:
    pid = k.next_pid
    k.next_pid += 1
    return pid


def threads_max(ram: int, profile) -> int:
    """kernel/fork.c set_max_threads(): as many tasks as fit their kernel stacks (THREAD_SIZE:
    8 KiB on i386, 16 KiB on x86-64) in an eighth of RAM."""
    thread_size = 8192 if profile.name == "linux-i386" else 16384
    return max(ram // (thread_size * 8), 20)


def fork(k, parent: Process) -> Process:
    """copy_process(): -EAGAIN at threads-max tasks (zombies count until reaped), -ENOMEM when
    RAM cannot hold the child's page tables (nothing of the child is left then)."""
    if sum(q.state != "reaped" for q in k.procs.values()) >= k.threads_max:
        raise OSError(errno.EAGAIN, "threads-max")
    pid = new_pid(k)
    try:
        return copy_process(k, parent, pid)
    except OutOfFrames:
        child = k.procs.pop(pid, None)
        if child is not None:
            k.by_mi.pop(child.mi, None)
            unmap_range(k, child, 0, child.mm.task_size)
            free_pgtables(k, child)
        raise OSError(errno.ENOMEM, "out of memory") from None


def copy_process(k, parent: Process, pid: int) -> Process:
    """dup_mmap(): the child gets copies of the VMAs and, through copy_pte_range, of the PTEs
    (copy-on-write); then the rest of the task (files, signals, TLS, shm attachments). Memory
    first: when RAM runs out there, nothing else of the child exists yet."""
    # dup_mm(): the child's peaks start at its own size and RSS (hiwater_vm = total_vm)
    mm = replace(parent.mm, vmas=list(parent.mm.vmas), hiwater_rss=0, hiwater_vm=0)
    child = Process(pid, parent.pid, mm, new_page_tables(k, pid), rlimit_stack=parent.rlimit_stack)
    child.mi = k.model.add_process()
    k.procs[pid] = child
    k.by_mi[child.mi] = child
    changed = False
    for vma in parent.mm.vmas:
        changed |= copy_pte_range(k, parent, child, vma)
    if changed:
        flush_cpu_tlb(k)
    copy_task(k, parent, child)
    child.context = k.uc.context_save()
    child.set_eax = 0
    return child


def copy_task(k, parent: Process, child: Process) -> None:
    child.exe = parent.exe
    child.images = [parent.images[-1]] if parent.images else []
    child.argv, child.envp = parent.argv, parent.envp
    child.forked_by = parent.pid
    child.tls = dict(parent.tls)
    child.sigactions = dict(parent.sigactions)
    child.sig_blocked = parent.sig_blocked
    child.sig_altstack = parent.sig_altstack
    child.shm_attach = dict(parent.shm_attach)
    for s in child.shm_attach.values():
        k.shm[s]["nattch"] += 1
    child.fds, child.cloexec = dup_fds(parent.fds), set(parent.cloexec)


def dup_fds(fds: dict) -> dict:
    """dup_fd(): a copy of the descriptor table; each open file gains a reference (and a pipe
    end its reader or writer)."""
    for f in fds.values():
        f.refs += 1
        if f.pipe is not None:
            f.pipe.attach(f.pipe_end, +1)
    return dict(fds)


CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000


def clone_vm(k, parent: Process, flags: int) -> Process:
    """copy_process() with CLONE_VM: the new task shares the parent's mm, page tables and PTEs
    (one paging-model process); files and signal handlers are shared or copied as the flags
    say; CLONE_THREAD puts it in the parent's thread group (getpid() is the group's)."""
    pid = new_pid(k)
    t = Process(pid, parent.ppid if flags & (CLONE_THREAD | CLONE_PARENT) else parent.pid,
                parent.mm, parent.pt, rlimit_stack=parent.rlimit_stack)
    t.mi, t.shm_attach = parent.mi, parent.shm_attach          # one mm: one page table (p.pt)
    t.old_ptes = parent.old_ptes
    t.tgid = parent.group if flags & CLONE_THREAD else 0
    t.exe, t.images = parent.exe, [parent.images[-1]] if parent.images else []
    t.argv, t.envp = parent.argv, parent.envp
    t.forked_by = parent.pid
    t.tls = dict(parent.tls)
    t.sigactions = parent.sigactions if flags & CLONE_SIGHAND else dict(parent.sigactions)
    t.sig_blocked = parent.sig_blocked
    if flags & CLONE_FILES:
        t.fds, t.cloexec = parent.fds, parent.cloexec
    else:
        t.fds, t.cloexec = dup_fds(parent.fds), set(parent.cloexec)
    k.procs[pid] = t
    t.context = k.uc.context_save()
    t.set_eax = 0
    return t


def shares_mm(k, p: Process) -> list[Process]:
    """The other live tasks on p's mm (threads, a vfork child before it execs)."""
    return [q for q in k.procs.values() if q is not p and q.pt is p.pt
            and q.state not in ("zombie", "reaped")]


def copy_pte_range(k, parent: Process, child: Process, vma) -> bool:
    """copy_page_range() for one VMA: only VMAs with anonymous pages are copied
    (vma_needs_copy: file pages fault in again); a private writable page becomes read-only in
    both (copy-on-write); swap entries are shared (the slot gets one more user). True when a
    parent PTE lost its write permission."""
    present = list(present_ptes(parent, vma.start, vma.end))
    swapped = list(swap_ptes(parent, vma.start, vma.end))
    has_anon = swapped or any(k.frames.info.get(pte.frame) is not None
                              and k.frames.info[pte.frame].anon for _, pte in present)
    if vma.shared or vma.special or not has_anon:
        return False
    changed = False
    for v, _ in present:
        pte = follow_pte(parent, v)
        if pte is None:                 # evicted while the child's pages were mapped
            continue
        cow = pte.write and not vma.shared
        if cow:
            set_pte(k, parent, v, Pte(pte.frame, False, pte.exec))
            changed = True
        set_pte(k, child, v, Pte(pte.frame, False if cow else pte.write, pte.exec))
        # copy_present_pte(): the child's PTE is old (pte_mkold); the CPU sets A again when
        # the child's first access loads it into the TLB (elfvm.emu.entry)
        child.pt.write_pte(v << 12, child.pt.read_pte(v << 12) & ~E.A)
        child.old_ptes.add(v)
        map_page(k, child, v, frame=pte.frame)
    for v, slot in swap_ptes(parent, vma.start, vma.end):
        if not child.pt.read_pte(v << 12):
            child.pt.write_pte(v << 12, swap_entry(slot))
            k.swap_refs[slot] += 1
    return changed
