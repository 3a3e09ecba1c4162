"""How Linux decides a page fault (arch/x86/mm/fault.c, mm/memory.c, mm/mmap.c), one decision
for every caller: `translate` predicts with it, the emulator (elfvm.emu.fault) carries it out.

`handle_mm_fault()` follows do_user_addr_fault(): find_vma(); below a VM_GROWSDOWN VMA try
`expand_stack()` (mmap_min_addr, RLIMIT_STACK, the stack guard gap); `access_error()`; then
handle_pte_fault(), which picks

    swap entry                          do_swap_page
    present PTE, write allowed          do_wp_page        -> wp_page_reuse / wp_page_copy / wp_page_shared
    no PTE, private anonymous, read     do_anonymous_page -> the shared zero page, read-only
    no PTE, private anonymous, write    do_anonymous_page -> a new zeroed page
    no PTE, file (or shmem), read       do_read_fault     -> page-cache page + do_fault_around
    no PTE, private file, write         do_cow_fault      -> a private copy of the file page
    no PTE, shared, write               do_shared_fault   -> the page-cache page, writable
    [vdso], [vvar]                      special_mapping_fault / vvar_fault

Unresolvable faults end in SIGSEGV with si_code SEGV_MAPERR (no VMA) or SEGV_ACCERR (the VMA
forbids the access), or SIGBUS (BUS_ADRERR) for a file page wholly past EOF (filemap_fault()).
Faults on kernel addresses from user mode: SEGV_MAPERR. From kernel mode (cpl 0, a uaccess)
the exception table turns them into -EFAULT.

The "simple" model is the textbook: one fault per first touch, every page mapped with the
VMA's full rights at once.
"""


from collections.abc import Callable
from dataclasses import dataclass, replace

from elfvm.mm.vma import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, Mm, Vma

PAGE_SHIFT = 12
FAULT_AROUND_PAGES = 16          # fault_around_bytes = 65536
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR = 1, 2, 2

# Fault kinds (the JSON `fault.kind` values of translate).
ZERO_PAGE = "zero-page"              # do_anonymous_page, read: the shared zero page, read-only
ANON_PAGE = "anonymous-page"         # do_anonymous_page, write: a new zeroed page
FILE_READ = "file-read"              # do_read_fault: the page-cache page, mapped read-only
COW = "cow"                          # do_cow_fault: private write, a copy of the file page
SHARED_WRITE = "shared-write"        # do_shared_fault
WRITE_PROTECT = "write-protect"      # do_wp_page: write to a present read-only page
STACK_GROWTH = "stack-growth"        # expand_stack, then do_anonymous_page
SPECIAL = "special-mapping"          # vdso_fault / vvar_fault
SWAP_IN = "swap-in"                  # do_swap_page
SIGSEGV_MAPERR = "sigsegv-maperr"
SIGSEGV_ACCERR = "sigsegv-accerr"
SIGBUS = "sigbus"
EFAULT = "efault"                    # a kernel uaccess that hits nothing: -EFAULT via the exception table
KERNEL_OOPS = "kernel-oops"
NO_ADDRESS_SPACE = "no-address-space"

# the kinds the paging model counts (elfvm.sim: first-touch, zero-page, file, cow, stack-growth, swap-in)
FAULT_KINDS = ("first-touch", "zero-page", "file", "cow", "stack-growth", "swap-in")


@dataclass(repr=False, eq=False)
class Fault:
    """The kernel's decision for one fault: what it is (`kind`), why, and, when it resolves,
    how: the handler that runs, the rights of the PTE it installs, whether it copies."""

    kind: str
    reason: str
    fatal: bool = False
    handler: str = ""          # the kernel function that resolves it
    counted: str = ""          # the paging model's kind (FAULT_KINDS) of a resolved fault
    write: bool = False        # the new PTE is writable
    copy: bool = False         # a private (anonymous) copy is made
    around: bool = False       # do_fault_around maps cached neighbours too
    vma: Vma | None = None     # the VMA that resolves it (the grown stack VMA after expand_stack)
    grown_from: Vma | None = None   # the stack VMA before expand_stack grew it
    si_code: int = 0


def vma_label(v: Vma) -> str:
    name = v.file.path if v.file else v.special or ("[stack]" if v.growsdown else "anonymous")
    return f"{v.start:#010x}-{v.end:#010x} {v.perms} {name}"


def prev_vma(mm: Mm, v: Vma) -> Vma | None:
    # `v` is found by identity first: list.index compares the VMAs before it field by field
    # (the dataclass __eq__), ~10 comparisons for the stack, the last VMA
    vmas = mm.vmas
    i = next((i for i, x in enumerate(vmas) if x is v), None)
    if i is None:
        i = vmas.index(v)
    return vmas[i - 1] if i else None


def expand_stack(mm: Mm, vma: Vma, addr: int, rlimit_stack: int) -> str | None:
    """mm/mmap.c expand_downwards() + acct_stack_growth(): None if the stack may grow down to
    `addr`, else why not. The one stack-growth rule: page faults (translate, the emulator) and
    the loader's create_elf_tables (elfvm.kernel.binfmt_elf) all ask it."""
    new_start = addr & ~(PAGE_SIZE - 1)
    min_addr, guard_top, rlimit_bottom = stack_growth_bounds(mm, vma, rlimit_stack)
    if new_start < min_addr:
        return f"{new_start:#x} is below mmap_min_addr (max of vm.mmap_min_addr and CONFIG_LSM_MMAP_MIN_ADDR)"
    if new_start < guard_top:           # new_start - prev.end < stack_guard_gap
        prev = prev_vma(mm, vma)
        return (f"the VMA below ({vma_label(prev)}) ends {new_start - prev.end:#x} bytes below, "
                f"inside the {mm.stack_guard_gap // 1024} KiB stack_guard_gap (expand_downwards)")
    size = vma.end - new_start
    if new_start < rlimit_bottom:       # size > rlimit_stack
        return (f"growing the stack to {new_start:#x} makes it {size:#x} bytes, more than "
                f"RLIMIT_STACK {rlimit_stack:#x} (acct_stack_growth)")
    return None


def stack_growth_bounds(mm: Mm, vma: Vma, rlimit_stack: int) -> tuple[int, int, int]:
    """expand_stack()'s checks as the lowest new start each allows: mmap_min_addr; the top of
    the stack_guard_gap the VMA below keeps (0: none to keep); the lowest start RLIMIT_STACK
    allows (acct_stack_growth)."""
    prev = prev_vma(mm, vma)
    guard_top = prev.end + mm.stack_guard_gap if prev is not None and not prev.growsdown and prev.prot else 0
    return mm.effective_mmap_min_addr, guard_top, vma.end - rlimit_stack


def stack_growth_zone(mm: Mm, vma: Vma, addr: int, rlimit_stack: int) -> tuple[int, int]:
    """The addresses [lo, hi) below the stack VMA `vma`, around `addr`, whose new start passes
    and fails the same checks of expand_stack() as addr's: the same verdict for the same reason
    (a bulk translation answers them by one rule)."""
    prev = prev_vma(mm, vma)
    lo, hi = (prev.end if prev is not None else 0), vma.start
    new_start = addr & ~(PAGE_SIZE - 1)
    for b in stack_growth_bounds(mm, vma, rlimit_stack):
        b = -(-b // PAGE_SIZE) * PAGE_SIZE           # new_start < b  <=>  addr < b rounded up
        if b <= new_start:
            lo = max(lo, b)
        else:
            hi = min(hi, b)
    return lo, hi


def access_error(access: str, vma: Vma, present: bool) -> bool:
    """arch/x86/mm/fault.c access_error()."""
    if access == "w":
        return not vma.prot & PROT_WRITE
    if present:                       # read or fetch, present: a protection fault
        return True
    return not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)   # !vma_is_accessible()


@dataclass(repr=False, eq=False)
class Pte:
    """What handle_pte_fault() sees of the faulting page's entry."""

    present: bool = False
    write: bool = False
    exclusive: bool = False    # an anonymous page only this PTE maps (wp_page_reuse)
    swapped: bool = False      # a swap entry


def handle_mm_fault(mm: Mm, addr: int, access: str, *, pte: Pte = Pte(), cpl: int = 3,
                    nx: bool = True, rlimit_stack: int = 8 << 20,
                    file_size: Callable[[Vma], int | None] | None = None, model: str = "linux",
                    hw: str = "") -> Fault:
    """The kernel's decision for a #PF at `addr` (user address space) with `access` ("r", "w",
    "x"). `pte` is the faulting page's entry; `nx`: the paging mode has an NX bit; `hw` the
    hardware's reason, prefixed to the explanation."""
    prefix = f"{hw}; " if hw else ""

    def segv(kind: str, why: str) -> Fault:
        if cpl == 0:
            return Fault(EFAULT, f"{prefix}{why}; in copy_{{from,to}}_user the exception table turns this "
                                 f"into -EFAULT, anywhere else it is an oops", True, si_code=SEGV_MAPERR)
        code = "SEGV_MAPERR" if kind == SIGSEGV_MAPERR else "SEGV_ACCERR"
        return Fault(kind, f"{prefix}{why}: SIGSEGV ({code})", True,
                     si_code=SEGV_MAPERR if kind == SIGSEGV_MAPERR else SEGV_ACCERR)

    if addr >= mm.task_size:
        return segv(SIGSEGV_MAPERR, f"{addr:#x} is at or above TASK_SIZE {mm.task_size:#x}: no user "
                                    f"mapping can exist there")
    vma = mm.find_vma(addr)
    if vma is None:
        return segv(SIGSEGV_MAPERR, f"{addr:#x} is above every VMA (find_vma found nothing)")
    grown_from = None
    if vma.start > addr:
        if not vma.growsdown:
            return segv(SIGSEGV_MAPERR, f"{addr:#x} lies in the hole below {vma_label(vma)} (no VMA)")
        why_not = expand_stack(mm, vma, addr, rlimit_stack)
        if why_not:
            return segv(SIGSEGV_MAPERR, f"{addr:#x} is below the stack VMA and it cannot grow: {why_not}")
        grown_from, vma = vma, replace(vma, start=addr & ~(PAGE_SIZE - 1))
    if access_error(access, vma, pte.present):
        what = {"w": "write", "r": "read", "x": "instruction fetch"}[access]
        return segv(SIGSEGV_ACCERR, f"{what} not allowed by the VMA {vma_label(vma)} (access_error)")
    if access == "x" and not vma.prot & PROT_EXEC and nx:
        return segv(SIGSEGV_ACCERR,
                    f"instruction fetch from {vma_label(vma)}: the fault maps the page with NX "
                    f"(the VMA has no VM_EXEC), the retried fetch faults again with P=1, I/D=1, and "
                    f"access_error() refuses it")
    then = (" (no NX bit in this paging mode: the page is executable although the VMA is not)"
            if access == "x" and not vma.prot & PROT_EXEC else "")
    f = handle_pte_fault(vma, addr, access, pte, model, prefix, then, file_size)
    if grown_from is not None and not f.fatal:
        f = Fault(STACK_GROWTH, f"{prefix}expand_stack(): the stack VMA {vma_label(grown_from)} grows down to "
                                f"{addr & ~(PAGE_SIZE - 1):#x}, then {f.reason.removeprefix(prefix)}",
                  False, f.handler, "stack-growth", f.write, f.copy, False, vma, grown_from)
    if f.vma is None and not f.fatal:
        f.vma = vma              # the decision was made here, for this fault: no copy needed
    return f


def handle_pte_fault(vma: Vma, addr: int, access: str, pte: Pte, model: str, prefix: str, then: str,
                     file_size) -> Fault:
    """mm/memory.c handle_pte_fault(): the handler for a fault the VMA allows."""
    write = access == "w"
    vma_w = bool(vma.prot & PROT_WRITE)
    if pte.swapped:
        return Fault(SWAP_IN, f"{prefix}do_swap_page(): the page is in swap: read it back", False,
                     "do_swap_page", "swap-in", vma_w and (write or model == "simple"))
    if pte.present:
        return do_wp_page(vma, pte, prefix)
    if vma.special:
        what = (f"vdso_fault(): maps page {(addr - vma.start) // PAGE_SIZE} of the kernel's vdso32 image"
                if vma.special == "[vdso]" else
                f"vvar_fault(): inserts the pfn of the kernel's {vma.special} data page (VM_PFNMAP, read-only)")
        return Fault(SPECIAL, f"{prefix}{what}{then}", False, "special_mapping_fault", "first-touch")
    if vma.file is None:
        return do_anonymous_page(vma, write, model, prefix, then)
    return do_fault(vma, addr, write, model, prefix, then, file_size)


def do_wp_page(vma: Vma, pte: Pte, prefix: str) -> Fault:
    """A write to a present, write-protected PTE of a writable VMA."""
    why = (f"{prefix}do_wp_page(): write to a present read-only page of {vma_label(vma)}: copy-on-write "
           f"(or reuse an exclusive anonymous page), then the PTE gets R/W and D")
    if vma.shared:
        return Fault(WRITE_PROTECT, why, False, "wp_page_shared", "file", True)
    if pte.exclusive:
        return Fault(WRITE_PROTECT, why, False, "wp_page_reuse", "cow", True)
    return Fault(WRITE_PROTECT, why, False, "wp_page_copy", "cow", True, copy=True)


def do_anonymous_page(vma: Vma, write: bool, model: str, prefix: str, then: str) -> Fault:
    vma_w = bool(vma.prot & PROT_WRITE)
    if vma.shared:          # shmem: a page of the shared object
        if write:
            return Fault(SHARED_WRITE, f"{prefix}do_shared_fault(): the shared anonymous (shmem) page, writable",
                         False, "do_shared_fault", "first-touch", vma_w)
        return Fault(FILE_READ, f"{prefix}do_read_fault(): the shared anonymous (shmem) page{then}", False,
                     "do_read_fault", "first-touch", model == "simple" and vma_w)
    if write or model == "simple":
        return Fault(ANON_PAGE, f"{prefix}do_anonymous_page(): write to an untouched anonymous page: a new "
                                f"zeroed frame, PTE R/W+D", False, "do_anonymous_page", "first-touch", vma_w,
                     copy=True)
    return Fault(ZERO_PAGE, f"{prefix}do_anonymous_page(): read of an untouched anonymous page: the shared "
                            f"zero page, mapped read-only (a later write faults again and gets its own "
                            f"page){then}", False, "do_anonymous_page", "zero-page")


def do_fault(vma: Vma, addr: int, write: bool, model: str, prefix: str, then: str, file_size) -> Fault:
    """do_read_fault / do_cow_fault / do_shared_fault, after filemap_fault()'s EOF check."""
    file_off = vma.pgoff + ((addr & ~(PAGE_SIZE - 1)) - vma.start)
    size = file_size(vma) if file_size is not None else None
    if size is not None and file_off >= -(-size // PAGE_SIZE) * PAGE_SIZE:
        return Fault(SIGBUS, f"{prefix}{vma.file.path} is {size:#x} bytes; file offset {file_off:#x} is past its "
                             f"last page: filemap_fault() returns VM_FAULT_SIGBUS: SIGBUS (BUS_ADRERR)", True,
                     si_code=BUS_ADRERR)
    src = f"{vma.file.path} at file offset {file_off:#x}"
    vma_w = bool(vma.prot & PROT_WRITE)
    if model == "simple":
        if not vma_w or vma.shared:
            return Fault(FILE_READ, f"{prefix}do_read_fault(): the page-cache page of {src}", False,
                         "do_read_fault", "file", vma_w and vma.shared)
        return Fault(COW, f"{prefix}do_cow_fault(): a private copy of {src}", False, "do_cow_fault", "file",
                     True, copy=True)
    if write:
        if vma.shared:
            return Fault(SHARED_WRITE, f"{prefix}do_shared_fault(): the page-cache page of {src}, writable",
                         False, "do_shared_fault", "file", True)
        return Fault(COW, f"{prefix}do_cow_fault(): private write: read {src} into the page cache, copy it "
                          f"to a new anonymous frame, PTE R/W+D", False, "do_cow_fault", "cow", True, copy=True)
    return Fault(FILE_READ, f"{prefix}do_read_fault(): map the page-cache page of {src} read-only "
                            f"(read from disk if not cached; fault-around maps up to 16 cached neighbours){then}",
                 False, "do_read_fault", "file", around=True)


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


def fault_around_folios(first: int, last: int, vma_start: int, vma_end: int, vma_pgoff: int,
                        ptrs_per_pte: int, folio_of, whole: bool) -> list[tuple[int, int]]:
    """The address ranges filemap_map_pages() maps for the window [first, last): folio by folio
    (`folio_of(index)` -> (first file index, pages) of the page-cache folio holding a page).
    With `whole` (Linux 6.18, "mm/filemap: map entire large folio faultaround") a large folio
    that lies wholly inside the VMA and inside one page table is mapped entirely, even where it
    sticks out of the window; one that does not is mapped only where it meets the window, as
    every folio is before 6.18."""
    fstart = vma_pgoff >> PAGE_SHIFT                  # file page index of vma_start
    vma_last = fstart + ((vma_end - vma_start) >> PAGE_SHIFT)
    def addr(index: int) -> int:
        return vma_start + ((index - fstart) << PAGE_SHIFT)
    table = (ptrs_per_pte << PAGE_SHIFT) - 1
    i, end = fstart + ((first - vma_start) >> PAGE_SHIFT), fstart + ((last - vma_start) >> PAGE_SHIFT)
    out = []
    while i < end:
        head, n = folio_of(i)
        tail = head + n
        if whole and n > 1 and head >= fstart and tail <= vma_last and \
                addr(head) & ~table == (addr(tail) - 1) & ~table:
            out.append((addr(head), addr(tail)))
        else:
            out.append((addr(i), addr(min(tail, end))))
        i = tail
    return out