"""The memory manager's view of an address space: `Vma` (vm_area_struct) and `Mm` (mm_struct).

This layer knows nothing about ELF. It offers what the kernel's mm offers the ELF loader:
mapping a range (with MAP_FIXED / MAP_FIXED_NOREPLACE semantics), unmapping (splitting VMAs),
finding a free range (get_unmapped_area, top-down or bottom-up) and the mm bookkeeping fields.
"""


import errno
from dataclasses import dataclass, field, replace

from elfvm.units import PAGE_SHIFT, PAGE_SIZE  # noqa: F401  (re-exported: mm's page size)

PAGE_MASK = ~(PAGE_SIZE - 1)
U64 = (1 << 64) - 1          # the loader runs in a 64-bit kernel: unsigned long arithmetic wraps here

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4


def page_start(x: int) -> int:
    """ELF_PAGESTART / PAGE_MASK rounding down, on a 64-bit unsigned long."""
    return x & PAGE_MASK & U64


def page_offset(x: int) -> int:
    """ELF_PAGEOFFSET."""
    return x & (PAGE_SIZE - 1)


def page_align(x: int) -> int:
    """PAGE_ALIGN / ELF_PAGEALIGN: round up to the next page boundary (wrapping like C)."""
    return (x + PAGE_SIZE - 1) & PAGE_MASK & U64


def prot_string(prot: int, shared: bool = False) -> str:
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + \
        ("x" if prot & PROT_EXEC else "-") + ("s" if shared else "p")


@dataclass(frozen=True, repr=False)
class FileRef:
    """The file behind a mapping, as /proc/PID/maps names it (d_path of the opened file)."""

    path: str
    dev_major: int = 0
    dev_minor: int = 0
    inode: int = 0


@dataclass(frozen=True, repr=False)
class Vma:
    """One vm_area_struct: [start, end) with its protection, backing and where it came from.

    `pgoff` is the byte offset into `file` (vm_pgoff << PAGE_SHIFT). `special` is the name of a
    special mapping (`[vvar]`, `[vvar_vclock]`, `[vdso]`). `kind` and `source` are elfvm's
    provenance: what kind of memory this is and which segment/section it came from.
    """

    start: int
    end: int
    prot: int
    pgoff: int = 0
    file: FileRef | None = None
    special: str | None = None
    growsdown: bool = False
    shared: bool = False
    kind: str = "anon"
    source: str = ""
    # (owner, phdr index, part): which ELF image ("main"/"interp"), which PT_LOAD and which
    # part of it ("file", "bss") this VMA came from; renderers turn it into section names.
    origin: tuple = field(default=(), compare=False)
    # Which kernel vm_area_struct this piece belongs to (0: not placed by Mm). Mm keeps pieces
    # the kernel merged under one id and gives each side of a split its own; /proc/PID/maps
    # prints one line per id (see merge_vmas).
    vm_id: int = field(default=0, compare=False)
    # vm_flags beyond prot/shared/growsdown that /proc/PID/smaps shows: VM_ACCOUNT kept once
    # the private mapping was writable (mprotect_fixup charges it, never uncharges it),
    # VM_NORESERVE (MAP_NORESERVE), VM_MAYWRITE (cleared for MAP_SHARED of a read-only file).
    account: bool = field(default=False, compare=False)
    noreserve: bool = field(default=False, compare=False)
    maywrite: bool = field(default=True, compare=False)

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def perms(self) -> str:
        return prot_string(self.prot, self.shared)

    @property
    def is_anonymous(self) -> bool:
        return self.file is None and self.special is None

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def clip(self, start: int, end: int) -> "Vma":
        """The part of this VMA inside [start, end); file offsets follow the cut like vma split."""
        s, e = max(self.start, start), min(self.end, end)
        pgoff = self.pgoff + (s - self.start) if self.file is not None else 0
        return replace(self, start=s, end=e, pgoff=pgoff)

    def can_merge_after(self, prev: "Vma") -> bool:
        """Would /proc/PID/maps show `prev` and `self` as one line (vma_merge's conditions)?

        Same flags, neither special nor the stack, and either both anonymous or the same file
        with contiguous offsets (mm/vma.c: is_mergeable_vma, can_vma_merge_after).
        """
        if prev.end != self.start or prev.prot != self.prot or prev.shared != self.shared:
            return False
        if prev.special or self.special or prev.growsdown or self.growsdown:
            return False
        if prev.file is None and self.file is None:
            return True
        return (prev.file is not None and self.file is not None and prev.file == self.file
                and prev.pgoff + prev.size == self.pgoff)


class MmError(Exception):
    """An mm operation failed with an errno (what vm_mmap/vm_brk return as -E...)."""

    def __init__(self, err: int, message: str):
        super().__init__(message)
        self.errno = err
        self.message = message


@dataclass(repr=False, eq=False)
class Mm:
    """mm_struct: the VMAs (sorted, non-overlapping) and the address-space bookkeeping fields.

    `task_size`, `mmap_base`, `mmap_legacy_base`, `legacy` (bottom-up allocator),
    `mmap_min_addr` and `stack_guard_gap` are what get_unmapped_area needs; `may_map_low`
    is CAP_SYS_RAWIO (root may map below mmap_min_addr).
    """

    task_size: int
    mmap_base: int = 0
    mmap_legacy_base: int = 0
    legacy: bool = False
    mmap_min_addr: int = PAGE_SIZE            # vm.mmap_min_addr (dac_mmap_min_addr)
    # CONFIG_LSM_MMAP_MIN_ADDR (x86 default 65536): with CONFIG_SECURITY the kernel's own
    # mmap_min_addr is max(dac_mmap_min_addr, this) (security/min_addr.c). That value, not the
    # sysctl, is where round_hint_to_min() raises low hints and vm_unmapped_area() stops.
    lsm_mmap_min_addr: int = 65536
    stack_guard_gap: int = 256 * PAGE_SIZE
    may_map_low: bool = True
    # How /proc/PID/maps shows this mm (fs/proc/task_mmu.c): the kernel's sizeof(void *) pads
    # the name column (8 on x86-64, 4 on a native i386 kernel), and whether "[heap]" needs a VMA
    # overlapping [start_brk, brk) (v6.6+) or only touching it (before: versions.HEAP_OVERLAP_ONLY).
    proc_ptr_size: int = 8
    heap_overlap_only: bool = True
    vmas: list[Vma] = field(default_factory=list)
    start_code: int = 0
    end_code: int = 0
    start_data: int = 0
    end_data: int = 0
    start_brk: int = 0
    brk: int = 0
    start_stack: int = 0
    arg_start: int = 0
    arg_end: int = 0
    env_start: int = 0
    env_end: int = 0
    # mm->saved_auxv: the (a_type, a_val) pairs create_elf_tables() put on the stack, AT_NULL
    # last (/proc/PID/auxv); hiwater_rss/hiwater_vm: the peaks in pages update_hiwater_rss/_vm
    # recorded before the RSS or the size last shrank (VmHWM, VmPeak)
    saved_auxv: tuple = ()
    hiwater_rss: int = 0
    hiwater_vm: int = 0
    _last_id: int = field(default=0, repr=False)

    @property
    def effective_mmap_min_addr(self) -> int:
        """The kernel variable mmap_min_addr (update_mmap_min_addr())."""
        return max(self.mmap_min_addr, self.lsm_mmap_min_addr)

    # --- lookup -------------------------------------------------------------------------
    def find_vma(self, addr: int) -> Vma | None:
        """The first VMA with end > addr (the kernel's find_vma), or None."""
        for v in self.vmas:
            if v.end > addr:
                return v
        return None

    def vma_at(self, addr: int) -> Vma | None:
        v = self.find_vma(addr)
        return v if v is not None and v.start <= addr else None

    def overlaps(self, start: int, end: int) -> bool:
        return any(v.start < end and start < v.end for v in self.vmas)

    def vm_start_gap(self, v: Vma) -> int:
        """A grows-down stack VMA keeps stack_guard_gap free below it (mm.h vm_start_gap)."""
        if v.growsdown:
            return max(v.start - self.stack_guard_gap, 0)
        return v.start

    # --- changing the map -------------------------------------------------------------
    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def munmap(self, start: int, end: int) -> None:
        """do_vmi_munmap: remove [start, end), splitting VMAs that straddle the edges.

        A vm_area_struct cut in two (__split_vma) becomes two: the part above the hole gets a
        new vm_id, so the kernel's later merges (which never rejoin them) are what counts.
        """
        kept: list[Vma] = []
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                kept.append(v)
                continue
            if v.start < start:
                kept.append(v.clip(v.start, start))
            if v.end > end:
                kept.append(v.clip(end, v.end))
        below = {v.vm_id for v in kept if v.end <= start and v.vm_id}
        renamed: dict[int, int] = {}
        for i, v in enumerate(kept):
            if v.start >= end and v.vm_id in below:
                if v.vm_id not in renamed:
                    renamed[v.vm_id] = self._new_id()
                kept[i] = replace(v, vm_id=renamed[v.vm_id])
        self.vmas = sorted(kept, key=lambda x: x.start)

    def insert(self, vma: Vma, merge: str = "none") -> Vma:
        """Insert a VMA over whatever was there (MAP_FIXED semantics: unmap first).

        `merge` is what the kernel path creating it tries: "both" for mmap_region()
        (vma_merge_new_range() with the previous and the next VMA), "prev" for do_brk_flags()
        (it only expands the previous VMA), "none" for the stack and special mappings.
        """
        self.munmap(vma.start, vma.end)
        vid = self._new_id()
        prev = next((v for v in self.vmas if v.end == vma.start), None)
        nxt = next((v for v in self.vmas if v.start == vma.end), None)
        if merge in ("prev", "both") and prev is not None and vma.can_merge_after(prev):
            vid = prev.vm_id
        vma = replace(vma, vm_id=vid)
        if merge == "both" and nxt is not None and nxt.can_merge_after(vma):
            self.vmas = [replace(v, vm_id=vid) if v.vm_id == nxt.vm_id else v for v in self.vmas]
        self.vmas.append(vma)
        self.vmas.sort(key=lambda x: x.start)
        return vma

    def replace(self, old: Vma, new: Vma) -> None:
        self.vmas[self.vmas.index(old)] = replace(new, vm_id=old.vm_id)
        self.vmas.sort(key=lambda x: x.start)

    # --- finding room -----------------------------------------------------------------
    def _gaps(self, low: int, high: int):
        """Free gaps [gap_start, gap_end) between low and high, honouring the stack guard gap."""
        prev_end = 0
        for v in self.vmas:
            gap_end = self.vm_start_gap(v)
            yield max(prev_end, low), min(gap_end, high)
            prev_end = max(prev_end, v.end)
        yield max(prev_end, low), high

    def unmapped_area_topdown(self, length: int, low: int, high: int) -> int | None:
        """vm_unmapped_area with VM_UNMAPPED_AREA_TOPDOWN: the highest fit below `high`."""
        best = None
        for gs, ge in self._gaps(max(low, self.effective_mmap_min_addr), high):
            if ge - gs >= length:
                best = ge - length
        return best

    def unmapped_area(self, length: int, low: int, high: int) -> int | None:
        """vm_unmapped_area bottom-up: the lowest fit at or above `low`."""
        for gs, ge in self._gaps(max(low, self.effective_mmap_min_addr), high):
            if ge - gs >= length:
                return gs
        return None

    def get_unmapped_area(self, hint: int, length: int) -> int:
        """arch_get_unmapped_area(_topdown) for a 32-bit task (arch/x86/kernel/sys_x86_64.c).

        A usable hint wins; otherwise the top-down allocator looks below mmap_base and falls
        back to a bottom-up search from the legacy base; the legacy layout searches bottom-up.
        """
        if length > self.task_size:
            raise MmError(errno.ENOMEM, f"length {length:#x} exceeds TASK_SIZE")
        if hint:
            hint = page_start(hint)
            if hint + length <= self.task_size:
                nxt = self.find_vma(hint)
                if nxt is None or hint + length <= self.vm_start_gap(nxt):
                    return hint
        if not self.legacy:
            addr = self.unmapped_area_topdown(length, PAGE_SIZE, self.mmap_base)
            if addr is not None:
                return addr
        addr = self.unmapped_area(length, self.mmap_legacy_base, self.task_size)
        if addr is None:
            raise MmError(errno.ENOMEM, f"no free range of {length:#x} bytes")
        return addr

    def do_mmap(self, hint: int, length: int, *, fixed: bool = False, noreplace: bool = False,
                make=None) -> int:
        """vm_mmap: choose the address (or honour MAP_FIXED[_NOREPLACE]) and insert the VMA.

        `make(start, end)` builds the Vma to insert. Returns the mapped address or raises MmError
        with the errno the kernel would return.
        """
        length = page_align(length)
        if length == 0:
            raise MmError(errno.EINVAL, "zero-length mapping")
        if not fixed and not noreplace and hint and hint < self.effective_mmap_min_addr:
            hint = page_align(self.effective_mmap_min_addr)     # do_mmap: round_hint_to_min
        if fixed or noreplace:
            addr = page_start(hint)
            if addr + length > self.task_size or length > self.task_size:
                raise MmError(errno.ENOMEM, f"[{addr:#x}, {addr + length:#x}) is beyond TASK_SIZE "
                                            f"{self.task_size:#x}")
            if addr < self.mmap_min_addr and not self.may_map_low:
                raise MmError(errno.EPERM, f"{addr:#x} is below vm.mmap_min_addr "
                                           f"{self.mmap_min_addr:#x} (needs CAP_SYS_RAWIO)")
            if noreplace and self.overlaps(addr, addr + length):
                raise MmError(errno.EEXIST, f"[{addr:#x}, {addr + length:#x}) is mapped already")
        else:
            addr = self.get_unmapped_area(hint, length)
        self.insert(make(addr, addr + length), merge="both")
        return addr

    def vm_brk_flags(self, addr: int, length: int, make) -> None:
        """vm_brk_flags: an anonymous mapping at a fixed address (unmapping what was there)."""
        if length == 0:
            return
        if addr + length > self.task_size or addr + length < addr:
            raise MmError(errno.ENOMEM, f"[{addr:#x}, {addr + length:#x}) is beyond TASK_SIZE "
                                        f"{self.task_size:#x}")
        if addr < self.mmap_min_addr and not self.may_map_low:
            raise MmError(errno.EPERM, f"{addr:#x} is below vm.mmap_min_addr")
        self.insert(make(addr, addr + length), merge="prev")
