"""Pages and frames of the emulated kernel: PTEs, the page cache, swap and eviction.

Every PTE change goes through `set_pte` / `clear_pte`, which keep the frame's reverse map and
the MMU model's page tables (elfvm.mmu.paging.PageTables) in step. Residency, replacement and
statistics are the trace engine's (`elfvm.sim.engine.PagingModel`, one implementation for traces
and programs): every reference goes to the model with the fault kind the kernel decided; when
`--frames` is full the model names the victim and `evict` carries it out (anonymous pages to
swap, PTE cleared, CPU TLB flushed). Invariant: a process page is resident in the model exactly
when it has a present PTE here.
"""

from __future__ import annotations

from elfvm.emu.memory import PAGE, FrameInfo
from elfvm.emu.task import Process, Pte
from elfvm.emu.vdso import vdso_image
from elfvm.emu.vfs import Inode
from elfvm.mm.vma import FileRef, Vma
from elfvm.mmu import entries as E
from elfvm.mmu.paging import PageTables


def reference(k, p: Process, vpn: int, write: bool, instr: bool, frame: int | None = None) -> None:
    """One reference of `p` to page `vpn` (present here, in `frame` when the caller knows it):
    to the paging model, whose eviction, if the reference faulted, this kernel then carries
    out."""
    key = (p.pid, vpn)                           # every TLB fill passes here: one key
    k.touched.add(key)
    kind = k.pending.pop(key, None) if k.pending else None
    if k.deferred and (p.mi, vpn) in k.deferred:
        flush_refs(k)                            # back in the model before it left here
        if k.model.access(p.mi, vpn, write=write, instr=instr).fault is not None:
            frame_to_model(k, p, vpn, frame)
        k.deferred.discard((p.mi, vpn))
        return
    batch = k.batch
    if batch is not None:
        if kind is None:
            if batch.add(p.mi, vpn, write, instr):
                flush_refs(k)
            return
        flush_refs(k)
    a = k.model.access(p.mi, vpn, write=write, instr=instr, fault_kind=kind or "first-touch",
                          refault_kind=kind)
    if a.fault is not None:
        frame_to_model(k, p, vpn, frame)
    elif kind is not None:                            # pragma: no cover - invariant broken
        k.model.count_fault(p.mi, kind)
    if a.evicted is not None:
        evict(k, *a.evicted)


def flush_refs(k) -> None:
    """Exact mode: the buffered references (to resident pages: none faults) into the model."""
    if k.batch is not None and k.batch.n:
        k.model.access_many(*k.batch.take())


def map_page(k, p: Process, vpn: int, dirty: bool = False, frame: int | None = None) -> None:
    """A PTE made present without a reference (fault-around, fork, execve, mremap)."""
    map_pages(k, p, [vpn], [frame if frame is not None else follow_pte(p, vpn).frame], dirty)


def map_pages(k, p: Process, vpns: list[int], frames: list[int], dirty: bool = False) -> None:
    """PTEs of `vpns` made present (in `frames`) without a reference: fault-around's window,
    fork, execve, mremap. One call into the model for the batch; its evictions are carried
    out in order after it."""
    if not vpns:
        return
    flush_refs(k)
    for mi, vpn in k.model.map_many(p.mi, vpns, [fr >> 12 for fr in frames], dirty):
        evict(k, mi, vpn)


def frame_to_model(k, p: Process, vpn: int, frame: int | None) -> None:
    """The model's frame for the page the last reference made resident shows the frame the
    PTE holds (set_last_pfn: that reference's frame, no look-up)."""
    if frame is None:
        pte = follow_pte(p, vpn)
        if pte is None:                               # pragma: no cover - invariant broken
            return
        frame = pte.frame
    k.model.set_last_pfn(frame >> 12)


def evict(k, mi: int, vpn: int) -> None:
    """The model's victim leaves memory (shrink_folio_list -> try_to_unmap): an anonymous
    page's contents go to a swap slot, the PTE is cleared, the CPU's TLB flushed. Page-cache
    and shared pages stay cached; only this mapping goes.

    Inside a memory hook Unicorn is in the middle of an access through its TLB and must
    not see it flushed: the eviction waits until the CPU stops after this instruction
    (`apply_deferred`); a reference to the page before then brings it back in the model,
    and the eviction is called off."""
    if k.in_mem_hook:
        k.deferred.add((mi, vpn))
        if k.fast is not None:                    # its next reference is Python's again
            k.fast.forget()
        k.uc.emu_stop()
        return
    evict_now(k, mi, vpn)


def apply_deferred(k) -> None:
    flush_refs(k)
    for mi, vpn in sorted(k.deferred):
        if not k.model.resident(mi, vpn):
            evict_now(k, mi, vpn)
    k.deferred.clear()


def evict_now(k, mi: int, vpn: int) -> None:
    """try_to_unmap(): an anonymous page's contents go to a swap slot whose number the PTE
    keeps (a swap entry: P=0); a file or shared page just loses this mapping."""
    p = k.by_mi[mi]
    pte = follow_pte(p, vpn)
    if pte is None:                                   # pragma: no cover - invariant broken
        return
    fi = k.frames.info.get(pte.frame)
    slot = None
    if fi is not None and fi.anon and not fi.pinned:
        slot = k.swap.store(k.frames.read(fi.addr, PAGE))
        k.swap_refs[slot] += 1
    clear_pte(k, p, vpn, swap_entry(slot) if slot is not None else 0)
    flush_cpu_tlb(k)


def flush_cpu_tlb(k) -> None:
    k.cpu.flush_tlb()
    k.phys_to_vpn.clear()
    k.cpu_tlb.clear()
    if k.fast is not None:
        k.fast.forget()


# ---------------------------------------------------------------- the page tables
def pte_decode(pt, v: int) -> Pte:
    """The present last-level entry `v` of the tables `pt`, decoded."""
    return Pte(pt.pte_frame(v), bool(v & E.RW), not v & E.NX)


def follow_pte(p: Process, vpn: int) -> Pte | None:
    """follow_pte(): the present last-level entry of `vpn` in the process's page tables,
    decoded; None when it is not present (no entry, or a swap entry)."""
    v = p.pt.read_pte(vpn << 12)
    return pte_decode(p.pt, v) if v & E.P else None


def pte_and_slot(p: Process, vpn: int) -> tuple[Pte | None, int | None]:
    """follow_pte() of `vpn` and the swap slot its not-present entry names (pte_to_swp_entry),
    from one read of the entry (the page fault handler asks both)."""
    v = p.pt.read_pte(vpn << 12)
    if v & E.P:
        return pte_decode(p.pt, v), None
    return None, (swap_slot_of(v) if v else None)


def swap_entry(slot: int) -> int:
    """swp_entry_to_pte(): a not-present entry that names swap slot `slot`."""
    return (slot + 1) << 12


def swap_slot_of(v: int) -> int:
    """pte_to_swp_entry(): the slot a non-zero, not-present entry names (swap_entry's inverse)."""
    return (v >> 12) - 1


def present_ptes(p: Process, start: int, end: int):
    """(vpn, Pte) of every present entry in [start, end), in address order."""
    pt = p.pt
    for addr, v in pt.ptes(start, end):
        if v & E.P:
            yield addr >> 12, pte_decode(pt, v)


def swap_ptes(p: Process, start: int, end: int):
    """(vpn, slot) of every swap entry in [start, end)."""
    for addr, v in p.pt.ptes(start, end):
        if not v & E.P:
            yield addr >> 12, swap_slot_of(v)


def mm_entries(p: Process) -> list[tuple[int, int, int]]:
    """Every non-zero last-level entry of the address space: (linear, entry address, entry),
    one walk (do_exit reads the resident set and exit_mmap zaps from the same walk)."""
    return list(p.pt.pte_entries(0, p.mm.task_size))


def resident_vpns(p: Process, entries=None) -> set[int]:
    """The pages with a present PTE (`entries`: mm_entries(p), when the caller walked)."""
    if entries is None:
        return {addr >> 12 for addr, v in p.pt.ptes(0, p.mm.task_size) if v & E.P}
    return {addr >> 12 for addr, _ea, v in entries if v & E.P}


def set_pte(k, p: Process, vpn: int, pte: Pte) -> None:
    """set_pte_at() (and the frame's reverse map: page_add_*_rmap)."""
    fi = k.frames.info.get(pte.frame)
    if fi is not None:
        fi.rmap.add((p.group, vpn))             # threads share one mm: one mapping
    p.pt.map(vpn << 12, pte.frame, pte_flags(k, pte.write, pte.exec))


def set_ptes(k, p: Process, vpns: list[int], frames: list[int], write: bool, exec_: bool) -> None:
    """set_pte for pages of one page table (fault-around's window): the same entries and
    reverse maps, the table found once."""
    info = k.frames.info
    for vpn, fr in zip(vpns, frames):
        fi = info.get(fr)
        if fi is not None:
            fi.rmap.add((p.group, vpn))
    p.pt.map_ptes([vpn << 12 for vpn in vpns], frames, pte_flags(k, write, exec_))


def pte_flags(k, write: bool, exec_: bool) -> int:
    """A user PTE's flags (P, U/S and A; R/W and D when writable; NX unless executable)."""
    flags = E.P | E.US | E.A
    if write:
        flags |= E.RW | E.D
    if not exec_ and k.geom.nx:
        flags |= E.NX
    return flags


def clear_pte(k, p: Process, vpn: int, value: int = 0) -> Pte | None:
    """ptep_get_and_clear() (and page_remove_rmap: a frame nobody maps any more is freed); the
    entry becomes `value` (a swap entry when the page goes to swap)."""
    pt = p.pt
    ea = pt.pte_addr(vpn << 12)
    v = pt.read_entry(ea) if ea is not None else 0
    if not v & E.P:
        return None
    return zap_pte(k, p, vpn, ea, v, value)


def zap_pte(k, p: Process, vpn: int, ea: int, v: int, value: int = 0) -> Pte:
    """clear_pte of the present entry `v` at `ea` (the caller walked to it already)."""
    pte = pte_decode(p.pt, v)
    page_remove_rmap(k, k.frames.info.get(pte.frame), (p.group, vpn))
    p.pt.write_entry(ea, value)
    return pte


def page_remove_rmap(k, fi: FrameInfo | None, mapping: tuple[int, int]) -> None:
    """A mapping of the frame `fi` describes (None: no struct page) goes; a frame nobody
    maps any more, outside the page cache and not pinned, is freed."""
    if fi is not None:
        fi.rmap.discard(mapping)
        if not fi.rmap and fi.cache_key is None and not fi.pinned:
            release_frame(k, fi)


def drop_swap_entry(k, p: Process, vpn: int, slot: int) -> None:
    """free_swap_and_cache(): the entry goes; the slot too when it was its last user."""
    p.pt.write_pte(vpn << 12, 0)
    put_swap_slot(k, slot)


def put_swap_slot(k, slot: int) -> None:
    k.swap_refs[slot] -= 1
    if k.swap_refs[slot] <= 0:
        del k.swap_refs[slot]
        k.swap.free(slot)
        k.swap_cache.pop(slot, None)


def free_pgtables(k, p: Process) -> None:
    """free_pgtables(): the process's page-table frames go back to the allocator."""
    for table in p.pt.tables():
        k.frames.free(table)
    p.pt = None


def alloc_frame(k, what: str, *, anon: bool, cache_key=None, zeroed: bool = False) -> FrameInfo:
    """A physical frame of --ram (how many process pages may be resident is the model's
    business, not this allocator's); `zeroed`: holding zeros."""
    if zeroed:
        return k.frames.new_zeroed(what, anon=anon, cache_key=cache_key)
    return k.frames.new(what, anon=anon, cache_key=cache_key)


def release_frame(k, fi: FrameInfo) -> None:
    for s, fr in list(k.swap_cache.items()):
        if fr == fi.addr:
            del k.swap_cache[s]
    k.frames.release(fi)


def file_inode(k, ref: FileRef) -> Inode:
    ino = k.file_inodes.get(ref)
    if ino is None:
        ino = k.vfs.lookup(ref.path)
        k.file_inodes[ref] = ino
    return ino


def page_cache_frame(k, ino: Inode, index: int) -> int:
    """The page-cache frame of page `index` of `ino`, read in the first time."""
    reads = PageCacheReads(k, ino)
    try:
        return reads.frame(index)
    finally:
        reads.finish()


class PageCacheReads:
    """Page-cache pages of one file that one fault brings in (the faulting page, then
    fault-around's neighbours): `frame(index)` gives a page's frame, taking a new one for a
    page not cached yet, in the order asked; `finish()` then reads the new pages' contents in
    with one open and one preadv per stretch of consecutive file pages, instead of an open, a
    read and a write per page. A frame never handed out before is read into in place (it holds
    zeros and no translated code); a reused one is written through Unicorn."""

    __slots__ = ("k", "ino", "fkey", "new")

    def __init__(self, k, ino: Inode):
        self.k, self.ino, self.fkey = k, ino, ino.key()
        self.new: list[tuple[int, int, bool]] = []    # (frame, page index, fresh) not read yet

    def frame(self, index: int) -> int:
        return self.frames([index])[0]

    def frames(self, indices: list[int]) -> list[int]:
        """frame() of each page of `indices` (fault-around's window), in order: the pages not
        cached yet take their frames one after another."""
        cache, fkey, path = self.k.page_cache, self.fkey, self.ino.path
        out = [cache.get((fkey, i)) for i in indices]
        miss = [indices[n] for n, fr in enumerate(out) if fr is None]
        if not miss:
            return out
        got: list[tuple[int, bool]] = []
        try:
            self.k.frames.new_many([f"page cache {path}#{i}" for i in miss],
                                   [(fkey, i) for i in miss], got)
        finally:                                     # RAM full half-way: the frames taken
            for i, (fr, fresh) in zip(miss, got):    # so far are cached and read in
                cache[(fkey, i)] = fr
                self.new.append((fr, i, fresh))
        new = {i: fr for i, (fr, _f) in zip(miss, got)}
        return [fr if fr is not None else new[i] for i, fr in zip(indices, out)]

    def finish(self) -> None:
        """Called in a `finally`: pages cached half-way (RAM full) hold their data too."""
        if not self.new:
            return
        stretches: list[list] = []       # [first frame, first index, pages, fresh]: both consecutive
        for fr, i, fresh in sorted(self.new):
            s = stretches[-1] if stretches else None
            if s is not None and fr == s[0] + s[2] * PAGE and i == s[1] + s[2] and fresh == s[3]:
                s[2] += 1
            else:
                stretches.append([fr, i, 1, fresh])
        stretches.sort(key=lambda s: s[1])           # in file order: one preadv per stretch of it
        frames = self.k.frames
        bufs = [frames.fresh_buffer(fr, m * PAGE) if fresh else bytearray(m * PAGE)
                for fr, _i, m, fresh in stretches]
        self.ino.read_into([(i * PAGE, buf) for (_fr, i, _m, _f), buf in zip(stretches, bufs)])
        for (fr, _i, _m, fresh), buf in zip(stretches, bufs):
            if not fresh:
                frames.write(fr, buf)
        self.new = []


def shmem_frame(k, key: tuple) -> int:
    fr = k.page_cache.get(key)
    if fr is None:
        fi = k.frames.new_zeroed(f"shmem {key}", anon=False, pinned=True, cache_key=key)
        fr = k.page_cache[key] = fi.addr
    return fr


def special_frame(k, vma: Vma, addr: int) -> int:
    name = vma.special
    frames = k.special_frames.get(name)
    if frames is None:
        npages = vma.size // PAGE
        frames = []
        image = b""
        if name == "[vdso]":
            pr = k.profile
            vvar = sum(part.pages for part in pr.vdso_parts[:-1]) * PAGE     # [vvar] .. [vdso]
            image = vdso_image(vma.size, pr.vdso_vsyscall_offset, pr.vdso_sigreturn_offset,
                               pr.vdso_rt_sigreturn_offset, pr.vdso_functions, vvar,
                               pr.vdso_pc_thunks)
        for i in range(npages):
            fi = k.frames.new(f"{name} page {i}", anon=False, pinned=True)
            k.frames.fill(fi.addr, image[i * PAGE:(i + 1) * PAGE])
            frames.append(fi.addr)
        k.special_frames[name] = frames
    return frames[(addr - vma.start) // PAGE]


def new_page_tables(k, pid: int):
    return PageTables(k.geom, k.mem, k.frames, nxe=True, what=f"pgd of {pid}")


def unmap_range(k, p: Process, start: int, end: int, entries=None) -> None:
    """zap_page_range(): drop the PTEs (and swap entries) of [start, end). `entries`: the
    range's non-zero entries (linear, entry address, entry) when the caller walked already."""
    flush_refs(k)
    if entries is None:
        entries = list(p.pt.pte_entries(start, end))    # one walk: present and swap entries
    present = [addr >> 12 for addr, _ea, v in entries if v & E.P]
    info, group, frame_of, put = k.frames.info, p.group, p.pt.pte_frame, p.pt.write_entry
    for addr, ea, v in entries:
        if v & E.P:                                 # zap_pte without a Pte per page
            page_remove_rmap(k, info.get(frame_of(v)), (group, addr >> 12))
            put(ea, 0)
    k.model.unmap_many(p.mi, present)               # the model: one call for the range
    for addr, _ea, v in entries:
        if not v & E.P:                             # a swap entry (pte_to_swp_entry)
            drop_swap_entry(k, p, addr >> 12, swap_slot_of(v))
            k.model.unmap(p.mi, addr >> 12)
    if present and p is k.current:
        flush_cpu_tlb(k)


def shmem_key(k, vma: Vma, pa: int) -> tuple:
    if vma.source.startswith("shm:"):
        return (vma.source, (vma.pgoff + pa - vma.start) >> 12)
    return (f"shmem:{vma.source or vma.vm_id}", (pa - vma.start) >> 12)
