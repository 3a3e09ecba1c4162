"""The outcome of a hardware page walk, as `translate` shows it, and the SDM's access checks.

`PageTables.walk()` (elfvm.mmu.paging) builds these records; `check_access()` applies the
protection rules of SDM 4.6 to a walk's combined rights. The emulator's TLB fills walk with
`PageTables.walk_fast()` instead, which builds no record: a program run never imports this module.
"""


from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class Step:
    """One level of a walk: which table, which index, the entry's address and value."""

    level: str              # entry name: PDE, PTE, PDPTE, PML4E, L1E ...
    index: int
    table: int              # physical address of the table
    entry_addr: int
    entry: int
    present: bool
    leaf: bool              # this entry maps the page (PTE, or PS=1)


@dataclass(repr=False, eq=False)
class Walk:
    """The outcome of a hardware walk of one linear address."""

    linear: int
    steps: tuple[Step, ...]
    physical: int | None        # None: some level was not present (or reserved bits)
    page_size: int              # size of the page that maps it (4 KiB, 2/4 MiB, 1 GiB, custom)
    page_base: int | None       # physical address of that page/frame
    user: bool                  # U/S=1 at every level
    writable: bool              # R/W=1 at every level
    nx: bool                    # XD=1 at some level
    rsvd: str | None = None     # reserved-bit violation (#PF with RSVD=1)

    @property
    def present(self) -> bool:
        return self.physical is not None

    @property
    def leaf(self) -> Step | None:
        return self.steps[-1] if self.steps and self.steps[-1].leaf and self.steps[-1].present else None


@dataclass(repr=False, eq=False)
class Violation:
    """A protection fault the MMU raises (#PF with P=1), with the SDM's reason."""

    reason: str
    error_code: int


# #PF error-code bits (SDM 4.7)
PF_P, PF_W, PF_U, PF_RSVD, PF_I = 1, 2, 4, 8, 16


def pf_error_code(present: bool, access: str, cpl: int, rsvd: bool = False) -> int:
    return ((PF_P if present else 0) | (PF_W if access == "w" else 0) | (PF_U if cpl == 3 else 0)
            | (PF_RSVD if rsvd else 0) | (PF_I if access == "x" else 0))


def describe_error_code(code: int) -> str:
    bits = ["P=1 (protection)" if code & PF_P else "P=0 (not present)",
            "W/R=1 (write)" if code & PF_W else "W/R=0 (read)",
            "U/S=1 (user)" if code & PF_U else "U/S=0 (supervisor)"]
    if code & PF_RSVD:
        bits.append("RSVD=1")
    if code & PF_I:
        bits.append("I/D=1 (instruction fetch)")
    return f"#PF error code {code:#x}: " + ", ".join(bits)


def check_access(w: Walk, access: str, cpl: int, *, nxe: bool, wp: bool = True, smep: bool = True,
                 smap: bool = True, ac: bool = True) -> Violation | None:
    """SDM 4.6 access rights for a present translation.

    User mode (CPL 3): every level must have U/S=1; a write needs R/W=1 at every level; an
    instruction fetch needs XD=0 at every level (when IA32_EFER.NXE=1).
    Supervisor mode (CPL 0): writes need R/W=1 when CR0.WP=1 (Linux sets WP); instruction fetch
    from a user page faults with CR4.SMEP=1; data access to a user page faults with CR4.SMAP=1
    unless EFLAGS.AC=1 (`ac`: the kernel's stac in copy_{from,to}_user).
    """
    code = pf_error_code(True, access, cpl)
    if cpl == 3:
        if not w.user:
            return Violation("user-mode access to a supervisor page (U/S=0 in the walk)", code)
        if access == "w" and not w.writable:
            return Violation("write to a read-only page (R/W=0 in the walk)", code)
    else:
        if access == "w" and not w.writable and wp:
            return Violation("supervisor write to a read-only page with CR0.WP=1", code)
        if access == "x" and w.user and smep:
            return Violation("supervisor instruction fetch from a user page (CR4.SMEP=1)", code)
        if access != "x" and w.user and smap and not ac:
            return Violation("supervisor data access to a user page with CR4.SMAP=1 and EFLAGS.AC=0", code)
    if access == "x" and w.nx and nxe:
        return Violation("instruction fetch from a page with XD/NX=1", code)
    return None
