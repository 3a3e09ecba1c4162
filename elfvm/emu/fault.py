"""The emulator's page-fault handler: do_user_addr_fault() with the frames behind it.

The decisions are elfvm.mm.fault's (the handler Linux runs, the fault-around window, the stack
guard gap); this module carries them out on the emulated machine: it allocates and fills frames,
sets PTEs, and tells the paging model (pages) about the fault.
"""

from __future__ import annotations

from dataclasses import replace

from elfvm.emu.memory import PAGE
from elfvm.emu.pages import (
    alloc_frame,
    clear_pte,
    drop_swap_entry,
    file_inode,
    flush_cpu_tlb,
    flush_refs,
    follow_pte,
    map_page,
    page_cache_frame,
    set_pte,
    shmem_frame,
    shmem_key,
    special_frame,
    swap_slot,
)
from elfvm.emu.sigstate import SIGBUS, SIGSEGV
from elfvm.emu.task import Death, FaultEvent, Process, Pte
from elfvm.emu.vfs import Inode
from elfvm.mm import fault as F
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Vma, page_start


def account_fault(k, p: Process, addr: int, access: str, plan_kind: str, handler: str, eip: int,
             mapped: int = 1, kernel: bool = False) -> None:
    k.event_seq += 1
    if len(k.events) < k.event_limit:
        k.events.append(FaultEvent(k.event_seq, p.pid, addr, access, plan_kind, handler, eip,
                                      mapped, kernel))


def model_fault(k, p: Process, vpn: int, kind: str, new_pte: bool) -> None:
    """Tell the model about a fault: one that made a PTE present is counted with the
    reference that follows it (the model takes a frame then); one on a present PTE (COW,
    write after the zero page) needs no frame and is counted now."""
    if new_pte:
        k.pending[(p.pid, vpn)] = kind
    else:
        flush_refs(k)
        k.model.count_fault(p.mi, kind)


def expand_stack(k, p: Process, addr: int) -> tuple[Vma | None, str]:
    """expand_downwards(): grow the VM_GROWSDOWN VMA above addr, within RLIMIT_STACK and
    the stack guard gap; otherwise the reason for SIGSEGV."""
    mm = p.mm
    nxt = mm.find_vma(addr)
    if nxt is None or not nxt.growsdown:
        return None, "no mapping at this address"
    new_start = page_start(addr)
    below = [v for v in mm.vmas if v.end <= nxt.start and v is not nxt]
    prev = below[-1] if below else None
    if nxt.end - new_start > p.rlimit_stack:
        return None, (f"stack growth to {new_start:#x} would make the stack "
                      f"{(nxt.end - new_start) >> 10} KiB, over RLIMIT_STACK "
                      f"({p.rlimit_stack >> 10} KiB)")
    if not F.stack_guard_ok(new_start, prev.end if prev else None,
                            bool(prev and prev.prot), mm.stack_guard_gap):
        return None, (f"stack growth to {new_start:#x} would come within the stack guard gap "
                      f"of {prev.start:#x}-{prev.end:#x}")
    new = replace(nxt, start=new_start)
    mm.replace(nxt, new)
    return new, ""


def do_user_addr_fault(k, p: Process, addr: int, access: str, eip: int, kernel: bool = False) -> Death | None:
    """handle_mm_fault() for `p` at `addr`; None when resolved, else the fatal signal."""
    vpn = addr >> 12
    pa = vpn << 12
    if addr >= p.mm.task_size:
        return pf_death(Death(SIGSEGV, addr, access, "address above TASK_SIZE (kernel space)", eip,
                                code=1), pte_present=False)
    vma = p.mm.vma_at(addr)
    grew = False
    if vma is None:
        vma, why = expand_stack(k, p, addr)
        if vma is None:
            return pf_death(Death(SIGSEGV, addr, access, why, eip, code=1), False)
        grew = True
    if access == "w" and not vma.prot & PROT_WRITE:
        return pf_death(Death(SIGSEGV, addr, access, f"write to a {vma.perms} mapping "
                                            f"{vma.start:#x}-{vma.end:#x}", eip, code=2),
                          follow_pte(p, vpn) is not None)
    if access == "x" and not vma.prot & PROT_EXEC:
        return pf_death(Death(SIGSEGV, addr, access, f"instruction fetch from a non-executable "
                                f"{vma.perms} mapping {vma.start:#x}-{vma.end:#x}", eip, code=2),
                          follow_pte(p, vpn) is not None)
    if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
        return pf_death(Death(SIGSEGV, addr, access, f"access to a PROT_NONE mapping "
                                            f"{vma.start:#x}-{vma.end:#x}", eip, code=2),
                          follow_pte(p, vpn) is not None)
    pte = follow_pte(p, vpn)
    slot = swap_slot(p, vpn) if pte is None else None
    if pte is not None and (access != "w" or pte.write):
        return None                                    # spurious (stale TLB)
    exec_ = bool(vma.prot & PROT_EXEC)
    vma_w = bool(vma.prot & PROT_WRITE)
    if vma.special:
        fr = special_frame(k, vma, pa)
        set_pte(k, p, vpn, Pte(fr, False, exec_))
        account_fault(k, p, addr, access, "first-touch", "special_mapping_fault", eip, 1, kernel)
        model_fault(k, p, vpn, "first-touch", True)
        return None
    anonymous = vma.file is None
    shm_key = getattr(vma, "source", "")
    shared = vma.shared
    fi = k.frames.info.get(pte.frame) if pte else None
    exclusive = bool(fi and fi.anon and len(fi.rmap) == 1 and fi.cache_key is None)
    plan = F.handle_mm_fault(anonymous=anonymous and not shared, shared=shared, vma_writable=vma_w,
                             access=access, pte_present=pte is not None,
                             pte_write=bool(pte and pte.write), pte_exclusive_anon=exclusive,
                             swapped=slot is not None, model=k.fault_model)
    kind = "stack-growth" if grew else plan.kind
    mapped = 1
    if plan.handler == "do_swap_page":
        fr = k.swap_cache.get(slot)
        if fr is None:
            nfi = alloc_frame(k, "swap-in", anon=True)
            k.frames.fill(nfi.addr, k.swap.load(slot))
            fr = k.swap_cache[slot] = nfi.addr
        drop_swap_entry(k, p, vpn, slot)
        excl = len(k.frames.info[fr].rmap) == 0 and k.swap_refs[slot] <= 0
        if access == "w" and not excl:
            # do_swap_page() -> do_wp_page() in the same fault: a private copy
            cfi = alloc_frame(k, "cow copy", anon=True)
            k.frames.copy(cfi.addr, fr)
            fr, excl = cfi.addr, True
        set_pte(k, p, vpn, Pte(fr, vma_w and excl, exec_))
        kind = "swap-in"
    elif pte is not None:                               # do_wp_page
        if plan.copy:
            old = pte.frame
            nfi = alloc_frame(k, "cow copy", anon=True)
            if old == k.zero_page:
                k.frames.fill(nfi.addr, b"")
            else:
                k.frames.copy(nfi.addr, old)
            clear_pte(k, p, vpn)
            set_pte(k, p, vpn, Pte(nfi.addr, True, exec_))
        else:
            set_pte(k, p, vpn, Pte(pte.frame, True, exec_))
        if kernel:
            flush_cpu_tlb(k)
    elif shared and (anonymous or shm_key.startswith("shm:")):
        fr = shmem_frame(k, shmem_key(k, vma, pa))
        set_pte(k, p, vpn, Pte(fr, plan.write or (k.fault_model == "simple" and vma_w), exec_))
    elif anonymous:
        if plan.copy:
            nfi = alloc_frame(k, "anon", anon=True)
            k.frames.fill(nfi.addr, b"")
            set_pte(k, p, vpn, Pte(nfi.addr, vma_w, exec_))
        else:
            set_pte(k, p, vpn, Pte(k.zero_page, False, exec_))
    else:
        ino = file_inode(k, vma.file)
        index = (vma.pgoff + (pa - vma.start)) >> 12
        npages = -(-ino.size // PAGE)
        if index >= npages:
            return pf_death(Death(SIGBUS, addr, access, f"page {pa:#x} lies beyond the end of "
                                               f"{vma.file.path} ({ino.size} bytes)", eip, code=2),
                              False)
        if plan.copy:                                   # do_cow_fault
            src = page_cache_frame(k, ino, index)
            nfi = alloc_frame(k, "cow copy", anon=True)
            k.frames.copy(nfi.addr, src)
            set_pte(k, p, vpn, Pte(nfi.addr, True, exec_))
        else:
            fr = page_cache_frame(k, ino, index)
            set_pte(k, p, vpn, Pte(fr, plan.write, exec_))
            if plan.around:
                mapped += do_fault_around(k, p, vma, ino, pa, npages, exec_)
    account_fault(k, p, addr, access, kind, plan.handler, eip, mapped, kernel)
    model_fault(k, p, vpn, kind, pte is None)
    return None


def pf_death(d: Death, pte_present: bool) -> Death:
    """The page fault's trap number and error code (X86_PF_PROT | WRITE | USER | INSTR)."""
    err = (1 if pte_present else 0) | (2 if d.access == "w" else 0) | 4 | (16 if d.access == "x" else 0)
    return replace(d, trapno=14, err=err)


def do_fault_around(k, p: Process, vma: Vma, ino: Inode, pa: int, npages: int, exec_: bool) -> int:
    """filemap_map_pages() over the do_fault_around() window: map the neighbouring page-cache
    pages that have no PTE yet (read-only), never past EOF. They become resident in the
    model too, while it has a free frame besides the one the faulting page needs (elfvm
    does not evict for fault-around)."""
    first, last = F.fault_around_range(pa, vma.start, vma.end, k.ptrs_per_pte)
    first, last = F.whole_folios(first, last, vma.start, vma.end, vma.pgoff, k.ptrs_per_pte,
                                 k.folio_pages)
    n = 0
    for a in range(first, last, PAGE):
        v = a >> 12
        if a == pa or p.pt.read_pte(a):
            continue
        index = (vma.pgoff + (a - vma.start)) >> 12
        if index >= npages:
            continue
        if k.model.free_frames <= 1:
            break
        fr = page_cache_frame(k, ino, index)
        set_pte(k, p, v, Pte(fr, False, exec_))
        map_page(k, p, v)
        n += 1
    return n
