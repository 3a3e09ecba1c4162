"""The MMU of one address space: logical -> linear -> physical, with the kernel's fault handling.

`AddressSpace` is built from what `layout` predicts (an ExecResult): the page tables hold exactly
the pages the kernel itself wrote during execve (stack pages, the bss tail page padzero cleared)
and, on a native i386 profile, the kernel half (swapper_pg_dir's direct map, pkmap and fixmap).
Everything else is a valid VMA without a PTE yet (lazy allocation), and `translate()` reports the
fault it would raise and how the kernel resolves it.

`translate(vaddr, access, cpl)` returns a `Translation`; `translate_logical()` goes through the
segmentation unit first. `physical_many()` is the loop-friendly path: a TLB of page -> frame
filled by full walks, the way the hardware caches translations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from elfvm.mm import fault as F
from elfvm.mm.vma import PROT_EXEC, PROT_WRITE, Mm, Vma
from elfvm.mmu import entries as E
from elfvm.mmu.geometry import Geometry, GeometryError
from elfvm.mmu.machine import machine_frames, ram_limit
from elfvm.mmu.paging import PageTables
from elfvm.mmu.symbols import Image
from elfvm.mmu.walk import Walk, check_access, describe_error_code, pf_error_code
from elfvm.phys import PhysicalMemory
from elfvm.phys.frames import KernelImage, MiB
from elfvm.units import human_size

if TYPE_CHECKING:
    from elfvm.mmu.kernel_half import KernelLayout
    from elfvm.mmu.segmentation import Segmentation, SegResult

ACCESS_NAMES = {"r": "read", "w": "write", "x": "execute"}


class TranslateError(Exception):
    """A bad input address (not a number, out of range, unknown symbol, bad selector)."""


@dataclass(repr=False, eq=False)
class InputFailure:
    """An input translate could not parse, with the reason."""

    input: str
    message: str


@dataclass(frozen=True)
class WalkEntry:
    """One level of a walk as shown: the entry, decoded, and its table."""

    level: str
    index: int
    entry: int | None           # None: not known (geometry only, or a live process's upper levels)
    present: bool | None
    bits: str = ""              # the entry decoded
    table: int | None = None    # physical address of the table


@dataclass
class Translation:
    """The answer for one address: the walk, the physical address or the fault, the labels."""

    input: str
    virtual: int | None
    linear: int | None
    walk: list[WalkEntry]
    page_offset: int | None
    physical: int | None
    fault: F.Fault | None
    region: str
    vma: Vma | None
    section: str | None
    symbol: str | None
    access: str = "r"
    cpl: int = 3
    page_size: int = 4096
    segmentation: SegResult | None = None
    notes: list[str] = field(default_factory=list)
    vma_name: str | None = None

    def to_json(self) -> dict:
        """Exactly the documented keys, integers for addresses."""
        v = self.vma
        return {
            "input": self.input,
            "virtual": self.virtual,
            "linear": self.linear,
            "walk": walk_json(self.walk),
            "page_offset": self.page_offset,
            "physical": self.physical,
            "fault": None if self.fault is None else {"kind": self.fault.kind, "reason": self.fault.reason},
            "region": self.region,
            "vma": None if v is None else {"start": v.start, "end": v.end, "perms": v.perms,
                                           "name": self.vma_name or ""},
            "section": self.section,
            "symbol": self.symbol,
        }


def walk_json(walk: list[WalkEntry]) -> list[dict]:
    """The `walk` of a Translation's JSON."""
    return [{"level": w.level, "index": w.index, "entry": w.entry, "present": w.present} for w in walk]


def vma_display_name(v: Vma, mm) -> str:
    if v.file is not None:
        return v.file.path
    if v.special:
        return v.special
    if v.growsdown:
        return "[stack]"
    if mm is not None and v.start < mm.brk and v.end > mm.start_brk:
        return "[heap]"
    return "[bss]" if v.kind == "bss" else ""


def user_pte_flags(v: Vma, nxe: bool, written: bool = True) -> int:
    """The PTE of a page the kernel faulted in for writing (do_anonymous_page / do_cow_fault:
    mk_pte(vma->vm_page_prot) + pte_mkwrite(pte_mkdirty()) for VM_WRITE), or read-only otherwise.
    vm_page_prot comes from protection_map[] (arch/x86/mm/pgprot.c): PAGE_COPY{,_EXEC} /
    PAGE_READONLY{,_EXEC}: P|U/S|A, plus NX without PROT_EXEC."""
    flags = E.P | E.US | E.A
    if v.prot & PROT_WRITE and written:
        flags |= E.RW | E.D
    if nxe and not v.prot & PROT_EXEC:
        flags |= E.NX
    return flags


class AddressSpace:
    """Physical memory, frames, page tables and the segmentation unit of one (predicted) process."""

    def __init__(self, geom: Geometry, profile, ram: int, exec_result=None, *, rlimit_stack: int = 8 << 20,
                 nx_cpu: bool = True):
        self.geom = geom
        self.profile = profile
        self.ram = ram
        self.result = exec_result
        self.task_size = profile.task_size
        self.native = profile.name == "linux-i386"
        if self.native and geom.fmt == "x86-64":
            raise TranslateError("a native i386 kernel (--profile linux-i386) cannot use 4-level paging; "
                                 "use --mmu i386 or --mmu pae")
        limit = ram_limit(geom)
        if ram > limit:
            raise TranslateError(f"--ram {human_size(ram)}: --mmu {geom.name} addresses at most {limit >> 30} GiB")
        image = KernelImage()
        if ram < image.end + 16 * MiB:
            raise TranslateError(f"--ram {human_size(ram)} is too small: the kernel image alone ends at "
                                 f"{image.end >> 20} MiB (CONFIG_PHYSICAL_START 16 MiB)")
        self.kernel = None
        if self.native:             # (the kernel half's model is imported only for it)
            from elfvm.mmu.kernel_half import KernelLayout

            self.kernel = KernelLayout(profile.page_offset, geom.fmt == "pae", ram)
        self.nxe = geom.nx and nx_cpu
        self.mem = PhysicalMemory(ram)
        self.frames = machine_frames(geom, profile, ram)
        self.mm = exec_result.mm if exec_result is not None else None
        self.geometry_only = exec_result is None and (self.kernel is None or geom.fmt == "generic")
        self.pt: PageTables | None = None
        self.notes: list[str] = []
        self.images = self._images()
        if not self.geometry_only:
            self.pt = PageTables(geom, self.mem, self.frames, nxe=self.nxe,
                                 what="pgd" if exec_result is not None else "swapper_pg_dir")
            if self.kernel is not None and geom.fmt in ("i386", "pae"):
                self.kernel.populate(self.pt)
            if exec_result is not None:
                self._map_present_pages()
        vmas = tuple(self.mm.vmas) if self.mm is not None else ()
        sizes = {}
        if exec_result is not None:
            sizes = {p: f.size for p, f in exec_result.files.items()}
        # the mm the fault handler sees: the predicted one, or an empty one (geometry only)
        self.fault_mm = self.mm if self.mm is not None else Mm(
            self.task_size, mmap_min_addr=profile.host.mmap_min_addr, lsm_mmap_min_addr=0,
            stack_guard_gap=profile.stack_guard_gap, vmas=list(vmas))
        self.rlimit_stack = rlimit_stack
        self.file_sizes = sizes
        self._tlb: dict[tuple[str, int], dict[int, int]] = {}
        self._neg: list[set[int]] = [set() for _ in range(geom.levels)]
        self._walk_memo: dict[int, tuple] = {}
        self._entry_texts: dict[tuple, str] = {}
        self._span_memo: dict[tuple[int, int], tuple] = {}
        self._shifts = geom.shifts

    @cached_property
    def seg(self) -> Segmentation:
        """The segmentation unit (Linux's GDT, the registers at entry), made when first asked:
        a linear address never goes through it (its module is ~2 ms of translate's start-up)."""
        from elfvm.mmu.segmentation import Segmentation, entry_registers, linux_gdt

        return Segmentation(linux_gdt(self.profile.name), None, entry_registers(self.profile.name))

    def classify(self, linear: int, access: str, cpl: int, present: bool, nx: bool, hw: str) -> F.Fault:
        """The kernel's fault decision (elfvm.mm.fault, the emulator's too) for this address space."""
        return F.handle_mm_fault(self.fault_mm, linear, access, pte=F.Pte(present=present), cpl=cpl, nx=nx,
                                 rlimit_stack=self.rlimit_stack, hw=hw,
                                 file_size=lambda v: self.file_sizes.get(v.file.path))

    # --- building the user part ----------------------------------------------------------
    def _images(self) -> dict[str, Image]:
        r = self.result
        out: dict[str, Image] = {}
        if r is None:
            return out
        for path, elf in r.files.items():
            if r.interp is not None and path == r.interp.resolved:
                out["interp"] = Image(path, elf, r.interp.base)
            else:
                out.setdefault("main", Image(path, elf, r.load_bias))
        return out

    def image_of(self, v: Vma) -> Image | None:
        if v.origin and v.origin[0] in self.images:
            return self.images[v.origin[0]]
        if v.file is not None:
            for im in self.images.values():
                if im.path == v.file.path:
                    return im
        return None

    def _map_present_pages(self) -> None:
        g = self.geom
        ps = g.page_size
        for page, v, content in self.result.exec_pages():
            if page + 4096 - 1 > g.max_linear:
                self.notes.append(f"page {page:#x} does not fit the {g.va_bits}-bit linear space; not mapped")
                continue
            flags = user_pte_flags(v, self.nxe)
            for sub in range(page - page % ps if ps > 4096 else page, page + 4096, ps):
                if self.pt.walk(sub).present:
                    frame = self.pt.walk(sub).page_base
                else:
                    frame = self.frames.alloc(f"user page {sub:#x}", "user")
                    self.pt.map(sub, frame, flags, user=True)
                lo, hi = max(sub, page), min(sub + ps, page + 4096)
                self.mem.write(frame + (lo - sub), content[lo - page:hi - page])

    # --- classification helpers ------------------------------------------------------------
    def region_of(self, linear: int) -> tuple[str, str]:
        if self.kernel is not None and linear >= self.kernel.page_offset:
            r = self.kernel.region(linear)
            return (r.name, r.what) if r else ("kernel-unmapped", "")
        if linear >= self.task_size:
            if self.native:
                return "kernel-unmapped", ""
            return "kernel-unmapped", (f"above TASK_SIZE {self.task_size:#x} (IA32_PAGE_OFFSET): kernel space "
                                       f"of the x86-64 kernel, which keeps its own half at "
                                       f"0xffff800000000000 and up; a 32-bit task can never map this")
        if self.mm is not None and self.mm.vma_at(linear) is not None:
            return "user", ""
        return "unmapped", ""

    def _walk_entries(self, w: Walk | None, linear: int) -> list[WalkEntry]:
        if w is None:
            idx, _ = self.geom.split(linear)
            return [WalkEntry(n, i, None, None) for n, i in zip(self.geom.level_names, idx)]
        return [WalkEntry(s.level, s.index, s.entry, s.present, self._entry_text(s), s.table) for s in w.steps]

    def _entry_text(self, s) -> str:
        """A walk step's entry decoded (EntryBits.text()): a pure function of the level, the
        value and whether it maps the page, kept per entry (page tables repeat their entries)."""
        key = (s.level, s.entry, s.leaf)
        text = self._entry_texts.get(key)
        if text is None:
            if len(self._entry_texts) >= 65536:
                self._entry_texts.clear()
            text = self._entry_texts[key] = self.pt.decode(s).text()
        return text

    def walk_of(self, linear: int) -> tuple[Walk | None, list[WalkEntry]]:
        """The hardware walk of `linear` and its entries. The walk depends only on the page, and
        a walk that stops at a not-present upper-level entry only on that entry: every address
        below it shares the same record (the tables do not change while we translate; a
        `flush_tlb()` forgets them). The returned list is shared: do not change it."""
        key = linear >> self.geom.offset_bits
        memo = self._walk_memo.get(key)
        if memo is not None:
            return memo
        spans = self._span_memo
        shifts = self._shifts
        for lv in range(len(shifts) - 1):
            memo = spans.get((lv, linear >> shifts[lv]))
            if memo is not None:
                return memo
        w = self.pt.walk(linear) if self.pt is not None else None
        memo = (w, self._walk_entries(w, linear))
        if len(self._walk_memo) > 65536 or len(spans) > 65536:
            self._walk_memo.clear()
            spans.clear()
        lv = len(w.steps) - 1 if w is not None else -1
        if w is not None and not w.present and not w.rsvd and lv < len(shifts) - 1:
            spans[(lv, linear >> shifts[lv])] = memo
        else:
            self._walk_memo[key] = memo
        return memo

    # --- the translation -----------------------------------------------------------------
    def translate(self, linear: int, access: str = "r", cpl: int = 3, *, text: str | None = None,
                  virtual: int | None = None, seg: SegResult | None = None) -> Translation:
        g = self.geom
        try:
            g.check_linear(linear)
        except GeometryError as e:
            raise TranslateError(str(e)) from None
        if not self.geometry_only and linear > 0xFFFFFFFF:
            raise TranslateError(f"{linear:#x} does not fit the 32-bit linear address space of an i386 task")
        region, region_what = self.region_of(linear)
        vma = self.mm.vma_at(linear) if self.mm is not None and linear < self.task_size else None
        notes: list[str] = []
        if region_what:
            notes.append(region_what)
        w, walk = self.walk_of(linear)
        page_size = w.page_size if (w is not None and w.present) else g.page_size
        fault = None
        physical = None
        kernel_addr = linear >= self.task_size
        if w is None:
            fault = F.Fault(F.NO_ADDRESS_SPACE,
                            "geometry only: no program (--elf) or process (--pid), so no page tables exist; "
                            "the indices are those the MMU would use", False)
        elif w.rsvd:
            fault = F.Fault(F.KERNEL_OOPS if kernel_addr else F.SIGSEGV_ACCERR,
                            f"{describe_error_code(pf_error_code(True, access, cpl, True))}: {w.rsvd}", True)
        elif w.present:
            viol = check_access(w, access, cpl, nxe=self.nxe)
            if viol is None:
                physical = w.page_base + (linear & (w.page_size - 1))
            else:
                hw = f"{viol.reason} ({describe_error_code(viol.error_code)})"
                if kernel_addr and cpl == 0:
                    fault = F.Fault(F.KERNEL_OOPS, f"{hw}: a kernel-mode protection fault on a kernel address "
                                                   f"has no fixup: oops", True)
                else:
                    fault = self.classify(linear, access, cpl, True, self.nxe, hw=hw)
        else:
            lvl = w.steps[-1].level
            hw = f"{lvl} not present ({describe_error_code(pf_error_code(False, access, cpl))})"
            if kernel_addr and self.kernel is not None and linear >= self.kernel.page_offset:
                fault = self._kernel_not_present(linear, region, cpl, hw)
            elif kernel_addr and cpl == 0 and not self.native:
                fault = self.classify(linear, access, cpl, False, self.nxe, hw=hw)
            else:
                fault = self.classify(linear, access, cpl, False, self.nxe, hw=hw)
        if physical is not None:
            notes += self._frame_notes(linear, physical, w)
        section = symbol = None
        if vma is not None:
            im = self.image_of(vma)
            if im is not None:
                section, symbol = im.section_at(linear), im.symbol_at(linear)
        return Translation(text if text is not None else f"{linear:#x}",
                           linear if virtual is None else virtual, linear, walk,
                           linear & (page_size - 1), physical, fault, region, vma, section, symbol,
                           access, cpl, page_size, seg, notes,
                           vma_display_name(vma, self.mm) if vma is not None else None)

    def _kernel_not_present(self, linear: int, region: str, cpl: int, hw: str) -> F.Fault:
        k = self.kernel
        what = {
            "vmalloc": "no vmalloc()/ioremap() area is mapped here in this model",
            "pkmap": f"pkmap slot {(linear - k.pkmap_base) >> 12} is free: kmap() of a highmem page fills it "
                     f"(mm/highmem.c map_new_virtual)",
            "fixmap": f"fixmap slot {k.fixmap_slot(linear) or '?'} is not set (set_fixmap() fills it)",
            "kernel-unmapped": "a hole in the kernel half",
            "kernel-lowmem": "inside the direct map (should be mapped)",
        }.get(region, "")
        if cpl == 3:
            return F.Fault(F.SIGSEGV_MAPERR, f"{hw}; {what}; a user-mode access to a kernel address: "
                                             f"do_kern_addr_fault() -> bad_area_nosemaphore(): SIGSEGV "
                                             f"(SEGV_MAPERR)", True)
        return F.Fault(F.KERNEL_OOPS, f"{hw}; {what}; no exception-table fixup: "
                                      f"'BUG: unable to handle page fault' -> oops", True)

    def _frame_notes(self, linear: int, physical: int, w: Walk) -> list[str]:
        notes = []
        if w.page_size > self.geom.page_size:
            notes.append(f"mapped by a {human_size(w.page_size)} large page (PS=1 in the "
                         f"{w.steps[-1].level})")
        if physical >= self.ram:
            if physical >> 12 == 0xFEE00:
                notes.append("MMIO: the local APIC's registers, not RAM")
            elif physical >> 12 == 0xFEC00:
                notes.append("MMIO: the IO-APIC's registers, not RAM")
            else:
                notes.append("beyond RAM")
            return notes
        k = self.kernel
        if k is not None:
            if linear >= k.page_offset and region_is_lowmem(k, linear):
                notes.append(f"__pa(): {linear:#x} - PAGE_OFFSET {k.page_offset:#x} = {linear - k.page_offset:#x}")
            if k.is_highmem_frame(physical):
                notes.append(f"frame {physical >> 12:#x} is in ZONE_HIGHMEM (above high_memory "
                             f"{k.high_memory:#x}): it has no kernel logical address; the kernel must "
                             f"kmap() it (pkmap window {k.pkmap_base:#x}-{k.pkmap_end:#x})")
            elif linear < k.page_offset:
                notes.append(f"frame {physical >> 12:#x} is lowmem: the kernel also sees it at "
                             f"{k.page_offset + physical:#x} (direct map)")
        res = self.frames.reserved_at(physical)
        if res is not None:
            notes.append(f"physical {physical:#x}: {res.what}")
        return notes

    # --- segmentation ------------------------------------------------------------------------
    def translate_logical(self, selector: int, offset: int, access: str = "r", cpl: int = 3, *,
                          register: str | None = None, text: str | None = None) -> Translation:
        if not 0 <= offset <= 0xFFFFFFFF:
            raise TranslateError(f"offset {offset:#x} does not fit 32 bits")
        seg = self.seg.translate(selector, offset, access, cpl, register)
        label = text if text is not None else f"{selector:#x}:{offset:#x}"
        if seg.fault is not None:
            idx, _ = self.geom.split(0)
            region = "unmapped"
            return Translation(label, offset, None, [], None, None,
                               F.Fault(seg.fault.kind, seg.fault.reason, True), region, None, None, None,
                               access, cpl, self.geom.page_size, seg, [])
        t = self.translate(seg.linear, access, cpl, text=label, virtual=offset, seg=seg)
        return t

    # --- the loop-friendly path: a TLB -------------------------------------------------------
    def physical_many(self, lines, access: str = "r", cpl: int = 3) -> list[int | None]:
        """Physical addresses (None on a fault) for many numeric addresses (strings or ints).

        Like the hardware (SDM 4.10): a TLB of page number -> frame base, filled by walks, and
        paging-structure caches that remember upper-level entries found not present, so an
        address in an unmapped 2 MiB/1 GiB range needs no walk either. Only successful
        translations are real TLB entries; a faulting page is remembered as -1 too (the hardware
        would walk again, but nothing changes the tables between two look-ups here; flush_tlb()
        forgets everything)."""
        shift = self.geom.offset_bits
        mask = (1 << shift) - 1
        tlb = self._tlb.setdefault((access, cpl), {})
        get = tlb.get
        fill = self._tlb_fill
        out = []
        append = out.append
        if lines and lines[0].__class__ is str:
            for s in lines:
                a = int(s, 0)
                e = get(a >> shift)
                if e is None:
                    e = fill(tlb, a, access, cpl)
                append(e + (a & mask) if e >= 0 else None)
        else:
            for a in lines:
                e = get(a >> shift)
                if e is None:
                    e = fill(tlb, a, access, cpl)
                append(e + (a & mask) if e >= 0 else None)
        return out

    def _tlb_fill(self, tlb: dict, a: int, access: str, cpl: int) -> int:
        """A TLB miss: consult the not-present caches, else walk and check the access rights."""
        if self.pt is None or a > 0xFFFFFFFF or a < 0:
            return -1
        neg = self._neg
        shifts = self.geom.shifts
        for lv in range(len(shifts) - 1):
            if (a >> shifts[lv]) in neg[lv]:
                return -1
        base, lv, user, writable, nx = self.pt.walk_fast(a)
        vpn = a >> self.geom.offset_bits
        if base < 0:
            if lv < len(shifts) - 1:
                neg[lv].add(a >> shifts[lv])
            else:
                tlb[vpn] = -1
            return -1
        if (cpl == 3 and (not user or (access == "w" and not writable))) or \
                (cpl == 0 and ((access == "w" and not writable) or (access == "x" and user))) or \
                (access == "x" and nx and self.nxe):
            tlb[vpn] = -1
            return -1
        size_shift = shifts[lv]
        base += a & ((1 << size_shift) - 1) & ~((1 << self.geom.offset_bits) - 1)   # large pages
        tlb[vpn] = base
        return base

    def flush_tlb(self) -> None:
        """A CR3 reload: drop the TLB and the paging-structure caches."""
        self._tlb.clear()
        self._neg = [set() for _ in range(self.geom.levels)]
        self._walk_memo.clear()
        self._span_memo.clear()


def region_is_lowmem(k: KernelLayout, linear: int) -> bool:
    return k.page_offset <= linear < k.high_memory
