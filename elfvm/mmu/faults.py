"""What the kernel does with a page fault: arch/x86/mm/fault.c and mm/memory.c, the user side.

`classify()` follows do_user_addr_fault(): find_vma(); below a VM_GROWSDOWN VMA try
expand_stack(); access_error(); then handle_mm_fault() -> handle_pte_fault(), which picks
do_anonymous_page() (zero page on read, a new zeroed page on write), do_read_fault() (page
cache), do_cow_fault() (private write: copy), do_shared_fault(), or do_wp_page() for a write to a
present read-only page. Unresolvable faults end in SIGSEGV with si_code SEGV_MAPERR (no VMA) or
SEGV_ACCERR (VMA forbids the access), or SIGBUS (BUS_ADRERR) for a file page wholly past EOF
(filemap_fault()). Faults on kernel addresses from user mode go through do_kern_addr_fault() ->
bad_area_nosemaphore(): SIGSEGV with SEGV_MAPERR even though the hardware reported a protection
violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Vma

PAGE = 4096

# Fault kinds (the JSON `fault.kind` values).
ZERO_PAGE = "zero-page"              # do_anonymous_page, read: the shared zero page, read-only
ANON_PAGE = "anonymous-page"         # do_anonymous_page, write: a new zeroed page
FILE_READ = "file-read"              # do_read_fault: the page-cache page, mapped read-only
COW = "cow"                          # do_cow_fault: private write, a copy of the file page
SHARED_WRITE = "shared-write"        # do_shared_fault
WRITE_PROTECT = "write-protect"      # do_wp_page: write to a present read-only page
STACK_GROWTH = "stack-growth"        # expand_stack, then do_anonymous_page
SPECIAL = "special-mapping"          # vdso_fault / vvar_fault
SIGSEGV_MAPERR = "sigsegv-maperr"
SIGSEGV_ACCERR = "sigsegv-accerr"
SIGBUS = "sigbus"
EFAULT = "efault"                    # a kernel uaccess that hits nothing: -EFAULT via the exception table
KERNEL_OOPS = "kernel-oops"
NO_ADDRESS_SPACE = "no-address-space"


@dataclass(frozen=True)
class Fault:
    kind: str
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class MmView:
    """What the fault handler needs from the mm: VMAs (sorted), limits, file sizes."""

    vmas: tuple[Vma, ...]
    task_size: int
    rlimit_stack: int = 8 << 20
    stack_guard_gap: int = 256 * PAGE
    mmap_min_addr: int = PAGE
    file_sizes: dict | None = None        # path -> bytes

    def find_vma(self, addr: int) -> Vma | None:
        for v in self.vmas:
            if v.end > addr:
                return v
        return None

    def prev_vma(self, v: Vma) -> Vma | None:
        i = self.vmas.index(v)
        return self.vmas[i - 1] if i else None


def vma_label(v: Vma) -> str:
    name = v.file.path if v.file else v.special or ("[stack]" if v.growsdown else "anonymous")
    return f"{v.start:#010x}-{v.end:#010x} {v.perms} {name}"


def expand_stack(mm: MmView, vma: Vma, addr: int) -> str | None:
    """mm/mmap.c expand_downwards() + acct_stack_growth(): None if the stack may grow to `addr`,
    else why not."""
    new_start = addr & ~(PAGE - 1)
    if new_start < mm.mmap_min_addr:
        return f"{new_start:#x} is below mmap_min_addr (max of vm.mmap_min_addr and CONFIG_LSM_MMAP_MIN_ADDR)"
    size = vma.end - new_start
    if size > mm.rlimit_stack:
        return (f"growing the stack to {new_start:#x} makes it {size:#x} bytes, more than "
                f"RLIMIT_STACK {mm.rlimit_stack:#x} (acct_stack_growth)")
    prev = mm.prev_vma(vma)
    if prev is not None and not prev.growsdown and prev.prot and new_start - prev.end < mm.stack_guard_gap:
        return (f"the VMA below ({vma_label(prev)}) ends {new_start - prev.end:#x} bytes below, "
                f"inside the {mm.stack_guard_gap // 1024} KiB stack_guard_gap (expand_downwards)")
    return None


def access_error(access: str, vma: Vma, present: bool) -> bool:
    """arch/x86/mm/fault.c access_error()."""
    if access == "w":
        return not vma.prot & PROT_WRITE
    if present:                       # read or fetch, present: a protection fault
        return True
    return not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)   # !vma_is_accessible()


def classify(mm: MmView, addr: int, access: str, cpl: int, *, present: bool, nx_enforced: bool,
             hw: str = "") -> Fault:
    """The kernel's decision for a #PF at `addr` (user address space). `present`: the walk
    reached a present page and the fault is a protection fault; `hw` is the hardware reason."""
    prefix = f"{hw}; " if hw else ""

    def segv(kind: str, why: str) -> Fault:
        if cpl == 0:
            return Fault(EFAULT, f"{prefix}{why}; in copy_{{from,to}}_user the exception table turns this "
                                 f"into -EFAULT, anywhere else it is an oops", True)
        code = "SEGV_MAPERR" if kind == SIGSEGV_MAPERR else "SEGV_ACCERR"
        return Fault(kind, f"{prefix}{why}: SIGSEGV ({code})", True)

    if addr >= mm.task_size:
        return segv(SIGSEGV_MAPERR, f"{addr:#x} is at or above TASK_SIZE {mm.task_size:#x}: no user "
                                    f"mapping can exist there")
    vma = mm.find_vma(addr)
    if vma is None:
        return segv(SIGSEGV_MAPERR, f"{addr:#x} is above every VMA (find_vma found nothing)")
    grown = False
    if vma.start > addr:
        if not vma.growsdown:
            return segv(SIGSEGV_MAPERR, f"{addr:#x} lies in the hole below {vma_label(vma)} (no VMA)")
        why_not = expand_stack(mm, vma, addr)
        if why_not:
            return segv(SIGSEGV_MAPERR, f"{addr:#x} is below the stack VMA and it cannot grow: {why_not}")
        grown = True
    if access_error(access, vma, present):
        what = {"w": "write", "r": "read", "x": "instruction fetch"}[access]
        return segv(SIGSEGV_ACCERR, f"{what} not allowed by the VMA {vma_label(vma)} (access_error)")

    if present:
        # Only a write to a present read-only page of a writable VMA gets here.
        return Fault(WRITE_PROTECT, f"{prefix}do_wp_page(): write to a present read-only page of "
                                    f"{vma_label(vma)}: copy-on-write (or reuse an exclusive anonymous page), "
                                    f"then the PTE gets R/W and D")
    then = ""
    if access == "x" and not vma.prot & PROT_EXEC:
        if nx_enforced:
            return segv(SIGSEGV_ACCERR,
                        f"instruction fetch from {vma_label(vma)}: the fault maps the page with NX "
                        f"(the VMA has no VM_EXEC), the retried fetch faults again with P=1, I/D=1, and "
                        f"access_error() refuses it")
        then = " (no NX bit in this paging mode: the page is executable although the VMA is not)"
    if grown:
        return Fault(STACK_GROWTH, f"{prefix}expand_stack(): the stack VMA {vma_label(vma)} grows down to "
                                   f"{addr & ~(PAGE - 1):#x}, then do_anonymous_page() maps a new zeroed page"
                                   f"{then}")
    if vma.special:
        if vma.special == "[vdso]":
            return Fault(SPECIAL, f"{prefix}vdso_fault(): maps page {(addr - vma.start) // PAGE} of the kernel's "
                                  f"vdso32 image{then}")
        return Fault(SPECIAL, f"{prefix}vvar_fault(): inserts the pfn of the kernel's {vma.special} data page "
                              f"(VM_PFNMAP, read-only){then}")
    if vma.file is None:
        if access == "w":
            return Fault(ANON_PAGE, f"{prefix}do_anonymous_page(): write to an untouched anonymous page: a new "
                                    f"zeroed frame, PTE R/W+D")
        return Fault(ZERO_PAGE, f"{prefix}do_anonymous_page(): read of an untouched anonymous page: the shared "
                                f"zero page, mapped read-only (a later write faults again and gets its own "
                                f"page){then}")
    file_off = vma.pgoff + ((addr & ~(PAGE - 1)) - vma.start)
    size = (mm.file_sizes or {}).get(vma.file.path)
    if size is not None and file_off >= -(-size // PAGE) * PAGE:
        return Fault(SIGBUS, f"{prefix}{vma.file.path} is {size:#x} bytes; file offset {file_off:#x} is past its "
                             f"last page: filemap_fault() returns VM_FAULT_SIGBUS: SIGBUS (BUS_ADRERR)", True)
    src = f"{vma.file.path} at file offset {file_off:#x}"
    if access == "w":
        if vma.shared:
            return Fault(SHARED_WRITE, f"{prefix}do_shared_fault(): the page-cache page of {src}, writable")
        return Fault(COW, f"{prefix}do_cow_fault(): private write: read {src} into the page cache, copy it "
                          f"to a new anonymous frame, PTE R/W+D")
    return Fault(FILE_READ, f"{prefix}do_read_fault(): map the page-cache page of {src} read-only "
                            f"(read from disk if not cached; fault-around maps up to 16 cached neighbours){then}")
