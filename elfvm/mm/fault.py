"""How Linux resolves a page fault (mm/memory.c), as small pure functions.

`handle_mm_fault` picks the handler the kernel would run for a fault at `addr` with `access`
("r", "w", "x") on a VMA, given whether a PTE is present and writable:

    no PTE, anonymous VMA, read        do_anonymous_page  -> the shared zero page, read-only
    no PTE, anonymous VMA, write       do_anonymous_page  -> a new zeroed page
    no PTE, file VMA, read/exec        do_read_fault      -> page-cache page + do_fault_around
    no PTE, private file VMA, write    do_cow_fault       -> a private copy of the file page
    no PTE, shared file VMA, write     do_shared_fault    -> the page-cache page, writable
    PTE read-only, write allowed       do_wp_page         -> copy (or reuse if exclusive)
    swapped PTE                        do_swap_page

The fault-around window (`fault_around_range`) is do_fault_around(): fault_around_bytes
(64 KiB = 16 pages) aligned down, clipped to the VMA and to the page table that holds the PTE.
The "simple" model is the textbook: one fault per first touch, every page mapped with the VMA's
full rights at once.
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
FAULT_AROUND_PAGES = 16          # fault_around_bytes = 65536

# the fault kinds elfvm reports (the trace engine's names)
FAULT_KINDS = ("first-touch", "zero-page", "file", "cow", "stack-growth", "swap-in")


@dataclass(frozen=True)
class FaultPlan:
    handler: str           # the kernel function
    kind: str              # elfvm's fault kind
    write: bool            # the new PTE is writable
    copy: bool = False     # a private copy is made (anon page)
    around: bool = False   # do_fault_around maps neighbours too


def fault_around_range(addr: int, vma_start: int, vma_end: int, ptrs_per_pte: int,
                       nr_pages: int = FAULT_AROUND_PAGES) -> tuple[int, int]:
    """mm/memory.c do_fault_around(): the pages [first, last) that filemap_map_pages may map.

        pte_off  = pte_index(address)
        vma_off  = vmf->pgoff - vma->vm_pgoff          (pages from the VMA start)
        from_pte = max(ALIGN_DOWN(pte_off, nr_pages), pte_off - min(pte_off, vma_off))
        to_pte   = min3(from_pte + nr_pages, PTRS_PER_PTE, pte_off + vma_pages - vma_off)
    """
    vpn = addr >> PAGE_SHIFT
    pte_off = vpn % ptrs_per_pte
    vma_off = vpn - (vma_start >> PAGE_SHIFT)
    vma_pages = (vma_end - vma_start) >> PAGE_SHIFT
    from_pte = max(pte_off - pte_off % nr_pages, pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr_pages, ptrs_per_pte, pte_off + vma_pages - vma_off)
    base = vpn - pte_off
    return (base + from_pte) << PAGE_SHIFT, (base + to_pte) << PAGE_SHIFT


def whole_folios(first: int, last: int, vma_start: int, vma_end: int, vma_pgoff: int,
                 ptrs_per_pte: int, folio_pages: int) -> tuple[int, int]:
    """Linux 6.18 filemap_map_pages() maps each large folio it meets *entirely* ("map entire
    large folio faultaround"), still within the VMA and the page table. Folios are naturally
    aligned in the file; `folio_pages` is the page-cache folio size assumed (1: small pages)."""
    if folio_pages <= 1:
        return first, last
    fstart = vma_pgoff >> PAGE_SHIFT                  # file page index of vma_start
    def file_index(a: int) -> int:
        return fstart + ((a - vma_start) >> PAGE_SHIFT)
    lo_idx = file_index(first) - file_index(first) % folio_pages
    hi_idx = file_index(last - PAGE_SIZE) - file_index(last - PAGE_SIZE) % folio_pages + folio_pages
    lo = vma_start + ((lo_idx - fstart) << PAGE_SHIFT)
    hi = vma_start + ((hi_idx - fstart) << PAGE_SHIFT)
    table = (first >> PAGE_SHIFT) // ptrs_per_pte * ptrs_per_pte << PAGE_SHIFT
    return max(lo, vma_start, table), min(hi, vma_end, table + (ptrs_per_pte << PAGE_SHIFT))


def handle_mm_fault(*, anonymous: bool, shared: bool, vma_writable: bool, access: str,
                    pte_present: bool, pte_write: bool, pte_exclusive_anon: bool,
                    swapped: bool, model: str = "linux") -> FaultPlan:
    """The handler Linux runs (model "linux") or the textbook's one fault per page ("simple").

    The caller has already checked the access against the VMA (a write to a read-only VMA is
    SIGSEGV, not a fault to resolve).
    """
    write = access == "w"
    if swapped:
        return FaultPlan("do_swap_page", "swap-in", vma_writable and (write or model == "simple"))
    if pte_present:
        # only a write to a present, write-protected PTE reaches here
        if shared:
            return FaultPlan("wp_page_shared", "file", True)
        if pte_exclusive_anon:
            return FaultPlan("wp_page_reuse", "cow", True)
        return FaultPlan("wp_page_copy", "cow", True, copy=True)
    if model == "simple":
        if anonymous:
            return FaultPlan("do_anonymous_page", "first-touch", vma_writable, copy=not shared)
        return FaultPlan("do_read_fault", "file", vma_writable and shared) if (not vma_writable or shared) \
            else FaultPlan("do_cow_fault", "file", True, copy=True)
    if anonymous:
        if shared:
            return FaultPlan("do_shared_fault", "first-touch", write and vma_writable)
        if write:
            return FaultPlan("do_anonymous_page", "first-touch", True, copy=True)
        return FaultPlan("do_anonymous_page", "zero-page", False)
    if not write:
        return FaultPlan("do_read_fault", "file", False, around=True)
    if shared:
        return FaultPlan("do_shared_fault", "file", True)
    return FaultPlan("do_cow_fault", "cow", True, copy=True)


def stack_guard_ok(new_start: int, prev_end: int | None, prev_accessible: bool, guard_gap: int) -> bool:
    """mm/mmap.c expand_downwards(): the accessible VMA below must end at least
    stack_guard_gap below the new start."""
    if prev_end is None:
        return True
    if prev_end > new_start:
        return False
    return not prev_accessible or new_start - prev_end >= guard_gap
