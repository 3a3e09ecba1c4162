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
    map_pages,
    PageCacheReads,
    page_cache_frame,
    pte_and_slot,
    set_pte,
    set_ptes,
    shmem_frame,
    shmem_key,
    special_frame,
)
from elfvm.emu.sigstate import SIGBUS, SIGSEGV
from elfvm.emu.task import Death, FaultEvent, Process, Pte
from elfvm.mm import fault as F
from elfvm.mm.vma import PROT_EXEC, PROT_WRITE, Vma


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
        if k.fast is not None:                    # the reference that takes it is Python's
            k.fast.forget()
    else:
        flush_refs(k)
        k.model.count_fault(p.mi, kind)


def do_user_addr_fault(k, p: Process, addr: int, access: str, eip: int, kernel: bool = False) -> Death | None:
    """A page fault of `p` at `addr` (from the CPU, or from a uaccess when `kernel`): the
    kernel's decision (elfvm.mm.fault.handle_mm_fault, the one translate shows) carried out.
    None when resolved, else the fatal signal."""
    vpn = addr >> 12
    pte, slot = pte_and_slot(p, vpn)
    if pte is not None and (access != "w" or pte.write) and (access != "x" or pte.exec):
        return None                                    # spurious: a stale TLB entry
    fi = k.frames.info.get(pte.frame) if pte else None
    seen = F.Pte(present=pte is not None, write=bool(pte and pte.write), swapped=slot is not None,
                 exclusive=bool(fi and fi.anon and len(fi.rmap) == 1 and fi.cache_key is None))
    f = F.handle_mm_fault(p.mm, addr, access, pte=seen, nx=k.geom.nx, rlimit_stack=p.rlimit_stack,
                          file_size=lambda v: file_inode(k, v.file).size, model=k.fault_model)
    if f.fatal:
        sig = SIGBUS if f.kind == F.SIGBUS else SIGSEGV
        return pf_death(Death(sig, addr, access, f.reason, eip, code=f.si_code), pte is not None)
    if f.grown_from is not None:
        p.mm.replace(f.grown_from, f.vma)
    mapped = 1
    if slot is not None:
        do_swap_page(k, p, vpn, slot, access, f)
    elif pte is not None:
        do_wp_page(k, p, vpn, pte, f, kernel)
    elif f.vma.special:
        set_pte(k, p, vpn, Pte(special_frame(k, f.vma, vpn << 12), False, is_exec(f.vma)))
    elif f.vma.file is None:
        do_anonymous_page(k, p, vpn, f)
    else:
        mapped += do_fault(k, p, vpn, f)
    account_fault(k, p, addr, access, f.counted, f.handler, eip, mapped, kernel)
    model_fault(k, p, vpn, f.counted, pte is None)
    return None


def is_exec(vma: Vma) -> bool:
    return bool(vma.prot & PROT_EXEC)


def do_swap_page(k, p: Process, vpn: int, slot: int, access: str, f: F.Fault) -> None:
    """Read the page back from swap (or the swap cache); a write to a page others still share
    goes on to do_wp_page() in the same fault: a private copy."""
    fr = k.swap_cache.get(slot)
    if fr is None:
        nfi = alloc_frame(k, "swap-in", anon=True)
        k.frames.fill(nfi.addr, k.swap.load(slot))
        fr = k.swap_cache[slot] = nfi.addr
    drop_swap_entry(k, p, vpn, slot)
    excl = len(k.frames.info[fr].rmap) == 0 and k.swap_refs[slot] <= 0
    if access == "w" and not excl:
        cfi = alloc_frame(k, "cow copy", anon=True)
        k.frames.copy(cfi.addr, fr)
        fr, excl = cfi.addr, True
    set_pte(k, p, vpn, Pte(fr, bool(f.vma.prot & PROT_WRITE) and excl, is_exec(f.vma)))


def do_wp_page(k, p: Process, vpn: int, pte: Pte, f: F.Fault, kernel: bool) -> None:
    """wp_page_copy (a new frame, the zero page's copy is zeros) or reuse / shared: the PTE
    just becomes writable."""
    if f.copy:
        zero = pte.frame == k.zero_page
        nfi = alloc_frame(k, "cow copy", anon=True, zeroed=zero)
        if not zero:
            k.frames.copy(nfi.addr, pte.frame)
        clear_pte(k, p, vpn)
        set_pte(k, p, vpn, Pte(nfi.addr, True, is_exec(f.vma)))
        k.model.set_pfn(p.mi, vpn, nfi.addr >> 12)    # a resident page changes frame
    else:
        set_pte(k, p, vpn, Pte(pte.frame, True, is_exec(f.vma)))
    if kernel:
        flush_cpu_tlb(k)


def do_anonymous_page(k, p: Process, vpn: int, f: F.Fault) -> None:
    """A private page: the zero page (read) or a new zeroed frame; a shared one: its shmem page."""
    vma = f.vma
    if vma.shared:
        fr = shmem_frame(k, shmem_key(k, vma, vpn << 12))
        set_pte(k, p, vpn, Pte(fr, f.write, is_exec(vma)))
    elif f.copy:
        nfi = alloc_frame(k, "anon", anon=True, zeroed=True)
        set_pte(k, p, vpn, Pte(nfi.addr, f.write, is_exec(vma)))
    else:
        set_pte(k, p, vpn, Pte(k.zero_page, False, is_exec(vma)))


def do_fault(k, p: Process, vpn: int, f: F.Fault) -> int:
    """A file page: a private copy (do_cow_fault) or the page-cache page (do_read_fault, with
    fault-around; do_shared_fault). Returns the neighbours fault-around mapped."""
    vma = f.vma
    pa = vpn << 12
    ino = file_inode(k, vma.file)
    index = (vma.pgoff + (pa - vma.start)) >> 12
    if f.copy:
        nfi = alloc_frame(k, "cow copy", anon=True)
        k.frames.copy(nfi.addr, page_cache_frame(k, ino, index))
        set_pte(k, p, vpn, Pte(nfi.addr, True, is_exec(vma)))
        return 0
    if not f.around:
        set_pte(k, p, vpn, Pte(page_cache_frame(k, ino, index), f.write, is_exec(vma)))
        return 0
    # do_read_fault: the page, then its neighbours; the pages not cached yet are read in
    # together at the end (frames taken in the kernel's order: the page's, its page table's
    # when missing, the neighbours')
    reads = PageCacheReads(k, ino)
    try:
        set_pte(k, p, vpn, Pte(reads.frame(index), f.write, is_exec(vma)))
        return do_fault_around(k, p, vma, reads, pa, -(-ino.size // PAGE), is_exec(vma))
    finally:
        reads.finish()


def pf_death(d: Death, pte_present: bool) -> Death:
    """The page fault's trap number and error code (X86_PF_PROT | WRITE | USER | INSTR)."""
    err = (1 if pte_present else 0) | (2 if d.access == "w" else 0) | 4 | (16 if d.access == "x" else 0)
    return replace(d, trapno=14, err=err)


def do_fault_around(k, p: Process, vma: Vma, reads: PageCacheReads, pa: int, npages: int,
                    exec_: bool) -> int:
    """filemap_map_pages() over the do_fault_around() window: map the neighbouring page-cache
    pages that have no PTE yet (read-only), never past EOF. They become resident in the
    model too, while it has a free frame besides the one the faulting page needs (elfvm
    does not evict for fault-around)."""
    first, last = F.fault_around_range(pa, vma.start, vma.end, k.ptrs_per_pte)
    ranges = F.fault_around_folios(first, last, vma.start, vma.end, vma.pgoff, k.ptrs_per_pte,
                                   k.folios.folio_of(reads.ino), k.folios.whole)
    if not ranges:
        return 0
    room = k.model.free_frames - 1          # each page takes a free frame of the model
    # the window's entries, read at once (one page table holds them all); any entry, a swap
    # entry too, keeps its page out
    lo = ranges[0][0] >> 12
    entries = p.pt.leaf_entries(ranges[0][0], ranges[-1][1])
    to_index = (vma.pgoff - vma.start) >> 12            # vpn -> file page index
    vpns = []
    for vpn in [v for a, b in ranges for v in range(a >> 12, b >> 12)]:
        if vpn + to_index >= npages or entries[vpn - lo] or vpn == pa >> 12:
            continue
        if len(vpns) >= room:
            break
        vpns.append(vpn)
    frames = reads.frames([vpn + to_index for vpn in vpns])
    set_ptes(k, p, vpns, frames, False, exec_)
    map_pages(k, p, vpns, frames)
    return len(vpns)
