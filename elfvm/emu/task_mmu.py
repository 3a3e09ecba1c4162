"""The memory files of /proc/PID, from the emulated kernel's page tables and frames
(fs/proc/task_mmu.c): smaps and smaps_rollup (show_smap, smaps_account), pagemap
(pagemap_pmd_range), statm and status's memory lines (task_statm, task_mem), and the
mm's high-water marks (update_hiwater_rss/_vm) that VmHWM and VmPeak report.

A page's numbers come from what the model holds for it: its PTE (present, A and D bits, a
swap entry's slot), its frame's struct page (anonymous, page cache or shmem; its reverse map
gives the mapcount that splits Rss into Shared/Private and Pss) and the swap map's count of
PTEs naming a slot (SwapPss). This is where lazy allocation (Size against Rss), the zero page
(mapped but not in Rss), copy-on-write after fork (Shared_Dirty, Pss halved) and swap show.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from elfvm.emu.memory import PAGE
from elfvm.emu.pages import swap_slot_of
from elfvm.emu.task import Process
from elfvm.mm.maps import MapsLine, proc_maps
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Vma
from elfvm.mmu import entries as E

PSS_SHIFT = 12
PFNMAP = ("[vvar]", "[vvar_vclock]")     # VM_PFNMAP|VM_IO: vm_normal_page() gives no page


@dataclass(repr=False)
class MemSizeStats:
    """struct mem_size_stats, in bytes (the pss fields << PSS_SHIFT), plus the mm counters
    (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS) the same walk finds."""

    resident: int = 0
    pss: int = 0
    pss_dirty: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    swap: int = 0
    swap_pss: int = 0
    pss_locked: int = 0
    counters: dict = field(default_factory=lambda: {"anon": 0, "file": 0, "shmem": 0, "swap": 0})

    def add(self, other: "MemSizeStats") -> None:
        for name, value in other.__dict__.items():
            if name == "counters":
                for c, n in value.items():
                    self.counters[c] += n
            else:
                setattr(self, name, getattr(self, name) + value)


def _kind(fi) -> str:
    """mm_counter(): which RSS counter a mapped page is in."""
    if fi is None or fi.anon:
        return "anon"
    key = fi.cache_key
    if key and isinstance(key[0], str) and key[0].startswith(("shm:", "shmem:")):
        return "shmem"
    return "file"


def _mapcount(fi) -> int:
    """folio_precise_page_mapcount(): the PTEs mapping the frame (its reverse map); the kernel's
    own image pages ([vdso]) count as mapped once, as the live kernel reports them."""
    if fi is None or fi.cache_key is None and not fi.anon:
        return 1
    return max(1, len(fi.rmap))


def smaps_account(k, mss: MemSizeStats, v: int, frame: int) -> None:
    """smaps_pte_entry() + smaps_account() for one present PTE (value `v`)."""
    fi = k.frames.info.get(frame)
    kind = _kind(fi)
    mss.counters[kind] += 1
    anon = kind == "anon"
    mss.resident += PAGE
    if anon:
        mss.anonymous += PAGE
    if v & E.A:
        mss.referenced += PAGE
    # pte_dirty || folio_test_dirty: an anonymous page is dirty unless it is a clean copy of
    # a swap slot still cached (read back in and not written since)
    dirty = bool(v & E.D) or anon and frame not in k.swap_cache.values()
    mapcount = _mapcount(fi)
    pss = (PAGE << PSS_SHIFT) // mapcount
    mss.pss += pss
    setattr(mss, f"pss_{kind}", getattr(mss, f"pss_{kind}") + pss)
    private = mapcount < 2
    if dirty:
        mss.pss_dirty += pss
        if private:
            mss.private_dirty += PAGE
        else:
            mss.shared_dirty += PAGE
    elif private:
        mss.private_clean += PAGE
    else:
        mss.shared_clean += PAGE


def smaps_range(k, p: Process, start: int, end: int, special: str | None) -> MemSizeStats:
    """walk_page_range() with smaps_pte_range over [start, end)."""
    mss = MemSizeStats()
    pt = p.pt
    if pt is None:
        return mss
    for addr, v in pt.ptes(start, end):
        if v & E.P:
            frame = pt.pte_frame(v)
            if frame == k.zero_page or special in PFNMAP:
                continue                    # vm_normal_page(): no struct page to count
            smaps_account(k, mss, v, frame)
        else:                               # a swap entry: the slot and how many PTEs name it
            slot = swap_slot_of(v)
            mss.swap += PAGE
            mss.counters["swap"] += 1
            mss.swap_pss += (PAGE << PSS_SHIFT) // max(1, k.swap_refs.get(slot, 1))
    return mss


# ------------------------------------------------------------------ vm_flags
VM_FLAG_NAMES = (("rd", "read"), ("wr", "write"), ("ex", "exec"), ("sh", "shared"),
                 ("mr", "mayread"), ("mw", "maywrite"), ("me", "mayexec"), ("ms", "mayshare"),
                 ("gd", "growsdown"), ("pf", "pfnmap"), ("io", "io"), ("de", "dontexpand"),
                 ("ac", "account"), ("nr", "noreserve"), ("dd", "dontdump"))


def vm_flags(v: Vma) -> dict[str, bool]:
    """The VM_* flags of a VMA, as mmap, brk, the loader, mprotect and the special mappings
    set them (show_smap_vma_flags prints them in bit order)."""
    pfn = v.special in PFNMAP
    private_w = not v.shared and bool(v.prot & PROT_WRITE)
    return {"read": bool(v.prot & PROT_READ), "write": bool(v.prot & PROT_WRITE),
            "exec": bool(v.prot & PROT_EXEC), "shared": v.shared and v.maywrite,
            "mayread": True, "maywrite": not pfn and v.maywrite, "mayexec": not pfn,
            "mayshare": v.shared, "growsdown": v.growsdown, "pfnmap": pfn, "io": pfn,
            "dontexpand": v.special is not None, "noreserve": v.noreserve,
            "account": (v.account or private_w) and not v.noreserve and v.special is None,
            "dontdump": pfn}


def vm_flags_text(v: Vma) -> str:
    flags = vm_flags(v)
    return "VmFlags: " + "".join(f"{short} " for short, name in VM_FLAG_NAMES if flags[name]) + "\n"


# ------------------------------------------------------------------ smaps
def _kb(label: str, nbytes: int) -> str:
    """SEQ_PUT_DEC: the label, the value in kB right-aligned in 8 columns."""
    return f"{label:<16}{nbytes >> 10:>8} kB\n"


def show_smap_body(mss: MemSizeStats, rollup: bool) -> str:
    """__show_smap()."""
    out = [_kb("Rss:", mss.resident), _kb("Pss:", mss.pss >> PSS_SHIFT),
           _kb("Pss_Dirty:", mss.pss_dirty >> PSS_SHIFT)]
    if rollup:
        out += [_kb("Pss_Anon:", mss.pss_anon >> PSS_SHIFT),
                _kb("Pss_File:", mss.pss_file >> PSS_SHIFT),
                _kb("Pss_Shmem:", mss.pss_shmem >> PSS_SHIFT)]
    out += [_kb("Shared_Clean:", mss.shared_clean), _kb("Shared_Dirty:", mss.shared_dirty),
            _kb("Private_Clean:", mss.private_clean), _kb("Private_Dirty:", mss.private_dirty),
            _kb("Referenced:", mss.referenced), _kb("Anonymous:", mss.anonymous),
            _kb("KSM:", 0), _kb("LazyFree:", 0), _kb("AnonHugePages:", 0),
            _kb("ShmemPmdMapped:", 0), _kb("FilePmdMapped:", 0), _kb("Shared_Hugetlb:", 0),
            _kb("Private_Hugetlb:", 0), _kb("Swap:", mss.swap),
            _kb("SwapPss:", mss.swap_pss >> PSS_SHIFT), _kb("Locked:", mss.pss_locked >> PSS_SHIFT)]
    return "".join(out)


def guest_maps(k, mm) -> list[MapsLine]:
    """/proc/PID/maps' lines as the guest sees them: a file under --sysroot named by its path
    inside it (d_path from the task's root), as the live kernel names it in a chroot."""
    root = k.vfs.root.rstrip("/")
    lines = proc_maps(mm)
    if not root:
        return lines
    return [replace(ln, name=ln.name[len(root):])
            if ln.parts[0].file is not None and ln.name.startswith(root + "/") else ln
            for ln in lines]


def line_stats(k, p: Process, line: MapsLine) -> MemSizeStats:
    return smaps_range(k, p, line.start, line.end, line.parts[0].special)


def show_smaps(k, p: Process) -> str:
    """/proc/PID/smaps: per VMA its maps line, sizes, the page walk's sums, THPeligible (no
    transparent huge pages for an i386 task) and VmFlags."""
    out = []
    for line in guest_maps(k, p.mm):
        mss = line_stats(k, p, line)
        out.append(line.text() + "\n" + _kb("Size:", line.end - line.start) +
                   _kb("KernelPageSize:", PAGE) + _kb("MMUPageSize:", PAGE) +
                   show_smap_body(mss, False) + f"{'THPeligible:':<16}{0:>8}\n" +
                   vm_flags_text(line.parts[0]))
    return "".join(out)


def show_smaps_rollup(k, p: Process) -> str:
    """/proc/PID/smaps_rollup: one header from the first VMA's start to the last one's end,
    "[rollup]", and the sums over every VMA."""
    lines = guest_maps(k, p.mm)
    total = MemSizeStats()
    for line in lines:
        total.add(line_stats(k, p, line))
    start, end = (lines[0].start, lines[-1].end) if lines else (0, 0)
    head = MapsLine(start, end, "---p", 0, "00:00", 0, "[rollup]", (), p.mm.proc_ptr_size)
    return head.text() + "\n" + show_smap_body(total, True)


def mm_counters(k, p: Process) -> MemSizeStats:
    total = MemSizeStats()
    for line in proc_maps(p.mm):
        total.add(line_stats(k, p, line))
    return total


# ------------------------------------------------------------------ pagemap
PM_SOFT_DIRTY, PM_MMAP_EXCLUSIVE = 1 << 55, 1 << 56
PM_FILE, PM_SWAP, PM_PRESENT = 1 << 61, 1 << 62, 1 << 63
SWAP_TYPE_BITS = 5


def pagemap_entry(k, p: Process, vma: Vma | None, v: int, show_pfn: bool) -> int:
    """pte_to_pagemap_entry(): PFN (0 without CAP_SYS_ADMIN) and PM_PRESENT for a present
    PTE, swap type (0: the one swap device) and offset (the slot) with PM_SWAP for a swap
    entry, PM_FILE for page-cache, shmem and kernel pages, PM_MMAP_EXCLUSIVE when mapped
    once. Soft-dirty is never set: clear_refs is not modelled, so nothing was ever cleaned."""
    if not v:
        return 0
    if v & E.P:
        frame = p.pt.pte_frame(v)
        fi = k.frames.info.get(frame)
        flags = PM_PRESENT
        if vma is not None and vma.special in PFNMAP or frame == k.zero_page:
            return flags | ((frame >> 12) if show_pfn else 0)
        if fi is not None and not fi.anon:
            flags |= PM_FILE
        if _mapcount(fi) == 1:
            flags |= PM_MMAP_EXCLUSIVE
        return flags | ((frame >> 12) if show_pfn else 0)
    slot = swap_slot_of(v)
    return PM_SWAP | (slot << SWAP_TYPE_BITS)


def pagemap(k, p: Process, show_pfn: bool) -> bytes:
    """/proc/PID/pagemap: one little-endian u64 per virtual page up to TASK_SIZE (a reader
    seeks to vpn * 8); unmapped pages are 0. The file's bytes are built for the pages that
    have VMAs; the rest is zeros."""
    out = bytearray(p.mm.task_size // PAGE * 8)
    if p.pt is None:
        return bytes(out)
    for vma in p.mm.vmas:
        for addr, v in p.pt.ptes(vma.start, vma.end):
            struct.pack_into("<Q", out, (addr >> 12) * 8, pagemap_entry(k, p, vma, v, show_pfn))
    return bytes(out)


# ------------------------------------------------------------------ status, statm
def vm_stat(mm) -> dict[str, int]:
    """vm_stat_account(): total_vm, exec_vm, stack_vm and data_vm in pages, from the VMAs."""
    c = {"total": 0, "exec": 0, "stack": 0, "data": 0}
    for v in mm.vmas:
        n = (v.end - v.start) // PAGE
        c["total"] += n
        w = bool(v.prot & PROT_WRITE)
        if v.growsdown:
            c["stack"] += n
        elif v.prot & PROT_EXEC and not w:
            c["exec"] += n
        elif w and not v.shared:
            c["data"] += n
    return c


def update_hiwater(k, p: Process) -> None:
    """update_hiwater_rss() + update_hiwater_vm(): before the RSS or the address space shrinks
    (munmap, brk, mremap, madvise(MADV_DONTNEED), shmdt), the peaks keep what they were."""
    if p.pt is None:
        return
    pt, info = p.pt, k.frames.info
    rss = 0
    for _, v in pt.ptes(0, p.mm.task_size):     # get_mm_rss(): pages with a struct page
        if v & E.P:
            frame = pt.pte_frame(v)
            fi = info.get(frame)
            rss += frame != k.zero_page and not (fi is not None and fi.what.startswith("[vvar"))
    p.mm.hiwater_rss = max(p.mm.hiwater_rss, rss)
    p.mm.hiwater_vm = max(p.mm.hiwater_vm, vm_stat(p.mm)["total"])


def page_table_pages(p: Process) -> int:
    """mm_pgtables_bytes() / PAGE: every table below the top one (PTE, PMD, PUD tables)."""
    return len(p.pt.tables()) - 1 if p.pt is not None else 0


def task_mem(k, p: Process) -> str:
    """The Vm*/Rss* lines of /proc/PID/status (task_mem), each "%8lu kB"."""
    mm = p.mm
    c = mm_counters(k, p).counters
    vs = vm_stat(mm)
    rss = c["anon"] + c["file"] + c["shmem"]
    text = ((mm.end_code + PAGE - 1) & ~(PAGE - 1)) - (mm.start_code & ~(PAGE - 1))
    text = max(0, min(text, vs["exec"] * PAGE))
    lib = vs["exec"] * PAGE - text
    rows = [("VmPeak", max(vs["total"], mm.hiwater_vm) * 4), ("VmSize", vs["total"] * 4),
            ("VmLck", 0), ("VmPin", 0), ("VmHWM", max(rss, mm.hiwater_rss) * 4),
            ("VmRSS", rss * 4), ("RssAnon", c["anon"] * 4), ("RssFile", c["file"] * 4),
            ("RssShmem", c["shmem"] * 4), ("VmData", vs["data"] * 4), ("VmStk", vs["stack"] * 4),
            ("VmExe", text >> 10), ("VmLib", lib >> 10), ("VmPTE", page_table_pages(p) * 4),
            ("VmSwap", c["swap"] * 4), ("HugetlbPages", 0)]
    return "".join(f"{name}:\t{value:8d} kB\n" for name, value in rows)


def statm(k, p: Process) -> str:
    """/proc/PID/statm (task_statm): size, resident, shared (file + shmem pages), text (the
    code's pages), lib 0, data (data_vm + stack_vm), dt 0."""
    mm = p.mm
    c = mm_counters(k, p).counters
    vs = vm_stat(mm)
    text = (((mm.end_code + PAGE - 1) & ~(PAGE - 1)) - (mm.start_code & ~(PAGE - 1))) // PAGE
    resident = c["anon"] + c["file"] + c["shmem"]
    return (f"{vs['total']} {resident} {c['file'] + c['shmem']} {text} 0 "
            f"{vs['data'] + vs['stack']} 0\n")


# ------------------------------------------------------------------ the machine's memory
@dataclass(frozen=True, repr=False)
class RamFigures:
    """si_meminfo() + si_swapinfo() in bytes: --ram, what the processes have not made
    resident of it (the model's frames), and the model's swap (no size limit: one 32-bit
    address space's worth, minus the slots in use)."""

    total: int
    free: int
    swap_total: int
    swap_free: int


def ram_figures(k) -> RamFigures:
    total = k.model_ram
    frames = k.model.machine.cfg.frames
    used = min(frames - k.model.free_frames, total // PAGE) * PAGE
    swap_total = (1 << 32) - PAGE
    return RamFigures(total, total - used, swap_total,
                      max(swap_total - len(k.swap_refs) * PAGE, 0))


def meminfo(k) -> str:
    """/proc/meminfo (meminfo_proc_show) for the lines the model answers (in the kernel's order
    and format; the others are left out, not made up): RAM and swap as sysinfo reports them, the page cache (Cached, with shmem; Mapped: cached pages some PTE
    maps), the swap cache, anonymous pages, shmem and the page tables of every mm."""
    r = ram_figures(k)
    info = k.frames.info.values()
    cache = [fi for fi in info if fi.cache_key is not None]
    shmem = sum(1 for fi in cache if _kind(fi) == "shmem")
    tables = {id(q.pt): q for q in k.procs.values() if q.pt is not None}
    # MemAvailable (si_mem_available): free memory plus the page cache the model can drop (no
    # watermarks or reserves in the model; shmem cannot be dropped)
    rows = [("MemTotal:", r.total), ("MemFree:", r.free),
            ("MemAvailable:", r.free + (len(cache) - shmem) * PAGE), ("Buffers:", 0),
            ("Cached:", len(cache) * PAGE), ("SwapCached:", len(k.swap_cache) * PAGE),
            ("SwapTotal:", r.swap_total), ("SwapFree:", r.swap_free),
            ("AnonPages:", sum(1 for fi in info if fi.anon and fi.rmap) * PAGE),
            ("Mapped:", sum(1 for fi in cache if fi.rmap) * PAGE), ("Shmem:", shmem * PAGE),
            ("PageTables:", sum(page_table_pages(q) for q in tables.values()) * PAGE)]
    return "".join(_kb(name, value) for name, value in rows)
